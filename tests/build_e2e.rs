//! End to end: the build pipeline (build → rebuildSRPM → buildArch → tagBuild) against the
//! fake hub's build side with real podman, the real builder image, real rpmbuild and a real
//! repo made with createrepo_c, served by the fake hub's topurl on 127.0.0.1.
//!
//! Needs root, podman, `localhost/koji-adjutant-builder:latest` (scripts/setup-dev.sh,
//! scripts/build-image.sh), rpmbuild and createrepo_c on the host. A small runner plays the
//! worker, so that failure paths can be driven handler by handler (the same builds through the
//! real daemon are in tests/daemon_e2e.rs): it opens each task, runs its handler in a
//! standalone context over a `TaskHub` on the real hub client (tests/support/client_task_hub.rs,
//! shared with the repo tests), runs the children the handler creates, and closes or fails the task.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use koji_adjutant::buildroot::BuildrootSettings;
use koji_adjutant::handlers::hubfiles::HubFiles;
use koji_adjutant::handlers::register::register_build_handlers;
use koji_adjutant::handlers::services::{
    BuildServices, BuildSettings, ContainerEngine, FixedFiles,
};
use koji_adjutant::hub::client::HubClient;
use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::podman::{PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{HandlerRegistry, TaskRequest};
use koji_adjutant_actors::hub::TaskHub;
use koji_adjutant_actors::runtime::ContainerRuntime;
use koji_adjutant_actors::testing::standalone_context;
use koji_fakehub::build::{BUILD_COMPLETE, BUILD_FAILED, BuildSide, serve_topurl};
use koji_fakehub::state::Repo;
use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, NewTask, Value};
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

#[path = "support/client_task_hub.rs"]
mod client_task_hub;
use client_task_hub::ClientTaskHub;

#[path = "support/srpm.rs"]
mod srpm;

#[path = "support/stub_repo.rs"]
mod stub_repo;
use srpm::{build_srpm, build_srpm_from};
use stub_repo::{make_repo_by_hand as make_repo, open_up, sha256};

const IMAGE: &str = "localhost/koji-adjutant-builder:latest";

struct World {
    hub: FakeHub,
    side: BuildSide,
    client: HubClient,
    host_id: i64,
    _workdir: tempfile::TempDir,
    _run_dir: tempfile::TempDir,
    runtime: Arc<dyn ContainerRuntime>,
    services: BuildServices,
    dest_tag: i64,
    /// What the PolicyCache answers for the task image.
    image: String,
    /// Cancels every running task, as the worker does when the hub cancelled them.
    cancel: CancellationToken,
}

impl World {
    async fn new() -> Self {
        let hub = FakeHub::start(FakeHubConfig {
            hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
            ..FakeHubConfig::default()
        })
        .await
        .unwrap();
        // Container names carry the task id: unique ids keep parallel test processes apart.
        static WORLDS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let nth = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 2_000_000 + i64::from(std::process::id() % 100_000) * 1000 + nth * 50;
        hub.with_state(|s| s.next_task_id = s.next_task_id.max(base));
        let topdir = hub.topdir();
        open_up(&topdir);
        let side = BuildSide::install(&hub);
        let build_tag = side.add_tag("dist-build", "x86_64", None);
        let dest_tag = side.add_tag("dist-dest", "", None);
        side.add_target("dist", build_tag, dest_tag);
        for package in ["hello-noarch", "hello-c", "fails-build", "needs-missing"] {
            side.add_package(dest_tag, package, false);
        }
        side.with_world(|w| {
            if let Some(tag) = w.tags.get_mut(&build_tag) {
                tag.extra.insert("rpm.macro.dist".into(), json!(".e2e"));
            }
        });
        make_repo(&topdir);
        let create_event = hub.with_state(|s| s.next_event());
        hub.add_repo(Repo {
            id: 1,
            tag_id: build_tag,
            tag_name: "dist-build".into(),
            state: 1,
            create_event,
            create_ts: 1.0,
            ..Default::default()
        });
        let (addr, _server) = serve_topurl(topdir.clone()).await.unwrap();
        let topurl = format!("http://{addr}");
        let client = HubClient::connect(
            HubOptions {
                server: hub.url(),
                user: Some("builder1.local".to_owned()),
                password: Some("builder".to_owned()),
                max_retries: 2,
                topurl: Some(topurl.clone()),
                ..HubOptions::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let host_id = client.host_get_id().await.unwrap();
        let workdir = tempfile::tempdir().unwrap();
        open_up(workdir.path());
        let run_dir = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(PodmanRuntime::new(PodmanOptions {
            run_dir: run_dir.path().to_owned(),
            kill_timeout: Duration::from_secs(10),
            ..PodmanOptions::default()
        }));
        let services = BuildServices {
            settings: BuildSettings {
                workdir: workdir.path().to_owned(),
                ..BuildSettings::default()
            },
            files: Arc::new(FixedFiles(Arc::new(HubFiles::new(client.clone())))),
            engine: Arc::new(ContainerEngine),
            buildroot: BuildrootSettings::default(),
            topurls: vec![topurl],
            topdir: None,
        };
        Self {
            hub,
            side,
            client,
            host_id,
            _workdir: workdir,
            _run_dir: run_dir,
            runtime,
            services,
            dest_tag,
            image: IMAGE.to_owned(),
            cancel: CancellationToken::new(),
        }
    }

    fn registry(&self) -> HandlerRegistry {
        let mut registry = HandlerRegistry::new();
        register_build_handlers(&mut registry, self.services.clone());
        registry
    }

    /// Puts `package`'s SRPM where `koji build` uploads it; returns its work-relative path.
    fn upload_srpm(&self, package: &str) -> String {
        let dir = self.hub.topdir().join("work/cli-build/1700000000.1.e2e");
        let srpm = build_srpm(package, &dir);
        self.uploaded(&srpm)
    }

    fn uploaded(&self, srpm: &Path) -> String {
        format!(
            "cli-build/1700000000.1.e2e/{}",
            srpm.file_name().unwrap().to_string_lossy()
        )
    }

    fn submit(&self, srpm: &str, opts: Json) -> i64 {
        let task = NewTask::new(
            "build",
            vec![
                Value::String(srpm.to_owned()),
                Value::String("dist".to_owned()),
                koji_fakehub::build::to_value(&opts),
            ],
        );
        self.hub.create_task(task).unwrap()
    }

    /// Opens `id` and runs it as the worker would, reporting the outcome to the hub. Children
    /// it creates are run too, and the parent is alerted when they end.
    async fn run(&self, id: i64) -> Result<Json, HandlerError> {
        Box::pin(self.run_inner(id)).await
    }

    async fn run_inner(&self, id: i64) -> Result<Json, HandlerError> {
        let opened = self.client.host_open_task(id).await.unwrap();
        assert!(opened.is_some(), "task {id} could not be opened");
        let hub: Arc<dyn TaskHub> = Arc::new(ClientTaskHub {
            client: self.client.clone(),
        });
        let info = hub.get_task_info(id, true).await.unwrap();
        let request = TaskRequest::decode(info.request.clone().unwrap_or_default());
        let factory = self.registry().get(&info.method).expect("a build method");
        let handler = factory.create(&request, &info);
        let (ctx, standalone) = standalone_context(
            info,
            request,
            self.host_id,
            Arc::clone(&hub),
            Arc::clone(&self.runtime),
            &self.image,
        );
        let containers = ctx.containers.clone();
        let task_cancel = standalone.cancel.clone();
        let world_cancel = self.cancel.clone();
        let forward = tokio::spawn(async move {
            world_cancel.cancelled().await;
            task_cancel.cancel();
        });
        let run = handler.run(ctx);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    let children: Vec<i64> = self
                        .hub
                        .tasks()
                        .into_iter()
                        .filter(|t| t.parent == Some(id) && t.state == koji_fakehub::TaskState::Free)
                        .map(|t| t.id)
                        .collect();
                    if !children.is_empty() {
                        for child in children {
                            let _ = Box::pin(self.run_inner(child)).await;
                        }
                        standalone.alert();
                    }
                }
            }
        };
        forward.abort();
        containers.remove_all().await;
        match &outcome {
            // A cancelled task is not reported: the hub cancelled it (the TaskActor's abort
            // wins over whatever the handler returned).
            _ if self.cancel.is_cancelled() => {}
            Err(HandlerError::Aborted(_)) => {}
            Ok(result) => hub.close_task(id, result).await.unwrap(),
            Err(HandlerError::Fault(fault)) => hub.fail_task(id, fault).await.unwrap(),
            Err(other) => hub
                .fail_task(id, &Fault::plain(other.to_string()))
                .await
                .unwrap(),
        }
        outcome
    }

    fn children(&self, parent: i64) -> Vec<koji_fakehub::Task> {
        self.hub
            .tasks()
            .into_iter()
            .filter(|t| t.parent == Some(parent))
            .collect()
    }
}

/// The hub-visible results of a successful build of `package`, scratch or not.
async fn build_and_check(package: &str, scratch: bool, arch: &str) {
    let world = World::new().await;
    let srpm = world.upload_srpm(package);
    let opts = if scratch {
        json!({"scratch": true})
    } else {
        json!({})
    };
    let parent = world.submit(&srpm, opts);
    let result = world.run(parent).await;
    assert_eq!(result.unwrap(), Json::Null, "build returns nil");

    // Task tree: rebuildSRPM (label srpm), buildArch (label = arch), tagBuild (label tag).
    let children = world.children(parent);
    let labels: Vec<(String, Option<String>)> = children
        .iter()
        .map(|t| (t.method.clone(), t.label.clone()))
        .collect();
    let mut expected = vec![
        ("rebuildSRPM".to_owned(), Some("srpm".to_owned())),
        ("buildArch".to_owned(), Some(arch.to_owned())),
    ];
    if !scratch {
        expected.push(("tagBuild".to_owned(), Some("tag".to_owned())));
    }
    assert_eq!(labels, expected);
    for task in world.hub.tasks() {
        assert_eq!(
            task.state,
            koji_fakehub::TaskState::Closed,
            "task {} {}",
            task.id,
            task.method
        );
    }
    let build_arch = children.iter().find(|t| t.method == "buildArch").unwrap();
    let result = world.hub.task_result(build_arch.id).unwrap();
    let result = koji_fakehub::build::to_json(&result);
    let dir = format!("tasks/{}/{}", build_arch.id % 10000, build_arch.id);
    let rpms: Vec<String> = serde_json::from_value(result["rpms"].clone()).unwrap();
    assert!(!rpms.is_empty());
    for rpm in rpms.iter().chain(
        result["srpms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            rpm.starts_with(&dir),
            "{rpm} is work-relative in the task dir"
        );
        assert!(
            rpm.contains(".e2e."),
            "%dist from the tag's rpm.macro.dist: {rpm}"
        );
    }
    assert_eq!(
        result["srpms"].as_array().unwrap().len(),
        1,
        "keep_srpm on the only arch"
    );
    let logs: Vec<String> = serde_json::from_value(result["logs"].clone()).unwrap();
    for name in ["build.log", "root.log", "state.log", "mock_output.log"] {
        assert!(
            logs.contains(&format!("{dir}/{name}")),
            "{name} in {logs:?}"
        );
    }
    let build_log = world
        .hub
        .task_output(build_arch.id, "build.log")
        .expect("build.log on the hub");
    assert!(!build_log.is_empty());
    // Buildroots: one per buildroot task, all EXPIRED, with the stub rpm reported by its
    // repo id.
    let buildroots = world.hub.buildroots();
    assert_eq!(buildroots.len(), 2);
    for br in &buildroots {
        assert_eq!(br.state, koji_fakehub::BuildrootState::Expired);
        let rpms = koji_fakehub::build::to_json(&Value::Array(br.rpms.clone()));
        assert!(
            rpms.as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "stub-build-tools" && r["id"] == 101),
            "{rpms}"
        );
    }
    world.side.with_world(|w| {
        let policies: Vec<&str> = w.policy_checks.iter().map(|(p, _)| p.as_str()).collect();
        if scratch {
            assert_eq!(policies, ["build_rpm"]);
            assert_eq!(w.scratch.len(), 1);
            assert!(w.builds.is_empty(), "scratch builds are not imported");
        } else {
            assert_eq!(policies, ["build_from_srpm", "build_rpm"]);
            let build = w.builds.values().next().unwrap();
            assert_eq!(build.state, BUILD_COMPLETE);
            assert_eq!(w.tagged, [(world.dest_tag, build.id)]);
            assert_eq!(w.notifications.len(), 1);
            assert_eq!(w.notifications[0]["is_successful"], json!(true));
            // The imported files are the uploaded ones, byte for byte.
            for file in &build.files {
                let name = file.rsplit('/').next().unwrap();
                let uploaded = std::fs::read(world.hub.topdir().join("work").join(&dir).join(name))
                    .or_else(|_| {
                        let srpm_task =
                            children.iter().find(|t| t.method == "rebuildSRPM").unwrap();
                        std::fs::read(world.hub.topdir().join(format!(
                            "work/tasks/{}/{}/{name}",
                            srpm_task.id % 10000,
                            srpm_task.id
                        )))
                    })
                    .unwrap();
                let imported = std::fs::read(world.hub.topdir().join(file)).unwrap();
                assert_eq!(sha256(&uploaded), sha256(&imported), "{file}");
            }
        }
    });
}

#[actix_rt::test]
async fn regular_build_of_the_noarch_srpm() {
    build_and_check("hello-noarch", false, "noarch").await;
}

#[actix_rt::test]
async fn scratch_build_of_the_noarch_srpm() {
    build_and_check("hello-noarch", true, "noarch").await;
}

#[actix_rt::test]
async fn regular_build_of_the_c_srpm() {
    build_and_check("hello-c", false, "x86_64").await;
}

#[actix_rt::test]
async fn scratch_build_of_the_c_srpm() {
    build_and_check("hello-c", true, "x86_64").await;
}

/// A build of `package` that must fail with `message`, everywhere kojid would show it: the
/// parent's fault, the failed child, the build FAILED (non-scratch), every buildroot EXPIRED,
/// logs on the hub, and no container left.
async fn build_fails(world: World, package: &str, opts: Json, message: &str) -> World {
    let srpm = world.upload_srpm(package);
    let parent = world.submit(&srpm, opts.clone());
    let Err(HandlerError::Fault(fault)) = world.run(parent).await else {
        panic!("the build of {package} did not fail");
    };
    assert_eq!(fault.message, message);
    let stored = world
        .hub
        .task(parent)
        .and_then(|t| t.result_xml)
        .unwrap_or_default();
    assert!(
        stored.contains(&message.replace('<', "&lt;")),
        "the parent's stored fault: {stored}"
    );
    for br in world.hub.buildroots() {
        assert_eq!(
            br.state,
            koji_fakehub::BuildrootState::Expired,
            "buildroot {}",
            br.id
        );
    }
    if opts.get("scratch").is_none() {
        world.side.with_world(|w| {
            for build in w.builds.values() {
                assert_eq!(build.state, BUILD_FAILED, "{}", build.nvr());
            }
            assert!(w.tagged.is_empty());
        });
    }
    let leftover = std::process::Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&leftover.stdout).into_owned();
    for task in world.hub.tasks() {
        assert!(
            !names.contains(&format!("-{}-", task.id)),
            "a container of task {} is left: {names}",
            task.id
        );
    }
    world
}

#[actix_rt::test]
async fn a_failing_build_section_fails_with_kojids_message_and_build_log_on_the_hub() {
    let world = build_fails(
        World::new().await,
        "fails-build",
        json!({}),
        "error building package (arch noarch), mock exited with status 1; see build.log or root.log for more information",
    )
    .await;
    let build_arch = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.method == "buildArch")
        .unwrap();
    assert_eq!(build_arch.state, koji_fakehub::TaskState::Failed);
    let log = world.hub.task_output(build_arch.id, "build.log").unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("FAILS-BUILD: deliberate failure"),
        "build.log on the hub has rpmbuild's output"
    );
}

#[actix_rt::test]
async fn a_missing_buildrequires_fails_in_root_log() {
    let world = build_fails(
        World::new().await,
        "needs-missing",
        json!({"scratch": true}),
        "error building package (arch noarch), mock exited with status 30; see root.log for more information",
    )
    .await;
    let build_arch = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.method == "buildArch")
        .unwrap();
    let log = world.hub.task_output(build_arch.id, "root.log").unwrap();
    assert!(String::from_utf8_lossy(&log).contains("koji-adjutant-no-such-package"));
}

#[actix_rt::test]
async fn a_missing_image_under_never_fails_the_buildroot_init() {
    let mut world = World::new().await;
    world.image = "localhost/koji-adjutant-no-such-image:latest".to_owned();
    world.services.buildroot.pull_policy = koji_adjutant_actors::runtime::PullPolicy::Never;
    let srpm = world.upload_srpm("hello-noarch");
    let parent = world.submit(&srpm, json!({"scratch": true}));
    let Err(HandlerError::Fault(fault)) = world.run(parent).await else {
        panic!("built without its image");
    };
    assert_eq!(fault.fault_code, 1012, "{fault:?}");
    assert!(
        fault.message.starts_with("could not init mock buildroot")
            && fault.message.contains("koji-adjutant-no-such-image"),
        "{}",
        fault.message
    );
    for br in world.hub.buildroots() {
        assert_eq!(br.state, koji_fakehub::BuildrootState::Expired);
    }
}

#[actix_rt::test]
async fn a_missing_repo_fails_before_any_subtask() {
    let world = World::new().await;
    let srpm = world.upload_srpm("hello-noarch");
    let parent = world.submit(&srpm, json!({"repo_id": 99}));
    let Err(HandlerError::Fault(fault)) = world.run(parent).await else {
        panic!()
    };
    assert_eq!(
        (fault.fault_code, fault.message.as_str()),
        (1005, "No such repo: 99")
    );
    assert!(world.children(parent).is_empty());
}

#[actix_rt::test]
async fn a_build_cancelled_mid_rpmbuild_loses_its_container_at_once() {
    let world = World::new().await;
    let sources = tempfile::tempdir().unwrap();
    std::fs::write(
        sources.path().join("sleeper.spec"),
        "Name: sleeper\nVersion: 1\nRelease: 1\nSummary: sleeps in %build\nLicense: MIT\n\
         BuildArch: noarch\n%description\nsleeps\n%prep\n%build\necho SLEEPING\nsleep 300\n%files\n",
    )
    .unwrap();
    world.side.add_package(world.dest_tag, "sleeper", false);
    let dir = world.hub.topdir().join("work/cli-build/1700000000.1.e2e");
    let srpm = build_srpm_from(sources.path(), "sleeper", &dir);
    let relpath = world.uploaded(&srpm);
    let parent = world.submit(&relpath, json!({"scratch": true}));
    let watcher = async {
        // Wait until buildArch's buildroot is BUILDING and rpmbuild has started.
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let building = world.hub.buildroots().iter().any(|br| {
                br.state == koji_fakehub::BuildrootState::Building
                    && world
                        .hub
                        .task(br.task_id.unwrap_or_default())
                        .is_some_and(|t| t.method == "buildArch")
            });
            if building {
                break;
            }
        }
        // Cancel once the live build.log on the hub shows rpmbuild running: live upload is
        // part of what this test proves, and a fixed delay raced it on a loaded machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let live_log = world
                .hub
                .tasks()
                .into_iter()
                .find(|t| t.method == "buildArch")
                .and_then(|t| world.hub.task_output(t.id, "build.log"))
                .unwrap_or_default();
            if String::from_utf8_lossy(&live_log).contains("SLEEPING") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "build.log never reached the hub while rpmbuild ran"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        world.hub.cancel_task(parent).unwrap();
        world.cancel.cancel();
        std::time::Instant::now()
    };
    let (outcome, cancelled_at) = tokio::time::timeout(Duration::from_secs(240), async {
        tokio::join!(world.run(parent), watcher)
    })
    .await
    .expect("the cancelled build ended");
    // The parent ends aborted or with the hub's "canceled" refusal; the worker's abort path
    // reports neither.
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(
        world.hub.task(parent).unwrap().state,
        koji_fakehub::TaskState::Canceled
    );
    let build_arch = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.method == "buildArch")
        .unwrap();
    let names = String::from_utf8_lossy(
        &std::process::Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !names.contains(&format!("-{}-", build_arch.id)),
        "the container of the cancelled task is gone: {names}"
    );
    let took = cancelled_at.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "cancel to container gone took {took:?}, more than kojid's poll interval"
    );
    assert_eq!(build_arch.state, koji_fakehub::TaskState::Canceled);
    let log = world
        .hub
        .task_output(build_arch.id, "build.log")
        .unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&log).contains("SLEEPING"),
        "the live build.log is still on the hub after the cancel"
    );
}

/// The fake hub's `setBuildRootList` rules, which the handlers' list must satisfy: INIT only,
/// and only rpms of the repo's `rpmlist.jsonl` or attributed to an external repo.
#[actix_rt::test]
async fn the_fake_hub_takes_only_known_or_external_rpms_and_only_in_init() {
    let world = World::new().await;
    let task = world.submit("cli-build/x/none.src.rpm", json!({}));
    world.client.host_open_task(task).await.unwrap();
    let call = |method: &'static str, args: Vec<Json>| {
        let client = world.client.clone();
        async move { client.call_json(method, &args, &Map::new()).await }
    };
    let br = call(
        "host.newBuildRoot",
        vec![json!(1), json!("x86_64"), json!(task)],
    )
    .await
    .unwrap();
    let stub = json!({"name": "stub-build-tools", "version": "1", "release": "1", "epoch": null,
                      "arch": "noarch", "size": 0, "buildtime": 0,
                      "payloadhash": world.hub.topdir().join("repos/dist-build/1/x86_64/rpmlist.jsonl")
                          .to_str().map(|p| std::fs::read_to_string(p).unwrap())
                          .and_then(|t| serde_json::from_str::<Json>(t.trim()).ok())
                          .unwrap()["payloadhash"].clone()});
    let unknown = json!({"name": "glibc", "version": "2.36", "release": "9", "epoch": null,
                         "arch": "x86_64", "size": 1, "buildtime": 1, "payloadhash": "00"});
    let error = call(
        "host.setBuildRootList",
        vec![br.clone(), json!([stub, unknown])],
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("No such rpm: glibc-2.36-9.x86_64"),
        "{error}"
    );
    let mut external = unknown.clone();
    external["external_repo"] = json!({"external_repo_id": 5, "external_repo_name": "image"});
    external["location"] = json!(5);
    call(
        "host.setBuildRootList",
        vec![br.clone(), json!([stub, external])],
    )
    .await
    .unwrap();
    call(
        "host.setBuildRootState",
        vec![br.clone(), json!("BUILDING")],
    )
    .await
    .unwrap();
    let error = call("host.setBuildRootList", vec![br.clone(), json!([stub])])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not in init state"), "{error}");
    call("host.updateBuildRootList", vec![br, json!([stub])])
        .await
        .unwrap();
}

#[actix_rt::test]
async fn a_bad_dist_fails_the_srpm_rebuild_with_build_log_saying_why() {
    let world = World::new().await;
    world.side.with_world(|w| {
        for tag in w.tags.values_mut().filter(|t| t.name == "dist-build") {
            tag.extra
                .insert("rpm.macro.dist".into(), json!(".bad-dist"));
        }
    });
    let srpm = world.upload_srpm("hello-noarch");
    let parent = world.submit(&srpm, json!({}));
    let Err(HandlerError::Fault(fault)) = world.run(parent).await else {
        panic!("built with a '-' in the release");
    };
    assert_eq!(fault.fault_code, 1005, "{fault:?}");
    assert!(
        fault.message.starts_with("error building srpm"),
        "{}",
        fault.message
    );
    let rebuild = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.method == "rebuildSRPM")
        .unwrap();
    assert_eq!(rebuild.state, koji_fakehub::TaskState::Failed);
    let log = world.hub.task_output(rebuild.id, "build.log").unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("Illegal char"),
        "{}",
        String::from_utf8_lossy(&log)
    );
    assert!(
        world.side.with_world(|w| w.builds.is_empty()),
        "nothing was initialised before the SRPM existed"
    );
    for br in world.hub.buildroots() {
        assert_eq!(br.state, koji_fakehub::BuildrootState::Expired);
    }
}
