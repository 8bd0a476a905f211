//! The HubPoller: kojid's main loop (§2.1–2.6, §2.12) on the main session.
//!
//! Each cycle runs as one future over a [`PollerCore`] that the actor lends out and gets back,
//! so that the actor's mailbox stays responsive and a panic in a cycle is caught and turned
//! into a stop that the Supervisor answers with a restart.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures::FutureExt;
use tokio::time::Instant;

use crate::error::{ErrorClass, HubError, fault_codes};
use crate::handler::{HandlerRegistry, TaskRequest};
use crate::hub::{
    BUILDROOT_EXPIRED, HostData, HostHub, HostInfo, HubVersion, OfferedTask, SchedulingProtocol,
    SessionInfo, TaskState,
};
use crate::probe::HostProbe;
use crate::registry::panic_message;
use crate::settings::{LiveSettings, WorkerSettings};
use crate::snapshot::Readiness;
use crate::supervisor::{
    ChildLink, ExitReason, GetRunningTasks, PollerFatal, PollerProblem, PollerStatus, RunningSet,
    SpawnTask, Supervisor,
};
use crate::task::AbortReason;

/// Stop or resume taking tasks (drain, restart pending). Heartbeats go on either way.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetTaking(pub bool);

/// New live settings (SIGHUP).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UpdatePollerSettings(pub LiveSettings);

/// Something suggests work is coming (a task ended): poll fast for a while.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Nudge;

/// Ask a long-lived actor to stop (the Supervisor restarts it; used by operators and tests).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopActor;

/// The poller's state that survives between cycles.
pub struct PollerCore {
    hub: Arc<dyn HostHub>,
    probe: Arc<dyn HostProbe>,
    handlers: Arc<HandlerRegistry>,
    settings: WorkerSettings,
    supervisor: Addr<Supervisor>,
    host_id: Option<i64>,
    session: Option<SessionInfo>,
    version: Option<HubVersion>,
    host: Option<HostInfo>,
    host_data_sent: Option<HostData>,
    taking: bool,
    /// Legacy protocol: when this host first saw each FREE task (the avail delay's clock).
    first_seen: HashMap<i64, Instant>,
    /// Whether the last full cycle found the worker ready; probes are pointless otherwise.
    last_ready: bool,
}

/// What one cycle tells the actor.
struct CycleOutcome {
    taken: bool,
}

impl PollerCore {
    pub fn new(
        hub: Arc<dyn HostHub>,
        probe: Arc<dyn HostProbe>,
        handlers: Arc<HandlerRegistry>,
        settings: WorkerSettings,
        supervisor: Addr<Supervisor>,
        taking: bool,
    ) -> Self {
        Self {
            hub,
            probe,
            handlers,
            settings,
            supervisor,
            host_id: None,
            session: None,
            version: None,
            host: None,
            host_data_sent: None,
            taking,
            first_seen: HashMap::new(),
            last_ready: false,
        }
    }

    fn host_data(&self) -> HostData {
        HostData {
            methods: self.handlers.methods(),
            maxjobs: self.settings.live.maxjobs,
        }
    }

    /// §2.1: identify ourselves. Login and `exclusiveSession` are the hub client's part.
    async fn start_up(&mut self) -> Result<i64, HubError> {
        if let Some(id) = self.host_id {
            return Ok(id);
        }
        let version = self.hub.hub_version().await?;
        let host_id = self.hub.get_id().await?;
        let session = self.hub.get_session_info().await?;
        tracing::info!(host_id, %version, protocol = ?version.protocol(), "connected to the hub");
        self.version = Some(version);
        self.session = Some(session);
        self.host_id = Some(host_id);
        Ok(host_id)
    }

    async fn running(&self) -> RunningSet {
        self.supervisor
            .send(GetRunningTasks)
            .await
            .unwrap_or_default()
    }

    async fn cycle(&mut self, taken_before: bool) -> Result<CycleOutcome, HubError> {
        let me = self.start_up().await?;
        let running = self.running().await;
        if !taken_before {
            self.update_buildroots(me, &running).await?;
        }
        let task_load = self.update_tasks(me, &running).await?;
        // The running set may have changed while we talked to the hub.
        let running = self.running().await;
        let readiness = self.ready_for_task(task_load, &running).await?;
        if running.restart_pending && running.tasks.is_empty() {
            self.supervisor.do_send(crate::supervisor::RestartNow);
            return Ok(CycleOutcome { taken: false });
        }
        let protocol = self
            .version
            .map(HubVersion::protocol)
            .unwrap_or(SchedulingProtocol::Assigned);
        let data = self.host_data();
        match protocol {
            SchedulingProtocol::Assigned => {
                self.hub
                    .update_host(task_load, readiness.ready, Some(&data))
                    .await?
            }
            SchedulingProtocol::AssignedWithoutHostData => {
                self.hub
                    .update_host(task_load, readiness.ready, None)
                    .await?;
                if self.host_data_sent.as_ref() != Some(&data) {
                    self.hub.set_host_data(&data).await?;
                    self.host_data_sent = Some(data);
                }
            }
            SchedulingProtocol::Legacy => {
                self.hub
                    .update_host(task_load, readiness.ready, None)
                    .await?
            }
        }
        self.report_status(task_load, &readiness);
        self.last_ready = readiness.ready;
        if !readiness.ready {
            return Ok(CycleOutcome { taken: false });
        }
        let taken = match protocol {
            SchedulingProtocol::Legacy => self.take_legacy(me, &running).await?,
            _ => self.take_assigned(me, &running).await?,
        };
        Ok(CycleOutcome { taken })
    }

    /// The fast poll between full cycles: one hub call that tells whether a task is waiting
    /// for us, so that an idle worker stays at about one call a second.
    async fn probe(&mut self) -> Result<bool, HubError> {
        let Some(me) = self.host_id else {
            return Ok(true);
        };
        if !self.last_ready || !self.taking {
            return Ok(false);
        }
        let running = self.running().await;
        let local: HashSet<i64> = running.tasks.iter().map(|t| t.task_id).collect();
        let protocol = self
            .version
            .map(HubVersion::protocol)
            .unwrap_or(SchedulingProtocol::Assigned);
        let found = match protocol {
            SchedulingProtocol::Legacy => {
                self.hub.get_load_data().await?.tasks.iter().any(|task| {
                    !local.contains(&task.id)
                        && self.handlers.get(&task.method).is_some()
                        && (task.state == TaskState::Free
                            || (task.state == TaskState::Assigned && task.host_id == Some(me)))
                })
            }
            _ => self.hub.get_tasks().await?.iter().any(|task| {
                !local.contains(&task.id)
                    && task.state == TaskState::Assigned
                    && task.host_id == Some(me)
            }),
        };
        Ok(found)
    }

    fn report_status(&self, task_load: f64, readiness: &Readiness) {
        self.supervisor.do_send(PollerStatus {
            host_id: self.host_id,
            host_name: self.host.as_ref().map(|h| h.name.clone()),
            hub_version: self.version,
            readiness: readiness.clone(),
            task_load,
            capacity: self.host.as_ref().map(|h| h.capacity),
            free_space_mib: self.probe.free_space_mib(&self.settings.mockdir).ok(),
            heartbeat: SystemTime::now(),
            session_start_ts: self.session.as_ref().map(|s| s.start_ts),
        });
    }

    /// §2.3 step 1: expire this host's buildroots whose task no TaskActor runs.
    async fn update_buildroots(&self, me: i64, running: &RunningSet) -> Result<(), HubError> {
        let ids: HashSet<i64> = running.tasks.iter().map(|t| t.task_id).collect();
        for buildroot in self.hub.list_active_buildroots(me).await? {
            let ours = buildroot.task_id.is_some_and(|task| ids.contains(&task));
            if !ours {
                tracing::info!(buildroot = buildroot.id, task = ?buildroot.task_id, "expiring a buildroot no running task owns");
                self.hub
                    .set_buildroot_state(buildroot.id, BUILDROOT_EXPIRED)
                    .await?;
            }
        }
        Ok(())
    }

    /// §2.4: free stale tasks, pass alerts on, abort cancelled or reassigned tasks, and sum the
    /// load of the non-waiting ones.
    async fn update_tasks(&self, me: i64, running: &RunningSet) -> Result<f64, HubError> {
        let local: HashSet<i64> = running.tasks.iter().map(|t| t.task_id).collect();
        let open = self.hub.get_host_tasks().await?;
        let mut stale = Vec::new();
        let mut task_load = 0.0;
        for task in &open {
            if !local.contains(&task.id) {
                stale.push(task.id);
            } else if task.alert {
                self.supervisor
                    .do_send(crate::supervisor::AlertTaskById(task.id));
            }
            if !task.waiting {
                task_load += task.weight;
            }
        }
        if !stale.is_empty() {
            tracing::info!(tasks = ?stale, "freeing OPEN tasks that no TaskActor owns");
            self.hub.free_tasks(&stale).await?;
        }
        let open_ids: HashSet<i64> = open.iter().map(|t| t.id).collect();
        for task in running
            .tasks
            .iter()
            .filter(|t| !open_ids.contains(&t.task_id))
        {
            let info = self.hub.get_task_info(task.task_id, false).await?;
            // kojid aborts on CANCELED or a different host. A task that went back to FREE or
            // ASSIGNED was taken back too, even when the scheduler has already handed it to us
            // again: the old run must stop before the new one starts.
            let reason = match info.state {
                TaskState::Canceled => Some(AbortReason::Canceled),
                TaskState::Free => Some(AbortReason::Freed),
                TaskState::Assigned if info.host_id == Some(me) => Some(AbortReason::Freed),
                _ if info.host_id.is_none() => Some(AbortReason::Freed),
                _ if info.host_id != Some(me) => Some(AbortReason::Reassigned),
                // CLOSED or FAILED and the actor is still finishing: lingering, leave it.
                _ => None,
            };
            if let Some(reason) = reason {
                self.supervisor.do_send(crate::supervisor::AbortTaskById {
                    task_id: task.task_id,
                    reason,
                });
            }
        }
        Ok(task_load)
    }

    /// §2.5 `readyForTask`, with the reason shown on the dashboard.
    async fn ready_for_task(
        &mut self,
        task_load: f64,
        running: &RunningSet,
    ) -> Result<Readiness, HubError> {
        let not = |reason: String| {
            tracing::info!(reason = %reason, "not ready for tasks");
            Ok(Readiness {
                ready: false,
                reason: Some(reason),
            })
        };
        if running.restart_pending {
            return not("Pending restart".to_owned());
        }
        if !self.taking || running.draining {
            return not("Draining: the worker is shutting down".to_owned());
        }
        let host = self.hub.get_host().await?;
        self.host = Some(host.clone());
        if !host.enabled {
            return not("Host is disabled".to_owned());
        }
        if task_load > host.capacity {
            return not(format!(
                "Over capacity: task load {task_load:.2} exceeds capacity {:.2}",
                host.capacity
            ));
        }
        let live = &self.settings.live;
        if running.tasks.len() >= live.maxjobs {
            return not(format!(
                "Full queue: {} tasks running, maxjobs is {}",
                running.tasks.len(),
                live.maxjobs
            ));
        }
        match self.probe.free_space_mib(&self.settings.mockdir) {
            Ok(free) if free < live.minspace_mib => {
                return not(format!(
                    "Insufficient disk space in {}: {free} MiB free, {} MiB required (minspace)",
                    self.settings.mockdir.display(),
                    live.minspace_mib
                ));
            }
            Ok(_) => {}
            Err(error) => return not(format!("{error}; fix the mockdir setting or create it")),
        }
        let max_load = live.max_load_per_cpu * self.probe.online_cpus() as f64;
        match self.probe.load_average_1m() {
            Ok(load) if load > max_load => {
                return not(format!("Load average {load:.2} > {max_load:.2}"));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the load average; ignoring it"),
        }
        Ok(Readiness {
            ready: true,
            reason: None,
        })
    }

    /// §2.6 for hubs ≥1.34: the hub assigned tasks to us.
    async fn take_assigned(&mut self, me: i64, running: &RunningSet) -> Result<bool, HubError> {
        let local: HashSet<i64> = running.tasks.iter().map(|t| t.task_id).collect();
        for task in self.hub.get_tasks().await? {
            if local.contains(&task.id) {
                tracing::debug!(
                    task_id = task.id,
                    "offered a task we already run (reassigned?)"
                );
                continue;
            }
            if task.state != TaskState::Assigned || task.host_id != Some(me) {
                tracing::error!(task_id = task.id, state = task.state.name(), host = ?task.host_id, "host.getTasks offered a task not ASSIGNED to this host");
                continue;
            }
            if self.take_task(me, &task, true).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// §2.12: hubs ≤1.33 let each host pick FREE tasks from its bins, with the avail delay.
    async fn take_legacy(&mut self, me: i64, running: &RunningSet) -> Result<bool, HubError> {
        let load = self.hub.get_load_data().await?;
        let mut bins: HashSet<String> = HashSet::new();
        let mut bin_hosts: HashMap<String, Vec<f64>> = HashMap::new();
        let mut our_avail = None;
        for host in &load.hosts {
            let avail = host.capacity - host.task_load;
            if host.id == me {
                our_avail = Some(avail);
            }
            for channel in &host.channels {
                for arch in host.arches.iter().map(String::as_str).chain(["noarch"]) {
                    let bin = format!("{channel}:{arch}");
                    if host.id == me {
                        bins.insert(bin.clone());
                    }
                    bin_hosts.entry(bin).or_default().push(avail);
                }
            }
        }
        let Some(our_avail) = our_avail else {
            tracing::info!("the hub did not report this host in getLoadData; is it disabled?");
            return Ok(false);
        };
        let delay = self.settings.task_avail_delay;
        let now = Instant::now();
        self.first_seen
            .retain(|_, seen| now.duration_since(*seen) <= delay * 10);
        let local: HashSet<i64> = running.tasks.iter().map(|t| t.task_id).collect();
        for task in &load.tasks {
            if self.handlers.get(&task.method).is_none() {
                tracing::warn!(task_id = task.id, method = %task.method, "skipping task: no handler for its method");
                continue;
            }
            if local.contains(&task.id) {
                continue;
            }
            match task.state {
                TaskState::Assigned
                    if task.host_id == Some(me) && self.take_task(me, task, false).await? =>
                {
                    return Ok(true);
                }
                TaskState::Free => {
                    let bin = format!("{}:{}", task.channel_id, task.arch);
                    if !bins.contains(&bin) {
                        continue;
                    }
                    let mut avail = bin_hosts.get(&bin).cloned().unwrap_or_else(|| vec![0.0]);
                    avail.sort_by(|a, b| b.total_cmp(a));
                    let position = avail
                        .iter()
                        .position(|cap| our_avail >= *cap)
                        .unwrap_or(avail.len().saturating_sub(1));
                    let rank = if avail.len() > 1 {
                        position as f64 / (avail.len() - 1) as f64
                    } else {
                        0.0
                    };
                    let seen = *self.first_seen.entry(task.id).or_insert(now);
                    if now.duration_since(seen) < delay.mul_f64(rank) {
                        tracing::debug!(
                            task_id = task.id,
                            rank,
                            "leaving the task to a less loaded host for now"
                        );
                        continue;
                    }
                    self.first_seen.remove(&task.id);
                    if self.take_task(me, task, false).await? {
                        return Ok(true);
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// §2.6 `takeTask`: `getTaskInfo(request)`, `checkHost`, `openTask`, `setTaskWeight`, then a
    /// subsession and a TaskActor. `refuse` is false on the legacy protocol (no `refuseTask`).
    async fn take_task(
        &mut self,
        me: i64,
        task: &OfferedTask,
        refuse: bool,
    ) -> Result<bool, HubError> {
        let Some(factory) = self.handlers.get(&task.method) else {
            tracing::warn!(task_id = task.id, method = %task.method, "refusing task: no handler for its method");
            if refuse {
                self.hub
                    .refuse_task(task.id, false, "no handler for method")
                    .await?;
            }
            return Ok(false);
        };
        let info = self.hub.get_task_info(task.id, true).await?;
        let Some(request) = info.request.clone() else {
            tracing::warn!(
                task_id = task.id,
                "the hub returned no request for the task"
            );
            return Ok(false);
        };
        let request = TaskRequest::decode(request);
        let handler = factory.create(&request, &info);
        if let Some(host) = self.host.clone() {
            let fits = match handler.check_host(&host, self.hub.as_ref()).await {
                Ok(fits) => fits,
                Err(error) => {
                    tracing::warn!(task_id = task.id, %error, "host check failed");
                    false
                }
            };
            if !fits {
                if refuse && info.state == TaskState::Assigned {
                    self.hub
                        .refuse_task(task.id, false, "failed host check")
                        .await?;
                }
                return Ok(false);
            }
        }
        let Some(opened) = self.hub.open_task(task.id).await? else {
            tracing::info!(
                task_id = task.id,
                "the hub did not let us open the task (lost a race?)"
            );
            return Ok(false);
        };
        let weight = handler.weight();
        if let Err(error) = self.hub.set_task_weight(task.id, weight).await {
            if error.fault_code() == Some(fault_codes::ACTION_NOT_ALLOWED) {
                let now = self.hub.get_task_info(task.id, false).await?;
                if now.host_id != Some(me) || now.state != TaskState::Open {
                    tracing::info!(task_id = task.id, "lost the task right after opening it");
                    return Ok(false);
                }
            }
            return Err(error);
        }
        let subsession = self.hub.subsession().await?;
        let mut info = info;
        info.state = opened.state;
        info.host_id = opened.host_id;
        let spawned = self
            .supervisor
            .send(SpawnTask {
                info,
                request,
                handler,
                hub: subsession,
                weight,
                session_start_ts: self.session.as_ref().map(|s| s.start_ts).unwrap_or(0.0),
                host_id: me,
            })
            .await;
        Ok(matches!(spawned, Ok(true)))
    }
}

pub struct HubPoller {
    /// Lent to the running cycle's future and returned when it ends.
    core: Option<PollerCore>,
    link: ChildLink,
    exit_reason: ExitReason,
    next_cycle: Option<SpawnHandle>,
    fast_until: Option<Instant>,
    last_taken: bool,
    /// The authoritative copies of what messages change; handed to the core before each cycle,
    /// so that a change that arrives while a cycle runs is not lost.
    taking: bool,
    live: LiveSettings,
    /// When the last full cycle ended: the next one is due `sleeptime` later at the latest.
    last_full: Instant,
    supervisor: Addr<Supervisor>,
}

/// What the next scheduled poll does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poll {
    Full,
    Probe,
}

impl HubPoller {
    pub fn new(core: PollerCore, link: ChildLink) -> Self {
        Self {
            taking: core.taking,
            live: core.settings.live.clone(),
            supervisor: core.supervisor.clone(),
            core: Some(core),
            link,
            exit_reason: ExitReason::Stopped,
            next_cycle: None,
            fast_until: None,
            last_taken: false,
            last_full: Instant::now(),
        }
    }

    fn run_probe(&mut self, ctx: &mut Context<Self>) {
        self.next_cycle = None;
        let Some(mut core) = self.core.take() else {
            self.schedule_poll(Poll::Full, Duration::from_secs(1), ctx);
            return;
        };
        core.taking = self.taking;
        async move {
            let outcome = AssertUnwindSafe(core.probe()).catch_unwind().await;
            (core, outcome)
        }
        .into_actor(self)
        .map(|(core, outcome), act, ctx| match outcome {
            Err(panic) => {
                act.exit_reason = ExitReason::Panicked(panic_message(&panic));
                ctx.stop();
            }
            Ok(result) => {
                act.core = Some(core);
                match result {
                    Ok(true) => act.schedule_poll(Poll::Full, Duration::ZERO, ctx),
                    Ok(false) => act.schedule_idle(ctx),
                    Err(error) => {
                        act.handle_error(error, ctx);
                        act.schedule_idle(ctx);
                    }
                }
            }
        })
        .spawn(ctx);
    }

    /// Between full cycles: probe every `fast_poll_interval` (at least 1 s) while the fast
    /// window lasts, and run a full cycle (the heartbeat) every `sleeptime` regardless.
    fn schedule_idle(&mut self, ctx: &mut Context<Self>) {
        let live = self.live();
        let now = Instant::now();
        let full_in = (self.last_full + live.sleeptime).saturating_duration_since(now);
        let fast = live.fast_poll_interval.max(Duration::from_secs(1));
        match self.fast_until {
            Some(until) if now < until && fast < full_in => {
                self.schedule_poll(Poll::Probe, fast, ctx)
            }
            _ => self.schedule_poll(Poll::Full, full_in, ctx),
        }
    }

    fn run_cycle(&mut self, ctx: &mut Context<Self>) {
        self.next_cycle = None;
        let Some(mut core) = self.core.take() else {
            // A re-login holds the core; try again shortly.
            self.schedule_poll(Poll::Full, Duration::from_secs(1), ctx);
            return;
        };
        core.taking = self.taking;
        core.settings.live = self.live.clone();
        let taken_before = self.last_taken;
        async move {
            let outcome = AssertUnwindSafe(core.cycle(taken_before))
                .catch_unwind()
                .await;
            (core, outcome)
        }
        .into_actor(self)
        .map(|(core, outcome), act, ctx| match outcome {
            Err(panic) => {
                act.exit_reason = ExitReason::Panicked(panic_message(&panic));
                ctx.stop();
            }
            Ok(result) => {
                act.core = Some(core);
                act.cycle_done(result, ctx);
            }
        })
        .spawn(ctx);
    }

    fn cycle_done(&mut self, result: Result<CycleOutcome, HubError>, ctx: &mut Context<Self>) {
        let taken = match result {
            Ok(outcome) => outcome.taken,
            Err(error) => {
                self.handle_error(error, ctx);
                false
            }
        };
        if taken {
            self.fast_until = Some(Instant::now() + self.live().fast_poll_window);
        }
        self.last_taken = taken;
        self.last_full = Instant::now();
        if taken {
            self.schedule_poll(Poll::Full, Duration::ZERO, ctx);
        } else {
            self.schedule_idle(ctx);
        }
    }

    fn handle_error(&mut self, error: HubError, ctx: &mut Context<Self>) {
        metrics::counter!("adjutant_poll_errors_total", "class" => format!("{:?}", error.class))
            .increment(1);
        self.supervisor.do_send(PollerProblem {
            message: error.to_string(),
        });
        match error.class {
            ErrorClass::Stop => {
                tracing::error!(%error, "authentication error; the worker stops");
                if let Some(core) = &self.core {
                    core.supervisor.do_send(PollerFatal {
                        message: format!("Authentication error: {error}"),
                    });
                }
                self.core = None;
                ctx.stop();
            }
            ErrorClass::Relogin => {
                tracing::warn!(%error, "session expired; logging in again");
                if let Some(core) = self.core.take() {
                    async move {
                        let result = core.hub.login().await;
                        (core, result)
                    }
                    .into_actor(self)
                    .map(|(core, result), act, ctx| {
                        if let Err(error) = result {
                            core.supervisor.do_send(PollerFatal {
                                message: format!("Session expired and login failed: {error}"),
                            });
                            ctx.stop();
                        } else {
                            act.core = Some(core);
                        }
                    })
                    .wait(ctx);
                }
            }
            _ => tracing::warn!(%error, "poll cycle failed; trying again next cycle"),
        }
    }

    fn live(&self) -> LiveSettings {
        self.live.clone()
    }

    fn schedule_poll(&mut self, poll: Poll, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(handle) = self.next_cycle.take() {
            ctx.cancel_future(handle);
        }
        self.next_cycle = Some(ctx.run_later(delay, move |act, ctx| match poll {
            Poll::Full => act.run_cycle(ctx),
            Poll::Probe => act.run_probe(ctx),
        }));
    }
}

impl Actor for HubPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.run_cycle(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.link.exited(std::mem::replace(
            &mut self.exit_reason,
            ExitReason::Stopped,
        ));
    }
}

impl Handler<SetTaking> for HubPoller {
    type Result = ();

    fn handle(&mut self, message: SetTaking, _ctx: &mut Context<Self>) {
        self.taking = message.0;
    }
}

impl Handler<UpdatePollerSettings> for HubPoller {
    type Result = ();

    fn handle(&mut self, message: UpdatePollerSettings, _ctx: &mut Context<Self>) {
        self.live = message.0;
    }
}

impl Handler<Nudge> for HubPoller {
    type Result = ();

    fn handle(&mut self, _: Nudge, ctx: &mut Context<Self>) {
        let live = self.live();
        self.fast_until = Some(Instant::now() + live.fast_poll_window);
        // A slot just freed up: a full cycle soon (readiness has changed). Only a sleeping
        // poller is rescheduled; a running cycle schedules its own successor.
        if self.next_cycle.is_some() {
            let soon = live.fast_poll_interval.max(Duration::from_secs(1));
            self.schedule_poll(Poll::Full, soon, ctx);
        }
    }
}

impl Handler<StopActor> for HubPoller {
    type Result = ();

    fn handle(&mut self, _: StopActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
