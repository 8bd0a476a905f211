//! The hub's tables, kept in memory: users, sessions, hosts, channels, tasks, buildroots.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dxr::Value;

use crate::config::FakeHubConfig;
use crate::inject::Injections;
use crate::xmlrpc::{vint, vopt_f64, vopt_int, vopt_str, vstr};

/// `TASK_STATES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    Free = 0,
    Open = 1,
    Closed = 2,
    Canceled = 3,
    Assigned = 4,
    Failed = 5,
}

impl TaskState {
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
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Closed | Self::Canceled | Self::Failed)
    }
    pub fn is_active(self) -> bool {
        matches!(self, Self::Free | Self::Open | Self::Assigned)
    }
}

/// `BR_STATES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildrootState {
    Init = 0,
    Waiting = 1,
    Building = 2,
    Expired = 3,
}

impl BuildrootState {
    pub fn from_wire(value: &Value) -> Option<Self> {
        match value {
            Value::String(name) => match name.as_str() {
                "INIT" => Some(Self::Init),
                "WAITING" => Some(Self::Waiting),
                "BUILDING" => Some(Self::Building),
                "EXPIRED" => Some(Self::Expired),
                _ => None,
            },
            other => match crate::xmlrpc::as_int(other) {
                Some(0) => Some(Self::Init),
                Some(1) => Some(Self::Waiting),
                Some(2) => Some(Self::Building),
                Some(3) => Some(Self::Expired),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub password: Option<String>,
    pub host: bool,
    pub admin: bool,
    pub blocked: bool,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub key: String,
    pub user_id: i64,
    pub authtype: i64,
    pub master: Option<i64>,
    pub exclusive: bool,
    pub expired: bool,
    pub closed: bool,
    pub callnum: Option<i64>,
    pub start_ts: f64,
    pub update_ts: f64,
    pub renew_ts: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub arches: String,
    pub capacity: f64,
    pub enabled: bool,
    pub ready: bool,
    pub task_load: f64,
    pub update_ts: Option<f64>,
    pub channels: Vec<i64>,
    pub description: Option<String>,
    pub comment: Option<String>,
    /// `scheduler_host_data` (from `updateHost(data)` or `setHostData`).
    pub data: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: i64,
    pub state: TaskState,
    pub method: String,
    pub arch: String,
    pub channel_id: i64,
    pub host_id: Option<i64>,
    pub parent: Option<i64>,
    pub label: Option<String>,
    pub owner: i64,
    pub priority: i64,
    pub weight: f64,
    /// The request as stored by kojihub: a methodCall document.
    pub request_xml: String,
    /// The result as sent to `closeTask`/`failTask` (a methodResponse document).
    pub result_xml: Option<String>,
    pub create_ts: f64,
    pub start_ts: Option<f64>,
    pub completion_ts: Option<f64>,
    pub waiting: Option<bool>,
    pub awaited: Option<bool>,
    /// When the scheduler (or `assign=`) made it ASSIGNED, for `AssignTimeout`.
    pub assign_ts: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub task_id: i64,
    pub host_id: i64,
    pub soft: bool,
    pub msg: String,
    pub ts: f64,
}

#[derive(Debug, Clone)]
pub struct Buildroot {
    pub id: i64,
    pub host_id: i64,
    pub repo_id: i64,
    pub arch: String,
    pub task_id: Option<i64>,
    pub state: BuildrootState,
    pub create_event: i64,
    pub retire_event: Option<i64>,
    pub create_ts: f64,
    pub retire_ts: Option<f64>,
    pub rpms: Vec<Value>,
}

/// A repo row (kojihub's `repo` table), plain or dist; kept in [`HubState::world`].
#[derive(Debug, Clone, Default)]
pub struct Repo {
    pub id: i64,
    pub tag_id: i64,
    pub tag_name: String,
    pub state: i64,
    pub create_event: i64,
    pub create_ts: f64,
    pub task_id: Option<i64>,
    pub dist: bool,
    /// The repo's opts (`src`, `debuginfo`, `separate_src`, `maven`), JSON null for none.
    pub opts: serde_json::Value,
}

/// All of the hub's mutable state. One lock guards it; it is never held across an await.
#[derive(Debug)]
pub struct HubState {
    pub config: FakeHubConfig,
    pub topdir: PathBuf,
    pub users: BTreeMap<i64, User>,
    pub sessions: BTreeMap<i64, Session>,
    pub hosts: BTreeMap<i64, Host>,
    pub channels: BTreeMap<i64, String>,
    pub tasks: BTreeMap<i64, Task>,
    pub refusals: Vec<Refusal>,
    pub buildroots: BTreeMap<i64, Buildroot>,
    /// The Koji database shared by the build and repo sides: tags, builds, RPMs, repos.
    pub world: std::sync::Arc<std::sync::Mutex<crate::world::KojiWorld>>,
    pub injections: Injections,
    pub next_session_id: i64,
    pub next_task_id: i64,
    pub next_buildroot_id: i64,
    pub event_id: i64,
    /// Seconds added to the wall clock, so tests can make sessions and hosts age.
    pub clock_offset: f64,
    pub last_scheduler_run: Option<Instant>,
    /// Upload files locked by a test (to provoke `LockError`) or by a running upload.
    pub locked_uploads: HashMap<PathBuf, u32>,
    /// Methods registered by tests (`FakeHub::register_method`); they take precedence over
    /// the built-in table.
    pub custom_methods: BTreeMap<String, CustomMethod>,
}

/// A method a test adds (or overrides) without changing the crate.
pub type CustomHandler = std::sync::Arc<
    dyn Fn(
            &mut HubState,
            &crate::auth::Caller,
            &crate::args::BoundArgs,
        ) -> Result<Value, crate::faults::HubFault>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub struct CustomMethod {
    pub signature: crate::args::Signature,
    pub mutating: bool,
    pub handler: CustomHandler,
}

impl std::fmt::Debug for CustomMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomMethod")
            .field("signature", &self.signature)
            .field("mutating", &self.mutating)
            .finish()
    }
}

pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// kojihub's `datetime.isoformat(' ')` of a timestamptz: `2026-11-26 20:00:53.480453+00:00`.
pub fn format_ts(ts: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let secs = ts.floor() as i64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let micros = ((ts - ts.floor()) * 1_000_000.0).round() as u32;
    let (secs, micros) = if micros >= 1_000_000 {
        (secs + 1, 0)
    } else {
        (secs, micros)
    };
    match chrono::DateTime::from_timestamp(secs, micros * 1000) {
        Some(stamp) if micros == 0 => stamp.format("%Y-%m-%d %H:%M:%S+00:00").to_string(),
        Some(stamp) => stamp.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
        None => ts.to_string(),
    }
}

fn opt_ts_str(ts: Option<f64>) -> Value {
    ts.map_or(Value::Nil, |t| Value::String(format_ts(t)))
}

fn opt_bool(flag: Option<bool>) -> Value {
    flag.map_or(Value::Nil, Value::Boolean)
}

impl HubState {
    pub fn new(config: FakeHubConfig, topdir: PathBuf) -> Self {
        let mut state = Self {
            config: config.clone(),
            topdir,
            users: BTreeMap::new(),
            sessions: BTreeMap::new(),
            hosts: BTreeMap::new(),
            channels: BTreeMap::new(),
            tasks: BTreeMap::new(),
            refusals: Vec::new(),
            buildroots: BTreeMap::new(),
            world: Default::default(),
            injections: Injections::default(),
            next_session_id: 1,
            next_task_id: 1,
            next_buildroot_id: 1,
            event_id: 1,
            clock_offset: 0.0,
            last_scheduler_run: None,
            locked_uploads: HashMap::new(),
            custom_methods: BTreeMap::new(),
        };
        state.channels.insert(1, "default".to_owned());
        state.channels.insert(2, "createrepo".to_owned());
        // kojihub's reset gives kojiadmin user id 1 and the first host user id 2, as in the
        // golden transcripts (host 1 = user 2).
        let mut users = config.users.clone();
        if !users.iter().any(|(name, _, _)| name == "kojiadmin") {
            users.insert(0, ("kojiadmin".to_owned(), "kojiadmin".to_owned(), true));
        }
        let mut next_user = 1;
        for (name, password, admin) in users.iter().take(1) {
            state.add_user(next_user, name, Some(password.clone()), false, *admin);
            next_user += 1;
        }
        for (host_number, host) in config.hosts.iter().enumerate() {
            let user_id = next_user;
            next_user += 1;
            state.add_user(user_id, &host.name, host.password.clone(), true, false);
            let channels = host
                .channels
                .iter()
                .map(|c| state.channel_id_or_create(c))
                .collect();
            let host_id = i64::try_from(host_number).unwrap_or(0) + 1;
            state.hosts.insert(
                host_id,
                Host {
                    id: host_id,
                    user_id,
                    name: host.name.clone(),
                    arches: host.arches.clone(),
                    capacity: host.capacity,
                    enabled: host.enabled,
                    ready: false,
                    task_load: 0.0,
                    // A host that never called updateHost has no update time (the idle
                    // transcript's first host.getHost shows nil).
                    update_ts: None,
                    channels,
                    description: None,
                    comment: None,
                    data: None,
                },
            );
        }
        for (name, password, admin) in users.iter().skip(1) {
            state.add_user(next_user, name, Some(password.clone()), false, *admin);
            next_user += 1;
        }
        state
    }

    fn add_user(&mut self, id: i64, name: &str, password: Option<String>, host: bool, admin: bool) {
        self.users.insert(
            id,
            User {
                id,
                name: name.to_owned(),
                password,
                host,
                admin,
                blocked: false,
            },
        );
    }

    pub fn now(&self) -> f64 {
        wall_clock() + self.clock_offset
    }

    pub fn next_event(&mut self) -> i64 {
        self.event_id += 1;
        self.event_id
    }

    pub fn channel_id_or_create(&mut self, name: &str) -> i64 {
        if let Some((id, _)) = self.channels.iter().find(|(_, n)| *n == name) {
            return *id;
        }
        let id = self.channels.keys().max().copied().unwrap_or(0) + 1;
        self.channels.insert(id, name.to_owned());
        id
    }

    pub fn user_by_name(&self, name: &str) -> Option<&User> {
        self.users.values().find(|u| u.name == name)
    }

    pub fn host_by_user(&self, user_id: i64) -> Option<&Host> {
        self.hosts.values().find(|h| h.user_id == user_id)
    }

    pub fn host_by_name(&self, name: &str) -> Option<&Host> {
        self.hosts.values().find(|h| h.name == name)
    }

    /// `Task.getInfo()`: the struct of `getTaskInfo`/`openTask` without `request`.
    pub fn task_info(&self, task: &Task) -> BTreeMap<String, Value> {
        let mut info = BTreeMap::new();
        info.insert("arch".into(), vstr(&task.arch));
        info.insert("awaited".into(), opt_bool(task.awaited));
        info.insert("channel_id".into(), vint(task.channel_id));
        info.insert("completion_time".into(), opt_ts_str(task.completion_ts));
        info.insert("completion_ts".into(), vopt_f64(task.completion_ts));
        info.insert(
            "create_time".into(),
            Value::String(format_ts(task.create_ts)),
        );
        info.insert("create_ts".into(), Value::Double(task.create_ts));
        info.insert("host_id".into(), vopt_int(task.host_id));
        info.insert("id".into(), vint(task.id));
        info.insert("label".into(), vopt_str(task.label.as_deref()));
        info.insert("method".into(), vstr(&task.method));
        info.insert("owner".into(), vint(task.owner));
        info.insert("parent".into(), vopt_int(task.parent));
        info.insert("priority".into(), vint(task.priority));
        info.insert("start_time".into(), opt_ts_str(task.start_ts));
        info.insert("start_ts".into(), vopt_f64(task.start_ts));
        info.insert("state".into(), vint(task.state as i64));
        info.insert("waiting".into(), opt_bool(task.waiting));
        info.insert("weight".into(), Value::Double(task.weight));
        info
    }

    pub fn host_struct(&self, host: &Host) -> Value {
        let mut info = BTreeMap::new();
        info.insert("arches".into(), vstr(&host.arches));
        info.insert("capacity".into(), Value::Double(host.capacity));
        info.insert("comment".into(), vopt_str(host.comment.as_deref()));
        info.insert("description".into(), vopt_str(host.description.as_deref()));
        info.insert("enabled".into(), Value::Boolean(host.enabled));
        info.insert("id".into(), vint(host.id));
        info.insert("name".into(), vstr(&host.name));
        info.insert("ready".into(), Value::Boolean(host.ready));
        info.insert("task_load".into(), Value::Double(host.task_load));
        info.insert("update_ts".into(), vopt_f64(host.update_ts));
        info.insert("user_id".into(), vint(host.user_id));
        Value::Struct(info)
    }

    /// Whether the scheduler may give this host work (`ready`, enabled, heard from within
    /// `ReadyTimeout`).
    pub fn host_is_ready(&self, host: &Host) -> bool {
        let fresh = host
            .update_ts
            .is_some_and(|ts| self.now() - ts <= self.config.ready_timeout.as_secs_f64());
        host.enabled && host.ready && fresh
    }

    pub fn ready_timeout(&self) -> Duration {
        self.config.ready_timeout
    }
}
