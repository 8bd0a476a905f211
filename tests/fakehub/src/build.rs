//! The build side of the fake hub, following kojihub: targets, tag build configs with
//! inheritance, package lists, repo requests, builds (`initBuild` → `completeBuild` /
//! `failBuild` / `moveBuildToScratch`), tagging with notifications, the three build policies,
//! the buildroot list rules of `setBuildRootList`, and a plain HTTP server for `topurl`.
//!
//! Install it with [`BuildSide::install`]; configure the world with its methods. Its tables
//! are the hub's one [`KojiWorld`](crate::world::KojiWorld), shared with the repo side: the
//! RPMs `host.completeBuild` imports and the builds `host.tagBuild` tags are what
//! `listTaggedRPMS` and `host.repoInit` read. The tag and repo getters (`getTag`, `getRepo`,
//! `repoInfo`, `getExternalRepoList`, `getFullInheritance`) come from
//! [`crate::world::install_tag_methods`], registered once whichever side is installed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use dxr::Value;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::FakeHub;
use crate::faults::HubFault;
use crate::state::Repo;
use crate::world::{REPO_READY, describe, lock, read_rpm_headers};

pub use crate::world::{
    BUILD_BUILDING, BUILD_COMPLETE, BUILD_FAILED, FakeBuild, FakeTag as FakeBuildTag,
    KojiWorld as BuildWorld, RepoRequest, to_json, to_value,
};

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
        let side = Self { world: hub.world() };
        crate::world::install_tag_methods(hub, &side.world);
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
            move |_, _, args| {
                let mut world = lock(&w);
                let tag = world.tag_or_fault(args.get("tag"))?.clone();
                let min_event = args.opt_int("min_event")?;
                let ready = world.find_repo(tag.id, false, REPO_READY, None, min_event);
                if let Some(repo) = ready {
                    return Ok(to_value(&json!({"repo": world.repo_value(repo), "request": null,
                        "duplicate": false})));
                }
                let id = world.new_id();
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
            move |_, _, args| {
                let world = lock(&w);
                let id = args.int("req_id")?;
                let request = world
                    .requests
                    .get(&id)
                    .ok_or_else(|| HubFault::generic(format!("No such repo request: {id}")))?;
                let repo =
                    world.find_repo(request.tag_id, false, REPO_READY, None, request.min_event);
                Ok(to_value(&json!({"repo": repo.map(|r| world.repo_value(r)),
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
                let id = world.new_id();
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
                // kojihub's import_build: every file becomes an rpm row of the build, stored
                // at packages/<name>/<version>/<release>/<arch>/, where listTaggedRPMS and
                // repoInit find it once the build is tagged.
                let mut sources = Vec::new();
                for relpath in std::iter::once(&srpm).chain(rpms.iter()) {
                    let source = safe_join(&hub.topdir.join("work"), relpath)?;
                    if !source.is_file() {
                        return Err(HubFault::generic(format!("Missing upload {relpath}")));
                    }
                    sources.push(source);
                }
                let headers = read_rpm_headers(&sources).map_err(|e| {
                    HubFault::generic(format!("Cannot import build {}: {e}", build.nvr()))
                })?;
                let mut files = Vec::new();
                for (source, header) in sources.iter().zip(&headers) {
                    let rpm_id = world
                        .store_rpm(
                            &hub.topdir,
                            source,
                            header,
                            Some(build_id),
                            Some(&build.name),
                        )
                        .map_err(|e| {
                            HubFault::generic(format!("Cannot import build {}: {e}", build.nvr()))
                        })?;
                    if let Some(rpm) = world.rpms.get(&rpm_id) {
                        files.push(rpm.relpath());
                    }
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
                match world.package_listing(tag.id, &build.name) {
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
                let event = hub.next_event();
                world.tag_build(tag.id, build.id, Some(event));
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
                        .and_then(|br| lock(&hub.world).repos.get(&br.repo_id).cloned());
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

    pub fn with_world<R>(&self, f: impl FnOnce(&mut BuildWorld) -> R) -> R {
        f(&mut lock(&self.world))
    }

    /// Adds a tag; returns its id.
    pub fn add_tag(&self, name: &str, arches: &str, parent: Option<i64>) -> i64 {
        self.with_world(|w| {
            let id = w.new_id();
            w.tags.insert(
                id,
                FakeBuildTag {
                    id,
                    name: name.to_owned(),
                    arches: arches.split_whitespace().map(str::to_owned).collect(),
                    parents: parent.map(|p| vec![(p, 0)]).unwrap_or_default(),
                    ..FakeBuildTag::default()
                },
            );
            id
        })
    }

    /// Changes a tag (arches, extra, inheritance, groups, package list).
    pub fn with_tag(&self, tag_id: i64, change: impl FnOnce(&mut FakeBuildTag)) {
        self.with_world(|w| {
            if let Some(tag) = w.tags.get_mut(&tag_id) {
                change(tag);
            }
        });
    }

    pub fn add_target(&self, name: &str, build_tag: i64, dest_tag: i64) {
        self.with_world(|w| {
            let id = w.new_id();
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

/// `koji.BUILD_STATES` names.
pub(crate) fn build_state_name(state: i64) -> &'static str {
    match state {
        0 => "BUILDING",
        1 => "COMPLETE",
        2 => "DELETED",
        3 => "FAILED",
        4 => "CANCELED",
        _ => "UNKNOWN",
    }
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
