//! Shared by the web tests and the web benchmark: a worker on the actors' in-memory hub with a
//! build-like handler, the monitoring server in front of it, and a small HTTP/1.1 client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use koji_adjutant::web::{MonitorServer, MonitorSources, StaticInfo, WebSettings, install_metrics};
use koji_adjutant_actors::error::HandlerError;
use koji_adjutant_actors::handler::{HandlerRegistry, TaskContext, TaskHandler, TaskRequest};
use koji_adjutant_actors::hub::TaskInfo;
use koji_adjutant_actors::runtime::{
    ContainerRuntime, ContainerSpec, ExecSpec, NetworkMode, OutputStream, PullPolicy,
    ResourceLimits, SelinuxLabel,
};
use koji_adjutant_actors::settings::{LiveSettings, WorkerSettings};
use koji_adjutant_actors::snapshot::TaskPhase;
use koji_adjutant_actors::{Supervisor, WorkerDeps, WorkerHandle, WorkerSignal};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::common::{FakeHub, FakeProbe, RecordingNotifier};

/// A build-like task: image, buildroot, building (prints `lines` lines, then waits for the
/// test's release), uploading. Its arguments: `[tag, nvr, lines]`. Each test registers it under
/// its own method name, because the metrics recorder is shared by the whole test binary.
pub struct WebBuild {
    pub release: CancellationToken,
    /// Keep printing a line every this often while waiting (the benchmark's log traffic).
    pub chatter: Option<Duration>,
}

#[async_trait::async_trait]
impl TaskHandler for WebBuild {
    fn weight(&self) -> f64 {
        1.0
    }

    async fn run(&self, ctx: TaskContext) -> Result<Value, HandlerError> {
        let tag = ctx
            .request
            .arg(0, "tag")
            .and_then(Value::as_str)
            .unwrap_or("f40-build")
            .to_owned();
        let nvr = ctx
            .request
            .arg(1, "nvr")
            .and_then(Value::as_str)
            .unwrap_or("hello-1.0-1")
            .to_owned();
        let lines = ctx
            .request
            .arg(2, "lines")
            .and_then(Value::as_u64)
            .unwrap_or(20);
        ctx.phases.describe("tag", &tag);
        ctx.phases.describe("nvr", &nvr);
        ctx.phases.enter(TaskPhase::Image);
        let spec = ContainerSpec {
            image: ctx.default_image.clone(),
            name: ctx.containers.next_name(),
            labels: ctx.containers.labels(),
            user: None,
            workdir: None,
            mounts: Vec::new(),
            selinux_label: SelinuxLabel::None,
            env: BTreeMap::new(),
            network: NetworkMode::None,
            cap_add: Vec::new(),
            limits: ResourceLimits {
                memory: Some(512 * 1024 * 1024),
                cpus: None,
                pids: Some(512),
            },
        };
        let container = ctx
            .containers
            .create_and_start(&spec, PullPolicy::Never)
            .await?;
        ctx.phases.enter(TaskPhase::Buildroot);
        let step = |name: &str, script: String| ExecSpec {
            step: name.to_owned(),
            argv: vec!["sh".into(), "-c".into(), script],
            env: BTreeMap::new(),
            user: None,
            workdir: None,
            stdin: None,
            timeout: None,
        };
        ctx.containers
            .exec(
                &container,
                &step("buildroot", "echo buildroot ready".into()),
                ctx.logs.clone(),
            )
            .await?;
        ctx.phases.enter(TaskPhase::Building);
        let outcome = ctx
            .containers
            .exec(
                &container,
                &step(
                    "rpmbuild",
                    format!("i=1; while [ $i -le {lines} ]; do echo \"compiling unit $i of {nvr}\"; i=$((i+1)); done"),
                ),
                ctx.logs.clone(),
            )
            .await?;
        if outcome.exit_code != 0 {
            return Err(HandlerError::Other(format!(
                "rpmbuild step exited with {}",
                outcome.exit_code
            )));
        }
        let mut tick = 0u64;
        loop {
            let pause = self.chatter.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                () = self.release.cancelled() => break,
                () = ctx.cancel.cancelled() => return Err(HandlerError::Aborted("cancelled".into())),
                () = tokio::time::sleep(pause) => {
                    tick += 1;
                    ctx.logs.line(OutputStream::Stdout, &format!("still building {nvr}: tick {tick}"));
                }
            }
        }
        ctx.phases.enter(TaskPhase::Uploading);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(json!("built"))
    }
}

pub struct Worker {
    pub hub: FakeHub,
    pub handle: WorkerHandle,
    pub release: CancellationToken,
    pub worker_id: String,
}

impl Worker {
    pub fn start(
        worker_id: &str,
        method: &str,
        runtime: Arc<dyn ContainerRuntime>,
        image: &str,
        chatter: Option<Duration>,
    ) -> Self {
        let hub = FakeHub::new(koji_adjutant_actors::hub::HubVersion::new(1, 35, 3));
        let release = CancellationToken::new();
        let mut handlers = HandlerRegistry::new();
        koji_adjutant_actors::builtin::register_builtin(&mut handlers);
        let for_factory = release.clone();
        handlers.register(method, move |_: &TaskRequest, _: &TaskInfo| {
            Box::new(WebBuild {
                release: for_factory.clone(),
                chatter,
            }) as Box<dyn TaskHandler>
        });
        let settings = WorkerSettings {
            worker_id: worker_id.to_owned(),
            live: LiveSettings {
                maxjobs: 40,
                sleeptime: Duration::from_secs(2),
                task_image_default: image.to_owned(),
                pull_policy: PullPolicy::Never,
                policy_enabled: false,
                ..LiveSettings::default()
            },
            ..WorkerSettings::default()
        };
        {
            // Room for the benchmark's 32 tasks of weight 1.
            let mut state = hub.lock();
            state.host.capacity = 64.0;
        }
        let handle = Supervisor::start_worker(WorkerDeps {
            hub: Arc::new(hub.clone()),
            runtime,
            probe: Arc::new(FakeProbe::default()),
            handlers: Arc::new(handlers),
            notifier: Arc::new(RecordingNotifier::default()),
            settings,
        });
        Self {
            hub,
            handle,
            release,
            worker_id: worker_id.to_owned(),
        }
    }

    pub fn sources(&self) -> MonitorSources {
        MonitorSources::from_handle(&self.handle)
    }

    /// Binds a monitoring server on a free port and serves it until `shutdown`.
    pub fn serve(&self, token: Option<&str>, shutdown: CancellationToken) -> SocketAddr {
        let metrics = install_metrics().expect("install the recorder");
        let settings = WebSettings {
            bind: "127.0.0.1:0".parse().unwrap(),
            token: token.map(str::to_owned),
            info: StaticInfo {
                worker_id: self.worker_id.clone(),
                hub_url: "https://koji.example/kojihub".into(),
                weburl: Some("https://koji.example/koji".into()),
                version: "test".into(),
            },
        };
        let server = MonitorServer::bind(settings, self.sources(), Some(metrics)).expect("bind");
        let addr = server.local_addrs()[0];
        actix_rt::spawn(async move {
            server.run(shutdown).await.expect("server runs");
        });
        addr
    }

    pub async fn stop(self) {
        self.handle.supervisor.do_send(WorkerSignal::Terminate);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.handle.exit).await;
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = raw.split_once("\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            out.push_str(&rest[..size.min(rest.len())]);
            return out;
        }
        out.push_str(&rest[..size]);
        raw = rest[size..].trim_start_matches("\r\n");
    }
}

/// One GET with `Connection: close`; extra headers as (name, value).
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers).await
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("response within 30 s")
        .expect("read");
    parse_response(&String::from_utf8_lossy(&raw))
}

pub fn parse_response(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response {
        status,
        headers,
        body,
    }
}

/// Reads a streaming response until `until` appears in it (or the time is up).
pub async fn read_stream_until(
    addr: SocketAddr,
    path: &str,
    until: &str,
    limit: Duration,
) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains(until) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// Waits (real time) until `condition` holds.
pub async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of one sample line of a Prometheus text exposition, e.g.
/// `adjutant_tasks_started_total{method="webBuild"}`; 0 when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}
