//! The build handlers replayed against the golden transcripts (`tests/fixtures/hub-transcripts`,
//! real kojid against kojihub 1.35.3): each task process's hub calls must match kojid's call
//! for call, method and arguments, and the hub's recorded answers drive the handler. Files come
//! from the transcripts' topurl downloads; the buildroot engine is a fake that produces the
//! rpms kojid uploaded, so the result structs can be compared too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use koji_adjutant::buildroot::{
    BuildOutput, BuildrootError, BuildrootSettings, BuildrootSpec, InstalledRpm, InstalledRpms,
    SrpmOutput,
};
use koji_adjutant::handlers::services::{
    ActiveBuildroot, BuildServices, BuildSettings, BuildrootFactory, FileError, FixedFiles,
    TaskFiles,
};
use koji_adjutant::handlers::{build, build_arch, tag_build};
use koji_adjutant::hub::xmlrpc::{decode_call, decode_response, value_to_json};
use koji_adjutant_actors::error::{Fault, HandlerError, HubError};
use koji_adjutant_actors::handler::{TaskContext, TaskHandler, TaskRequest};
use koji_adjutant_actors::hub::{
    SubtaskOptions, SubtaskResult, TaskHub, TaskInfo, TaskState, WaitStatus,
};
use koji_adjutant_actors::runtime::{
    ContainerHandle, ContainerRuntime, ContainerSpec, ContainerSummary, ExecOutcome, ExecSpec,
    ImageInfo, LogSink, PullPolicy, RuntimeError,
};
use koji_adjutant_actors::testing::standalone_context;
use serde_json::{Map, Value, json};
use sha2::Digest;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hub-transcripts"
);

/// One XML-RPC exchange of one process.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    response: Result<Value, (i32, String)>,
}

/// What a transcript holds for one task process.
#[derive(Debug, Default)]
struct ProcessLog {
    calls: Vec<Exchange>,
    /// `filepath/filename` → assembled body.
    uploads: BTreeMap<String, Vec<u8>>,
}

fn b64(body: &Value) -> Vec<u8> {
    body.get("b64")
        .and_then(Value::as_str)
        .map(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64 body")
        })
        .unwrap_or_default()
}

/// Parses `<scenario>.jsonl` into per-process logs; downloads are shared by all processes.
fn load(scenario: &str) -> (HashMap<String, ProcessLog>, HashMap<String, Vec<u8>>) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{scenario}.jsonl")).unwrap();
    let mut procs: HashMap<String, ProcessLog> = HashMap::new();
    let mut pending: HashMap<(String, i64), Value> = HashMap::new();
    let mut downloads = HashMap::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let proc_ = record["proc"].as_str().unwrap().to_owned();
        let xid = record["xid"].as_i64().unwrap();
        if record["direction"] == "request" {
            pending.insert((proc_, xid), record);
            continue;
        }
        let request = pending.remove(&(proc_.clone(), xid)).expect("request");
        let entry = procs.entry(proc_).or_default();
        if request["http_method"] == "GET" {
            let url = request["url_path"].as_str().unwrap();
            let relpath = url
                .trim_start_matches("/kojifiles")
                .trim_start_matches('/')
                .to_owned();
            downloads.insert(relpath, b64(&record["body"]));
            continue;
        }
        if request["method"] == "rawUpload" {
            let query = &request["query"];
            let get = |key: &str| -> String {
                match &query[key] {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items[0].as_str().unwrap_or_default().to_owned(),
                    other => other.to_string(),
                }
            };
            let key = format!("{}/{}", get("filepath"), get("filename"));
            let offset: usize = get("offset").parse().unwrap_or(0);
            let chunk = b64(&request["body"]);
            let file = entry.uploads.entry(key).or_default();
            file.truncate(offset);
            file.extend_from_slice(&chunk);
            continue;
        }
        let call = decode_call(request["body_xml"].as_str().unwrap()).unwrap();
        let response =
            match decode_response(record["body_xml"].as_str().unwrap().as_bytes()).unwrap() {
                Ok(value) => Ok(value_to_json(&value)),
                Err(fault) => Err((fault.code, fault.message)),
            };
        entry.calls.push(Exchange {
            method: call.method,
            args: call.args.iter().map(value_to_json).collect(),
            kwargs: call
                .kwargs
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
            response,
        });
    }
    (procs, downloads)
}

/// A call as the handler made it: method, positional args, keyword args.
type LoggedCall = (String, Vec<Value>, Map<String, Value>);

type Script =
    Box<dyn Fn(&str, &[Value], &Map<String, Value>) -> Result<Value, Fault> + Send + Sync>;

/// Answers a handler's hub calls with the transcript's, checking each call against it; or,
/// built with [`ReplayHub::scripted`], with a test's script.
struct ReplayHub {
    expected: Mutex<VecDeque<Exchange>>,
    script: Option<Script>,
    seen: Mutex<Vec<String>>,
    /// Every call with its arguments, for scripted tests.
    log: Mutex<Vec<LoggedCall>>,
    mismatches: Mutex<Vec<String>>,
}

impl ReplayHub {
    /// The process's calls minus those the TaskActor makes (closeTask, failTask, logout)
    /// and the upload bookkeeping that the hub client makes inside `TaskFiles`.
    fn new(log: &ProcessLog) -> Arc<Self> {
        let calls = log
            .calls
            .iter()
            .filter(|c| {
                !matches!(
                    c.method.as_str(),
                    "host.closeTask" | "host.failTask" | "logout" | "checkUpload"
                )
            })
            .cloned()
            .collect();
        Arc::new(Self {
            expected: Mutex::new(calls),
            script: None,
            seen: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            mismatches: Mutex::new(Vec::new()),
        })
    }

    fn scripted(
        script: impl Fn(&str, &[Value], &Map<String, Value>) -> Result<Value, Fault>
        + Send
        + Sync
        + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            expected: Mutex::new(VecDeque::new()),
            script: Some(Box::new(script)),
            seen: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            mismatches: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn args_of(&self, method: &str) -> Vec<(Vec<Value>, Map<String, Value>)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| m == method)
            .map(|(_, a, k)| (a.clone(), k.clone()))
            .collect()
    }

    fn answer(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, HubError> {
        self.seen.lock().unwrap().push(method.to_owned());
        self.log
            .lock()
            .unwrap()
            .push((method.to_owned(), args.clone(), kwargs.clone()));
        if let Some(script) = &self.script {
            return script(method, &args, &kwargs)
                .map_err(|fault| HubError::from_fault(method, fault));
        }
        let next = self.expected.lock().unwrap().pop_front();
        let Some(expected) = next else {
            self.mismatches
                .lock()
                .unwrap()
                .push(format!("extra call {method} {args:?} {kwargs:?}"));
            return Err(HubError::from_fault(
                method,
                Fault::generic("call not in the transcript"),
            ));
        };
        if expected.method != method {
            self.mismatches.lock().unwrap().push(format!(
                "called {method}, kojid called {} next",
                expected.method
            ));
        } else if expected.args != args || expected.kwargs != kwargs {
            self.mismatches.lock().unwrap().push(format!(
                "{method}: arguments differ\n  ours:  {args:?} {kwargs:?}\n  kojid: {:?} {:?}",
                expected.args, expected.kwargs
            ));
        }
        match expected.response {
            Ok(value) => Ok(value),
            Err((code, message)) => Err(HubError::from_fault(
                method,
                Fault::new(code, "Fault", message),
            )),
        }
    }

    fn assert_complete(&self) {
        let mismatches = self.mismatches.lock().unwrap().clone();
        assert!(
            mismatches.is_empty(),
            "differences from kojid:\n{}",
            mismatches.join("\n")
        );
        let left: Vec<String> = self
            .expected
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.method.clone())
            .collect();
        assert!(
            left.is_empty(),
            "kojid made these calls that we did not: {left:?}"
        );
    }
}

#[async_trait::async_trait]
impl TaskHub for ReplayHub {
    fn session_id(&self) -> i64 {
        900002
    }
    async fn close_task(&self, _task_id: i64, _result: &Value) -> Result<(), HubError> {
        Ok(())
    }
    async fn fail_task(&self, _task_id: i64, _fault: &Fault) -> Result<(), HubError> {
        Ok(())
    }
    async fn refuse_task(&self, _: i64, _: bool, _: &str) -> Result<(), HubError> {
        Ok(())
    }
    async fn free_tasks(&self, _: &[i64]) -> Result<(), HubError> {
        Ok(())
    }
    async fn get_id(&self) -> Result<i64, HubError> {
        Ok(1)
    }
    async fn get_task_info(&self, task_id: i64, _request: bool) -> Result<TaskInfo, HubError> {
        self.answer("getTaskInfo", vec![json!(task_id)], Map::new())?;
        Err(HubError::from_fault(
            "getTaskInfo",
            Fault::generic("typed getTaskInfo unused"),
        ))
    }
    async fn subtask(
        &self,
        parent: i64,
        method: &str,
        args: Vec<Value>,
        options: &SubtaskOptions,
    ) -> Result<i64, HubError> {
        let mut kw = Map::new();
        kw.insert("method".into(), json!(method));
        kw.insert("arglist".into(), Value::Array(args));
        kw.insert("parent".into(), json!(parent));
        if let Some(label) = &options.label {
            kw.insert("label".into(), json!(label));
        }
        if let Some(arch) = &options.arch {
            kw.insert("arch".into(), json!(arch));
        }
        let value = self.answer("host.subtask", vec![], kw)?;
        Ok(value.as_i64().unwrap_or(-1))
    }
    async fn task_set_wait(&self, parent: i64, subtasks: Option<&[i64]>) -> Result<(), HubError> {
        self.answer(
            "host.taskSetWait",
            vec![json!(parent), json!(subtasks)],
            Map::new(),
        )
        .map(drop)
    }
    async fn task_wait(&self, parent: i64) -> Result<WaitStatus, HubError> {
        let value = self.answer("host.taskWait", vec![json!(parent)], Map::new())?;
        let ids = |i: usize| -> Vec<i64> {
            value[i]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default()
        };
        Ok(WaitStatus {
            finished: ids(0),
            unfinished: ids(1),
        })
    }
    async fn task_wait_results(
        &self,
        parent: i64,
        subtasks: Option<&[i64]>,
        canfail: &[i64],
    ) -> Result<Vec<(i64, SubtaskResult)>, HubError> {
        let mut kw = Map::new();
        kw.insert(
            "canfail".into(),
            if canfail.is_empty() {
                Value::Null
            } else {
                json!(canfail)
            },
        );
        let value = self.answer(
            "host.taskWaitResults",
            vec![json!(parent), json!(subtasks)],
            kw,
        )?;
        Ok(value
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_i64().unwrap(),
                    SubtaskResult::Closed(pair[1].clone()),
                )
            })
            .collect())
    }
    async fn get_task_result(&self, task_id: i64) -> Result<Value, HubError> {
        self.answer("getTaskResult", vec![json!(task_id)], Map::new())
    }
    async fn cancel_task_children(&self, task_id: i64) -> Result<(), HubError> {
        self.answer("cancelTaskChildren", vec![json!(task_id)], Map::new())
            .map(drop)
    }
    async fn get_build_config(&self, tag: &str, event: Option<i64>) -> Result<Value, HubError> {
        let mut kw = Map::new();
        kw.insert("event".into(), json!(event));
        self.answer("getBuildConfig", vec![json!(tag)], kw)
    }
    async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, HubError> {
        self.answer(method, params, kwargs)
    }
    async fn logout(&self) -> Result<(), HubError> {
        Ok(())
    }
}

/// Topurl downloads from the transcript; uploads kept in memory.
#[derive(Default)]
struct MemoryFiles {
    served: HashMap<String, Vec<u8>>,
    downloaded: Mutex<Vec<String>>,
    /// `tasks/…/<id>/<name>` → bytes (whole uploads and synced logs).
    uploaded: Mutex<BTreeMap<String, Vec<u8>>>,
}

#[async_trait::async_trait]
impl TaskFiles for MemoryFiles {
    async fn download(&self, relpath: &str, destination: &Path) -> Result<u64, FileError> {
        self.downloaded.lock().unwrap().push(relpath.to_owned());
        let body = self
            .served
            .get(relpath)
            .ok_or_else(|| FileError::NotFound {
                relpath: relpath.to_owned(),
            })?;
        std::fs::write(destination, body).unwrap();
        Ok(body.len() as u64)
    }
    async fn upload(&self, task_id: i64, local: &Path, name: &str) -> Result<(), FileError> {
        let body = std::fs::read(local).unwrap();
        self.uploaded
            .lock()
            .unwrap()
            .insert(format!("tasks/{}/{task_id}/{name}", task_id % 10000), body);
        Ok(())
    }
    async fn sync_log(&self, task_id: i64, local: &Path, name: &str) -> Result<(), FileError> {
        self.upload(task_id, local, name).await
    }
}

/// A buildroot that "builds" by writing the files kojid uploaded.
struct FakeBuildroot {
    dir: PathBuf,
    installed: Vec<InstalledRpm>,
    outputs: BTreeMap<String, Vec<u8>>,
    calls: Arc<Mutex<Vec<String>>>,
    fail_build: Option<i32>,
}

impl FakeBuildroot {
    fn write_outputs(&self) -> Vec<PathBuf> {
        self.outputs
            .iter()
            .map(|(name, body)| {
                let path = self.dir.join(name);
                std::fs::write(&path, body).unwrap();
                path
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl ActiveBuildroot for FakeBuildroot {
    async fn installed_rpms(&self) -> Result<InstalledRpms, BuildrootError> {
        self.calls.lock().unwrap().push("installed_rpms".into());
        Ok(InstalledRpms {
            all: self.installed.clone(),
            image: None,
        })
    }
    async fn build_rpms(&mut self, srpm: &Path) -> Result<BuildOutput, BuildrootError> {
        assert!(srpm.exists(), "the srpm was downloaded before the build");
        self.calls.lock().unwrap().push("build_rpms".into());
        std::fs::write(self.dir.join("build.log"), "Executing(%build)\n").unwrap();
        if let Some(status) = self.fail_build {
            return Err(BuildrootError::Rpmbuild {
                arch: "noarch".into(),
                status,
            });
        }
        let (srpms, rpms) = self
            .write_outputs()
            .into_iter()
            .partition(|p| p.to_string_lossy().ends_with(".src.rpm"));
        Ok(BuildOutput {
            rpms,
            srpms,
            unexpected: Vec::new(),
        })
    }
    async fn build_srpm(&mut self, srpm: &Path) -> Result<SrpmOutput, BuildrootError> {
        assert!(srpm.exists());
        self.calls.lock().unwrap().push("build_srpm".into());
        std::fs::write(self.dir.join("build.log"), "Wrote: hello-1.0-1.src.rpm\n").unwrap();
        let srpm = self.write_outputs().into_iter().next().unwrap();
        Ok(SrpmOutput { srpm })
    }
    async fn release(self: Box<Self>) -> Result<(), BuildrootError> {
        self.calls.lock().unwrap().push("release".into());
        Ok(())
    }
}

struct FakeEngine {
    installed: Vec<InstalledRpm>,
    outputs: BTreeMap<String, Vec<u8>>,
    specs: Mutex<Vec<BuildrootSpec>>,
    calls: Arc<Mutex<Vec<String>>>,
    fail_build: Option<i32>,
}

#[async_trait::async_trait]
impl BuildrootFactory for FakeEngine {
    async fn init(
        &self,
        _ctx: &TaskContext,
        spec: BuildrootSpec,
    ) -> Result<Box<dyn ActiveBuildroot>, BuildrootError> {
        let dir = spec.work_dir.join("result");
        std::fs::create_dir_all(&dir).unwrap();
        for log in [
            "root.log",
            "state.log",
            "hw_info.log",
            "installed_pkgs.log",
            "mock_output.log",
            "mock_config.log",
        ] {
            std::fs::write(dir.join(log), format!("{log} of {}\n", spec.name())).unwrap();
        }
        self.specs.lock().unwrap().push(spec);
        self.calls.lock().unwrap().push("init".into());
        Ok(Box::new(FakeBuildroot {
            dir,
            installed: self.installed.clone(),
            outputs: self.outputs.clone(),
            calls: Arc::clone(&self.calls),
            fail_build: self.fail_build,
        }))
    }
}

/// A runtime nobody should call: the fake engine makes no containers.
struct NoRuntime;

#[async_trait::async_trait]
impl ContainerRuntime for NoRuntime {
    async fn ensure_image(&self, _: &str, _: PullPolicy) -> Result<(), RuntimeError> {
        unreachable!("no containers in handler tests")
    }
    async fn inspect_image(&self, _: &str) -> Result<ImageInfo, RuntimeError> {
        unreachable!()
    }
    async fn create(&self, _: &ContainerSpec) -> Result<ContainerHandle, RuntimeError> {
        unreachable!()
    }
    async fn start(&self, _: &ContainerHandle) -> Result<(), RuntimeError> {
        unreachable!()
    }
    async fn exec(
        &self,
        _: &ContainerHandle,
        _: &ExecSpec,
        _: Arc<dyn LogSink>,
        _: tokio_util::sync::CancellationToken,
    ) -> Result<ExecOutcome, RuntimeError> {
        unreachable!()
    }
    async fn stop(&self, _: &ContainerHandle, _: Duration) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn kill(&self, _: &ContainerHandle) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn remove(&self, _: &ContainerHandle, _: bool) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn list_owned(&self, _: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn reap_orphans(
        &self,
        _: &str,
        _: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }
}

/// The installed list kojid sent with `setBuildRootList`, minus the hub ids (which our handler
/// must add back from rpmlist.jsonl).
fn installed_from(log: &ProcessLog) -> Vec<InstalledRpm> {
    let call = log
        .calls
        .iter()
        .find(|c| c.method == "host.setBuildRootList")
        .unwrap();
    call.args[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|rpm| InstalledRpm {
            name: rpm["name"].as_str().unwrap().into(),
            version: rpm["version"].as_str().unwrap().into(),
            release: rpm["release"].as_str().unwrap().into(),
            epoch: rpm["epoch"].as_i64(),
            arch: rpm["arch"].as_str().unwrap().into(),
            payloadhash: rpm["payloadhash"].as_str().unwrap().into(),
            size: rpm["size"].as_i64().unwrap(),
            buildtime: rpm["buildtime"].as_i64().unwrap(),
            external_repo: None,
            from_image: false,
        })
        .collect()
}

/// The task's request and info from `<scenario>.tasks.json`.
fn task(scenario: &str, id: i64) -> (TaskInfo, TaskRequest, Value) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{scenario}.tasks.json")).unwrap();
    let tasks: Value = serde_json::from_str(&text).unwrap();
    let entry = tasks
        .as_array()
        .or_else(|| tasks.get("tasks").and_then(Value::as_array))
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(id) || t["info"]["id"] == json!(id))
        .unwrap()
        .clone();
    let info_json = entry.get("info").cloned().unwrap_or(entry.clone());
    let request: Vec<Value> = info_json["request"].as_array().cloned().unwrap_or_default();
    let info = TaskInfo {
        id,
        state: TaskState::Open,
        host_id: Some(1),
        method: info_json["method"].as_str().unwrap().into(),
        arch: info_json["arch"].as_str().unwrap().into(),
        channel_id: 1,
        parent: info_json["parent"].as_i64(),
        owner: Some(1),
        priority: 20,
        completion_ts: None,
        request: Some(request.clone()),
    };
    (info, TaskRequest::decode(request), entry)
}

/// The result kojid closed the task with.
fn closed_result(log: &ProcessLog) -> Value {
    let close = log
        .calls
        .iter()
        .find(|c| c.method == "host.closeTask")
        .unwrap();
    let xml = close.args[1].as_str().unwrap();
    value_to_json(&decode_response(xml.as_bytes()).unwrap().unwrap())
}

struct Run {
    result: Result<Value, HandlerError>,
    files: Arc<MemoryFiles>,
    engine: Arc<FakeEngine>,
    hub: Arc<ReplayHub>,
    workdir: tempfile::TempDir,
}

async fn run_task(
    scenario: &str,
    proc_: &str,
    task_id: i64,
    make: impl FnOnce(BuildServices, TaskRequest) -> Box<dyn TaskHandler>,
    fail_build: Option<i32>,
) -> (Run, ProcessLog) {
    let (mut procs, downloads) = load(scenario);
    let log = procs.remove(proc_).unwrap();
    let (info, request, _) = task(scenario, task_id);
    let hub = ReplayHub::new(&log);
    let files = Arc::new(MemoryFiles {
        served: downloads,
        ..MemoryFiles::default()
    });
    let outputs: BTreeMap<String, Vec<u8>> = log
        .uploads
        .iter()
        .filter(|(path, _)| path.ends_with(".rpm"))
        .map(|(path, body)| (path.rsplit('/').next().unwrap().to_owned(), body.clone()))
        .collect();
    let installed = if log
        .calls
        .iter()
        .any(|c| c.method == "host.setBuildRootList")
    {
        installed_from(&log)
    } else {
        Vec::new()
    };
    let engine = Arc::new(FakeEngine {
        installed,
        outputs,
        specs: Mutex::new(Vec::new()),
        calls: Arc::new(Mutex::new(Vec::new())),
        fail_build,
    });
    let workdir = tempfile::tempdir().unwrap();
    let services = BuildServices {
        settings: BuildSettings {
            workdir: workdir.path().to_owned(),
            ..BuildSettings::default()
        },
        files: Arc::new(FixedFiles(files.clone())),
        engine: engine.clone(),
        buildroot: BuildrootSettings::default(),
        topurls: vec!["http://127.0.0.1:8080/kojifiles".into()],
        topdir: None,
    };
    let handler = make(services, request.clone());
    let (ctx, standalone) = standalone_context(
        info,
        request,
        1,
        hub.clone(),
        Arc::new(NoRuntime),
        "localhost/koji-adjutant-builder:latest",
    );
    // The poller's alerts: wake a waiting parent as its children finish.
    let ticker = {
        let standalone = standalone.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                standalone.alert();
            }
        })
    };
    let result = handler.run(ctx).await;
    ticker.abort();
    (
        Run {
            result,
            files,
            engine,
            hub,
            workdir,
        },
        log,
    )
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

#[actix_rt::test]
async fn build_parent_matches_kojid_call_for_call() {
    let (run, log) = run_task(
        "regular-build",
        "task:6",
        6,
        |services, _| Box::new(build::BuildTask { services }),
        None,
    )
    .await;
    assert_eq!(run.result.clone().unwrap(), Value::Null);
    run.hub.assert_complete();
    assert_eq!(run.result.unwrap(), closed_result(&log));
    // One download of the SRPM instead of kojid's two (its header is read once).
    assert_eq!(
        *run.files.downloaded.lock().unwrap(),
        ["work/tasks/7/7/hello-1.0-1.src.rpm"]
    );
    assert!(
        !run.workdir.path().join("tasks/6/6").exists(),
        "work dir wiped after"
    );
}

#[actix_rt::test]
async fn scratch_build_parent_matches_kojid_call_for_call() {
    let (run, log) = run_task(
        "scratch-build",
        "task:3",
        3,
        |services, _| Box::new(build::BuildTask { services }),
        None,
    )
    .await;
    run.hub.assert_complete();
    assert_eq!(run.result.unwrap(), closed_result(&log));
}

fn same_result_modulo_log_order(ours: &Value, kojid: &Value, intended_missing: &[&str]) {
    for key in ["rpms", "srpms", "srpm", "brootid", "source"] {
        assert_eq!(ours.get(key), kojid.get(key), "{key}");
    }
    let mut our_logs: Vec<String> = serde_json::from_value(ours["logs"].clone()).unwrap();
    let mut kojid_logs: Vec<String> = serde_json::from_value(kojid["logs"].clone()).unwrap();
    kojid_logs.retain(|l| !intended_missing.iter().any(|m| l.ends_with(m)));
    our_logs.sort();
    kojid_logs.sort();
    assert_eq!(our_logs, kojid_logs);
}

#[actix_rt::test]
async fn build_arch_matches_kojid_call_for_call() {
    let (run, log) = run_task(
        "regular-build",
        "task:8",
        8,
        |services, request| Box::new(build_arch::BuildArchTask { services, request }),
        None,
    )
    .await;
    let result = run.result.unwrap();
    run.hub.assert_complete();
    // noarch_rpmdiff.json is an intended difference (docs/build-tasks.md).
    same_result_modulo_log_order(&result, &closed_result(&log), &["noarch_rpmdiff.json"]);
    let uploaded = run.files.uploaded.lock().unwrap().clone();
    for name in ["hello-1.0-1.noarch.rpm", "hello-1.0-1.src.rpm"] {
        let path = format!("tasks/8/8/{name}");
        assert_eq!(
            sha256(&uploaded[&path]),
            sha256(&log.uploads[&path]),
            "{name} uploaded unchanged"
        );
    }
    assert!(uploaded["tasks/8/8/build.log"].starts_with(b"Executing(%build)"));
    let specs = run.engine.specs.lock().unwrap();
    assert_eq!(specs[0].name(), "dist-build-4-1");
    assert_eq!(
        specs[0].arch, "x86_64",
        "noarch builds in a host arch buildroot"
    );
    assert_eq!(
        specs[0].repo_urls,
        ["http://127.0.0.1:8080/kojifiles/repos/dist-build/1/x86_64"]
    );
    assert_eq!(specs[0].install_group.name(), "build");
    assert_eq!(
        *run.engine.calls.lock().unwrap(),
        [
            "init",
            "installed_rpms",
            "build_rpms",
            "installed_rpms",
            "release"
        ]
    );
}

#[actix_rt::test]
async fn rebuild_srpm_matches_kojid_call_for_call() {
    let (run, log) = run_task(
        "regular-build",
        "task:7",
        7,
        |services, request| Box::new(build_arch::RebuildSrpmTask { services, request }),
        None,
    )
    .await;
    let result = run.result.unwrap();
    run.hub.assert_complete();
    same_result_modulo_log_order(&result, &closed_result(&log), &[]);
    let specs = run.engine.specs.lock().unwrap();
    assert_eq!(specs[0].install_group.name(), "srpm-build");
    assert_eq!(
        sha256(&run.files.uploaded.lock().unwrap()["tasks/7/7/hello-1.0-1.src.rpm"]),
        sha256(&log.uploads["tasks/7/7/hello-1.0-1.src.rpm"])
    );
}

#[actix_rt::test]
async fn tag_build_matches_kojid_call_for_call() {
    let (run, _log) = run_task(
        "regular-build",
        "task:9",
        9,
        |_, _| Box::new(tag_build::TagBuildTask),
        None,
    )
    .await;
    assert_eq!(run.result.unwrap(), Value::Null);
    run.hub.assert_complete();
}

#[actix_rt::test]
async fn a_failing_rpmbuild_expires_the_buildroot_and_fails_with_kojids_message() {
    // The transcript's calls up to the build, then kojid's failure path: the list is still
    // updated and the buildroot expired; nothing is uploaded but the logs.
    let (run, _log) = run_task(
        "regular-build",
        "task:8",
        8,
        |services, request| Box::new(build_arch::BuildArchTask { services, request }),
        Some(1),
    )
    .await;
    let Err(HandlerError::Fault(fault)) = run.result else {
        panic!("the build did not fail with a fault");
    };
    assert_eq!(fault.fault_code, 1005);
    assert_eq!(
        fault.message,
        "error building package (arch noarch), mock exited with status 1; see build.log or root.log for more information"
    );
    let seen = run.hub.seen.lock().unwrap().clone();
    let tail: Vec<&str> = seen
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "getExternalRepoList",
            "host.updateBuildRootList",
            "host.setBuildRootState"
        ]
    );
    let uploaded = run.files.uploaded.lock().unwrap().clone();
    assert!(
        uploaded.contains_key("tasks/8/8/build.log"),
        "logs reach the hub on failure"
    );
    assert!(!uploaded.keys().any(|k| k.ends_with(".rpm")));
    assert_eq!(
        run.engine.calls.lock().unwrap().last().map(String::as_str),
        Some("release")
    );
}

// ---- Scripted hubs: failure paths and waitrepo ----

fn services_for(files: Arc<MemoryFiles>, workdir: &Path, engine: Arc<FakeEngine>) -> BuildServices {
    BuildServices {
        settings: BuildSettings {
            workdir: workdir.to_owned(),
            waitrepo_pause: Duration::from_millis(1),
            ..BuildSettings::default()
        },
        files: Arc::new(FixedFiles(files)),
        engine,
        buildroot: BuildrootSettings::default(),
        topurls: vec!["http://127.0.0.1:8080/kojifiles".into()],
        topdir: None,
    }
}

fn empty_engine() -> Arc<FakeEngine> {
    Arc::new(FakeEngine {
        installed: Vec::new(),
        outputs: BTreeMap::new(),
        specs: Mutex::new(Vec::new()),
        calls: Arc::new(Mutex::new(Vec::new())),
        fail_build: None,
    })
}

/// Runs `method` (task `task_id`, `request`) against a scripted hub.
async fn run_scripted(
    hub: Arc<ReplayHub>,
    method: &str,
    task_id: i64,
    request: Vec<Value>,
    settings: impl FnOnce(&mut BuildServices),
) -> (Result<Value, HandlerError>, Arc<MemoryFiles>) {
    let (_, downloads) = load("regular-build");
    let files = Arc::new(MemoryFiles {
        served: downloads,
        ..MemoryFiles::default()
    });
    let workdir = tempfile::tempdir().unwrap();
    let mut services = services_for(files.clone(), workdir.path(), empty_engine());
    settings(&mut services);
    let decoded = TaskRequest::decode(request.clone());
    let handler: Box<dyn TaskHandler> = match method {
        "build" => Box::new(build::BuildTask { services }),
        "buildArch" => Box::new(build_arch::BuildArchTask {
            services,
            request: decoded.clone(),
        }),
        "waitrepo" => Box::new(koji_adjutant::handlers::waitrepo::WaitrepoTask { services }),
        "tagBuild" => Box::new(tag_build::TagBuildTask),
        other => panic!("no handler {other}"),
    };
    let info = TaskInfo {
        id: task_id,
        state: TaskState::Open,
        host_id: Some(1),
        method: method.into(),
        arch: "noarch".into(),
        channel_id: 1,
        parent: None,
        owner: Some(1),
        priority: 20,
        completion_ts: None,
        request: Some(request),
    };
    let (ctx, standalone) = standalone_context(
        info,
        decoded,
        1,
        hub,
        Arc::new(NoRuntime),
        "localhost/koji-adjutant-builder:latest",
    );
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            standalone.alert();
        }
    });
    let result = handler.run(ctx).await;
    ticker.abort();
    (result, files)
}

const SRPM: &str = "cli-build/1795723328.6067624.jlVykAxK/hello-1.0-1.src.rpm";

fn repo_struct(id: i64, create_event: i64) -> Value {
    json!({"id": id, "tag_id": 1, "tag_name": "dist-build", "state": 1, "create_event": create_event, "create_ts": 1.0})
}

/// A hub for a non-scratch build of the transcript's SRPM without rebuildSRPM, whose one
/// buildArch child fails.
fn build_hub(deny: Option<&'static str>) -> Arc<ReplayHub> {
    ReplayHub::scripted(move |method, args, _kw| match method {
        "getTaskInfo" => Ok(json!({"id": 30, "owner": 1, "arch": "noarch"})),
        "getBuildTarget" => Ok(
            json!({"build_tag": 1, "build_tag_name": "dist-build", "dest_tag": 2, "dest_tag_name": "dist-dest", "id": 1, "name": "dist"}),
        ),
        "host.assertPolicy" if deny == args[0].as_str() => Err(Fault::new(
            1004,
            "ActionNotAllowed",
            format!("policy violation ({})", args[0].as_str().unwrap()),
        )),
        "host.assertPolicy" => Ok(Value::Null),
        "getTag" => Ok(json!({"id": 1, "name": "dist-build", "arches": "x86_64"})),
        "repo.request" => {
            Ok(json!({"repo": repo_struct(1, 38), "request": null, "duplicate": false}))
        }
        "getLastEvent" => Ok(json!({"id": 42, "ts": 1.0})),
        "getBuildConfig" => Ok(
            json!({"id": 1, "name": "dist-build", "arches": "x86_64", "extra": {"rebuild_srpm": false}}),
        ),
        "getPackageConfig" => Ok(json!({"blocked": false, "extra_arches": null})),
        "host.initBuild" => Ok(json!(11)),
        "host.subtask" => Ok(json!(31)),
        "host.taskSetWait" => Ok(Value::Null),
        "host.taskWait" => Ok(json!([[31], []])),
        "host.taskWaitResults" => Err(Fault::new(
            1005,
            "BuildError",
            "error building package (arch noarch), mock exited with status 1; see build.log or root.log for more information",
        )),
        "host.failBuild" => Ok(Value::Null),
        other => Err(Fault::generic(format!("unexpected call {other}"))),
    })
}

#[actix_rt::test]
async fn a_failed_build_arch_fails_the_build_with_its_fault_and_calls_fail_build() {
    let hub = build_hub(None);
    let (result, files) = run_scripted(
        hub.clone(),
        "build",
        30,
        vec![json!(SRPM), json!("dist"), json!({})],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!("build did not fail: {result:?}");
    };
    assert_eq!(fault.fault_code, 1005);
    assert!(
        fault
            .message
            .starts_with("error building package (arch noarch)")
    );
    assert_eq!(
        hub.args_of("host.failBuild"),
        [(vec![json!(30), json!(11)], Map::new())]
    );
    // rebuild_srpm false: the uploaded SRPM goes to buildArch as is, keep_srpm on the first.
    let (_, subtask) = &hub.args_of("host.subtask")[0];
    assert_eq!(subtask["method"], json!("buildArch"));
    assert_eq!(
        subtask["arglist"],
        json!([SRPM, 1, "noarch", true, {"repo_id": 1}])
    );
    assert_eq!(subtask["label"], json!("noarch"));
    assert_eq!(*files.downloaded.lock().unwrap(), [format!("work/{SRPM}")]);
    assert!(!hub.calls().contains(&"host.completeBuild".to_owned()));
}

#[actix_rt::test]
async fn a_policy_denial_fails_the_build_before_anything_is_created() {
    let hub = build_hub(Some("build_from_srpm"));
    let (result, _) = run_scripted(
        hub.clone(),
        "build",
        30,
        vec![json!(SRPM), json!("dist"), json!({})],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!("not denied");
    };
    assert_eq!(fault.fault_code, 1004);
    assert_eq!(fault.message, "policy violation (build_from_srpm)");
    assert_eq!(
        hub.calls(),
        ["getTaskInfo", "getBuildTarget", "host.assertPolicy"]
    );
}

#[actix_rt::test]
async fn a_missing_repo_id_and_a_bad_arch_override_fail_like_kojid() {
    let hub = ReplayHub::scripted(|method, _, _| match method {
        "repoInfo" => Ok(Value::Null),
        other => Err(Fault::generic(format!("unexpected {other}"))),
    });
    let (result, _) = run_scripted(
        hub.clone(),
        "build",
        30,
        vec![json!(SRPM), json!("dist"), json!({"repo_id": 99})],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert_eq!(
        (fault.fault_code, fault.message.as_str()),
        (1005, "No such repo: 99")
    );
    let (result, _) = run_scripted(
        ReplayHub::scripted(|_, _, _| Ok(Value::Null)),
        "build",
        30,
        vec![
            json!(SRPM),
            json!("dist"),
            json!({"arch_override": "x86_64"}),
        ],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert_eq!(
        fault.message,
        "arch_override is only allowed for scratch builds"
    );
}

#[actix_rt::test]
async fn an_srpm_path_that_leaves_the_work_dir_is_refused_before_download() {
    let hub = ReplayHub::scripted(|method, _, _| match method {
        "repoInfo" => Ok(repo_struct(1, 38)),
        other => Err(Fault::generic(format!("unexpected {other}"))),
    });
    let (result, files) = run_scripted(
        hub,
        "buildArch",
        40,
        vec![
            json!("../../../etc/passwd"),
            json!(1),
            json!("noarch"),
            json!(true),
            json!({"repo_id": 1}),
        ],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!("accepted a hostile path: {result:?}");
    };
    assert!(fault.message.contains(".."), "{}", fault.message);
    assert!(files.downloaded.lock().unwrap().is_empty());
}

#[actix_rt::test]
async fn build_arch_without_repo_id_is_a_build_error() {
    let (result, _) = run_scripted(
        ReplayHub::scripted(|_, _, _| Ok(Value::Null)),
        "buildArch",
        40,
        vec![json!(SRPM), json!(1), json!("noarch"), json!(true)],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert_eq!(fault.message, "A repo id must be provided");
}

fn waitrepo_hub(checks_until_ready: usize, active: bool) -> Arc<ReplayHub> {
    let counter = Arc::new(Mutex::new(0usize));
    ReplayHub::scripted(move |method, _, _| match method {
        "getTag" => Ok(json!({"id": 1, "name": "dist-build"})),
        "tagLastChangeEvent" => Ok(json!(45)),
        "repo.request" => Ok(
            json!({"repo": null, "request": {"id": 5, "active": true, "min_event": 45}, "duplicate": false}),
        ),
        "repo.checkRequest" => {
            let mut n = counter.lock().unwrap();
            *n += 1;
            if *n >= checks_until_ready {
                Ok(json!({"repo": repo_struct(3, 50), "request": {"id": 5, "active": false}}))
            } else {
                Ok(json!({"repo": null, "request": {"id": 5, "active": active}}))
            }
        }
        other => Err(Fault::generic(format!("unexpected {other}"))),
    })
}

#[actix_rt::test]
async fn waitrepo_polls_the_repo_request_until_a_new_enough_repo_is_ready() {
    let hub = waitrepo_hub(3, true);
    let (result, _) = run_scripted(
        hub.clone(),
        "waitrepo",
        50,
        vec![
            json!("dist-build"),
            json!({"__starstar": true, "min_event": "last"}),
        ],
        |_| {},
    )
    .await;
    assert_eq!(result.unwrap()["id"], json!(3));
    assert_eq!(
        hub.calls(),
        [
            "getTag",
            "tagLastChangeEvent",
            "repo.request",
            "repo.checkRequest",
            "repo.checkRequest",
            "repo.checkRequest"
        ]
    );
    assert_eq!(
        hub.args_of("repo.request")[0].1["min_event"],
        json!(45),
        "\"last\" is resolved to the tag's last change"
    );
}

#[actix_rt::test]
async fn waitrepo_fails_when_the_request_dies_or_time_runs_out() {
    let (result, _) = run_scripted(
        waitrepo_hub(usize::MAX, false),
        "waitrepo",
        50,
        vec![json!("dist-build")],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert_eq!(fault.message, "Repo request no longer active: 5");
    let (result, _) = run_scripted(
        waitrepo_hub(usize::MAX, true),
        "waitrepo",
        50,
        vec![json!("dist-build")],
        |services| services.settings.waitrepo_timeout = Duration::from_millis(20),
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert!(
        fault.message.starts_with("Unsuccessfully waited")
            && fault.message.ends_with("for a new dist-build repo"),
        "{}",
        fault.message
    );
    let (result, _) = run_scripted(
        waitrepo_hub(1, true),
        "waitrepo",
        50,
        vec![json!("dist-build"), json!(1.0), Value::Null, json!(3)],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert_eq!(
        fault.message,
        "newer_than and min_event are mutually exclusive"
    );
}

#[actix_rt::test]
async fn waitrepo_on_an_old_hub_polls_get_repo() {
    let polls = Arc::new(Mutex::new(0));
    let hub = {
        let polls = Arc::clone(&polls);
        ReplayHub::scripted(move |method, _, _| match method {
            "getTag" => Ok(json!({"id": 1, "name": "dist-build"})),
            "repo.request" => Err(Fault::new(
                1000,
                "GenericError",
                "Invalid method: repo.request",
            )),
            "getRepo" => {
                let mut n = polls.lock().unwrap();
                *n += 1;
                Ok(if *n < 2 {
                    Value::Null
                } else {
                    repo_struct(4, 60)
                })
            }
            other => Err(Fault::generic(format!("unexpected {other}"))),
        })
    };
    let (result, _) = run_scripted(
        hub.clone(),
        "waitrepo",
        50,
        vec![json!("dist-build")],
        |_| {},
    )
    .await;
    assert_eq!(result.unwrap()["id"], json!(4));
    assert_eq!(
        hub.calls(),
        ["getTag", "repo.request", "getRepo", "getRepo"]
    );
}

#[actix_rt::test]
async fn a_failed_tag_sends_the_failure_notification_and_fails() {
    let hub = ReplayHub::scripted(|method, _, _| match method {
        "getTaskInfo" => Ok(json!({"id": 9, "owner": 1})),
        "getBuild" => Ok(json!({"id": 7, "nvr": "hello-1.0-1"})),
        "getTag" => Ok(json!({"id": 2, "name": "dist-dest"})),
        "host.tagBuild" => Err(Fault::new(
            1003,
            "TagError",
            "package hello not in list for tag dist-dest",
        )),
        "host.tagNotification" => Ok(Value::Null),
        other => Err(Fault::generic(format!("unexpected {other}"))),
    });
    let (result, _) = run_scripted(
        hub.clone(),
        "tagBuild",
        9,
        vec![json!(2), json!(7), json!(false), Value::Null, json!(true)],
        |_| {},
    )
    .await;
    let Err(HandlerError::Fault(fault)) = result else {
        panic!()
    };
    assert_eq!(fault.fault_code, 1003);
    let notification = &hub.args_of("host.tagNotification")[0].0;
    assert_eq!(
        *notification,
        [
            json!(false),
            json!(2),
            Value::Null,
            json!(7),
            json!(1),
            json!(true),
            json!("TagError: package hello not in list for tag dist-dest")
        ]
    );
}

/// A build hub whose repo must be waited for: hub ≥1.35 answers `repo.request` without a
/// repo, an old hub faults with "Invalid method" and has no repo yet.
fn waiting_build_hub(old_hub: bool) -> Arc<ReplayHub> {
    let base = build_hub(None);
    let waited = std::sync::atomic::AtomicBool::new(false);
    ReplayHub::scripted(move |method, args, kw| match method {
        "repo.request" if old_hub => Err(Fault::new(
            1000,
            "GenericError",
            "Invalid method: repo.request",
        )),
        "repo.request" => Ok(
            json!({"repo": null, "request": {"id": 8, "min_event": 45, "active": true}, "duplicate": false}),
        ),
        "getRepo" => Ok(Value::Null),
        "getBuildTargets" => Ok(json!([{"id": 1, "name": "dist"}])),
        "host.subtask" if kw["method"] == "waitrepo" => Ok(json!(41)),
        // The first wait is the waitrepo child's; later ones go to the base script.
        "host.taskWait" if !waited.swap(true, std::sync::atomic::Ordering::SeqCst) => {
            Ok(json!([[41], []]))
        }
        "host.taskWaitResults" if args[1] == json!([41]) => Ok(json!([[41, repo_struct(2, 60)]])),
        other => base.answer(other, args.to_vec(), kw.clone()).map_err(|e| {
            e.fault
                .unwrap_or_else(|| Fault::generic(format!("unexpected call {other}")))
        }),
    })
}

#[actix_rt::test]
async fn the_build_waits_for_a_repo_through_a_waitrepo_subtask_on_both_hub_generations() {
    for old_hub in [false, true] {
        let hub = waiting_build_hub(old_hub);
        let (result, _) = run_scripted(
            hub.clone(),
            "build",
            30,
            vec![json!(SRPM), json!("dist"), json!({})],
            |_| {},
        )
        .await;
        // The buildArch child fails in this script; what matters is how the repo was found.
        assert!(result.is_err());
        let subtasks = hub.args_of("host.subtask");
        let (_, waitrepo) = &subtasks[0];
        assert_eq!(waitrepo["method"], json!("waitrepo"), "old hub: {old_hub}");
        assert_eq!(waitrepo["label"], json!("waitrepo"));
        let expected_args = if old_hub {
            json!(["dist-build", null, null])
        } else {
            json!(["dist-build", null, null, 45])
        };
        assert_eq!(waitrepo["arglist"], expected_args, "old hub: {old_hub}");
        // The waited-for repo is the one buildArch gets.
        let (_, build_arch) = &subtasks[1];
        assert_eq!(build_arch["arglist"][4], json!({"repo_id": 2}));
        let calls = hub.calls();
        let repo_calls: Vec<&str> = calls
            .iter()
            .map(String::as_str)
            .filter(|m| ["repo.request", "getRepo", "getBuildTargets"].contains(m))
            .collect();
        if old_hub {
            assert_eq!(repo_calls, ["repo.request", "getRepo", "getBuildTargets"]);
        } else {
            assert_eq!(repo_calls, ["repo.request"]);
        }
    }
}

/// A host-session fake for `checkHost`: only `getBuildConfig` is answered.
struct ConfigOnlyHost {
    arches: &'static str,
}

#[async_trait::async_trait]
impl koji_adjutant_actors::hub::HostHub for ConfigOnlyHost {
    async fn login(&self) -> Result<(), HubError> {
        unreachable!()
    }
    async fn hub_version(&self) -> Result<koji_adjutant_actors::hub::HubVersion, HubError> {
        unreachable!()
    }
    async fn get_id(&self) -> Result<i64, HubError> {
        unreachable!()
    }
    async fn get_session_info(&self) -> Result<koji_adjutant_actors::hub::SessionInfo, HubError> {
        unreachable!()
    }
    async fn get_host(&self) -> Result<koji_adjutant_actors::hub::HostInfo, HubError> {
        unreachable!()
    }
    async fn get_host_tasks(&self) -> Result<Vec<koji_adjutant_actors::hub::HostTask>, HubError> {
        unreachable!()
    }
    async fn update_host(
        &self,
        _: f64,
        _: bool,
        _: Option<&koji_adjutant_actors::hub::HostData>,
    ) -> Result<(), HubError> {
        unreachable!()
    }
    async fn set_host_data(&self, _: &koji_adjutant_actors::hub::HostData) -> Result<(), HubError> {
        unreachable!()
    }
    async fn get_tasks(&self) -> Result<Vec<koji_adjutant_actors::hub::OfferedTask>, HubError> {
        unreachable!()
    }
    async fn get_load_data(&self) -> Result<koji_adjutant_actors::hub::LoadData, HubError> {
        unreachable!()
    }
    async fn get_task_info(&self, _: i64, _: bool) -> Result<TaskInfo, HubError> {
        unreachable!()
    }
    async fn open_task(&self, _: i64) -> Result<Option<TaskInfo>, HubError> {
        unreachable!()
    }
    async fn set_task_weight(&self, _: i64, _: f64) -> Result<(), HubError> {
        unreachable!()
    }
    async fn refuse_task(&self, _: i64, _: bool, _: &str) -> Result<(), HubError> {
        unreachable!()
    }
    async fn free_tasks(&self, _: &[i64]) -> Result<(), HubError> {
        unreachable!()
    }
    async fn list_active_buildroots(
        &self,
        _: i64,
    ) -> Result<Vec<koji_adjutant_actors::hub::BuildrootInfo>, HubError> {
        unreachable!()
    }
    async fn set_buildroot_state(&self, _: i64, _: i64) -> Result<(), HubError> {
        unreachable!()
    }
    async fn get_build_config(&self, tag: &str, _: Option<i64>) -> Result<Value, HubError> {
        assert_eq!(tag, "1", "the task's root tag, by id");
        Ok(json!({"id": 1, "name": "dist-build", "arches": self.arches}))
    }
    async fn subsession(&self) -> Result<Arc<dyn TaskHub>, HubError> {
        unreachable!()
    }
    async fn logout_child(&self, _: i64) -> Result<(), HubError> {
        unreachable!()
    }
    async fn logout(&self) -> Result<(), HubError> {
        unreachable!()
    }
}

#[tokio::test]
async fn check_host_needs_a_common_arch_with_the_tag() {
    let host = koji_adjutant_actors::hub::HostInfo {
        id: 1,
        name: "builder1.local".into(),
        enabled: true,
        capacity: 2.0,
        task_load: 0.0,
        ready: true,
        arches: vec!["noarch".into(), "x86_64".into()],
    };
    let (_, downloads) = load("regular-build");
    let files = Arc::new(MemoryFiles {
        served: downloads,
        ..MemoryFiles::default()
    });
    let workdir = tempfile::tempdir().unwrap();
    let services = services_for(files, workdir.path(), empty_engine());
    let request = TaskRequest::decode(vec![
        json!(SRPM),
        json!(1),
        json!("noarch"),
        json!(true),
        json!({"repo_id": 1}),
    ]);
    let build_arch = build_arch::BuildArchTask {
        services: services.clone(),
        request: request.clone(),
    };
    assert!(
        build_arch
            .check_host(
                &host,
                &ConfigOnlyHost {
                    arches: "i686 x86_64"
                }
            )
            .await
            .unwrap()
    );
    assert!(
        !build_arch
            .check_host(&host, &ConfigOnlyHost { arches: "aarch64" })
            .await
            .unwrap()
    );
    let rebuild = build_arch::RebuildSrpmTask {
        services,
        request: TaskRequest::decode(vec![json!(SRPM), json!(1), json!({"repo_id": 1})]),
    };
    assert!(
        !rebuild
            .check_host(&host, &ConfigOnlyHost { arches: "s390x" })
            .await
            .unwrap()
    );
    assert_eq!(build_arch.weight(), 1.5);
    assert_eq!(rebuild.weight(), 1.0);
}

/// `rpmbuild -bs` of tests/data/srpms/hello-c on the host (an arch-specific SRPM).
fn hello_c_srpm() -> Vec<u8> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/srpms/hello-c");
    let top = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("rpmbuild")
        .arg("-bs")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg(format!("_sourcedir {}", sources.display()))
        .arg(sources.join("hello-c.spec"))
        .output()
        .expect("rpmbuild on the host");
    assert!(output.status.success());
    let srpm = std::fs::read_dir(top.path().join("SRPMS"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read(srpm).unwrap()
}

/// Two arches, the first buildArch fails while the second still runs.
fn two_arch_hub() -> Arc<ReplayHub> {
    let waits = std::sync::atomic::AtomicUsize::new(0);
    let next_child = std::sync::atomic::AtomicI64::new(31);
    ReplayHub::scripted(move |method, args, kw| match method {
        "getTaskInfo" => Ok(json!({"id": 30, "owner": 1})),
        "getBuildTarget" => Ok(
            json!({"build_tag": 1, "build_tag_name": "dist-build", "dest_tag": 2, "dest_tag_name": "dist-dest", "id": 1, "name": "dist"}),
        ),
        "host.assertPolicy" => Ok(Value::Null),
        "getTag" => Ok(json!({"id": 1, "name": "dist-build"})),
        "repo.request" => Ok(json!({"repo": repo_struct(1, 38), "request": null})),
        "getLastEvent" => Ok(json!({"id": 42})),
        "getBuildConfig" => Ok(
            json!({"id": 1, "name": "dist-build", "arches": "x86_64 aarch64", "extra": {"rebuild_srpm": false}}),
        ),
        "getPackageConfig" => Ok(json!({"blocked": false, "extra_arches": null})),
        "host.initBuild" => Ok(json!(11)),
        "host.subtask" => {
            assert_eq!(kw["method"], json!("buildArch"));
            Ok(json!(
                next_child.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ))
        }
        "host.taskSetWait" => Ok(Value::Null),
        "host.taskWait" => {
            if waits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Ok(json!([[31], [32]]))
            } else {
                Ok(json!([[31, 32], []]))
            }
        }
        "getTaskResult" => Err(Fault::new(1005, "BuildError", "x86_64 failed")),
        "cancelTaskChildren" => Ok(Value::Null),
        "host.taskWaitResults" => Err(Fault::new(1005, "BuildError", "x86_64 failed")),
        "host.failBuild" => Ok(Value::Null),
        other => Err(Fault::generic(format!("unexpected call {other} {args:?}"))),
    })
}

#[actix_rt::test]
async fn fail_fast_cancels_the_other_arches_and_build_arch_can_fail_lets_them_finish() {
    let srpm = hello_c_srpm();
    for (can_fail, fail_fast) in [(false, false), (true, false), (true, true)] {
        let hub = two_arch_hub();
        let files = Arc::new(MemoryFiles {
            served: HashMap::from([(format!("work/{SRPM}"), srpm.clone())]),
            ..MemoryFiles::default()
        });
        let workdir = tempfile::tempdir().unwrap();
        let mut services = services_for(files, workdir.path(), empty_engine());
        services.settings.build_arch_can_fail = can_fail;
        let request = vec![json!(SRPM), json!("dist"), json!({"fail_fast": fail_fast})];
        let info = TaskInfo {
            id: 30,
            state: TaskState::Open,
            host_id: Some(1),
            method: "build".into(),
            arch: "noarch".into(),
            channel_id: 1,
            parent: None,
            owner: Some(1),
            priority: 20,
            completion_ts: None,
            request: Some(request.clone()),
        };
        let (ctx, standalone) = standalone_context(
            info,
            TaskRequest::decode(request),
            1,
            hub.clone(),
            Arc::new(NoRuntime),
            "localhost/koji-adjutant-builder:latest",
        );
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                standalone.alert();
            }
        });
        let result = build::BuildTask { services }.run(ctx).await;
        ticker.abort();
        let Err(HandlerError::Fault(fault)) = result else {
            panic!("the build did not fail");
        };
        assert_eq!(fault.message, "x86_64 failed");
        let labels: Vec<Value> = hub
            .args_of("host.subtask")
            .into_iter()
            .map(|(_, kw)| kw["label"].clone())
            .collect();
        assert_eq!(labels, [json!("x86_64"), json!("aarch64")]);
        let calls = hub.calls();
        let cancelled = calls.contains(&"cancelTaskChildren".to_owned());
        let failany = fail_fast || !can_fail;
        assert_eq!(
            cancelled, failany,
            "build_arch_can_fail={can_fail} fail_fast={fail_fast}: {calls:?}"
        );
        assert_eq!(hub.args_of("host.failBuild").len(), 1);
    }
}
