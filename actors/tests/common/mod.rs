//! In-memory fakes for the supervision core: a hub that follows kojihub's task rules, a
//! container runtime, a host probe and a notifier. No network, no processes.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koji_adjutant_actors::error::{ErrorClass, Fault, HubError, fault_codes};
use koji_adjutant_actors::hub::*;
use koji_adjutant_actors::probe::{HostProbe, Notifier, ProbeError};
use koji_adjutant_actors::runtime::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const ME: i64 = 1;
pub const MAIN: i64 = 0;

#[derive(Debug, Clone)]
pub struct FakeTask {
    pub id: i64,
    pub method: String,
    pub arch: String,
    pub state: TaskState,
    pub host_id: Option<i64>,
    pub request: Vec<Value>,
    pub weight: f64,
    pub waiting: bool,
    pub awaited: bool,
    pub parent: Option<i64>,
    pub label: Option<String>,
    pub result: Option<Result<Value, Fault>>,
    pub completion_ts: Option<f64>,
    pub channel_id: i64,
    pub priority: i64,
    /// closeTask + failTask calls accepted for this task.
    pub reports: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub session: i64,
    pub method: String,
    pub args: Value,
}

/// A one-shot change of the hub's state, run before a call is answered.
pub type Hook = Box<dyn FnOnce(&mut HubState) + Send>;

pub struct HubState {
    pub version: HubVersion,
    pub host: HostInfo,
    pub channels: Vec<i64>,
    pub other_hosts: Vec<LoadDataHost>,
    pub tasks: BTreeMap<i64, FakeTask>,
    pub next_task: i64,
    pub buildroots: Vec<BuildrootInfo>,
    pub calls: Vec<Call>,
    pub next_session: i64,
    pub open_sessions: HashSet<i64>,
    pub build_configs: HashMap<String, Value>,
    pub build_config_delay: Duration,
    pub panic_once: HashSet<String>,
    pub fail_once: HashMap<String, HubError>,
    pub refusals: Vec<(i64, bool, String)>,
    pub session_start_ts: f64,
    /// Runs once, before the named call is answered: for races (a cancel between two calls).
    pub before_once: HashMap<String, Hook>,
    /// `host.getHost` answers after this long (a slow hub in the middle of a cycle).
    pub get_host_delay: Duration,
    /// When set, the main session's teardown calls (`logoutChild`, `host.freeTasks`,
    /// `host.updateHost`, `logout`) queue on one fair lock and hold it this long, as the real
    /// client serialises a session's calls on its callnum.
    pub main_session_lock: Option<(Arc<tokio::sync::Mutex<()>>, Duration)>,
}

#[derive(Clone)]
pub struct FakeHub {
    pub state: Arc<Mutex<HubState>>,
}

fn now_ts() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl FakeHub {
    pub fn new(version: HubVersion) -> Self {
        Self {
            state: Arc::new(Mutex::new(HubState {
                version,
                host: HostInfo {
                    id: ME,
                    name: "builder-1".to_owned(),
                    enabled: true,
                    capacity: 10.0,
                    task_load: 0.0,
                    ready: false,
                    arches: vec!["x86_64".to_owned()],
                },
                channels: vec![1],
                other_hosts: Vec::new(),
                tasks: BTreeMap::new(),
                next_task: 100,
                buildroots: Vec::new(),
                calls: Vec::new(),
                next_session: 900_002,
                open_sessions: HashSet::new(),
                build_configs: HashMap::new(),
                build_config_delay: Duration::ZERO,
                panic_once: HashSet::new(),
                fail_once: HashMap::new(),
                refusals: Vec::new(),
                session_start_ts: now_ts(),
                before_once: HashMap::new(),
                get_host_delay: Duration::ZERO,
                main_session_lock: None,
            })),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap()
    }

    /// Takes the main session's turn, if the test serialises it (see `main_session_lock`).
    async fn main_session_turn(&self) {
        let serialised = self.lock().main_session_lock.clone();
        if let Some((lock, hold)) = serialised {
            let _turn = lock.lock_owned().await;
            tokio::time::sleep(hold).await;
        }
    }

    /// A new FREE top-level task.
    pub fn create_task(&self, method: &str, request: Vec<Value>) -> i64 {
        let mut s = self.lock();
        let id = s.next_task;
        s.next_task += 1;
        s.tasks.insert(
            id,
            FakeTask {
                id,
                method: method.to_owned(),
                arch: "noarch".to_owned(),
                state: TaskState::Free,
                host_id: None,
                request,
                weight: 1.0,
                waiting: false,
                awaited: false,
                parent: None,
                label: None,
                result: None,
                completion_ts: None,
                channel_id: 1,
                priority: 20,
                reports: 0,
            },
        );
        id
    }

    /// A subsession without going through `subsession()` (for handler tests).
    pub fn task_session(&self, session: i64) -> Arc<dyn TaskHub> {
        Arc::new(FakeTaskHub {
            hub: self.clone(),
            session,
        })
    }

    pub fn task(&self, id: i64) -> FakeTask {
        self.lock().tasks[&id].clone()
    }

    pub fn cancel(&self, id: i64) {
        let mut s = self.lock();
        let children: Vec<i64> = s
            .tasks
            .values()
            .filter(|t| t.parent == Some(id))
            .map(|t| t.id)
            .collect();
        for task_id in std::iter::once(id).chain(children) {
            if let Some(task) = s.tasks.get_mut(&task_id)
                && !matches!(
                    task.state,
                    TaskState::Closed | TaskState::Failed | TaskState::Canceled
                )
            {
                task.state = TaskState::Canceled;
                task.completion_ts = Some(now_ts());
            }
        }
    }

    pub fn calls(&self, session: i64) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.session == session)
            .map(|c| c.method.clone())
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    pub fn calls_named(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    fn record(&self, session: i64, method: &str, args: Value) -> Result<(), HubError> {
        let mut s = self.lock();
        s.calls.push(Call {
            session,
            method: method.to_owned(),
            args,
        });
        if s.panic_once.remove(method) {
            drop(s);
            panic!("fake hub: injected panic in {method}");
        }
        if let Some(error) = s.fail_once.remove(method) {
            return Err(error);
        }
        if let Some(hook) = s.before_once.remove(method) {
            hook(&mut s);
        }
        Ok(())
    }

    fn info(task: &FakeTask, request: bool) -> TaskInfo {
        TaskInfo {
            id: task.id,
            state: task.state,
            host_id: task.host_id,
            method: task.method.clone(),
            arch: task.arch.clone(),
            channel_id: task.channel_id,
            parent: task.parent,
            owner: Some(1),
            priority: task.priority,
            completion_ts: task.completion_ts,
            request: request.then(|| task.request.clone()),
        }
    }

    fn offered(task: &FakeTask) -> OfferedTask {
        OfferedTask {
            id: task.id,
            state: task.state,
            host_id: task.host_id,
            channel_id: task.channel_id,
            arch: task.arch.clone(),
            method: task.method.clone(),
            priority: task.priority,
        }
    }

    fn not_owner(call: &str, task_id: i64) -> HubError {
        HubError::from_fault(
            call,
            Fault::new(
                fault_codes::ACTION_NOT_ALLOWED,
                "ActionNotAllowed",
                format!("host {ME} does not own task {task_id}"),
            ),
        )
    }

    fn assert_owner(s: &HubState, call: &str, task_id: i64) -> Result<(), HubError> {
        match s.tasks.get(&task_id) {
            Some(t) if t.state == TaskState::Open && t.host_id == Some(ME) => Ok(()),
            _ => Err(Self::not_owner(call, task_id)),
        }
    }

    fn finish(
        &self,
        call: &str,
        task_id: i64,
        result: Result<Value, Fault>,
    ) -> Result<(), HubError> {
        let mut s = self.lock();
        Self::assert_owner(&s, call, task_id)?;
        let task = s.tasks.get_mut(&task_id).unwrap();
        task.state = if result.is_ok() {
            TaskState::Closed
        } else {
            TaskState::Failed
        };
        task.result = Some(result);
        task.completion_ts = Some(now_ts());
        task.reports += 1;
        Ok(())
    }

    fn free(&self, ids: &[i64]) {
        let mut s = self.lock();
        for id in ids {
            if let Some(task) = s.tasks.get_mut(id)
                && task.state == TaskState::Open
                && task.host_id == Some(ME)
            {
                task.state = TaskState::Free;
                task.host_id = None;
            }
        }
    }
}

#[async_trait::async_trait]
impl HostHub for FakeHub {
    async fn login(&self) -> Result<(), HubError> {
        self.record(MAIN, "login", Value::Null)
    }
    async fn hub_version(&self) -> Result<HubVersion, HubError> {
        // From the Koji-Version header of the login response: no call of its own.
        Ok(self.lock().version)
    }
    async fn get_id(&self) -> Result<i64, HubError> {
        self.record(MAIN, "host.getID", Value::Null)?;
        Ok(ME)
    }
    async fn get_session_info(&self) -> Result<SessionInfo, HubError> {
        self.record(MAIN, "getSessionInfo", Value::Null)?;
        Ok(SessionInfo {
            session_id: 900_001,
            start_ts: self.lock().session_start_ts,
        })
    }
    async fn get_host(&self) -> Result<HostInfo, HubError> {
        self.record(MAIN, "host.getHost", Value::Null)?;
        let delay = self.lock().get_host_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(self.lock().host.clone())
    }
    async fn get_host_tasks(&self) -> Result<Vec<HostTask>, HubError> {
        self.record(MAIN, "host.getHostTasks", Value::Null)?;
        let s = self.lock();
        Ok(s.tasks
            .values()
            .filter(|t| t.state == TaskState::Open && t.host_id == Some(ME))
            .map(|t| {
                let alert = t.waiting
                    && s.tasks.values().any(|c| {
                        c.parent == Some(t.id)
                            && c.awaited
                            && matches!(
                                c.state,
                                TaskState::Closed | TaskState::Failed | TaskState::Canceled
                            )
                    });
                HostTask {
                    id: t.id,
                    waiting: t.waiting,
                    weight: t.weight,
                    alert,
                }
            })
            .collect())
    }
    async fn update_host(
        &self,
        task_load: f64,
        ready: bool,
        data: Option<&HostData>,
    ) -> Result<(), HubError> {
        self.record(MAIN, "host.updateHost", json!({"task_load": task_load, "ready": ready, "data": data.map(|d| json!({"methods": d.methods, "maxjobs": d.maxjobs}))}))?;
        let mut s = self.lock();
        s.host.task_load = task_load;
        s.host.ready = ready;
        Ok(())
    }
    async fn set_host_data(&self, data: &HostData) -> Result<(), HubError> {
        self.record(MAIN, "host.setHostData", json!({"maxjobs": data.maxjobs}))
    }
    async fn get_tasks(&self) -> Result<Vec<OfferedTask>, HubError> {
        self.record(MAIN, "host.getTasks", Value::Null)?;
        let mut s = self.lock();
        // An eager scheduler: every FREE task goes to this host. The worker must respect its
        // own maxjobs and capacity.
        for task in s.tasks.values_mut() {
            if task.state == TaskState::Free {
                task.state = TaskState::Assigned;
                task.host_id = Some(ME);
            }
        }
        Ok(s.tasks
            .values()
            .filter(|t| t.state == TaskState::Assigned && t.host_id == Some(ME))
            .map(Self::offered)
            .collect())
    }
    async fn get_load_data(&self) -> Result<LoadData, HubError> {
        self.record(MAIN, "host.getLoadData", Value::Null)?;
        let s = self.lock();
        let mut hosts = vec![LoadDataHost {
            id: ME,
            arches: s.host.arches.clone(),
            channels: s.channels.clone(),
            capacity: s.host.capacity,
            task_load: s.host.task_load,
        }];
        hosts.extend(s.other_hosts.iter().cloned());
        let tasks = s
            .tasks
            .values()
            .filter(|t| {
                t.state == TaskState::Free
                    || (t.state == TaskState::Assigned && t.host_id == Some(ME))
            })
            .map(Self::offered)
            .collect();
        Ok(LoadData { hosts, tasks })
    }
    async fn get_task_info(&self, task_id: i64, request: bool) -> Result<TaskInfo, HubError> {
        self.record(MAIN, "getTaskInfo", json!([task_id, request]))?;
        let s = self.lock();
        s.tasks
            .get(&task_id)
            .map(|t| Self::info(t, request))
            .ok_or_else(|| {
                HubError::from_fault(
                    "getTaskInfo",
                    Fault::generic(format!("No such task: {task_id}")),
                )
            })
    }
    async fn open_task(&self, task_id: i64) -> Result<Option<TaskInfo>, HubError> {
        self.record(MAIN, "host.openTask", json!([task_id]))?;
        let mut s = self.lock();
        let Some(task) = s.tasks.get_mut(&task_id) else {
            return Ok(None);
        };
        let allowed = task.state == TaskState::Free
            || (task.state == TaskState::Assigned && task.host_id == Some(ME));
        if !allowed {
            return Ok(None);
        }
        task.state = TaskState::Open;
        task.host_id = Some(ME);
        Ok(Some(Self::info(task, false)))
    }
    async fn set_task_weight(&self, task_id: i64, weight: f64) -> Result<(), HubError> {
        self.record(MAIN, "host.setTaskWeight", json!([task_id, weight]))?;
        let mut s = self.lock();
        Self::assert_owner(&s, "host.setTaskWeight", task_id)?;
        s.tasks.get_mut(&task_id).unwrap().weight = weight;
        Ok(())
    }
    async fn refuse_task(&self, task_id: i64, soft: bool, message: &str) -> Result<(), HubError> {
        self.record(MAIN, "host.refuseTask", json!([task_id, soft, message]))?;
        let mut s = self.lock();
        s.refusals.push((task_id, soft, message.to_owned()));
        if let Some(task) = s.tasks.get_mut(&task_id)
            && matches!(task.state, TaskState::Assigned | TaskState::Open)
            && task.host_id == Some(ME)
        {
            task.state = TaskState::Free;
            task.host_id = None;
        }
        Ok(())
    }
    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), HubError> {
        self.record(MAIN, "host.freeTasks", json!(task_ids))?;
        self.main_session_turn().await;
        self.free(task_ids);
        Ok(())
    }
    async fn list_active_buildroots(&self, _host_id: i64) -> Result<Vec<BuildrootInfo>, HubError> {
        self.record(MAIN, "listBuildroots", Value::Null)?;
        Ok(self
            .lock()
            .buildroots
            .iter()
            .filter(|b| b.state < BUILDROOT_EXPIRED)
            .cloned()
            .collect())
    }
    async fn set_buildroot_state(&self, buildroot_id: i64, state: i64) -> Result<(), HubError> {
        self.record(MAIN, "host.setBuildRootState", json!([buildroot_id, state]))?;
        for b in self
            .lock()
            .buildroots
            .iter_mut()
            .filter(|b| b.id == buildroot_id)
        {
            b.state = state;
        }
        Ok(())
    }
    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Value, HubError> {
        self.record(MAIN, "getBuildConfig", json!([tag, event]))?;
        let delay = self.lock().build_config_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.lock().build_configs.get(tag).cloned().ok_or_else(|| {
            HubError::from_fault(
                "getBuildConfig",
                Fault::generic(format!("No such tagInfo: '{tag}'")),
            )
        })
    }
    async fn subsession(&self) -> Result<Arc<dyn TaskHub>, HubError> {
        self.record(MAIN, "subsession", Value::Null)?;
        let mut s = self.lock();
        let id = s.next_session;
        s.next_session += 1;
        s.open_sessions.insert(id);
        Ok(Arc::new(FakeTaskHub {
            hub: self.clone(),
            session: id,
        }))
    }
    async fn logout_child(&self, session_id: i64) -> Result<(), HubError> {
        self.record(MAIN, "logoutChild", json!([session_id]))?;
        self.main_session_turn().await;
        self.lock().open_sessions.remove(&session_id);
        Ok(())
    }
    async fn logout(&self) -> Result<(), HubError> {
        self.record(MAIN, "logout", Value::Null)?;
        self.main_session_turn().await;
        Ok(())
    }
}

pub struct FakeTaskHub {
    hub: FakeHub,
    session: i64,
}

#[async_trait::async_trait]
impl TaskHub for FakeTaskHub {
    fn session_id(&self) -> i64 {
        self.session
    }
    async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        kwargs: serde_json::Map<String, Value>,
    ) -> Result<Value, HubError> {
        self.hub.record(
            self.session,
            method,
            json!({"params": params, "kwargs": kwargs}),
        )?;
        match method {
            "echo" => Ok(Value::Array(params)),
            _ => Err(HubError::from_fault(
                method,
                Fault::generic(format!("Invalid method: {method}")),
            )),
        }
    }
    async fn close_task(&self, task_id: i64, result: &Value) -> Result<(), HubError> {
        self.hub
            .record(self.session, "host.closeTask", json!([task_id, result]))?;
        self.hub
            .finish("host.closeTask", task_id, Ok(result.clone()))
    }
    async fn fail_task(&self, task_id: i64, fault: &Fault) -> Result<(), HubError> {
        self.hub.record(
            self.session,
            "host.failTask",
            json!([task_id, fault.fault_code, fault.message]),
        )?;
        self.hub
            .finish("host.failTask", task_id, Err(fault.clone()))
    }
    async fn refuse_task(&self, task_id: i64, soft: bool, message: &str) -> Result<(), HubError> {
        self.hub.record(
            self.session,
            "host.refuseTask",
            json!([task_id, soft, message]),
        )?;
        let mut s = self.hub.lock();
        s.refusals.push((task_id, soft, message.to_owned()));
        if let Some(task) = s.tasks.get_mut(&task_id) {
            task.state = TaskState::Free;
            task.host_id = None;
        }
        Ok(())
    }
    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), HubError> {
        self.hub
            .record(self.session, "host.freeTasks", json!(task_ids))?;
        self.hub.free(task_ids);
        Ok(())
    }
    async fn get_id(&self) -> Result<i64, HubError> {
        self.hub.record(self.session, "host.getID", Value::Null)?;
        Ok(ME)
    }
    async fn get_task_info(&self, task_id: i64, request: bool) -> Result<TaskInfo, HubError> {
        self.hub
            .record(self.session, "getTaskInfo", json!([task_id]))?;
        let s = self.hub.lock();
        s.tasks
            .get(&task_id)
            .map(|t| FakeHub::info(t, request))
            .ok_or_else(|| HubError::from_fault("getTaskInfo", Fault::generic("No such task")))
    }
    async fn subtask(
        &self,
        parent: i64,
        method: &str,
        args: Vec<Value>,
        options: &SubtaskOptions,
    ) -> Result<i64, HubError> {
        self.hub.record(
            self.session,
            "host.subtask",
            json!([method, args, parent, options.label]),
        )?;
        let mut s = self.hub.lock();
        FakeHub::assert_owner(&s, "host.subtask", parent)?;
        if let Some(existing) = s.tasks.values().find(|t| {
            t.parent == Some(parent) && t.label == options.label && options.label.is_some()
        }) {
            return Ok(existing.id);
        }
        let id = s.next_task;
        s.next_task += 1;
        let priority = s.tasks[&parent].priority - 1;
        s.tasks.insert(
            id,
            FakeTask {
                id,
                method: method.to_owned(),
                arch: "noarch".to_owned(),
                state: TaskState::Free,
                host_id: None,
                request: args,
                weight: 1.0,
                waiting: false,
                awaited: false,
                parent: Some(parent),
                label: options.label.clone(),
                result: None,
                completion_ts: None,
                channel_id: 1,
                priority,
                reports: 0,
            },
        );
        Ok(id)
    }
    async fn task_set_wait(&self, parent: i64, subtasks: Option<&[i64]>) -> Result<(), HubError> {
        self.hub
            .record(self.session, "host.taskSetWait", json!([parent, subtasks]))?;
        let mut s = self.hub.lock();
        FakeHub::assert_owner(&s, "host.taskSetWait", parent)?;
        s.tasks.get_mut(&parent).unwrap().waiting = true;
        for task in s.tasks.values_mut().filter(|t| t.parent == Some(parent)) {
            task.awaited = subtasks.is_none_or(|ids| ids.contains(&task.id));
        }
        Ok(())
    }
    async fn task_wait(&self, parent: i64) -> Result<WaitStatus, HubError> {
        self.hub
            .record(self.session, "host.taskWait", json!([parent]))?;
        let mut s = self.hub.lock();
        let mut status = WaitStatus::default();
        for task in s
            .tasks
            .values_mut()
            .filter(|t| t.parent == Some(parent) && t.awaited)
        {
            if matches!(
                task.state,
                TaskState::Closed | TaskState::Failed | TaskState::Canceled
            ) {
                status.finished.push(task.id);
                task.awaited = false;
            } else {
                status.unfinished.push(task.id);
            }
        }
        Ok(status)
    }
    async fn task_wait_results(
        &self,
        parent: i64,
        subtasks: Option<&[i64]>,
        canfail: &[i64],
    ) -> Result<Vec<(i64, SubtaskResult)>, HubError> {
        self.hub.record(
            self.session,
            "host.taskWaitResults",
            json!([parent, subtasks, canfail]),
        )?;
        let mut s = self.hub.lock();
        s.tasks.get_mut(&parent).unwrap().waiting = false;
        let ids: Vec<i64> = match subtasks {
            Some(ids) => ids.to_vec(),
            None => s
                .tasks
                .values()
                .filter(|t| {
                    t.parent == Some(parent)
                        && matches!(
                            t.state,
                            TaskState::Closed | TaskState::Failed | TaskState::Canceled
                        )
                })
                .map(|t| t.id)
                .collect(),
        };
        let mut results = Vec::new();
        for id in ids {
            let task = &s.tasks[&id];
            let result = match (&task.state, &task.result) {
                (TaskState::Closed, Some(Ok(value))) => SubtaskResult::Closed(value.clone()),
                (TaskState::Failed, Some(Err(fault))) if canfail.contains(&id) => {
                    SubtaskResult::Failed(fault.clone())
                }
                (TaskState::Failed, Some(Err(fault))) => {
                    return Err(HubError::from_fault("host.taskWaitResults", fault.clone()));
                }
                (TaskState::Canceled, _) => {
                    return Err(HubError::from_fault(
                        "host.taskWaitResults",
                        Fault::generic(format!("Task {id} is canceled")),
                    ));
                }
                _ => {
                    return Err(HubError::from_fault(
                        "host.taskWaitResults",
                        Fault::generic(format!("Task {id} is not finished")),
                    ));
                }
            };
            results.push((id, result));
        }
        Ok(results)
    }
    async fn get_task_result(&self, task_id: i64) -> Result<Value, HubError> {
        self.hub
            .record(self.session, "getTaskResult", json!([task_id]))?;
        let s = self.hub.lock();
        match (&s.tasks[&task_id].state, &s.tasks[&task_id].result) {
            (TaskState::Closed, Some(Ok(v))) => Ok(v.clone()),
            (TaskState::Failed, Some(Err(f))) => {
                Err(HubError::from_fault("getTaskResult", f.clone()))
            }
            _ => Err(HubError::from_fault(
                "getTaskResult",
                Fault::generic(format!("Task {task_id} is canceled")),
            )),
        }
    }
    async fn cancel_task_children(&self, task_id: i64) -> Result<(), HubError> {
        self.hub
            .record(self.session, "cancelTaskChildren", json!([task_id]))?;
        let children: Vec<i64> = self
            .hub
            .lock()
            .tasks
            .values()
            .filter(|t| t.parent == Some(task_id))
            .map(|t| t.id)
            .collect();
        for child in children {
            let mut s = self.hub.lock();
            let task = s.tasks.get_mut(&child).unwrap();
            if !matches!(
                task.state,
                TaskState::Closed | TaskState::Failed | TaskState::Canceled
            ) {
                task.state = TaskState::Canceled;
            }
        }
        Ok(())
    }
    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Value, HubError> {
        self.hub
            .record(self.session, "getBuildConfig", json!([tag, event]))?;
        self.hub
            .lock()
            .build_configs
            .get(tag)
            .cloned()
            .ok_or_else(|| HubError::new("getBuildConfig", ErrorClass::FailTask, "no such tag"))
    }
    async fn logout(&self) -> Result<(), HubError> {
        self.hub.record(self.session, "logout", Value::Null)?;
        self.hub.lock().open_sessions.remove(&self.session);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct RuntimeState {
    pub created: Vec<String>,
    pub removed: Vec<String>,
    /// name → labels, of containers that exist.
    pub existing: BTreeMap<String, BTreeMap<String, String>>,
    pub kill_switches: HashMap<String, CancellationToken>,
    pub execs_started: Vec<(String, Vec<String>)>,
    pub reaped: Vec<String>,
}

/// A container runtime in memory. `sleep N` execs take N (virtual) seconds.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    pub state: Arc<Mutex<RuntimeState>>,
    pub reap_panics: Arc<AtomicU32>,
    pub remove_panics: Arc<AtomicU32>,
    /// When set, `create` takes this long, and the container appears at the end even if the
    /// caller gave up meanwhile (as a `podman create` whose client was killed may).
    pub create_lag: Arc<Mutex<Duration>>,
}

impl FakeRuntime {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap()
    }

    /// A container left behind by an earlier run (or another worker).
    pub fn add_leftover(&self, name: &str, worker: &str) {
        self.lock().existing.insert(
            name.to_owned(),
            BTreeMap::from([("io.koji.adjutant.worker".to_owned(), worker.to_owned())]),
        );
    }

    pub fn existing(&self) -> Vec<String> {
        self.lock().existing.keys().cloned().collect()
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn ensure_image(&self, _image: &str, _policy: PullPolicy) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        Ok(ImageInfo {
            id: format!("sha256:fake-{image}"),
            ..ImageInfo::default()
        })
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerHandle, RuntimeError> {
        let lag = *self.create_lag.lock().unwrap();
        if !lag.is_zero() {
            let runtime = self.clone();
            let name = spec.name.clone();
            let labels = spec.labels.clone();
            let done = tokio::task::spawn_local(async move {
                tokio::time::sleep(lag).await;
                let mut s = runtime.lock();
                s.created.push(name.clone());
                s.existing.insert(name.clone(), labels);
                s.kill_switches.insert(name, CancellationToken::new());
            });
            let _ = done.await;
            return Ok(ContainerHandle {
                id: format!("id-{}", spec.name),
                name: spec.name.clone(),
            });
        }
        let mut s = self.lock();
        s.created.push(spec.name.clone());
        s.existing.insert(spec.name.clone(), spec.labels.clone());
        s.kill_switches
            .insert(spec.name.clone(), CancellationToken::new());
        Ok(ContainerHandle {
            id: format!("id-{}", spec.name),
            name: spec.name.clone(),
        })
    }
    async fn start(&self, _container: &ContainerHandle) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
        cancel: CancellationToken,
    ) -> Result<ExecOutcome, RuntimeError> {
        let killed = {
            let mut s = self.lock();
            s.execs_started
                .push((container.name.clone(), spec.argv.clone()));
            s.kill_switches.get(&container.name).cloned()
        };
        let Some(killed) = killed else {
            return Err(RuntimeError::Podman {
                operation: "exec".into(),
                status: 125,
                message: "no such container".into(),
            });
        };
        if let [cmd, rest @ ..] = spec.argv.as_slice()
            && cmd == "echo"
        {
            sink.line(OutputStream::Stdout, &rest.join(" "));
            return Ok(ExecOutcome {
                exit_code: 0,
                oom_killed: false,
            });
        }
        let seconds: f64 = match spec.argv.as_slice() {
            [cmd, n] if cmd == "sleep" => n.parse().unwrap_or(0.0),
            _ => 0.0,
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => Ok(ExecOutcome { exit_code: 0, oom_killed: false }),
            () = cancel.cancelled() => Err(RuntimeError::Cancelled { step: spec.step.clone() }),
            () = killed.cancelled() => Ok(ExecOutcome { exit_code: 137, oom_killed: false }),
        }
    }
    async fn stop(
        &self,
        container: &ContainerHandle,
        _grace: Duration,
    ) -> Result<(), RuntimeError> {
        self.kill(container).await
    }
    async fn kill(&self, container: &ContainerHandle) -> Result<(), RuntimeError> {
        if let Some(k) = self.lock().kill_switches.get(&container.name) {
            k.cancel();
        }
        Ok(())
    }
    async fn remove(&self, container: &ContainerHandle, _force: bool) -> Result<(), RuntimeError> {
        if self.remove_panics.load(Ordering::SeqCst) > 0 {
            self.remove_panics.fetch_sub(1, Ordering::SeqCst);
            panic!("fake runtime: injected panic in remove");
        }
        let mut s = self.lock();
        if let Some(k) = s.kill_switches.remove(&container.name) {
            k.cancel();
        }
        if s.existing.remove(&container.name).is_some() {
            s.removed.push(container.name.clone());
        }
        Ok(())
    }
    async fn list_owned(&self, worker_id: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
        Ok(self
            .lock()
            .existing
            .iter()
            .filter(|(_, l)| {
                l.get("io.koji.adjutant.worker").map(String::as_str) == Some(worker_id)
            })
            .map(|(n, l)| ContainerSummary {
                id: n.clone(),
                name: n.clone(),
                labels: l.clone(),
                state: "running".into(),
            })
            .collect())
    }
    async fn reap_orphans(
        &self,
        worker_id: &str,
        live: &HashSet<String>,
    ) -> Result<Vec<String>, RuntimeError> {
        if self.reap_panics.load(Ordering::SeqCst) > 0 {
            self.reap_panics.fetch_sub(1, Ordering::SeqCst);
            panic!("fake runtime: injected panic in reap_orphans");
        }
        let mut s = self.lock();
        let orphans: Vec<String> = s
            .existing
            .iter()
            .filter(|(n, l)| {
                l.get("io.koji.adjutant.worker").map(String::as_str) == Some(worker_id)
                    && !live.contains(*n)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in &orphans {
            s.existing.remove(name);
            s.reaped.push(name.clone());
        }
        Ok(orphans)
    }
}

pub struct FakeProbe {
    pub free_mib: AtomicU64,
    pub load_x100: AtomicU64,
}

impl Default for FakeProbe {
    fn default() -> Self {
        Self {
            free_mib: AtomicU64::new(100_000),
            load_x100: AtomicU64::new(10),
        }
    }
}

impl HostProbe for FakeProbe {
    fn free_space_mib(&self, _path: &Path) -> Result<u64, ProbeError> {
        Ok(self.free_mib.load(Ordering::SeqCst))
    }
    fn load_average_1m(&self) -> Result<f64, ProbeError> {
        Ok(self.load_x100.load(Ordering::SeqCst) as f64 / 100.0)
    }
    fn online_cpus(&self) -> usize {
        2
    }
}

#[derive(Default)]
pub struct RecordingNotifier {
    pub events: Mutex<Vec<String>>,
}

impl Notifier for RecordingNotifier {
    fn ready(&self) {
        self.events.lock().unwrap().push("READY".into());
    }
    fn status(&self, status: &str) {
        self.events.lock().unwrap().push(format!("STATUS={status}"));
    }
    fn watchdog(&self) {
        self.events.lock().unwrap().push("WATCHDOG".into());
    }
    fn stopping(&self) {
        self.events.lock().unwrap().push("STOPPING".into());
    }
}

/// Polls `condition` every 100 ms of (virtual) time until it holds; panics after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
