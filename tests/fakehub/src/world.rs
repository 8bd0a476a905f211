//! The one database behind the fake hub's build side ([`crate::build`]) and repo side
//! ([`crate::repos`]), as kojihub has one: tags with inheritance, arches, extra, groups and
//! package lists; external repos; repos (dist repos too) with their states and events; builds,
//! their RPMs stored on the topdir as `packages/<name>/<version>/<release>/<arch>/<file>`, and
//! the tag listing (which build is tagged where).
//!
//! It lives in [`HubState::world`], so both sides, the core buildroot tables and the tests see
//! the same rows: a build the daemon completes with `host.completeBuild` and tags with
//! `host.tagBuild` is what `listTaggedRPMS` and `host.repoInit` read for the next repo.
//! The tag and repo getters (`getTag`, `getRepo`, `repoInfo`, `getExternalRepoList`,
//! `getFullInheritance`) are registered once per hub by [`install_tag_methods`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use dxr::Value;
use serde_json::{Map, Value as Json, json};

use crate::FakeHub;
use crate::args::BoundArgs;
use crate::faults::HubFault;
use crate::state::Repo;
use crate::xmlrpc::{as_int, vint};

/// BUILD_STATES.
pub const BUILD_BUILDING: i64 = 0;
pub const BUILD_COMPLETE: i64 = 1;
pub const BUILD_FAILED: i64 = 3;

/// Repo states (`koji.REPO_STATES`).
pub const REPO_INIT: i64 = 0;
pub const REPO_READY: i64 = 1;
pub const REPO_EXPIRED: i64 = 2;

/// A tag: kojihub's `tag`, `tag_config`, `tag_extra`, `tag_inheritance`, `tag_packages` and
/// `group_config` rows in one struct.
#[derive(Debug, Clone, Default)]
pub struct FakeTag {
    pub id: i64,
    pub name: String,
    /// The tag's own arches (empty: none, which getTag answers as `None`).
    pub arches: Vec<String>,
    /// The tag's own extra; `getBuildConfig` merges the inherited ones.
    pub extra: Map<String, Json>,
    /// `(parent tag id, priority)`, in priority order.
    pub parents: Vec<(i64, i64)>,
    /// Group name → package names (all mandatory).
    pub groups: BTreeMap<String, Vec<String>>,
    /// Package list: package name → blocked. The nearest tag in the inheritance that lists a
    /// package decides whether it is blocked.
    pub packages: BTreeMap<String, bool>,
    pub extra_arches: BTreeMap<String, String>,
    pub last_change_event: i64,
}

#[derive(Debug, Clone)]
pub struct FakeBuild {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub state: i64,
    pub task_id: Option<i64>,
    pub owner: i64,
    pub extra: Json,
    pub source: Option<String>,
    /// Its files on the topdir, relative to topdir.
    pub files: Vec<String>,
    pub brmap: Json,
    pub logs: Json,
}

impl FakeBuild {
    pub fn nvr(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.release)
    }
}

#[derive(Debug, Clone)]
pub struct FakeRpm {
    pub id: i64,
    pub build_id: i64,
    /// The build's (source package's) name: where kojihub keeps the file,
    /// `packages/<build name>/<v>/<r>/`. Differs from `name` for subpackages.
    pub build_name: String,
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: String,
    pub size: i64,
    pub payloadhash: String,
    /// Signature keys (lower case hex ids) the hub knows for this RPM.
    pub sigs: Vec<String>,
    /// The hub draft flag; a draft in a dist repo is a BuildError.
    pub draft: bool,
}

impl FakeRpm {
    pub fn nvra(&self) -> String {
        format!(
            "{}-{}-{}.{}",
            self.name, self.version, self.release, self.arch
        )
    }

    /// `packages/<build name>/<v>/<r>/<arch>/<nvra>.rpm`, relative to topdir.
    pub fn relpath(&self) -> String {
        format!(
            "packages/{}/{}/{}/{}/{}.rpm",
            self.build_name,
            self.version,
            self.release,
            self.arch,
            self.nvra()
        )
    }

    /// The signed copy kojihub writes:
    /// `packages/<build name>/<v>/<r>/data/signed/<key>/<arch>/<nvra>.rpm`.
    pub fn signed_relpath(&self, key: &str) -> String {
        format!(
            "packages/{}/{}/{}/data/signed/{key}/{}/{}.rpm",
            self.build_name,
            self.version,
            self.release,
            self.arch,
            self.nvra()
        )
    }

    pub fn info(&self, tag: Option<&FakeTag>) -> Json {
        let mut info = json!({
            "id": self.id,
            "build_id": self.build_id,
            "name": self.name,
            "version": self.version,
            "release": self.release,
            "epoch": self.epoch,
            "arch": self.arch,
            "size": self.size,
            "payloadhash": self.payloadhash,
            "buildroot_id": null,
            "external_repo_id": 0,
            "external_repo_name": "INTERNAL",
            "extra": null,
            "metadata_only": false,
            "nvr": format!("{}-{}-{}", self.name, self.version, self.release),
            "draft": self.draft,
        });
        if let (Some(tag), Some(map)) = (tag, info.as_object_mut()) {
            map.insert("tag_id".into(), json!(tag.id));
            map.insert("tag_name".into(), json!(tag.name));
        }
        info
    }
}

#[derive(Debug, Clone)]
pub struct FakeExternalRepo {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub tag_id: i64,
    pub merge_mode: String,
    /// Space-separated arches, or none for all.
    pub arches: Option<String>,
    pub priority: i64,
}

#[derive(Debug, Clone)]
pub struct RepoRequest {
    pub id: i64,
    pub tag_id: i64,
    pub min_event: Option<i64>,
    pub active: bool,
}

/// What `rpm -qp` says about an RPM file.
#[derive(Debug, Clone)]
pub struct RpmHeader {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: String,
    pub size: i64,
    pub payloadhash: String,
    pub is_source: bool,
    pub sourcerpm: String,
}

/// The hub's database.
#[derive(Debug, Default)]
pub struct KojiWorld {
    pub tags: BTreeMap<i64, FakeTag>,
    /// target name → (id, build tag, dest tag).
    pub targets: BTreeMap<String, (i64, i64, i64)>,
    pub builds: BTreeMap<i64, FakeBuild>,
    /// The tag listing: (tag, build) in tagging order.
    pub tagged: Vec<(i64, i64)>,
    pub rpms: BTreeMap<i64, FakeRpm>,
    pub external_repos: Vec<FakeExternalRepo>,
    /// Every repo, plain and dist, including the ones tests add with [`FakeHub::add_repo`].
    pub repos: BTreeMap<i64, Repo>,
    /// `(rpm id, key)` of every `host.writeSignedRPM` call.
    pub signed_writes: Vec<(i64, String)>,
    pub denied_policies: BTreeSet<String>,
    /// Every `assertPolicy`/`checkPolicy` call: (policy, data).
    pub policy_checks: Vec<(String, Json)>,
    pub notifications: Vec<Json>,
    pub requests: BTreeMap<i64, RepoRequest>,
    pub average_durations: BTreeMap<String, f64>,
    pub scratch: Vec<(i64, Json)>,
    /// Whether [`install_tag_methods`] ran on this hub.
    tag_methods_installed: bool,
    next_id: i64,
}

/// The world's lock; a panicking test thread must not take the hub down with it.
pub fn lock(world: &Mutex<KojiWorld>) -> MutexGuard<'_, KojiWorld> {
    match world.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub fn describe(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => as_int(other).map_or_else(|| format!("{other:?}"), |n| n.to_string()),
        None => "None".to_owned(),
    }
}

/// JSON → XML-RPC value the way kojihub's marshaller sends it (int when it fits).
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => n
            .as_i64()
            .map(vint)
            .unwrap_or_else(|| Value::Double(n.as_f64().unwrap_or_default())),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(map) => {
            Value::Struct(map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

/// XML-RPC value → JSON (for the opts and data structs the builder sends).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(n) => json!(n),
        Value::Long(n) => json!(n),
        Value::Double(n) => json!(n),
        Value::String(s) => Json::String(s.clone()),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Struct(map) => {
            Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        #[allow(unreachable_patterns)]
        other => Json::String(format!("{other:?}")),
    }
}

/// The name of the build an RPM belongs to, from its `SOURCERPM` header
/// (`<name>-<version>-<release>.src.rpm`), as kojihub names builds after their source package.
pub fn build_name_of(header: &RpmHeader) -> String {
    if header.is_source {
        return header.name.clone();
    }
    header
        .sourcerpm
        .strip_suffix(".src.rpm")
        .and_then(|nvr| nvr.rsplitn(3, '-').nth(2))
        .filter(|n| !n.is_empty())
        .unwrap_or(&header.name)
        .to_owned()
}

/// The headers of RPM files, with a few `rpm -qp` runs instead of one per file.
pub fn read_rpm_headers(files: &[PathBuf]) -> Result<Vec<RpmHeader>, String> {
    let mut headers = Vec::with_capacity(files.len());
    for batch in files.chunks(500) {
        let output = Command::new("rpm")
            .args([
                "-qp",
                "--nosignature",
                "--nodigest",
                "--qf",
                "%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{EPOCH}\\t%{ARCH}\\t%{SIZE}\\t%{SIGMD5}\\t%{SOURCEPACKAGE}\\t%{SOURCERPM}\\n",
            ])
            .args(batch)
            .output()
            .map_err(|e| format!("cannot run rpm (install rpm on the host): {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "rpm -qp failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() != batch.len() {
            return Err(format!(
                "rpm -qp gave {} headers for {} files",
                lines.len(),
                batch.len()
            ));
        }
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 9 {
                return Err(format!("unexpected rpm -qp line: {line}"));
            }
            let is_source = f[7] == "1";
            headers.push(RpmHeader {
                name: f[0].to_owned(),
                version: f[1].to_owned(),
                release: f[2].to_owned(),
                epoch: f[3].parse().ok(),
                arch: if is_source {
                    "src".to_owned()
                } else {
                    f[4].to_owned()
                },
                size: f[5].parse().unwrap_or_default(),
                payloadhash: f[6].to_owned(),
                is_source,
                sourcerpm: f[8].to_owned(),
            });
        }
    }
    Ok(headers)
}

impl KojiWorld {
    /// One id counter for every table: ids stay unique across tags, builds, rpms and repos,
    /// which keeps test failures easy to read.
    pub fn new_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A repo id no repo has yet (tests add repos with ids of their own choosing).
    pub fn next_repo_id(&mut self) -> i64 {
        loop {
            let id = self.new_id();
            if !self.repos.contains_key(&id) {
                return id;
            }
        }
    }

    /// A tag named by id, name, or a struct with either (kojihub's `get_tag_id`).
    pub fn tag_by_ref(&self, value: &Value) -> Option<&FakeTag> {
        match value {
            Value::String(name) => self.tags.values().find(|t| &t.name == name),
            Value::Struct(members) => members
                .get("id")
                .and_then(as_int)
                .and_then(|id| self.tags.get(&id))
                .or_else(|| match members.get("name") {
                    Some(Value::String(name)) => self.tags.values().find(|t| &t.name == name),
                    _ => None,
                }),
            other => as_int(other).and_then(|id| self.tags.get(&id)),
        }
    }

    pub fn tag_or_fault(&self, value: Option<&Value>) -> Result<&FakeTag, HubFault> {
        value
            .and_then(|v| self.tag_by_ref(v))
            .ok_or_else(|| HubFault::generic(format!("No such tagInfo: {}", describe(value))))
    }

    /// `readFullInheritance`: parents breadth-first with their depth, no repeats.
    pub fn full_inheritance(&self, tag_id: i64) -> Vec<Json> {
        let mut out = Vec::new();
        let mut seen = vec![tag_id];
        let mut frontier = std::collections::VecDeque::from([(tag_id, 1)]);
        while let Some((child, depth)) = frontier.pop_front() {
            let Some(tag) = self.tags.get(&child) else {
                continue;
            };
            for (parent_id, priority) in &tag.parents {
                if seen.contains(parent_id) {
                    continue;
                }
                seen.push(*parent_id);
                let name = self
                    .tags
                    .get(parent_id)
                    .map_or(String::new(), |t| t.name.clone());
                out.push(json!({
                    "parent_id": parent_id, "name": name, "child_id": child,
                    "currdepth": depth, "nextdepth": null, "priority": priority,
                    "maxdepth": null, "intransitive": false, "noconfig": false,
                    "pkg_filter": "", "filter": [],
                }));
                frontier.push_back((*parent_id, depth + 1));
            }
        }
        out
    }

    /// The tag and its inherited parents, in inheritance order.
    pub fn tag_chain(&self, tag_id: i64) -> Vec<i64> {
        let mut chain = vec![tag_id];
        for entry in self.full_inheritance(tag_id) {
            if let Some(id) = entry["parent_id"].as_i64() {
                chain.push(id);
            }
        }
        chain
    }

    /// `getTag`'s answer: the tag's own arches (`None` when it has none) and extra.
    pub fn tag_value(&self, tag: &FakeTag) -> Json {
        let arches = if tag.arches.is_empty() {
            Json::Null
        } else {
            Json::String(tag.arches.join(" "))
        };
        json!({
            "id": tag.id, "name": tag.name, "arches": arches, "extra": tag.extra,
            "locked": false, "maven_support": false, "maven_include_all": false,
            "perm": null, "perm_id": null,
        })
    }

    /// kojihub's `get_build_config`: arches from the nearest tag that has them, extra merged
    /// with the child winning.
    pub fn build_config(&self, tag: &FakeTag) -> Json {
        let chain: Vec<&FakeTag> = self
            .tag_chain(tag.id)
            .iter()
            .filter_map(|id| self.tags.get(id))
            .collect();
        let arches = chain
            .iter()
            .find(|t| !t.arches.is_empty())
            .map(|t| t.arches.join(" "))
            .unwrap_or_default();
        let mut extra = Map::new();
        for link in chain.iter().rev() {
            for (key, value) in &link.extra {
                extra.insert(key.clone(), value.clone());
            }
        }
        json!({"id": tag.id, "name": tag.name, "arches": arches, "extra": extra,
               "locked": false, "perm": null, "perm_id": null,
               "maven_support": false, "maven_include_all": false})
    }

    /// `readPackageList` for one package: `Some(blocked)` from the nearest tag listing it.
    pub fn package_listing(&self, tag_id: i64, package: &str) -> Option<bool> {
        self.tag_chain(tag_id)
            .iter()
            .filter_map(|t| self.tags.get(t))
            .find_map(|t| t.packages.get(package).copied())
    }

    /// The packages blocked in a tag, with inheritance.
    pub fn blocked_packages(&self, tag_id: i64) -> Vec<String> {
        let mut decided: Vec<(String, bool)> = Vec::new();
        for link in self
            .tag_chain(tag_id)
            .iter()
            .filter_map(|t| self.tags.get(t))
        {
            for (package, blocked) in &link.packages {
                if !decided.iter().any(|(p, _)| p == package) {
                    decided.push((package.clone(), *blocked));
                }
            }
        }
        decided
            .into_iter()
            .filter(|(_, blocked)| *blocked)
            .map(|(p, _)| p)
            .collect()
    }

    pub fn build_value(&self, build: &FakeBuild) -> Json {
        json!({"id": build.id, "build_id": build.id, "name": build.name,
               "package_name": build.name, "version": build.version, "release": build.release,
               "epoch": build.epoch, "nvr": build.nvr(), "state": build.state,
               "task_id": build.task_id, "owner_id": build.owner, "extra": build.extra,
               "source": build.source, "draft": false})
    }

    pub fn build_by_value(&self, value: Option<&Value>) -> Option<&FakeBuild> {
        match value? {
            Value::String(nvr) => self.builds.values().find(|b| &b.nvr() == nvr),
            other => as_int(other).and_then(|id| self.builds.get(&id)),
        }
    }

    /// Build id → source package name, for the builds whose SRPM is known.
    pub fn source_names(&self) -> HashMap<i64, String> {
        self.rpms
            .values()
            .filter(|r| r.arch == "src")
            .map(|r| (r.build_id, r.name.clone()))
            .collect()
    }

    /// `readTaggedRPMS`: the RPMs of the builds tagged in a tag (with inheritance when asked),
    /// latest build per package name, without blocked packages.
    pub fn tagged_rpms(&self, tag_id: i64, inherit: bool, latest: bool) -> Vec<&FakeRpm> {
        let chain = if inherit {
            self.tag_chain(tag_id)
        } else {
            vec![tag_id]
        };
        let blocked = self.blocked_packages(tag_id);
        let sources = self.source_names();
        // Without a known SRPM the RPM's own name stands for the package: benchmarks import
        // the subpackages of one spec as builds of their own.
        let package_of = |rpm: &FakeRpm| {
            sources
                .get(&rpm.build_id)
                .cloned()
                .unwrap_or_else(|| rpm.name.clone())
        };
        let mut chosen: Vec<&FakeRpm> = Vec::new();
        // Package name → the tag it was first found in.
        let mut seen_packages: BTreeMap<String, i64> = BTreeMap::new();
        for id in &chain {
            let builds: BTreeSet<i64> = self
                .tagged
                .iter()
                .filter(|(t, _)| t == id)
                .map(|(_, b)| *b)
                .collect();
            for rpm in self.rpms.values().filter(|r| builds.contains(&r.build_id)) {
                let package = package_of(rpm);
                if blocked.contains(&package) {
                    continue;
                }
                match seen_packages.get(&package) {
                    // A package is taken from the first tag in the chain that has it, and with
                    // `latest` only its newest build there (highest build id, kept below).
                    Some(tag) if latest && tag != id => continue,
                    _ => {}
                }
                seen_packages.entry(package).or_insert(*id);
                chosen.push(rpm);
            }
            if latest {
                chosen.sort_by_key(|r| std::cmp::Reverse(r.build_id));
                let mut newest: BTreeMap<String, i64> = BTreeMap::new();
                for rpm in &chosen {
                    newest.entry(package_of(rpm)).or_insert(rpm.build_id);
                }
                chosen.retain(|r| newest.get(&package_of(r)) == Some(&r.build_id));
            }
        }
        chosen.sort_by_key(|r| r.id);
        chosen
    }

    /// Tags a build (the tag listing row), once; `event` is the tag's new last change event
    /// (none for the test helpers, which make no hub event).
    pub fn tag_build(&mut self, tag_id: i64, build_id: i64, event: Option<i64>) {
        if !self.tagged.contains(&(tag_id, build_id)) {
            self.tagged.push((tag_id, build_id));
        }
        if let (Some(tag), Some(event)) = (self.tags.get_mut(&tag_id), event) {
            tag.last_change_event = event;
        }
    }

    pub fn repo_value(&self, repo: &Repo) -> Json {
        json!({
            "id": repo.id, "state": repo.state, "tag_id": repo.tag_id, "tag_name": repo.tag_name,
            "create_event": repo.create_event, "create_ts": repo.create_ts,
            "creation_time": crate::state::format_ts(repo.create_ts),
            "begin_event": repo.create_event, "end_event": null,
            "task_id": repo.task_id, "task_state": null, "dist": repo.dist,
            "opts": if repo.opts.is_null() { json!({}) } else { repo.opts.clone() },
            "custom_opts": {},
        })
    }

    /// kojihub's `get_repo`: the newest repo of a tag in `state` (READY by default), plain or
    /// dist, made at or before `event` and at or after `min_event`.
    pub fn find_repo(
        &self,
        tag_id: i64,
        dist: bool,
        state: i64,
        event: Option<i64>,
        min_event: Option<i64>,
    ) -> Option<&Repo> {
        self.repos
            .values()
            .filter(|r| r.tag_id == tag_id && r.dist == dist && r.state == state)
            .filter(|r| event.is_none_or(|e| r.create_event <= e))
            .filter(|r| min_event.is_none_or(|e| r.create_event >= e))
            .max_by_key(|r| (r.create_event, r.id))
    }

    /// Stores an RPM file as kojihub does: the row, and the file at its `relpath` under
    /// `topdir`. The build is created (COMPLETE, named after its source package) when
    /// `build_id` names none yet; `build_name` overrides where the file goes (the build's own
    /// name for `completeBuild`). Returns the RPM id.
    pub fn store_rpm(
        &mut self,
        topdir: &Path,
        file: &Path,
        header: &RpmHeader,
        build_id: Option<i64>,
        build_name: Option<&str>,
    ) -> Result<i64, String> {
        let id = self.new_id();
        let build_id = build_id.unwrap_or_else(|| self.new_id());
        let rpm = FakeRpm {
            id,
            build_id,
            build_name: build_name.map_or_else(|| build_name_of(header), str::to_owned),
            name: header.name.clone(),
            version: header.version.clone(),
            release: header.release.clone(),
            epoch: header.epoch,
            arch: header.arch.clone(),
            size: header.size,
            payloadhash: header.payloadhash.clone(),
            sigs: Vec::new(),
            draft: false,
        };
        let relpath = rpm.relpath();
        let dest = topdir.join(&relpath);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::copy(file, &dest).map_err(|e| format!("copy to {}: {e}", dest.display()))?;
        let build = self.builds.entry(build_id).or_insert_with(|| FakeBuild {
            id: build_id,
            name: rpm.build_name.clone(),
            version: rpm.version.clone(),
            release: rpm.release.clone(),
            epoch: rpm.epoch,
            state: BUILD_COMPLETE,
            task_id: None,
            owner: 1,
            extra: Json::Null,
            source: None,
            files: Vec::new(),
            brmap: Json::Null,
            logs: Json::Null,
        });
        if !build.files.contains(&relpath) {
            build.files.push(relpath);
        }
        self.rpms.insert(id, rpm);
        Ok(id)
    }
}

/// Registers `getTag`, `getRepo`, `repoInfo`, `getExternalRepoList` and `getFullInheritance`
/// over the hub's world, once per hub whichever side asks first.
pub fn install_tag_methods(hub: &FakeHub, world: &Arc<Mutex<KojiWorld>>) {
    {
        let mut guard = lock(world);
        if guard.tag_methods_installed {
            return;
        }
        guard.tag_methods_installed = true;
    }
    let w = Arc::clone(world);
    hub.register_method(
        "getTag",
        &["taginfo", "strict", "event", "blocked"],
        1,
        false,
        move |_, _, args| {
            let world = lock(&w);
            match args.get("taginfo").and_then(|v| world.tag_by_ref(v)) {
                Some(tag) => Ok(to_value(&world.tag_value(tag))),
                None if args.flag("strict", false) => Err(HubFault::generic(format!(
                    "No such tagInfo: '{}'",
                    describe(args.get("taginfo"))
                ))),
                None => Ok(Value::Nil),
            }
        },
    );
    let w = Arc::clone(world);
    hub.register_method(
        "getRepo",
        &["tag", "state", "event", "dist", "min_event"],
        1,
        false,
        move |_, _, args| get_repo(&lock(&w), args),
    );
    let w = Arc::clone(world);
    hub.register_method(
        "repoInfo",
        &["repo_id", "strict"],
        1,
        false,
        move |_, _, args| {
            let world = lock(&w);
            let id = args.int("repo_id")?;
            match world.repos.get(&id) {
                Some(repo) => Ok(to_value(&world.repo_value(repo))),
                None if args.flag("strict", false) => {
                    Err(HubFault::generic(format!("Repo {id} not found")))
                }
                None => Ok(Value::Nil),
            }
        },
    );
    let w = Arc::clone(world);
    hub.register_method(
        "getFullInheritance",
        &["tag", "event", "reverse"],
        1,
        false,
        move |_, _, args| {
            let world = lock(&w);
            let tag = world.tag_or_fault(args.get("tag"))?;
            Ok(to_value(&Json::Array(world.full_inheritance(tag.id))))
        },
    );
    let w = Arc::clone(world);
    hub.register_method(
        "getExternalRepoList",
        &["tag_info", "event"],
        1,
        false,
        move |_, _, args| {
            let world = lock(&w);
            let tag = world.tag_or_fault(args.get("tag_info"))?;
            let mut list = Vec::new();
            for tag_id in world.tag_chain(tag.id) {
                let mut repos: Vec<&FakeExternalRepo> = world
                    .external_repos
                    .iter()
                    .filter(|r| r.tag_id == tag_id)
                    .collect();
                repos.sort_by_key(|r| r.priority);
                for repo in repos {
                    list.push(json!({
                        "external_repo_id": repo.id, "external_repo_name": repo.name,
                        "url": repo.url, "merge_mode": repo.merge_mode,
                        "arches": repo.arches, "priority": repo.priority,
                        "tag_id": tag.id, "tag_name": tag.name,
                    }));
                }
            }
            Ok(to_value(&Json::Array(list)))
        },
    );
}

fn get_repo(world: &KojiWorld, args: &BoundArgs) -> Result<Value, HubFault> {
    let tag = world.tag_or_fault(args.get("tag"))?;
    let repo = world.find_repo(
        tag.id,
        args.flag("dist", false),
        args.opt_int("state")?.unwrap_or(REPO_READY),
        args.opt_int("event")?,
        args.opt_int("min_event")?,
    );
    Ok(repo.map_or(Value::Nil, |r| to_value(&world.repo_value(r))))
}
