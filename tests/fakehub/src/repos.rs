//! The repo side of the fake hub: tags with arches, inheritance, groups, blocked packages,
//! tagged RPMs with signatures, external repos, and the repo records and on-disk layout that
//! kojihub's `repo_init` / `repo_done` / `dist_repo_init` / `distRepoMove` produce
//! (`kojihub/repos.py`).
//!
//! It is installed on a running [`FakeHub`] with [`RepoSide::install`], which registers its
//! methods as custom methods, so nothing in the built-in dispatch table changes:
//! `getTag`, `getRepo`, `repoInfo`, `getFullInheritance`, `getExternalRepoList`,
//! `listTaggedRPMS`, `host.repoInit`, `host.repoDone`, `host.distRepoMove`,
//! `host.writeSignedRPM`. Tests fill the world through [`RepoSide`]'s helpers, importing real
//! RPM files into `<topdir>/packages/<n>/<v>/<r>/<arch>/` as kojihub stores them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use dxr::Value;
use serde_json::{Map, Value as Json, json};

use crate::FakeHub;
use crate::args::BoundArgs;
use crate::faults::HubFault;
use crate::state::{HubState, Repo};
use crate::xmlrpc::{as_int, truthy, vint};

/// Repo states (`koji.REPO_STATES`).
pub const REPO_INIT: i64 = 0;
pub const REPO_READY: i64 = 1;
pub const REPO_EXPIRED: i64 = 2;

#[derive(Debug, Clone)]
pub struct FakeTag {
    pub id: i64,
    pub name: String,
    pub arches: Vec<String>,
    pub extra: Map<String, Json>,
    /// `(parent tag id, priority)`, in priority order.
    pub parents: Vec<(i64, i64)>,
    /// Group name → package names (all mandatory).
    pub groups: BTreeMap<String, Vec<String>>,
    pub blocked: Vec<String>,
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
    pub tags: Vec<i64>,
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

    fn info(&self, tag: Option<&FakeTag>) -> Json {
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
pub struct FakeRepoRecord {
    pub id: i64,
    pub tag_id: i64,
    pub tag_name: String,
    pub state: i64,
    pub create_event: i64,
    pub create_ts: f64,
    pub task_id: Option<i64>,
    pub dist: bool,
    pub opts: Json,
}

/// Everything the repo side knows.
#[derive(Debug, Default)]
pub struct RepoWorld {
    pub tags: BTreeMap<i64, FakeTag>,
    pub rpms: BTreeMap<i64, FakeRpm>,
    pub external_repos: Vec<FakeExternalRepo>,
    pub repos: BTreeMap<i64, FakeRepoRecord>,
    /// `(rpm id, key)` of every `host.writeSignedRPM` call.
    pub signed_writes: Vec<(i64, String)>,
    next_id: i64,
}

impl RepoWorld {
    fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

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

    fn tag_or_fault(&self, value: Option<&Value>) -> Result<&FakeTag, HubFault> {
        value
            .and_then(|v| self.tag_by_ref(v))
            .ok_or_else(|| HubFault::generic(format!("No such tagInfo: {}", describe(value))))
    }

    /// `readFullInheritance`: parents breadth-first with their depth, no repeats.
    pub fn full_inheritance(&self, tag_id: i64) -> Vec<Json> {
        let mut out = Vec::new();
        let mut seen = vec![tag_id];
        let mut frontier = vec![(tag_id, 1)];
        while let Some((child, depth)) = frontier.first().copied() {
            frontier.remove(0);
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
                frontier.push((*parent_id, depth + 1));
            }
        }
        out
    }

    /// The tag and its inherited parents, in inheritance order.
    fn tag_chain(&self, tag_id: i64) -> Vec<i64> {
        let mut chain = vec![tag_id];
        for entry in self.full_inheritance(tag_id) {
            if let Some(id) = entry["parent_id"].as_i64() {
                chain.push(id);
            }
        }
        chain
    }

    /// Tagged RPMs of a tag (with inheritance when asked), latest build per package name.
    pub fn tagged_rpms(&self, tag_id: i64, inherit: bool, latest: bool) -> Vec<&FakeRpm> {
        let chain = if inherit {
            self.tag_chain(tag_id)
        } else {
            vec![tag_id]
        };
        let blocked: Vec<&String> = chain
            .iter()
            .filter_map(|id| self.tags.get(id))
            .flat_map(|t| t.blocked.iter())
            .collect();
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
            for rpm in self.rpms.values().filter(|r| r.tags.contains(id)) {
                let package = package_of(rpm);
                if blocked.contains(&&package) {
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

    /// Build id → source package name, for the builds whose SRPM is known.
    fn source_names(&self) -> std::collections::HashMap<i64, String> {
        self.rpms
            .values()
            .filter(|r| r.arch == "src")
            .map(|r| (r.build_id, r.name.clone()))
            .collect()
    }

    fn repo_value(&self, repo: &FakeRepoRecord) -> Json {
        json!({
            "id": repo.id, "state": repo.state, "tag_id": repo.tag_id, "tag_name": repo.tag_name,
            "create_event": repo.create_event, "create_ts": repo.create_ts,
            "creation_time": crate::state::format_ts(repo.create_ts),
            "begin_event": repo.create_event, "end_event": null,
            "task_id": repo.task_id, "task_state": null, "dist": repo.dist,
            "opts": repo.opts, "custom_opts": {},
        })
    }
}

/// The name of the build an RPM belongs to, from its `SOURCERPM` header
/// (`<name>-<version>-<release>.src.rpm`), as kojihub names builds after their source package.
fn build_name(name: &str, is_source: bool, sourcerpm: &str) -> String {
    if is_source {
        return name.to_owned();
    }
    sourcerpm
        .strip_suffix(".src.rpm")
        .and_then(|nvr| nvr.rsplitn(3, '-').nth(2))
        .filter(|n| !n.is_empty())
        .unwrap_or(name)
        .to_owned()
}

fn describe(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => as_int(other).map_or_else(|| format!("{other:?}"), |n| n.to_string()),
        None => "None".to_owned(),
    }
}

/// JSON → XML-RPC value the way kojihub's marshaller sends it.
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

/// `koji.canonArch`.
pub fn canon_arch(arch: &str) -> String {
    let a = arch;
    if a.len() == 4 && a.starts_with('i') && a.ends_with("86") || a == "athlon" {
        "i386".into()
    } else if a == "ia32e" {
        "x86_64".into()
    } else if a == "ppc64le" {
        a.into()
    } else if a.starts_with("ppc64") {
        "ppc64".into()
    } else if a.starts_with("sparc64") {
        "sparc64".into()
    } else if a.starts_with("sparc") {
        "sparc".into()
    } else if a.starts_with("alpha") {
        "alpha".into()
    } else if a.starts_with("arm") && a.contains('h') {
        "armhfp".into()
    } else if a.starts_with("arm") {
        "arm".into()
    } else {
        a.into()
    }
}

/// The comps.xml kojihub writes for a tag's groups (`koji.generate_comps`, simplified to
/// mandatory package requirements).
pub fn comps_xml(groups: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE comps PUBLIC \"-//Red Hat, Inc.//DTD Comps info//EN\" \"comps.dtd\">\n\n<!-- Auto-generated by the build system -->\n<comps>\n",
    );
    for (name, packages) in groups {
        out.push_str(&format!(
            "  <group>\n    <id>{name}</id>\n    <name>{name}</name>\n    <description>{name} group</description>\n    <default>false</default>\n    <uservisible>true</uservisible>\n    <packagelist>\n"
        ));
        for package in packages {
            out.push_str(&format!(
                "      <packagereq type=\"mandatory\">{package}</packagereq>\n"
            ));
        }
        out.push_str("    </packagelist>\n  </group>\n");
    }
    out.push_str("</comps>\n");
    out
}

/// The handle a test keeps to fill and inspect the repo side.
#[derive(Clone)]
pub struct RepoSide {
    pub world: Arc<Mutex<RepoWorld>>,
    topdir: PathBuf,
}

fn lock(world: &Mutex<RepoWorld>) -> std::sync::MutexGuard<'_, RepoWorld> {
    match world.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn io_fault(what: &str, path: &Path, error: std::io::Error) -> HubFault {
    HubFault::generic(format!("{what} {}: {error}", path.display()))
}

impl RepoSide {
    /// Registers the repo-side methods on `hub`.
    pub fn install(hub: &FakeHub) -> Self {
        let side = Self {
            world: Arc::new(Mutex::new(RepoWorld::default())),
            topdir: hub.topdir(),
        };
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getTag",
            &["taginfo", "strict", "event", "blocked"],
            1,
            false,
            move |_, _, args| get_tag(&lock(&w), args),
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getRepo",
            &["tag", "state", "event", "dist", "min_event"],
            1,
            false,
            move |_, _, args| get_repo(&lock(&w), args),
        );
        let w = Arc::clone(&side.world);
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
        let w = Arc::clone(&side.world);
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
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getExternalRepoList",
            &["tag_info", "event"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag_info"))?;
                let chain = world.tag_chain(tag.id);
                let mut list = Vec::new();
                for tag_id in chain {
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
        let w = Arc::clone(&side.world);
        hub.register_method(
            "listTaggedRPMS",
            &[
                "tag", "event", "inherit", "latest", "package", "arch", "rpmsigs", "owner", "type",
                "extra", "draft",
            ],
            1,
            false,
            move |_, _, args| list_tagged_rpms(&lock(&w), args),
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.repoInit",
            &["tag", "task_id", "event", "opts"],
            1,
            true,
            move |hub, caller, args| {
                let host_id = hub.verify_host(caller)?;
                if let Some(task_id) = args.opt_int("task_id")? {
                    hub.assert_task_host(task_id, host_id)?;
                }
                repo_init(&mut lock(&w), hub, args)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.repoDone",
            &["repo_id", "data", "expire", "repo_json_updates"],
            2,
            true,
            move |hub, caller, args| {
                hub.verify_host(caller)?;
                repo_done(&mut lock(&w), hub, args)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.distRepoMove",
            &["repo_id", "uploadpath", "arch"],
            3,
            true,
            move |hub, caller, args| {
                hub.verify_host(caller)?;
                dist_repo_move(&lock(&w), hub, args)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.writeSignedRPM",
            &["an_rpm", "sigkey", "force"],
            2,
            true,
            move |hub, caller, args| {
                hub.verify_host(caller)?;
                write_signed_rpm(&mut lock(&w), &hub.topdir, args)
            },
        );
        side
    }

    pub fn topdir(&self) -> &Path {
        &self.topdir
    }

    pub fn add_tag(&self, name: &str, arches: &[&str]) -> i64 {
        let mut world = lock(&self.world);
        let id = world.next();
        world.tags.insert(
            id,
            FakeTag {
                id,
                name: name.to_owned(),
                arches: arches.iter().map(|a| (*a).to_owned()).collect(),
                extra: Map::new(),
                parents: Vec::new(),
                groups: BTreeMap::new(),
                blocked: Vec::new(),
            },
        );
        id
    }

    pub fn with_tag(&self, tag_id: i64, change: impl FnOnce(&mut FakeTag)) {
        if let Some(tag) = lock(&self.world).tags.get_mut(&tag_id) {
            change(tag);
        }
    }

    pub fn add_external_repo(
        &self,
        tag_id: i64,
        name: &str,
        url: &str,
        merge_mode: &str,
        arches: Option<&str>,
    ) -> i64 {
        let mut world = lock(&self.world);
        let id = world.next();
        let priority = 5 * world
            .external_repos
            .iter()
            .filter(|r| r.tag_id == tag_id)
            .count() as i64
            + 5;
        world.external_repos.push(FakeExternalRepo {
            id,
            name: name.to_owned(),
            url: url.to_owned(),
            tag_id,
            merge_mode: merge_mode.to_owned(),
            arches: arches.map(str::to_owned),
            priority,
        });
        id
    }

    /// Imports a real RPM file as a build of its own (or into `build_id` when given), stored
    /// where kojihub keeps it, and tags it into `tag_id`. Reads the header with `rpm -qp`.
    pub fn import_rpm(
        &self,
        file: &Path,
        tag_id: i64,
        build_id: Option<i64>,
    ) -> Result<i64, String> {
        let output = Command::new("rpm")
            .args([
                "-qp",
                "--nosignature",
                "--nodigest",
                "--qf",
                "%{NAME}\\n%{VERSION}\\n%{RELEASE}\\n%{EPOCH}\\n%{ARCH}\\n%{SIZE}\\n%{SIGMD5}\\n%{SOURCEPACKAGE}\\n%{SOURCERPM}\\n",
            ])
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run rpm: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "rpm -qp {} failed: {}",
                file.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let fields: Vec<&str> = text.lines().collect();
        if fields.len() < 9 {
            return Err(format!("unexpected rpm -qp output: {text}"));
        }
        let is_source = fields[7] == "1";
        let mut world = lock(&self.world);
        let id = world.next();
        let build_id = build_id.unwrap_or_else(|| world.next());
        let rpm = FakeRpm {
            id,
            build_id,
            build_name: build_name(fields[0], is_source, fields[8]),
            name: fields[0].to_owned(),
            version: fields[1].to_owned(),
            release: fields[2].to_owned(),
            epoch: fields[3].parse().ok(),
            arch: if is_source {
                "src".to_owned()
            } else {
                fields[4].to_owned()
            },
            size: fields[5].parse().unwrap_or_default(),
            payloadhash: fields[6].to_owned(),
            sigs: Vec::new(),
            tags: vec![tag_id],
            draft: false,
        };
        let dest = self.topdir.join(rpm.relpath());
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(file, &dest).map_err(|e| format!("copy to {}: {e}", dest.display()))?;
        world.rpms.insert(id, rpm);
        Ok(id)
    }

    /// Imports many RPM files, each as its own build, reading their headers with a few `rpm -qp`
    /// runs instead of one per file (for benchmarks with thousands of packages).
    pub fn import_rpms(&self, files: &[PathBuf], tag_id: i64) -> Result<Vec<i64>, String> {
        let mut ids = Vec::with_capacity(files.len());
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
                .map_err(|e| format!("cannot run rpm: {e}"))?;
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
            let mut world = lock(&self.world);
            for (file, line) in batch.iter().zip(lines) {
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() < 9 {
                    return Err(format!("unexpected rpm -qp line: {line}"));
                }
                let id = world.next();
                let build_id = world.next();
                let rpm = FakeRpm {
                    id,
                    build_id,
                    build_name: build_name(f[0], f[7] == "1", f[8]),
                    name: f[0].to_owned(),
                    version: f[1].to_owned(),
                    release: f[2].to_owned(),
                    epoch: f[3].parse().ok(),
                    arch: if f[7] == "1" {
                        "src".to_owned()
                    } else {
                        f[4].to_owned()
                    },
                    size: f[5].parse().unwrap_or_default(),
                    payloadhash: f[6].to_owned(),
                    sigs: Vec::new(),
                    tags: vec![tag_id],
                    draft: false,
                };
                let dest = self.topdir.join(rpm.relpath());
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::copy(file, &dest)
                    .map_err(|e| format!("copy to {}: {e}", dest.display()))?;
                world.rpms.insert(id, rpm);
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Records a signature for `key`, and writes the signed copy from `signed_file` (or the
    /// unsigned file) when `write_copy` is set, as `koji import-sig` + `write-signed-rpm` would.
    pub fn add_signature(
        &self,
        rpm_id: i64,
        key: &str,
        signed_file: Option<&Path>,
        write_copy: bool,
    ) -> Result<PathBuf, String> {
        let mut world = lock(&self.world);
        let rpm = world
            .rpms
            .get_mut(&rpm_id)
            .ok_or_else(|| format!("no rpm {rpm_id}"))?;
        let key = key.to_lowercase();
        if !rpm.sigs.contains(&key) {
            rpm.sigs.push(key.clone());
        }
        let dest = self.topdir.join(rpm.signed_relpath(&key));
        if write_copy {
            let source =
                signed_file.map_or_else(|| self.topdir.join(rpm.relpath()), Path::to_owned);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::copy(&source, &dest).map_err(|e| e.to_string())?;
        }
        Ok(dest)
    }

    /// An imported RPM (its build id, to import the other arches into the same build).
    pub fn rpm(&self, rpm_id: i64) -> Option<FakeRpm> {
        lock(&self.world).rpms.get(&rpm_id).cloned()
    }

    pub fn repo(&self, repo_id: i64) -> Option<FakeRepoRecord> {
        lock(&self.world).repos.get(&repo_id).cloned()
    }

    /// A READY repo made without a task (what an earlier newRepo would have left).
    pub fn repo_dir(&self, repo_id: i64) -> Option<PathBuf> {
        let world = lock(&self.world);
        let repo = world.repos.get(&repo_id)?;
        let base = if repo.dist { "repos-dist" } else { "repos" };
        Some(
            self.topdir
                .join(base)
                .join(&repo.tag_name)
                .join(repo.id.to_string()),
        )
    }

    /// `dist_repo_init`: the INIT dist repo record and its per-arch dirs.
    pub fn dist_repo_init(
        &self,
        hub: &FakeHub,
        tag_id: i64,
        arches: &[&str],
        with_comps: bool,
    ) -> Result<(i64, i64), String> {
        let (event, ts) = hub.with_state(|s| (s.next_event(), s.now()));
        let mut world = lock(&self.world);
        let tag = world.tags.get(&tag_id).cloned().ok_or("no such tag")?;
        let id = world.next();
        let dir = self
            .topdir
            .join("repos-dist")
            .join(&tag.name)
            .join(id.to_string());
        for arch in arches {
            std::fs::create_dir_all(dir.join(canon_arch(arch))).map_err(|e| e.to_string())?;
        }
        if with_comps {
            std::fs::create_dir_all(dir.join("groups")).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("groups/comps.xml"), comps_xml(&tag.groups))
                .map_err(|e| e.to_string())?;
        }
        let repo_json =
            json!({"id": id, "tag": tag.name, "tag_id": tag.id, "event_id": event, "dist": true});
        std::fs::write(dir.join("repo.json"), repo_json.to_string()).map_err(|e| e.to_string())?;
        world.repos.insert(
            id,
            FakeRepoRecord {
                id,
                tag_id,
                tag_name: tag.name.clone(),
                state: REPO_INIT,
                create_event: event,
                create_ts: ts,
                task_id: None,
                dist: true,
                opts: json!({}),
            },
        );
        Ok((id, event))
    }
}

fn get_tag(world: &RepoWorld, args: &BoundArgs) -> Result<Value, HubFault> {
    let Some(tag) = args.get("taginfo").and_then(|v| world.tag_by_ref(v)) else {
        if args.flag("strict", false) {
            return Err(HubFault::generic(format!(
                "No such tagInfo: '{}'",
                describe(args.get("taginfo"))
            )));
        }
        return Ok(Value::Nil);
    };
    let arches = if tag.arches.is_empty() {
        Json::Null
    } else {
        Json::String(tag.arches.join(" "))
    };
    Ok(to_value(&json!({
        "id": tag.id, "name": tag.name, "arches": arches, "extra": tag.extra,
        "locked": false, "maven_support": false, "maven_include_all": false,
        "perm": null, "perm_id": null,
    })))
}

fn get_repo(world: &RepoWorld, args: &BoundArgs) -> Result<Value, HubFault> {
    let tag = world.tag_or_fault(args.get("tag"))?;
    let dist = args.flag("dist", false);
    let state = args.opt_int("state")?.unwrap_or(REPO_READY);
    let event = args.opt_int("event")?;
    let min_event = args.opt_int("min_event")?;
    let repo = world
        .repos
        .values()
        .filter(|r| r.tag_id == tag.id && r.dist == dist && r.state == state)
        .filter(|r| event.is_none_or(|e| r.create_event <= e))
        .filter(|r| min_event.is_none_or(|e| r.create_event >= e))
        .max_by_key(|r| (r.create_event, r.id));
    Ok(repo.map_or(Value::Nil, |r| to_value(&world.repo_value(r))))
}

fn list_tagged_rpms(world: &RepoWorld, args: &BoundArgs) -> Result<Value, HubFault> {
    let tag = world.tag_or_fault(args.get("tag"))?;
    let inherit = args.flag("inherit", false);
    let latest = args.flag("latest", false);
    let rpmsigs = args.flag("rpmsigs", false);
    let arches: Option<Vec<String>> = match args.get("arch") {
        None => None,
        Some(Value::String(a)) => Some(vec![a.clone()]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        Some(_) => return Err(HubFault::parameter("Invalid type for arch option")),
    };
    let mut rpms = Vec::new();
    let mut builds: BTreeMap<i64, Json> = BTreeMap::new();
    let sources = world.source_names();
    for rpm in world.tagged_rpms(tag.id, inherit, latest) {
        if arches.as_ref().is_some_and(|a| !a.contains(&rpm.arch)) {
            continue;
        }
        let info = rpm.info(Some(tag));
        if rpmsigs {
            // kojihub joins rpmsigs: one row per signature, one row with sigkey None when unsigned.
            if rpm.sigs.is_empty() {
                let mut row = info.clone();
                row["sigkey"] = Json::Null;
                rpms.push(row);
            }
            for key in &rpm.sigs {
                let mut row = info.clone();
                row["sigkey"] = json!(key);
                rpms.push(row);
            }
        } else {
            rpms.push(info);
        }
        builds.entry(rpm.build_id).or_insert_with(|| {
            let package = sources.get(&rpm.build_id).unwrap_or(&rpm.build_name);
            json!({"build_id": rpm.build_id, "id": rpm.build_id, "name": package,
                   "version": rpm.version, "release": rpm.release, "epoch": rpm.epoch,
                   "nvr": format!("{package}-{}-{}", rpm.version, rpm.release),
                   "draft": rpm.draft, "volume_name": "DEFAULT", "volume_id": 0,
                   "tag_id": tag.id, "tag_name": tag.name, "state": 1})
        });
    }
    Ok(to_value(&json!([
        rpms,
        builds.into_values().collect::<Vec<_>>()
    ])))
}

fn repo_opts(args: &BoundArgs) -> Json {
    let given = args.get("opts").map(to_json).unwrap_or(Json::Null);
    let flag = |name: &str| given.get(name).and_then(Json::as_bool).unwrap_or(false);
    json!({"src": flag("src"), "debuginfo": flag("debuginfo"),
           "separate_src": flag("separate_src"), "maven": flag("maven")})
}

/// `repo_init`: creates the record and writes the repo directory as kojihub does.
fn repo_init(
    world: &mut RepoWorld,
    hub: &mut HubState,
    args: &BoundArgs,
) -> Result<Value, HubFault> {
    let tag = world.tag_or_fault(args.get("tag"))?.clone();
    let opts = repo_opts(args);
    let with_src = opts["src"].as_bool().unwrap_or(false);
    let with_debuginfo = opts["debuginfo"].as_bool().unwrap_or(false);
    let with_separate_src = opts["separate_src"].as_bool().unwrap_or(false);
    let event = match args.opt_int("event")? {
        Some(event) => event,
        None => hub.next_event(),
    };
    let task_id = args.opt_int("task_id")?;
    let repo_id = world.next();
    let topdir = hub.topdir.clone();
    let repodir = topdir
        .join("repos")
        .join(&tag.name)
        .join(repo_id.to_string());
    std::fs::create_dir_all(repodir.join("groups")).map_err(|e| io_fault("mkdir", &repodir, e))?;
    // The tag's groups, inherited from parents that define them when the tag has none.
    let mut groups = tag.groups.clone();
    for parent in world.tag_chain(tag.id) {
        if let Some(parent) = world.tags.get(&parent) {
            for (name, packages) in &parent.groups {
                groups
                    .entry(name.clone())
                    .or_insert_with(|| packages.clone());
            }
        }
    }
    let comps = repodir.join("groups/comps.xml");
    std::fs::write(&comps, comps_xml(&groups)).map_err(|e| io_fault("write", &comps, e))?;
    let mut repo_arches: Vec<String> = Vec::new();
    for arch in &tag.arches {
        let canon = canon_arch(arch);
        if !repo_arches.contains(&canon) {
            repo_arches.push(canon);
        }
    }
    if with_separate_src || with_src {
        // Separate src repos get their own `src` arch dir; plain with_src folds src rpms in.
        if with_separate_src {
            repo_arches.push("src".to_owned());
        }
    }
    let blocked: Vec<String> = world
        .tag_chain(tag.id)
        .iter()
        .filter_map(|id| world.tags.get(id))
        .flat_map(|t| t.blocked.clone())
        .collect();
    let rpms: Vec<FakeRpm> = world
        .tagged_rpms(tag.id, true, true)
        .into_iter()
        .cloned()
        .collect();
    for arch in &repo_arches {
        let archdir = repodir.join(arch);
        std::fs::create_dir_all(&archdir).map_err(|e| io_fault("mkdir", &archdir, e))?;
        let mut pkglist = String::new();
        let mut rpmlist = String::new();
        for rpm in &rpms {
            let wanted = match rpm.arch.as_str() {
                "src" => arch == "src" || with_src,
                "noarch" => arch != "src",
                other => arch != "src" && canon_arch(other) == *arch,
            };
            let is_debug = rpm.name.ends_with("-debuginfo")
                || rpm.name.ends_with("-debugsource")
                || rpm.name.contains("-debuginfo-");
            if !wanted || (is_debug && !with_debuginfo) {
                continue;
            }
            pkglist.push_str(&format!("toplink/{}\n", rpm.relpath()));
            rpmlist.push_str(&rpm.info(Some(&tag)).to_string());
            rpmlist.push('\n');
        }
        let write = |name: &str, text: &str| {
            let path = archdir.join(name);
            std::fs::write(&path, text).map_err(|e| io_fault("write", &path, e))
        };
        write("pkglist", &pkglist)?;
        write("rpmlist.jsonl", &rpmlist)?;
        let mut blocklist = blocked.join("\n");
        if !blocklist.is_empty() {
            blocklist.push('\n');
        }
        write("blocklist", &blocklist)?;
        let toplink = archdir.join("toplink");
        let _ = std::fs::remove_file(&toplink);
        std::os::unix::fs::symlink("../../../..", &toplink)
            .map_err(|e| io_fault("symlink", &toplink, e))?;
    }
    let repo_json = json!({
        "id": repo_id, "tag": tag.name, "tag_id": tag.id, "task_id": task_id,
        "event_id": event, "with_src": with_src, "with_separate_src": with_separate_src,
        "with_debuginfo": with_debuginfo,
    });
    let json_path = repodir.join("repo.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&repo_json).unwrap_or_default(),
    )
    .map_err(|e| io_fault("write", &json_path, e))?;
    let now = hub.now();
    world.repos.insert(
        repo_id,
        FakeRepoRecord {
            id: repo_id,
            tag_id: tag.id,
            tag_name: tag.name.clone(),
            state: REPO_INIT,
            create_event: event,
            create_ts: now,
            task_id,
            dist: false,
            opts: opts.clone(),
        },
    );
    // The core tables see it too, so buildroots can reference it.
    hub.repos.insert(
        repo_id,
        Repo {
            id: repo_id,
            tag_id: tag.id,
            tag_name: tag.name.clone(),
            state: REPO_INIT,
            create_event: event,
            create_ts: now,
        },
    );
    Ok(Value::Array(vec![vint(repo_id), vint(event)]))
}

/// `repo_done`: moves the uploaded files into the repo and marks it READY.
fn repo_done(
    world: &mut RepoWorld,
    hub: &mut HubState,
    args: &BoundArgs,
) -> Result<Value, HubFault> {
    let repo_id = args.int("repo_id")?;
    let repo = world
        .repos
        .get(&repo_id)
        .cloned()
        .ok_or_else(|| HubFault::generic(format!("Repo {repo_id} not found")))?;
    if repo.state != REPO_INIT {
        return Err(HubFault::generic(format!(
            "Repo {repo_id} not in INIT state (got {})",
            repo.state
        )));
    }
    let base = if repo.dist { "repos-dist" } else { "repos" };
    let repodir = hub
        .topdir
        .join(base)
        .join(&repo.tag_name)
        .join(repo_id.to_string());
    let data = args.get("data").map(to_json).unwrap_or(Json::Null);
    let Some(data) = data.as_object() else {
        return Err(HubFault::parameter("data must be a dict"));
    };
    let workdir = hub.topdir.join("work");
    for (arch, entry) in data {
        let (Some(uploadpath), Some(files)) = (entry[0].as_str(), entry[1].as_array()) else {
            return Err(HubFault::generic(format!(
                "Invalid data for arch {arch}: {entry}"
            )));
        };
        let archdir = repodir.join(arch);
        if !archdir.is_dir() {
            return Err(HubFault::generic(format!(
                "Repo arch directory missing: {}",
                archdir.display()
            )));
        }
        let datadir = archdir.join("repodata");
        std::fs::create_dir_all(&datadir).map_err(|e| io_fault("mkdir", &datadir, e))?;
        for file in files {
            let Some(name) = file.as_str() else { continue };
            if name.contains('/') || name.starts_with('.') {
                return Err(HubFault::generic(format!("Invalid file name: {name}")));
            }
            let src = workdir.join(uploadpath).join(name);
            if !src.is_file() {
                return Err(HubFault::generic(format!(
                    "File missing: {}",
                    src.display()
                )));
            }
            let dst = if name.ends_with("pkglist") {
                archdir.join(name)
            } else {
                datadir.join(name)
            };
            std::fs::rename(&src, &dst).map_err(|e| io_fault("move", &src, e))?;
        }
    }
    if let Some(updates) = args.get("repo_json_updates").map(to_json)
        && let Some(updates) = updates.as_object()
    {
        let path = repodir.join("repo.json");
        let mut current: Json = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({}));
        if let Some(map) = current.as_object_mut() {
            for (k, v) in updates {
                map.insert(k.clone(), v.clone());
            }
        }
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&current).unwrap_or_default(),
        )
        .map_err(|e| io_fault("write", &path, e))?;
    }
    let expire = args.flag("expire", false);
    let state = if expire { REPO_EXPIRED } else { REPO_READY };
    if let Some(record) = world.repos.get_mut(&repo_id) {
        record.state = state;
    }
    if let Some(record) = hub.repos.get_mut(&repo_id) {
        record.state = state;
    }
    if !expire {
        let latest = hub.topdir.join(base).join(&repo.tag_name).join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(repo_id.to_string(), &latest);
    }
    Ok(Value::Nil)
}

/// `distRepoMove`: files from the task's upload dir into `repos-dist/<tag>/<id>/<arch>/`,
/// following `repo_manifest`; `kojipkgs` names where each RPM comes from, and the RPMs are
/// linked in from the topdir (the signed copy when the entry has a sigkey).
fn dist_repo_move(world: &RepoWorld, hub: &HubState, args: &BoundArgs) -> Result<Value, HubFault> {
    let repo_id = args.int("repo_id")?;
    let uploadpath = args.string("uploadpath")?;
    let arch = args.string("arch")?;
    let repo = world
        .repos
        .get(&repo_id)
        .filter(|r| r.dist)
        .ok_or_else(|| HubFault::generic(format!("No such dist repo: {repo_id}")))?;
    if repo.state != REPO_INIT {
        return Err(HubFault::generic(format!(
            "Repo {repo_id} not in INIT state"
        )));
    }
    let workdir = hub.topdir.join("work").join(&uploadpath);
    let archdir = hub
        .topdir
        .join("repos-dist")
        .join(&repo.tag_name)
        .join(repo_id.to_string())
        .join(&arch);
    let manifest_path = workdir.join("repo_manifest");
    let manifest: Vec<String> = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            HubFault::generic(format!("Missing or bad repo_manifest in {uploadpath}"))
        })?;
    for relpath in &manifest {
        if relpath.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(HubFault::generic(format!(
                "Invalid path in manifest: {relpath}"
            )));
        }
        let src = workdir.join(relpath);
        let dst = archdir.join(relpath);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_fault("mkdir", parent, e))?;
        }
        std::fs::rename(&src, &dst).map_err(|e| io_fault("move", &src, e))?;
    }
    let kojipkgs_path = archdir.join("kojipkgs");
    let kojipkgs: Map<String, Json> = std::fs::read_to_string(&kojipkgs_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    for (basename, info) in &kojipkgs {
        let Some(rpm) = info["id"].as_i64().and_then(|id| world.rpms.get(&id)) else {
            return Err(HubFault::generic(format!(
                "Unknown rpm in kojipkgs: {basename}"
            )));
        };
        let source = match info["sigkey"].as_str().filter(|k| !k.is_empty()) {
            Some(key) => hub.topdir.join(rpm.signed_relpath(key)),
            None => hub.topdir.join(rpm.relpath()),
        };
        if !source.is_file() {
            return Err(HubFault::generic(format!(
                "Missing rpm file: {}",
                source.display()
            )));
        }
        let letter = basename
            .chars()
            .next()
            .map(|c| c.to_ascii_lowercase())
            .unwrap_or('_');
        let dst = archdir
            .join("Packages")
            .join(letter.to_string())
            .join(basename);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_fault("mkdir", parent, e))?;
        }
        let _ = std::fs::remove_file(&dst);
        std::fs::hard_link(&source, &dst)
            .or_else(|_| std::fs::copy(&source, &dst).map(|_| ()))
            .map_err(|e| io_fault("link", &dst, e))?;
    }
    Ok(Value::Nil)
}

fn write_signed_rpm(
    world: &mut RepoWorld,
    topdir: &Path,
    args: &BoundArgs,
) -> Result<Value, HubFault> {
    let rpm_id = match args.get("an_rpm") {
        Some(v) => as_int(v).ok_or_else(|| HubFault::generic("an_rpm must be an rpm id"))?,
        None => return Err(HubFault::parameter("an_rpm is required")),
    };
    let key = args.string("sigkey")?.to_lowercase();
    let rpm = world
        .rpms
        .get(&rpm_id)
        .cloned()
        .ok_or_else(|| HubFault::generic(format!("No such rpm: {rpm_id}")))?;
    if !rpm.sigs.contains(&key) {
        return Err(HubFault::generic(format!(
            "No cached signature for package {}, key {key}",
            rpm.nvra()
        )));
    }
    let dest = topdir.join(rpm.signed_relpath(&key));
    if !dest.is_file() || truthy(args.raw("force").unwrap_or(&Value::Nil)) {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_fault("mkdir", parent, e))?;
        }
        std::fs::copy(topdir.join(rpm.relpath()), &dest)
            .map_err(|e| io_fault("write", &dest, e))?;
    }
    world.signed_writes.push((rpm_id, key));
    Ok(Value::Nil)
}
