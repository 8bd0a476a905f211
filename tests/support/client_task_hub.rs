//! A `TaskHub` over the real hub client, for tests that run handlers without the worker loop
//! (the same role the worker's `TaskHubAdapter` has in the daemon). Shared by the build and
//! repo end-to-end tests.

use koji_adjutant::hub::client::HubClient;
use koji_adjutant::hub::xmlrpc::json_to_value;
use koji_adjutant_actors::error::{ErrorClass, Fault, HubError};
use koji_adjutant_actors::hub::{
    SubtaskOptions, SubtaskResult, TaskHub, TaskInfo, TaskState, WaitStatus,
};
use serde_json::{Map, Value as Json, json};

pub struct ClientTaskHub {
    pub client: HubClient,
}

fn map_error(call: &str, error: koji_adjutant::hub::session::HubError) -> HubError {
    match error.fault() {
        Some(fault) => HubError::from_fault(
            call,
            Fault::new(
                fault.code,
                format!("{:?}", fault.kind),
                fault.message.clone(),
            ),
        ),
        None => HubError::new(call, ErrorClass::Retry, error.to_string()),
    }
}

impl ClientTaskHub {
    async fn json(
        &self,
        method: &str,
        args: Vec<Json>,
        kwargs: Map<String, Json>,
    ) -> Result<Json, HubError> {
        self.client
            .call_json(method, &args, &kwargs)
            .await
            .map_err(|e| map_error(method, e))
    }
}

#[async_trait::async_trait]
impl TaskHub for ClientTaskHub {
    fn session_id(&self) -> i64 {
        0
    }
    async fn close_task(&self, task_id: i64, result: &Json) -> Result<(), HubError> {
        let value = json_to_value(result)
            .map_err(|e| HubError::new("host.closeTask", ErrorClass::FailTask, e.to_string()))?;
        self.client
            .host_close_task(task_id, &value)
            .await
            .map_err(|e| map_error("host.closeTask", e))
    }
    async fn fail_task(&self, task_id: i64, fault: &Fault) -> Result<(), HubError> {
        let raw = koji_adjutant::hub::xmlrpc::RawFault {
            code: fault.fault_code,
            message: fault.message.clone(),
        };
        self.client
            .host_fail_task(task_id, &raw)
            .await
            .map_err(|e| map_error("host.failTask", e))
    }
    async fn refuse_task(&self, task_id: i64, soft: bool, message: &str) -> Result<(), HubError> {
        let mut kwargs = Map::new();
        kwargs.insert("soft".into(), json!(soft));
        kwargs.insert("msg".into(), json!(message));
        self.json("host.refuseTask", vec![json!(task_id)], kwargs)
            .await
            .map(|_| ())
    }
    async fn free_tasks(&self, task_ids: &[i64]) -> Result<(), HubError> {
        self.json("host.freeTasks", vec![json!(task_ids)], Map::new())
            .await
            .map(|_| ())
    }
    async fn get_id(&self) -> Result<i64, HubError> {
        Ok(self
            .json("host.getID", vec![], Map::new())
            .await?
            .as_i64()
            .unwrap_or_default())
    }
    async fn get_task_info(&self, task_id: i64, request: bool) -> Result<TaskInfo, HubError> {
        let mut kwargs = Map::new();
        kwargs.insert("request".into(), json!(request));
        let info = self
            .json("getTaskInfo", vec![json!(task_id)], kwargs)
            .await?;
        Ok(task_info(&info))
    }
    async fn subtask(
        &self,
        parent: i64,
        method: &str,
        args: Vec<Json>,
        options: &SubtaskOptions,
    ) -> Result<i64, HubError> {
        let mut kwargs = Map::new();
        kwargs.insert("method".into(), json!(method));
        kwargs.insert("arglist".into(), Json::Array(args));
        kwargs.insert("parent".into(), json!(parent));
        if let Some(label) = &options.label {
            kwargs.insert("label".into(), json!(label));
        }
        if let Some(arch) = &options.arch {
            kwargs.insert("arch".into(), json!(arch));
        }
        Ok(self
            .json("host.subtask", vec![], kwargs)
            .await?
            .as_i64()
            .unwrap_or_default())
    }
    async fn task_set_wait(&self, parent: i64, subtasks: Option<&[i64]>) -> Result<(), HubError> {
        self.json(
            "host.taskSetWait",
            vec![json!(parent), json!(subtasks)],
            Map::new(),
        )
        .await
        .map(|_| ())
    }
    async fn task_wait(&self, parent: i64) -> Result<WaitStatus, HubError> {
        let value = self
            .json("host.taskWait", vec![json!(parent)], Map::new())
            .await?;
        let ids = |v: &Json| {
            v.as_array()
                .map(|a| a.iter().filter_map(Json::as_i64).collect())
                .unwrap_or_default()
        };
        Ok(WaitStatus {
            finished: ids(&value[0]),
            unfinished: ids(&value[1]),
        })
    }
    async fn task_wait_results(
        &self,
        parent: i64,
        subtasks: Option<&[i64]>,
        canfail: &[i64],
    ) -> Result<Vec<(i64, SubtaskResult)>, HubError> {
        let mut kwargs = Map::new();
        kwargs.insert("canfail".into(), json!(canfail));
        let value = self
            .json(
                "host.taskWaitResults",
                vec![json!(parent), json!(subtasks)],
                kwargs,
            )
            .await?;
        Ok(value
            .as_array()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|pair| {
                        let result = &pair[1];
                        let outcome = match result.get("faultCode").and_then(Json::as_i64) {
                            Some(code) => SubtaskResult::Failed(Fault::new(
                                code as i32,
                                "Fault",
                                result["faultString"].as_str().unwrap_or_default(),
                            )),
                            None => SubtaskResult::Closed(result.clone()),
                        };
                        (pair[0].as_i64().unwrap_or_default(), outcome)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
    async fn get_task_result(&self, task_id: i64) -> Result<Json, HubError> {
        self.json("getTaskResult", vec![json!(task_id)], Map::new())
            .await
    }
    async fn cancel_task_children(&self, task_id: i64) -> Result<(), HubError> {
        self.json("cancelTaskChildren", vec![json!(task_id)], Map::new())
            .await
            .map(|_| ())
    }
    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Json, HubError> {
        let mut kwargs = Map::new();
        kwargs.insert("event".into(), json!(event));
        self.json("getBuildConfig", vec![json!(tag)], kwargs).await
    }
    async fn call(
        &self,
        method: &str,
        params: Vec<Json>,
        kwargs: Map<String, Json>,
    ) -> Result<Json, HubError> {
        self.json(method, params, kwargs).await
    }
    async fn logout(&self) -> Result<(), HubError> {
        Ok(())
    }
}

fn task_info(info: &Json) -> TaskInfo {
    TaskInfo {
        id: info["id"].as_i64().unwrap_or_default(),
        state: TaskState::from_code(info["state"].as_i64().unwrap_or(1)).unwrap_or(TaskState::Open),
        host_id: info["host_id"].as_i64(),
        method: info["method"].as_str().unwrap_or_default().to_owned(),
        arch: info["arch"].as_str().unwrap_or("noarch").to_owned(),
        channel_id: info["channel_id"].as_i64().unwrap_or_default(),
        parent: info["parent"].as_i64(),
        owner: info["owner"].as_i64(),
        priority: info["priority"].as_i64().unwrap_or_default(),
        completion_ts: None,
        request: info["request"].as_array().cloned(),
    }
}
