//! The monitoring server in front of a running worker: the supervision core on the actors'
//! in-memory hub, with real podman containers (builder image) for the build-like tasks.
//!
//! Needs root, podman with runc (scripts/setup-dev.sh), `promtool` (Debian's `prometheus`) and
//! `chromium` for the browser test.

#[path = "../actors/tests/common/mod.rs"]
mod common;
mod hub_support;
mod web_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use koji_adjutant::podman::{LABEL_WORKER, PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::hub::TaskState;
use koji_adjutant_actors::runtime::ContainerRuntime;
use koji_adjutant_actors::snapshot::TaskPhase;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use web_support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LIMIT: Duration = Duration::from_secs(120);

/// Builds (or finds current) the builder image once per test binary.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let output = Command::new(Path::new(ROOT).join("scripts/build-image.sh"))
            .output()
            .expect("run scripts/build-image.sh");
        assert!(
            output.status.success(),
            "scripts/build-image.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("build-image.sh prints the image name")
            .trim()
            .to_owned()
    })
}

/// Real podman, with this test's own worker label; its containers are removed on drop.
struct Podman {
    runtime: Arc<dyn ContainerRuntime>,
    worker_id: String,
    _run_dir: tempfile::TempDir,
}

impl Podman {
    fn new(test: &str) -> Self {
        let run_dir = tempfile::tempdir().unwrap();
        let options = PodmanOptions {
            run_dir: run_dir.path().to_path_buf(),
            kill_timeout: Duration::from_secs(10),
            ..PodmanOptions::default()
        };
        Self {
            runtime: Arc::new(PodmanRuntime::new(options)),
            worker_id: format!("web{}-{test}", std::process::id()),
            _run_dir: run_dir,
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let filter = format!("label={LABEL_WORKER}={}", self.worker_id);
        if let Ok(listed) = Command::new("podman")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
                let _ = Command::new("podman")
                    .args(["rm", "-f", "-t", "0", "--ignore", id])
                    .output();
            }
        }
    }
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(ROOT).join("target"), PathBuf::from)
        .join("web-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/web-artifacts");
    dir
}

fn task_phase(worker: &Worker, task_id: i64) -> Option<TaskPhase> {
    worker
        .handle
        .snapshot
        .borrow()
        .running
        .iter()
        .find(|t| t.task_id == task_id)
        .map(|t| t.phase)
}

/// Starts a build-like task and waits until it is building with its whole output in the tail.
async fn building_task(worker: &Worker, method: &str, nvr: &str, lines: u64) -> i64 {
    let id = worker
        .hub
        .create_task(method, vec![json!("f40-build"), json!(nvr), json!(lines)]);
    let last_line = format!("compiling unit {lines} of {nvr}");
    eventually("the task builds and printed its output", LIMIT, || {
        task_phase(worker, id) == Some(TaskPhase::Building)
            && worker
                .handle
                .logs
                .tail(id, 1)
                .first()
                .is_some_and(|l| *l == last_line)
    })
    .await;
    id
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    names.sort();
    names
}

fn promtool_check(metrics: &str) {
    let path = artifacts_dir().join("metrics.txt");
    std::fs::write(&path, metrics).unwrap();
    let output = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool is installed (apt-get install prometheus)");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[actix_rt::test]
async fn every_endpoint_follows_a_running_build() {
    let podman = Podman::new("endpoints");
    let method = "webBuildEndpoints";
    let worker = Worker::start(
        &podman.worker_id,
        method,
        podman.runtime.clone(),
        image(),
        None,
    );
    let shutdown = CancellationToken::new();
    let addr = worker.serve(None, shutdown.clone());

    eventually("the worker is ready", LIMIT, || {
        worker.handle.snapshot.borrow().readiness.ready
    })
    .await;
    let before = get(addr, "/metrics", &[]).await.body;
    let started = format!("adjutant_tasks_started_total{{method=\"{method}\"}}");
    let building =
        format!("adjutant_task_phase_entered_total{{method=\"{method}\",phase=\"building\"}}");
    let id = building_task(&worker, method, "hello-2.1-3", 25).await;

    // The dashboard shows the task, its phase, its timeline and its log tail.
    let page = get(addr, "/status", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    for expected in [
        format!("id=\"task-{id}\""),
        format!("href=\"https://koji.example/koji/taskinfo?taskID={id}\""),
        method.to_owned(),
        "hello-2.1-3".to_owned(),
        "f40-build".to_owned(),
        "<span class=\"phase ph-building\">building".to_owned(),
        "<rect class=\"ph-building\"".to_owned(),
        "compiling unit 25 of hello-2.1-3".to_owned(),
        "builder-1".to_owned(),
        "class=\"badge ok\"".to_owned(),
    ] {
        assert!(page.body.contains(&expected), "/status lacks {expected:?}");
    }
    for header in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(page.header(header).is_some(), "/status lacks {header}");
    }

    // The status document, under both names.
    let status = get(addr, "/status.json", &[]).await;
    assert_eq!(status.status, 200);
    let doc = status.json();
    assert_eq!(
        get(addr, "/api/v1/status", &[]).await.json()["api_version"],
        1
    );
    assert_eq!(doc["api_version"], 1);
    assert_eq!(
        keys(&doc),
        sorted(&[
            "api_version",
            "generated_at",
            "worker",
            "tasks",
            "recent_tasks",
            "containers",
            "container_history",
            "policy_cache",
            "actor_restarts",
            "warnings"
        ])
    );
    assert_eq!(
        keys(&doc["worker"]),
        sorted(&[
            "worker_id",
            "host_id",
            "host_name",
            "hub_url",
            "hub_version",
            "hub_weburl",
            "logged_in",
            "last_heartbeat",
            "last_heartbeat_age_seconds",
            "state",
            "ready",
            "not_ready_reason",
            "task_load",
            "capacity",
            "running_tasks",
            "maxjobs",
            "free_space_mib",
            "minspace_mib",
            "started_at",
            "uptime_seconds",
            "version"
        ])
    );
    let w = &doc["worker"];
    assert_eq!(w["worker_id"], json!(podman.worker_id));
    assert_eq!(w["host_name"], "builder-1");
    assert_eq!(w["hub_version"], "1.35.3");
    assert_eq!(w["logged_in"], true);
    assert_eq!(w["ready"], true);
    assert_eq!(w["running_tasks"], 1);
    assert_eq!(w["state"], "running");
    let task = &doc["tasks"][0];
    assert_eq!(
        keys(task),
        sorted(&[
            "task_id",
            "url",
            "method",
            "arch",
            "owner",
            "parent",
            "tag",
            "nvr",
            "details",
            "weight",
            "waiting",
            "phase",
            "started_at",
            "elapsed_seconds",
            "timeline",
            "containers",
            "logs",
            "log_tail"
        ])
    );
    assert_eq!(task["task_id"], id);
    assert_eq!(task["phase"], "building");
    assert_eq!(task["nvr"], "hello-2.1-3");
    assert_eq!(task["tag"], "f40-build");
    let phases: Vec<&str> = task["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["opened", "image", "buildroot", "building"]);
    assert_eq!(
        task["log_tail"].as_array().unwrap().last().unwrap(),
        "compiling unit 25 of hello-2.1-3"
    );
    let container_name = task["containers"][0].as_str().unwrap().to_owned();
    assert_eq!(task["logs"], json!(["output.log"]));

    // Tasks and containers.
    let tasks = get(addr, "/api/v1/tasks", &[]).await.json();
    assert_eq!(tasks["api_version"], 1);
    assert_eq!(tasks["items"][0]["status"], "running");
    assert_eq!(tasks["items"][0]["task_id"], id);
    let one = get(addr, &format!("/api/v1/tasks/{id}"), &[]).await.json();
    assert_eq!(one["item"]["status"], "running");
    assert_eq!(one["item"]["phase"], "building");
    let containers = get(addr, "/api/v1/containers", &[]).await.json();
    let live = containers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["task_id"] == id)
        .expect("the task's container is listed")
        .clone();
    assert_eq!(
        keys(&live),
        sorted(&[
            "name",
            "id",
            "task_id",
            "image",
            "state",
            "created_at",
            "started_at",
            "removed_at",
            "current_step",
            "memory_limit_bytes",
            "cpu_limit",
            "pids_limit"
        ])
    );
    assert_eq!(live["state"], "running");
    assert_eq!(live["image"], image());
    assert_eq!(live["memory_limit_bytes"], 512 * 1024 * 1024);
    let by_name = get(addr, &format!("/api/v1/containers/{container_name}"), &[]).await;
    assert_eq!(by_name.status, 200);
    assert_eq!(by_name.json()["item"]["name"], json!(container_name));
    let container_id = live["id"].as_str().unwrap().to_owned();
    assert!(!container_id.is_empty());
    let by_id = get(addr, &format!("/api/v1/containers/{container_id}"), &[]).await;
    assert_eq!(by_id.json()["item"]["name"], json!(container_name));

    // The log tail.
    let logs = get(
        addr,
        &format!("/api/v1/tasks/{id}/logs?name=output.log&tail=3"),
        &[],
    )
    .await;
    assert_eq!(logs.status, 200);
    let logs = logs.json();
    assert_eq!(
        logs["lines"],
        json!([
            "compiling unit 23 of hello-2.1-3",
            "compiling unit 24 of hello-2.1-3",
            "compiling unit 25 of hello-2.1-3"
        ])
    );
    assert_eq!(logs["task_id"], id);

    // Health.
    let health = get(addr, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["ready"], true);

    // The metrics moved with the task and pass promtool.
    let during = get(addr, "/metrics", &[]).await;
    assert_eq!(during.status, 200);
    assert!(
        during
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    let during = during.body;
    assert_eq!(sample(&during, &started) - sample(&before, &started), 1.0);
    assert_eq!(sample(&during, &building) - sample(&before, &building), 1.0);
    assert!(sample(&during, "adjutant_tasks_running") >= 1.0);
    assert!(sample(&during, "adjutant_ready") == 1.0);
    assert!(sample(&during, "process_resident_memory_bytes") > 0.0);
    assert!(during.contains("# TYPE adjutant_task_phase_duration_seconds histogram"));
    assert!(
        !during.contains(&format!("\"{id}\"")),
        "a task id must never be a label value"
    );
    promtool_check(&during);

    // Follow the log as server-sent events while the task finishes.
    let follow_path = format!("/api/v1/tasks/{id}/logs?tail=2&follow=1");
    let release = worker.release.clone();
    let follower =
        actix_rt::spawn(
            async move { read_stream_until(addr, &follow_path, "event: end", LIMIT).await },
        );
    tokio::time::sleep(Duration::from_millis(700)).await;
    release.cancel();
    let streamed = follower.await.unwrap();
    assert!(streamed.contains("text/event-stream"), "{streamed}");
    assert!(
        streamed.contains("data: compiling unit 25 of hello-2.1-3"),
        "{streamed}"
    );
    assert!(streamed.contains("event: end"), "{streamed}");

    eventually("the hub has the task closed", LIMIT, || {
        worker.hub.task(id).state == TaskState::Closed
    })
    .await;
    eventually("the task is in the history", LIMIT, || {
        worker
            .handle
            .snapshot
            .borrow()
            .recent
            .iter()
            .any(|t| t.task_id == id)
    })
    .await;
    let finished = get(addr, &format!("/api/v1/tasks/{id}"), &[]).await.json();
    assert_eq!(finished["item"]["status"], "finished");
    assert_eq!(finished["item"]["outcome"], "closed");
    assert_eq!(
        keys(&finished["item"]),
        sorted(&[
            "status",
            "task_id",
            "url",
            "method",
            "tag",
            "nvr",
            "details",
            "started_at",
            "finished_at",
            "duration_seconds",
            "outcome",
            "fault_code",
            "reason",
            "timeline"
        ])
    );
    let gone_logs = get(addr, &format!("/api/v1/tasks/{id}/logs"), &[]).await;
    assert_eq!(gone_logs.status, 404);
    assert!(
        gone_logs.body.contains("has finished"),
        "{}",
        gone_logs.body
    );
    eventually("the container is in the history", LIMIT, || {
        worker
            .handle
            .containers
            .history()
            .iter()
            .any(|c| c.name == container_name)
    })
    .await;
    let removed = get(addr, &format!("/api/v1/containers/{container_name}"), &[])
        .await
        .json();
    assert_eq!(removed["item"]["state"], "removed");

    let after = get(addr, "/metrics", &[]).await.body;
    let closed = format!("adjutant_tasks_finished_total{{method=\"{method}\",outcome=\"closed\"}}");
    assert_eq!(sample(&after, &closed) - sample(&before, &closed), 1.0);
    let duration_count =
        format!("adjutant_task_duration_seconds_count{{method=\"{method}\",outcome=\"closed\"}}");
    assert_eq!(
        sample(&after, &duration_count) - sample(&before, &duration_count),
        1.0
    );
    let uploading =
        format!("adjutant_task_phase_entered_total{{method=\"{method}\",phase=\"uploading\"}}");
    assert_eq!(
        sample(&after, &uploading) - sample(&before, &uploading),
        1.0
    );
    assert!(after.contains("adjutant_container_removals_total{outcome=\"ok\"}"));
    for operation in ["create", "start", "rm"] {
        let series = format!(
            "adjutant_container_operations_total{{operation=\"{operation}\",outcome=\"ok\"}}"
        );
        assert!(
            sample(&after, &series) > sample(&before, &series),
            "{series} did not grow"
        );
    }
    assert!(after.contains("# TYPE adjutant_container_operation_duration_seconds histogram"));
    promtool_check(&after);

    let page = get(addr, "/status", &[]).await.body;
    assert!(
        page.contains("oc-closed"),
        "the dashboard lists the finished task"
    );

    shutdown.cancel();
    worker.stop().await;
}

#[actix_rt::test]
async fn the_token_is_enforced_and_hostile_queries_are_refused() {
    let method = "webBuildHostile";
    let runtime = common::FakeRuntime::default();
    let worker = Worker::start(
        "web-hostile",
        method,
        Arc::new(runtime),
        "builder:test",
        Some(Duration::from_millis(50)),
    );
    let shutdown = CancellationToken::new();
    let token = "s3cret-token";
    let addr = worker.serve(Some(token), shutdown.clone());
    let auth = format!("Bearer {token}");
    let ok = [("Authorization", auth.as_str())];

    // A taken address is a clear start-up error, not a silent missing dashboard.
    let taken = koji_adjutant::web::MonitorServer::bind(
        koji_adjutant::web::WebSettings {
            bind: addr,
            token: None,
            info: koji_adjutant::web::StaticInfo::default(),
        },
        worker.sources(),
        None,
    );
    match taken {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(&addr.to_string()) && message.contains("monitoring_bind"),
                "{message}"
            );
        }
        Ok(_) => panic!("binding {addr} twice must fail"),
    }

    let id = worker
        .hub
        .create_task(method, vec![json!("f40-build"), json!("x-1-1"), json!(1)]);
    eventually("the task chatters", LIMIT, || {
        !worker.handle.logs.tail(id, 1).is_empty()
    })
    .await;

    // /healthz is open; everything else wants the token.
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
    for path in [
        "/status",
        "/status.json",
        "/api/v1/status",
        "/api/v1/tasks",
        "/api/v1/containers",
        "/metrics",
        "/readyz",
        "/static/status.css",
        &format!("/api/v1/tasks/{id}/logs"),
    ] {
        let refused = get(addr, path, &[]).await;
        assert_eq!(refused.status, 401, "{path} without a token");
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Bearer realm=\"koji-adjutant\"")
        );
        assert!(!refused.body.contains(method), "{path} leaked data");
        for wrong in [
            "Bearer s3cret-tokeN",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
            "s3cret-token",
        ] {
            assert_eq!(
                get(addr, path, &[("Authorization", wrong)]).await.status,
                401,
                "{path} with {wrong:?}"
            );
        }
        assert_eq!(
            get(addr, path, &ok).await.status,
            200,
            "{path} with the token"
        );
    }
    assert_eq!(
        get(
            addr,
            "/status",
            &[("Authorization", &format!("bearer {token}"))]
        )
        .await
        .status,
        200,
        "the scheme is case-insensitive"
    );

    // Read-only.
    for verb in ["POST", "PUT", "DELETE", "PATCH"] {
        let refused = request(addr, verb, "/status", &ok).await;
        assert_eq!(refused.status, 405, "{verb}");
        assert_eq!(refused.header("allow"), Some("GET"));
    }

    // Hostile and malformed parameters.
    let logs = format!("/api/v1/tasks/{id}/logs");
    let long = "a".repeat(600);
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("{logs}?tail=0"), 400, "tail"),
        (format!("{logs}?tail=1001"), 400, "tail"),
        (format!("{logs}?tail=99999999999999999999999"), 400, "tail"),
        (format!("{logs}?tail=-5"), 400, "tail"),
        (format!("{logs}?tail=%2B5"), 400, "tail"),
        (format!("{logs}?tail=abc"), 400, "tail"),
        (
            format!("{logs}?name=../../../etc/passwd"),
            400,
            "plain file name",
        ),
        (
            format!("{logs}?name=%2e%2e%2fetc%2fpasswd"),
            400,
            "plain file name",
        ),
        (
            format!("{logs}?name=%2Fetc%2Fpasswd"),
            400,
            "plain file name",
        ),
        (format!("{logs}?name=.bashrc"), 400, "plain file name"),
        (format!("{logs}?name=build.log%00"), 400, "plain file name"),
        (
            format!("{logs}?name=root.log"),
            404,
            "known logs: output.log",
        ),
        (format!("{logs}?follow=yes"), 400, "follow"),
        (format!("{logs}?tail=5&tail=6"), 400, "more than once"),
        (
            format!("{logs}?path=/etc/passwd"),
            400,
            "unknown query parameter",
        ),
        (format!("{logs}?name={long}"), 400, "longer than"),
        ("/api/v1/tasks/-1".to_owned(), 400, "positive"),
        ("/api/v1/tasks/1e3".to_owned(), 400, "positive"),
        ("/api/v1/tasks/0x10".to_owned(), 400, "positive"),
        (
            "/api/v1/tasks/99999999999999999999".to_owned(),
            400,
            "positive",
        ),
        (
            "/api/v1/tasks/..%2F..%2Fetc/logs".to_owned(),
            400,
            "positive",
        ),
        ("/api/v1/tasks/424242".to_owned(), 404, "neither running"),
        ("/api/v1/tasks/424242/logs".to_owned(), 404, "not running"),
        (
            "/api/v1/containers/a%20b".to_owned(),
            400,
            "letters, digits",
        ),
        ("/api/v1/containers/nope".to_owned(), 404, "no container"),
        ("/status?refresh=1".to_owned(), 400, "takes no parameters"),
        ("/metrics?name[]=x".to_owned(), 400, "takes no parameters"),
        ("/../../etc/passwd".to_owned(), 404, "no such page"),
    ];
    for (path, status, says) in cases {
        let response = get(addr, &path, &ok).await;
        assert_eq!(response.status, status, "{path}: {}", response.body);
        let body = response.json();
        assert_eq!(body["api_version"], 1, "{path}");
        assert_eq!(body["error"]["status"], status, "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{path}: {message:?} should say {says:?}"
        );
        assert!(!message.contains("root:"), "{path} leaked a file");
    }
    // A valid request still works, with the tail capped by what the worker keeps.
    let fine = get(addr, &format!("{logs}?name=output.log&tail=1000"), &ok).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert!(fine.json()["lines"].as_array().unwrap().len() <= 200);

    // Log streams are bounded, and a closed stream gives its slot back.
    let follow = format!("{logs}?follow=1");
    let mut streams = Vec::new();
    for _ in 0..koji_adjutant::web::MAX_LOG_FOLLOWERS {
        streams.push(open_stream(addr, &follow, token).await);
    }
    let refused = get(addr, &follow, &ok).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("already open"), "{}", refused.body);
    drop(streams);
    let mut reopened = false;
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head =
            format!("GET {follow} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 512];
        let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
            .await
            .unwrap();
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
            reopened = true;
            break;
        }
        // The server notices a closed stream at its next write (every 0.5 s).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reopened, "slots of closed streams are given back");

    worker.release.cancel();
    shutdown.cancel();
    worker.stop().await;
}

/// Opens a `follow=1` stream and waits for its response head; the stream stays open.
async fn open_stream(addr: std::net::SocketAddr, path: &str, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    stream
}

#[actix_rt::test]
async fn chromium_shows_the_running_task_without_console_errors() {
    let podman = Podman::new("chromium");
    let method = "webBuildBrowser";
    let worker = Worker::start(
        &podman.worker_id,
        method,
        podman.runtime.clone(),
        image(),
        None,
    );
    let shutdown = CancellationToken::new();
    let addr = worker.serve(None, shutdown.clone());
    let id = building_task(&worker, method, "browser-3.0-1", 12).await;
    let url = format!("http://{addr}/status");
    let screenshot = artifacts_dir().join("status.png");
    let _ = std::fs::remove_file(&screenshot);

    // Chromium blocks; run it off the System's thread so that the server keeps answering.
    let run = |extra: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let profile = tempfile::tempdir().unwrap();
            let mut args: Vec<String> = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1280,1400",
                "--virtual-time-budget=5000",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            args.push(format!("--user-data-dir={}", profile.path().display()));
            args.extend(extra);
            args.push(url);
            let output = Command::new("chromium")
                .args(&args)
                .output()
                .expect("chromium is installed (apt-get install chromium)");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        })
    };
    let (ok, dom, stderr) = run(vec!["--dump-dom".into()]).await.unwrap();
    assert!(ok, "chromium --dump-dom failed:\n{stderr}");
    let (ok, _, shot_stderr) = run(vec![format!("--screenshot={}", screenshot.display())])
        .await
        .unwrap();
    assert!(ok, "chromium --screenshot failed:\n{shot_stderr}");
    std::fs::write(artifacts_dir().join("status-dom.html"), &dom).unwrap();

    assert!(
        dom.contains(&format!("id=\"task-{id}\"")),
        "the page shows the task"
    );
    assert!(dom.contains("browser-3.0-1"));
    assert!(dom.contains("compiling unit 12 of browser-3.0-1"));
    assert!(dom.contains("ph-building"));
    // The refresh script ran (and its fetch worked): it rewrites the footer.
    assert!(
        dom.contains("live, every 3 s"),
        "the live-refresh script did not run or its refresh failed"
    );
    for log in [&stderr, &shot_stderr] {
        let console: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
            .collect();
        assert!(console.is_empty(), "console messages: {console:#?}");
    }
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );

    worker.release.cancel();
    eventually("the task closes", LIMIT, || {
        worker.hub.task(id).state == TaskState::Closed
    })
    .await;
    shutdown.cancel();
    worker.stop().await;
}

/// The hub client's calls, retries, offline waits and renewals reach `/metrics`, against a
/// scripted hub on a paused clock.
#[tokio::test(start_paused = true)]
async fn hub_client_metrics_count_calls_retries_offline_waits_and_relogins() {
    use hub_support::{Responder, Step, fault, ok, session};
    use koji_adjutant::hub::options::HubOptions;
    use koji_adjutant::hub::session::{HubConnection, Session};

    let handle = koji_adjutant::web::install_metrics().unwrap();
    let responder = Responder::start(vec![]).await;
    let options = HubOptions {
        server: responder.url(),
        user: Some("builder1.local".to_owned()),
        password: Some("secret".to_owned()),
        max_retries: 3,
        retry_interval: Duration::from_secs(60),
        offline_retry_interval: Duration::from_secs(120),
        ..HubOptions::default()
    };
    responder.push([session(900001, "key-1", true), hub_support::nil()]);
    let hub = HubConnection::new(options, CancellationToken::new()).unwrap();
    let main = Session::new(Arc::clone(&hub));
    main.login().await.unwrap();

    // A method name no other test uses, so that the deltas are this test's own.
    let method = "host.webMetricsProbe";
    let before = handle.render();
    responder.push([
        fault(1014, "database outage"),
        Step::Status(500),
        ok("<value><int>3</int></value>"),
        fault(1007, "session expired"),
        session(900001, "key-2", true),
        ok("<value><int>4</int></value>"),
        fault(1000, "no such thing"),
    ]);
    main.call(method, vec![], vec![]).await.unwrap();
    main.call(method, vec![], vec![]).await.unwrap();
    main.call(method, vec![], vec![]).await.unwrap_err();
    let after = handle.render();
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta(&format!(
            "adjutant_hub_calls_total{{method=\"{method}\",outcome=\"ok\"}}"
        )),
        2.0
    );
    assert_eq!(
        delta(&format!(
            "adjutant_hub_calls_total{{method=\"{method}\",outcome=\"fault\"}}"
        )),
        2.0,
        "the expired session's first try and the final fault"
    );
    assert_eq!(
        delta(&format!(
            "adjutant_hub_retries_total{{method=\"{method}\"}}"
        )),
        1.0
    );
    assert!(delta("adjutant_hub_offline_waits_total") >= 1.0);
    assert!(delta("adjutant_hub_relogins_total") >= 1.0);
    assert_eq!(
        delta(&format!(
            "adjutant_hub_call_duration_seconds_count{{method=\"{method}\"}}"
        )),
        4.0
    );
}
