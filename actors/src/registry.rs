//! The ContainerRegistry: live containers and recent history, read concurrently by the web layer.
//!
//! The actor is the only writer. Its state lives in [`RegistryState`] (dashmap-backed, shared
//! through an `Arc`), which outlives any one instance of the actor, so that a restarted registry
//! keeps its records and the web layer's [`RegistryReader`] stays valid. No dashmap guard is ever
//! held across an `.await`: every read clones what it needs and drops the guard at once.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use dashmap::DashMap;
use futures::FutureExt;
use serde::Serialize;

use crate::poller::StopActor;
use crate::runtime::{ContainerRuntime, ResourceLimits};
use crate::supervisor::{ChildLink, ExitReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Registered before `create`, so that orphan reaping never races a new container.
    Creating,
    Created,
    Running,
    Removing,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerRecord {
    pub task_id: i64,
    pub name: String,
    /// Empty until the runtime has created it.
    pub id: String,
    pub image: String,
    pub state: ContainerState,
    pub created: SystemTime,
    pub started: Option<SystemTime>,
    pub removed: Option<SystemTime>,
    /// The step currently executing (`buildroot`, `rpmbuild`, …).
    pub current_step: Option<String>,
    pub limits: ResourceLimits,
}

/// The registry's shared state. Created once by the Supervisor.
#[derive(Debug, Default)]
pub struct RegistryState {
    live: DashMap<String, ContainerRecord>,
    history: DashMap<String, ContainerRecord>,
}

/// The cloneable read handle the web layer uses. Everything it returns is a snapshot.
#[derive(Debug, Clone)]
pub struct RegistryReader {
    state: Arc<RegistryState>,
}

impl RegistryReader {
    pub fn new(state: Arc<RegistryState>) -> Self {
        Self { state }
    }

    /// Live containers, ordered by task id then name.
    pub fn live(&self) -> Vec<ContainerRecord> {
        let mut records: Vec<ContainerRecord> =
            self.state.live.iter().map(|e| e.value().clone()).collect();
        records.sort_by(|a, b| (a.task_id, &a.name).cmp(&(b.task_id, &b.name)));
        records
    }

    /// Removed containers still within the history TTL, newest first.
    pub fn history(&self) -> Vec<ContainerRecord> {
        let mut records: Vec<ContainerRecord> = self
            .state
            .history
            .iter()
            .map(|e| e.value().clone())
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.removed));
        records
    }

    /// A container by name or id, live or in history.
    pub fn get(&self, name_or_id: &str) -> Option<ContainerRecord> {
        if let Some(record) = self.state.live.get(name_or_id) {
            return Some(record.value().clone());
        }
        if let Some(record) = self
            .state
            .live
            .iter()
            .find(|e| !e.value().id.is_empty() && e.value().id == name_or_id)
        {
            return Some(record.value().clone());
        }
        self.state
            .history
            .get(name_or_id)
            .map(|r| r.value().clone())
    }

    pub fn for_task(&self, task_id: i64) -> Vec<ContainerRecord> {
        self.live()
            .into_iter()
            .filter(|r| r.task_id == task_id)
            .collect()
    }

    pub fn live_names(&self) -> HashSet<String> {
        self.state.live.iter().map(|e| e.key().clone()).collect()
    }
}

/// What a TaskActor tells the registry about its containers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum RegistryEvent {
    Registered(Box<ContainerRecord>),
    Created { name: String, id: String },
    Started { name: String },
    Step { name: String, step: Option<String> },
    Removing { name: String },
    Removed { name: String },
}

/// Removes this worker's containers that no live record accounts for.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<String>, String>")]
pub struct ReapOrphans;

pub struct ContainerRegistry {
    state: Arc<RegistryState>,
    runtime: Arc<dyn ContainerRuntime>,
    worker_id: String,
    history_ttl: Duration,
    reap_interval: Duration,
    link: ChildLink,
    exit_reason: ExitReason,
    /// Events that arrived while no registry ran; applied before the first orphan sweep so
    /// that a container created meanwhile is never taken for an orphan.
    pending: Vec<RegistryEvent>,
}

impl ContainerRegistry {
    pub fn new(
        state: Arc<RegistryState>,
        runtime: Arc<dyn ContainerRuntime>,
        worker_id: String,
        history_ttl: Duration,
        link: ChildLink,
        pending: Vec<RegistryEvent>,
    ) -> Self {
        Self {
            state,
            runtime,
            worker_id,
            history_ttl,
            reap_interval: Duration::from_secs(600),
            link,
            exit_reason: ExitReason::Stopped,
            pending,
        }
    }

    fn apply(&mut self, event: RegistryEvent) {
        let now = SystemTime::now();
        match event {
            RegistryEvent::Registered(record) => {
                self.state.live.insert(record.name.clone(), *record);
            }
            RegistryEvent::Created { name, id } => {
                if let Some(mut record) = self.state.live.get_mut(&name) {
                    record.id = id;
                    record.state = ContainerState::Created;
                }
            }
            RegistryEvent::Started { name } => {
                if let Some(mut record) = self.state.live.get_mut(&name) {
                    record.state = ContainerState::Running;
                    record.started = Some(now);
                }
            }
            RegistryEvent::Step { name, step } => {
                if let Some(mut record) = self.state.live.get_mut(&name) {
                    record.current_step = step;
                }
            }
            RegistryEvent::Removing { name } => {
                if let Some(mut record) = self.state.live.get_mut(&name) {
                    record.state = ContainerState::Removing;
                }
            }
            RegistryEvent::Removed { name } => {
                if let Some((_, mut record)) = self.state.live.remove(&name) {
                    record.state = ContainerState::Removed;
                    record.removed = Some(now);
                    record.current_step = None;
                    self.state.history.insert(name, record);
                }
            }
        }
        self.prune_history(now);
    }

    fn prune_history(&self, now: SystemTime) {
        let ttl = self.history_ttl;
        self.state.history.retain(|_, record| {
            record
                .removed
                .and_then(|removed| now.duration_since(removed).ok())
                .is_none_or(|age| age <= ttl)
        });
    }

    /// Reaps orphans in the background; a panic in the runtime stops the registry so that the
    /// Supervisor restarts it, instead of silently killing the arbiter.
    fn spawn_reap(&self, ctx: &mut Context<Self>) {
        let runtime = Arc::clone(&self.runtime);
        let worker_id = self.worker_id.clone();
        let live = RegistryReader::new(Arc::clone(&self.state)).live_names();
        let work = async move { runtime.reap_orphans(&worker_id, &live).await };
        AssertUnwindSafe(work)
            .catch_unwind()
            .into_actor(self)
            .map(|outcome, act, ctx| match outcome {
                Ok(Ok(removed)) => {
                    if !removed.is_empty() {
                        metrics::counter!("adjutant_orphans_reaped_total")
                            .increment(removed.len() as u64);
                        tracing::warn!(containers = ?removed, "removed orphaned containers of this worker");
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "orphan reaping failed; will try again later");
                }
                Err(panic) => {
                    act.exit_reason = ExitReason::Panicked(panic_message(&panic));
                    ctx.stop();
                }
            })
            .spawn(ctx);
    }
}

impl Actor for ContainerRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for event in std::mem::take(&mut self.pending) {
            self.apply(event);
        }
        self.spawn_reap(ctx);
        ctx.run_interval(self.reap_interval, |act, ctx| act.spawn_reap(ctx));
        ctx.run_interval(Duration::from_secs(60), |act, _| {
            act.prune_history(SystemTime::now())
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.link.exited(std::mem::replace(
            &mut self.exit_reason,
            ExitReason::Stopped,
        ));
    }
}

impl Handler<RegistryEvent> for ContainerRegistry {
    type Result = ();

    fn handle(&mut self, event: RegistryEvent, ctx: &mut Context<Self>) {
        // A poisoned record must not take the registry down with it silently.
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| self.apply(event))) {
            self.exit_reason = ExitReason::Panicked(panic_message(&panic));
            ctx.stop();
        }
    }
}

impl Handler<StopActor> for ContainerRegistry {
    type Result = ();

    fn handle(&mut self, _: StopActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<ReapOrphans> for ContainerRegistry {
    type Result = ResponseFuture<Result<Vec<String>, String>>;

    fn handle(&mut self, _: ReapOrphans, _ctx: &mut Context<Self>) -> Self::Result {
        let runtime = Arc::clone(&self.runtime);
        let worker_id = self.worker_id.clone();
        let live = RegistryReader::new(Arc::clone(&self.state)).live_names();
        Box::pin(async move {
            AssertUnwindSafe(runtime.reap_orphans(&worker_id, &live))
                .catch_unwind()
                .await
                .map_err(|panic| format!("orphan reaping panicked: {}", panic_message(&panic)))?
                .map_err(|error| error.to_string())
        })
    }
}

/// The text of a panic payload, for messages that an operator reads.
pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
