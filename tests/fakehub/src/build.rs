//! The build side of the fake hub, following kojihub: targets, tag build configs with
//! inheritance, package lists, repo requests, builds (`initBuild` → `completeBuild` /
//! `failBuild` / `moveBuildToScratch`), tagging with notifications, the three build policies,
//! the buildroot list rules of `setBuildRootList`, and a plain HTTP server for `topurl`.
//!
//! Install it with [`BuildSide::install`]; configure the world with its methods. The tag and
//! repo getters (`getTag`, `repoInfo`, `getRepo`, `getExternalRepoList`) are registered by
//! [`BuildSide::install_tag_methods`]; tests that also install the repo side use only one of
//! the two.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use dxr::Value;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::FakeHub;
use crate::faults::HubFault;
use crate::state::{HubState, Repo};

/// BUILD_STATES.
pub const BUILD_BUILDING: i64 = 0;
pub const BUILD_COMPLETE: i64 = 1;
pub const BUILD_FAILED: i64 = 3;

#[derive(Debug, Clone, Default)]
pub struct FakeBuildTag {
    pub id: i64,
    pub name: String,
    pub arches: String,
    pub extra: BTreeMap<String, Json>,
    /// Inheritance parent (first link only; enough for the tests).
    pub parent: Option<i64>,
    /// package name → blocked.
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
    /// Files imported by completeBuild, relative to topdir.
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
pub struct RepoRequest {
    pub id: i64,
    pub tag_id: i64,
    pub min_event: Option<i64>,
    pub active: bool,
}

#[derive(Debug, Default)]
pub struct BuildWorld {
    pub tags: BTreeMap<i64, FakeBuildTag>,
    /// target name → (id, build tag, dest tag).
    pub targets: BTreeMap<String, (i64, i64, i64)>,
    pub builds: BTreeMap<i64, FakeBuild>,
    /// (tag, build) in tagging order.
    pub tagged: Vec<(i64, i64)>,
    pub denied_policies: BTreeSet<String>,
    /// Every `assertPolicy`/`checkPolicy` call: (policy, data).
    pub policy_checks: Vec<(String, Json)>,
    pub notifications: Vec<Json>,
    pub requests: BTreeMap<i64, RepoRequest>,
    pub average_durations: BTreeMap<String, f64>,
    pub scratch: Vec<(i64, Json)>,
    /// tag id → external repo structs.
    pub external_repos: BTreeMap<i64, Vec<Json>>,
    next_id: i64,
}

impl BuildWorld {
    fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn tag_by_value(&self, value: Option<&Value>) -> Option<&FakeBuildTag> {
        match value? {
            Value::Integer(id) => self.tags.get(&i64::from(*id)),
            Value::Long(id) => self.tags.get(id),
            Value::String(name) => self.tags.values().find(|t| &t.name == name),
            _ => None,
        }
    }

    fn tag_or_fault(&self, value: Option<&Value>) -> Result<&FakeBuildTag, HubFault> {
        self.tag_by_value(value)
            .ok_or_else(|| HubFault::generic(format!("No such tagInfo: {}", describe(value))))
    }

    /// kojihub's `get_build_config`: arches from the nearest tag that has them, extra merged
    /// with the child winning.
    fn build_config(&self, tag: &FakeBuildTag) -> Json {
        let mut chain = vec![tag];
        let mut current = tag;
        while let Some(parent) = current.parent.and_then(|p| self.tags.get(&p)) {
            chain.push(parent);
            current = parent;
        }
        let arches = chain
            .iter()
            .map(|t| t.arches.as_str())
            .find(|a| !a.is_empty())
            .unwrap_or("");
        let mut extra = serde_json::Map::new();
        for link in chain.iter().rev() {
            for (key, value) in &link.extra {
                extra.insert(key.clone(), value.clone());
            }
        }
        json!({"id": tag.id, "name": tag.name, "arches": arches, "extra": extra,
               "locked": false, "perm": null, "perm_id": null,
               "maven_support": false, "maven_include_all": false})
    }

    pub fn build_value(&self, build: &FakeBuild) -> Json {
        json!({"id": build.id, "build_id": build.id, "name": build.name,
               "package_name": build.name, "version": build.version, "release": build.release,
               "epoch": build.epoch, "nvr": build.nvr(), "state": build.state,
               "task_id": build.task_id, "owner_id": build.owner, "extra": build.extra,
               "source": build.source, "draft": false})
    }

    fn build_by_value(&self, value: Option<&Value>) -> Option<&FakeBuild> {
        match value? {
            Value::Integer(id) => self.builds.get(&i64::from(*id)),
            Value::Long(id) => self.builds.get(id),
            Value::String(nvr) => self.builds.values().find(|b| &b.nvr() == nvr),
            _ => None,
        }
    }

    fn tag_chain(&self, tag_id: i64) -> Vec<i64> {
        let mut chain = vec![tag_id];
        let mut current = tag_id;
        while let Some(parent) = self.tags.get(&current).and_then(|t| t.parent) {
            chain.push(parent);
            current = parent;
        }
        chain
    }
}

fn describe(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Integer(i)) => i.to_string(),
        Some(Value::Long(i)) => i.to_string(),
        _ => "None".to_owned(),
    }
}

/// JSON → XML-RPC (integers as int when they fit, like Python's marshaller).
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i)
                .map(Value::Integer)
                .unwrap_or(Value::Long(i)),
            None => Value::Double(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(map) => {
            Value::Struct(map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Integer(i) => json!(i),
        Value::Long(i) => json!(i),
        Value::Double(f) => json!(f),
        Value::String(s) => json!(s),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Struct(members) => Json::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        _ => Json::Null,
    }
}

fn lock(world: &Mutex<BuildWorld>) -> std::sync::MutexGuard<'_, BuildWorld> {
    match world.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A path below `base` from a work-relative path sent by a host (kojihub refuses `..`).
fn safe_join(base: &Path, relpath: &str) -> Result<PathBuf, HubFault> {
    let path = Path::new(relpath);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(HubFault::generic(format!("Invalid file path: {relpath}")));
    }
    Ok(base.join(path))
}

/// The NVRAs a repo knows, from its `rpmlist.jsonl` files (kojihub: the repo's rpm list).
fn repo_rpms(topdir: &Path, repo: &Repo) -> BTreeMap<String, Json> {
    let mut known = BTreeMap::new();
    let dir = topdir
        .join("repos")
        .join(&repo.tag_name)
        .join(repo.id.to_string());
    let Ok(arches) = std::fs::read_dir(&dir) else {
        return known;
    };
    for arch in arches.flatten() {
        let Ok(text) = std::fs::read_to_string(arch.path().join("rpmlist.jsonl")) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(rpm) = serde_json::from_str::<Json>(line) {
                let part = |k: &str| rpm[k].as_str().unwrap_or_default().to_owned();
                known.insert(
                    format!(
                        "{}-{}-{}.{}",
                        part("name"),
                        part("version"),
                        part("release"),
                        part("arch")
                    ),
                    rpm,
                );
            }
        }
    }
    known
}

/// Handle to the build side of a fake hub.
#[derive(Clone)]
pub struct BuildSide {
    pub world: Arc<Mutex<BuildWorld>>,
}

impl BuildSide {
    pub fn install(hub: &FakeHub) -> Self {
        let side = Self {
            world: Arc::new(Mutex::new(BuildWorld::default())),
        };
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getBuildTarget",
            &["info", "event", "strict"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                let name = describe(args.get("info"));
                match world.targets.get(&name) {
                    Some((id, build, dest)) => {
                        let tag_name = |t: &i64| world.tags.get(t).map(|t| t.name.clone());
                        Ok(to_value(&json!({"id": id, "name": name,
                            "build_tag": build, "build_tag_name": tag_name(build),
                            "dest_tag": dest, "dest_tag_name": tag_name(dest)})))
                    }
                    None if args.flag("strict", false) => {
                        Err(HubFault::generic(format!("No such build target: {name}")))
                    }
                    None => Ok(Value::Nil),
                }
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getBuildConfig",
            &["tag", "event"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?;
                Ok(to_value(&world.build_config(tag)))
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getPackageConfig",
            &["tag", "pkg", "event"],
            2,
            false,
            move |_, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?;
                let package = describe(args.get("pkg"));
                for tag_id in world.tag_chain(tag.id) {
                    let Some(link) = world.tags.get(&tag_id) else {
                        continue;
                    };
                    if let Some(blocked) = link.packages.get(&package) {
                        return Ok(to_value(&json!({"package_name": package, "tag_id": tag.id,
                            "tag_name": tag.name, "blocked": blocked, "owner_id": 1,
                            "extra_arches": link.extra_arches.get(&package)})));
                    }
                }
                Ok(Value::Nil)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getAverageBuildDuration",
            &["package", "age"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                Ok(world
                    .average_durations
                    .get(&describe(args.get("package")))
                    .map(|d| Value::Double(*d))
                    .unwrap_or(Value::Nil))
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "tagLastChangeEvent",
            &["tag"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?;
                Ok(to_value(&json!(tag.last_change_event)))
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "repo.request",
            &["tag", "at_event", "min_event", "opts", "priority", "force"],
            1,
            true,
            move |hub, _, args| {
                let mut world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?.clone();
                let min_event = args.opt_int("min_event")?;
                let ready = latest_repo(hub, tag.id)
                    .filter(|r| min_event.is_none_or(|m| r.create_event >= m));
                if let Some(repo) = ready {
                    return Ok(to_value(&json!({"repo": repo_json(&repo), "request": null,
                        "duplicate": false})));
                }
                let id = world.next();
                let request = RepoRequest {
                    id,
                    tag_id: tag.id,
                    min_event,
                    active: true,
                };
                world.requests.insert(id, request);
                Ok(to_value(&json!({"repo": null, "duplicate": false,
                    "request": {"id": id, "tag_id": tag.id, "min_event": min_event, "active": true}})))
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "repo.checkRequest",
            &["req_id"],
            1,
            false,
            move |hub, _, args| {
                let world = lock(&w);
                let id = args.int("req_id")?;
                let request = world
                    .requests
                    .get(&id)
                    .ok_or_else(|| HubFault::generic(format!("No such repo request: {id}")))?;
                let repo = latest_repo(hub, request.tag_id)
                    .filter(|r| request.min_event.is_none_or(|m| r.create_event >= m));
                Ok(to_value(&json!({"repo": repo.as_ref().map(repo_json),
                    "request": {"id": id, "tag_id": request.tag_id,
                                "min_event": request.min_event,
                                "active": request.active && repo.is_none()}})))
            },
        );
        for name in ["host.assertPolicy", "host.checkPolicy"] {
            let w = Arc::clone(&side.world);
            let asserting = name == "host.assertPolicy";
            hub.register_method(
                name,
                &["name", "data", "default", "strict"],
                2,
                false,
                move |hub, caller, args| {
                    hub.verify_host(caller)?;
                    let mut world = lock(&w);
                    let policy = args.string("name")?;
                    let data = args.get("data").map(to_json).unwrap_or(Json::Null);
                    world.policy_checks.push((policy.clone(), data));
                    let denied = world.denied_policies.contains(&policy);
                    if asserting && denied {
                        return Err(HubFault::not_allowed(format!(
                            "policy violation ({policy})"
                        )));
                    }
                    if asserting {
                        Ok(Value::Nil)
                    } else {
                        Ok(Value::Array(vec![
                            Value::Boolean(!denied),
                            Value::String(if denied {
                                "denied".into()
                            } else {
                                "allowed".into()
                            }),
                        ]))
                    }
                },
            );
        }
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.initBuild",
            &["data"],
            1,
            true,
            move |hub, caller, args| {
                let host_id = hub.verify_host(caller)?;
                let data = args.get("data").map(to_json).unwrap_or(Json::Null);
                let task_id = data["task_id"].as_i64();
                if let Some(task_id) = task_id {
                    hub.assert_task_host(task_id, host_id)?;
                }
                let mut world = lock(&w);
                let name = data["name"].as_str().unwrap_or_default().to_owned();
                let version = data["version"].as_str().unwrap_or_default().to_owned();
                let release = data["release"].as_str().unwrap_or_default().to_owned();
                let nvr = format!("{name}-{version}-{release}");
                if let Some(existing) = world.builds.values().find(|b| b.nvr() == nvr)
                    && existing.state != BUILD_FAILED
                {
                    return Err(HubFault::generic(format!(
                        "Build already exists (id={}, state={}): {}",
                        existing.id,
                        build_state_name(existing.state),
                        data
                    )));
                }
                let id = world.next();
                world.builds.insert(
                    id,
                    FakeBuild {
                        id,
                        name,
                        version,
                        release,
                        epoch: data["epoch"].as_i64(),
                        state: BUILD_BUILDING,
                        task_id,
                        owner: 1,
                        extra: data.get("extra").cloned().unwrap_or(Json::Null),
                        source: data["source"].as_str().map(str::to_owned),
                        files: Vec::new(),
                        brmap: Json::Null,
                        logs: Json::Null,
                    },
                );
                Ok(to_value(&json!(id)))
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.completeBuild",
            &["task_id", "build_id", "srpm", "rpms", "brmap", "logs"],
            5,
            true,
            move |hub, caller, args| {
                let host_id = hub.verify_host(caller)?;
                let task_id = args.int("task_id")?;
                hub.assert_task_host(task_id, host_id)?;
                let build_id = args.int("build_id")?;
                let srpm = args.string("srpm")?;
                let rpms: Vec<String> = args
                    .get("rpms")
                    .map(to_json)
                    .and_then(|j| serde_json::from_value(j).ok())
                    .unwrap_or_default();
                let mut world = lock(&w);
                let build = world
                    .builds
                    .get(&build_id)
                    .cloned()
                    .ok_or_else(|| HubFault::generic(format!("No such build: {build_id}")))?;
                if build.state != BUILD_BUILDING {
                    return Err(HubFault::generic(format!(
                        "Build {} is not BUILDING",
                        build.nvr()
                    )));
                }
                let mut files = Vec::new();
                for relpath in std::iter::once(&srpm).chain(rpms.iter()) {
                    let source = safe_join(&hub.topdir.join("work"), relpath)?;
                    let file = relpath.rsplit('/').next().unwrap_or_default();
                    let arch = rpm_arch(file);
                    let dest = format!(
                        "packages/{}/{}/{}/{arch}/{file}",
                        build.name, build.version, build.release
                    );
                    let target = hub.topdir.join(&dest);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| HubFault::generic(e.to_string()))?;
                    }
                    std::fs::copy(&source, &target)
                        .map_err(|e| HubFault::generic(format!("Missing upload {relpath}: {e}")))?;
                    files.push(dest);
                }
                if let Some(entry) = world.builds.get_mut(&build_id) {
                    entry.state = BUILD_COMPLETE;
                    entry.files = files;
                    entry.brmap = args.get("brmap").map(to_json).unwrap_or(Json::Null);
                    entry.logs = args.get("logs").map(to_json).unwrap_or(Json::Null);
                }
                let value = world.builds.get(&build_id).map(|b| world.build_value(b));
                Ok(to_value(&value.unwrap_or(Json::Null)))
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.failBuild",
            &["task_id", "build_id"],
            2,
            true,
            move |hub, caller, args| {
                let host_id = hub.verify_host(caller)?;
                let task_id = args.int("task_id")?;
                hub.assert_task_host(task_id, host_id)?;
                let build_id = args.int("build_id")?;
                let mut world = lock(&w);
                let build = world
                    .builds
                    .get_mut(&build_id)
                    .ok_or_else(|| HubFault::generic(format!("No such build: {build_id}")))?;
                if build.state != BUILD_BUILDING {
                    return Err(HubFault::generic(format!(
                        "Build {} is not BUILDING",
                        build.nvr()
                    )));
                }
                build.state = BUILD_FAILED;
                Ok(Value::Nil)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.moveBuildToScratch",
            &["task_id", "srpm", "rpms", "logs"],
            3,
            true,
            move |hub, caller, args| {
                let host_id = hub.verify_host(caller)?;
                let task_id = args.int("task_id")?;
                hub.assert_task_host(task_id, host_id)?;
                let srpm = args.string("srpm")?;
                let rpms: Vec<String> = args
                    .get("rpms")
                    .map(to_json)
                    .and_then(|j| serde_json::from_value(j).ok())
                    .unwrap_or_default();
                for relpath in std::iter::once(&srpm).chain(rpms.iter()) {
                    let source = safe_join(&hub.topdir.join("work"), relpath)?;
                    let file = relpath.rsplit('/').next().unwrap_or_default();
                    let target = hub
                        .topdir
                        .join(format!("scratch/kojiadmin/task_{task_id}/{file}"));
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| HubFault::generic(e.to_string()))?;
                    }
                    std::fs::copy(&source, &target)
                        .map_err(|e| HubFault::generic(format!("Missing upload {relpath}: {e}")))?;
                }
                lock(&w).scratch.push((
                    task_id,
                    json!({"srpm": srpm, "rpms": rpms,
                           "logs": args.get("logs").map(to_json)}),
                ));
                Ok(Value::Nil)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.tagBuild",
            &["task_id", "tag", "build", "force", "fromtag"],
            3,
            true,
            move |hub, caller, args| {
                let host_id = hub.verify_host(caller)?;
                let task_id = args.int("task_id")?;
                hub.assert_task_host(task_id, host_id)?;
                let mut world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?.clone();
                let build = world
                    .build_by_value(args.get("build"))
                    .cloned()
                    .ok_or_else(|| HubFault::generic("No such build".to_owned()))?;
                if build.state != BUILD_COMPLETE {
                    return Err(HubFault::new(
                        1003,
                        format!("build {} not complete: state {}", build.nvr(), build.state),
                    ));
                }
                let listed = world
                    .tag_chain(tag.id)
                    .iter()
                    .filter_map(|t| world.tags.get(t))
                    .find_map(|t| t.packages.get(&build.name).copied());
                match listed {
                    None => {
                        return Err(HubFault::new(
                            1003,
                            format!("package {} not in list for tag {}", build.name, tag.name),
                        ));
                    }
                    Some(true) => {
                        return Err(HubFault::new(
                            1003,
                            format!("package {} blocked in tag {}", build.name, tag.name),
                        ));
                    }
                    Some(false) => {}
                }
                if world.tagged.contains(&(tag.id, build.id)) {
                    return Err(HubFault::new(
                        1003,
                        format!("build {} already tagged ({})", build.nvr(), tag.name),
                    ));
                }
                world.tagged.push((tag.id, build.id));
                let event = hub.next_event();
                if let Some(t) = world.tags.get_mut(&tag.id) {
                    t.last_change_event = event;
                }
                Ok(Value::Nil)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "host.tagNotification",
            &[
                "is_successful",
                "tag_id",
                "from_id",
                "build_id",
                "user_id",
                "ignore_success",
                "failure_msg",
            ],
            5,
            true,
            move |hub, caller, args| {
                hub.verify_host(caller)?;
                let keys = [
                    "is_successful",
                    "tag_id",
                    "from_id",
                    "build_id",
                    "user_id",
                    "ignore_success",
                    "failure_msg",
                ];
                let note: serde_json::Map<String, Json> = keys
                    .iter()
                    .map(|k| {
                        (
                            (*k).to_owned(),
                            args.raw(k).map(to_json).unwrap_or(Json::Null),
                        )
                    })
                    .collect();
                lock(&w).notifications.push(Json::Object(note));
                Ok(Value::Nil)
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "getBuild",
            &["buildInfo", "strict"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                match world.build_by_value(args.get("buildInfo")) {
                    Some(build) => Ok(to_value(&world.build_value(build))),
                    None if args.flag("strict", false) => Err(HubFault::generic(format!(
                        "No such build: {}",
                        describe(args.get("buildInfo"))
                    ))),
                    None => Ok(Value::Nil),
                }
            },
        );
        let w = Arc::clone(&side.world);
        hub.register_method(
            "listTagged",
            &[
                "tag", "event", "inherit", "prefix", "latest", "package", "owner", "type", "extra",
                "draft",
            ],
            1,
            false,
            move |hub, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?;
                let tags = if args.flag("inherit", false) {
                    world.tag_chain(tag.id)
                } else {
                    vec![tag.id]
                };
                let package = args.opt_string("package")?;
                // readTaggedBuilds also names the tag and the owner (`koji list-tagged`
                // prints both).
                let list: Vec<Json> = world
                    .tagged
                    .iter()
                    .filter(|(t, _)| tags.contains(t))
                    .filter_map(|(t, b)| world.builds.get(b).map(|b| (t, b)))
                    .filter(|(_, b)| package.as_ref().is_none_or(|p| &b.name == p))
                    .map(|(t, b)| {
                        let mut value = world.build_value(b);
                        value["tag_id"] = json!(t);
                        value["tag_name"] = json!(world.tags.get(t).map(|t| t.name.clone()));
                        value["owner_name"] =
                            json!(hub.users.get(&b.owner).map(|u| u.name.clone()));
                        value
                    })
                    .collect();
                Ok(to_value(&Json::Array(list)))
            },
        );
        // kojihub's rules for the installed-package list: set only in INIT; every rpm must be
        // known (in the repo's rpm list) or attributed to an external repo.
        for (name, update) in [
            ("host.setBuildRootList", false),
            ("host.updateBuildRootList", true),
        ] {
            hub.register_method(
                name,
                &["brootid", "rpmlist", "task_id"],
                2,
                true,
                move |hub, caller, args| {
                    let host_id = hub.verify_host(caller)?;
                    let br_id = args.int("brootid")?;
                    if !update
                        && hub
                            .buildroots
                            .get(&br_id)
                            .is_some_and(|br| br.state != crate::state::BuildrootState::Init)
                    {
                        return Err(HubFault::generic(format!(
                            "buildroot {br_id} is not in init state"
                        )));
                    }
                    let list = args.get("rpmlist").map(to_json).unwrap_or(Json::Null);
                    let Some(items) = list.as_array() else {
                        return Err(HubFault::parameter("rpmlist must be a list"));
                    };
                    let repo = hub
                        .buildroots
                        .get(&br_id)
                        .and_then(|br| hub.repos.get(&br.repo_id))
                        .cloned();
                    let known = repo.map(|r| repo_rpms(&hub.topdir, &r)).unwrap_or_default();
                    for rpm in items {
                        if rpm.get("external_repo").is_some_and(|e| !e.is_null()) {
                            continue;
                        }
                        let part = |k: &str| rpm[k].as_str().unwrap_or_default().to_owned();
                        let nvra = format!(
                            "{}-{}-{}.{}",
                            part("name"),
                            part("version"),
                            part("release"),
                            part("arch")
                        );
                        let Some(entry) = known.get(&nvra) else {
                            return Err(HubFault::generic(format!("No such rpm: {nvra}")));
                        };
                        if entry["payloadhash"] != rpm["payloadhash"] {
                            return Err(HubFault::generic(format!(
                                "Payload hash mismatch for {nvra}"
                            )));
                        }
                    }
                    hub.set_buildroot_list(host_id, args, update)
                },
            );
        }
        side
    }

    /// `getTag`, `repoInfo`, `getRepo`, `getExternalRepoList` from this side's tags and the
    /// hub's repos.
    pub fn install_tag_methods(&self, hub: &FakeHub) {
        let w = Arc::clone(&self.world);
        hub.register_method(
            "getTag",
            &["taginfo", "strict", "event", "blocked"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                match world.tag_by_value(args.get("taginfo")) {
                    Some(tag) => {
                        let mut config = world.build_config(tag);
                        config["arches"] = json!(tag.arches);
                        Ok(to_value(&config))
                    }
                    None if args.flag("strict", false) => Err(HubFault::generic(format!(
                        "No such tagInfo: {}",
                        describe(args.get("taginfo"))
                    ))),
                    None => Ok(Value::Nil),
                }
            },
        );
        hub.register_method(
            "repoInfo",
            &["repo_id", "strict"],
            1,
            false,
            move |hub, _, args| {
                let id = args.int("repo_id")?;
                match hub.repos.get(&id) {
                    Some(repo) => Ok(to_value(&repo_json(repo))),
                    None if args.flag("strict", false) => {
                        Err(HubFault::generic(format!("Repo {id} not found")))
                    }
                    None => Ok(Value::Nil),
                }
            },
        );
        let w = Arc::clone(&self.world);
        hub.register_method(
            "getRepo",
            &["tag", "state", "event", "dist", "min_event"],
            1,
            false,
            move |hub, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?;
                Ok(latest_repo(hub, tag.id)
                    .map(|r| to_value(&repo_json(&r)))
                    .unwrap_or(Value::Nil))
            },
        );
        let w = Arc::clone(&self.world);
        hub.register_method(
            "getExternalRepoList",
            &["tag_info", "event"],
            1,
            false,
            move |_, _, args| {
                let world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag_info"))?;
                let list: Vec<Json> = world
                    .tag_chain(tag.id)
                    .iter()
                    .flat_map(|t| world.external_repos.get(t).cloned().unwrap_or_default())
                    .collect();
                Ok(to_value(&Json::Array(list)))
            },
        );
    }

    pub fn with_world<R>(&self, f: impl FnOnce(&mut BuildWorld) -> R) -> R {
        f(&mut lock(&self.world))
    }

    /// Adds a tag; returns its id.
    pub fn add_tag(&self, name: &str, arches: &str, parent: Option<i64>) -> i64 {
        self.with_world(|w| {
            let id = w.next();
            w.tags.insert(
                id,
                FakeBuildTag {
                    id,
                    name: name.to_owned(),
                    arches: arches.to_owned(),
                    parent,
                    ..FakeBuildTag::default()
                },
            );
            id
        })
    }

    pub fn add_target(&self, name: &str, build_tag: i64, dest_tag: i64) {
        self.with_world(|w| {
            let id = w.next();
            w.targets.insert(name.to_owned(), (id, build_tag, dest_tag));
        });
    }

    pub fn add_package(&self, tag: i64, package: &str, blocked: bool) {
        self.with_world(|w| {
            if let Some(t) = w.tags.get_mut(&tag) {
                t.packages.insert(package.to_owned(), blocked);
            }
        });
    }
}

fn latest_repo(hub: &HubState, tag_id: i64) -> Option<Repo> {
    hub.repos
        .values()
        .filter(|r| r.tag_id == tag_id && r.state == 1)
        .max_by_key(|r| r.create_event)
        .cloned()
}

fn repo_json(repo: &Repo) -> Json {
    json!({"id": repo.id, "tag_id": repo.tag_id, "tag_name": repo.tag_name,
           "state": repo.state, "create_event": repo.create_event, "create_ts": repo.create_ts,
           "dist": false, "opts": {}, "custom_opts": {}, "task_id": null,
           "begin_event": null, "end_event": null})
}

fn build_state_name(state: i64) -> &'static str {
    match state {
        0 => "BUILDING",
        1 => "COMPLETE",
        2 => "DELETED",
        3 => "FAILED",
        4 => "CANCELED",
        _ => "UNKNOWN",
    }
}

/// `name-version-release.ARCH.rpm` → ARCH (`src` for SRPMs).
fn rpm_arch(file: &str) -> String {
    file.trim_end_matches(".rpm")
        .rsplit('.')
        .next()
        .unwrap_or("noarch")
        .to_owned()
}

/// A read-only HTTP/1.1 file server for `topurl` on 127.0.0.1: `GET /<relpath>` answers the
/// file under `root`, 404 when missing, 400 for paths leaving it.
pub async fn serve_topurl(
    root: PathBuf,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let root = root.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buffer).into_owned();
                let path = head
                    .lines()
                    .next()
                    .and_then(|line| line.split_whitespace().nth(1))
                    .unwrap_or("/")
                    .to_owned();
                let decoded = percent_encoding::percent_decode_str(&path)
                    .decode_utf8_lossy()
                    .into_owned();
                let relpath = decoded.trim_start_matches('/');
                let (status, body) = match safe_join(&root, relpath) {
                    Err(_) => ("400 Bad Request", Vec::new()),
                    Ok(file) => match std::fs::read(&file) {
                        Ok(body) if file.is_file() => ("200 OK", body),
                        _ => ("404 Not Found", Vec::new()),
                    },
                };
                let header = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(header.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((addr, handle))
}
