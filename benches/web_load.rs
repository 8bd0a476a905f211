//! Load on the monitoring server while 32 build-like tasks run: p50/p99 latency of `/status`
//! and `/metrics` at a fixed request rate, the worker's CPU, and whether the tasks slowed down.
//!
//! `cargo bench --bench web_load`. The worker (supervision core on the in-memory hub, real
//! podman containers with the builder image, monitoring server) runs in a child process, so
//! that its CPU is measured alone; this process is the load generator. Each task prints a log
//! line every 100 ms; their progress under load is compared with an idle window.
//!
//! Environment: `WEB_BENCH_RATE` (requests/s, default 500), `WEB_BENCH_SECONDS` (per endpoint,
//! default 10), `WEB_BENCH_TASKS` (default 32), `WEB_BENCH_RUNTIME` (`podman`, default, or
//! `fake` for the in-memory runtime).

#[path = "../actors/tests/common/mod.rs"]
mod common;
#[path = "../tests/web_support/mod.rs"]
mod web_support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use koji_adjutant_actors::runtime::ContainerRuntime;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "WEB_BENCH_CHILD";
const METHOD: &str = "webBench";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
    } else {
        parent();
    }
}

fn builder_image() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(Path::new(root).join("scripts/build-image.sh"))
        .output()
        .expect("run scripts/build-image.sh");
    assert!(output.status.success(), "scripts/build-image.sh failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .expect("an image name")
        .trim()
        .to_owned()
}

/// The worker side: starts the worker and the server, prints the port, runs until stdin closes.
fn child() {
    let tasks: usize = env_or("WEB_BENCH_TASKS", 32);
    let runtime_kind = std::env::var("WEB_BENCH_RUNTIME").unwrap_or_else(|_| "podman".into());
    let worker_id = format!("webbench{}", std::process::id());
    let run_dir = tempfile::tempdir().unwrap();
    let (runtime, image): (Arc<dyn ContainerRuntime>, String) = if runtime_kind == "fake" {
        (
            Arc::new(common::FakeRuntime::default()),
            "fake:latest".into(),
        )
    } else {
        let options = koji_adjutant::podman::PodmanOptions {
            run_dir: run_dir.path().to_path_buf(),
            ..Default::default()
        };
        (
            Arc::new(koji_adjutant::podman::PodmanRuntime::new(options)),
            builder_image(),
        )
    };
    actix_rt::System::new().block_on(async move {
        let worker = web_support::Worker::start(
            &worker_id,
            METHOD,
            runtime,
            &image,
            Some(Duration::from_millis(100)),
        );
        for i in 0..tasks {
            worker.hub.create_task(
                METHOD,
                vec![json!("f40-build"), json!(format!("pkg{i}-1.0-1")), json!(5)],
            );
        }
        let shutdown = CancellationToken::new();
        let addr = worker.serve(None, shutdown.clone());
        println!("PORT {}", addr.port());
        std::io::stdout().flush().unwrap();
        // The parent closes our stdin when it is done (or dies).
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        worker.release.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        shutdown.cancel();
        worker.stop().await;
    });
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    koji_adjutant::web::metrics::ProcessStat::parse_stat(&stat, ticks, 4096.0, 0.0)
        .map_or(0.0, |s| s.cpu_seconds)
}

/// One keep-alive connection: sends GET and reads exactly one Content-Length response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    async fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await.unwrap();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let status: u16 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("a content-length response");
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return (status, body);
            }
            self.fill().await;
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fetch_json(addr: SocketAddr, path: &str) -> Value {
    let mut conn = Conn::open(addr).await;
    let (status, body) = conn.get(path).await;
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&body).unwrap()
}

/// Sum over running tasks of the last `tick N` each printed (the tasks' progress), and how
/// many tasks have started ticking.
async fn total_ticks(addr: SocketAddr) -> (usize, u64) {
    let doc = fetch_json(addr, "/status.json").await;
    let tasks = doc["tasks"].as_array().cloned().unwrap_or_default();
    let ticks: Vec<u64> = tasks
        .iter()
        .filter_map(|t| {
            t["log_tail"]
                .as_array()?
                .last()?
                .as_str()
                .map(str::to_owned)
        })
        .filter_map(|line| line.rsplit("tick ").next()?.parse::<u64>().ok())
        .collect();
    (ticks.len(), ticks.iter().sum())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Fixed-rate load: `rate` requests/s spread over `connections`; latency is measured from each
/// request's scheduled time, so a stall is not hidden by the sender waiting (no coordinated
/// omission).
async fn load(
    addr: SocketAddr,
    path: &'static str,
    rate: f64,
    seconds: f64,
) -> (Vec<Duration>, usize) {
    let connections = 16usize;
    let per_connection = rate / connections as f64;
    let interval = Duration::from_secs_f64(1.0 / per_connection);
    let count = (per_connection * seconds) as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut workers = Vec::new();
    for c in 0..connections {
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let offset = interval.mul_f64(c as f64 / connections as f64);
            let mut latencies = Vec::with_capacity(count);
            let mut errors = 0;
            for i in 0..count {
                let scheduled = start + offset + interval * i as u32;
                tokio::time::sleep_until(scheduled).await;
                let (status, _) = conn.get(path).await;
                if status != 200 {
                    errors += 1;
                }
                latencies.push(scheduled.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, failed) = worker.await.unwrap();
        all.extend(latencies);
        errors += failed;
    }
    all.sort();
    (all, errors)
}

fn parent() {
    let rate: f64 = env_or("WEB_BENCH_RATE", 500.0);
    let seconds: f64 = env_or("WEB_BENCH_SECONDS", 10.0);
    let tasks: usize = env_or("WEB_BENCH_TASKS", 32);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the worker process");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("the worker prints its port").unwrap();
        if let Some(port) = line.strip_prefix("PORT ") {
            break port.trim().parse().unwrap();
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let ready_by = Instant::now() + Duration::from_secs(300);
        loop {
            let (ticking, _) = total_ticks(addr).await;
            if ticking == tasks {
                break;
            }
            assert!(Instant::now() < ready_by, "only {ticking} of {tasks} tasks started");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Let the last container starts settle before the idle baseline.
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "web_load: {tasks} tasks running (each logs a line every 100 ms), {rate} req/s for {seconds} s per endpoint"
        );

        // Idle baseline of the tasks' progress and the worker's CPU.
        let (_, t0) = total_ticks(addr).await;
        let c0 = cpu_seconds(pid);
        let w0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds.min(5.0))).await;
        let (_, t1) = total_ticks(addr).await;
        let idle_wall = w0.elapsed().as_secs_f64();
        let idle_rate = (t1 - t0) as f64 / idle_wall;
        let idle_cpu = (cpu_seconds(pid) - c0) / idle_wall * 100.0;
        println!(
            "idle           worker CPU {idle_cpu:5.1}%   task progress {idle_rate:7.1} lines/s"
        );

        for path in ["/status", "/metrics", "/status.json"] {
            let (_, t0) = total_ticks(addr).await;
            let c0 = cpu_seconds(pid);
            let w0 = Instant::now();
            let (latencies, errors) = load(addr, path, rate, seconds).await;
            let wall = w0.elapsed().as_secs_f64();
            let cpu = (cpu_seconds(pid) - c0) / wall * 100.0;
            let (_, t1) = total_ticks(addr).await;
            let progress = (t1 - t0) as f64 / w0.elapsed().as_secs_f64();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{path:<14} {:6} req  p50 {:6.2} ms  p99 {:6.2} ms  max {:7.2} ms  errors {errors}  worker CPU {cpu:5.1}%   task progress {progress:7.1} lines/s ({:+.1}% vs idle)",
                latencies.len(),
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.99)),
                ms(*latencies.last().unwrap_or(&Duration::ZERO)),
                (progress / idle_rate - 1.0) * 100.0,
            );
        }
        let status = fetch_json(addr, "/status.json").await;
        println!(
            "status.json: {} tasks, {} containers",
            status["tasks"].as_array().map_or(0, Vec::len),
            status["containers"].as_array().map_or(0, Vec::len)
        );
    });
    // Closing stdin tells the worker to stop and remove its containers.
    drop(child.stdin.take());
    let _ = child.wait();
}
