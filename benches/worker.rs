//! The running worker end to end: the real `koji-adjutant run` binary against the in-process
//! fake hub over XML-RPC.
//!
//!     cargo bench -p koji-adjutant --bench worker
//!
//! Prints:
//! * pickup latency, task assigned → `host.openTask`, for an idle worker polling at kojid's
//!   default `sleeptime` (15 s) and for one inside its fast-poll window (a task just ended);
//! * the worker's RSS idle and with 32 concurrent `sleep` tasks.
//!
//! `sleep` tasks need no container, so this measures the worker itself, not podman.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, NewTask, TaskState, Value};

const HOST: &str = "builder1.local";
const PASSWORD: &str = "builder";

struct Worker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Worker {
    fn start(hub: &FakeHub, sleeptime: u64, maxjobs: u64) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mockdir = dir.path().join("mock");
        std::fs::create_dir_all(&mockdir).expect("the mockdir");
        let config = format!(
            "[kojid]\nserver = {}\ntopurl = http://127.0.0.1:1/kojifiles\nuser = {HOST}\npassword = {PASSWORD}\n\
             sleeptime = {sleeptime}\nmaxjobs = {maxjobs}\nminspace = 1\nmockdir = {}\n\
             [adjutant]\nworker_id = bench-{}\nmonitoring_enabled = false\npolicy_enabled = false\n",
            hub.url(),
            mockdir.display(),
            std::process::id()
        );
        let path = dir.path().join("kojid.conf");
        std::fs::write(&path, config).expect("write kojid.conf");
        let child = Command::new(env!("CARGO_BIN_EXE_koji-adjutant"))
            .arg("-c")
            .arg(&path)
            .args(["run", "--fg", "--max-load", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start koji-adjutant run");
        Self { child, _dir: dir }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS")
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn hub() -> FakeHub {
    let hub = FakeHub::start(FakeHubConfig {
        hosts: vec![HostConfig::new(HOST).with_password(PASSWORD)],
        // Assignments are made by the benchmark, so that "assigned" has a time.
        scheduler_run_interval: None,
        ..FakeHubConfig::default()
    })
    .await
    .expect("start the fake hub");
    hub.with_state(|state| {
        for host in state.hosts.values_mut() {
            host.capacity = 100.0;
        }
    });
    hub
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Creates a task, assigns it at once and returns how long until the worker opened it.
async fn pickup(hub: &FakeHub, seconds: i32) -> (i64, Duration) {
    let id = hub
        .create_task(NewTask::new("sleep", vec![Value::Integer(seconds)]))
        .expect("create a task");
    let assigned = hub.run_scheduler();
    assert!(
        assigned.iter().any(|(task, _)| *task == id),
        "the scheduler did not assign the task (is the worker ready?)"
    );
    let start = Instant::now();
    wait_until("the task to open", Duration::from_secs(60), || {
        hub.task(id)
            .is_some_and(|task| task.state != TaskState::Assigned)
    })
    .await;
    (id, start.elapsed())
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    format!(
        "n={} p50 {:.2} s, max {:.2} s",
        samples.len(),
        p50.as_secs_f64(),
        max.as_secs_f64()
    )
}

async fn wait_ready(hub: &FakeHub) {
    wait_until("the first heartbeat", Duration::from_secs(30), || {
        hub.host(HOST).is_some_and(|host| host.ready)
    })
    .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Idle worker at kojid's default sleeptime: the assignment lands at a random point of the
    // 15 s pause.
    let hub_a = hub().await;
    let worker = Worker::start(&hub_a, 15, 10);
    wait_ready(&hub_a).await;
    let mut idle = Vec::new();
    for round in 0..6u64 {
        // Spread the assignment over the pause; 40 s after the last task ended the fast poll
        // is over.
        tokio::time::sleep(Duration::from_millis(31_000 + round * 2_300)).await;
        let (id, took) = pickup(&hub_a, 0).await;
        idle.push(took);
        wait_until("the task to close", Duration::from_secs(60), || {
            hub_a
                .task(id)
                .is_some_and(|task| task.state == TaskState::Closed)
        })
        .await;
    }
    println!(
        "pickup latency, idle worker, sleeptime 15 s: {}",
        summary(&mut idle)
    );

    // Inside the fast-poll window: each task is assigned a moment after the previous one
    // ended, as a build's next subtask would be.
    let mut fast = Vec::new();
    for round in 0..10u64 {
        tokio::time::sleep(Duration::from_millis(200 + round * 170)).await;
        let (id, took) = pickup(&hub_a, 0).await;
        fast.push(took);
        wait_until("the task to close", Duration::from_secs(60), || {
            hub_a
                .task(id)
                .is_some_and(|task| task.state == TaskState::Closed)
        })
        .await;
    }
    println!(
        "pickup latency, within the fast-poll window: {}",
        summary(&mut fast)
    );
    worker.stop();

    // Memory with 32 concurrent sleep tasks.
    let hub_b = hub().await;
    let worker = Worker::start(&hub_b, 2, 32);
    wait_ready(&hub_b).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = worker.rss_kib();
    let ids: Vec<i64> = (0..32)
        .map(|_| {
            hub_b
                .create_task(NewTask::new("sleep", vec![Value::Integer(30)]))
                .expect("create a task")
        })
        .collect();
    let start = Instant::now();
    let mut peak = 0;
    loop {
        hub_b.run_scheduler();
        let open = ids
            .iter()
            .filter(|id| {
                hub_b
                    .task(**id)
                    .is_some_and(|task| task.state == TaskState::Open)
            })
            .count();
        peak = peak.max(worker.rss_kib());
        if open == 32 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {open} of 32 tasks opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_open = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy_rss = worker.rss_kib().max(peak);
    println!(
        "RSS: idle {:.1} MiB, with 32 running sleep tasks {:.1} MiB (all 32 opened {:.2} s after they were created)",
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0,
        all_open.as_secs_f64()
    );
    worker.stop();
}
