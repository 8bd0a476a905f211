//! Pickup latency (task assigned → `host.openTask`) and memory of the supervision core, with the
//! in-memory fake hub and runtime. Prints numbers; asserts nothing.
//!
//! Run: `cargo bench -p koji-adjutant-actors --bench pickup`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use koji_adjutant_actors::builtin::register_builtin;
use koji_adjutant_actors::handler::HandlerRegistry;
use koji_adjutant_actors::hub::{HubVersion, TaskState};
use koji_adjutant_actors::settings::WorkerSettings;
use koji_adjutant_actors::{Supervisor, WorkerDeps, WorkerSignal};
use serde_json::json;

fn start(hub: &FakeHub, maxjobs: usize) -> koji_adjutant_actors::WorkerHandle {
    let mut handlers = HandlerRegistry::new();
    register_builtin(&mut handlers);
    let mut settings = WorkerSettings {
        worker_id: "bench".into(),
        ..WorkerSettings::default()
    };
    settings.live.maxjobs = maxjobs;
    Supervisor::start_worker(WorkerDeps {
        hub: Arc::new(hub.clone()),
        runtime: Arc::new(FakeRuntime::default()),
        probe: Arc::new(FakeProbe::default()),
        handlers: Arc::new(handlers),
        notifier: Arc::new(RecordingNotifier::default()),
        settings,
    })
}

fn opened(hub: &FakeHub, id: i64) -> bool {
    hub.task(id).state != TaskState::Free && hub.task(id).state != TaskState::Assigned
}

async fn wait_opened(hub: &FakeHub, id: i64) -> Duration {
    let start = Instant::now();
    while !opened(hub, id) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} min={:?} p50={:?} p90={:?} max={:?}",
        samples.len(),
        samples[0],
        pick(0.5),
        pick(0.9),
        samples[samples.len() - 1]
    );
}

fn main() {
    let system = actix_rt::System::new();
    system.block_on(async {
        // Hot worker: within the fast-poll window after a task ended (real clock).
        let hub = FakeHub::new(HubVersion::new(1, 35, 3));
        let worker = start(&hub, 32);
        let warm = hub.create_task("sleep", vec![json!(0)]);
        while hub.task(warm).state != TaskState::Closed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut seed: u64 = 0x5eed;
        let mut hot = Vec::new();
        for _ in 0..10 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            tokio::time::sleep(Duration::from_millis(seed >> 54)).await;
            let id = hub.create_task("sleep", vec![json!(0)]);
            hot.push(wait_opened(&hub, id).await);
            while hub.task(id).state != TaskState::Closed {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        summary("pickup, fast-poll window (1 s probe)", hot);

        // Burst: 32 tasks assigned at once.
        let rss_before = rss_kib();
        let started = Instant::now();
        let ids: Vec<i64> = (0..32).map(|_| hub.create_task("sleep", vec![json!(5)])).collect();
        for id in &ids {
            wait_opened(&hub, *id).await;
        }
        let all_open = started.elapsed();
        let rss_during = rss_kib();
        println!("burst of 32: all opened after {all_open:?}");
        println!("RSS: {rss_before} KiB idle, {rss_during} KiB with 32 running sleep tasks (in-process fakes included)");
        while ids.iter().any(|id| hub.task(*id).state != TaskState::Closed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.supervisor.do_send(WorkerSignal::Interrupt);
        let _ = worker.exit.await;
    });

    // Idle worker: the poll interval dominates; measured on a paused clock over 20 random
    // assignment times.
    let system = actix_rt::System::new();
    system.block_on(async {
        tokio::time::pause();
        let hub = FakeHub::new(HubVersion::new(1, 35, 3));
        let worker = start(&hub, 32);
        let mut seed: u64 = 42;
        let mut idle = Vec::new();
        for _ in 0..20 {
            // Let the fast window (30 s) run out, then assign at a random moment.
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            tokio::time::sleep(Duration::from_secs(45) + Duration::from_millis(seed >> 50)).await;
            let id = hub.create_task("sleep", vec![json!(0)]);
            let start = tokio::time::Instant::now();
            while !opened(&hub, id) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            idle.push(start.elapsed());
        }
        summary("pickup, idle worker (virtual clock, sleeptime 15 s)", idle);
        worker.supervisor.do_send(WorkerSignal::Interrupt);
        let _ = worker.exit.await;
    });
}
