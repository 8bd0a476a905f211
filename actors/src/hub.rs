//! The hub as the supervision core sees it: two small traits with neutral typed structs.
//!
//! `src/hub` implements them over XML-RPC. Task results and parameters are `serde_json::Value`
//! (the adapter maps nil to `Null`); nothing here knows the wire format.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Fault, HubError};

/// Task states as integers on the wire (§8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Free,
    Open,
    Closed,
    Canceled,
    Assigned,
    Failed,
}

impl TaskState {
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Free,
            1 => Self::Open,
            2 => Self::Closed,
            3 => Self::Canceled,
            4 => Self::Assigned,
            5 => Self::Failed,
            _ => return None,
        })
    }

    pub fn code(self) -> i64 {
        match self {
            Self::Free => 0,
            Self::Open => 1,
            Self::Closed => 2,
            Self::Canceled => 3,
            Self::Assigned => 4,
            Self::Failed => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "FREE",
            Self::Open => "OPEN",
            Self::Closed => "CLOSED",
            Self::Canceled => "CANCELED",
            Self::Assigned => "ASSIGNED",
            Self::Failed => "FAILED",
        }
    }
}

/// The hub's version, from the `Koji-Version` header or `getKojiVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HubVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl HubVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Reads `1.35.3`, `1.35`, and tolerates suffixes such as `1.36.0rc1`
    /// (release candidates and distribution builds report such strings).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            let digits: String = part?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = number(parts.next()).unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// Whether this hub is `major.minor` or newer; features arrive in minor
    /// releases, so the patch level never matters for capability checks.
    pub const fn at_least(self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }

    /// Which scheduling protocol this hub speaks (§2.12 "How to choose").
    pub fn protocol(self) -> SchedulingProtocol {
        if self < Self::new(1, 34, 0) {
            SchedulingProtocol::Legacy
        } else if self < Self::new(1, 35, 0) {
            SchedulingProtocol::AssignedWithoutHostData
        } else {
            SchedulingProtocol::Assigned
        }
    }
}

impl std::fmt::Display for HubVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SchedulingProtocol {
    /// Hub ≤1.33: `updateHost(load, ready)`, `getLoadData`, bins and avail delay.
    Legacy,
    /// Hub 1.34: `updateHost(load, ready)`, `setHostData(json)`, `getTasks`.
    AssignedWithoutHostData,
    /// Hub ≥1.35: `updateHost(load, ready, data)`, `getTasks`.
    Assigned,
}

/// One entry of `host.getHostTasks`: an OPEN task the hub says this host owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostTask {
    pub id: i64,
    pub waiting: bool,
    pub weight: f64,
    /// An awaited subtask of this waiting task has finished.
    pub alert: bool,
}

/// `host.getHost`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostInfo {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub capacity: f64,
    pub task_load: f64,
    pub ready: bool,
    /// Space-separated on the wire, split here.
    pub arches: Vec<String>,
}

/// A task offered to this host by `host.getTasks` or `host.getLoadData`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferedTask {
    pub id: i64,
    pub state: TaskState,
    pub host_id: Option<i64>,
    pub channel_id: i64,
    pub arch: String,
    pub method: String,
    pub priority: i64,
}

/// A host entry of `host.getLoadData` (legacy protocol).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadDataHost {
    pub id: i64,
    pub arches: Vec<String>,
    pub channels: Vec<i64>,
    pub capacity: f64,
    pub task_load: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LoadData {
    pub hosts: Vec<LoadDataHost>,
    pub tasks: Vec<OfferedTask>,
}

/// `getTaskInfo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInfo {
    pub id: i64,
    pub state: TaskState,
    pub host_id: Option<i64>,
    pub method: String,
    pub arch: String,
    pub channel_id: i64,
    pub parent: Option<i64>,
    pub owner: Option<i64>,
    pub priority: i64,
    pub completion_ts: Option<f64>,
    /// The decoded params array, present when asked for with `request=true`.
    pub request: Option<Vec<Value>>,
}

/// A buildroot of this host, from `listBuildroots`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildrootInfo {
    pub id: i64,
    pub task_id: Option<i64>,
    /// BR_STATES: INIT 0, WAITING 1, BUILDING 2, EXPIRED 3.
    pub state: i64,
}

pub const BUILDROOT_EXPIRED: i64 = 3;

/// `getSessionInfo`, the parts the worker uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub session_id: i64,
    /// When this session was created; `restartVerify` compares it with the restart task's end.
    pub start_ts: f64,
}

/// The data published with `updateHost` (≥1.35) or `setHostData` (1.34).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostData {
    pub methods: Vec<String>,
    pub maxjobs: usize,
}

/// Options of `host.subtask` (all optional, the hub fills in defaults from the parent).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SubtaskOptions {
    pub label: Option<String>,
    pub arch: Option<String>,
    pub priority: Option<i64>,
    pub channel: Option<String>,
    pub assign: Option<i64>,
    pub kwargs: Option<Map<String, Value>>,
}

/// `host.taskWait`: awaited children split by whether they finished.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct WaitStatus {
    pub finished: Vec<i64>,
    pub unfinished: Vec<i64>,
}

/// One element of `host.taskWaitResults`: a child's result, or its fault when it is in
/// `canfail` and failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SubtaskResult {
    Closed(Value),
    Failed(Fault),
}

/// The builder's main, exclusive session (§1.4, §2.13).
#[async_trait::async_trait]
pub trait HostHub: Send + Sync + 'static {
    /// Logs in (again) and makes the session exclusive. Called at start-up and after a
    /// `Relogin`-classified error.
    async fn login(&self) -> Result<(), HubError>;
    async fn hub_version(&self) -> Result<HubVersion, HubError>;
    async fn get_id(&self) -> Result<i64, HubError>;
    async fn get_session_info(&self) -> Result<SessionInfo, HubError>;
    async fn get_host(&self) -> Result<HostInfo, HubError>;
    async fn get_host_tasks(&self) -> Result<Vec<HostTask>, HubError>;
    /// `host.updateHost(task_load, ready[, data])`: `data` only on hubs ≥1.35.
    async fn update_host(
        &self,
        task_load: f64,
        ready: bool,
        data: Option<&HostData>,
    ) -> Result<(), HubError>;
    /// `host.setHostData` for hub 1.34, which takes no data in `updateHost`.
    async fn set_host_data(&self, data: &HostData) -> Result<(), HubError>;
    async fn get_tasks(&self) -> Result<Vec<OfferedTask>, HubError>;
    async fn get_load_data(&self) -> Result<LoadData, HubError>;
    async fn get_task_info(&self, task_id: i64, request: bool) -> Result<TaskInfo, HubError>;
    /// `host.openTask`: `None` when the hub refused (lost race, cancelled, …).
    async fn open_task(&self, task_id: i64) -> Result<Option<TaskInfo>, HubError>;
    async fn set_task_weight(&self, task_id: i64, weight: f64) -> Result<(), HubError>;
    async fn refuse_task(&self, task_id: i64, soft: bool, message: &str) -> Result<(), HubError>;
    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), HubError>;
    /// `listBuildroots(hostID=me, state=(INIT, WAITING, BUILDING))`.
    async fn list_active_buildroots(&self, host_id: i64) -> Result<Vec<BuildrootInfo>, HubError>;
    async fn set_buildroot_state(&self, buildroot_id: i64, state: i64) -> Result<(), HubError>;
    /// `getBuildConfig(tag, event)`: the tag's inherited config; the `extra` map matters here.
    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Value, HubError>;
    /// `subsession()`: a new session for one task.
    async fn subsession(&self) -> Result<Arc<dyn TaskHub>, HubError>;
    async fn logout_child(&self, session_id: i64) -> Result<(), HubError>;
    async fn logout(&self) -> Result<(), HubError>;
}

/// One task's subsession (§1.6, §2.7, §2.8).
#[async_trait::async_trait]
pub trait TaskHub: Send + Sync + 'static {
    fn session_id(&self) -> i64;
    /// The adapter behind this trait object, so that the adapter's side can reach what the
    /// trait leaves out (the worker's uploads go over the subsession's own client, which
    /// this crate must not know). `None` unless an adapter offers itself.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    async fn close_task(&self, task_id: i64, result: &Value) -> Result<(), HubError>;
    async fn fail_task(&self, task_id: i64, fault: &Fault) -> Result<(), HubError>;
    async fn refuse_task(&self, task_id: i64, soft: bool, message: &str) -> Result<(), HubError>;
    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), HubError>;
    async fn get_id(&self) -> Result<i64, HubError>;
    async fn get_task_info(&self, task_id: i64, request: bool) -> Result<TaskInfo, HubError>;
    async fn subtask(
        &self,
        parent: i64,
        method: &str,
        args: Vec<Value>,
        options: &SubtaskOptions,
    ) -> Result<i64, HubError>;
    async fn task_set_wait(&self, parent: i64, subtasks: Option<&[i64]>) -> Result<(), HubError>;
    async fn task_wait(&self, parent: i64) -> Result<WaitStatus, HubError>;
    async fn task_wait_results(
        &self,
        parent: i64,
        subtasks: Option<&[i64]>,
        canfail: &[i64],
    ) -> Result<Vec<(i64, SubtaskResult)>, HubError>;
    /// `getTaskResult(id)`: the child's fault comes back as an error.
    async fn get_task_result(&self, task_id: i64) -> Result<Value, HubError>;
    async fn cancel_task_children(&self, task_id: i64) -> Result<(), HubError>;
    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Value, HubError>;
    /// Any other hub call (`repoInfo`, `getTag`, `host.newBuildRoot`, …) with JSON-shaped
    /// positional params and keyword args (sent as the trailing `__starstar` struct when not
    /// empty). Handlers use it for the calls that have no typed method here.
    async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, HubError>;
    async fn logout(&self) -> Result<(), HubError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(HubVersion::parse("1.35.3"), Some(HubVersion::new(1, 35, 3)));
        assert_eq!(HubVersion::parse("1.36"), Some(HubVersion::new(1, 36, 0)));
        assert_eq!(
            HubVersion::parse(" 1.36.0rc1\n"),
            Some(HubVersion::new(1, 36, 0))
        );
        assert_eq!(HubVersion::parse("koji"), None);
        assert_eq!(HubVersion::parse("1"), None);
        assert_eq!(HubVersion::parse(""), None);
    }

    #[test]
    fn orders_and_displays_versions() {
        assert!(HubVersion::new(1, 35, 3) > HubVersion::new(1, 35, 0));
        assert!(HubVersion::new(2, 0, 0) > HubVersion::new(1, 99, 99));
        assert!(HubVersion::new(1, 35, 0).at_least(1, 35));
        assert!(HubVersion::new(2, 0, 0).at_least(1, 35));
        assert!(!HubVersion::new(1, 34, 9).at_least(1, 35));
        assert_eq!(HubVersion::new(1, 35, 3).to_string(), "1.35.3");
    }

    #[test]
    fn picks_the_scheduling_protocol() {
        assert_eq!(
            HubVersion::new(1, 33, 1).protocol(),
            SchedulingProtocol::Legacy
        );
        assert_eq!(
            HubVersion::new(1, 34, 1).protocol(),
            SchedulingProtocol::AssignedWithoutHostData
        );
        assert_eq!(
            HubVersion::new(1, 35, 3).protocol(),
            SchedulingProtocol::Assigned
        );
    }
}
