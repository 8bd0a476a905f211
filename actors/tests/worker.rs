//! The supervision core against in-memory fakes, on a paused clock.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use koji_adjutant_actors::builtin::register_builtin;
use koji_adjutant_actors::error::HandlerError;
use koji_adjutant_actors::handler::{HandlerRegistry, TaskContext, TaskHandler, TaskRequest};
use koji_adjutant_actors::hub::{BuildrootInfo, HubVersion, LoadDataHost, TaskInfo, TaskState};
use koji_adjutant_actors::policy::{ImageSource, ResolveImage, RuleKind};
use koji_adjutant_actors::runtime::{
    ContainerSpec, ExecSpec, NetworkMode, PullPolicy, ResourceLimits, SelinuxLabel,
};
use koji_adjutant_actors::settings::WorkerSettings;
use koji_adjutant_actors::snapshot::{TaskOutcome, TaskPhase, WorkerState};
use koji_adjutant_actors::supervisor::{ChildKind, StopChild};
use koji_adjutant_actors::{Supervisor, WorkerDeps, WorkerExit, WorkerHandle, WorkerSignal};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(3600);

struct Harness {
    hub: FakeHub,
    runtime: FakeRuntime,
    probe: Arc<FakeProbe>,
    notifier: Arc<RecordingNotifier>,
    worker: WorkerHandle,
}

impl Harness {
    fn start(hub: FakeHub, runtime: FakeRuntime, settings: WorkerSettings) -> Self {
        let probe = Arc::new(FakeProbe::default());
        Self::start_with_probe(hub, runtime, settings, probe)
    }

    fn start_with_probe(
        hub: FakeHub,
        runtime: FakeRuntime,
        settings: WorkerSettings,
        probe: Arc<FakeProbe>,
    ) -> Self {
        let mut handlers = HandlerRegistry::new();
        register_builtin(&mut handlers);
        handlers.register("buildstep", |_: &TaskRequest, _: &TaskInfo| {
            Box::new(StepHandler {
                panic_after_create: false,
            }) as Box<dyn TaskHandler>
        });
        handlers.register("panicky", |_: &TaskRequest, _: &TaskInfo| {
            Box::new(StepHandler {
                panic_after_create: true,
            }) as Box<dyn TaskHandler>
        });
        let notifier = Arc::new(RecordingNotifier::default());
        let worker = Supervisor::start_worker(WorkerDeps {
            hub: Arc::new(hub.clone()),
            runtime: Arc::new(runtime.clone()),
            probe: probe.clone(),
            handlers: Arc::new(handlers),
            notifier: notifier.clone(),
            settings,
        });
        Self {
            hub,
            runtime,
            probe,
            notifier,
            worker,
        }
    }

    fn snapshot(&self) -> Arc<koji_adjutant_actors::snapshot::WorkerSnapshot> {
        self.worker.snapshot.borrow().clone()
    }

    async fn stop(self) -> (WorkerExit, FakeHub, FakeRuntime) {
        self.worker.supervisor.do_send(WorkerSignal::Terminate);
        let exit = tokio::time::timeout(LONG, self.worker.exit)
            .await
            .expect("worker exits")
            .expect("exit sent");
        (exit, self.hub, self.runtime)
    }
}

/// A build-like handler: one container, one long step. Optionally panics once the container
/// exists, to show that the container still goes.
struct StepHandler {
    panic_after_create: bool,
}

#[async_trait::async_trait]
impl TaskHandler for StepHandler {
    fn weight(&self) -> f64 {
        1.5
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        ctx.phases.enter(TaskPhase::Image);
        let spec = ContainerSpec {
            image: ctx.default_image.clone(),
            name: ctx.containers.next_name(),
            labels: ctx.containers.labels(),
            user: None,
            workdir: None,
            mounts: Vec::new(),
            selinux_label: SelinuxLabel::None,
            env: BTreeMap::new(),
            network: NetworkMode::None,
            cap_add: Vec::new(),
            limits: ResourceLimits::default(),
        };
        ctx.phases.describe("nvr", "slowpoke-1.0-1");
        let container = ctx
            .containers
            .create_and_start(&spec, PullPolicy::Never)
            .await?;
        if self.panic_after_create {
            panic!("index out of bounds: the len is 0 but the index is 3");
        }
        ctx.phases.enter(TaskPhase::Building);
        let hello = ExecSpec {
            step: "hello".into(),
            argv: vec!["echo".into(), "hello from the build".into()],
            env: BTreeMap::new(),
            user: None,
            workdir: None,
            stdin: None,
            timeout: None,
        };
        ctx.containers
            .exec(&container, &hello, ctx.logs.clone())
            .await?;
        let exec = ExecSpec {
            step: "rpmbuild".into(),
            argv: vec!["sleep".into(), "600".into()],
            env: BTreeMap::new(),
            user: None,
            workdir: None,
            stdin: None,
            timeout: None,
        };
        let outcome = ctx
            .containers
            .exec(&container, &exec, ctx.logs.clone())
            .await?;
        ctx.phases.enter(TaskPhase::Uploading);
        Ok(json!({"exit": outcome.exit_code}))
    }
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        worker_id: "w1".into(),
        ..WorkerSettings::default()
    }
}

fn current_hub() -> FakeHub {
    FakeHub::new(HubVersion::new(1, 35, 3))
}

fn main_calls_without(hub: &FakeHub, skip: &[&str]) -> Vec<String> {
    hub.calls(MAIN)
        .into_iter()
        .filter(|c| !skip.contains(&c.as_str()))
        .collect()
}

#[actix_rt::test]
async fn idle_worker_makes_kojids_calls_in_kojids_order() {
    tokio::time::pause();
    let h = Harness::start(current_hub(), FakeRuntime::default(), settings());
    wait_until("three polls", LONG, || h.hub.count("host.getTasks") == 3).await;
    let (exit, hub, _) = h.stop().await;
    assert_eq!(exit, WorkerExit::Shutdown);
    let cycle = [
        "listBuildroots",
        "host.getHostTasks",
        "host.getHost",
        "host.updateHost",
        "host.getTasks",
    ];
    let mut expected: Vec<String> = vec!["host.getID".into(), "getSessionInfo".into()];
    for _ in 0..3 {
        expected.extend(cycle.iter().map(|s| s.to_string()));
    }
    expected.extend(["host.freeTasks", "host.updateHost", "logout"].map(String::from));
    // The transcript's sslLogin, exclusiveSession and echo belong to the hub client's login.
    assert_eq!(hub.calls(MAIN), expected);
    let updates = hub.calls_named("host.updateHost");
    assert_eq!(updates[0].args["data"]["maxjobs"], json!(10));
    assert!(
        updates[0].args["data"]["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("sleep"))
    );
    assert_eq!(
        updates.last().unwrap().args,
        json!({"task_load": 0.0, "ready": false, "data": null})
    );
    assert_eq!(hub.calls_named("host.freeTasks")[0].args, json!([]));
}

#[actix_rt::test]
async fn idle_polls_every_sleeptime() {
    tokio::time::pause();
    let h = Harness::start(current_hub(), FakeRuntime::default(), settings());
    wait_until("first poll", LONG, || h.hub.count("host.getTasks") == 1).await;
    let start = tokio::time::Instant::now();
    wait_until("second poll", LONG, || h.hub.count("host.getTasks") == 2).await;
    let gap = start.elapsed();
    assert!(
        gap >= Duration::from_secs(14) && gap <= Duration::from_secs(16),
        "idle gap {gap:?}"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn sleep_task_runs_and_closes_once() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!(5)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("task closed", LONG, || {
        h.hub.task(id).state == TaskState::Closed
    })
    .await;
    let task = h.hub.task(id);
    assert_eq!(task.result, Some(Ok(Value::Null)));
    assert_eq!(task.reports, 1);
    assert_eq!(task.weight, 0.25);
    let main = main_calls_without(
        &h.hub,
        &[
            "listBuildroots",
            "host.getHostTasks",
            "host.getHost",
            "host.updateHost",
            "host.getTasks",
        ],
    );
    assert_eq!(
        &main[..6],
        [
            "host.getID",
            "getSessionInfo",
            "getTaskInfo",
            "host.openTask",
            "host.setTaskWeight",
            "subsession"
        ]
    );
    wait_until("subsession logged out by the parent", LONG, || {
        h.hub.count("logoutChild") == 1
    })
    .await;
    let session = 900_002;
    assert_eq!(h.hub.calls(session), ["host.closeTask", "logout"]);
    wait_until("history shows it", LONG, || !h.snapshot().recent.is_empty()).await;
    let finished = h.snapshot().recent[0].clone();
    assert_eq!(finished.outcome, TaskOutcome::Closed);
    let phases: Vec<TaskPhase> = finished.timeline.iter().map(|e| e.phase).collect();
    assert_eq!(
        phases,
        [
            TaskPhase::Opened,
            TaskPhase::Building,
            TaskPhase::Closing,
            TaskPhase::Done
        ]
    );
    h.stop().await;
}

#[actix_rt::test]
async fn twenty_sleep_tasks_respect_maxjobs() {
    tokio::time::pause();
    let hub = current_hub();
    let ids: Vec<i64> = (0..20)
        .map(|_| hub.create_task("sleep", vec![json!(30)]))
        .collect();
    let mut s = settings();
    s.live.maxjobs = 4;
    let h = Harness::start(hub, FakeRuntime::default(), s);
    let mut peak = 0;
    let deadline = tokio::time::Instant::now() + LONG;
    while ids
        .iter()
        .any(|id| h.hub.task(*id).state != TaskState::Closed)
    {
        let open = ids
            .iter()
            .filter(|id| h.hub.task(**id).state == TaskState::Open)
            .count();
        peak = peak.max(open);
        assert!(open <= 4, "{open} tasks open with maxjobs 4");
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(peak, 4, "the worker should fill its slots");
    assert!(ids.iter().all(|id| h.hub.task(*id).reports == 1));
    h.stop().await;
}

#[actix_rt::test]
async fn capacity_limits_the_load() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().host.capacity = 0.6;
    let ids: Vec<i64> = (0..6)
        .map(|_| hub.create_task("sleep", vec![json!(30)]))
        .collect();
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    let mut peak = 0;
    while ids
        .iter()
        .any(|id| h.hub.task(*id).state != TaskState::Closed)
    {
        let open = ids
            .iter()
            .filter(|id| h.hub.task(**id).state == TaskState::Open)
            .count();
        peak = peak.max(open);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 0.25 each: 0.50 ≤ 0.6 still ready, 0.75 > 0.6 not.
    assert_eq!(peak, 3);
    h.stop().await;
}

#[actix_rt::test]
async fn unknown_method_is_refused_hard() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("frobnicate", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("refused", LONG, || !h.hub.lock().refusals.is_empty()).await;
    assert_eq!(
        h.hub.lock().refusals[0],
        (id, false, "no handler for method".to_owned())
    );
    assert_eq!(h.hub.count("host.openTask"), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn minspace_not_met_means_not_ready_but_still_heartbeating() {
    tokio::time::pause();
    let hub = current_hub();
    hub.create_task("sleep", vec![json!(1)]);
    let probe = Arc::new(FakeProbe::default());
    probe.free_mib.store(100, Ordering::SeqCst);
    let h = Harness::start_with_probe(hub, FakeRuntime::default(), settings(), probe);
    wait_until("four cycles", LONG, || {
        h.hub.count("host.getHostTasks") == 4
    })
    .await;
    wait_until("fourth heartbeat", LONG, || {
        h.hub.count("host.updateHost") == 4
    })
    .await;
    assert_eq!(h.hub.count("host.getTasks"), 0);
    assert!(
        h.hub
            .calls_named("host.updateHost")
            .iter()
            .all(|c| c.args["ready"] == json!(false))
    );
    let reason = h.snapshot().readiness.reason.clone().unwrap_or_default();
    assert!(reason.contains("Insufficient disk space"), "{reason}");
    assert!(
        reason.contains("100 MiB free, 8192 MiB required"),
        "{reason}"
    );
    // Space comes back: the task is taken.
    h.probe.free_mib.store(100_000, Ordering::SeqCst);
    wait_until("task taken", LONG, || h.hub.count("host.openTask") == 1).await;
    h.stop().await;
}

#[actix_rt::test]
async fn cancelled_task_loses_its_container_within_one_poll_and_is_not_reported() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("step running", LONG, || {
        !h.runtime.lock().execs_started.is_empty()
    })
    .await;
    assert_eq!(h.runtime.existing().len(), 1);
    let running = h.snapshot().running.clone();
    assert_eq!(running[0].phase, TaskPhase::Building);
    h.hub.cancel(id);
    let cancelled_at = tokio::time::Instant::now();
    wait_until("container removed", LONG, || {
        h.runtime.existing().is_empty()
    })
    .await;
    assert!(
        cancelled_at.elapsed() <= Duration::from_secs(16),
        "took {:?}",
        cancelled_at.elapsed()
    );
    wait_until("task actor gone", LONG, || h.snapshot().running.is_empty()).await;
    let task = h.hub.task(id);
    assert_eq!(task.state, TaskState::Canceled);
    assert_eq!(task.reports, 0);
    assert_eq!(
        h.hub.count("host.closeTask") + h.hub.count("host.failTask"),
        0
    );
    assert_eq!(h.hub.calls(900_002), ["logout"]);
    assert!(matches!(
        h.snapshot().recent[0].outcome,
        TaskOutcome::Aborted { .. }
    ));
    h.stop().await;
}

#[actix_rt::test]
async fn handler_panic_fails_the_task_and_removes_its_container() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("panicky", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("task failed", LONG, || {
        h.hub.task(id).state == TaskState::Failed
    })
    .await;
    let Some(Err(fault)) = h.hub.task(id).result else {
        panic!("no fault stored")
    };
    assert_eq!(fault.fault_code, 1);
    assert!(
        fault.message.contains("panicky handler panicked"),
        "{}",
        fault.message
    );
    assert!(
        fault.message.contains("index out of bounds"),
        "{}",
        fault.message
    );
    wait_until("container removed", LONG, || {
        h.runtime.existing().is_empty()
    })
    .await;
    assert_eq!(h.runtime.lock().removed.len(), 1);
    // The worker carries on.
    let next = h.hub.create_task("sleep", vec![json!(1)]);
    wait_until("next task closes", LONG, || {
        h.hub.task(next).state == TaskState::Closed
    })
    .await;
    h.stop().await;
}

async fn restarts_after(kind: ChildKind, how: impl FnOnce(&Harness), settle: Duration) {
    tokio::time::pause();
    let hub = current_hub();
    let runtime = FakeRuntime::default();
    let long_task = hub.create_task("sleep", vec![json!(120)]);
    let h = Harness::start(hub, runtime, settings());
    wait_until("task running", LONG, || {
        h.hub.task(long_task).state == TaskState::Open
    })
    .await;
    how(&h);
    tokio::time::sleep(settle).await;
    let restarts = |h: &Harness| {
        let r = h.snapshot().restarts.clone();
        match kind {
            ChildKind::HubPoller => r.hub_poller,
            ChildKind::PolicyCache => r.policy_cache,
            ChildKind::ContainerRegistry => r.container_registry,
        }
    };
    wait_until("restart counted", LONG, || restarts(&h) == 1).await;
    // The running task was not disturbed, and the worker still works.
    let polls = h.hub.count("host.getTasks");
    wait_until("polling goes on", LONG, || {
        h.hub.count("host.getTasks") > polls
    })
    .await;
    let resolved = h
        .worker
        .supervisor
        .send(ResolveImage {
            tag: None,
            event: None,
            arch: "x86_64".into(),
            task_type: "sleep".into(),
        })
        .await
        .unwrap();
    assert_eq!(resolved.source, ImageSource::ConfigDefault);
    wait_until("long task closes", LONG, || {
        h.hub.task(long_task).state == TaskState::Closed
    })
    .await;
    assert_eq!(h.hub.task(long_task).reports, 1);
    assert_eq!(restarts(&h), 1);
    assert!(
        h.snapshot()
            .warnings
            .iter()
            .any(|w| w.message.contains(kind.name()))
    );
    h.stop().await;
}

#[actix_rt::test]
async fn hub_poller_restarts_after_a_stop() {
    restarts_after(
        ChildKind::HubPoller,
        |h| h.worker.supervisor.do_send(StopChild(ChildKind::HubPoller)),
        Duration::ZERO,
    )
    .await;
}

#[actix_rt::test]
async fn hub_poller_restarts_after_a_panic() {
    restarts_after(
        ChildKind::HubPoller,
        |h| {
            h.hub.lock().panic_once.insert("host.getHost".into());
        },
        Duration::ZERO,
    )
    .await;
}

#[actix_rt::test]
async fn policy_cache_restarts_after_a_stop() {
    restarts_after(
        ChildKind::PolicyCache,
        |h| {
            h.worker
                .supervisor
                .do_send(StopChild(ChildKind::PolicyCache))
        },
        Duration::ZERO,
    )
    .await;
}

#[actix_rt::test]
async fn policy_cache_restarts_after_a_panic() {
    restarts_after(
        ChildKind::PolicyCache,
        |h| {
            h.hub.lock().panic_once.insert("getBuildConfig".into());
            h.worker.supervisor.do_send(ResolveImage {
                tag: Some("f40-build".into()),
                event: None,
                arch: "x86_64".into(),
                task_type: "buildArch".into(),
            });
        },
        Duration::ZERO,
    )
    .await;
}

#[actix_rt::test]
async fn container_registry_restarts_after_a_stop() {
    restarts_after(
        ChildKind::ContainerRegistry,
        |h| {
            h.worker
                .supervisor
                .do_send(StopChild(ChildKind::ContainerRegistry))
        },
        Duration::ZERO,
    )
    .await;
}

#[actix_rt::test]
async fn container_registry_restarts_after_a_panic() {
    // The next periodic orphan sweep (every 10 minutes) panics.
    restarts_after(
        ChildKind::ContainerRegistry,
        |h| {
            h.runtime.reap_panics.store(1, Ordering::SeqCst);
        },
        Duration::from_secs(601),
    )
    .await;
}

#[actix_rt::test]
async fn restart_backoff_grows_while_a_child_keeps_failing() {
    tokio::time::pause();
    let runtime = FakeRuntime::default();
    runtime.reap_panics.store(3, Ordering::SeqCst);
    let h = Harness::start(current_hub(), runtime, settings());
    let start = tokio::time::Instant::now();
    wait_until("three failures", LONG, || {
        h.snapshot().restarts.container_registry == 3
    })
    .await;
    // Failures at 0 s, then after 1 s and 2 s of backoff; the next restart waits 4 s.
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let msgs: Vec<String> = h
        .snapshot()
        .warnings
        .iter()
        .map(|w| w.message.clone())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("injected panic in reap_orphans")),
        "{msgs:?}"
    );
    for delay in ["in 1s", "in 2s", "in 4s"] {
        assert!(
            msgs.iter().any(|m| m.contains(delay)),
            "no restart {delay}: {msgs:?}"
        );
    }
    // Then it stays up.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.snapshot().restarts.container_registry, 3);
    h.stop().await;
}

#[actix_rt::test]
async fn drain_lets_running_tasks_finish_then_frees_and_logs_out() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!(60)]);
    let mut s = settings();
    s.live.drain_timeout = Duration::from_secs(600);
    let h = Harness::start(hub, FakeRuntime::default(), s);
    wait_until("task open", LONG, || {
        h.hub.task(id).state == TaskState::Open
    })
    .await;
    h.worker.supervisor.do_send(WorkerSignal::Terminate);
    let late = h.hub.create_task("sleep", vec![json!(1)]);
    wait_until("draining", LONG, || {
        h.snapshot().state == WorkerState::Draining
    })
    .await;
    let exit = tokio::time::timeout(LONG, h.worker.exit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::Shutdown);
    assert_eq!(h.hub.task(id).state, TaskState::Closed);
    assert_eq!(
        h.hub.task(late).state,
        TaskState::Free,
        "no task is taken while draining"
    );
    let tail: Vec<String> = h.hub.calls(MAIN).into_iter().rev().take(3).collect();
    assert_eq!(tail, ["logout", "host.updateHost", "host.freeTasks"]);
    assert!(
        h.notifier
            .events
            .lock()
            .unwrap()
            .contains(&"STOPPING".to_owned())
    );
}

#[actix_rt::test]
async fn sigterm_with_zero_drain_kills_and_frees_at_once_like_kojid() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("step running", LONG, || {
        !h.runtime.lock().execs_started.is_empty()
    })
    .await;
    let (exit, hub, runtime) = h.stop().await;
    assert_eq!(exit, WorkerExit::Shutdown);
    let task = hub.task(id);
    assert_eq!(task.state, TaskState::Free);
    assert_eq!(task.reports, 0);
    assert!(runtime.existing().is_empty());
    assert_eq!(
        hub.calls_named("host.freeTasks").last().unwrap().args,
        json!([id])
    );
}

#[actix_rt::test]
async fn shutdown_while_a_logout_child_holds_the_session_still_frees_and_logs_out() {
    // The real client serialises a session's calls on a fair lock. The Supervisor's shutdown
    // blocks its own context while it frees the tasks; a `logoutChild` it had spawned there
    // and that holds the session must still be able to finish, or shutdown never does.
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().main_session_lock = Some((
        Arc::new(tokio::sync::Mutex::new(())),
        Duration::from_secs(10),
    ));
    let id = hub.create_task("sleep", vec![json!(1)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("the parent logs the task's subsession out", LONG, || {
        h.hub.count("logoutChild") == 1
    })
    .await;
    let asked = tokio::time::Instant::now();
    h.worker.supervisor.do_send(WorkerSignal::Terminate);
    let exit = tokio::time::timeout(Duration::from_secs(300), h.worker.exit)
        .await
        .expect("the worker stops although a logoutChild held the session")
        .expect("exit sent");
    assert_eq!(exit, WorkerExit::Shutdown);
    assert!(
        asked.elapsed() < Duration::from_secs(60),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(h.hub.task(id).state, TaskState::Closed);
    let main = main_calls_without(
        &h.hub,
        &[
            "listBuildroots",
            "host.getHostTasks",
            "host.getHost",
            "host.getTasks",
        ],
    );
    let tail: Vec<&str> = main
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["host.freeTasks", "host.updateHost", "logout"]);
}

#[actix_rt::test]
async fn second_sigterm_aborts_a_drain() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let mut s = settings();
    s.live.drain_timeout = Duration::from_secs(100_000);
    let h = Harness::start(hub, FakeRuntime::default(), s);
    wait_until("step running", LONG, || {
        !h.runtime.lock().execs_started.is_empty()
    })
    .await;
    h.worker.supervisor.do_send(WorkerSignal::Terminate);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(h.hub.task(id).state, TaskState::Open, "still draining");
    let asked = tokio::time::Instant::now();
    h.worker.supervisor.do_send(WorkerSignal::Terminate);
    let exit = tokio::time::timeout(LONG, h.worker.exit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::Shutdown);
    assert!(asked.elapsed() < Duration::from_secs(40));
    assert_eq!(h.hub.task(id).state, TaskState::Free);
    assert!(h.runtime.existing().is_empty());
}

#[actix_rt::test]
async fn sigusr1_restarts_once_idle() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!(40)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("task open", LONG, || {
        h.hub.task(id).state == TaskState::Open
    })
    .await;
    let heartbeats = h.hub.count("host.updateHost");
    h.worker.supervisor.do_send(WorkerSignal::RestartWhenIdle);
    let exit = tokio::time::timeout(LONG, h.worker.exit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::Restart);
    assert_eq!(
        h.hub.task(id).state,
        TaskState::Closed,
        "running tasks are not killed"
    );
    let after = &h.hub.calls_named("host.updateHost")[heartbeats..];
    assert!(
        !after.is_empty() && after.iter().all(|c| c.args["ready"] == json!(false)),
        "{after:?}"
    );
    assert_eq!(h.hub.calls(MAIN).last().unwrap(), "logout");
}

#[actix_rt::test]
async fn restart_task_restarts_the_worker() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("restart", vec![json!({"id": ME, "name": "builder-1"})]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    let exit = tokio::time::timeout(LONG, h.worker.exit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::Restart);
    assert_eq!(
        h.hub.task(id).result,
        Some(Ok(json!("graceful restart initiated")))
    );
}

#[actix_rt::test]
async fn restart_verify_checks_the_session_start() {
    tokio::time::pause();
    let hub = current_hub();
    let restart = hub.create_task("restart", vec![]);
    {
        let mut s = hub.lock();
        let start = s.session_start_ts;
        let task = s.tasks.get_mut(&restart).unwrap();
        task.state = TaskState::Closed;
        task.completion_ts = Some(start + 10.0);
    }
    let verify = hub.create_task("restartVerify", vec![json!(restart), json!({"id": ME})]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("verify failed", LONG, || {
        h.hub.task(verify).state == TaskState::Failed
    })
    .await;
    let Some(Err(fault)) = h.hub.task(verify).result else {
        panic!()
    };
    assert_eq!(fault.fault_code, 1000);
    assert!(
        fault.message.starts_with("Restart failed - start time is "),
        "{}",
        fault.message
    );
    h.stop().await;
}

#[actix_rt::test]
async fn shutdown_task_stops_the_worker() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("shutdown", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    let exit = tokio::time::timeout(LONG, h.worker.exit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::Shutdown);
    assert_eq!(h.hub.task(id).state, TaskState::Closed);
    assert_eq!(h.hub.calls(MAIN).last().unwrap(), "logout");
}

#[actix_rt::test]
async fn bad_sleep_argument_fails_with_a_readable_fault() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!("BAD_ARG")]);
    let extra = hub.create_task("sleep", vec![json!(1), json!(2)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("both failed", LONG, || {
        h.hub.task(id).state == TaskState::Failed && h.hub.task(extra).state == TaskState::Failed
    })
    .await;
    let Some(Err(fault)) = h.hub.task(id).result else {
        panic!()
    };
    assert_eq!(fault.fault_code, 1);
    assert!(fault.message.contains("\"BAD_ARG\""), "{}", fault.message);
    let Some(Err(fault)) = h.hub.task(extra).result else {
        panic!()
    };
    assert_eq!(fault.fault_code, 1019);
    h.stop().await;
}

#[actix_rt::test]
async fn waittest_waits_on_subtasks_woken_by_alerts() {
    tokio::time::pause();
    let hub = current_hub();
    let parent = hub.create_task("waittest", vec![json!(2), json!(5)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("parent closed", LONG, || {
        h.hub.task(parent).state == TaskState::Closed
    })
    .await;
    let children: Vec<FakeTask> = h
        .hub
        .lock()
        .tasks
        .values()
        .filter(|t| t.parent == Some(parent))
        .cloned()
        .collect();
    assert_eq!(children.len(), 3);
    assert_eq!(
        children
            .iter()
            .filter(|c| c.state == TaskState::Closed)
            .count(),
        2
    );
    assert_eq!(
        children
            .iter()
            .filter(|c| c.state == TaskState::Failed)
            .count(),
        1
    );
    let session_calls = h.hub.calls(900_002);
    assert_eq!(
        &session_calls[..4],
        [
            "host.subtask",
            "host.subtask",
            "host.subtask",
            "host.taskSetWait"
        ]
    );
    assert!(session_calls.contains(&"host.taskWaitResults".to_owned()));
    let results = h.hub.calls_named("host.taskWaitResults");
    assert_eq!(
        results[0].args[2],
        json!([children[2].id]),
        "the bad subtask may fail"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn start_up_frees_stale_tasks_expires_buildroots_and_reaps_orphans() {
    tokio::time::pause();
    let hub = current_hub();
    let stale = hub.create_task("sleep", vec![json!(1)]);
    {
        let mut s = hub.lock();
        let task = s.tasks.get_mut(&stale).unwrap();
        task.state = TaskState::Open;
        task.host_id = Some(ME);
        s.buildroots.push(BuildrootInfo {
            id: 7,
            task_id: Some(stale),
            state: 2,
        });
    }
    let runtime = FakeRuntime::default();
    runtime.add_leftover("koji-adjutant-w1-55-1", "w1");
    runtime.add_leftover("koji-adjutant-other-56-1", "other");
    let h = Harness::start(hub, runtime, settings());
    wait_until("stale freed", LONG, || h.hub.count("host.freeTasks") >= 1).await;
    assert_eq!(h.hub.calls_named("host.freeTasks")[0].args, json!([stale]));
    assert_eq!(
        h.hub.calls_named("host.setBuildRootState")[0].args,
        json!([7, 3])
    );
    wait_until("orphan reaped", LONG, || {
        !h.runtime.lock().reaped.is_empty()
    })
    .await;
    assert_eq!(h.runtime.existing(), ["koji-adjutant-other-56-1"]);
    // The freed task comes back and runs from scratch.
    wait_until("re-run closes", LONG, || {
        h.hub.task(stale).state == TaskState::Closed
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn legacy_hub_uses_load_data_bins_and_avail_delay() {
    tokio::time::pause();
    let hub = FakeHub::new(HubVersion::new(1, 33, 0));
    // The other host of the bin has more room: this one ranks last and waits the full delay.
    hub.lock().other_hosts.push(LoadDataHost {
        id: 2,
        arches: vec!["x86_64".into()],
        channels: vec![1],
        capacity: 20.0,
        task_load: 0.0,
    });
    hub.lock().tasks.clear();
    let unknown = hub.create_task("frobnicate", vec![]);
    let mut s = settings();
    s.task_avail_delay = Duration::from_secs(300);
    let h = Harness::start(hub, FakeRuntime::default(), s);
    wait_until("first poll", LONG, || h.hub.count("host.getLoadData") >= 1).await;
    let id = h.hub.create_task("sleep", vec![json!(1)]);
    let seen = tokio::time::Instant::now();
    wait_until("task opened", LONG, || h.hub.count("host.openTask") == 1).await;
    assert!(
        seen.elapsed() >= Duration::from_secs(285),
        "took it after {:?}",
        seen.elapsed()
    );
    wait_until("closed", LONG, || h.hub.task(id).state == TaskState::Closed).await;
    assert_eq!(h.hub.count("host.getTasks"), 0);
    assert_eq!(
        h.hub.count("host.refuseTask"),
        0,
        "no refusals on a legacy hub"
    );
    assert_eq!(h.hub.task(unknown).state, TaskState::Free);
    assert!(
        h.hub
            .calls_named("host.updateHost")
            .iter()
            .all(|c| c.args["data"].is_null())
    );
    h.stop().await;
}

#[actix_rt::test]
async fn hub_1_34_gets_host_data_through_set_host_data() {
    tokio::time::pause();
    let hub = FakeHub::new(HubVersion::new(1, 34, 1));
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("two polls", LONG, || h.hub.count("host.getTasks") == 2).await;
    assert_eq!(h.hub.count("host.setHostData"), 1);
    assert!(
        h.hub
            .calls_named("host.updateHost")
            .iter()
            .all(|c| c.args["data"].is_null())
    );
    h.stop().await;
}

#[actix_rt::test]
async fn reload_applies_live_settings_and_flags_the_rest() {
    tokio::time::pause();
    let h = Harness::start(current_hub(), FakeRuntime::default(), settings());
    wait_until("first poll", LONG, || h.hub.count("host.getTasks") == 1).await;
    let mut new = settings();
    new.live.maxjobs = 3;
    new.live.sleeptime = Duration::from_secs(5);
    new.worker_id = "renamed".into();
    h.worker
        .supervisor
        .do_send(WorkerSignal::Reload(Box::new(new)));
    wait_until("maxjobs applied", LONG, || h.snapshot().maxjobs == 3).await;
    assert!(
        h.snapshot()
            .warnings
            .iter()
            .any(|w| w.message.contains("worker_id changed"))
    );
    wait_until("next heartbeat", LONG, || h.hub.count("host.getTasks") == 3).await;
    let last = h.hub.calls_named("host.updateHost").last().unwrap().clone();
    assert_eq!(last.args["data"]["maxjobs"], json!(3));
    let before = tokio::time::Instant::now();
    wait_until("one more", LONG, || h.hub.count("host.getTasks") == 4).await;
    assert!(
        before.elapsed() <= Duration::from_secs(6),
        "new sleeptime: {:?}",
        before.elapsed()
    );
    h.stop().await;
}

#[actix_rt::test]
async fn policy_cache_single_flight_precedence_and_fallback() {
    tokio::time::pause();
    let hub = current_hub();
    let policy = json!({"rules": [
        {"type": "default", "image": "img:default"},
        {"type": "task_type", "task_type": "buildArch", "image": "img:buildarch"},
        {"type": "tag", "tag": "f4?-build", "image": "img:f4x"},
        {"type": "tag_arch", "tag": "f40-*", "arch": "aarch64", "image": "img:f40-arm"},
    ]});
    {
        let mut s = hub.lock();
        s.build_configs.insert(
            "f40-build".into(),
            json!({"extra": {"adjutant_image_policy": policy.to_string()}}),
        );
        s.build_config_delay = Duration::from_secs(2);
    }
    let mut s = settings();
    s.live.policy_cache_ttl = Duration::from_secs(300);
    s.live.task_image_default = "img:config".into();
    let h = Harness::start(hub, FakeRuntime::default(), s);
    let ask = |arch: &str, task_type: &str| ResolveImage {
        tag: Some("f40-build".into()),
        event: Some(5),
        arch: arch.into(),
        task_type: task_type.into(),
    };
    let answers = futures::future::join_all(
        (0..10).map(|_| h.worker.supervisor.send(ask("x86_64", "buildArch"))),
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().unwrap().image == "img:f4x")
    );
    assert_eq!(
        h.hub.count("getBuildConfig"),
        1,
        "concurrent misses make one hub call"
    );
    let arm = h
        .worker
        .supervisor
        .send(ask("aarch64", "buildArch"))
        .await
        .unwrap();
    assert_eq!(
        (arm.image.as_str(), arm.source),
        ("img:f40-arm", ImageSource::Rule(RuleKind::TagArch))
    );
    assert_eq!(h.hub.count("getBuildConfig"), 1, "cached");
    // After the TTL, a hub outage falls back to the last good policy.
    tokio::time::sleep(Duration::from_secs(301)).await;
    h.hub.lock().build_configs.clear();
    let outage = h
        .worker
        .supervisor
        .send(ask("x86_64", "createrepo"))
        .await
        .unwrap();
    assert_eq!(outage.image, "img:f4x");
    assert!(
        h.snapshot()
            .warnings
            .iter()
            .any(|w| w.message.contains("using the last good policy"))
            || {
                tokio::time::sleep(Duration::from_secs(6)).await;
                h.snapshot()
                    .warnings
                    .iter()
                    .any(|w| w.message.contains("using the last good policy"))
            }
    );
    // Invalid JSON: reported once per TTL, falls back.
    h.hub.lock().build_configs.insert(
        "bad-build".into(),
        json!({"extra": {"adjutant_image_policy": "{not json"}}),
    );
    let bad = ResolveImage {
        tag: Some("bad-build".into()),
        event: None,
        arch: "x86_64".into(),
        task_type: "buildArch".into(),
    };
    for _ in 0..3 {
        let answer = h.worker.supervisor.send(bad.clone()).await.unwrap();
        assert_eq!(answer.image, "img:config");
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let invalid: Vec<_> = h
        .snapshot()
        .warnings
        .iter()
        .filter(|w| w.message.contains("tag bad-build"))
        .cloned()
        .collect();
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(invalid[0].message.contains("not valid JSON"));
    let dump = h.snapshot().policy.clone();
    assert!(dump.entries.len() >= 2, "{dump:?}");
    assert!(
        dump.entries
            .iter()
            .any(|e| e.tag == "bad-build" && e.status.contains("not valid JSON"))
    );
    assert!(dump.hits >= 1);
    h.stop().await;
}

#[actix_rt::test]
async fn container_registry_snapshot_shows_the_live_container() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("step running", LONG, || {
        !h.runtime.lock().execs_started.is_empty()
    })
    .await;
    wait_until("registry sees it", LONG, || {
        h.worker
            .containers
            .live()
            .first()
            .is_some_and(|c| c.current_step.as_deref() == Some("rpmbuild"))
    })
    .await;
    let record = h.worker.containers.live()[0].clone();
    assert_eq!(record.task_id, id);
    assert_eq!(record.name, format!("koji-adjutant-w1-{id}-1"));
    assert_eq!(h.worker.logs.tail(id, 10), ["hello from the build"]);
    let running = h.snapshot().running[0].clone();
    assert_eq!(
        running.details.get("nvr").map(String::as_str),
        Some("slowpoke-1.0-1")
    );
    assert_eq!(running.owner, Some(1));
    h.hub.cancel(id);
    wait_until("moved to history", LONG, || {
        h.worker.containers.live().is_empty() && h.worker.containers.history().len() == 1
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn expired_session_is_renewed_and_polling_goes_on() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().fail_once.insert(
        "host.getHost".into(),
        koji_adjutant_actors::HubError::from_fault(
            "host.getHost",
            koji_adjutant_actors::Fault::new(1007, "AuthExpired", "session expired"),
        ),
    );
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("two polls", LONG, || h.hub.count("host.getTasks") == 2).await;
    assert_eq!(h.hub.count("login"), 1);
    h.stop().await;
}

#[actix_rt::test]
async fn a_failed_cycle_is_retried_on_the_next_one() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().fail_once.insert(
        "host.getHostTasks".into(),
        koji_adjutant_actors::HubError::from_fault(
            "host.getHostTasks",
            koji_adjutant_actors::Fault::new(1014, "ServerOffline", "database outage"),
        ),
    );
    let id = hub.create_task("sleep", vec![json!(1)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("task closes", LONG, || {
        h.hub.task(id).state == TaskState::Closed
    })
    .await;
    assert!(
        h.snapshot()
            .warnings
            .iter()
            .any(|w| w.message.contains("database outage"))
    );
    let main = h.hub.calls(MAIN);
    // The failed iteration stops where it failed, as kojid's does.
    assert_eq!(
        &main[2..5],
        ["listBuildroots", "host.getHostTasks", "listBuildroots"]
    );
    h.stop().await;
}

#[actix_rt::test]
async fn authentication_refused_stops_the_worker_with_an_error() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().fail_once.insert(
        "host.getHostTasks".into(),
        koji_adjutant_actors::HubError::from_fault(
            "host.getHostTasks",
            koji_adjutant_actors::Fault::new(1002, "AuthError", "could not find host"),
        ),
    );
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    let exit = tokio::time::timeout(LONG, h.worker.exit)
        .await
        .unwrap()
        .unwrap();
    let WorkerExit::Fatal(message) = exit else {
        panic!("expected a fatal exit, got {exit:?}")
    };
    assert!(message.contains("could not find host"), "{message}");
}

#[actix_rt::test]
async fn polls_fast_for_a_while_after_a_task_ends() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!(40)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("closed", LONG, || h.hub.task(id).state == TaskState::Closed).await;
    let polls = h.hub.count("host.getTasks");
    let start = tokio::time::Instant::now();
    wait_until("two more polls", LONG, || {
        h.hub.count("host.getTasks") >= polls + 2
    })
    .await;
    assert!(
        start.elapsed() <= Duration::from_secs(3),
        "fast poll: {:?}",
        start.elapsed()
    );
    // During the window (30 s): about one call a second, a full cycle (the heartbeat) every
    // sleeptime, and a task assigned meanwhile is picked up within about a second.
    let calls_before = h.hub.all_calls().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let next = h.hub.create_task("sleep", vec![json!(1)]);
    let assigned = tokio::time::Instant::now();
    wait_until("picked up", LONG, || h.hub.count("host.openTask") == 2).await;
    assert!(
        assigned.elapsed() <= Duration::from_millis(1100),
        "pickup took {:?}",
        assigned.elapsed()
    );
    wait_until("closed", LONG, || {
        h.hub.task(next).state == TaskState::Closed
    })
    .await;
    let calls_before_idle = h.hub.all_calls().len();
    let heartbeats_before_idle = h.hub.count("host.updateHost");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = h.hub.all_calls().len() - calls_before_idle;
    let heartbeats = h.hub.count("host.updateHost") - heartbeats_before_idle;
    assert!(calls <= 45, "{calls} hub calls in a 30 s fast window");
    assert!(
        (2..=3).contains(&heartbeats),
        "{heartbeats} heartbeats in 30 s"
    );
    assert!(
        h.hub.all_calls().len() - calls_before >= 30,
        "it did poll fast"
    );
    // After the window, back to a full cycle every sleeptime.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = h.hub.all_calls().len();
    tokio::time::sleep(Duration::from_secs(31)).await;
    let idle_calls = h.hub.all_calls().len() - settled;
    assert!(idle_calls <= 3 * 5, "{idle_calls} calls in 31 idle seconds");
    h.stop().await;
}

#[actix_rt::test]
async fn cancel_is_noticed_like_kojid_does() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!(600)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("open", LONG, || h.hub.task(id).state == TaskState::Open).await;
    let mark = h.hub.calls(MAIN).len();
    h.hub.cancel(id);
    wait_until("subsession logged out", LONG, || {
        h.hub.count("logoutChild") == 1
    })
    .await;
    let after: Vec<String> = h.hub.calls(MAIN)[mark..].to_vec();
    let position = |name: &str| {
        after
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no {name} in {after:?}"))
    };
    // getHostTasks no longer lists it → getTaskInfo says CANCELED → kill → logoutChild.
    assert!(position("host.getHostTasks") < position("getTaskInfo"));
    assert!(position("getTaskInfo") < position("logoutChild"));
    assert_eq!(h.hub.task(id).reports, 0);
    assert_eq!(h.hub.calls(900_002), ["logout"]);
    h.stop().await;
}

#[actix_rt::test]
async fn weight_refused_on_a_task_still_ours_reraises_then_the_task_is_freed_and_rerun() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().fail_once.insert(
        "host.setTaskWeight".into(),
        koji_adjutant_actors::HubError::from_fault(
            "host.setTaskWeight",
            koji_adjutant_actors::Fault::new(1004, "ActionNotAllowed", "policy says no"),
        ),
    );
    let id = hub.create_task("sleep", vec![json!(1)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("closes after all", LONG, || {
        h.hub.task(id).state == TaskState::Closed
    })
    .await;
    assert!(
        h.hub
            .calls_named("host.freeTasks")
            .iter()
            .any(|c| c.args == json!([id]))
    );
    assert_eq!(h.hub.count("host.openTask"), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn a_policy_denial_inside_a_task_fails_the_task_with_it() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().fail_once.insert(
        "host.subtask".into(),
        koji_adjutant_actors::HubError::from_fault(
            "host.subtask",
            koji_adjutant_actors::Fault::new(
                1004,
                "ActionNotAllowed",
                "policy violation (channel): denied",
            ),
        ),
    );
    let id = hub.create_task("waittest", vec![json!(1)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("failed", LONG, || h.hub.task(id).state == TaskState::Failed).await;
    let Some(Err(fault)) = h.hub.task(id).result else {
        panic!()
    };
    assert_eq!(
        (fault.fault_code, fault.message.as_str()),
        (1004, "policy violation (channel): denied")
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_task_cancelled_before_open_is_a_lost_race_not_an_error() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("sleep", vec![json!(1)]);
    hub.lock().before_once.insert(
        "host.openTask".into(),
        Box::new(move |s: &mut HubState| {
            s.tasks.get_mut(&id).unwrap().state = TaskState::Canceled;
        }),
    );
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("open attempted", LONG, || h.hub.count("host.openTask") == 1).await;
    wait_until("next poll", LONG, || h.hub.count("host.getTasks") >= 2).await;
    assert_eq!(h.hub.count("host.setTaskWeight"), 0);
    assert_eq!(h.hub.count("subsession"), 0);
    assert!(h.snapshot().running.is_empty());
    h.stop().await;
}

#[actix_rt::test]
async fn a_task_freed_by_an_admin_is_aborted_and_runs_again() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("step running", LONG, || {
        h.runtime
            .lock()
            .execs_started
            .iter()
            .any(|(_, argv)| argv[0] == "sleep")
    })
    .await;
    {
        let mut s = h.hub.lock();
        let task = s.tasks.get_mut(&id).unwrap();
        task.state = TaskState::Free;
        task.host_id = None;
    }
    wait_until("first container removed", LONG, || {
        h.runtime
            .lock()
            .removed
            .contains(&format!("koji-adjutant-w1-{id}-1"))
    })
    .await;
    wait_until("second run", LONG, || h.hub.count("host.openTask") == 2).await;
    assert_eq!(
        h.hub.calls(900_002),
        ["logout"],
        "the first run reports nothing"
    );
    assert!(
        matches!(&h.snapshot().recent[0].outcome, TaskOutcome::Aborted { reason } if reason.contains("freed"))
    );
    h.stop().await;
}

/// Waits on subtasks the way a build parent does: `failany`, optionally with a timeout.
struct WaitHandler {
    child_args: Vec<Value>,
    timeout: Option<Duration>,
}

#[async_trait::async_trait]
impl TaskHandler for WaitHandler {
    fn weight(&self) -> f64 {
        0.2
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let mut children = Vec::new();
        for (i, arg) in self.child_args.iter().enumerate() {
            let options = koji_adjutant_actors::hub::SubtaskOptions {
                label: Some(format!("child{i}")),
                ..Default::default()
            };
            children.push(
                ctx.hub
                    .subtask(ctx.task_id, "sleep", vec![arg.clone()], &options)
                    .await?,
            );
        }
        let options = koji_adjutant_actors::handler::WaitOptions {
            all: true,
            failany: true,
            canfail: Vec::new(),
            timeout: self.timeout,
        };
        let results = ctx.wait(Some(children), options).await?;
        Ok(json!(results.len()))
    }
}

fn start_with_wait_handler(
    hub: FakeHub,
    child_args: Vec<Value>,
    timeout: Option<Duration>,
) -> Harness {
    let mut handlers = HandlerRegistry::new();
    register_builtin(&mut handlers);
    let child_args = Arc::new(child_args);
    handlers.register("waiter", move |_: &TaskRequest, _: &TaskInfo| {
        Box::new(WaitHandler {
            child_args: child_args.as_ref().clone(),
            timeout,
        }) as Box<dyn TaskHandler>
    });
    let probe = Arc::new(FakeProbe::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let runtime = FakeRuntime::default();
    let worker = Supervisor::start_worker(WorkerDeps {
        hub: Arc::new(hub.clone()),
        runtime: Arc::new(runtime.clone()),
        probe: probe.clone(),
        handlers: Arc::new(handlers),
        notifier: notifier.clone(),
        settings: settings(),
    });
    Harness {
        hub,
        runtime,
        probe,
        notifier,
        worker,
    }
}

#[actix_rt::test]
async fn failany_cancels_the_other_children_and_fails_with_the_childs_fault() {
    tokio::time::pause();
    let hub = current_hub();
    let parent = hub.create_task("waiter", vec![]);
    let h = start_with_wait_handler(hub, vec![json!("BAD_ARG"), json!(600)], None);
    wait_until("parent failed", LONG, || {
        h.hub.task(parent).state == TaskState::Failed
    })
    .await;
    let Some(Err(fault)) = h.hub.task(parent).result else {
        panic!()
    };
    assert!(
        fault.message.contains("BAD_ARG"),
        "the child's fault: {}",
        fault.message
    );
    assert_eq!(h.hub.count("cancelTaskChildren"), 1);
    let long_child = h
        .hub
        .lock()
        .tasks
        .values()
        .find(|t| t.parent == Some(parent) && t.request == [json!(600)])
        .unwrap()
        .id;
    wait_until("long child cancelled", LONG, || {
        h.hub.task(long_child).state == TaskState::Canceled
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn a_wait_timeout_cancels_the_children() {
    tokio::time::pause();
    let hub = current_hub();
    let parent = hub.create_task("waiter", vec![]);
    let h = start_with_wait_handler(hub, vec![json!(600)], Some(Duration::from_secs(30)));
    wait_until("parent failed", LONG, || {
        h.hub.task(parent).state == TaskState::Failed
    })
    .await;
    let Some(Err(fault)) = h.hub.task(parent).result else {
        panic!()
    };
    assert_eq!(fault.fault_code, 1000);
    assert!(
        fault.message.starts_with("Subtasks timed out after 3"),
        "{}",
        fault.message
    );
    assert_eq!(h.hub.count("cancelTaskChildren"), 1);
    h.stop().await;
}

#[actix_rt::test]
async fn fork_runs_its_sleeps_in_one_container_that_goes_away() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("fork", vec![json!(3), json!(7)]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("closed", LONG, || h.hub.task(id).state == TaskState::Closed).await;
    assert_eq!(h.hub.task(id).result, Some(Ok(Value::Null)));
    {
        let runtime = h.runtime.lock();
        assert_eq!(runtime.created.len(), 1);
        assert_eq!(runtime.execs_started.len(), 3);
        assert!(
            runtime
                .execs_started
                .iter()
                .all(|(_, argv)| argv == &["sleep", "7"])
        );
    }
    wait_until("removed", LONG, || h.runtime.existing().is_empty()).await;
    h.stop().await;
}

#[actix_rt::test]
async fn invalidating_the_policy_makes_the_next_lookup_ask_the_hub() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().build_configs.insert(
        "f40-build".into(),
        json!({"extra": {"adjutant_image_policy": {"rules": [{"type": "default", "image": "img:one"}]}}}),
    );
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    let ask = || ResolveImage {
        tag: Some("f40-build".into()),
        event: None,
        arch: "x86_64".into(),
        task_type: "buildArch".into(),
    };
    assert_eq!(
        h.worker.supervisor.send(ask()).await.unwrap().image,
        "img:one"
    );
    h.hub.lock().build_configs.insert(
        "f40-build".into(),
        json!({"extra": {"adjutant_image_policy": {"rules": [{"type": "default", "image": "img:two"}]}}}),
    );
    assert_eq!(
        h.worker.supervisor.send(ask()).await.unwrap().image,
        "img:one",
        "cached"
    );
    h.worker
        .supervisor
        .do_send(koji_adjutant_actors::policy::InvalidatePolicy {
            tag: Some("f40-build".into()),
        });
    assert_eq!(
        h.worker.supervisor.send(ask()).await.unwrap().image,
        "img:two"
    );
    assert_eq!(h.hub.count("getBuildConfig"), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn systemd_hears_ready_watchdog_status_and_stopping() {
    tokio::time::pause();
    let h = Harness::start(current_hub(), FakeRuntime::default(), settings());
    wait_until("two polls", LONG, || h.hub.count("host.getTasks") == 2).await;
    let notifier = h.notifier.clone();
    h.stop().await;
    let events = notifier.events.lock().unwrap().clone();
    let first = |name: &str| {
        events
            .iter()
            .position(|e| e.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {events:?}"))
    };
    assert!(first("READY") < first("STOPPING"));
    assert!(events.iter().filter(|e| *e == "WATCHDOG").count() >= 2);
    assert!(
        events
            .iter()
            .any(|e| e == "STATUS=ready: 0 of 10 tasks running"),
        "{events:?}"
    );
}

#[actix_rt::test]
async fn a_task_reassigned_to_another_host_is_aborted_without_a_report() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("step running", LONG, || {
        h.runtime
            .lock()
            .execs_started
            .iter()
            .any(|(_, argv)| argv[0] == "sleep")
    })
    .await;
    h.hub.lock().tasks.get_mut(&id).unwrap().host_id = Some(2);
    wait_until("container removed", LONG, || {
        h.runtime.existing().is_empty()
    })
    .await;
    wait_until("actor gone", LONG, || h.snapshot().running.is_empty()).await;
    assert_eq!(h.hub.task(id).reports, 0);
    assert_eq!(
        h.hub.task(id).host_id,
        Some(2),
        "the other host's task is left alone"
    );
    assert!(
        matches!(&h.snapshot().recent[0].outcome, TaskOutcome::Aborted { reason } if reason.contains("reassigned"))
    );
    h.stop().await;
}

#[actix_rt::test]
async fn with_the_policy_disabled_every_task_gets_the_default_image_without_asking_the_hub() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().build_configs.insert(
        "f40-build".into(),
        json!({"extra": {"adjutant_image_policy": {"rules": [{"type": "default", "image": "img:hub"}]}}}),
    );
    let mut s = settings();
    s.live.policy_enabled = false;
    s.live.task_image_default = "img:config".into();
    let h = Harness::start(hub, FakeRuntime::default(), s.clone());
    let ask = || ResolveImage {
        tag: Some("f40-build".into()),
        event: None,
        arch: "x86_64".into(),
        task_type: "buildArch".into(),
    };
    assert_eq!(
        h.worker.supervisor.send(ask()).await.unwrap().image,
        "img:config"
    );
    assert_eq!(h.hub.count("getBuildConfig"), 0);
    // Turned on with SIGHUP.
    s.live.policy_enabled = true;
    h.worker
        .supervisor
        .do_send(WorkerSignal::Reload(Box::new(s)));
    assert_eq!(
        h.worker.supervisor.send(ask()).await.unwrap().image,
        "img:hub"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_container_whose_create_was_in_flight_at_cancel_is_still_removed() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("buildstep", vec![]);
    let runtime = FakeRuntime::default();
    *runtime.create_lag.lock().unwrap() = Duration::from_secs(3);
    let h = Harness::start(hub, runtime, settings());
    wait_until("registered", LONG, || {
        !h.worker.containers.live().is_empty()
    })
    .await;
    h.hub.cancel(id);
    wait_until("task actor gone", LONG, || h.snapshot().running.is_empty()).await;
    // The create finishes after the abort's sweep…
    wait_until("late container appeared", LONG, || {
        h.runtime.lock().created.len() == 1
    })
    .await;
    // …and the second sweep removes it.
    wait_until("late container removed", Duration::from_secs(10), || {
        h.runtime.existing().is_empty()
    })
    .await;
    assert_eq!(h.hub.task(id).reports, 0);
    h.stop().await;
}

#[actix_rt::test]
async fn a_task_actor_that_dies_is_cleaned_up_by_the_supervisor() {
    tokio::time::pause();
    let hub = current_hub();
    let id = hub.create_task("fork", vec![json!(1), json!(2)]);
    let runtime = FakeRuntime::default();
    // The actor's own container removal panics: nothing inside the actor catches that.
    runtime.remove_panics.store(1, Ordering::SeqCst);
    let h = Harness::start(hub, runtime, settings());
    wait_until("task closed", LONG, || {
        h.hub.task(id).state == TaskState::Closed
    })
    .await;
    wait_until("cleaned up", LONG, || h.snapshot().running.is_empty()).await;
    wait_until("container removed", LONG, || {
        h.runtime.existing().is_empty()
    })
    .await;
    let recent = h.snapshot().recent[0].clone();
    assert!(
        matches!(&recent.outcome, TaskOutcome::Freed { reason } if reason.contains("actor died")),
        "{recent:?}"
    );
    assert!(
        h.snapshot()
            .warnings
            .iter()
            .any(|w| w.message.contains("died without reporting"))
    );
    assert_eq!(h.hub.task(id).reports, 1, "its report stands");
    // The worker carries on.
    let next = h.hub.create_task("sleep", vec![json!(1)]);
    wait_until("next closes", LONG, || {
        h.hub.task(next).state == TaskState::Closed
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn a_long_lived_actor_that_dies_silently_is_restarted() {
    tokio::time::pause();
    let hub = current_hub();
    {
        let mut s = hub.lock();
        s.fail_once.insert(
            "host.getHost".into(),
            koji_adjutant_actors::HubError::from_fault(
                "host.getHost",
                koji_adjutant_actors::Fault::new(1007, "AuthExpired", "session expired"),
            ),
        );
        // The re-login panics outside any guard: the poller's context dies without `stopped`.
        s.panic_once.insert("login".into());
    }
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    wait_until("restart counted", LONG, || {
        h.snapshot().restarts.hub_poller == 1
    })
    .await;
    let polls = h.hub.count("host.getTasks");
    wait_until("polling again", LONG, || {
        h.hub.count("host.getTasks") > polls
    })
    .await;
    assert!(
        h.snapshot()
            .warnings
            .iter()
            .any(|w| w.message.contains("hub_poller"))
    );
    h.stop().await;
}

#[actix_rt::test]
async fn handlers_can_be_tested_without_a_worker() {
    use koji_adjutant_actors::handler::WorkerRequest;
    use koji_adjutant_actors::testing::standalone_context;

    let hub = current_hub();
    let mut handlers = HandlerRegistry::new();
    register_builtin(&mut handlers);
    let run = |args: Vec<Value>| {
        let id = hub.create_task("restart", args.clone());
        let info = TaskInfo {
            id,
            state: TaskState::Open,
            host_id: Some(ME),
            method: "restart".into(),
            arch: "noarch".into(),
            channel_id: 1,
            parent: None,
            owner: Some(1),
            priority: 20,
            completion_ts: None,
            request: Some(args.clone()),
        };
        let request = TaskRequest::decode(args);
        let handler = handlers.get("restart").unwrap().create(&request, &info);
        let (ctx, standalone) = standalone_context(
            info,
            request,
            ME,
            hub.task_session(7),
            Arc::new(FakeRuntime::default()),
            "img:test",
        );
        async move { (handler.run(ctx).await, standalone) }
    };
    let (result, standalone) = run(vec![json!({"id": ME})]).await;
    assert_eq!(result, Ok(json!("graceful restart initiated")));
    tokio::task::yield_now().await;
    assert_eq!(
        standalone.recorded().worker_requests,
        [WorkerRequest::RestartWhenIdle]
    );
    let (result, standalone) = run(vec![json!({"id": 99})]).await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(fault.message, "Host mismatch");
    tokio::task::yield_now().await;
    assert!(standalone.recorded().worker_requests.is_empty());
}

#[actix_rt::test]
async fn settings_changed_while_a_cycle_runs_are_not_lost() {
    tokio::time::pause();
    let hub = current_hub();
    hub.lock().get_host_delay = Duration::from_secs(5);
    let h = Harness::start(hub, FakeRuntime::default(), settings());
    // The first cycle is waiting on host.getHost when the reload arrives.
    wait_until("cycle in getHost", LONG, || {
        h.hub.count("host.getHost") == 1
    })
    .await;
    assert_eq!(h.hub.count("host.updateHost"), 0);
    let mut new = settings();
    new.live.maxjobs = 3;
    h.worker
        .supervisor
        .do_send(WorkerSignal::Reload(Box::new(new)));
    wait_until("two heartbeats", LONG, || {
        h.hub.count("host.updateHost") == 2
    })
    .await;
    let last = h.hub.calls_named("host.updateHost")[1].clone();
    assert_eq!(last.args["data"]["maxjobs"], json!(3));
    h.stop().await;
}
