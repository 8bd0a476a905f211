//! A [`TaskContext`] without a running worker, for testing task handlers on their own (the
//! build pipeline's handlers in `src/handlers` use it with a fake hub and runtime).
//!
//! It must be used inside an actix `System` (e.g. `#[actix_rt::test]`): a small actor stands in
//! for the Supervisor and records what the handler told it.

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::handler::{
    PhaseReporter, TaskContainers, TaskContext, TaskDescribed, TaskPhaseChanged, TaskRequest,
    WorkerRequest,
};
use crate::hub::{TaskHub, TaskInfo};
use crate::logs::LogTails;
use crate::policy::{ImageSource, ResolveImage, ResolvedImage};
use crate::registry::RegistryEvent;
use crate::runtime::{ContainerRuntime, PullPolicy, ResourceLimits};
use crate::snapshot::TaskPhase;

/// What the handler under test told the worker.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub phases: Vec<TaskPhase>,
    pub details: Vec<(String, String)>,
    pub worker_requests: Vec<WorkerRequest>,
    pub registry_events: Vec<RegistryEvent>,
    pub image_requests: Vec<ResolveImage>,
}

/// The handle a test keeps: the recorded messages, the cancellation token, alerts and logs.
#[derive(Clone)]
pub struct Standalone {
    pub recorded: Arc<Mutex<Recorded>>,
    pub cancel: CancellationToken,
    pub logs: LogTails,
    alerts: Arc<Notify>,
}

impl Standalone {
    /// Wakes a handler blocked in `TaskContext::wait`, as the poller's alert would.
    pub fn alert(&self) {
        self.alerts.notify_one();
    }

    pub fn recorded(&self) -> Recorded {
        match self.recorded.lock() {
            Ok(recorded) => recorded.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Builds a context for task `info.id`; image lookups answer `image`.
pub fn standalone_context(
    info: TaskInfo,
    request: TaskRequest,
    host_id: i64,
    hub: Arc<dyn TaskHub>,
    runtime: Arc<dyn ContainerRuntime>,
    image: &str,
) -> (TaskContext, Standalone) {
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let stand_in = StandIn {
        recorded: Arc::clone(&recorded),
        image: image.to_owned(),
    }
    .start();
    let cancel = CancellationToken::new();
    let alerts = Arc::new(Notify::new());
    let logs = LogTails::default();
    let task_id = info.id;
    let context = TaskContext {
        task_id,
        request,
        host_id,
        session_start_ts: 0.0,
        hub,
        containers: TaskContainers::new(
            task_id,
            info.method.clone(),
            "test".to_owned(),
            Arc::clone(&runtime),
            stand_in.clone().recipient(),
            cancel.clone(),
        ),
        runtime,
        cancel: cancel.clone(),
        phases: PhaseReporter::new(
            task_id,
            info.method.clone(),
            stand_in.clone().recipient(),
            stand_in.clone().recipient(),
        ),
        logs: Arc::new(logs.sink(task_id)),
        default_image: image.to_owned(),
        pull_policy: PullPolicy::IfNotPresent,
        limits: ResourceLimits::default(),
        alerts: Arc::clone(&alerts),
        images: stand_in.clone().recipient(),
        worker: stand_in.recipient(),
        info,
    };
    (
        context,
        Standalone {
            recorded,
            cancel,
            logs,
            alerts,
        },
    )
}

struct StandIn {
    recorded: Arc<Mutex<Recorded>>,
    image: String,
}

impl StandIn {
    fn record(&self, change: impl FnOnce(&mut Recorded)) {
        match self.recorded.lock() {
            Ok(mut recorded) => change(&mut recorded),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }
}

impl Actor for StandIn {
    type Context = Context<Self>;
}

impl Handler<TaskPhaseChanged> for StandIn {
    type Result = ();

    fn handle(&mut self, message: TaskPhaseChanged, _ctx: &mut Context<Self>) {
        self.record(|r| {
            if r.phases.last() != Some(&message.phase) {
                r.phases.push(message.phase);
            }
        });
    }
}

impl Handler<TaskDescribed> for StandIn {
    type Result = ();

    fn handle(&mut self, message: TaskDescribed, _ctx: &mut Context<Self>) {
        self.record(|r| r.details.push((message.key, message.value)));
    }
}

impl Handler<WorkerRequest> for StandIn {
    type Result = ();

    fn handle(&mut self, message: WorkerRequest, _ctx: &mut Context<Self>) {
        self.record(|r| r.worker_requests.push(message));
    }
}

impl Handler<RegistryEvent> for StandIn {
    type Result = ();

    fn handle(&mut self, message: RegistryEvent, _ctx: &mut Context<Self>) {
        self.record(|r| r.registry_events.push(message));
    }
}

impl Handler<ResolveImage> for StandIn {
    type Result = MessageResult<ResolveImage>;

    fn handle(&mut self, message: ResolveImage, _ctx: &mut Context<Self>) -> Self::Result {
        self.record(|r| r.image_requests.push(message));
        MessageResult(ResolvedImage {
            image: self.image.clone(),
            source: ImageSource::ConfigDefault,
        })
    }
}
