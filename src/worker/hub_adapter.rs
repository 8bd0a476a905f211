//! The supervision core's hub traits (`HostHub`, `TaskHub`) over the XML-RPC hub client.
//!
//! The actors speak neutral structs and JSON values; this module maps them onto the client's
//! typed calls and back, and turns the client's errors into the actors' `HubError` with the
//! same classification as the client's own `KojiFault::classify()`.

use std::sync::Arc;

use dxr::Value;
use koji_adjutant_actors::error::{ErrorClass, Fault, HubError as ActorHubError};
use koji_adjutant_actors::hub::{
    BuildrootInfo as ActorBuildroot, HostData as ActorHostData, HostHub, HostInfo as ActorHostInfo,
    HostTask as ActorHostTask, HubVersion, LoadData, LoadDataHost, OfferedTask,
    SessionInfo as ActorSessionInfo, SubtaskOptions as ActorSubtaskOptions, SubtaskResult, TaskHub,
    TaskInfo as ActorTaskInfo, TaskState as ActorTaskState, WaitStatus,
};
use serde_json::{Map, Value as Json};

use crate::hub::client::HubClient;
use crate::hub::fault::{FaultAction, KojiFault};
use crate::hub::session::HubError as ClientError;
use crate::hub::types::{self, BuildrootState, TaskRequest};
use crate::hub::xmlrpc::{self, Kwargs, RawFault};

/// Classifies a client error for the actors. Faults follow `KojiFault::classify()`; transport
/// trouble (after the client's own retries) is transient; a reply we cannot read fails the
/// task that asked.
pub fn map_error(call: &str, error: ClientError) -> ActorHubError {
    match error {
        ClientError::Fault(fault) => map_fault(call, &fault),
        ClientError::Transport(transport) => {
            ActorHubError::new(call, ErrorClass::Retry, transport.to_string())
        }
        ClientError::Cancelled { during } => ActorHubError::new(
            call,
            ErrorClass::Retry,
            format!("stopped while {during}: the worker is shutting down"),
        ),
        ClientError::NotLoggedIn { .. } => {
            ActorHubError::new(call, ErrorClass::Relogin, error.to_string())
        }
        ClientError::NoLoginMethod => ActorHubError::new(call, ErrorClass::Stop, error.to_string()),
        ClientError::LoginFailed { .. } => {
            // The client keeps only the text of what made the login fail. An authentication
            // refusal cannot get better by trying again; anything else (hub down, timeout)
            // can.
            let text = error.to_string();
            let refused = [
                "AuthError",
                "AuthLockError",
                "GSSAPIAuthError",
                "SequenceError",
            ]
            .iter()
            .any(|class| text.contains(&format!(" {class}:")));
            let class = if refused {
                ErrorClass::Stop
            } else {
                ErrorClass::Retry
            };
            ActorHubError::new(call, class, text)
        }
        ClientError::Decode(_) | ClientError::UnexpectedReply { .. } => {
            ActorHubError::new(call, ErrorClass::FailTask, error.to_string())
        }
    }
}

/// A hub fault as the actors see it; the class follows the client's `classify()`.
pub fn map_fault(call: &str, fault: &KojiFault) -> ActorHubError {
    let class = match fault.classify() {
        FaultAction::Retry => ErrorClass::Retry,
        FaultAction::Relogin => ErrorClass::Relogin,
        FaultAction::FailTask => ErrorClass::FailTask,
        FaultAction::FreeTask => ErrorClass::FreeTask,
        FaultAction::Stop => ErrorClass::Stop,
    };
    ActorHubError {
        call: call.to_owned(),
        class,
        fault: Some(Fault::new(
            fault.code,
            fault.class_name(),
            fault.message.clone(),
        )),
        message: fault.message.clone(),
    }
}

fn conversion(call: &str, detail: impl std::fmt::Display) -> ActorHubError {
    ActorHubError::new(
        call,
        ErrorClass::FailTask,
        format!("cannot convert the value for the hub: {detail}"),
    )
}

fn to_xmlrpc(call: &str, json: &Json) -> Result<Value, ActorHubError> {
    xmlrpc::json_to_value(json).map_err(|error| conversion(call, error))
}

fn int(value: i64) -> Value {
    i32::try_from(value).map_or(Value::Long(value), Value::Integer)
}

fn int_list(values: &[i64]) -> Value {
    Value::Array(values.iter().copied().map(int).collect())
}

/// The `methodResponse` document `host.closeTask` takes, in Python's layout.
pub fn result_document(result: &Json) -> Result<String, ActorHubError> {
    Ok(xmlrpc::encode_response(&to_xmlrpc(
        "host.closeTask",
        result,
    )?))
}

/// The fault document `host.failTask` takes, in Python's layout.
pub fn fault_document(fault: &Fault) -> String {
    xmlrpc::encode_fault(&RawFault {
        code: fault.fault_code,
        message: fault.message.clone(),
    })
}

fn task_state(call: &str, state: types::TaskState) -> ActorTaskState {
    // Both enums are TASK_STATES; the code is the shared key.
    ActorTaskState::from_code(i64::from(state)).unwrap_or_else(|| {
        tracing::warn!(call, ?state, "unknown task state");
        ActorTaskState::Free
    })
}

/// The task's params: `getTaskInfo(request=True)` sends them decoded, `host.openTask` sends
/// the stored methodCall document. The kwargs struct stays last, marked `__starstar`, as the
/// actors' `TaskRequest::decode` expects.
fn request_params(call: &str, request: TaskRequest) -> Result<Vec<Json>, ActorHubError> {
    match request {
        TaskRequest::Params(params) => Ok(params),
        TaskRequest::Xml(xml) => {
            let decoded = xmlrpc::decode_call(&xml).map_err(|error| {
                ActorHubError::new(
                    call,
                    ErrorClass::FailTask,
                    format!("the task's stored request is not a methodCall: {error}"),
                )
            })?;
            let mut params: Vec<Json> = decoded.args.iter().map(xmlrpc::value_to_json).collect();
            if !decoded.kwargs.is_empty() {
                let mut kwargs: Map<String, Json> = decoded
                    .kwargs
                    .iter()
                    .map(|(key, value)| (key.clone(), xmlrpc::value_to_json(value)))
                    .collect();
                kwargs.insert("__starstar".to_owned(), Json::Bool(true));
                params.push(Json::Object(kwargs));
            }
            Ok(params)
        }
    }
}

fn task_info(call: &str, info: types::TaskInfo) -> Result<ActorTaskInfo, ActorHubError> {
    let request = info
        .request
        .map(|request| request_params(call, request))
        .transpose()?;
    Ok(ActorTaskInfo {
        id: info.id,
        state: task_state(call, info.state),
        host_id: info.host_id,
        method: info.method,
        arch: info.arch,
        channel_id: info.channel_id.unwrap_or_default(),
        parent: info.parent,
        owner: info.owner,
        priority: info.priority.unwrap_or_default(),
        completion_ts: info.completion_ts,
        request,
    })
}

fn missing_task(call: &str, task_id: i64) -> ActorHubError {
    ActorHubError::from_fault(call, Fault::generic(format!("No such task id: {task_id}")))
}

async fn get_task_info(
    client: &HubClient,
    task_id: i64,
    request: bool,
) -> Result<ActorTaskInfo, ActorHubError> {
    const CALL: &str = "getTaskInfo";
    match client
        .get_task_info(task_id, request)
        .await
        .map_err(|error| map_error(CALL, error))?
    {
        Some(info) => task_info(CALL, info),
        None => Err(missing_task(CALL, task_id)),
    }
}

async fn raw_json(
    client: &HubClient,
    method: &str,
    args: Vec<Value>,
    kwargs: Kwargs,
) -> Result<Json, ActorHubError> {
    client
        .call(method, args, kwargs)
        .await
        .map(|value| xmlrpc::value_to_json(&value))
        .map_err(|error| map_error(method, error))
}

async fn get_build_config(
    client: &HubClient,
    tag: &str,
    event: Option<i64>,
) -> Result<Json, ActorHubError> {
    let kwargs = event
        .map(|event| vec![("event".to_owned(), int(event))])
        .unwrap_or_default();
    raw_json(client, "getBuildConfig", vec![tag_ref(tag)], kwargs).await
}

/// A tag reference as kojid sends it. Task arguments carry the build tag as the id the hub
/// put there (`rebuildSRPM`, `buildArch`), and kojid hands it on as an int: kojihub's
/// `get_tag` looks a string up by *name*, so `"1"` would be "No such tagInfo".
fn tag_ref(tag: &str) -> Value {
    match tag.parse::<i32>() {
        Ok(id) => Value::Integer(id),
        Err(_) => Value::String(tag.to_owned()),
    }
}

/// Logs (at DEBUG) when a call on the main session starts and when it ends or is dropped:
/// the main session is shared by three actors, and a call that never ends holds the others up.
struct CallTrace {
    call: &'static str,
    started: std::time::Instant,
}

impl CallTrace {
    fn start(call: &'static str) -> Self {
        tracing::debug!(call, "main session call started");
        Self {
            call,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for CallTrace {
    fn drop(&mut self) {
        tracing::debug!(
            call = self.call,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "main session call ended"
        );
    }
}

/// The builder's main, exclusive session.
#[derive(Clone)]
pub struct HostHubAdapter {
    client: HubClient,
}

impl HostHubAdapter {
    /// `client` must be logged in already (see [`HostHubAdapter::connect`]).
    pub fn new(client: HubClient) -> Self {
        Self { client }
    }

    /// Logs in as kojid does at start-up: `sslLogin`/`login`, `exclusiveSession(force)`, then
    /// `echo("OK")`, which proves the exclusive session answers.
    pub async fn connect(
        options: crate::hub::options::HubOptions,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Self, ActorHubError> {
        let client = HubClient::connect(options, cancel)
            .await
            .map_err(|error| map_error("login", error))?;
        client
            .echo("OK")
            .await
            .map_err(|error| map_error("echo", error))?;
        Ok(Self::new(client))
    }

    pub fn client(&self) -> &HubClient {
        &self.client
    }

    /// Runs one main-session call as its own tokio task. The session's lock is fair, so a
    /// caller that queued for it and is then never polled again would hold up every later
    /// call; actix does that to a future spawned on an actor's context while the actor
    /// `wait`s on another. The Supervisor keeps its own clean-ups off its context, and this
    /// makes sure that no other caller can freeze the session either: each call finishes and
    /// releases the lock whatever happens to its caller.
    async fn detached<T, F>(
        &self,
        call: &'static str,
        body: impl FnOnce(HubClient) -> F,
    ) -> Result<T, ActorHubError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, ActorHubError>> + Send + 'static,
    {
        let _trace = CallTrace::start(call);
        tokio::spawn(body(self.client.clone()))
            .await
            .unwrap_or_else(|error| {
                Err(ActorHubError::new(
                    call,
                    ErrorClass::Retry,
                    format!("the call did not complete: {error}"),
                ))
            })
    }
}

#[async_trait::async_trait]
impl HostHub for HostHubAdapter {
    async fn login(&self) -> Result<(), ActorHubError> {
        self.detached("login", |client| async move {
            client
                .session()
                .login()
                .await
                .map_err(|error| map_error("login", error))?;
            client
                .echo("OK")
                .await
                .map(|_| ())
                .map_err(|error| map_error("echo", error))
        })
        .await
    }

    async fn hub_version(&self) -> Result<HubVersion, ActorHubError> {
        self.detached("getKojiVersion", |client| async move {
            client
                .capabilities()
                .await
                .map(|caps| caps.version)
                .map_err(|error| map_error("getKojiVersion", error))
        })
        .await
    }

    async fn get_id(&self) -> Result<i64, ActorHubError> {
        self.detached("host.getID", |client| async move {
            client
                .host_get_id()
                .await
                .map_err(|error| map_error("host.getID", error))
        })
        .await
    }

    async fn get_session_info(&self) -> Result<ActorSessionInfo, ActorHubError> {
        const CALL: &str = "getSessionInfo";
        self.detached(CALL, |client| async move {
            let details = client
                .get_session_info()
                .await
                .map_err(|error| map_error(CALL, error))?;
            let session_id = client
                .session()
                .info()
                .await
                .map(|info| info.session_id)
                .ok_or_else(|| {
                    ActorHubError::new(CALL, ErrorClass::Relogin, "the session is not logged in")
                })?;
            Ok(ActorSessionInfo {
                session_id,
                start_ts: details.start_ts.unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_host(&self) -> Result<ActorHostInfo, ActorHubError> {
        self.detached("host.getHost", |client| async move {
            let host = client
                .host_get_host()
                .await
                .map_err(|error| map_error("host.getHost", error))?;
            Ok(ActorHostInfo {
                arches: host.arch_list().into_iter().map(str::to_owned).collect(),
                id: host.id,
                name: host.name,
                enabled: host.enabled,
                capacity: host.capacity,
                task_load: host.task_load,
                ready: host.ready,
            })
        })
        .await
    }

    async fn get_host_tasks(&self) -> Result<Vec<ActorHostTask>, ActorHubError> {
        self.detached("host.getHostTasks", |client| async move {
            let tasks = client
                .host_get_host_tasks()
                .await
                .map_err(|error| map_error("host.getHostTasks", error))?;
            Ok(tasks
                .into_iter()
                .map(|task| ActorHostTask {
                    id: task.id,
                    waiting: task.waiting.unwrap_or(false),
                    weight: task.weight.unwrap_or(0.0),
                    alert: task.alert.unwrap_or(false),
                })
                .collect())
        })
        .await
    }

    async fn update_host(
        &self,
        task_load: f64,
        ready: bool,
        data: Option<&ActorHostData>,
    ) -> Result<(), ActorHubError> {
        let data = data.map(host_data);
        self.detached("host.updateHost", |client| async move {
            client
                .host_update_host(task_load, ready, data.as_ref())
                .await
                .map_err(|error| map_error("host.updateHost", error))
        })
        .await
    }

    async fn set_host_data(&self, data: &ActorHostData) -> Result<(), ActorHubError> {
        let data = host_data(data);
        self.detached("host.setHostData", |client| async move {
            client
                .host_set_host_data(&data)
                .await
                .map_err(|error| map_error("host.setHostData", error))
        })
        .await
    }

    async fn get_tasks(&self) -> Result<Vec<OfferedTask>, ActorHubError> {
        const CALL: &str = "host.getTasks";
        self.detached(CALL, |client| async move {
            // Read raw: the poller checks each offer's state and host_id, which the client's
            // `AssignedTask` does not keep.
            let reply = raw_json(&client, CALL, vec![], vec![]).await?;
            let tasks: Vec<OfferedWire> = serde_json::from_value(reply).map_err(|error| {
                ActorHubError::new(
                    CALL,
                    ErrorClass::Retry,
                    format!("unreadable reply: {error}"),
                )
            })?;
            Ok(tasks
                .into_iter()
                .map(|task| OfferedTask {
                    id: task.id,
                    state: task
                        .state
                        .and_then(ActorTaskState::from_code)
                        .unwrap_or(ActorTaskState::Assigned),
                    host_id: task.host_id,
                    channel_id: task.channel_id.unwrap_or_default(),
                    arch: task.arch.unwrap_or_default(),
                    method: task.method.unwrap_or_default(),
                    priority: task.priority.unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    async fn get_load_data(&self) -> Result<LoadData, ActorHubError> {
        const CALL: &str = "host.getLoadData";
        self.detached(CALL, |client| async move {
            let (hosts, tasks) = client
                .host_get_load_data()
                .await
                .map_err(|error| map_error(CALL, error))?;
            Ok(LoadData {
                hosts: hosts
                    .into_iter()
                    .map(|host| LoadDataHost {
                        id: host.id,
                        arches: host.arches.split_whitespace().map(str::to_owned).collect(),
                        channels: host.channels,
                        capacity: host.capacity,
                        task_load: host.task_load,
                    })
                    .collect(),
                tasks: tasks
                    .into_iter()
                    .map(|task| OfferedTask {
                        id: task.id,
                        state: task_state(CALL, task.state),
                        host_id: task.host_id,
                        channel_id: task.channel_id.unwrap_or_default(),
                        arch: task.arch,
                        method: task.method,
                        priority: task.priority.unwrap_or_default(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn get_task_info(
        &self,
        task_id: i64,
        request: bool,
    ) -> Result<ActorTaskInfo, ActorHubError> {
        self.detached("getTaskInfo", |client| async move {
            get_task_info(&client, task_id, request).await
        })
        .await
    }

    async fn open_task(&self, task_id: i64) -> Result<Option<ActorTaskInfo>, ActorHubError> {
        const CALL: &str = "host.openTask";
        self.detached(CALL, |client| async move {
            client
                .host_open_task(task_id)
                .await
                .map_err(|error| map_error(CALL, error))?
                .map(|info| task_info(CALL, info))
                .transpose()
        })
        .await
    }

    async fn set_task_weight(&self, task_id: i64, weight: f64) -> Result<(), ActorHubError> {
        self.detached("host.setTaskWeight", |client| async move {
            client
                .host_set_task_weight(task_id, weight)
                .await
                .map_err(|error| map_error("host.setTaskWeight", error))
        })
        .await
    }

    async fn refuse_task(
        &self,
        task_id: i64,
        soft: bool,
        message: &str,
    ) -> Result<(), ActorHubError> {
        let message = message.to_owned();
        self.detached("host.refuseTask", |client| async move {
            client
                .host_refuse_task(task_id, soft, &message)
                .await
                .map_err(|error| map_error("host.refuseTask", error))
        })
        .await
    }

    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), ActorHubError> {
        let task_ids = task_ids.to_vec();
        self.detached("host.freeTasks", |client| async move {
            client
                .host_free_tasks(&task_ids)
                .await
                .map_err(|error| map_error("host.freeTasks", error))
        })
        .await
    }

    async fn list_active_buildroots(
        &self,
        host_id: i64,
    ) -> Result<Vec<ActorBuildroot>, ActorHubError> {
        self.detached("listBuildroots", |client| async move {
            let buildroots = client
                .list_buildroots(
                    host_id,
                    &[
                        BuildrootState::INIT,
                        BuildrootState::WAITING,
                        BuildrootState::BUILDING,
                    ],
                )
                .await
                .map_err(|error| map_error("listBuildroots", error))?;
            Ok(buildroots
                .into_iter()
                .map(|buildroot| ActorBuildroot {
                    id: buildroot.id,
                    task_id: buildroot.task_id,
                    state: buildroot.state.map_or(0, i64::from),
                })
                .collect())
        })
        .await
    }

    async fn set_buildroot_state(
        &self,
        buildroot_id: i64,
        state: i64,
    ) -> Result<(), ActorHubError> {
        self.detached("host.setBuildRootState", |client| async move {
            // kojid's updateBuildroots sends the state as its number (BR_STATES['EXPIRED']).
            raw_json(
                &client,
                "host.setBuildRootState",
                vec![int(buildroot_id), int(state)],
                vec![],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Json, ActorHubError> {
        let tag = tag.to_owned();
        self.detached("getBuildConfig", |client| async move {
            get_build_config(&client, &tag, event).await
        })
        .await
    }

    async fn subsession(&self) -> Result<Arc<dyn TaskHub>, ActorHubError> {
        self.detached("subsession", |client| async move {
            let client = client
                .subsession()
                .await
                .map_err(|error| map_error("subsession", error))?;
            let session_id = client
                .session()
                .info()
                .await
                .map(|info| info.session_id)
                .ok_or_else(|| {
                    ActorHubError::new(
                        "subsession",
                        ErrorClass::Retry,
                        "the hub returned a subsession without an id",
                    )
                })?;
            Ok(Arc::new(TaskHubAdapter { client, session_id }) as Arc<dyn TaskHub>)
        })
        .await
    }

    async fn logout_child(&self, session_id: i64) -> Result<(), ActorHubError> {
        self.detached("logoutChild", |client| async move {
            client
                .logout_child(session_id)
                .await
                .map_err(|error| map_error("logoutChild", error))
        })
        .await
    }

    async fn logout(&self) -> Result<(), ActorHubError> {
        self.detached("logout", |client| async move {
            client
                .logout()
                .await
                .map_err(|error| map_error("logout", error))
        })
        .await
    }
}

/// One task of `host.getTasks`, as kojihub sends it (`id, state, host_id, channel_id, arch,
/// method, priority, …`).
#[derive(serde::Deserialize)]
struct OfferedWire {
    id: i64,
    #[serde(default)]
    state: Option<i64>,
    #[serde(default)]
    host_id: Option<i64>,
    #[serde(default)]
    channel_id: Option<i64>,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
}

fn host_data(data: &ActorHostData) -> types::HostData {
    let mut other = types::Extra::new();
    other.insert("maxjobs".to_owned(), Json::from(data.maxjobs));
    types::HostData {
        methods: data.methods.clone(),
        other,
    }
}

/// One task's subsession.
pub struct TaskHubAdapter {
    client: HubClient,
    session_id: i64,
}

impl TaskHubAdapter {
    pub fn client(&self) -> &HubClient {
        &self.client
    }
}

/// The subsession client behind a task's `TaskHub`, for the uploads the trait has no call
/// for (kojid sends a task's uploads on the task's session). `None` for any other `TaskHub`.
pub fn subsession_client(hub: &dyn TaskHub) -> Option<HubClient> {
    hub.as_any()?
        .downcast_ref::<TaskHubAdapter>()
        .map(|adapter| adapter.client.clone())
}

#[async_trait::async_trait]
impl TaskHub for TaskHubAdapter {
    fn session_id(&self) -> i64 {
        self.session_id
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn close_task(&self, task_id: i64, result: &Json) -> Result<(), ActorHubError> {
        const CALL: &str = "host.closeTask";
        let value = to_xmlrpc(CALL, result)?;
        self.client
            .host_close_task(task_id, &value)
            .await
            .map_err(|error| map_error(CALL, error))
    }

    async fn fail_task(&self, task_id: i64, fault: &Fault) -> Result<(), ActorHubError> {
        let raw = RawFault {
            code: fault.fault_code,
            message: fault.message.clone(),
        };
        self.client
            .host_fail_task(task_id, &raw)
            .await
            .map_err(|error| map_error("host.failTask", error))
    }

    async fn refuse_task(
        &self,
        task_id: i64,
        soft: bool,
        message: &str,
    ) -> Result<(), ActorHubError> {
        self.client
            .host_refuse_task(task_id, soft, message)
            .await
            .map_err(|error| map_error("host.refuseTask", error))
    }

    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), ActorHubError> {
        self.client
            .host_free_tasks(task_ids)
            .await
            .map_err(|error| map_error("host.freeTasks", error))
    }

    async fn get_id(&self) -> Result<i64, ActorHubError> {
        self.client
            .host_get_id()
            .await
            .map_err(|error| map_error("host.getID", error))
    }

    async fn get_task_info(
        &self,
        task_id: i64,
        request: bool,
    ) -> Result<ActorTaskInfo, ActorHubError> {
        get_task_info(&self.client, task_id, request).await
    }

    async fn subtask(
        &self,
        parent: i64,
        method: &str,
        args: Vec<Json>,
        options: &ActorSubtaskOptions,
    ) -> Result<i64, ActorHubError> {
        const CALL: &str = "host.subtask";
        // kojid: `host.subtask(method=…, arglist=…, label=…, …, parent=…)`, all keywords.
        let arglist = args
            .iter()
            .map(|arg| to_xmlrpc(CALL, arg))
            .collect::<Result<Vec<_>, _>>()?;
        let mut kwargs: Kwargs = vec![
            ("method".to_owned(), Value::String(method.to_owned())),
            ("arglist".to_owned(), Value::Array(arglist)),
        ];
        if let Some(label) = &options.label {
            kwargs.push(("label".to_owned(), Value::String(label.clone())));
        }
        if let Some(arch) = &options.arch {
            kwargs.push(("arch".to_owned(), Value::String(arch.clone())));
        }
        if let Some(priority) = options.priority {
            kwargs.push(("priority".to_owned(), int(priority)));
        }
        if let Some(channel) = &options.channel {
            kwargs.push(("channel".to_owned(), Value::String(channel.clone())));
        }
        if let Some(assign) = options.assign {
            kwargs.push(("assign".to_owned(), int(assign)));
        }
        if let Some(task_kwargs) = &options.kwargs {
            kwargs.push((
                "kwargs".to_owned(),
                to_xmlrpc(CALL, &Json::Object(task_kwargs.clone()))?,
            ));
        }
        kwargs.push(("parent".to_owned(), int(parent)));
        let reply = raw_json(&self.client, CALL, vec![], kwargs).await?;
        reply.as_i64().ok_or_else(|| {
            ActorHubError::new(
                CALL,
                ErrorClass::FailTask,
                format!("the hub answered with {reply} instead of a task id"),
            )
        })
    }

    async fn task_set_wait(
        &self,
        parent: i64,
        subtasks: Option<&[i64]>,
    ) -> Result<(), ActorHubError> {
        self.client
            .host_task_set_wait(parent, subtasks)
            .await
            .map_err(|error| map_error("host.taskSetWait", error))
    }

    async fn task_wait(&self, parent: i64) -> Result<WaitStatus, ActorHubError> {
        let (finished, unfinished) = self
            .client
            .host_task_wait(parent)
            .await
            .map_err(|error| map_error("host.taskWait", error))?;
        Ok(WaitStatus {
            finished,
            unfinished,
        })
    }

    async fn task_wait_results(
        &self,
        parent: i64,
        subtasks: Option<&[i64]>,
        canfail: &[i64],
    ) -> Result<Vec<(i64, SubtaskResult)>, ActorHubError> {
        const CALL: &str = "host.taskWaitResults";
        let tasks = subtasks.map_or(Value::Nil, int_list);
        let reply = self
            .client
            .call(
                CALL,
                vec![int(parent), tasks],
                vec![("canfail".to_owned(), int_list(canfail))],
            )
            .await
            .map_err(|error| map_error(CALL, error))?;
        let Value::Array(pairs) = reply else {
            return Err(ActorHubError::new(
                CALL,
                ErrorClass::FailTask,
                "the hub answered with something other than a list of (task, result) pairs",
            ));
        };
        pairs
            .iter()
            .map(|pair| {
                let (id, result) = match pair {
                    Value::Array(items) if items.len() == 2 => (&items[0], &items[1]),
                    _ => {
                        return Err(ActorHubError::new(
                            CALL,
                            ErrorClass::FailTask,
                            "a (task, result) pair of the reply is malformed",
                        ));
                    }
                };
                let id = xmlrpc::value_to_json(id).as_i64().ok_or_else(|| {
                    ActorHubError::new(CALL, ErrorClass::FailTask, "a task id is not an integer")
                })?;
                // A child in `canfail` that failed comes back as its fault struct.
                let result = match xmlrpc::fault_from_struct(result) {
                    Some(raw) => {
                        let fault = KojiFault::from(raw);
                        SubtaskResult::Failed(Fault::new(
                            fault.code,
                            fault.class_name(),
                            fault.message,
                        ))
                    }
                    None => SubtaskResult::Closed(xmlrpc::value_to_json(result)),
                };
                Ok((id, result))
            })
            .collect()
    }

    async fn get_task_result(&self, task_id: i64) -> Result<Json, ActorHubError> {
        self.client
            .get_task_result(task_id)
            .await
            .map_err(|error| map_error("getTaskResult", error))
    }

    async fn cancel_task_children(&self, task_id: i64) -> Result<(), ActorHubError> {
        self.client
            .cancel_task_children(task_id)
            .await
            .map_err(|error| map_error("cancelTaskChildren", error))
    }

    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Json, ActorHubError> {
        get_build_config(&self.client, tag, event).await
    }

    async fn call(
        &self,
        method: &str,
        params: Vec<Json>,
        kwargs: Map<String, Json>,
    ) -> Result<Json, ActorHubError> {
        let args = params
            .iter()
            .map(|param| to_xmlrpc(method, param))
            .collect::<Result<Vec<_>, _>>()?;
        let kwargs = kwargs
            .iter()
            .map(|(key, value)| Ok((key.clone(), to_xmlrpc(method, value)?)))
            .collect::<Result<Kwargs, ActorHubError>>()?;
        raw_json(&self.client, method, args, kwargs).await
    }

    async fn logout(&self) -> Result<(), ActorHubError> {
        self.client
            .logout()
            .await
            .map_err(|error| map_error("logout", error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tag_id_goes_to_the_hub_as_an_int_and_a_name_as_a_string() {
        assert_eq!(tag_ref("7"), Value::Integer(7));
        assert_eq!(tag_ref("f40-build"), Value::String("f40-build".to_owned()));
    }

    #[test]
    fn faults_keep_the_clients_classification() {
        let cases = [
            (1014, "outage", ErrorClass::Retry),
            (1007, "expired", ErrorClass::Relogin),
            (1004, "host 1 does not own task 7", ErrorClass::FreeTask),
            (1004, "policy violation", ErrorClass::FailTask),
            (1002, "bad cert", ErrorClass::Stop),
            (1006, "locked", ErrorClass::Stop),
            (1009, "retry", ErrorClass::FailTask),
            (1000, "Invalid method", ErrorClass::FailTask),
        ];
        for (code, message, class) in cases {
            let mapped = map_error("x", ClientError::Fault(KojiFault::new(code, message)));
            assert_eq!(mapped.class, class, "{code}");
            let fault = mapped.fault.expect("a fault");
            assert_eq!((fault.fault_code, fault.message.as_str()), (code, message));
            assert_eq!(fault.fault_class, KojiFault::new(code, "").class_name());
        }
    }

    #[test]
    fn login_failures_stop_only_when_refused() {
        let refused = ClientError::LoginFailed {
            method: "sslLogin",
            detail: KojiFault::new(1002, "no such host").to_string(),
        };
        assert_eq!(map_error("login", refused).class, ErrorClass::Stop);
        let down = ClientError::LoginFailed {
            method: "sslLogin",
            detail: "connection refused".to_owned(),
        };
        assert_eq!(map_error("login", down).class, ErrorClass::Retry);
        assert_eq!(
            map_error("login", ClientError::NoLoginMethod).class,
            ErrorClass::Stop
        );
        let not_in = ClientError::NotLoggedIn {
            method: "host.getID".to_owned(),
        };
        assert_eq!(map_error("host.getID", not_in).class, ErrorClass::Relogin);
    }

    #[test]
    fn open_task_requests_are_decoded_with_their_kwargs_last() {
        let xml = xmlrpc::encode_call(
            "fork",
            &[Value::Integer(2)],
            &[("m".to_owned(), Value::Integer(30))],
        );
        let params = request_params("host.openTask", TaskRequest::Xml(xml)).unwrap();
        assert_eq!(params, vec![json!(2), json!({"m": 30, "__starstar": true})]);
        let request = koji_adjutant_actors::TaskRequest::decode(params);
        assert_eq!(request.params, vec![json!(2)]);
        assert_eq!(request.kwargs["m"], json!(30));
        let bad = request_params("host.openTask", TaskRequest::Xml("<nope".to_owned()));
        assert_eq!(bad.unwrap_err().class, ErrorClass::FailTask);
    }

    #[test]
    fn a_tasks_uploads_find_its_own_subsession_client() {
        let main = unreachable_task(1).client;
        let adapter = unreachable_task(7);
        let sub = adapter.client.clone();
        let task: Arc<dyn TaskHub> = Arc::new(adapter);
        let found = subsession_client(task.as_ref()).expect("the adapter offers its client");
        assert!(std::ptr::eq(found.session(), sub.session()));
        assert!(!std::ptr::eq(found.session(), main.session()));
    }

    /// A subsession adapter on a hub nobody answers: these tests make no call.
    fn unreachable_task(task_id: i64) -> TaskHubAdapter {
        let options = crate::hub::options::HubOptions {
            server: "http://127.0.0.1:9/kojihub".to_owned(),
            ..Default::default()
        };
        let hub = crate::hub::session::HubConnection::new(
            options,
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        TaskHubAdapter {
            client: HubClient::from_session(crate::hub::session::Session::new(hub)),
            session_id: task_id + 1000,
        }
    }

    fn context_on(
        hub: Arc<dyn TaskHub>,
        task_id: i64,
    ) -> (
        koji_adjutant_actors::handler::TaskContext,
        koji_adjutant_actors::testing::Standalone,
    ) {
        let info = koji_adjutant_actors::hub::TaskInfo {
            id: task_id,
            state: koji_adjutant_actors::hub::TaskState::Open,
            host_id: Some(1),
            method: "buildArch".into(),
            arch: "noarch".into(),
            channel_id: 1,
            parent: None,
            owner: Some(1),
            priority: 20,
            completion_ts: None,
            request: Some(Vec::new()),
        };
        koji_adjutant_actors::testing::standalone_context(
            info,
            koji_adjutant_actors::handler::TaskRequest::decode(Vec::new()),
            1,
            hub,
            Arc::new(crate::podman::PodmanRuntime::new(
                crate::podman::PodmanOptions::default(),
            )),
            "localhost/koji-adjutant-builder:latest",
        )
    }

    #[actix_rt::test]
    async fn a_build_task_transfers_over_its_subsession_or_not_at_all() {
        use crate::handlers::hubfiles::SubsessionFiles;
        use crate::handlers::services::{FileError, TaskFilesProvider};
        let (ctx, _standalone) = context_on(Arc::new(unreachable_task(42)), 42);
        let missing = std::path::Path::new("/nonexistent/hello.rpm");

        // Through the task's own client: the upload gets as far as reading the file.
        let files = SubsessionFiles::new(subsession_client).for_task(&ctx);
        let error = files.upload(42, missing, "hello.rpm").await.unwrap_err();
        assert!(matches!(error, FileError::Upload { .. }), "{error}");

        // A task whose hub offers no client gets no other session instead.
        let files = SubsessionFiles::new(|_| None).for_task(&ctx);
        let error = files.upload(42, missing, "hello.rpm").await.unwrap_err();
        assert!(
            matches!(error, FileError::NoTaskSession { task_id: 42 }),
            "{error}"
        );
        let error = files.sync_log(42, missing, "build.log").await.unwrap_err();
        assert!(matches!(error, FileError::NoTaskSession { .. }), "{error}");
    }

    #[test]
    fn host_data_carries_methods_and_maxjobs() {
        let data = host_data(&ActorHostData {
            methods: vec!["sleep".to_owned()],
            maxjobs: 4,
        });
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            json!({"methods": ["sleep"], "maxjobs": 4})
        );
    }

    /// The `host.closeTask` request kojid sent for `task`, from a golden transcript.
    fn recorded_close_task(transcript: &str, task: i64) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hub-transcripts")
            .join(transcript);
        let text = std::fs::read_to_string(&path).unwrap();
        let needle = format!("<value><int>{task}</int></value>");
        text.lines()
            .map(|line| serde_json::from_str::<Json>(line).unwrap())
            .filter(|record| record["method"] == "host.closeTask")
            .filter(|record| record["direction"] == "request")
            .map(|record| record["body_xml"].as_str().unwrap().to_owned())
            .find(|body| body.contains(&needle))
            .unwrap()
    }

    #[test]
    fn close_task_bodies_match_kojids_bytes() {
        // A nil result (buildArch's parent `build`) and a list (`newRepo`'s createrepo
        // subtask result): kojid's documents byte for byte.
        for (transcript, task, result) in [
            ("regular-build.jsonl", 9, Json::Null),
            ("newrepo.jsonl", 1, json!([1, 38])),
        ] {
            let document = result_document(&result).unwrap();
            let body =
                xmlrpc::encode_call("host.closeTask", &[int(task), Value::String(document)], &[]);
            assert_eq!(body, recorded_close_task(transcript, task), "{transcript}");
        }
    }

    #[test]
    fn fail_task_documents_match_python() {
        // xmlrpc.client.dumps(Fault(1, ...), methodresponse=1, allow_none=1)
        let python = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>koji-adjutant: &lt;boom&gt; &amp; \"x\"</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n";
        let fault = Fault::plain("koji-adjutant: <boom> & \"x\"");
        assert_eq!(fault_document(&fault), python);
    }
}
