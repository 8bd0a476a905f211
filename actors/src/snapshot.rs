//! The worker's state as the dashboard sees it, published through `tokio::sync::watch`.
//!
//! The Supervisor owns the only writer; readers get an `Arc` of an immutable snapshot and never
//! block an actor.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::hub::HubVersion;
use crate::policy::PolicyDump;

/// The named phases of a task, in order. A handler moves through the ones that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskPhase {
    Opened,
    Image,
    Buildroot,
    Building,
    Uploading,
    Closing,
    Done,
}

impl TaskPhase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Image => "image",
            Self::Buildroot => "buildroot",
            Self::Building => "building",
            Self::Uploading => "uploading",
            Self::Closing => "closing",
            Self::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Starting,
    Running,
    /// SIGTERM received: no new tasks, running ones may finish until the drain deadline.
    Draining,
    /// A restart is pending until the running tasks finish.
    RestartPending,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseEntry {
    pub phase: TaskPhase,
    pub since: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningTask {
    pub task_id: i64,
    pub method: String,
    pub arch: String,
    /// The hub's user id of the task's owner.
    pub owner: Option<i64>,
    pub parent: Option<i64>,
    /// Details the handler published (`tag`, `nvr`, …).
    pub details: BTreeMap<String, String>,
    pub weight: f64,
    pub started: SystemTime,
    pub phase: TaskPhase,
    /// Every phase entered so far, for the dashboard's timeline bar.
    pub timeline: Vec<PhaseEntry>,
    /// Waiting on subtasks: its weight leaves the host's load.
    pub waiting: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    Closed,
    Failed { fault_code: i32, message: String },
    Refused { message: String },
    Freed { reason: String },
    Aborted { reason: String },
}

impl TaskOutcome {
    /// A low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Failed { .. } => "failed",
            Self::Refused { .. } => "refused",
            Self::Freed { .. } => "freed",
            Self::Aborted { .. } => "aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedTask {
    pub task_id: i64,
    pub method: String,
    pub details: BTreeMap<String, String>,
    pub started: SystemTime,
    pub finished: SystemTime,
    pub outcome: TaskOutcome,
    pub timeline: Vec<PhaseEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Why not ready, in kojid's words where kojid has words for it.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub at: SystemTime,
    pub source: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ActorRestarts {
    pub hub_poller: u64,
    pub policy_cache: u64,
    pub container_registry: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerSnapshot {
    pub state: WorkerState,
    pub host_id: Option<i64>,
    pub host_name: Option<String>,
    pub hub_version: Option<HubVersion>,
    pub logged_in: bool,
    pub last_heartbeat: Option<SystemTime>,
    pub readiness: Readiness,
    pub task_load: f64,
    pub capacity: Option<f64>,
    pub maxjobs: usize,
    pub free_space_mib: Option<u64>,
    pub minspace_mib: u64,
    pub started: SystemTime,
    pub running: Vec<RunningTask>,
    pub recent: Vec<FinishedTask>,
    pub policy: PolicyDump,
    pub restarts: ActorRestarts,
    pub warnings: Vec<Warning>,
}

impl WorkerSnapshot {
    pub fn new(maxjobs: usize, minspace_mib: u64) -> Self {
        Self {
            state: WorkerState::Starting,
            host_id: None,
            host_name: None,
            hub_version: None,
            logged_in: false,
            last_heartbeat: None,
            readiness: Readiness {
                ready: false,
                reason: Some("starting".to_owned()),
            },
            task_load: 0.0,
            capacity: None,
            maxjobs,
            free_space_mib: None,
            minspace_mib,
            started: SystemTime::now(),
            running: Vec::new(),
            recent: Vec::new(),
            policy: PolicyDump::default(),
            restarts: ActorRestarts::default(),
            warnings: Vec::new(),
        }
    }
}

/// The read side handed to the web layer.
pub type SnapshotReceiver = tokio::sync::watch::Receiver<Arc<WorkerSnapshot>>;

/// A bounded list of recent warnings, newest last.
#[derive(Debug, Default)]
pub(crate) struct WarningLog {
    entries: VecDeque<Warning>,
}

impl WarningLog {
    const CAPACITY: usize = 50;

    pub(crate) fn push(&mut self, source: &str, message: String) {
        if self.entries.len() == Self::CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(Warning {
            at: SystemTime::now(),
            source: source.to_owned(),
            message,
        });
    }

    pub(crate) fn to_vec(&self) -> Vec<Warning> {
        self.entries.iter().cloned().collect()
    }
}
