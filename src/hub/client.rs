//! The typed hub API the rest of the worker uses. Each method is one hub call with kojid's
//! argument conventions; replies are checked into the structs of [`super::types`].

use std::collections::BTreeMap;
use std::sync::Arc;

use dxr::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::capabilities::HubCapabilities;
use super::fault::KojiFault;
use super::options::HubOptions;
use super::session::{HubConnection, HubError, Session};
use super::types::*;
use super::xmlrpc::{self, Kwargs, RawFault};

/// A logged-in session with typed calls. Cheap to clone (the session is shared).
#[derive(Clone)]
pub struct HubClient {
    session: Arc<Session>,
}

fn int(value: i64) -> Value {
    i32::try_from(value).map_or(Value::Long(value), Value::Integer)
}

fn string(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn optional_int(value: Option<i64>) -> Value {
    value.map_or(Value::Nil, int)
}

fn int_list(values: &[i64]) -> Value {
    Value::Array(values.iter().copied().map(int).collect())
}

fn kwarg(name: &str, value: Value) -> (String, Value) {
    (name.to_owned(), value)
}

impl HubClient {
    /// Connect and log in as the worker does (login, then `exclusiveSession`).
    pub async fn connect(options: HubOptions, cancel: CancellationToken) -> Result<Self, HubError> {
        let hub = HubConnection::new(options, cancel)?;
        let session = Session::new(hub);
        session.login().await?;
        Ok(Self::from_session(session))
    }

    pub fn from_session(session: Session) -> Self {
        Self {
            session: Arc::new(session),
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn connection(&self) -> &Arc<HubConnection> {
        self.session.hub()
    }

    pub async fn capabilities(&self) -> Result<HubCapabilities, HubError> {
        self.session.capabilities().await
    }

    /// A client on a fresh subsession, for one task.
    pub async fn subsession(&self) -> Result<HubClient, HubError> {
        Ok(Self::from_session(self.session.subsession().await?))
    }

    /// The raw call, for anything not wrapped below.
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, HubError> {
        self.session.call(method, args, kwargs).await
    }

    /// JSON in, JSON out: for `koji-adjutant hub-call` and debugging.
    pub async fn call_json(
        &self,
        method: &str,
        args: &[serde_json::Value],
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, HubError> {
        let args = args
            .iter()
            .map(xmlrpc::json_to_value)
            .collect::<Result<Vec<_>, _>>()?;
        let kwargs = kwargs
            .iter()
            .map(|(key, value)| Ok((key.clone(), xmlrpc::json_to_value(value)?)))
            .collect::<Result<Kwargs, xmlrpc::XmlRpcError>>()?;
        let value = self.call(method, args, kwargs).await?;
        Ok(xmlrpc::value_to_json(&value))
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<T, HubError> {
        let value = self.call(method, args, kwargs).await?;
        xmlrpc::from_value(&value).map_err(|error| HubError::UnexpectedReply {
            method: method.to_owned(),
            detail: error.to_string(),
        })
    }

    async fn unit(&self, method: &str, args: Vec<Value>, kwargs: Kwargs) -> Result<(), HubError> {
        self.call(method, args, kwargs).await.map(|_| ())
    }

    fn encode<T: Serialize + ?Sized>(item: &T) -> Result<Value, HubError> {
        Ok(xmlrpc::to_value(item)?)
    }

    // --- session ---------------------------------------------------------------------

    pub async fn echo(&self, text: &str) -> Result<Vec<String>, HubError> {
        self.typed("echo", vec![string(text)], vec![]).await
    }

    pub async fn get_session_info(&self) -> Result<SessionDetails, HubError> {
        self.typed("getSessionInfo", vec![], vec![]).await
    }

    pub async fn get_koji_version(&self) -> Result<String, HubError> {
        self.typed("getKojiVersion", vec![], vec![]).await
    }

    pub async fn logout_child(&self, session_id: i64) -> Result<(), HubError> {
        self.session.logout_child(session_id).await
    }

    pub async fn logout(&self) -> Result<(), HubError> {
        self.session.logout().await
    }

    // --- host.* (§2.13) --------------------------------------------------------------

    pub async fn host_get_id(&self) -> Result<i64, HubError> {
        self.typed("host.getID", vec![], vec![]).await
    }

    pub async fn host_get_host(&self) -> Result<HostInfo, HubError> {
        self.typed("host.getHost", vec![], vec![]).await
    }

    /// The heartbeat. `data` is sent only to hubs that take it (≥1.35).
    pub async fn host_update_host(
        &self,
        task_load: f64,
        ready: bool,
        data: Option<&HostData>,
    ) -> Result<(), HubError> {
        let args = vec![Value::Double(task_load), Value::Boolean(ready)];
        let mut kwargs = vec![];
        if let Some(data) = data
            && self.capabilities().await?.update_host_data
        {
            kwargs.push(kwarg("data", Self::encode(data)?));
        }
        self.unit("host.updateHost", args, kwargs).await
    }

    /// `host.setHostData` (≥1.34): a struct for ≥1.35, a JSON string for 1.34.
    pub async fn host_set_host_data(&self, data: &HostData) -> Result<(), HubError> {
        let caps = self.capabilities().await?;
        let value = if caps.host_data_struct {
            Self::encode(data)?
        } else {
            let json = serde_json::to_string(data).map_err(|error| HubError::UnexpectedReply {
                method: "host.setHostData".to_owned(),
                detail: error.to_string(),
            })?;
            Value::String(json)
        };
        self.unit("host.setHostData", vec![value], vec![]).await
    }

    pub async fn host_get_tasks(&self) -> Result<Vec<AssignedTask>, HubError> {
        self.typed("host.getTasks", vec![], vec![]).await
    }

    pub async fn host_get_host_tasks(&self) -> Result<Vec<HostTask>, HubError> {
        self.typed("host.getHostTasks", vec![], vec![]).await
    }

    /// `host.getLoadData` (legacy scheduling, ≤1.33): `[hosts, tasks]`.
    pub async fn host_get_load_data(&self) -> Result<(Vec<LoadDataHost>, Vec<TaskInfo>), HubError> {
        self.typed("host.getLoadData", vec![], vec![]).await
    }

    /// `None` when the hub would not open it (someone else got it, or it was canceled).
    pub async fn host_open_task(&self, task_id: i64) -> Result<Option<TaskInfo>, HubError> {
        self.typed("host.openTask", vec![int(task_id)], vec![])
            .await
    }

    /// Close a task with its result, sent as a methodResponse document (§4.0).
    pub async fn host_close_task(&self, task_id: i64, result: &Value) -> Result<(), HubError> {
        let document = xmlrpc::encode_response(result);
        self.unit(
            "host.closeTask",
            vec![int(task_id), Value::String(document)],
            vec![],
        )
        .await
    }

    /// Fail a task; the fault becomes the task's result.
    pub async fn host_fail_task(&self, task_id: i64, fault: &RawFault) -> Result<(), HubError> {
        let document = xmlrpc::encode_fault(fault);
        self.unit(
            "host.failTask",
            vec![int(task_id), Value::String(document)],
            vec![],
        )
        .await
    }

    pub async fn host_free_tasks(&self, task_ids: &[i64]) -> Result<(), HubError> {
        self.unit("host.freeTasks", vec![int_list(task_ids)], vec![])
            .await
    }

    pub async fn host_refuse_task(
        &self,
        task_id: i64,
        soft: bool,
        message: &str,
    ) -> Result<(), HubError> {
        self.unit(
            "host.refuseTask",
            vec![int(task_id)],
            vec![
                kwarg("soft", Value::Boolean(soft)),
                kwarg("msg", string(message)),
            ],
        )
        .await
    }

    pub async fn host_set_task_weight(&self, task_id: i64, weight: f64) -> Result<(), HubError> {
        self.unit(
            "host.setTaskWeight",
            vec![int(task_id), Value::Double(weight)],
            vec![],
        )
        .await
    }

    pub async fn host_task_set_wait(
        &self,
        parent: i64,
        tasks: Option<&[i64]>,
    ) -> Result<(), HubError> {
        let tasks = tasks.map_or(Value::Nil, int_list);
        self.unit("host.taskSetWait", vec![int(parent), tasks], vec![])
            .await
    }

    /// `(finished, unfinished)` subtask ids.
    pub async fn host_task_wait(&self, parent: i64) -> Result<(Vec<i64>, Vec<i64>), HubError> {
        self.typed("host.taskWait", vec![int(parent)], vec![]).await
    }

    /// `[(task id, result)]`; a failed child raises its fault here unless listed in `canfail`.
    pub async fn host_task_wait_results(
        &self,
        parent: i64,
        tasks: Option<&[i64]>,
        canfail: Option<&[i64]>,
    ) -> Result<Vec<(i64, serde_json::Value)>, HubError> {
        let tasks = tasks.map_or(Value::Nil, int_list);
        let canfail = canfail.map_or(Value::Nil, int_list);
        self.typed(
            "host.taskWaitResults",
            vec![int(parent), tasks],
            vec![kwarg("canfail", canfail)],
        )
        .await
    }

    /// `host.subtask(method=…, arglist=…, label=…, arch=…, parent=…)`, all as keywords, in
    /// kojid's order.
    pub async fn host_subtask(
        &self,
        method: &str,
        arglist: Vec<Value>,
        parent: i64,
        options: &SubtaskOptions,
    ) -> Result<i64, HubError> {
        let mut kwargs = vec![
            kwarg("method", string(method)),
            kwarg("arglist", Value::Array(arglist)),
        ];
        if let Some(label) = &options.label {
            kwargs.push(kwarg("label", string(label)));
        }
        if let Some(arch) = &options.arch {
            kwargs.push(kwarg("arch", string(arch)));
        }
        if let Some(priority) = options.priority {
            kwargs.push(kwarg("priority", int(priority)));
        }
        if let Some(channel) = &options.channel {
            kwargs.push(kwarg("channel", string(channel)));
        }
        kwargs.push(kwarg("parent", int(parent)));
        self.typed("host.subtask", vec![], kwargs).await
    }

    pub async fn host_new_build_root(
        &self,
        repo_id: i64,
        arch: &str,
        task_id: Option<i64>,
    ) -> Result<i64, HubError> {
        self.typed(
            "host.newBuildRoot",
            vec![int(repo_id), string(arch)],
            vec![kwarg("task_id", optional_int(task_id))],
        )
        .await
    }

    /// The state goes by name (`"BUILDING"`), as kojid sends it.
    pub async fn host_set_build_root_state(
        &self,
        buildroot_id: i64,
        state: BuildrootState,
        task_id: Option<i64>,
    ) -> Result<(), HubError> {
        let kwargs = task_id
            .map(|task_id| vec![kwarg("task_id", int(task_id))])
            .unwrap_or_default();
        self.unit(
            "host.setBuildRootState",
            vec![int(buildroot_id), string(state.name())],
            kwargs,
        )
        .await
    }

    pub async fn host_set_build_root_list(
        &self,
        buildroot_id: i64,
        rpms: &[BuildrootRpm],
    ) -> Result<(), HubError> {
        self.unit(
            "host.setBuildRootList",
            vec![int(buildroot_id), Self::encode(rpms)?],
            vec![],
        )
        .await
    }

    pub async fn host_update_build_root_list(
        &self,
        buildroot_id: i64,
        rpms: &[BuildrootRpm],
    ) -> Result<(), HubError> {
        self.unit(
            "host.updateBuildRootList",
            vec![int(buildroot_id), Self::encode(rpms)?],
            vec![],
        )
        .await
    }

    pub async fn host_init_build(&self, data: &BuildData) -> Result<i64, HubError> {
        self.typed("host.initBuild", vec![Self::encode(data)?], vec![])
            .await
    }

    /// `host.completeBuild(task_id, build_id, srpm, rpms, brmap, logs=…)`: `brmap` maps each
    /// uploaded file to its buildroot id, `logs` maps an arch to its log files.
    pub async fn host_complete_build(
        &self,
        task_id: i64,
        build_id: i64,
        srpm: &str,
        rpms: &[String],
        brmap: &BTreeMap<String, i64>,
        logs: &BTreeMap<String, Vec<String>>,
    ) -> Result<BuildInfo, HubError> {
        self.typed(
            "host.completeBuild",
            vec![
                int(task_id),
                int(build_id),
                string(srpm),
                Self::encode(rpms)?,
                Self::encode(brmap)?,
            ],
            vec![kwarg("logs", Self::encode(logs)?)],
        )
        .await
    }

    pub async fn host_fail_build(&self, task_id: i64, build_id: i64) -> Result<(), HubError> {
        self.unit("host.failBuild", vec![int(task_id), int(build_id)], vec![])
            .await
    }

    pub async fn host_move_build_to_scratch(
        &self,
        task_id: i64,
        srpm: &str,
        rpms: &[String],
        logs: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), HubError> {
        self.unit(
            "host.moveBuildToScratch",
            vec![int(task_id), string(srpm), Self::encode(rpms)?],
            vec![kwarg("logs", Self::encode(logs)?)],
        )
        .await
    }

    pub async fn host_tag_build(
        &self,
        task_id: i64,
        tag: i64,
        build: i64,
        force: bool,
        fromtag: Option<i64>,
    ) -> Result<(), HubError> {
        self.unit(
            "host.tagBuild",
            vec![int(task_id), int(tag), int(build)],
            vec![
                kwarg("force", Value::Boolean(force)),
                kwarg("fromtag", optional_int(fromtag)),
            ],
        )
        .await
    }

    /// `host.tagNotification(is_successful, tag_id, from_id, build_id, user_id,
    /// ignore_success[, failure_msg])`, positional as kojid sends it.
    #[allow(clippy::too_many_arguments)]
    pub async fn host_tag_notification(
        &self,
        successful: bool,
        tag_id: Option<i64>,
        from_id: Option<i64>,
        build_id: i64,
        user_id: i64,
        ignore_success: bool,
        failure_message: Option<&str>,
    ) -> Result<(), HubError> {
        let mut args = vec![
            Value::Boolean(successful),
            optional_int(tag_id),
            optional_int(from_id),
            int(build_id),
            int(user_id),
            Value::Boolean(ignore_success),
        ];
        if let Some(message) = failure_message {
            args.push(string(message));
        }
        self.unit("host.tagNotification", args, vec![]).await
    }

    pub async fn host_assert_policy(&self, name: &str, data: &Extra) -> Result<(), HubError> {
        self.unit(
            "host.assertPolicy",
            vec![string(name), Self::encode(data)?],
            vec![],
        )
        .await
    }

    /// `(allowed, reason)`.
    pub async fn host_check_policy(
        &self,
        name: &str,
        data: &Extra,
    ) -> Result<(bool, String), HubError> {
        self.typed(
            "host.checkPolicy",
            vec![string(name), Self::encode(data)?],
            vec![],
        )
        .await
    }

    /// `(repo_id, event_id)`; sent as `repoInit(tag, opts=nil, task_id=…[, event=…])`.
    pub async fn host_repo_init(
        &self,
        tag: i64,
        task_id: Option<i64>,
        event: Option<i64>,
    ) -> Result<(i64, i64), HubError> {
        let mut kwargs = vec![
            kwarg("opts", Value::Nil),
            kwarg("task_id", optional_int(task_id)),
        ];
        if let Some(event) = event {
            kwargs.push(kwarg("event", int(event)));
        }
        self.typed("host.repoInit", vec![int(tag)], kwargs).await
    }

    /// `data` maps each arch to `[upload dir, [files]]`.
    pub async fn host_repo_done(
        &self,
        repo_id: i64,
        data: &BTreeMap<String, (String, Vec<String>)>,
        expire: bool,
    ) -> Result<(), HubError> {
        let kwargs = if expire {
            vec![kwarg("expire", Value::Boolean(true))]
        } else {
            vec![]
        };
        self.unit(
            "host.repoDone",
            vec![int(repo_id), Self::encode(data)?],
            kwargs,
        )
        .await
    }

    pub async fn host_is_enabled(&self) -> Result<bool, HubError> {
        self.typed("host.isEnabled", vec![], vec![]).await
    }

    // --- read calls ------------------------------------------------------------------

    pub async fn get_task_info(
        &self,
        task_id: i64,
        request: bool,
    ) -> Result<Option<TaskInfo>, HubError> {
        let kwargs = if request {
            vec![kwarg("request", Value::Boolean(true))]
        } else {
            vec![]
        };
        self.typed("getTaskInfo", vec![int(task_id)], kwargs).await
    }

    /// The result of a finished task; a failed task's fault comes back as `Err(Fault)`.
    pub async fn get_task_result(&self, task_id: i64) -> Result<serde_json::Value, HubError> {
        let value = self
            .call("getTaskResult", vec![int(task_id)], vec![])
            .await?;
        Ok(xmlrpc::value_to_json(&value))
    }

    pub async fn get_build_config(
        &self,
        tag: TagRef<'_>,
        event: Option<i64>,
    ) -> Result<TagInfo, HubError> {
        let kwargs = event
            .map(|event| vec![kwarg("event", int(event))])
            .unwrap_or_default();
        self.typed("getBuildConfig", vec![tag.value()], kwargs)
            .await
    }

    /// `getTag(tag, strict=True)`: a missing tag is a GenericError fault.
    pub async fn get_tag(&self, tag: TagRef<'_>) -> Result<TagInfo, HubError> {
        self.typed(
            "getTag",
            vec![tag.value()],
            vec![kwarg("strict", Value::Boolean(true))],
        )
        .await
    }

    pub async fn get_build_target(
        &self,
        name: &str,
        event: Option<i64>,
    ) -> Result<Option<BuildTarget>, HubError> {
        self.typed(
            "getBuildTarget",
            vec![string(name)],
            vec![kwarg("event", optional_int(event))],
        )
        .await
    }

    /// The latest READY repo of a tag.
    pub async fn get_repo(&self, tag: TagRef<'_>) -> Result<Option<RepoInfo>, HubError> {
        self.typed("getRepo", vec![tag.value()], vec![]).await
    }

    /// `repoInfo(id, strict=True)`.
    pub async fn repo_info(&self, repo_id: i64) -> Result<RepoInfo, HubError> {
        self.typed(
            "repoInfo",
            vec![int(repo_id)],
            vec![kwarg("strict", Value::Boolean(true))],
        )
        .await
    }

    /// `repo.request(tag, min_event=…, at_event=…, opts=nil)` (≥1.35).
    pub async fn repo_request(
        &self,
        tag: i64,
        min_event: Option<i64>,
        at_event: Option<i64>,
    ) -> Result<RepoRequestReply, HubError> {
        self.typed(
            "repo.request",
            vec![int(tag)],
            vec![
                kwarg("min_event", optional_int(min_event)),
                kwarg("at_event", optional_int(at_event)),
                kwarg("opts", Value::Nil),
            ],
        )
        .await
    }

    /// Buildroots of a host in the given states (kojid: INIT, WAITING, BUILDING).
    pub async fn list_buildroots(
        &self,
        host_id: i64,
        states: &[BuildrootState],
    ) -> Result<Vec<BuildrootInfo>, HubError> {
        let states = Value::Array(states.iter().map(|state| int((*state).into())).collect());
        self.typed(
            "listBuildroots",
            vec![],
            vec![kwarg("hostID", int(host_id)), kwarg("state", states)],
        )
        .await
    }

    pub async fn get_last_event(&self) -> Result<EventInfo, HubError> {
        self.typed("getLastEvent", vec![], vec![]).await
    }

    pub async fn get_host(&self, host_id: i64) -> Result<Option<HostInfo>, HubError> {
        self.typed("getHost", vec![int(host_id)], vec![]).await
    }

    pub async fn list_channels(&self, host_id: i64) -> Result<Vec<ChannelInfo>, HubError> {
        self.typed("listChannels", vec![], vec![kwarg("hostID", int(host_id))])
            .await
    }

    /// `getBuild(build, strict=True)`.
    pub async fn get_build(&self, build_id: i64) -> Result<BuildInfo, HubError> {
        self.typed(
            "getBuild",
            vec![int(build_id)],
            vec![kwarg("strict", Value::Boolean(true))],
        )
        .await
    }

    /// `getPackageConfig(tag, package, event=…)`; `None` when the package is not listed.
    pub async fn get_package_config(
        &self,
        tag: TagRef<'_>,
        package: &str,
        event: Option<i64>,
    ) -> Result<Option<PackageConfig>, HubError> {
        let kwargs = event
            .map(|event| vec![kwarg("event", int(event))])
            .unwrap_or_default();
        self.typed(
            "getPackageConfig",
            vec![tag.value(), string(package)],
            kwargs,
        )
        .await
    }

    /// Average build time in seconds over the last `age` months; `None` without history.
    pub async fn get_average_build_duration(
        &self,
        package: &str,
        age: Option<i64>,
    ) -> Result<Option<f64>, HubError> {
        let kwargs = age
            .map(|age| vec![kwarg("age", int(age))])
            .unwrap_or_default();
        self.typed("getAverageBuildDuration", vec![string(package)], kwargs)
            .await
    }

    pub async fn get_external_repo_list(
        &self,
        tag: TagRef<'_>,
        event: Option<i64>,
    ) -> Result<Vec<ExternalRepo>, HubError> {
        let kwargs = event
            .map(|event| vec![kwarg("event", int(event))])
            .unwrap_or_default();
        self.typed("getExternalRepoList", vec![tag.value()], kwargs)
            .await
    }

    pub async fn get_full_inheritance(
        &self,
        tag: TagRef<'_>,
    ) -> Result<Vec<InheritanceEntry>, HubError> {
        self.typed("getFullInheritance", vec![tag.value()], vec![])
            .await
    }

    /// `checkUpload(path, name[, verify=…][, volume=…])`; `None` when the file is not there.
    pub async fn check_upload(
        &self,
        path: &str,
        name: &str,
        verify: Option<&str>,
        volume: Option<&str>,
    ) -> Result<Option<UploadCheck>, HubError> {
        let mut kwargs = vec![];
        if let Some(verify) = verify {
            kwargs.push(kwarg("verify", string(verify)));
        }
        if let Some(volume) = volume {
            kwargs.push(kwarg("volume", string(volume)));
        }
        self.typed("checkUpload", vec![string(path), string(name)], kwargs)
            .await
    }

    /// `host.evalPolicy(name, data)`: the policy's action string.
    pub async fn host_eval_policy(&self, name: &str, data: &Extra) -> Result<String, HubError> {
        self.typed(
            "host.evalPolicy",
            vec![string(name), Self::encode(data)?],
            vec![],
        )
        .await
    }

    pub async fn cancel_task_children(&self, task_id: i64) -> Result<(), HubError> {
        self.unit("cancelTaskChildren", vec![int(task_id)], vec![])
            .await
    }

    pub async fn task_finished(&self, task_id: i64) -> Result<bool, HubError> {
        self.typed("taskFinished", vec![int(task_id)], vec![]).await
    }

    pub async fn get_task_children(&self, task_id: i64) -> Result<Vec<TaskInfo>, HubError> {
        self.typed("getTaskChildren", vec![int(task_id)], vec![])
            .await
    }

    /// The names of the files a task uploaded.
    pub async fn list_task_output(&self, task_id: i64) -> Result<Vec<String>, HubError> {
        self.typed("listTaskOutput", vec![int(task_id)], vec![])
            .await
    }

    pub async fn get_buildroot(
        &self,
        buildroot_id: i64,
    ) -> Result<Option<BuildrootInfo>, HubError> {
        self.typed("getBuildroot", vec![int(buildroot_id)], vec![])
            .await
    }

    /// `getChannel(name, strict=False)`.
    pub async fn get_channel(&self, name: &str) -> Result<Option<ChannelInfo>, HubError> {
        self.typed("getChannel", vec![string(name)], vec![]).await
    }

    /// The last event that changed a tag, for repo freshness checks.
    pub async fn tag_last_change_event(&self, tag: TagRef<'_>) -> Result<Option<i64>, HubError> {
        self.typed("tagLastChangeEvent", vec![tag.value()], vec![])
            .await
    }

    /// Turn a fault into the document `host.failTask` takes.
    pub fn fault_document(fault: &KojiFault) -> String {
        xmlrpc::encode_fault(&fault.to_raw())
    }
}

/// A tag by id or by name; kojid passes ids where it has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagRef<'a> {
    Id(i64),
    Name(&'a str),
}

impl TagRef<'_> {
    fn value(self) -> Value {
        match self {
            TagRef::Id(id) => int(id),
            TagRef::Name(name) => string(name),
        }
    }
}

impl From<i64> for TagRef<'_> {
    fn from(id: i64) -> Self {
        TagRef::Id(id)
    }
}

impl<'a> From<&'a str> for TagRef<'a> {
    fn from(name: &'a str) -> Self {
        TagRef::Name(name)
    }
}
