//! Shared set-up for the repo task tests: a fake hub with the repo side, a topdir with real
//! RPMs built by rpmbuild, a `TaskHub` over the real hub client, and a tiny task runner that
//! plays the worker (open, run the handler in a standalone context, close or fail).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use koji_adjutant::handlers::repos::files::{ClientFiles, FixedFiles, HubCallFilesProvider};
use koji_adjutant::handlers::repos::{RepoServices, RepoSettings, register};
use koji_adjutant::hub::client::HubClient;
use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::hub::xmlrpc::json_to_value;
use koji_adjutant::podman::PodmanOptions;
use koji_adjutant::podman::PodmanRuntime;
use koji_adjutant_actors::error::{ErrorClass, Fault, HandlerError, HubError};
use koji_adjutant_actors::handler::{HandlerRegistry, TaskRequest};
use koji_adjutant_actors::hub::{
    SubtaskOptions, SubtaskResult, TaskHub, TaskInfo, TaskState, WaitStatus,
};
use koji_adjutant_actors::runtime::ContainerRuntime;
use koji_adjutant_actors::testing::standalone_context;
use koji_fakehub::repos::RepoSide;
use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, NewTask, Value};
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

pub const IMAGE: &str = "localhost/koji-adjutant-builder:latest";

/// A `TaskHub` over the real hub client, as the worker's adapter provides one.
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

/// A fake hub with the repo side, its topdir readable by the unprivileged tool user, a logged
/// in host client, and a worker dir.
pub struct World {
    pub hub: FakeHub,
    pub side: RepoSide,
    pub client: HubClient,
    pub host_id: i64,
    pub workdir: tempfile::TempDir,
    pub run_dir: tempfile::TempDir,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub settings: RepoSettings,
    /// Upload with the legacy `uploadFile` through the task's `TaskHub` instead of rawUpload.
    pub legacy_uploads: bool,
}

fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl World {
    pub async fn new() -> Self {
        let hub = FakeHub::start(FakeHubConfig {
            hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
            ..FakeHubConfig::default()
        })
        .await
        .unwrap();
        // Container names carry the task id and the standalone context's fixed worker id, so
        // task ids are made unique per test process to keep parallel tests apart.
        static WORLDS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let nth = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 1_000_000 + i64::from(std::process::id() % 100_000) * 1000 + nth * 50;
        hub.with_state(|s| s.next_task_id = s.next_task_id.max(base));
        let topdir = hub.topdir();
        open_up(&topdir);
        std::fs::create_dir_all(topdir.join("repos")).unwrap();
        let side = RepoSide::install(&hub);
        let client = HubClient::connect(
            HubOptions {
                server: hub.url(),
                user: Some("builder1.local".to_owned()),
                password: Some("builder".to_owned()),
                max_retries: 2,
                ..HubOptions::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let host_id = client.host_get_id().await.unwrap();
        let workdir = tempfile::tempdir().unwrap();
        open_up(workdir.path());
        let run_dir = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(PodmanRuntime::new(PodmanOptions {
            run_dir: run_dir.path().to_owned(),
            kill_timeout: Duration::from_secs(10),
            ..PodmanOptions::default()
        }));
        let settings = RepoSettings::new(&topdir, workdir.path());
        Self {
            hub,
            side,
            client,
            host_id,
            workdir,
            run_dir,
            runtime,
            settings,
            legacy_uploads: false,
        }
    }

    pub fn topdir(&self) -> PathBuf {
        self.hub.topdir()
    }

    pub fn registry(&self) -> HandlerRegistry {
        let mut registry = HandlerRegistry::new();
        register(
            &mut registry,
            RepoServices {
                settings: Arc::new(self.settings.clone()),
                files: if self.legacy_uploads {
                    Arc::new(HubCallFilesProvider)
                } else {
                    Arc::new(FixedFiles(Arc::new(ClientFiles {
                        client: self.client.clone(),
                    })))
                },
            },
        );
        registry
    }

    pub fn create(&self, method: &str, args: Vec<Value>) -> i64 {
        let mut task = NewTask::new(method, args);
        task.channel = "createrepo".to_owned();
        self.hub.create_task(task).unwrap()
    }

    /// Opens `id` and runs it as the worker would, reporting the outcome to the hub. Child
    /// tasks it creates are run too, and the parent is alerted when they end.
    pub async fn run(&self, id: i64) -> Result<Json, HandlerError> {
        Box::pin(self.run_inner(id)).await
    }

    async fn run_inner(&self, id: i64) -> Result<Json, HandlerError> {
        let opened = self.client.host_open_task(id).await.unwrap();
        assert!(opened.is_some(), "task {id} could not be opened");
        let hub: Arc<dyn TaskHub> = Arc::new(ClientTaskHub {
            client: self.client.clone(),
        });
        let info = hub.get_task_info(id, true).await.unwrap();
        let request = TaskRequest::decode(info.request.clone().unwrap_or_default());
        let factory = self.registry().get(&info.method).expect("a repo method");
        let handler = factory.create(&request, &info);
        let (ctx, standalone) = standalone_context(
            info,
            request,
            self.host_id,
            Arc::clone(&hub),
            Arc::clone(&self.runtime),
            IMAGE,
        );
        let containers = ctx.containers.clone();
        let run = handler.run(ctx);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    let children: Vec<i64> = self
                        .hub
                        .tasks()
                        .into_iter()
                        .filter(|t| t.parent == Some(id) && t.state == koji_fakehub::TaskState::Free)
                        .map(|t| t.id)
                        .collect();
                    if !children.is_empty() {
                        for child in children {
                            let _ = Box::pin(self.run_inner(child)).await;
                        }
                        standalone.alert();
                    }
                }
            }
        };
        containers.remove_all().await;
        match &outcome {
            Ok(result) => hub.close_task(id, result).await.unwrap(),
            Err(HandlerError::Fault(fault)) => hub.fail_task(id, fault).await.unwrap(),
            Err(HandlerError::Refuse { soft, message }) => {
                hub.refuse_task(id, *soft, message).await.unwrap()
            }
            Err(other) => hub
                .fail_task(id, &Fault::plain(other.to_string()))
                .await
                .unwrap(),
        }
        outcome
    }
}

/// Builds a tiny RPM with rpmbuild on the host: one file, optional requires.
pub fn build_rpm(out: &Path, name: &str, version: &str, arch: &str, requires: &[&str]) -> PathBuf {
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join(format!("{name}.spec"));
    let requires: String = requires
        .iter()
        .map(|r| format!("Requires: {r}\n"))
        .collect();
    let buildarch = if arch == "noarch" {
        "BuildArch: noarch\n"
    } else {
        ""
    };
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test package {name}\nLicense: MIT\n{buildarch}{requires}\
             %description\nA tiny package for the repo tests.\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {name}-{version} > %{{buildroot}}/usr/share/{name}/data\n\
             %files\n/usr/share/{name}/data\n"
        ),
    )
    .unwrap();
    let mut command = Command::new("rpmbuild");
    command
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg("__os_install_post %{nil}")
        .arg("--define")
        .arg("_build_id_links none");
    if arch != "noarch" {
        command.arg("--target").arg(arch);
    }
    let output = command.arg(&spec).output().unwrap();
    assert!(
        output.status.success(),
        "rpmbuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = format!("{name}-{version}-1.{arch}.rpm");
    let built = top.path().join("RPMS").join(arch).join(&file);
    std::fs::create_dir_all(out).unwrap();
    let dest = out.join(&file);
    std::fs::copy(&built, &dest).unwrap();
    dest
}

/// Runs a shell command in the builder image with the topdir mounted read-only.
pub fn in_image(name: &str, topdir: &Path, script: &str) -> std::process::Output {
    Command::new("podman")
        .args(["run", "--rm", "--network=none", "--name", name, "-v"])
        .arg(format!("{}:{}:ro", topdir.display(), topdir.display()))
        .args([IMAGE, "sh", "-c", script])
        .output()
        .unwrap()
}
