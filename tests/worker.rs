//! The real `koji-adjutant run` binary against the fake hub (in process) and, where a task
//! needs a container, real podman with the locally built builder image.
//!
//! Every worker here polls with `sleeptime = 2`: kojid's 15 s would make each scenario wait
//! minutes for the next cycle, and the behaviour under test does not depend on the length of
//! the pause (the fast poll is bounded below by 1 s either way).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, NewTask, TaskState, Value};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const HOST: &str = "builder1.local";
const PASSWORD: &str = "builder";

/// Builds (or finds current) the builder image once per test binary.
fn ensure_image() {
    static IMAGE: OnceLock<()> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let output = Command::new(Path::new(ROOT).join("scripts/build-image.sh"))
            .output()
            .expect("run scripts/build-image.sh");
        assert!(
            output.status.success(),
            "scripts/build-image.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

async fn start_hub() -> FakeHub {
    start_hub_with(|_| {}).await
}

async fn start_hub_with(adjust: impl FnOnce(&mut FakeHubConfig)) -> FakeHub {
    let mut config = FakeHubConfig {
        hosts: vec![HostConfig::new(HOST).with_password(PASSWORD)],
        ..FakeHubConfig::default()
    };
    adjust(&mut config);
    FakeHub::start(config).await.expect("start the fake hub")
}

/// One `koji-adjutant run` process with its own config, mockdir and log.
struct Worker {
    child: Child,
    dir: tempfile::TempDir,
    worker_id: String,
    /// Remove this worker's containers when dropped (off for a worker whose successor takes
    /// its containers over).
    clean_up_on_drop: bool,
}

impl Worker {
    /// `extra` is appended to the `[kojid]` section; `adjutant` to `[adjutant]`.
    fn start(hub: &FakeHub, name: &str, extra: &str, adjutant: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let worker_id = format!("wt-{name}-{}", std::process::id());
        Self::start_in(hub, dir, worker_id, extra, adjutant)
    }

    fn start_in(
        hub: &FakeHub,
        dir: tempfile::TempDir,
        worker_id: String,
        extra: &str,
        adjutant: &str,
    ) -> Self {
        let mockdir = dir.path().join("mock");
        std::fs::create_dir_all(&mockdir).unwrap();
        // Test defaults, unless the test sets the key itself.
        let defaults: String = [("sleeptime", "2"), ("minspace", "1"), ("maxjobs", "10")]
            .iter()
            .filter(|(key, _)| !extra.contains(&format!("{key} =")))
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect();
        let config = format!(
            "[kojid]\nserver = {url}\ntopurl = http://127.0.0.1:1/kojifiles\nuser = {HOST}\npassword = {PASSWORD}\n\
             {defaults}mockdir = {mockdir}\nretry_interval = 1\noffline_retry_interval = 2\n\
             workdir = {workdir}\n{extra}\n\
             [adjutant]\nworker_id = {worker_id}\n{monitoring}policy_enabled = false\n{adjutant}\n",
            url = hub.url(),
            mockdir = mockdir.display(),
            workdir = dir.path().join("work").display(),
            // Off unless the test turns it on: workers running side by side would all want
            // the default port.
            monitoring = if adjutant.contains("monitoring_enabled") {
                ""
            } else {
                "monitoring_enabled = false\n"
            },
        );
        let config_path = dir.path().join("kojid.conf");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("worker.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_koji-adjutant"))
            .args(["-c"])
            .arg(&config_path)
            // The load limit is kojid's rule for a build host; on a shared 2-core test machine
            // a compile next door passes it, and the scenarios here are not about load.
            .args(["run", "--fg", "-v", "--max-load", "1000"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start koji-adjutant run");
        Self {
            child,
            dir,
            worker_id,
            clean_up_on_drop: true,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {within:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The containers of this worker for one task, by id.
    fn containers_of(&self, task_id: i64) -> Vec<String> {
        self.containers_where(task_id, "")
    }

    /// The running containers of this worker for one task, by id.
    fn running_containers_of(&self, task_id: i64) -> Vec<String> {
        self.containers_where(task_id, "--filter=status=running")
    }

    fn containers_where(&self, task_id: i64, filter: &str) -> Vec<String> {
        let output = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.ID}}"])
            .args(Some(filter).filter(|filter| !filter.is_empty()))
            .arg(format!(
                "--filter=label=io.koji.adjutant.worker={}",
                self.worker_id
            ))
            .arg(format!("--filter=label=io.koji.adjutant.task_id={task_id}"))
            .output()
            .expect("podman ps");
        assert!(output.status.success(), "podman ps failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.clean_up_on_drop {
            return;
        }
        // A test that failed half-way must not leave containers behind.
        let _ = Command::new("podman")
            .args(["ps", "-aq"])
            .arg(format!(
                "--filter=label=io.koji.adjutant.worker={}",
                self.worker_id
            ))
            .output()
            .map(|output| {
                for id in String::from_utf8_lossy(&output.stdout).lines() {
                    let _ = Command::new("podman").args(["rm", "-f", id]).output();
                }
            });
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails with `what` and the log.
async fn wait_for<T>(
    worker: &Worker,
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; worker log:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state_of(hub: &FakeHub, task_id: i64) -> TaskState {
    hub.task(task_id).expect("the task exists").state
}

fn sleep_task(seconds: i32) -> NewTask {
    NewTask::new("sleep", vec![Value::Integer(seconds)])
}

/// The methods the worker's main session called, in order (`login` as kojid's `sslLogin`:
/// the tests log in with a password, the transcripts with a certificate).
fn main_session_calls(hub: &FakeHub) -> Vec<String> {
    hub.call_log()
        .iter()
        // A login carries no session yet, so the hub cannot name its process.
        .filter(|record| {
            record["direction"] == "request"
                && (record["proc"] == "main" || record["method"] == "login")
        })
        .filter_map(|record| record["method"].as_str())
        .map(|method| match method {
            "login" => "sslLogin".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

fn request_bodies(hub: &FakeHub, method: &str) -> Vec<String> {
    hub.call_log()
        .iter()
        .filter(|record| record["direction"] == "request" && record["method"] == method)
        .filter_map(|record| record["body_xml"].as_str().map(str::to_owned))
        .collect()
}

fn transcript_main_calls(name: &str) -> Vec<String> {
    let path = Path::new(ROOT)
        .join("tests/fixtures/hub-transcripts")
        .join(format!("{name}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["direction"] == "request" && record["proc"] == "main")
        .filter_map(|record| record["method"].as_str().map(str::to_owned))
        .collect()
}

/// `calls` = `prefix`, then cycles, then `suffix`. Each cycle is kojid's `cycle`, or that cycle
/// without its last call (`host.getTasks`) when the host was not ready: kojid does not ask
/// for work then either. (On a busy 2-core test machine the load average can pass kojid's
/// limit of 4 × CPUs for a while.)
fn assert_shape(calls: &[String], prefix: &[String], cycle: &[String], suffix: &[String]) {
    assert!(
        calls.starts_with(prefix),
        "start-up differs:\n ours {calls:?}\n kojid {prefix:?}"
    );
    assert!(
        calls.ends_with(suffix),
        "shutdown differs:\n ours {calls:?}\n kojid {suffix:?}"
    );
    let mut middle = &calls[prefix.len()..calls.len() - suffix.len()];
    let not_ready = &cycle[..cycle.len() - 1];
    let mut full_cycles = 0;
    while !middle.is_empty() {
        if middle.starts_with(cycle) {
            middle = &middle[cycle.len()..];
            full_cycles += 1;
        } else if middle.starts_with(not_ready) {
            middle = &middle[not_ready.len()..];
        } else {
            panic!("an idle cycle differs from kojid's {cycle:?}: {middle:?}");
        }
    }
    assert!(full_cycles > 0, "no complete idle cycle: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_worker_matches_kojids_idle_transcript_call_for_call() {
    let hub = start_hub().await;
    let mut worker = Worker::start(&hub, "idle", "", "");
    wait_for(
        &worker,
        Duration::from_secs(30),
        "three idle cycles",
        || {
            let calls = main_session_calls(&hub);
            (calls.iter().filter(|call| *call == "host.getTasks").count() >= 3).then_some(())
        },
    )
    .await;
    worker.signal(Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}; log:\n{}", worker.log());

    // kojid: sslLogin, exclusiveSession, echo, host.getID, getSessionInfo,
    // [listBuildroots, host.getHostTasks, host.getHost, host.updateHost, host.getTasks] xN,
    // host.freeTasks, host.updateHost, logout.
    let kojid = transcript_main_calls("idle");
    let prefix = &kojid[..5];
    let cycle = &kojid[5..10];
    let suffix = &kojid[kojid.len() - 3..];
    assert_shape(&main_session_calls(&hub), prefix, cycle, suffix);

    // The heartbeat carries kojid's host data; the last one says "not ready".
    let heartbeats = request_bodies(&hub, "host.updateHost");
    assert!(
        heartbeats[0].contains("<name>methods</name>"),
        "{}",
        heartbeats[0]
    );
    assert!(
        heartbeats[0].contains("<name>maxjobs</name>"),
        "{}",
        heartbeats[0]
    );
    let last = heartbeats.last().unwrap();
    assert!(last.contains("<boolean>0</boolean>"), "{last}");
    let host = hub.host(HOST).unwrap();
    assert!(
        !host.ready,
        "the hub still thinks the stopped worker is ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_task_runs_and_closes_with_json_logs() {
    let hub = start_hub().await;
    let task = hub.create_task(sleep_task(1)).unwrap();
    let mut worker = Worker::start(&hub, "sleep", "", "log_format = json");
    wait_for(
        &worker,
        Duration::from_secs(30),
        "the task to close",
        || (state_of(&hub, task) == TaskState::Closed).then_some(()),
    )
    .await;
    let result = hub.task(task).unwrap().result_xml.unwrap();
    assert_eq!(
        result,
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><nil/></value></param>\n</params>\n</methodResponse>\n"
    );
    // The task ran on its own subsession, which the main session closed afterwards.
    let calls = main_session_calls(&hub);
    for expected in [
        "host.openTask",
        "host.setTaskWeight",
        "subsession",
        "logoutChild",
    ] {
        assert!(
            calls.iter().any(|call| call == expected),
            "{expected} missing: {calls:?}"
        );
    }
    let close_from_sub = hub.call_log().iter().any(|record| {
        record["method"] == "host.closeTask"
            && record["direction"] == "request"
            && record["proc"]
                .as_str()
                .is_some_and(|proc| proc.starts_with("sub:"))
    });
    assert!(
        close_from_sub,
        "closeTask was not sent on the task's subsession"
    );

    worker.signal(Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}");
    let log = worker.log();
    let json_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        json_lines.len() > 5 && json_lines.len() == log.lines().count(),
        "not every log line is JSON:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sleep_tasks_respect_maxjobs() {
    let hub = start_hub().await;
    let tasks: Vec<i64> = (0..20)
        .map(|_| hub.create_task(sleep_task(2)).unwrap())
        .collect();
    let mut worker = Worker::start(&hub, "maxjobs", "maxjobs = 3", "");
    let mut most_open = 0;
    wait_for(
        &worker,
        Duration::from_secs(120),
        "all 20 tasks to close",
        || {
            let open = tasks
                .iter()
                .filter(|task| state_of(&hub, **task) == TaskState::Open)
                .count();
            most_open = most_open.max(open);
            tasks
                .iter()
                .all(|task| state_of(&hub, *task) == TaskState::Closed)
                .then_some(())
        },
    )
    .await;
    assert!(
        most_open <= 3,
        "{most_open} tasks ran at once with maxjobs = 3"
    );
    assert!(
        most_open >= 2,
        "the worker never ran tasks side by side ({most_open})"
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_tasks_respect_the_hosts_capacity() {
    let hub = start_hub().await;
    // sleep weighs 0.25: with capacity 0.5 the worker is ready while its load is at most
    // 0.5, so it takes a third task at load 0.5 and then stops (kojid's `task_load <=
    // capacity` rule), well below maxjobs.
    hub.with_state(|state| {
        for host in state.hosts.values_mut() {
            host.capacity = 0.5;
        }
    });
    let tasks: Vec<i64> = (0..8)
        .map(|_| hub.create_task(sleep_task(3)).unwrap())
        .collect();
    let mut worker = Worker::start(&hub, "capacity", "maxjobs = 20", "");
    let mut most_open = 0;
    wait_for(
        &worker,
        Duration::from_secs(120),
        "all 8 tasks to close",
        || {
            let open = tasks
                .iter()
                .filter(|task| state_of(&hub, **task) == TaskState::Open)
                .count();
            most_open = most_open.max(open);
            tasks
                .iter()
                .all(|task| state_of(&hub, *task) == TaskState::Closed)
                .then_some(())
        },
    )
    .await;
    assert!(
        most_open <= 3,
        "{most_open} tasks (load {}) ran at once on a host of capacity 0.5",
        most_open as f64 * 0.25
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_refused() {
    let hub = start_hub().await;
    let task = hub
        .create_task(NewTask::new("noSuchMethod", vec![]))
        .unwrap();
    let mut worker = Worker::start(&hub, "refuse", "", "");
    let refusal = wait_for(&worker, Duration::from_secs(30), "a refusal", || {
        hub.refusals()
            .into_iter()
            .find(|refusal| refusal.task_id == task)
    })
    .await;
    assert!(!refusal.soft, "a missing handler is a hard refusal");
    assert!(refusal.msg.contains("no handler"), "{}", refusal.msg);
    assert!(
        request_bodies(&hub, "host.openTask").is_empty(),
        "the refused task was opened"
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minspace_not_met_means_not_ready() {
    let hub = start_hub().await;
    let mut worker = Worker::start(&hub, "minspace", "minspace = 1000000000", "");
    wait_for(&worker, Duration::from_secs(30), "two heartbeats", || {
        (request_bodies(&hub, "host.updateHost").len() >= 2).then_some(())
    })
    .await;
    let task = hub.create_task(sleep_task(1)).unwrap();
    // Two more cycles: a ready worker would have taken the task by then.
    let seen = request_bodies(&hub, "host.updateHost").len();
    wait_for(
        &worker,
        Duration::from_secs(30),
        "two more heartbeats",
        || (request_bodies(&hub, "host.updateHost").len() >= seen + 2).then_some(()),
    )
    .await;
    for heartbeat in request_bodies(&hub, "host.updateHost") {
        assert!(
            heartbeat.contains("<boolean>0</boolean>"),
            "a heartbeat said ready: {heartbeat}"
        );
    }
    assert!(!hub.host(HOST).unwrap().ready);
    assert_eq!(state_of(&hub, task), TaskState::Free);
    assert!(
        worker.log().contains("Insufficient disk space"),
        "the reason is not logged:\n{}",
        worker.log()
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_expired_is_renewed_and_the_worker_goes_on() {
    let hub = start_hub().await;
    let mut worker = Worker::start(&hub, "renew", "", "");
    wait_for(
        &worker,
        Duration::from_secs(30),
        "the first heartbeat",
        || (!request_bodies(&hub, "host.updateHost").is_empty()).then_some(()),
    )
    .await;
    let main = hub
        .sessions()
        .into_iter()
        .find(|session| session.master.is_none() && session.exclusive && !session.closed)
        .expect("the worker's exclusive session");
    hub.expire_session(main.id);
    wait_for(&worker, Duration::from_secs(30), "a renewal", || {
        request_bodies(&hub, "login")
            .iter()
            .any(|body| body.contains("<name>renew</name>"))
            .then_some(())
    })
    .await;
    // The renewed session keeps its id and its lock: a task still runs and closes.
    let task = hub.create_task(sleep_task(1)).unwrap();
    wait_for(
        &worker,
        Duration::from_secs(30),
        "the task to close",
        || (state_of(&hub, task) == TaskState::Closed).then_some(()),
    )
    .await;
    let session = hub
        .sessions()
        .into_iter()
        .find(|session| session.id == main.id)
        .unwrap();
    assert!(!session.expired && session.exclusive);
    assert_eq!(
        request_bodies(&hub, "login").len(),
        2,
        "the worker logged in afresh instead of renewing"
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_offline_for_30s_during_a_task_is_waited_out() {
    let hub = start_hub().await;
    let task = hub.create_task(sleep_task(3)).unwrap();
    let mut worker = Worker::start(&hub, "offline", "", "");
    wait_for(&worker, Duration::from_secs(30), "the task to open", || {
        (state_of(&hub, task) == TaskState::Open).then_some(())
    })
    .await;
    let outage = Instant::now();
    hub.offline_for(Duration::from_secs(30));
    wait_for(
        &worker,
        Duration::from_secs(90),
        "the task to close",
        || (state_of(&hub, task) == TaskState::Closed).then_some(()),
    )
    .await;
    assert!(
        outage.elapsed() >= Duration::from_secs(29),
        "the task closed during the outage"
    );
    assert!(
        worker.log().contains("hub is offline"),
        "the outage was not logged:\n{}",
        worker.log()
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_frees_running_tasks_and_logs_out() {
    let hub = start_hub().await;
    let task = hub.create_task(sleep_task(600)).unwrap();
    let mut worker = Worker::start(&hub, "sigterm", "", "");
    // Signalled once the handler runs: a SIGTERM between `host.openTask` and the TaskActor's
    // start is a separate case (see docs/worker.md, "Known gaps").
    wait_for(&worker, Duration::from_secs(30), "the task to run", || {
        worker.log().contains("Sleeping for").then_some(())
    })
    .await;
    assert_eq!(state_of(&hub, task), TaskState::Open);
    worker.signal(Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status:?}");
    assert_eq!(state_of(&hub, task), TaskState::Free);
    let freed = request_bodies(&hub, "host.freeTasks");
    assert!(
        freed
            .iter()
            .any(|body| body.contains(&format!("<int>{task}</int>"))),
        "{freed:?}"
    );
    let calls = main_session_calls(&hub);
    assert_eq!(
        calls.last().map(String::as_str),
        Some("logout"),
        "{calls:?}"
    );
    assert!(
        hub.sessions()
            .iter()
            .filter(|session| !session.closed)
            .all(|session| session.user_id != hub.host(HOST).unwrap().user_id),
        "a session of the host is still open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_drain_timeout_lets_the_task_finish() {
    let hub = start_hub().await;
    let task = hub.create_task(sleep_task(4)).unwrap();
    let mut worker = Worker::start(&hub, "drain", "", "drain_timeout = 60");
    // Signalled once the handler runs: a SIGTERM between `host.openTask` and the TaskActor's
    // start is a separate case (see docs/worker.md, "Known gaps").
    wait_for(&worker, Duration::from_secs(30), "the task to run", || {
        worker.log().contains("Sleeping for").then_some(())
    })
    .await;
    assert_eq!(state_of(&hub, task), TaskState::Open);
    worker.signal(Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "exit {status:?}");
    assert_eq!(state_of(&hub, task), TaskState::Closed, "{}", worker.log());
    assert_eq!(
        main_session_calls(&hub).last().map(String::as_str),
        Some("logout")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_tasks_container_is_gone_within_one_poll() {
    ensure_image();
    let hub = start_hub().await;
    let task = hub
        .create_task(NewTask::new(
            "fork",
            vec![Value::Integer(1), Value::Integer(600)],
        ))
        .unwrap();
    let mut worker = Worker::start(&hub, "cancel", "", "");
    wait_for(
        &worker,
        Duration::from_secs(120),
        "the task's container",
        || (!worker.containers_of(task).is_empty()).then_some(()),
    )
    .await;
    let seen_before_cancel = main_session_calls(&hub).len();
    hub.cancel_task(task).unwrap();
    let cancelled = Instant::now();
    // One poll is `sleeptime` (2 s); removing a container takes podman a moment more.
    wait_for(
        &worker,
        Duration::from_secs(2 + 8),
        "the container to go",
        || worker.containers_of(task).is_empty().then_some(()),
    )
    .await;
    let took = cancelled.elapsed();

    // kojid on a cancel (transcript `cancel`): host.getHostTasks no longer lists the task,
    // getTaskInfo(task) confirms it, the task process is killed, then logoutChild.
    let expected = ["host.getHostTasks", "getTaskInfo", "logoutChild"];
    let is_subsequence = |calls: &[String]| {
        let mut wanted = expected.iter().peekable();
        for call in calls {
            if wanted.peek().is_some_and(|name| *name == call) {
                wanted.next();
            }
        }
        wanted.peek().is_none()
    };
    assert!(is_subsequence(&transcript_main_calls("cancel")));
    wait_for(
        &worker,
        Duration::from_secs(10),
        "kojid's cancel sequence",
        || is_subsequence(&main_session_calls(&hub)[seen_before_cancel..]).then_some(()),
    )
    .await;
    // And the task was never reported.
    assert!(request_bodies(&hub, "host.closeTask").is_empty());
    assert!(request_bodies(&hub, "host.failTask").is_empty());
    assert_eq!(state_of(&hub, task), TaskState::Canceled);
    eprintln!("container gone {took:?} after the cancel");

    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_task_then_restart_frees_the_task_and_reaps_the_container() {
    ensure_image();
    let hub = start_hub().await;
    let task = hub
        .create_task(NewTask::new(
            "fork",
            vec![Value::Integer(1), Value::Integer(600)],
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = format!("wt-kill9-{}", std::process::id());
    let config_dir = dir.path().to_owned();
    let mut first = Worker::start_in(&hub, dir, worker_id.clone(), "", "");
    let orphans: BTreeSet<String> = wait_for(
        &first,
        Duration::from_secs(120),
        "the task's container",
        || {
            let ids = first.running_containers_of(task);
            (!ids.is_empty()).then(|| ids.into_iter().collect())
        },
    )
    .await;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        state_of(&hub, task),
        TaskState::Open,
        "the hub lost the task"
    );
    assert_eq!(
        first
            .containers_of(task)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        orphans,
        "the container should outlive a killed worker"
    );
    // Keep the first worker's directory: the second one runs from the same config.
    let kept = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    first.clean_up_on_drop = false;
    drop(first);
    let freed_before = request_bodies(&hub, "host.freeTasks").len();
    let mut second = Worker::start_in(&hub, kept, worker_id, "", "");
    assert!(config_dir.join("kojid.conf").exists());
    wait_for(
        &second,
        Duration::from_secs(60),
        "the old container to be reaped",
        || {
            let now: BTreeSet<String> = second.containers_of(task).into_iter().collect();
            now.is_disjoint(&orphans).then_some(())
        },
    )
    .await;
    // Reconciliation: the hub still says the task is ours and OPEN, no TaskActor runs it.
    wait_for(
        &second,
        Duration::from_secs(30),
        "the old task to be freed",
        || {
            request_bodies(&hub, "host.freeTasks")[freed_before..]
                .iter()
                .any(|body| body.contains(&format!("<int>{task}</int>")))
                .then_some(())
        },
    )
    .await;
    assert!(
        second.log().contains("orphan"),
        "the reaping is not logged:\n{}",
        second.log()
    );
    // The hub gives the task back to this host: it runs again in a fresh container, which
    // does not collide with the old one's name.
    wait_for(
        &second,
        Duration::from_secs(60),
        "the task to run again",
        || {
            let running: BTreeSet<String> =
                second.running_containers_of(task).into_iter().collect();
            (!running.is_empty() && running.is_disjoint(&orphans)).then_some(())
        },
    )
    .await;
    assert_eq!(state_of(&hub, task), TaskState::Open, "{}", second.log());
    second.signal(Signal::SIGTERM);
    assert!(second.wait_exit(Duration::from_secs(60)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_live_settings() {
    let hub = start_hub().await;
    let mut worker = Worker::start(&hub, "reload", "maxjobs = 3", "");
    wait_for(
        &worker,
        Duration::from_secs(30),
        "the first heartbeat",
        || (!request_bodies(&hub, "host.updateHost").is_empty()).then_some(()),
    )
    .await;
    let path: PathBuf = worker.dir.path().join("kojid.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("maxjobs = 3", "maxjobs = 7")).unwrap();
    let before = request_bodies(&hub, "host.updateHost").len();
    worker.signal(Signal::SIGHUP);
    wait_for(
        &worker,
        Duration::from_secs(30),
        "maxjobs 7 in the host data",
        || {
            let published = hub.host(HOST).and_then(|host| host.data)?;
            let heartbeats = request_bodies(&hub, "host.updateHost").len();
            (heartbeats > before && format!("{published:?}").contains("Integer(7)")).then_some(())
        },
    )
    .await;
    assert!(
        worker.log().contains("reloaded the live settings"),
        "{}",
        worker.log()
    );
    worker.signal(Signal::SIGTERM);
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
}

/// The main session is shared by the HubPoller, the PolicyCache and the Supervisor. The hub
/// checks that callnums arrive in order, so the client must serialise calls on one session
/// even when they are made at once from several tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_the_main_session_are_serialised() {
    use koji_adjutant::hub::options::HubOptions;
    use koji_adjutant::worker::HostHubAdapter;
    use koji_adjutant_actors::hub::HostHub;

    let hub = start_hub().await;
    let options = HubOptions {
        server: hub.url(),
        user: Some(HOST.to_owned()),
        password: Some(PASSWORD.to_owned()),
        ..HubOptions::default()
    };
    let adapter = std::sync::Arc::new(
        HostHubAdapter::connect(options, tokio_util::sync::CancellationToken::new())
            .await
            .unwrap(),
    );
    hub.clear_call_log();
    let mut calls = Vec::new();
    for round in 0..20 {
        let poller = std::sync::Arc::clone(&adapter);
        calls.push(tokio::spawn(async move {
            // updateHost stores the callnum on the hub: one arriving out of order is a
            // SequenceError.
            poller.update_host(0.0, round % 2 == 0, None).await
        }));
        let supervisor = std::sync::Arc::clone(&adapter);
        calls.push(tokio::spawn(async move {
            supervisor.get_host_tasks().await.map(|_| ())
        }));
        let policy = std::sync::Arc::clone(&adapter);
        calls.push(tokio::spawn(
            async move { policy.get_host().await.map(|_| ()) },
        ));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let callnums: Vec<i64> = hub
        .call_log()
        .iter()
        .filter(|record| record["direction"] == "request" && record["proc"] == "main")
        .map(|record| {
            record["headers"]["koji-session-callnum"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(callnums.len(), 60);
    assert!(
        callnums.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "callnums reached the hub out of order: {callnums:?}"
    );
}

/// `listChannels(hostID=…)`, which `doctor` calls to show the host's channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_hub_lists_a_hosts_channels() {
    use koji_adjutant::hub::client::HubClient;
    use koji_adjutant::hub::options::HubOptions;

    let hub = start_hub().await;
    let options = HubOptions {
        server: hub.url(),
        user: Some(HOST.to_owned()),
        password: Some(PASSWORD.to_owned()),
        ..HubOptions::default()
    };
    let client = HubClient::connect(options, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    let host_id = client.host_get_id().await.unwrap();
    let names: Vec<String> = client
        .list_channels(host_id)
        .await
        .unwrap()
        .into_iter()
        .map(|channel| channel.name)
        .collect();
    assert_eq!(names, ["default", "createrepo"]);
    let missing = client.list_channels(999).await.unwrap_err();
    assert!(missing.to_string().contains("No such host"), "{missing}");
}

/// Both scheduling protocols through the real binary: a 1.33 hub (`host.getLoadData`, FREE
/// tasks taken by the worker) and a 1.34 hub (`host.getTasks`, host data by `setHostData`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_hubs_get_their_own_scheduling_protocol() {
    use koji_fakehub::HubVersion;

    for (version, task_source, must_not_call) in [
        (HubVersion::V1_33, "host.getLoadData", "host.getTasks"),
        (HubVersion::V1_34, "host.getTasks", "host.getLoadData"),
    ] {
        let hub = start_hub_with(|config| config.version = version).await;
        let task = hub.create_task(sleep_task(1)).unwrap();
        let name = format!("proto{}{}", version.major, version.minor);
        let mut worker = Worker::start(&hub, &name, "", "");
        wait_for(
            &worker,
            Duration::from_secs(60),
            "the task to close",
            || (state_of(&hub, task) == TaskState::Closed).then_some(()),
        )
        .await;
        let calls = main_session_calls(&hub);
        assert!(
            calls.iter().any(|call| call == task_source),
            "{version}: {calls:?}"
        );
        assert!(
            !calls.iter().any(|call| call == must_not_call),
            "{version}: {calls:?}"
        );
        let published = hub.host(HOST).and_then(|host| host.data);
        if version == HubVersion::V1_34 {
            assert!(calls.iter().any(|call| call == "host.setHostData"));
            assert!(
                format!("{published:?}").contains("sleep"),
                "{version}: host data {published:?}"
            );
        } else {
            assert!(!calls.iter().any(|call| call == "host.setHostData"));
        }
        worker.signal(Signal::SIGTERM);
        assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
    }
}

/// SIGTERM with several running tasks: each TaskActor's end makes the Supervisor log its
/// subsession out (a future on its context) while the shutdown waits on `host.freeTasks`.
/// Both queue for the main session; the worker must still exit at once. (Before main-session
/// calls ran detached, about one run in three hung here until systemd's SIGKILL.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_several_running_tasks_exits_at_once() {
    for round in 0..8 {
        let hub = start_hub().await;
        let tasks: Vec<i64> = (0..3)
            .map(|_| hub.create_task(sleep_task(600)).unwrap())
            .collect();
        let mut worker = Worker::start(&hub, &format!("sigterm3-{round}"), "maxjobs = 3", "");
        wait_for(
            &worker,
            Duration::from_secs(30),
            "three running tasks",
            || (worker.log().matches("Sleeping for").count() == 3).then_some(()),
        )
        .await;
        worker.signal(Signal::SIGTERM);
        let status = worker.wait_exit(Duration::from_secs(10)).await;
        assert!(status.success(), "round {round}: exit {status:?}");
        for task in &tasks {
            assert_eq!(state_of(&hub, *task), TaskState::Free, "round {round}");
        }
        assert_eq!(
            main_session_calls(&hub).last().map(String::as_str),
            Some("logout"),
            "round {round}"
        );
    }
}

/// SIGTERM while the hub is offline: the shutdown's hub calls wait for the hub, as kojid's
/// do; a SIGINT then gives up on them after a grace period, so the worker still exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_ends_a_shutdown_the_offline_hub_holds_up() {
    let hub = start_hub().await;
    let task = hub.create_task(sleep_task(600)).unwrap();
    let mut worker = Worker::start(&hub, "offline-stop", "", "");
    wait_for(&worker, Duration::from_secs(30), "the task to run", || {
        worker.log().contains("Sleeping for").then_some(())
    })
    .await;
    hub.offline_for(Duration::from_secs(600));
    worker.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker gave up on the hub without being asked"
    );
    let interrupted = Instant::now();
    worker.signal(Signal::SIGINT);
    let status = worker.wait_exit(Duration::from_secs(40)).await;
    assert!(status.success(), "exit {status:?}");
    assert!(interrupted.elapsed() >= Duration::from_secs(14));
    assert!(
        worker.log().contains("exiting without them"),
        "{}",
        worker.log()
    );
    // The hub never heard of the shutdown: it frees the task after its host timeout.
    assert_eq!(state_of(&hub, task), TaskState::Open);
}

/// A plain HTTP/1.0 GET on 127.0.0.1, so that the test reads the monitoring server as any
/// scraper would; `None` while the server is not listening yet.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_its_status_and_metrics_while_a_task_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap();
    let hub = start_hub().await;
    let task = hub.create_task(sleep_task(6)).unwrap();
    let mut worker = Worker::start(
        &hub,
        "monitoring",
        "",
        &format!("monitoring_enabled = true\nmonitoring_bind = 127.0.0.1:{port}\n"),
    );

    // The running task shows up in the JSON status with its method.
    let status: serde_json::Value = wait_for(
        &worker,
        Duration::from_secs(30),
        "the task on /api/v1/status",
        || {
            let (code, body) = http_get(port, "/api/v1/status")?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            let running = status["tasks"]
                .as_array()?
                .iter()
                .any(|entry| entry["task_id"] == task || entry["id"] == task);
            (code == 200 && running).then_some(status)
        },
    )
    .await;
    assert_eq!(status["api_version"], 1, "{status:#}");

    // Prometheus text with the worker's own metric families.
    let (code, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(metrics.contains("# TYPE"), "{metrics}");
    assert!(metrics.contains("adjutant_"), "{metrics}");
    let (code, _) = http_get(port, "/healthz").expect("/healthz answers");
    assert_eq!(code, 200);

    wait_for(
        &worker,
        Duration::from_secs(30),
        "the task to close",
        || (state_of(&hub, task) == TaskState::Closed).then_some(()),
    )
    .await;
    worker.signal(Signal::SIGTERM);
    let exit = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "exit {exit:?}; log:\n{}", worker.log());
    // The server went down with the worker.
    assert!(http_get(port, "/healthz").is_none());
}
