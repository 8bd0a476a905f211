//! The Supervisor: spawns and watches the long-lived actors and the TaskActors, owns the
//! worker's life cycle (drain, shutdown, restart, reload) and publishes the worker snapshot.
//!
//! actix's own `Supervisor` restarts an actor only when it stops cleanly; a panic kills the
//! actor's future without a word. So each long-lived actor catches panics in its own work and
//! stops with the panic as its exit reason, and this Supervisor also checks every second that
//! each child's mailbox is still connected, treating a silent death as a crash.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures::FutureExt;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::handler::{
    HandlerRegistry, PhaseReporter, TaskContainers, TaskContext, TaskDescribed, TaskHandler,
    TaskPhaseChanged, TaskRequest, WorkerRequest,
};
use crate::hub::{HostHub, HubVersion, TaskHub, TaskInfo};
use crate::logs::LogTails;
use crate::policy::{
    DumpPolicy, ImageSource, InvalidatePolicy, PolicyCache, ResolveImage, ResolvedImage,
    UpdatePolicySettings,
};
use crate::poller::{HubPoller, Nudge, PollerCore, SetTaking, StopActor, UpdatePollerSettings};
use crate::probe::{HostProbe, Notifier};
use crate::registry::{
    ContainerRegistry, RegistryEvent, RegistryReader, RegistryState, panic_message,
};
use crate::runtime::{ContainerHandle, ContainerRuntime};
use crate::settings::WorkerSettings;
use crate::snapshot::{
    FinishedTask, PhaseEntry, Readiness, RunningTask, SnapshotReceiver, TaskOutcome, TaskPhase,
    WarningLog, WorkerSnapshot, WorkerState,
};
use crate::task::{AbortReason, AbortTask, AlertTask, TaskActor, TaskActorLinks, TaskEnded};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    HubPoller,
    PolicyCache,
    ContainerRegistry,
}

impl ChildKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::HubPoller => "hub_poller",
            Self::PolicyCache => "policy_cache",
            Self::ContainerRegistry => "container_registry",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    Stopped,
    Panicked(String),
}

/// A long-lived child has stopped.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    pub kind: ChildKind,
    /// Which incarnation stopped; a late notice from an older one is ignored.
    pub generation: u64,
    pub reason: ExitReason,
}

/// How a child tells the Supervisor that it stopped.
#[derive(Clone)]
pub struct ChildLink {
    supervisor: Recipient<ChildExited>,
    kind: ChildKind,
    generation: u64,
}

impl ChildLink {
    pub fn exited(&self, reason: ExitReason) {
        self.supervisor.do_send(ChildExited {
            kind: self.kind,
            generation: self.generation,
            reason,
        });
    }
}

/// How the worker ended; `main` acts on it (exit, re-exec, exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    Shutdown,
    /// SIGUSR1 or a `restart` task: re-exec the worker.
    Restart,
    /// Authentication refused or lost: exit with status 1.
    Fatal(String),
}

/// Signals, delivered as messages by `main`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum WorkerSignal {
    /// SIGTERM: drain; a second one aborts now.
    Terminate,
    /// SIGINT: abort now.
    Interrupt,
    /// SIGUSR1: restart once idle.
    RestartWhenIdle,
    /// SIGHUP: apply the live settings of a re-read configuration.
    Reload(Box<WorkerSettings>),
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ReportWarning {
    pub source: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunningTaskRef {
    pub task_id: i64,
    pub method: String,
}

/// The tasks the worker runs, as the poller needs them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunningSet {
    pub tasks: Vec<RunningTaskRef>,
    pub restart_pending: bool,
    pub draining: bool,
}

#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "RunningSet")]
pub struct GetRunningTasks;

#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct AlertTaskById(pub i64);

#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct AbortTaskById {
    pub task_id: i64,
    pub reason: AbortReason,
}

/// Start a TaskActor for a task the poller has opened. Answers whether it started; when it
/// did not (the worker is stopping), the Supervisor has freed the task.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct SpawnTask {
    pub info: TaskInfo,
    pub request: TaskRequest,
    pub handler: Box<dyn TaskHandler>,
    pub hub: Arc<dyn TaskHub>,
    pub weight: f64,
    pub session_start_ts: f64,
    pub host_id: i64,
}

#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PollerStatus {
    pub host_id: Option<i64>,
    pub host_name: Option<String>,
    pub hub_version: Option<HubVersion>,
    pub readiness: Readiness,
    pub task_load: f64,
    pub capacity: Option<f64>,
    pub free_space_mib: Option<u64>,
    pub heartbeat: SystemTime,
    pub session_start_ts: Option<f64>,
}

/// A poll cycle failed: the worker does not know whether it is ready until the next one works.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PollerProblem {
    pub message: String,
}

/// The poller cannot go on (authentication refused): shut down and exit with an error.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PollerFatal {
    pub message: String,
}

/// A pending restart may happen now (no task runs).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct RestartNow;

/// Stop one long-lived child (it is restarted with backoff), for operators and tests.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopChild(pub ChildKind);

/// The adapters the worker runs on.
pub struct WorkerDeps {
    pub hub: Arc<dyn HostHub>,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub probe: Arc<dyn HostProbe>,
    pub handlers: Arc<HandlerRegistry>,
    pub notifier: Arc<dyn Notifier>,
    pub settings: WorkerSettings,
}

/// What `main` and the web layer hold on to.
pub struct WorkerHandle {
    pub supervisor: Addr<Supervisor>,
    pub snapshot: SnapshotReceiver,
    pub containers: RegistryReader,
    /// The last lines of each running task's output.
    pub logs: LogTails,
    pub exit: oneshot::Receiver<WorkerExit>,
}

struct Child<A: Actor> {
    addr: Option<Addr<A>>,
    generation: u64,
    restarts: u64,
    consecutive_failures: u32,
    started_at: Instant,
    restart_scheduled: bool,
    /// Its mailbox was found closed once; a second time (its stop notice may still have been
    /// queued the first time) means it died without one.
    suspect: bool,
}

impl<A: Actor> Child<A> {
    fn new() -> Self {
        Self {
            addr: None,
            generation: 0,
            restarts: 0,
            consecutive_failures: 0,
            started_at: Instant::now(),
            restart_scheduled: false,
            suspect: false,
        }
    }
}

struct TaskEntry {
    addr: Addr<TaskActor>,
    subsession_id: i64,
    view: RunningTask,
    /// Its mailbox was found closed once; a second time means the actor died.
    suspect: bool,
}

/// Runs the Supervisor's own hub and runtime calls so that a panicking adapter cannot take the
/// root of the worker down with it.
async fn guarded(what: &'static str, work: impl std::future::Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(work).catch_unwind().await {
        tracing::error!(what, panic = %panic_message(&panic), "the supervisor's clean-up panicked");
    }
}

/// How long aborted tasks get to clean up before the worker frees them and logs out anyway.
const ABORT_BUDGET: Duration = Duration::from_secs(30);

pub struct Supervisor {
    deps: WorkerDeps,
    state: WorkerState,
    poller: Child<HubPoller>,
    policy: Child<PolicyCache>,
    registry: Child<ContainerRegistry>,
    registry_state: Arc<RegistryState>,
    /// Container events that arrived while the registry was restarting.
    pending_registry: Vec<RegistryEvent>,
    tasks: HashMap<i64, TaskEntry>,
    restart_pending: bool,
    drain_timer: Option<SpawnHandle>,
    shutdown_started: bool,
    /// Hub clean-up still running (`logoutChild`, freeing a dead task): shutdown lets it finish
    /// first, so the session is never logged out under it.
    cleanups: Vec<tokio::task::JoinHandle<()>>,
    /// The tasks running when shutdown began: all of them are freed at the end.
    shutdown_ids: Vec<i64>,
    exit_kind: WorkerExit,
    exit: Option<oneshot::Sender<WorkerExit>>,
    snapshot: WorkerSnapshot,
    snapshot_tx: watch::Sender<Arc<WorkerSnapshot>>,
    warnings: WarningLog,
    history: VecDeque<FinishedTask>,
    ready_notified: bool,
    logs: LogTails,
}

impl Supervisor {
    /// Starts the worker in the current actix System.
    pub fn start_worker(deps: WorkerDeps) -> WorkerHandle {
        let snapshot =
            WorkerSnapshot::new(deps.settings.live.maxjobs, deps.settings.live.minspace_mib);
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(snapshot.clone()));
        let (exit_tx, exit_rx) = oneshot::channel();
        let registry_state = Arc::new(RegistryState::default());
        let containers = RegistryReader::new(Arc::clone(&registry_state));
        let logs = LogTails::default();
        let supervisor = Supervisor {
            logs: logs.clone(),
            deps,
            state: WorkerState::Starting,
            poller: Child::new(),
            policy: Child::new(),
            registry: Child::new(),
            registry_state,
            pending_registry: Vec::new(),
            tasks: HashMap::new(),
            restart_pending: false,
            drain_timer: None,
            shutdown_started: false,
            cleanups: Vec::new(),
            shutdown_ids: Vec::new(),
            exit_kind: WorkerExit::Shutdown,
            exit: Some(exit_tx),
            snapshot,
            snapshot_tx,
            warnings: WarningLog::default(),
            history: VecDeque::new(),
            ready_notified: false,
        }
        .start();
        WorkerHandle {
            supervisor,
            snapshot: snapshot_rx,
            containers,
            logs,
            exit: exit_rx,
        }
    }

    fn link(&self, kind: ChildKind, generation: u64, ctx: &Context<Self>) -> ChildLink {
        ChildLink {
            supervisor: ctx.address().recipient(),
            kind,
            generation,
        }
    }

    fn start_child(&mut self, kind: ChildKind, ctx: &mut Context<Self>) {
        if matches!(self.state, WorkerState::Stopping | WorkerState::Stopped) {
            return;
        }
        match kind {
            ChildKind::HubPoller => {
                self.poller.generation += 1;
                let link = self.link(kind, self.poller.generation, ctx);
                let core = PollerCore::new(
                    Arc::clone(&self.deps.hub),
                    Arc::clone(&self.deps.probe),
                    Arc::clone(&self.deps.handlers),
                    self.deps.settings.clone(),
                    ctx.address(),
                    self.taking(),
                );
                self.poller.addr = Some(HubPoller::new(core, link).start());
                self.poller.started_at = Instant::now();
                self.poller.restart_scheduled = false;
            }
            ChildKind::PolicyCache => {
                self.policy.generation += 1;
                let link = self.link(kind, self.policy.generation, ctx);
                let live = &self.deps.settings.live;
                self.policy.addr = Some(
                    PolicyCache::new(
                        Arc::clone(&self.deps.hub),
                        live.policy_enabled,
                        live.policy_cache_ttl,
                        live.task_image_default.clone(),
                        link,
                        ctx.address().recipient(),
                    )
                    .start(),
                );
                self.policy.started_at = Instant::now();
                self.policy.restart_scheduled = false;
            }
            ChildKind::ContainerRegistry => {
                self.registry.generation += 1;
                let link = self.link(kind, self.registry.generation, ctx);
                let addr = ContainerRegistry::new(
                    Arc::clone(&self.registry_state),
                    Arc::clone(&self.deps.runtime),
                    self.deps.settings.worker_id.clone(),
                    self.deps.settings.container_history_ttl,
                    link,
                    std::mem::take(&mut self.pending_registry),
                )
                .start();
                self.registry.addr = Some(addr);
                self.registry.started_at = Instant::now();
                self.registry.restart_scheduled = false;
            }
        }
    }

    fn taking(&self) -> bool {
        self.state == WorkerState::Running && !self.restart_pending
    }

    fn child_exited(&mut self, kind: ChildKind, reason: ExitReason, ctx: &mut Context<Self>) {
        let backoff_initial = self.deps.settings.restart_backoff_initial;
        let backoff_max = self.deps.settings.restart_backoff_max;
        let stopping = matches!(self.state, WorkerState::Stopping | WorkerState::Stopped);
        let (restarts, consecutive, started_at) = match kind {
            ChildKind::HubPoller => {
                self.poller.addr = None;
                (
                    &mut self.poller.restarts,
                    &mut self.poller.consecutive_failures,
                    self.poller.started_at,
                )
            }
            ChildKind::PolicyCache => {
                self.policy.addr = None;
                (
                    &mut self.policy.restarts,
                    &mut self.policy.consecutive_failures,
                    self.policy.started_at,
                )
            }
            ChildKind::ContainerRegistry => {
                self.registry.addr = None;
                (
                    &mut self.registry.restarts,
                    &mut self.registry.consecutive_failures,
                    self.registry.started_at,
                )
            }
        };
        if stopping {
            return;
        }
        *restarts += 1;
        // A child that ran for a good while before failing starts its backoff afresh.
        if started_at.elapsed() > backoff_max {
            *consecutive = 0;
        }
        *consecutive += 1;
        let exponent = (*consecutive - 1).min(16);
        let delay = backoff_initial
            .saturating_mul(1u32 << exponent)
            .min(backoff_max);
        let description = match &reason {
            ExitReason::Stopped => "stopped".to_owned(),
            ExitReason::Panicked(message) => format!("panicked: {message}"),
        };
        metrics::counter!("adjutant_actor_restarts_total", "actor" => kind.name()).increment(1);
        let message = format!("{} {description}; restarting it in {delay:?}", kind.name());
        tracing::warn!("{message}");
        self.warnings.push("supervisor", message);
        match kind {
            ChildKind::HubPoller => self.poller.restart_scheduled = true,
            ChildKind::PolicyCache => self.policy.restart_scheduled = true,
            ChildKind::ContainerRegistry => self.registry.restart_scheduled = true,
        }
        ctx.run_later(delay, move |act, ctx| act.start_child(kind, ctx));
        self.publish();
    }

    /// Finds children whose mailbox died without a stop notice (a panic actix did not report).
    fn check_liveness(&mut self, ctx: &mut Context<Self>) {
        // Returns whether the child is dead: closed now and at the previous check.
        fn died<A: Actor<Context = Context<A>>>(child: &mut Child<A>) -> bool {
            match &child.addr {
                Some(addr) if !addr.connected() => {
                    let dead = child.suspect;
                    child.suspect = true;
                    dead
                }
                _ => {
                    child.suspect = false;
                    false
                }
            }
        }
        let dead = [
            (ChildKind::HubPoller, died(&mut self.poller)),
            (ChildKind::PolicyCache, died(&mut self.policy)),
            (ChildKind::ContainerRegistry, died(&mut self.registry)),
        ];
        for (kind, dead) in dead {
            if dead {
                self.child_exited(
                    kind,
                    ExitReason::Panicked("the actor died without stopping cleanly".to_owned()),
                    ctx,
                );
            }
        }
        self.check_task_liveness(ctx);
    }

    /// A TaskActor whose mailbox is gone without a `TaskEnded` died abnormally. It is given one
    /// more check (its `TaskEnded` may still be queued), then the Supervisor does its clean-up:
    /// the task's containers are removed and the task is freed so that it runs again.
    fn check_task_liveness(&mut self, ctx: &mut Context<Self>) {
        let mut dead = Vec::new();
        for (id, entry) in &mut self.tasks {
            if entry.addr.connected() {
                entry.suspect = false;
            } else if entry.suspect {
                dead.push(*id);
            } else {
                entry.suspect = true;
            }
        }
        for task_id in dead {
            let Some(entry) = self.tasks.remove(&task_id) else {
                continue;
            };
            let message = format!(
                "the TaskActor of task {task_id} died without reporting; freeing the task and removing its containers"
            );
            tracing::error!("{message}");
            self.warnings.push("supervisor", message);
            let containers: Vec<ContainerHandle> =
                RegistryReader::new(Arc::clone(&self.registry_state))
                    .for_task(task_id)
                    .into_iter()
                    .map(|record| ContainerHandle {
                        id: record.id,
                        name: record.name,
                    })
                    .collect();
            let runtime = Arc::clone(&self.deps.runtime);
            let hub = Arc::clone(&self.deps.hub);
            let registry = ctx.address();
            let subsession = entry.subsession_id;
            self.spawn_cleanup("dead task clean-up", async move {
                for container in containers {
                    if let Err(error) = runtime.remove(&container, true).await {
                        tracing::warn!(container = %container.name, %error, "could not remove the container of a dead task");
                    }
                    registry.do_send(RegistryEvent::Removed {
                        name: container.name,
                    });
                }
                let _ = hub.free_tasks(&[task_id]).await;
                let _ = hub.logout_child(subsession).await;
            });
            self.history.push_back(FinishedTask {
                task_id,
                method: entry.view.method,
                details: entry.view.details,
                started: entry.view.started,
                finished: SystemTime::now(),
                outcome: TaskOutcome::Freed {
                    reason: "the task's actor died".to_owned(),
                },
                timeline: entry.view.timeline,
            });
            self.publish();
        }
    }

    fn publish(&mut self) {
        metrics::gauge!("adjutant_tasks_running").set(self.tasks.len() as f64);
        let mut running: Vec<RunningTask> = self.tasks.values().map(|t| t.view.clone()).collect();
        running.sort_by_key(|t| t.task_id);
        self.snapshot.state = self.state;
        self.snapshot.running = running;
        self.snapshot.recent = self.history.iter().rev().cloned().collect();
        self.snapshot.restarts.hub_poller = self.poller.restarts;
        self.snapshot.restarts.policy_cache = self.policy.restarts;
        self.snapshot.restarts.container_registry = self.registry.restarts;
        self.snapshot.warnings = self.warnings.to_vec();
        self.snapshot.maxjobs = self.deps.settings.live.maxjobs;
        self.snapshot.minspace_mib = self.deps.settings.live.minspace_mib;
        self.snapshot_tx
            .send_replace(Arc::new(self.snapshot.clone()));
    }

    fn prune_history(&mut self) {
        let ttl = self.deps.settings.task_history_ttl;
        let now = SystemTime::now();
        self.history.retain(|task| {
            now.duration_since(task.finished)
                .map(|age| age <= ttl)
                .unwrap_or(true)
        });
        while self.history.len() > 500 {
            self.history.pop_front();
        }
    }

    fn begin_drain(&mut self, ctx: &mut Context<Self>) {
        match self.state {
            WorkerState::Draining => {
                tracing::warn!("second termination request: aborting the running tasks now");
                self.begin_shutdown(ctx);
            }
            WorkerState::Stopping | WorkerState::Stopped => {
                tracing::warn!("termination requested again; the worker is already stopping");
            }
            _ => {
                self.state = WorkerState::Draining;
                if let Some(poller) = &self.poller.addr {
                    poller.do_send(SetTaking(false));
                }
                let drain = self.deps.settings.live.drain_timeout;
                if drain.is_zero() || self.tasks.is_empty() {
                    self.begin_shutdown(ctx);
                } else {
                    tracing::info!(
                        tasks = self.tasks.len(),
                        ?drain,
                        "draining: letting running tasks finish"
                    );
                    self.deps.notifier.status(&format!(
                        "draining: {} tasks running, {}s left",
                        self.tasks.len(),
                        drain.as_secs()
                    ));
                    self.drain_timer = Some(ctx.run_later(drain, |act, ctx| {
                        tracing::warn!("drain timeout reached: aborting the remaining tasks");
                        act.begin_shutdown(ctx);
                    }));
                    self.publish();
                }
            }
        }
    }

    /// kojid's `shutdown()`: abort every task, then free them, report not ready and log out.
    fn begin_shutdown(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, WorkerState::Stopping | WorkerState::Stopped) {
            return;
        }
        self.state = WorkerState::Stopping;
        self.deps.notifier.stopping();
        if let Some(timer) = self.drain_timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(poller) = self.poller.addr.take() {
            poller.do_send(StopActor);
        }
        self.shutdown_ids = self.tasks.keys().copied().collect();
        for entry in self.tasks.values() {
            entry.addr.do_send(AbortTask {
                reason: AbortReason::Shutdown,
            });
        }
        self.publish();
        if self.tasks.is_empty() {
            self.finish_shutdown(ctx);
        } else {
            ctx.run_later(ABORT_BUDGET, |act, ctx| {
                tracing::warn!(
                    tasks = act.tasks.len(),
                    "tasks did not finish aborting in time; freeing them anyway"
                );
                act.finish_shutdown(ctx);
            });
        }
    }

    /// Runs fire-and-forget hub clean-up beside the actor rather than on its context. The hub
    /// client serialises a session's calls on a fair lock, and shutdown `wait`s on the context
    /// for its own calls: a future spawned on the context that already holds the session's
    /// turn would then never be polled again, and shutdown would wait on it for ever.
    fn spawn_cleanup(
        &mut self,
        what: &'static str,
        work: impl std::future::Future<Output = ()> + 'static,
    ) {
        self.cleanups.retain(|cleanup| !cleanup.is_finished());
        self.cleanups.push(actix::spawn(guarded(what, work)));
    }

    fn finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.shutdown_started {
            return;
        }
        self.shutdown_started = true;
        let hub = Arc::clone(&self.deps.hub);
        let mut ids = std::mem::take(&mut self.shutdown_ids);
        ids.extend(self.tasks.keys().copied());
        ids.sort_unstable();
        ids.dedup();
        let cleanups = std::mem::take(&mut self.cleanups);
        guarded("shutdown", async move {
            for cleanup in cleanups {
                let _ = cleanup.await;
            }
            if let Err(error) = hub.free_tasks(&ids).await {
                tracing::warn!(%error, "could not free the tasks at shutdown; the hub frees them after its host timeout");
            }
            if let Err(error) = hub.update_host(0.0, false, None).await {
                tracing::warn!(%error, "could not report not-ready at shutdown");
            }
            if let Err(error) = hub.logout().await {
                tracing::warn!(%error, "logout failed");
            }
        })
        .into_actor(self)
        .map(|(), act, ctx| act.exit_now(ctx))
        .wait(ctx);
    }

    fn restart_now(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, WorkerState::Stopping | WorkerState::Stopped)
            || self.shutdown_started
        {
            return;
        }
        tracing::info!("no task running: restarting as requested");
        self.deps.notifier.stopping();
        self.state = WorkerState::Stopping;
        self.shutdown_started = true;
        self.exit_kind = WorkerExit::Restart;
        if let Some(poller) = self.poller.addr.take() {
            poller.do_send(StopActor);
        }
        let hub = Arc::clone(&self.deps.hub);
        let cleanups = std::mem::take(&mut self.cleanups);
        guarded("logout before restart", async move {
            for cleanup in cleanups {
                let _ = cleanup.await;
            }
            // The new process asks for an exclusive session, which this one must release.
            if let Err(error) = hub.logout().await {
                tracing::warn!(%error, "logout before restart failed");
            }
        })
        .into_actor(self)
        .map(|(), act, ctx| act.exit_now(ctx))
        .wait(ctx);
    }

    fn exit_now(&mut self, ctx: &mut Context<Self>) {
        self.state = WorkerState::Stopped;
        if let Some(policy) = self.policy.addr.take() {
            policy.do_send(StopActor);
        }
        if let Some(registry) = self.registry.addr.take() {
            registry.do_send(StopActor);
        }
        self.publish();
        if let Some(exit) = self.exit.take() {
            let _ = exit.send(self.exit_kind.clone());
        }
        ctx.stop();
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state = WorkerState::Running;
        self.deps.notifier.status("starting: logging in to the hub");
        self.start_child(ChildKind::ContainerRegistry, ctx);
        self.start_child(ChildKind::PolicyCache, ctx);
        self.start_child(ChildKind::HubPoller, ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.check_liveness(ctx));
        ctx.run_interval(Duration::from_secs(5), |act, ctx| {
            act.prune_history();
            if let Some(policy) = act.policy.addr.clone() {
                policy
                    .send(DumpPolicy)
                    .into_actor(act)
                    .map(|dump, act, _| {
                        if let Ok(dump) = dump {
                            act.snapshot.policy = dump;
                            act.publish();
                        }
                    })
                    .spawn(ctx);
            }
            act.publish();
        });
        self.publish();
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: ChildExited, ctx: &mut Context<Self>) {
        let (current, has_addr) = match message.kind {
            ChildKind::HubPoller => (self.poller.generation, self.poller.addr.is_some()),
            ChildKind::PolicyCache => (self.policy.generation, self.policy.addr.is_some()),
            ChildKind::ContainerRegistry => {
                (self.registry.generation, self.registry.addr.is_some())
            }
        };
        let already_handled = !has_addr
            && match message.kind {
                ChildKind::HubPoller => self.poller.restart_scheduled,
                ChildKind::PolicyCache => self.policy.restart_scheduled,
                ChildKind::ContainerRegistry => self.registry.restart_scheduled,
            };
        if message.generation != current || already_handled {
            return;
        }
        self.child_exited(message.kind, message.reason, ctx);
    }
}

impl Handler<StopChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: StopChild, _ctx: &mut Context<Self>) {
        match message.0 {
            ChildKind::HubPoller => {
                if let Some(addr) = &self.poller.addr {
                    addr.do_send(StopActor);
                }
            }
            ChildKind::PolicyCache => {
                if let Some(addr) = &self.policy.addr {
                    addr.do_send(StopActor);
                }
            }
            ChildKind::ContainerRegistry => {
                if let Some(addr) = &self.registry.addr {
                    addr.do_send(StopActor);
                }
            }
        }
    }
}

impl Handler<SpawnTask> for Supervisor {
    type Result = bool;

    fn handle(&mut self, message: SpawnTask, ctx: &mut Context<Self>) -> bool {
        let task_id = message.info.id;
        // A task opened just before a restart became pending still runs: the restart waits
        // for it. One opened as the worker stops goes back at once.
        if !self.taking() && self.state != WorkerState::RestartPending {
            // Opened just as the worker began to stop: give it back at once.
            let hub = Arc::clone(&self.deps.hub);
            let subsession = Arc::clone(&message.hub);
            self.spawn_cleanup("freeing a task opened during shutdown", async move {
                let _ = hub.free_tasks(&[task_id]).await;
                let _ = subsession.logout().await;
            });
            return false;
        }
        let settings = &self.deps.settings;
        let method = message.info.method.clone();
        let cancel = CancellationToken::new();
        let containers = TaskContainers::new(
            task_id,
            method.clone(),
            settings.worker_id.clone(),
            Arc::clone(&self.deps.runtime),
            ctx.address().recipient(),
            cancel.clone(),
        );
        let phases = PhaseReporter::new(
            task_id,
            method.clone(),
            ctx.address().recipient(),
            ctx.address().recipient(),
        );
        let context = TaskContext {
            task_id,
            info: message.info.clone(),
            request: message.request,
            host_id: message.host_id,
            session_start_ts: message.session_start_ts,
            hub: Arc::clone(&message.hub),
            runtime: Arc::clone(&self.deps.runtime),
            containers,
            cancel,
            phases,
            logs: Arc::new(self.logs.sink(task_id)),
            limits: settings.live.task_limits.clone(),
            default_image: settings.live.task_image_default.clone(),
            pull_policy: settings.live.pull_policy,
            alerts: Arc::new(Notify::new()),
            images: ctx.address().recipient(),
            worker: ctx.address().recipient(),
        };
        let links = TaskActorLinks {
            ended: ctx.address().recipient(),
            worker: ctx.address().recipient(),
        };
        let subsession_id = message.hub.session_id();
        let addr = TaskActor::new(message.handler, context, links).start();
        let now = SystemTime::now();
        self.tasks.insert(
            task_id,
            TaskEntry {
                addr,
                subsession_id,
                view: RunningTask {
                    task_id,
                    method,
                    arch: message.info.arch.clone(),
                    owner: message.info.owner,
                    parent: message.info.parent,
                    details: BTreeMap::new(),
                    weight: message.weight,
                    started: now,
                    phase: TaskPhase::Opened,
                    timeline: Vec::new(),
                    waiting: false,
                },
                suspect: false,
            },
        );
        self.publish();
        true
    }
}

impl Handler<GetRunningTasks> for Supervisor {
    type Result = MessageResult<GetRunningTasks>;

    fn handle(&mut self, _: GetRunningTasks, _ctx: &mut Context<Self>) -> Self::Result {
        let mut tasks: Vec<RunningTaskRef> = self
            .tasks
            .iter()
            .map(|(id, entry)| RunningTaskRef {
                task_id: *id,
                method: entry.view.method.clone(),
            })
            .collect();
        tasks.sort_by_key(|t| t.task_id);
        MessageResult(RunningSet {
            tasks,
            restart_pending: self.restart_pending,
            draining: matches!(
                self.state,
                WorkerState::Draining | WorkerState::Stopping | WorkerState::Stopped
            ),
        })
    }
}

impl Handler<AlertTaskById> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: AlertTaskById, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.tasks.get(&message.0) {
            entry.addr.do_send(AlertTask);
        }
    }
}

impl Handler<AbortTaskById> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: AbortTaskById, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.tasks.get(&message.task_id) {
            entry.addr.do_send(AbortTask {
                reason: message.reason,
            });
        }
    }
}

impl Handler<TaskPhaseChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: TaskPhaseChanged, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.tasks.get_mut(&message.task_id) {
            let view = &mut entry.view;
            view.waiting = message.waiting;
            if view.timeline.last().map(|e| e.phase) != Some(message.phase) {
                if let Some(previous) = view.timeline.last()
                    && let Ok(spent) = message.at.duration_since(previous.since)
                {
                    metrics::histogram!("adjutant_task_phase_duration_seconds", "method" => view.method.clone(), "phase" => previous.phase.name())
                        .record(spent.as_secs_f64());
                }
                view.timeline.push(PhaseEntry {
                    phase: message.phase,
                    since: message.at,
                });
            }
            view.phase = message.phase;
            self.publish();
        }
    }
}

impl Handler<TaskDescribed> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: TaskDescribed, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.tasks.get_mut(&message.task_id) {
            entry.view.details.insert(message.key, message.value);
            self.publish();
        }
    }
}

impl Handler<TaskEnded> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: TaskEnded, ctx: &mut Context<Self>) {
        let Some(entry) = self.tasks.remove(&message.task_id) else {
            return;
        };
        self.logs.forget(message.task_id);
        if let Ok(elapsed) = entry.view.started.elapsed() {
            metrics::histogram!("adjutant_task_duration_seconds", "method" => entry.view.method.clone(), "outcome" => message.outcome.label())
                .record(elapsed.as_secs_f64());
        }
        let hub = Arc::clone(&self.deps.hub);
        let subsession = entry.subsession_id;
        // kojid's parent logs the child's subsession out once the task process is gone.
        if self.state != WorkerState::Stopped {
            self.spawn_cleanup("logoutChild", async move {
                if let Err(error) = hub.logout_child(subsession).await {
                    tracing::debug!(%error, "logoutChild failed");
                }
            });
        }
        let mut timeline = entry.view.timeline;
        if timeline.last().map(|e| e.phase) != Some(TaskPhase::Done) {
            timeline.push(PhaseEntry {
                phase: TaskPhase::Done,
                since: SystemTime::now(),
            });
        }
        self.history.push_back(FinishedTask {
            task_id: message.task_id,
            method: entry.view.method,
            details: entry.view.details,
            started: entry.view.started,
            finished: SystemTime::now(),
            outcome: message.outcome,
            timeline,
        });
        self.prune_history();
        if let Some(poller) = &self.poller.addr {
            poller.do_send(Nudge);
        }
        if self.tasks.is_empty() {
            match self.state {
                WorkerState::Draining => self.begin_shutdown(ctx),
                WorkerState::Stopping => self.finish_shutdown(ctx),
                WorkerState::RestartPending => self.restart_now(ctx),
                _ => {}
            }
        }
        self.publish();
    }
}

impl Handler<PollerStatus> for Supervisor {
    type Result = ();

    fn handle(&mut self, status: PollerStatus, _ctx: &mut Context<Self>) {
        let snapshot = &mut self.snapshot;
        snapshot.host_id = status.host_id;
        snapshot.host_name = status.host_name;
        snapshot.hub_version = status.hub_version;
        snapshot.logged_in = true;
        snapshot.last_heartbeat = Some(status.heartbeat);
        snapshot.task_load = status.task_load;
        snapshot.capacity = status.capacity;
        snapshot.free_space_mib = status.free_space_mib;
        snapshot.readiness = status.readiness.clone();
        metrics::gauge!("adjutant_ready").set(if status.readiness.ready { 1.0 } else { 0.0 });
        metrics::gauge!("adjutant_task_load").set(status.task_load);
        if let Some(capacity) = status.capacity {
            metrics::gauge!("adjutant_capacity").set(capacity);
        }
        let notifier = &self.deps.notifier;
        if !self.ready_notified {
            self.ready_notified = true;
            notifier.ready();
        }
        notifier.watchdog();
        notifier.status(&match &status.readiness.reason {
            None => format!(
                "ready: {} of {} tasks running",
                self.tasks.len(),
                self.deps.settings.live.maxjobs
            ),
            Some(reason) => format!("not ready ({reason}): {} tasks running", self.tasks.len()),
        });
        self.publish();
    }
}

impl Handler<PollerProblem> for Supervisor {
    type Result = ();

    fn handle(&mut self, problem: PollerProblem, _ctx: &mut Context<Self>) {
        self.snapshot.readiness = Readiness {
            ready: false,
            reason: Some(format!("the last poll failed: {}", problem.message)),
        };
        self.warnings.push("hub_poller", problem.message);
        metrics::gauge!("adjutant_ready").set(0.0);
        self.publish();
    }
}

impl Handler<PollerFatal> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: PollerFatal, ctx: &mut Context<Self>) {
        tracing::error!(message = %message.message, "fatal hub error; shutting down");
        self.snapshot.logged_in = false;
        self.warnings.push("hub_poller", message.message.clone());
        self.exit_kind = WorkerExit::Fatal(message.message);
        self.begin_shutdown(ctx);
    }
}

impl Handler<RestartNow> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: RestartNow, ctx: &mut Context<Self>) {
        if self.restart_pending && self.tasks.is_empty() {
            self.restart_now(ctx);
        }
    }
}

impl Handler<WorkerRequest> for Supervisor {
    type Result = ();

    fn handle(&mut self, request: WorkerRequest, ctx: &mut Context<Self>) {
        match request {
            WorkerRequest::RestartWhenIdle => self.handle(WorkerSignal::RestartWhenIdle, ctx),
            WorkerRequest::Shutdown => {
                tracing::warn!("a shutdown task asked the worker to stop");
                self.begin_shutdown(ctx);
            }
        }
    }
}

impl Handler<WorkerSignal> for Supervisor {
    type Result = ();

    fn handle(&mut self, signal: WorkerSignal, ctx: &mut Context<Self>) {
        match signal {
            WorkerSignal::Terminate => self.begin_drain(ctx),
            WorkerSignal::Interrupt => {
                if self.state == WorkerState::Stopping {
                    tracing::warn!("interrupted again while stopping: finishing now");
                    self.finish_shutdown(ctx);
                } else {
                    self.begin_shutdown(ctx);
                }
            }
            WorkerSignal::RestartWhenIdle => {
                if self.state != WorkerState::Running {
                    return;
                }
                self.restart_pending = true;
                self.state = WorkerState::RestartPending;
                if let Some(poller) = &self.poller.addr {
                    poller.do_send(SetTaking(false));
                }
                self.deps
                    .notifier
                    .status("restart pending: waiting for running tasks to finish");
                if self.tasks.is_empty() {
                    self.restart_now(ctx);
                }
                self.publish();
            }
            WorkerSignal::Reload(settings) => {
                for name in self.deps.settings.restart_only_changes(&settings) {
                    let message = format!("setting {name} changed; it applies after a restart");
                    tracing::warn!("{message}");
                    self.warnings.push("reload", message);
                }
                let live = settings.live.clone();
                tracing::info!(?live, "reloaded the live settings");
                self.deps.settings.live = live.clone();
                if let Some(poller) = &self.poller.addr {
                    poller.do_send(UpdatePollerSettings(live.clone()));
                }
                if let Some(policy) = &self.policy.addr {
                    policy.do_send(UpdatePolicySettings {
                        enabled: live.policy_enabled,
                        ttl: live.policy_cache_ttl,
                        default_image: live.task_image_default.clone(),
                    });
                }
                self.publish();
            }
        }
    }
}

impl Handler<ReportWarning> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: ReportWarning, _ctx: &mut Context<Self>) {
        self.warnings.push(&message.source, message.message);
        self.publish();
    }
}

impl Handler<RegistryEvent> for Supervisor {
    type Result = ResponseFuture<()>;

    /// Resolves once the registry has applied the event (or buffered it for the next
    /// registry), so that a TaskActor can register a container before creating it.
    fn handle(&mut self, event: RegistryEvent, _ctx: &mut Context<Self>) -> Self::Result {
        match &self.registry.addr {
            Some(addr) if addr.connected() => {
                let addr = addr.clone();
                Box::pin(async move {
                    if let Err(error) = addr.send(event.clone()).await {
                        tracing::warn!(%error, ?event, "the container registry did not take an event");
                    }
                })
            }
            _ => {
                self.pending_registry.push(event);
                Box::pin(async {})
            }
        }
    }
}

impl Handler<InvalidatePolicy> for Supervisor {
    type Result = ();

    fn handle(&mut self, message: InvalidatePolicy, _ctx: &mut Context<Self>) {
        if let Some(policy) = &self.policy.addr {
            policy.do_send(message);
        }
    }
}

impl Handler<ResolveImage> for Supervisor {
    type Result = ResponseFuture<ResolvedImage>;

    fn handle(&mut self, request: ResolveImage, _ctx: &mut Context<Self>) -> Self::Result {
        let fallback = ResolvedImage {
            image: self.deps.settings.live.task_image_default.clone(),
            source: ImageSource::ConfigDefault,
        };
        let policy = self.policy.addr.clone();
        Box::pin(async move {
            match policy {
                Some(policy) => policy.send(request).await.unwrap_or(fallback),
                None => fallback,
            }
        })
    }
}
