//! Integration tests of the podman runtime against real podman and the builder image.
//!
//! They need root, podman with runc (scripts/setup-host.sh) and build the image on first use
//! with scripts/build-image.sh, which is a no-op when the image is current.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use koji_adjutant::podman::{LABEL_TASK_ID, LABEL_WORKER, PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::runtime::{
    ContainerHandle, ContainerLease, ContainerRuntime, ContainerSpec, ExecOutcome, ExecSpec,
    LogSink, Mount, NetworkMode, OutputStream, PullPolicy, ResourceLimits, RuntimeError,
    SelinuxLabel,
};
use tokio_util::sync::CancellationToken;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Builds (or finds current) the builder image once per test binary.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let output = std::process::Command::new(Path::new(ROOT).join("scripts/build-image.sh"))
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

/// A sink that remembers when each line arrived.
#[derive(Default)]
struct TimedSink {
    lines: Mutex<Vec<(Instant, OutputStream, String)>>,
}

impl LogSink for TimedSink {
    fn line(&self, stream: OutputStream, line: &str) {
        self.lines
            .lock()
            .unwrap()
            .push((Instant::now(), stream, line.to_owned()));
    }
}

impl TimedSink {
    fn text(&self, stream: OutputStream) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s == stream)
            .map(|(_, _, line)| line.clone())
            .collect()
    }
}

struct Fixture {
    runtime: PodmanRuntime,
    worker: String,
    _run_dir: tempfile::TempDir,
}

/// A failed assertion must not leave containers behind for the next run.
impl Drop for Fixture {
    fn drop(&mut self) {
        let filter = format!("label={LABEL_WORKER}={}", self.worker);
        let listed = podman(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            podman(&["rm", "-f", "-t", "0", "--ignore", id]);
        }
    }
}

impl Fixture {
    fn new(test: &str) -> Self {
        let run_dir = tempfile::tempdir().unwrap();
        let options = PodmanOptions {
            run_dir: run_dir.path().to_path_buf(),
            kill_timeout: Duration::from_secs(10),
            ..PodmanOptions::default()
        };
        Self {
            runtime: PodmanRuntime::new(options),
            worker: format!("t{}-{test}", std::process::id()),
            _run_dir: run_dir,
        }
    }

    fn spec(&self, task: u32) -> ContainerSpec {
        ContainerSpec {
            image: image().to_owned(),
            name: format!("koji-adjutant-{}-{task}-1", self.worker),
            labels: BTreeMap::from([
                (LABEL_WORKER.to_owned(), self.worker.clone()),
                (LABEL_TASK_ID.to_owned(), task.to_string()),
                ("io.koji.adjutant.method".to_owned(), "buildArch".to_owned()),
            ]),
            user: None,
            workdir: None,
            mounts: Vec::new(),
            selinux_label: SelinuxLabel::None,
            env: BTreeMap::new(),
            network: NetworkMode::None,
            cap_add: Vec::new(),
            limits: ResourceLimits::default(),
        }
    }

    async fn started(&self, spec: &ContainerSpec) -> ContainerHandle {
        // A leftover of an aborted earlier run would make create fail.
        podman(&["rm", "-f", "-t", "0", "--ignore", &spec.name]);
        let handle = self.runtime.create(spec).await.expect("create");
        self.runtime.start(&handle).await.expect("start");
        handle
    }

    async fn run(
        &self,
        handle: &ContainerHandle,
        step: ExecSpec,
    ) -> (Result<ExecOutcome, RuntimeError>, Arc<TimedSink>) {
        let sink = Arc::new(TimedSink::default());
        let result = self
            .runtime
            .exec(handle, &step, sink.clone(), CancellationToken::new())
            .await;
        (result, sink)
    }
}

fn step(name: &str, argv: &[&str]) -> ExecSpec {
    ExecSpec {
        step: name.to_owned(),
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        env: BTreeMap::new(),
        user: None,
        workdir: None,
        stdin: None,
        timeout: None,
    }
}

fn sh(name: &str, script: &str) -> ExecSpec {
    step(name, &["sh", "-c", script])
}

fn podman(args: &[&str]) -> std::process::Output {
    std::process::Command::new("podman")
        .args(args)
        .output()
        .expect("run podman")
}

fn exists(name: &str) -> bool {
    podman(&["container", "exists", name]).status.success()
}

/// Waits for a removal that happens in the background (lease drop).
async fn gone_within(name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !exists(name) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    !exists(name)
}

fn exit_code(result: Result<ExecOutcome, RuntimeError>) -> i32 {
    result.expect("the step ran").exit_code
}

#[tokio::test]
async fn create_exec_remove_and_remove_again() {
    let fx = Fixture::new("basic");
    let mut spec = fx.spec(1);
    spec.env.insert("GREETING".into(), "hello world".into());
    let handle = fx.started(&spec).await;
    assert!(exists(&handle.name));

    let (result, sink) = fx
        .run(&handle, sh("greet", "echo \"$GREETING\"; echo oops >&2"))
        .await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(sink.text(OutputStream::Stdout), vec!["hello world"]);
    assert_eq!(sink.text(OutputStream::Stderr), vec!["oops"]);

    let labels = podman(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &handle.name,
    ]);
    let labels = String::from_utf8_lossy(&labels.stdout);
    for key in [
        LABEL_WORKER,
        LABEL_TASK_ID,
        "io.koji.adjutant.method",
        "io.koji.adjutant.created",
    ] {
        assert!(labels.contains(key), "label {key} missing in {labels}");
    }

    // A clashing name is podman's error, and the existing container keeps working.
    let clash = fx.runtime.create(&spec).await.unwrap_err();
    assert!(
        matches!(&clash, RuntimeError::Podman { operation, .. } if operation == "create"),
        "{clash:?}"
    );
    let (result, _) = fx.run(&handle, sh("again", "exit 7")).await;
    assert_eq!(exit_code(result), 7);

    fx.runtime.remove(&handle, true).await.unwrap();
    assert!(!exists(&handle.name));
    // Removal is idempotent.
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn output_is_delivered_while_the_step_runs() {
    let fx = Fixture::new("stream");
    let handle = fx.started(&fx.spec(1)).await;
    let script = "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.2; done";
    let (result, sink) = fx.run(&handle, sh("stream", script)).await;
    let finished = Instant::now();
    assert_eq!(exit_code(result), 0);
    let lines = sink.lines.lock().unwrap().clone();
    let texts: Vec<&str> = lines.iter().map(|(_, _, line)| line.as_str()).collect();
    assert_eq!(
        texts,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"]
    );
    // Six lines 200 ms apart: had they been delivered at the end, they would arrive together.
    let first = lines[0].0;
    let last = lines[5].0;
    assert!(
        last.duration_since(first) >= Duration::from_millis(700),
        "lines arrived within {:?} of each other",
        last.duration_since(first)
    );
    assert!(finished.duration_since(first) >= Duration::from_millis(700));
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn exit_codes_are_the_commands_and_podman_failures_are_errors() {
    let fx = Fixture::new("rc");
    let handle = fx.started(&fx.spec(1)).await;
    for (script, expected) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 42", 42),
        // 125-127 and 255 are also podman's own failure codes; here they are the command's.
        ("exit 125", 125),
        ("exit 255", 255),
        ("no-such-command-here", 127),
        ("kill -KILL $$", 137),
    ] {
        let (result, _) = fx.run(&handle, sh("rc", script)).await;
        assert_eq!(exit_code(result), expected, "script {script:?}");
    }

    // podman exec fails with 127 on a missing working directory: an error, not a status.
    let mut missing_dir = sh("workdir", "true");
    missing_dir.workdir = Some(PathBuf::from("/no/such/dir"));
    let (result, _) = fx.run(&handle, missing_dir).await;
    match result {
        Err(RuntimeError::Podman { operation, .. }) => assert!(operation.contains("workdir")),
        other => panic!("expected a podman failure, got {other:?}"),
    }

    // A stopped container: podman fails with 255, which must not read as the command's 255.
    fx.runtime.kill(&handle).await.unwrap();
    let (result, _) = fx.run(&handle, sh("after-kill", "true")).await;
    assert!(
        matches!(result, Err(RuntimeError::Podman { .. })),
        "{result:?}"
    );
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn stdin_is_passed_to_the_step() {
    let fx = Fixture::new("stdin");
    let handle = fx.started(&fx.spec(1)).await;
    let mut cat = step("cat", &["tr", "a-z", "A-Z"]);
    cat.stdin = Some(b"spec file\n".to_vec());
    let (result, sink) = fx.run(&handle, cat).await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(sink.text(OutputStream::Stdout), vec!["SPEC FILE"]);
    fx.runtime.remove(&handle, true).await.unwrap();
}

/// Counts processes inside the container whose command line matches `pattern` (a bracket in
/// the pattern keeps pgrep's own wrapper from matching).
async fn count_inside(fx: &Fixture, handle: &ContainerHandle, pattern: &str) -> usize {
    let (result, sink) = fx
        .run(handle, step("pgrep", &["pgrep", "-c", "-f", pattern]))
        .await;
    result.expect("pgrep ran");
    sink.text(OutputStream::Stdout)
        .first()
        .and_then(|count| count.trim().parse().ok())
        .expect("pgrep printed a count")
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_inside_the_container() {
    let fx = Fixture::new("timeout");
    let handle = fx.started(&fx.spec(1)).await;
    let mut slow = sh("rpmbuild", "sleep 31 & sleep 32; echo never");
    slow.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let (result, sink) = fx.run(&handle, slow).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    match result {
        Err(RuntimeError::StepTimeout { step, limit }) => {
            assert_eq!(step, "rpmbuild");
            assert_eq!(limit, Duration::from_secs(1));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(sink.text(OutputStream::Stdout).is_empty());
    // Both the step and the child it put in the background are gone; the container lives on.
    assert_eq!(count_inside(&fx, &handle, "slee[p] 3[12]").await, 0);
    let (result, _) = fx.run(&handle, sh("after", "true")).await;
    assert_eq!(exit_code(result), 0);
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_step_is_killed_inside_the_container() {
    let fx = Fixture::new("cancel");
    let handle = fx.started(&fx.spec(1)).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        trigger.cancel();
    });
    let mut slow = sh("build", "sleep 33");
    slow.user = Some("1000".into());
    let result = fx
        .runtime
        .exec(&handle, &slow, Arc::new(TimedSink::default()), cancel)
        .await;
    assert!(
        matches!(&result, Err(RuntimeError::Cancelled { step }) if step == "build"),
        "{result:?}"
    );
    assert_eq!(count_inside(&fx, &handle, "slee[p] 33").await, 0);
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn build_steps_run_as_uid_1000() {
    let fx = Fixture::new("uid");
    let mut spec = fx.spec(1);
    spec.user = Some("1000".into());
    let handle = fx.started(&spec).await;
    let (result, sink) = fx.run(&handle, step("id", &["id", "-u"])).await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(sink.text(OutputStream::Stdout), vec!["1000"]);
    // A step can still run as root when it asks to (dnf must).
    let mut as_root = step("id", &["id", "-u"]);
    as_root.user = Some("0".into());
    let (result, sink) = fx.run(&handle, as_root).await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(sink.text(OutputStream::Stdout), vec!["0"]);
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn network_none_cannot_reach_a_listening_host_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let connect = format!(
        "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
    );
    let fx = Fixture::new("net");

    let offline = fx.started(&fx.spec(1)).await;
    let (result, sink) = fx
        .run(&offline, step("connect", &["python3", "-c", &connect]))
        .await;
    assert_ne!(exit_code(result), 0);
    assert!(sink.text(OutputStream::Stdout).is_empty());

    // The same connect succeeds with the host's network, so the check above can fail.
    let mut online_spec = fx.spec(2);
    online_spec.network = NetworkMode::Host;
    let online = fx.started(&online_spec).await;
    let (result, sink) = fx
        .run(&online, step("connect", &["python3", "-c", &connect]))
        .await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(sink.text(OutputStream::Stdout), vec!["connected"]);
    drop(listener);
    fx.runtime.remove(&offline, true).await.unwrap();
    fx.runtime.remove(&online, true).await.unwrap();
}

#[tokio::test]
async fn host_secrets_are_not_visible_and_mounts_are_read_only() {
    let secrets = tempfile::tempdir().unwrap();
    let cert = secrets.path().join("client.pem");
    std::fs::write(&cert, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("repo.txt"), "repo\n").unwrap();

    let fx = Fixture::new("secret");
    let mut spec = fx.spec(1);
    spec.mounts.push(Mount {
        source: shared.path().to_path_buf(),
        target: PathBuf::from("/mnt/koji"),
        read_only: true,
    });
    let handle = fx.started(&spec).await;
    let cert_path = cert.display().to_string();
    let (result, _) = fx
        .run(&handle, step("look", &["test", "-e", &cert_path]))
        .await;
    assert_eq!(
        exit_code(result),
        1,
        "{cert_path} is visible in the container"
    );
    let (result, _) = fx
        .run(
            &handle,
            sh(
                "grep",
                "grep -rl 'PRIVATE KEY' /mnt /tmp /run /home 2>/dev/null",
            ),
        )
        .await;
    assert_eq!(
        exit_code(result),
        1,
        "the key's content is readable in the container"
    );

    let (result, sink) = fx
        .run(&handle, step("read", &["cat", "/mnt/koji/repo.txt"]))
        .await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(sink.text(OutputStream::Stdout), vec!["repo"]);
    let (result, _) = fx.run(&handle, sh("write", "echo x > /mnt/koji/new")).await;
    assert_ne!(exit_code(result), 0);
    assert!(!shared.path().join("new").exists());
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn pull_policy_never_names_the_missing_image() {
    let fx = Fixture::new("pull");
    let missing = "localhost/koji-adjutant-no-such-image:never";
    let err = fx
        .runtime
        .ensure_image(missing, PullPolicy::Never)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RuntimeError::ImageUnavailable { .. }));
    assert!(message.contains(missing), "{message}");
    assert!(message.contains("never"), "{message}");

    // Present images are fine under never and if-not-present, without a registry.
    fx.runtime
        .ensure_image(image(), PullPolicy::Never)
        .await
        .unwrap();
    fx.runtime
        .ensure_image(image(), PullPolicy::IfNotPresent)
        .await
        .unwrap();

    // A pull that cannot work reports podman's own message.
    let err = fx
        .runtime
        .ensure_image("localhost:1/koji-adjutant/nothing:1", PullPolicy::Always)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("always") && message.contains("podman pull failed"),
        "{message}"
    );
}

#[tokio::test]
async fn inspect_image_gives_the_id_digest_and_labels_podman_knows() {
    let fx = Fixture::new("inspect");
    let info = fx.runtime.inspect_image(image()).await.unwrap();
    let inspect = |format: &str| {
        let output = podman(&["image", "inspect", "--format", format, image()]);
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(info.id, inspect("{{.Id}}"));
    assert_eq!(info.digest, inspect("{{.Digest}}"));
    assert!(info.digest.starts_with("sha256:"), "{info:?}");
    assert!(!info.created.is_empty(), "{info:?}");
    // scripts/build-image.sh labels the image with its recipe hash.
    assert!(
        info.labels
            .keys()
            .any(|key| key.starts_with("io.koji.adjutant.builder")),
        "{info:?}"
    );

    let missing = "localhost/koji-adjutant-no-such-image:inspect";
    let err = fx.runtime.inspect_image(missing).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::ImageUnavailable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(missing), "{err}");
}

#[tokio::test]
async fn orphan_reaping_spares_live_and_other_workers_containers() {
    let mine = Fixture::new("reap-a");
    let other = Fixture::new("reap-b");
    podman(&["rm", "-f", "--ignore", &mine.spec(1).name]);
    // Created but never started: reaping must handle every state.
    let live = mine.runtime.create(&mine.spec(1)).await.unwrap();
    let orphan = mine.started(&mine.spec(2)).await;
    let foreign = other.started(&other.spec(3)).await;

    let owned = mine.runtime.list_owned(&mine.worker).await.unwrap();
    let mut names: Vec<&str> = owned.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, vec![live.name.as_str(), orphan.name.as_str()]);

    let keep = HashSet::from([live.name.clone()]);
    let removed = mine
        .runtime
        .reap_orphans(&mine.worker, &keep)
        .await
        .unwrap();
    assert_eq!(removed, vec![orphan.name.clone()]);
    assert!(!exists(&orphan.name));
    assert!(exists(&live.name));
    assert!(exists(&foreign.name));

    mine.runtime.remove(&live, true).await.unwrap();
    other.runtime.remove(&foreign, true).await.unwrap();
}

#[tokio::test]
async fn a_lease_removes_its_container_however_the_owner_ends() {
    let fx = Fixture::new("lease");
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(fx.runtime.clone());

    // Success: the owner removes explicitly.
    let spec = fx.spec(1);
    podman(&["rm", "-f", "--ignore", &spec.name]);
    let lease = ContainerLease::create(runtime.clone(), &spec)
        .await
        .unwrap();
    runtime.start(lease.container()).await.unwrap();
    lease.remove().await.unwrap();
    assert!(!exists(&spec.name));

    // Failure: the owner returns an error early and the lease is dropped.
    let spec = fx.spec(2);
    podman(&["rm", "-f", "--ignore", &spec.name]);
    let failing = async {
        let lease = ContainerLease::create(runtime.clone(), &spec)
            .await
            .map_err(|err| err.to_string())?;
        runtime
            .start(lease.container())
            .await
            .map_err(|err| err.to_string())?;
        let outcome = runtime
            .exec(
                lease.container(),
                &sh("fail", "exit 3"),
                Arc::new(TimedSink::default()),
                CancellationToken::new(),
            )
            .await
            .map_err(|err| err.to_string())?;
        Err::<(), String>(format!("step failed with {}", outcome.exit_code))
    };
    assert!(failing.await.is_err());
    assert!(gone_within(&spec.name, Duration::from_secs(20)).await);

    // A panic in the owner.
    let spec = fx.spec(3);
    podman(&["rm", "-f", "--ignore", &spec.name]);
    let (owner_runtime, owner_spec) = (runtime.clone(), spec.clone());
    let owner = tokio::spawn(async move {
        let lease = ContainerLease::create(owner_runtime.clone(), &owner_spec)
            .await
            .unwrap();
        owner_runtime.start(lease.container()).await.unwrap();
        panic!(
            "the owner panics while holding {:?}",
            lease.container().name
        );
    });
    assert!(owner.await.unwrap_err().is_panic());
    assert!(gone_within(&spec.name, Duration::from_secs(20)).await);

    // The owner's future is dropped in the middle of a step.
    let spec = fx.spec(4);
    podman(&["rm", "-f", "--ignore", &spec.name]);
    let (owner_runtime, owner_spec) = (runtime.clone(), spec.clone());
    let owner = async move {
        let lease = ContainerLease::create(owner_runtime.clone(), &owner_spec)
            .await
            .unwrap();
        owner_runtime.start(lease.container()).await.unwrap();
        let _ = owner_runtime
            .exec(
                lease.container(),
                &sh("long", "sleep 120"),
                Arc::new(TimedSink::default()),
                CancellationToken::new(),
            )
            .await;
    };
    let dropped = tokio::time::timeout(Duration::from_secs(4), owner).await;
    assert!(dropped.is_err(), "the owner should still have been running");
    assert!(gone_within(&spec.name, Duration::from_secs(20)).await);
}

#[tokio::test]
async fn out_of_memory_is_reported_with_the_limit() {
    let fx = Fixture::new("oom");
    let mut spec = fx.spec(1);
    spec.limits.memory = Some(64 << 20);
    let handle = fx.started(&spec).await;
    let hog = step(
        "rpmbuild",
        &["python3", "-c", "b = b'x' * (400 << 20); print(len(b))"],
    );
    let (result, _) = fx.run(&handle, hog).await;
    match result {
        Err(err @ RuntimeError::OutOfMemory { .. }) => {
            assert_eq!(err.to_string(), "out of memory (limit 64 MiB)");
        }
        other => panic!("expected out of memory, got {other:?}"),
    }
    // conmon's `oom` marker goes to the container's step directory, not the worker's cwd.
    assert!(!Path::new(ROOT).join("oom").exists());
    // Small steps still work in the same container.
    let (result, _) = fx.run(&handle, sh("after", "true")).await;
    assert_eq!(exit_code(result), 0);
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn a_container_with_exhausted_pids_can_still_be_killed_and_removed() {
    let fx = Fixture::new("pids");
    let mut spec = fx.spec(1);
    spec.limits.pids = Some(24);
    let handle = fx.started(&spec).await;
    let runtime = fx.runtime.clone();
    let filler_handle = handle.clone();
    let filler = tokio::spawn(async move {
        let mut fill = sh(
            "fill",
            "i=0; while [ $i -lt 64 ]; do sleep 300 & i=$((i+1)); done; sleep 300",
        );
        fill.timeout = Some(Duration::from_secs(60));
        runtime
            .exec(
                &filler_handle,
                &fill,
                Arc::new(TimedSink::default()),
                CancellationToken::new(),
            )
            .await
    });
    // Once the filler has used up the pids, no new exec fits, and podman's failure (rc 255)
    // must not read as the command's status. Until then a probe simply succeeds; how long
    // filling takes depends on the machine's load, so poll instead of guessing a delay.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (result, _) = fx.run(&handle, sh("probe", "true")).await;
        match result {
            Err(RuntimeError::Podman { .. }) => break,
            Ok(ExecOutcome { exit_code: 0, .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("expected podman to fail once the pids are used up, got {other:?}"),
        }
    }

    let started = Instant::now();
    fx.runtime.kill(&handle).await.unwrap();
    fx.runtime.remove(&handle, true).await.unwrap();
    assert!(!exists(&handle.name));
    assert!(started.elapsed() < Duration::from_secs(20));
    let filler = tokio::time::timeout(Duration::from_secs(20), filler).await;
    assert!(
        filler.is_ok(),
        "the filling step's client did not end with its container"
    );
}

/// Builds the test SRPMs on the host into `dir`.
fn build_srpms(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for package in ["hello-noarch", "hello-c"] {
        let sources = Path::new(ROOT).join("tests/data/srpms").join(package);
        let topdir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("rpmbuild")
            .arg("-bs")
            .arg("--define")
            .arg(format!("_topdir {}", topdir.path().display()))
            .arg("--define")
            .arg(format!("_sourcedir {}", sources.display()))
            .arg(sources.join(format!("{package}.spec")))
            .output()
            .expect("rpmbuild on the host (apt-get install rpm)");
        assert!(
            output.status.success(),
            "rpmbuild -bs {package}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let name = format!("{package}-1.0-1.src.rpm");
        std::fs::copy(topdir.path().join("SRPMS").join(&name), dir.join(&name)).unwrap();
        names.push(name);
    }
    names
}

#[tokio::test]
async fn rpmbuild_createrepo_and_dnf_work_in_the_builder_image() {
    let taskdir = tempfile::tempdir().unwrap();
    let srpms = build_srpms(taskdir.path());
    // The build user owns the task directory, as the worker arranges for real tasks.
    nix::unistd::chown(
        taskdir.path(),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();

    let fx = Fixture::new("rpm");
    let mut spec = fx.spec(1);
    spec.mounts.push(Mount {
        source: taskdir.path().to_path_buf(),
        target: PathBuf::from("/builddir"),
        read_only: false,
    });
    spec.workdir = Some(PathBuf::from("/builddir"));
    // What a root dnf step needs after --cap-drop=ALL.
    spec.cap_add = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "SETUID",
        "SETGID",
    ]
    .map(String::from)
    .to_vec();
    let handle = fx.started(&spec).await;

    for srpm in &srpms {
        let mut rebuild = step(
            "rpmbuild",
            &["rpmbuild", "--rebuild", "--define", "_topdir /builddir/top"],
        );
        rebuild.argv.push(format!("/builddir/{srpm}"));
        rebuild.user = Some("1000".into());
        let (result, sink) = fx.run(&handle, rebuild).await;
        let log = sink.text(OutputStream::Stderr).join("\n");
        assert_eq!(exit_code(result), 0, "rpmbuild --rebuild {srpm}:\n{log}");
    }
    assert!(
        taskdir
            .path()
            .join("top/RPMS/noarch/hello-noarch-1.0-1.noarch.rpm")
            .exists()
    );
    assert!(
        taskdir
            .path()
            .join("top/RPMS/x86_64/hello-c-1.0-1.x86_64.rpm")
            .exists()
    );

    let mut createrepo = step("createrepo", &["createrepo_c", "/builddir/top/RPMS"]);
    createrepo.user = Some("1000".into());
    let (result, _) = fx.run(&handle, createrepo).await;
    assert_eq!(exit_code(result), 0);
    assert!(taskdir.path().join("top/RPMS/repodata/repomd.xml").exists());

    std::fs::write(
        taskdir.path().join("result.repo"),
        "[result]\nname=result\nbaseurl=file:///builddir/top/RPMS\ngpgcheck=0\n",
    )
    .unwrap();
    let mut install = step(
        "install",
        &[
            "dnf",
            "-y",
            "--setopt=reposdir=/builddir",
            "--repo=result",
            "install",
            "hello-c",
            "hello-noarch",
        ],
    );
    install.user = Some("0".into());
    let (result, sink) = fx.run(&handle, install).await;
    let log = [
        sink.text(OutputStream::Stdout),
        sink.text(OutputStream::Stderr),
    ]
    .concat()
    .join("\n");
    assert_eq!(exit_code(result), 0, "dnf install:\n{log}");
    let (result, sink) = fx.run(&handle, sh("run", "hello-c && hello-noarch")).await;
    assert_eq!(exit_code(result), 0);
    assert_eq!(
        sink.text(OutputStream::Stdout),
        vec!["hello from C", "hello from noarch"]
    );
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[tokio::test]
async fn doctor_reports_podman_facts_images_and_leftovers() {
    let fx = Fixture::new("doctor");
    let leftover = fx.started(&fx.spec(1)).await;
    let checks = fx
        .runtime
        .doctor_checks(
            &fx.worker,
            &[
                (image().to_owned(), PullPolicy::Never),
                (
                    "localhost/koji-adjutant-absent:1".to_owned(),
                    PullPolicy::Never,
                ),
            ],
        )
        .await;
    let find = |name: &str| {
        checks
            .iter()
            .find(|check| check.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
    };
    use koji_adjutant::doctor::CheckStatus;
    assert_eq!(find("podman").status, CheckStatus::Ok);
    assert!(find("podman runtime").detail.contains("runc"));
    assert_eq!(find("podman mode").detail, "rootful");
    assert_eq!(find("resource limits").status, CheckStatus::Ok);
    assert_eq!(find(&format!("image {}", image())).status, CheckStatus::Ok);
    assert_eq!(
        find("image localhost/koji-adjutant-absent:1").status,
        CheckStatus::Fail
    );
    let containers = find("containers");
    assert_eq!(containers.status, CheckStatus::Warn);
    assert!(containers.detail.contains(&leftover.name));
    fx.runtime.remove(&leftover, true).await.unwrap();
}

#[tokio::test]
async fn stop_gives_running_steps_a_sigterm_and_the_grace_period() {
    let shared = tempfile::tempdir().unwrap();
    nix::unistd::chown(
        shared.path(),
        Some(nix::unistd::Uid::from_raw(1000)),
        Some(nix::unistd::Gid::from_raw(1000)),
    )
    .unwrap();
    let fx = Fixture::new("stop");
    let mut spec = fx.spec(1);
    spec.mounts.push(Mount {
        source: shared.path().to_path_buf(),
        target: PathBuf::from("/builddir"),
        read_only: false,
    });
    let handle = fx.started(&spec).await;
    let runtime = fx.runtime.clone();
    let step_handle = handle.clone();
    let build = tokio::spawn(async move {
        let mut build = sh(
            "build",
            "trap 'echo terminated > /builddir/term; exit 143' TERM; touch /builddir/ready; sleep 60 & wait",
        );
        build.user = Some("1000".into());
        runtime
            .exec(
                &step_handle,
                &build,
                Arc::new(TimedSink::default()),
                CancellationToken::new(),
            )
            .await
    });
    // Stop only once the step has set its trap: on a loaded machine a fixed delay raced it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shared.path().join("ready").exists() {
        assert!(Instant::now() < deadline, "the step never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    fx.runtime
        .stop(&handle, Duration::from_secs(10))
        .await
        .unwrap();
    // The step exits on its SIGTERM, well before the grace period ends.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(shared.path().join("term")).unwrap(),
        "terminated\n"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(10), build)
        .await
        .expect("the step's client ended")
        .unwrap();
    assert_eq!(outcome.unwrap().exit_code, 143);
    let state = podman(&["inspect", "--format", "{{.State.Status}}", &handle.name]);
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "exited");
    fx.runtime.remove(&handle, true).await.unwrap();
}

#[test]
fn the_image_script_is_a_no_op_when_current_and_a_failed_build_changes_nothing() {
    let image = image();
    let id_of = |name: &str| {
        String::from_utf8_lossy(&podman(&["image", "inspect", "--format", "{{.Id}}", name]).stdout)
            .trim()
            .to_owned()
    };
    let before = id_of(image);
    let script = Path::new(ROOT).join("scripts/build-image.sh");

    let started = Instant::now();
    let output = std::process::Command::new(&script).output().unwrap();
    assert!(output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no-op took {:?}",
        started.elapsed()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), image);
    assert!(String::from_utf8_lossy(&output.stderr).contains("is current"));

    // A recipe that cannot be built (unknown package) fails without touching the image and
    // without leaving its temporary tag behind.
    let target = "localhost/koji-adjutant-builder:broken-recipe-test";
    let output = std::process::Command::new(&script)
        .args(["--image", target])
        .env("PACKAGES", "koji-adjutant-no-such-package")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("previous image (if any) is untouched"),
        "{stderr}"
    );
    assert!(!podman(&["image", "exists", target]).status.success());
    assert_eq!(id_of(image), before);
    let names = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        !String::from_utf8_lossy(&names.stdout).contains(":building-"),
        "a temporary tag was left behind"
    );
}
