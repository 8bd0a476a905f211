//! The task handler contract: what a Koji method's implementation gets and returns.
//!
//! A handler is created per task from its decoded request, reports its weight and an optional
//! host check before the task is opened, then runs with a [`TaskContext`]. Everything a handler
//! needs from the worker (hub subsession, container runtime, cancellation, phases, logs, subtask
//! waiting, image policy) comes through the context, so handlers stay testable with fakes.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Fault, HandlerError, HubError};
use crate::hub::{HostHub, HostInfo, SubtaskResult, TaskHub, TaskInfo};
use crate::policy::{ResolveImage, ResolvedImage};
use crate::registry::{ContainerRecord, ContainerState, RegistryEvent};
use crate::runtime::{
    ContainerHandle, ContainerRuntime, ContainerSpec, ExecOutcome, ExecSpec, LogSink, PullPolicy,
    ResourceLimits, RuntimeError,
};
use crate::snapshot::TaskPhase;

/// A task's decoded parameters (§4.0): positional params, and keyword args from a trailing
/// struct marked `__starstar`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct TaskRequest {
    pub params: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

impl TaskRequest {
    pub fn decode(mut request: Vec<Value>) -> Self {
        let mut kwargs = Map::new();
        let is_starstar = request
            .last()
            .and_then(|last| last.get("__starstar"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if is_starstar && let Some(Value::Object(mut map)) = request.pop() {
            map.remove("__starstar");
            kwargs = map;
        }
        Self {
            params: request,
            kwargs,
        }
    }

    /// The argument at `position`, or the keyword `name`, or `None` when neither is given
    /// (or it is nil). Mirrors Python's positional-or-keyword parameters.
    pub fn arg(&self, position: usize, name: &str) -> Option<&Value> {
        self.params
            .get(position)
            .or_else(|| self.kwargs.get(name))
            .filter(|value| !value.is_null())
    }

    /// Fails with a ParameterError when more positional or unknown keyword arguments were
    /// given than the handler's signature takes, as Python would.
    pub fn check_signature(&self, method: &str, names: &[&str]) -> Result<(), HandlerError> {
        if self.params.len() > names.len() {
            return Err(HandlerError::Fault(Fault::parameter(format!(
                "{method}() takes at most {} arguments ({}), {} given",
                names.len(),
                names.join(", "),
                self.params.len()
            ))));
        }
        for key in self.kwargs.keys() {
            match names.iter().position(|name| name == key) {
                None => {
                    return Err(HandlerError::Fault(Fault::parameter(format!(
                        "{method}() got an unexpected keyword argument '{key}'"
                    ))));
                }
                Some(position) if position < self.params.len() => {
                    return Err(HandlerError::Fault(Fault::parameter(format!(
                        "{method}() got multiple values for argument '{key}'"
                    ))));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// One Koji method's implementation for one task.
#[async_trait::async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// The weight sent with `host.setTaskWeight` right after `openTask` (§4.0).
    fn weight(&self) -> f64;

    /// kojid's `checkHost(hostdata)`: may this host run the task? Called before `openTask` on the
    /// main session. A `false` or an error makes the worker refuse the task.
    async fn check_host(&self, _host: &HostInfo, _hub: &dyn HostHub) -> Result<bool, HubError> {
        Ok(true)
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError>;
}

/// Makes a handler for a task of one method.
pub trait HandlerFactory: Send + Sync + 'static {
    fn create(&self, request: &TaskRequest, info: &TaskInfo) -> Box<dyn TaskHandler>;
}

impl<F> HandlerFactory for F
where
    F: Fn(&TaskRequest, &TaskInfo) -> Box<dyn TaskHandler> + Send + Sync + 'static,
{
    fn create(&self, request: &TaskRequest, info: &TaskInfo) -> Box<dyn TaskHandler> {
        self(request, info)
    }
}

/// Koji method name → handler factory.
#[derive(Default, Clone)]
pub struct HandlerRegistry {
    factories: BTreeMap<String, Arc<dyn HandlerFactory>>,
}

impl HandlerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, method: &str, factory: impl HandlerFactory) -> &mut Self {
        self.factories.insert(method.to_owned(), Arc::new(factory));
        self
    }

    pub fn get(&self, method: &str) -> Option<Arc<dyn HandlerFactory>> {
        self.factories.get(method).cloned()
    }

    /// The handled methods, published to the hub as host data.
    pub fn methods(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }
}

/// What a TaskActor tells the Supervisor about its progress.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskPhaseChanged {
    pub task_id: i64,
    pub phase: TaskPhase,
    pub waiting: bool,
    pub at: SystemTime,
}

/// A detail of a running task for the dashboard.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskDescribed {
    pub task_id: i64,
    pub key: String,
    pub value: String,
}

/// Records a task's phases: logged, counted in metrics and shown on the dashboard.
#[derive(Clone)]
pub struct PhaseReporter {
    task_id: i64,
    method: String,
    current: Arc<Mutex<TaskPhase>>,
    sink: Recipient<TaskPhaseChanged>,
    details: Recipient<TaskDescribed>,
}

impl PhaseReporter {
    pub fn new(
        task_id: i64,
        method: String,
        sink: Recipient<TaskPhaseChanged>,
        details: Recipient<TaskDescribed>,
    ) -> Self {
        Self {
            task_id,
            method,
            current: Arc::new(Mutex::new(TaskPhase::Opened)),
            sink,
            details,
        }
    }

    pub fn enter(&self, phase: TaskPhase) {
        let previous = match self.current.lock() {
            Ok(mut current) => std::mem::replace(&mut *current, phase),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), phase),
        };
        if previous == phase && phase != TaskPhase::Opened {
            return;
        }
        tracing::info!(task_id = self.task_id, method = %self.method, from = previous.name(), to = phase.name(), "task phase");
        metrics::counter!("adjutant_task_phase_entered_total", "method" => self.method.clone(), "phase" => phase.name()).increment(1);
        self.sink.do_send(TaskPhaseChanged {
            task_id: self.task_id,
            phase,
            waiting: false,
            at: SystemTime::now(),
        });
    }

    /// Adds a detail the dashboard shows with the task (`tag`, `nvr`, `srpm`, …).
    pub fn describe(&self, key: &str, value: &str) {
        self.details.do_send(TaskDescribed {
            task_id: self.task_id,
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }

    pub fn current(&self) -> TaskPhase {
        match self.current.lock() {
            Ok(current) => *current,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn waiting(&self, waiting: bool) {
        self.sink.do_send(TaskPhaseChanged {
            task_id: self.task_id,
            phase: self.current(),
            waiting,
            at: SystemTime::now(),
        });
    }
}

/// Worker-level requests a handler can make (the `restart` and `shutdown` tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum WorkerRequest {
    /// Stop taking tasks, and restart once none is running (kojid's `restart_pending`).
    RestartWhenIdle,
    /// Shut down as on SIGTERM.
    Shutdown,
}

/// The containers of one task. Every container created through it is registered with the
/// ContainerRegistry before it exists and is removed by the TaskActor when the task ends,
/// however it ends.
#[derive(Clone)]
pub struct TaskContainers {
    task_id: i64,
    method: String,
    worker_id: String,
    runtime: Arc<dyn ContainerRuntime>,
    registry: Recipient<RegistryEvent>,
    owned: Arc<Mutex<Vec<ContainerHandle>>>,
    serial: Arc<AtomicU32>,
    cancel: CancellationToken,
}

impl TaskContainers {
    pub fn new(
        task_id: i64,
        method: String,
        worker_id: String,
        runtime: Arc<dyn ContainerRuntime>,
        registry: Recipient<RegistryEvent>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            task_id,
            method,
            worker_id,
            runtime,
            registry,
            owned: Arc::new(Mutex::new(Vec::new())),
            serial: Arc::new(AtomicU32::new(0)),
            cancel,
        }
    }

    /// The next deterministic container name: `koji-adjutant-<worker>-<task>-<n>`.
    pub fn next_name(&self) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        format!("koji-adjutant-{}-{}-{n}", self.worker_id, self.task_id)
    }

    /// The labels every container of this task carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        BTreeMap::from([
            ("io.koji.adjutant.worker".to_owned(), self.worker_id.clone()),
            (
                "io.koji.adjutant.task_id".to_owned(),
                self.task_id.to_string(),
            ),
            ("io.koji.adjutant.method".to_owned(), self.method.clone()),
            ("io.koji.adjutant.created".to_owned(), created.to_string()),
        ])
    }

    fn remember(&self, handle: ContainerHandle) {
        match self.owned.lock() {
            Ok(mut owned) => owned.push(handle),
            Err(poisoned) => poisoned.into_inner().push(handle),
        }
    }

    fn take_owned(&self) -> Vec<ContainerHandle> {
        match self.owned.lock() {
            Ok(mut owned) => std::mem::take(&mut *owned),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    pub fn owned(&self) -> Vec<ContainerHandle> {
        match self.owned.lock() {
            Ok(owned) => owned.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Pulls the image if needed, creates and starts a container.
    pub async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        pull: PullPolicy,
    ) -> Result<ContainerHandle, RuntimeError> {
        self.runtime.ensure_image(&spec.image, pull).await?;
        // Awaited: the orphan reaper must know the name before the container exists.
        let _ = self
            .registry
            .send(RegistryEvent::Registered(Box::new(ContainerRecord {
                task_id: self.task_id,
                name: spec.name.clone(),
                id: String::new(),
                image: spec.image.clone(),
                state: ContainerState::Creating,
                created: SystemTime::now(),
                started: None,
                removed: None,
                current_step: None,
                limits: spec.limits.clone(),
            })))
            .await;
        // Remember the name before creating: a create that fails half-way may still leave a
        // container behind, and removal by name is idempotent.
        self.remember(ContainerHandle {
            id: String::new(),
            name: spec.name.clone(),
        });
        let handle = self.runtime.create(spec).await?;
        match self.owned.lock() {
            Ok(mut owned) => {
                if let Some(entry) = owned.iter_mut().find(|h| h.name == handle.name) {
                    entry.id = handle.id.clone();
                }
            }
            Err(poisoned) => {
                if let Some(entry) = poisoned
                    .into_inner()
                    .iter_mut()
                    .find(|h| h.name == handle.name)
                {
                    entry.id = handle.id.clone();
                }
            }
        }
        self.registry.do_send(RegistryEvent::Created {
            name: handle.name.clone(),
            id: handle.id.clone(),
        });
        self.runtime.start(&handle).await?;
        self.registry.do_send(RegistryEvent::Started {
            name: handle.name.clone(),
        });
        Ok(handle)
    }

    /// Runs one step in a container; cancelled with the task.
    pub async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<ExecOutcome, RuntimeError> {
        self.registry.do_send(RegistryEvent::Step {
            name: container.name.clone(),
            step: Some(spec.step.clone()),
        });
        let outcome = self
            .runtime
            .exec(container, spec, sink, self.cancel.child_token())
            .await;
        self.registry.do_send(RegistryEvent::Step {
            name: container.name.clone(),
            step: None,
        });
        outcome
    }

    pub fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        Arc::clone(&self.runtime)
    }

    /// Every name this task used (the ones just swept plus every deterministic name handed
    /// out), for a last sweep after an abort.
    pub fn removed_names_for_resweep(&self, swept: Vec<String>) -> Vec<ContainerHandle> {
        let mut names: Vec<String> = swept;
        let used = self.serial.load(Ordering::Relaxed);
        for n in 1..=used {
            let name = format!("koji-adjutant-{}-{}-{n}", self.worker_id, self.task_id);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
            .into_iter()
            .map(|name| ContainerHandle {
                id: String::new(),
                name,
            })
            .collect()
    }

    /// Kills and removes every container of the task, and returns the names it tried. Errors
    /// are logged, not returned: the orphan reaper is the second line of defence.
    pub async fn remove_all(&self) -> Vec<String> {
        let mut removed = Vec::new();
        for handle in self.take_owned() {
            self.registry.do_send(RegistryEvent::Removing {
                name: handle.name.clone(),
            });
            match self.runtime.remove(&handle, true).await {
                Ok(()) => {
                    metrics::counter!("adjutant_container_removals_total", "outcome" => "ok")
                        .increment(1);
                }
                Err(error) => {
                    metrics::counter!("adjutant_container_removals_total", "outcome" => "error")
                        .increment(1);
                    tracing::warn!(task_id = self.task_id, container = %handle.name, %error,
                        "could not remove the task's container; the orphan reaper will retry");
                }
            }
            removed.push(handle.name.clone());
            self.registry
                .do_send(RegistryEvent::Removed { name: handle.name });
        }
        removed
    }
}

/// How to wait for subtasks (kojid's `wait(subtasks, all, failany, canfail, timeout)`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaitOptions {
    pub all: bool,
    pub failany: bool,
    pub canfail: Vec<i64>,
    pub timeout: Option<Duration>,
}

/// Everything a handler gets for one task.
#[derive(Clone)]
pub struct TaskContext {
    pub task_id: i64,
    pub info: TaskInfo,
    pub request: TaskRequest,
    pub host_id: i64,
    /// `start_ts` of the worker's main session (for `restartVerify`).
    pub session_start_ts: f64,
    pub hub: Arc<dyn TaskHub>,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub containers: TaskContainers,
    pub cancel: CancellationToken,
    pub phases: PhaseReporter,
    pub logs: Arc<dyn LogSink>,
    pub default_image: String,
    pub pull_policy: PullPolicy,
    /// Resource limits for this task's containers, as configured when it started.
    pub limits: ResourceLimits,
    pub(crate) alerts: Arc<Notify>,
    pub(crate) images: Recipient<ResolveImage>,
    pub(crate) worker: Recipient<WorkerRequest>,
}

impl TaskContext {
    /// The image this task should run in, from the PolicyCache.
    pub async fn resolve_image(
        &self,
        tag: Option<String>,
        event: Option<i64>,
        arch: &str,
    ) -> ResolvedImage {
        let request = ResolveImage {
            tag,
            event,
            arch: arch.to_owned(),
            task_type: self.info.method.clone(),
        };
        match self.images.send(request).await {
            Ok(image) => image,
            Err(_) => ResolvedImage {
                image: self.default_image.clone(),
                source: crate::policy::ImageSource::ConfigDefault,
            },
        }
    }

    pub fn request_worker(&self, request: WorkerRequest) {
        self.worker.do_send(request);
    }

    /// Waits on subtasks as kojid's `BaseTaskHandler.wait` (§2.8), woken by the HubPoller's
    /// alerts instead of SIGUSR2. Returns `[task_id, result]` pairs from `host.taskWaitResults`.
    pub async fn wait(
        &self,
        subtasks: Option<Vec<i64>>,
        options: WaitOptions,
    ) -> Result<Vec<(i64, SubtaskResult)>, HandlerError> {
        let id = self.task_id;
        self.hub.task_set_wait(id, subtasks.as_deref()).await?;
        self.phases.waiting(true);
        let started = Instant::now();
        let canfail: HashSet<i64> = options.canfail.iter().copied().collect();
        let finished = loop {
            let status = self.hub.task_wait(id).await?;
            if status.unfinished.is_empty() {
                break status.finished;
            }
            if !status.finished.is_empty() && !options.all {
                break status.finished;
            }
            if options.all && options.failany {
                for child in status.finished.iter().filter(|c| !canfail.contains(c)) {
                    if let Err(error) = self.hub.get_task_result(*child).await {
                        tracing::info!(
                            task_id = id,
                            child,
                            "subtask failed or was cancelled; cancelling the others"
                        );
                        self.hub.cancel_task_children(id).await?;
                        self.phases.waiting(false);
                        return Err(error.into());
                    }
                }
            }
            match options.timeout {
                Some(limit) => {
                    let elapsed = started.elapsed();
                    if elapsed > limit {
                        self.hub.cancel_task_children(id).await?;
                        self.phases.waiting(false);
                        return Err(HandlerError::Fault(Fault::generic(format!(
                            "Subtasks timed out after {:.1} seconds",
                            elapsed.as_secs_f64()
                        ))));
                    }
                    tokio::select! {
                        () = self.alerts.notified() => {}
                        () = tokio::time::sleep(limit - elapsed) => {}
                        () = self.cancel.cancelled() => return Err(HandlerError::Aborted("cancelled while waiting on subtasks".to_owned())),
                    }
                }
                None => {
                    tokio::select! {
                        () = self.alerts.notified() => {}
                        () = self.cancel.cancelled() => return Err(HandlerError::Aborted("cancelled while waiting on subtasks".to_owned())),
                    }
                }
            }
        };
        let ids = if options.all {
            subtasks
        } else {
            Some(finished)
        };
        let results = self
            .hub
            .task_wait_results(id, ids.as_deref(), &options.canfail)
            .await;
        self.phases.waiting(false);
        Ok(results?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_starstar_kwargs() {
        let request = TaskRequest::decode(vec![
            json!({"name": "f40"}),
            json!({"__starstar": true, "event": 5, "opts": null}),
        ]);
        assert_eq!(request.params, [json!({"name": "f40"})]);
        assert_eq!(request.kwargs.get("event"), Some(&json!(5)));
        assert!(!request.kwargs.contains_key("__starstar"));
        assert_eq!(request.arg(1, "event"), Some(&json!(5)));
        assert_eq!(request.arg(2, "opts"), None, "nil counts as not given");
    }

    #[test]
    fn a_plain_trailing_struct_is_positional() {
        let request = TaskRequest::decode(vec![json!(1), json!({"id": 3})]);
        assert_eq!(request.params.len(), 2);
        assert!(request.kwargs.is_empty());
    }

    #[test]
    fn signature_mismatches_are_parameter_errors() {
        let too_many = TaskRequest::decode(vec![json!(1), json!(2)]);
        let Err(HandlerError::Fault(fault)) = too_many.check_signature("sleep", &["n"]) else {
            panic!("accepted two arguments for sleep(n)");
        };
        assert_eq!(fault.fault_code, 1019);
        let unknown = TaskRequest::decode(vec![json!({"__starstar": true, "x": 1})]);
        assert!(unknown.check_signature("sleep", &["n"]).is_err());
        let twice = TaskRequest::decode(vec![json!(1), json!({"__starstar": true, "n": 1})]);
        assert!(twice.check_signature("sleep", &["n"]).is_err());
        let ok = TaskRequest::decode(vec![json!({"__starstar": true, "m": 1})]);
        assert!(ok.check_signature("fork", &["n", "m"]).is_ok());
    }
}
