//! The podman runtime: implements [`ContainerRuntime`] by driving the podman CLI through
//! `tokio::process` (never the REST socket). The only module that spawns processes.
//!
//! How a task container is run (see docs/podman.md for the operator's view):
//! * `create` makes a container whose main process is `sleep infinity` under podman's `--init`
//!   (so stop/kill act at once), with `--cap-drop=ALL`, `no-new-privileges`, `--pull=never` and
//!   a per-container step directory bind-mounted at [`STEP_DIR_IN_CONTAINER`].
//! * every step is a `podman exec` of a small sh wrapper that writes the step's pid and exit
//!   status into that directory; the host reads them, so podman's own failures (125–127, 255)
//!   are never mistaken for the command's status.
//! * cancelling or timing out a step kills its processes inside the container (killing the
//!   `podman exec` client would leave them running), falling back to killing the container.

mod cli;
mod doctor;
mod host;
mod info;
mod options;
mod step;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koji_adjutant_actors::runtime::{
    ContainerHandle, ContainerRuntime, ContainerSpec, ContainerSummary, ExecOutcome, ExecSpec,
    ImageInfo, LogSink, NetworkMode, OutputStream, PullPolicy, ResourceLimits, RuntimeError,
    SelinuxLabel,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub use host::{
    HOST_COMMAND_PATH, HostCommand, HostCommandRunner, find_host_program, host_repo_tool_checks,
};
pub use info::{LimitSupport, PodmanFacts};
pub use options::{PodmanOptions, STEP_DIR_IN_CONTAINER};

pub use koji_adjutant_actors::runtime::{LABEL_CREATED, LABEL_METHOD, LABEL_TASK_ID, LABEL_WORKER};

/// What the runtime remembers about a container it created.
#[derive(Debug, Clone, Default)]
struct ContainerState {
    memory_limit: Option<u64>,
    /// The file whose `oom_kill N` line counts OOM kills in the container's memory cgroup.
    oom_counter: Option<PathBuf>,
    /// Said once, in the first step's log, when requested limits could not be applied.
    limits_note: Option<String>,
}

struct Inner {
    options: PodmanOptions,
    facts: OnceCell<PodmanFacts>,
    containers: Mutex<HashMap<String, ContainerState>>,
    step_counter: AtomicU64,
}

/// The podman CLI runtime. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct PodmanRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PodmanRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanRuntime")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// How a running step ended, before its status file is read.
enum StepEnd {
    Exited(i32),
    TimedOut(Duration),
    Cancelled,
}

impl PodmanRuntime {
    pub fn new(options: PodmanOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                facts: OnceCell::new(),
                containers: Mutex::new(HashMap::new()),
                step_counter: AtomicU64::new(0),
            }),
        }
    }

    pub fn options(&self) -> &PodmanOptions {
        &self.inner.options
    }

    fn program(&self) -> &Path {
        &self.inner.options.podman
    }

    async fn podman<I, S>(&self, operation: &str, args: I) -> Result<cli::Output, RuntimeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        cli::run_ok(
            self.program(),
            operation,
            args,
            self.inner.options.command_timeout,
            self.podman_cwd(),
        )
        .await
    }

    /// Where podman (and the conmon it starts) runs: the run directory once it exists, so that
    /// conmon's `oom` marker files never land in the worker's own working directory.
    fn podman_cwd(&self) -> Option<&Path> {
        let run_dir = self.inner.options.run_dir.as_path();
        run_dir.is_dir().then_some(run_dir)
    }

    /// Reads `podman info` once; the first call logs (once) the limits this host cannot apply.
    /// Call it at start-up so that the warning appears there rather than at the first task.
    pub async fn probe(&self) -> Result<&PodmanFacts, RuntimeError> {
        self.inner
            .facts
            .get_or_try_init(|| async {
                tokio::fs::create_dir_all(&self.inner.options.run_dir)
                    .await
                    .map_err(|err| RuntimeError::Spawn {
                        program: "koji-adjutant".to_owned(),
                        message: format!(
                            "cannot create the run directory {}: {err}; set run_dir in the \
                             podman options to a directory the worker can write",
                            self.inner.options.run_dir.display()
                        ),
                    })?;
                let output = self.podman("info", ["info", "--format", "json"]).await?;
                let facts = PodmanFacts::from_info_json(&output.stdout).map_err(|err| {
                    RuntimeError::Podman {
                        operation: "info".to_owned(),
                        status: output.status,
                        message: err.to_string(),
                    }
                })?;
                tracing::info!(facts = %facts.summary(), "podman runtime ready");
                if !facts.limits.all() {
                    tracing::warn!(
                        missing = ?facts.limits.missing(),
                        cgroup = %facts.cgroup_version,
                        rootless = facts.rootless,
                        "podman cannot apply these resource limits on this host; containers \
                         will run without them (rootful podman on cgroup v2, or delegated \
                         controllers, fix this)"
                    );
                }
                Ok(facts)
            })
            .await
    }

    /// The facts read by [`Self::probe`], once it has run (for `/status` snapshots).
    pub fn facts(&self) -> Option<&PodmanFacts> {
        self.inner.facts.get()
    }

    fn state(&self, name: &str) -> ContainerState {
        self.inner
            .containers
            .lock()
            .map(|map| map.get(name).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn update_state(&self, name: &str, update: impl FnOnce(&mut ContainerState)) {
        if let Ok(mut map) = self.inner.containers.lock() {
            update(map.entry(name.to_owned()).or_default());
        }
    }

    fn step_dir(&self, name: &str) -> PathBuf {
        self.inner.options.run_dir.join(name)
    }

    /// Builds the `podman create` argument list, and the note on limits that were dropped.
    fn create_args(
        &self,
        spec: &ContainerSpec,
        facts: &PodmanFacts,
        step_dir: &Path,
    ) -> Result<(Vec<String>, ResourceLimits, Option<String>), RuntimeError> {
        validate_spec(spec)?;
        let options = &self.inner.options;
        let mut args: Vec<String> = vec![
            "create".into(),
            "--name".into(),
            spec.name.clone(),
            // ensure_image is the only place that pulls: a missing image fails fast here
            // instead of podman 4.3 trying https://localhost/v2/ three times.
            "--pull=never".into(),
            "--init".into(),
            "--cap-drop=ALL".into(),
            "--security-opt".into(),
            "no-new-privileges".into(),
        ];
        let mut caps: Vec<String> = options.required_caps.clone();
        for cap in &spec.cap_add {
            if !caps.iter().any(|known| known.eq_ignore_ascii_case(cap)) {
                caps.push(cap.clone());
            }
        }
        for cap in caps {
            args.push(format!("--cap-add={cap}"));
        }
        args.push(format!(
            "--network={}",
            match &spec.network {
                NetworkMode::None => "none",
                NetworkMode::Host => "host",
                NetworkMode::Named(name) => name.as_str(),
            }
        ));

        let mut labels: BTreeMap<String, String> = options.labels.clone();
        labels.extend(spec.labels.clone());
        labels.entry(LABEL_CREATED.to_owned()).or_insert_with(|| {
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        for (key, value) in &labels {
            args.push("--label".into());
            args.push(format!("{key}={value}"));
        }
        if let Some(user) = &spec.user {
            args.push(format!("--user={user}"));
        }
        if let Some(workdir) = &spec.workdir {
            args.push(format!("--workdir={}", workdir.display()));
        }
        let relabel = match spec.selinux_label {
            SelinuxLabel::Shared => Some("z"),
            SelinuxLabel::Private => Some("Z"),
            SelinuxLabel::None => None,
        };
        let mount_arg = |source: &Path, target: &Path, read_only: bool| {
            let mut flags = vec![if read_only { "ro" } else { "rw" }];
            flags.extend(relabel);
            format!(
                "--volume={}:{}:{}",
                source.display(),
                target.display(),
                flags.join(",")
            )
        };
        for mount in &spec.mounts {
            args.push(mount_arg(&mount.source, &mount.target, mount.read_only));
        }
        // Always a private label: the directory belongs to this container alone, and on an
        // enforcing SELinux host an unlabelled one would make every step look like a podman
        // failure (no status file). Without SELinux `Z` does nothing.
        args.push(format!(
            "--volume={}:{STEP_DIR_IN_CONTAINER}:rw,Z",
            step_dir.display()
        ));
        for (key, value) in &spec.env {
            args.push(format!("--env={key}={value}"));
        }

        let wanted = ResourceLimits {
            memory: spec.limits.memory.or(options.default_limits.memory),
            cpus: spec.limits.cpus.or(options.default_limits.cpus),
            pids: spec.limits.pids.or(options.default_limits.pids),
        };
        let mut applied = ResourceLimits::default();
        let mut dropped = Vec::new();
        if let Some(memory) = wanted.memory {
            if facts.limits.memory {
                // Same value for memory+swap: a build must not page its way past the limit.
                args.push(format!("--memory={memory}b"));
                args.push(format!("--memory-swap={memory}b"));
                applied.memory = Some(memory);
            } else {
                dropped.push(format!("memory {}", human_bytes(memory)));
            }
        }
        if let Some(cpus) = wanted.cpus {
            if facts.limits.cpu {
                args.push(format!("--cpus={cpus}"));
                applied.cpus = Some(cpus);
            } else {
                dropped.push(format!("cpus {cpus}"));
            }
        }
        if let Some(pids) = wanted.pids {
            if facts.limits.pids {
                args.push(format!("--pids-limit={pids}"));
                applied.pids = Some(pids);
            } else {
                dropped.push(format!("pids {pids}"));
            }
        }
        if let Some(lifetime) = options.container_lifetime {
            args.push(format!("--timeout={}", lifetime.as_secs().max(1)));
        }
        args.push(spec.image.clone());
        args.push("sleep".into());
        args.push("infinity".into());
        let note = (!dropped.is_empty()).then(|| {
            format!(
                "koji-adjutant: this host's podman ({}) cannot apply these limits, the task runs \
                 without them: {}",
                facts.summary(),
                dropped.join(", ")
            )
        });
        Ok((args, applied, note))
    }

    /// The container's init pid, and from it the host file that counts its OOM kills.
    async fn find_oom_counter(&self, name: &str) -> Option<PathBuf> {
        let output = self
            .podman("inspect", ["inspect", "--format", "{{.State.Pid}}", name])
            .await
            .ok()?;
        let pid: u32 = output.stdout.trim().parse().ok()?;
        let cgroups = tokio::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .await
            .ok()?;
        oom_counter_path(&cgroups).filter(|path| path.exists())
    }

    async fn read_oom_kills(path: &Path) -> Option<u64> {
        let text = tokio::fs::read_to_string(path).await.ok()?;
        parse_oom_kills(&text)
    }

    /// Kills the processes of one step (or of every step when `session` is `None`) inside the
    /// container. Returns false when that could not be done, e.g. because the pids limit is
    /// exhausted and no helper can be exec'd.
    async fn signal_steps(&self, name: &str, signal: &str, session: Option<u32>) -> bool {
        let session = session.map(|pid| pid.to_string()).unwrap_or_default();
        let result = cli::run(
            self.program(),
            "exec",
            [
                "exec",
                "--user=0",
                name,
                "/bin/sh",
                "-c",
                step::KILL_STEP,
                "kill-step",
                signal,
                session.as_str(),
            ],
            self.inner.options.kill_timeout,
            self.podman_cwd(),
        )
        .await;
        match result {
            Ok(output) if output.status == 0 => true,
            Ok(output) => {
                tracing::warn!(container = name, status = output.status, message = %output.message(),
                    "could not signal the step inside the container");
                false
            }
            Err(err) => {
                tracing::warn!(container = name, %err, "could not signal the step inside the container");
                false
            }
        }
    }

    /// Kills a step for good: inside the container when possible, else the whole container.
    async fn kill_step(&self, name: &str, pid_file: &Path) {
        // The wrapper writes its pid first thing; give a step that was cancelled right after it
        // was spawned a moment to get there.
        let mut session = None;
        for _ in 0..20 {
            if let Some(pid) = read_number(pid_file).await {
                session = Some(pid as u32);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.signal_steps(name, "KILL", session).await {
            tracing::warn!(
                container = name,
                "killing the whole container, because the step could not be killed inside it"
            );
            let _ = self.podman("kill", ["kill", name]).await;
        }
    }
}

async fn read_number(path: &Path) -> Option<u64> {
    tokio::fs::read_to_string(path)
        .await
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// The memory cgroup's OOM counter, from the content of `/proc/<pid>/cgroup`.
fn oom_counter_path(proc_cgroup: &str) -> Option<PathBuf> {
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers
            .split(',')
            .any(|controller| controller == "memory")
        {
            return Some(PathBuf::from(format!(
                "/sys/fs/cgroup/memory{path}/memory.oom_control"
            )));
        }
        if controllers.is_empty() {
            unified = Some(PathBuf::from(format!("/sys/fs/cgroup{path}/memory.events")));
        }
    }
    unified
}

/// The `oom_kill N` count of a v1 `memory.oom_control` or a v2 `memory.events` file.
fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        line.strip_prefix("oom_kill ")
            .and_then(|count| count.trim().parse().ok())
    })
}

/// "512 MiB" rather than 536870912.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

fn invalid(what: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        what: what.to_owned(),
        message: message.into(),
    }
}

/// Rejects what podman would misread or what would make the container unfindable.
fn validate_spec(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let name_ok = spec
        .name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !name_ok {
        return Err(invalid(
            "name",
            format!(
                "{:?} is not a valid container name (letters, digits, '_', '.', '-'; starting \
                 with a letter or digit)",
                spec.name
            ),
        ));
    }
    if spec.image.trim().is_empty() {
        return Err(invalid("image", "no image given"));
    }
    if !spec.labels.contains_key(LABEL_WORKER) {
        return Err(invalid(
            "labels",
            format!("the {LABEL_WORKER} label is required so that orphans can always be found"),
        ));
    }
    for (key, _) in spec.labels.iter().chain(spec.env.iter()) {
        if key.is_empty() || key.contains('=') {
            return Err(invalid("labels/env", format!("{key:?} is not a valid key")));
        }
    }
    for mount in &spec.mounts {
        for path in [&mount.source, &mount.target] {
            let text = path.to_string_lossy();
            if !path.is_absolute() || text.contains(':') || text.contains(',') {
                return Err(invalid(
                    "mounts",
                    format!(
                        "{} must be an absolute path without ':' or ','",
                        path.display()
                    ),
                ));
            }
        }
    }
    for cap in &spec.cap_add {
        if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "cap_add",
                format!("{cap:?} is not a capability name"),
            ));
        }
    }
    Ok(())
}

fn policy_name(policy: PullPolicy) -> &'static str {
    match policy {
        PullPolicy::IfNotPresent => "if-not-present",
        PullPolicy::Always => "always",
        PullPolicy::Never => "never",
    }
}

fn is_missing_container(message: &str) -> bool {
    message.contains("no such container") || message.contains("no container with name or ID")
}

#[async_trait::async_trait]
impl ContainerRuntime for PodmanRuntime {
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        let unavailable = |message: String| RuntimeError::ImageUnavailable {
            image: image.to_owned(),
            policy: policy_name(policy).to_owned(),
            message,
        };
        let present = if policy == PullPolicy::Always {
            false
        } else {
            let output = cli::run(
                self.program(),
                "image exists",
                ["image", "exists", image],
                self.inner.options.command_timeout,
                self.podman_cwd(),
            )
            .await?;
            match output.status {
                0 => true,
                1 => false,
                _ => return Err(unavailable(output.message())),
            }
        };
        if present {
            return Ok(());
        }
        if policy == PullPolicy::Never {
            return Err(unavailable(
                "it is not in local storage and pulling is disabled; build or load it \
                 (scripts/build-image.sh, `podman load`) or allow pulling"
                    .to_owned(),
            ));
        }
        let timeout = self.inner.options.pull_timeout;
        let started = std::time::Instant::now();
        let pulled = cli::run(
            self.program(),
            "pull",
            ["pull", "--quiet", image],
            timeout,
            self.podman_cwd(),
        )
        .await;
        let outcome = match &pulled {
            Ok(output) if output.status == 0 => "ok",
            _ => "failed",
        };
        metrics::counter!("adjutant_image_pulls_total", "outcome" => outcome).increment(1);
        metrics::histogram!("adjutant_image_pull_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        match pulled {
            Ok(output) if output.status == 0 => Ok(()),
            Ok(output) => Err(unavailable(format!(
                "podman pull failed: {}",
                output.message()
            ))),
            Err(RuntimeError::Podman { message, .. }) => {
                Err(unavailable(format!("podman pull failed: {message}")))
            }
            Err(err) => Err(err),
        }
    }

    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        let output = cli::run(
            self.program(),
            "image inspect",
            ["image", "inspect", "--format", "json", image],
            self.inner.options.command_timeout,
            self.podman_cwd(),
        )
        .await?;
        // podman prints `[]` and exits 125 for an unknown image, like for any other failure,
        // so "not present" is recognised by the empty result rather than by the status.
        if output.status != 0 && output.stdout.trim().trim_start_matches('[').trim() != "]" {
            return Err(RuntimeError::Podman {
                operation: "image inspect".to_owned(),
                status: output.status,
                message: output.message(),
            });
        }
        let parsed =
            parse_image_inspect_json(&output.stdout).map_err(|message| RuntimeError::Podman {
                operation: "image inspect".to_owned(),
                status: output.status,
                message,
            })?;
        parsed.ok_or_else(|| RuntimeError::ImageUnavailable {
            image: image.to_owned(),
            policy: "not applied (inspecting never pulls)".to_owned(),
            message: format!(
                "{}; build or pull it first (scripts/build-image.sh, `podman pull`)",
                output.message()
            ),
        })
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerHandle, RuntimeError> {
        let facts = self.probe().await?.clone();
        let step_dir = self.step_dir(&spec.name);
        let (args, applied, note) = self.create_args(spec, &facts, &step_dir)?;
        // A name clash must not wipe the step directory of the container that holds the name.
        let step_dir_existed = tokio::fs::try_exists(&step_dir).await.unwrap_or(true);
        prepare_step_dir(&step_dir).await.map_err(|err| RuntimeError::Spawn {
            program: "koji-adjutant".to_owned(),
            message: format!(
                "cannot prepare the step directory {}: {err}; check run_dir in the podman options",
                step_dir.display()
            ),
        })?;
        let output = match self.podman("create", &args).await {
            Ok(output) => output,
            Err(err) => {
                if !step_dir_existed {
                    let _ = tokio::fs::remove_dir_all(&step_dir).await;
                }
                return Err(err);
            }
        };
        let id = output
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if let Some(note) = &note {
            tracing::warn!(container = %spec.name, "{note}");
        }
        self.update_state(&spec.name, |state| {
            state.memory_limit = applied.memory;
            state.limits_note = note;
        });
        Ok(ContainerHandle {
            id,
            name: spec.name.clone(),
        })
    }

    async fn start(&self, container: &ContainerHandle) -> Result<(), RuntimeError> {
        // The container's conmon lives in the step directory, next to the exec sessions'.
        let step_dir = self.step_dir(&container.name);
        cli::run_ok(
            self.program(),
            "start",
            ["start", container.name.as_str()],
            self.inner.options.command_timeout,
            Some(step_dir.as_path()).filter(|dir| dir.is_dir()),
        )
        .await?;
        let oom_counter = self.find_oom_counter(&container.name).await;
        if oom_counter.is_none() {
            tracing::debug!(container = %container.name,
                "no readable memory cgroup OOM counter; OOM kills will show as exit status 137");
        }
        self.update_state(&container.name, |state| state.oom_counter = oom_counter);
        Ok(())
    }

    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
        cancel: CancellationToken,
    ) -> Result<ExecOutcome, RuntimeError> {
        let name = container.name.as_str();
        if spec.argv.is_empty() {
            return Err(invalid(
                "argv",
                format!("step {} has no command", spec.step),
            ));
        }
        let state = self.state(name);
        if let Some(note) = state.limits_note.clone() {
            sink.line(OutputStream::Stderr, &note);
            self.update_state(name, |state| state.limits_note = None);
        }
        let seq = self.inner.step_counter.fetch_add(1, Ordering::Relaxed);
        let file_stem = format!("step-{seq}");
        let host_dir = self.step_dir(name);
        let pid_file = host_dir.join(format!("{file_stem}.pid"));
        let rc_file = host_dir.join(format!("{file_stem}.rc"));
        let oom_before = match &state.oom_counter {
            Some(path) => Self::read_oom_kills(path).await,
            None => None,
        };
        // conmon drops an `oom` file in its working directory on an OOM kill: the fallback
        // signal when the cgroup counter cannot be read.
        let oom_marker = host_dir.join("oom");
        let _ = tokio::fs::remove_file(&oom_marker).await;

        let mut args: Vec<String> = vec!["exec".into()];
        if spec.stdin.is_some() {
            args.push("--interactive".into());
        }
        if let Some(user) = &spec.user {
            args.push(format!("--user={user}"));
        }
        if let Some(workdir) = &spec.workdir {
            args.push(format!("--workdir={}", workdir.display()));
        }
        for (key, value) in &spec.env {
            if key.is_empty() || key.contains('=') {
                return Err(invalid(
                    "env",
                    format!("{key:?} is not a valid variable name"),
                ));
            }
            args.push(format!("--env={key}={value}"));
        }
        args.extend([
            name.to_owned(),
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            step::WRAPPER.to_owned(),
            format!("{STEP_DIR_IN_CONTAINER}/{file_stem}"),
        ]);
        args.extend(spec.argv.iter().cloned());

        let mut command = tokio::process::Command::new(self.program());
        if host_dir.is_dir() {
            command.current_dir(&host_dir);
        }
        command
            .args(&args)
            .stdin(if spec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|err| cli::spawn_error(self.program(), &err))?;
        // From here on, dropping this future (the owner went away) must not leave the step
        // running inside the container.
        let mut guard = StepGuard {
            runtime: Some(self.clone()),
            container: name.to_owned(),
            pid_file: pid_file.clone(),
        };

        if let (Some(input), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // A step that does not read its stdin closes the pipe; that is not an error.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
        }
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out_task = stdout
            .map(|out| tokio::spawn(step::pump_lines(out, OutputStream::Stdout, sink.clone(), 0)));
        let err_task = stderr
            .map(|err| tokio::spawn(step::pump_lines(err, OutputStream::Stderr, sink.clone(), 8)));

        let end = {
            let limit = spec.timeout;
            let deadline = async {
                match limit {
                    Some(limit) => {
                        tokio::time::sleep(limit).await;
                        limit
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = child.wait() => match status {
                    Ok(status) => StepEnd::Exited(status.code().unwrap_or(-1)),
                    Err(err) => {
                        return Err(RuntimeError::Podman {
                            operation: "exec".to_owned(),
                            status: -1,
                            message: format!("waiting for podman exec of step {} failed: {err}", spec.step),
                        });
                    }
                },
                limit = deadline => StepEnd::TimedOut(limit),
                () = cancel.cancelled() => StepEnd::Cancelled,
            }
        };

        if !matches!(end, StepEnd::Exited(_)) {
            self.kill_step(name, &pid_file).await;
            // The client exits once the processes it attached to are gone.
            if tokio::time::timeout(self.inner.options.kill_timeout, child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        guard.disarm();

        let stderr_tail = match err_task {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        if let Some(task) = out_task {
            let _ = task.await;
        }
        let recorded = read_number(&rc_file).await.map(|rc| rc as i32);
        let _ = tokio::fs::remove_file(&rc_file).await;
        let _ = tokio::fs::remove_file(&pid_file).await;

        let oom_after = match &state.oom_counter {
            Some(path) => Self::read_oom_kills(path).await,
            None => None,
        };
        let oom_killed = match (oom_before, oom_after) {
            (Some(before), Some(after)) => after > before,
            _ => tokio::fs::try_exists(&oom_marker).await.unwrap_or(false),
        };
        let out_of_memory = || RuntimeError::OutOfMemory {
            limit: state
                .memory_limit
                .map(human_bytes)
                .unwrap_or_else(|| "none set, the host ran out".to_owned()),
        };

        match end {
            StepEnd::TimedOut(limit) => Err(RuntimeError::StepTimeout {
                step: spec.step.clone(),
                limit,
            }),
            StepEnd::Cancelled => Err(RuntimeError::Cancelled {
                step: spec.step.clone(),
            }),
            StepEnd::Exited(podman_status) => match recorded {
                Some(0) => Ok(ExecOutcome {
                    exit_code: 0,
                    oom_killed,
                }),
                Some(_) if oom_killed => Err(out_of_memory()),
                Some(exit_code) => Ok(ExecOutcome {
                    exit_code,
                    oom_killed: false,
                }),
                // The wrapper itself was killed: by the OOM killer, or from outside.
                None if oom_killed => Err(out_of_memory()),
                None => Err(RuntimeError::Podman {
                    operation: format!("exec of step {}", spec.step),
                    status: podman_status,
                    message: format!(
                        "the step recorded no exit status, so podman or the OCI runtime failed \
                         (or the container was stopped): {}",
                        cli::podman_message(&stderr_tail.join("\n"), "")
                    ),
                }),
            },
        }
    }

    async fn stop(&self, container: &ContainerHandle, grace: Duration) -> Result<(), RuntimeError> {
        let name = container.name.as_str();
        // podman stop signals only PID 1 (the init), which takes the build down with SIGKILL;
        // a build gets its SIGTERM and the grace period only from inside.
        if !grace.is_zero() && self.signal_steps(name, "TERM", None).await {
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let probe = cli::run(
                    self.program(),
                    "exec",
                    [
                        "exec",
                        "--user=0",
                        name,
                        "/bin/sh",
                        "-c",
                        step::KILL_STEP,
                        "probe",
                        "0",
                        "",
                    ],
                    self.inner.options.kill_timeout,
                    self.podman_cwd(),
                )
                .await;
                match probe {
                    Ok(output) if output.status == 0 && output.stdout.trim() == "0" => break,
                    Ok(output) if output.status == 0 => continue,
                    _ => break,
                }
            }
        }
        match self.podman("stop", ["stop", "--time=0", name]).await {
            Ok(_) => Ok(()),
            Err(RuntimeError::Podman { message, .. })
                if message.contains("not running") || message.contains("is stopped") =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn kill(&self, container: &ContainerHandle) -> Result<(), RuntimeError> {
        match self.podman("kill", ["kill", container.name.as_str()]).await {
            Ok(_) => Ok(()),
            // Already down is what kill wants.
            Err(RuntimeError::Podman { message, .. })
                if message.contains("not running") || message.contains("can only kill running") =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn remove(&self, container: &ContainerHandle, force: bool) -> Result<(), RuntimeError> {
        let name = container.name.as_str();
        let mut args = vec!["rm", "--ignore"];
        if force {
            args.extend(["--force", "--time=0"]);
        }
        args.push(name);
        match self.podman("rm", &args).await {
            Ok(_) => {}
            Err(RuntimeError::Podman { message, .. }) if is_missing_container(&message) => {}
            Err(err) => return Err(err),
        }
        let step_dir = self.step_dir(name);
        if let Err(err) = tokio::fs::remove_dir_all(&step_dir).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %step_dir.display(), %err, "cannot remove a container's step directory");
        }
        if let Ok(mut map) = self.inner.containers.lock() {
            map.remove(name);
        }
        Ok(())
    }

    async fn list_owned(&self, worker_id: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let filter = format!("label={LABEL_WORKER}={worker_id}");
        let output = self
            .podman(
                "ps",
                [
                    "ps",
                    "--all",
                    "--filter",
                    filter.as_str(),
                    "--format",
                    "json",
                ],
            )
            .await?;
        parse_ps_json(&output.stdout).map_err(|message| RuntimeError::Podman {
            operation: "ps".to_owned(),
            status: 0,
            message,
        })
    }

    async fn reap_orphans(
        &self,
        worker_id: &str,
        live: &HashSet<String>,
    ) -> Result<Vec<String>, RuntimeError> {
        let owned = self.list_owned(worker_id).await?;
        let mut removed = Vec::new();
        for container in owned {
            // podman's label filter is exact, but a second look costs nothing and is the
            // guarantee that another worker's containers are never touched.
            if container.labels.get(LABEL_WORKER).map(String::as_str) != Some(worker_id)
                || live.contains(&container.name)
            {
                continue;
            }
            let handle = ContainerHandle {
                id: container.id.clone(),
                name: container.name.clone(),
            };
            match self.remove(&handle, true).await {
                Ok(()) => {
                    tracing::info!(container = %container.name, state = %container.state,
                        "removed an orphaned container");
                    removed.push(container.name);
                }
                Err(err) => {
                    tracing::warn!(container = %container.name, %err, "cannot remove an orphaned container");
                }
            }
        }
        Ok(removed)
    }
}

/// Parses `podman ps --format json`.
/// The first image of `podman image inspect --format json`, `None` for an empty array.
fn parse_image_inspect_json(json: &str) -> Result<Option<ImageInfo>, String> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let entries: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|err| format!("unreadable `image inspect` JSON: {err}"))?;
    let Some(entry) = entries.first() else {
        return Ok(None);
    };
    let text_of = |key: &str| {
        entry
            .get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let id = text_of("Id");
    if id.is_empty() {
        return Err("`image inspect` JSON has no Id".to_owned());
    }
    let repo_digests = entry
        .get("RepoDigests")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // `Labels` is null for an image without labels.
    let labels = entry
        .get("Labels")
        .and_then(serde_json::Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ImageInfo {
        id,
        digest: text_of("Digest"),
        repo_digests,
        created: text_of("Created"),
        labels,
    }))
}

fn parse_ps_json(json: &str) -> Result<Vec<ContainerSummary>, String> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|err| format!("unreadable `ps` JSON: {err}"))?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let id = entry.get("Id")?.as_str()?.to_owned();
            let name = entry
                .get("Names")
                .and_then(|names| names.get(0))
                .and_then(|name| name.as_str())
                .unwrap_or(&id)
                .to_owned();
            let labels = entry
                .get("Labels")
                .and_then(|labels| labels.as_object())
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let state = entry
                .get("State")
                .and_then(|state| state.as_str())
                .unwrap_or("unknown")
                .to_owned();
            Some(ContainerSummary {
                id,
                name,
                labels,
                state,
            })
        })
        .collect())
}

/// The step directory is written by the step's user (often uid 1000) and read by the worker.
async fn prepare_step_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(dir).await?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).await
}

/// Kills a step's processes inside the container if the exec future is dropped mid-step.
struct StepGuard {
    runtime: Option<PodmanRuntime>,
    container: String,
    pid_file: PathBuf,
}

impl StepGuard {
    fn disarm(&mut self) {
        self.runtime = None;
    }
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let container = std::mem::take(&mut self.container);
        let pid_file = std::mem::take(&mut self.pid_file);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { runtime.kill_step(&container, &pid_file).await });
            }
            Err(_) => {
                tracing::warn!(container = %container,
                    "an abandoned step could not be killed (no runtime); removing the container will");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_inspect_json_gives_id_digest_and_labels() {
        let json = r#"[{"Id": "bc83", "Digest": "sha256:66fe",
            "RepoDigests": ["localhost/b@sha256:66fe"], "Created": "2026-11-26T20:38:16Z",
            "Labels": {"recipe": "ac77"}}]"#;
        let info = parse_image_inspect_json(json).unwrap().unwrap();
        assert_eq!(info.id, "bc83");
        assert_eq!(info.digest, "sha256:66fe");
        assert_eq!(info.repo_digests, ["localhost/b@sha256:66fe"]);
        assert_eq!(info.created, "2026-11-26T20:38:16Z");
        assert_eq!(info.labels["recipe"], "ac77");
        let bare = parse_image_inspect_json(r#"[{"Id": "x", "Labels": null}]"#)
            .unwrap()
            .unwrap();
        assert!(bare.labels.is_empty() && bare.digest.is_empty());
        assert_eq!(parse_image_inspect_json("[]").unwrap(), None);
        assert!(parse_image_inspect_json(r#"[{"Digest": "d"}]"#).is_err());
        assert!(parse_image_inspect_json("Error").is_err());
    }

    #[test]
    fn oom_counter_is_found_on_cgroup_v1_and_v2() {
        let v1 = "9:name=systemd:/\n4:memory:/libpod_parent/libpod-abc\n0::/\n";
        assert_eq!(
            oom_counter_path(v1),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/libpod_parent/libpod-abc/memory.oom_control"
            ))
        );
        let v2 = "0::/machine.slice/libpod-abc.scope/container\n";
        assert_eq!(
            oom_counter_path(v2),
            Some(PathBuf::from(
                "/sys/fs/cgroup/machine.slice/libpod-abc.scope/container/memory.events"
            ))
        );
    }

    #[test]
    fn oom_kills_are_read_from_both_formats() {
        assert_eq!(
            parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            Some(3)
        );
        assert_eq!(
            parse_oom_kills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(parse_oom_kills("nothing here"), None);
    }

    #[test]
    fn bytes_are_shown_in_the_largest_exact_unit() {
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "localhost/img:1".into(),
            name: "koji-adjutant-w1-42-1".into(),
            labels: BTreeMap::from([(LABEL_WORKER.to_owned(), "w1".to_owned())]),
            user: Some("1000".into()),
            workdir: Some("/builddir".into()),
            mounts: vec![koji_adjutant_actors::runtime::Mount {
                source: "/srv/task".into(),
                target: "/builddir".into(),
                read_only: false,
            }],
            selinux_label: SelinuxLabel::Private,
            env: BTreeMap::from([("LANG".to_owned(), "C.UTF-8".to_owned())]),
            network: NetworkMode::None,
            cap_add: vec!["CHOWN".into(), "kill".into()],
            limits: ResourceLimits {
                memory: Some(512 << 20),
                cpus: Some(1.5),
                pids: None,
            },
        }
    }

    fn facts(limits: LimitSupport) -> PodmanFacts {
        PodmanFacts {
            version: "4.3.1".into(),
            oci_runtime: "runc".into(),
            cgroup_version: "v1".into(),
            cgroup_manager: "cgroupfs".into(),
            cgroup_controllers: vec![],
            storage_driver: "overlay".into(),
            rootless: false,
            limits,
        }
    }

    const ALL: LimitSupport = LimitSupport {
        memory: true,
        cpu: true,
        pids: true,
    };

    #[test]
    fn create_args_carry_isolation_limits_labels_and_the_step_dir() {
        let mut options = PodmanOptions::default();
        options.default_limits.pids = Some(4096);
        options.labels.insert("site".into(), "lab".into());
        let runtime = PodmanRuntime::new(options);
        let (args, applied, note) = runtime
            .create_args(&spec(), &facts(ALL), Path::new("/run/ka/c1"))
            .unwrap();
        let joined = args.join(" ");
        for expected in [
            "--name koji-adjutant-w1-42-1",
            "--pull=never",
            "--init",
            "--cap-drop=ALL",
            "--security-opt no-new-privileges",
            "--cap-add=KILL",
            "--cap-add=CHOWN",
            "--network=none",
            "--label io.koji.adjutant.worker=w1",
            "--label site=lab",
            "--user=1000",
            "--workdir=/builddir",
            "--volume=/srv/task:/builddir:rw,Z",
            "--volume=/run/ka/c1:/run/koji-adjutant:rw,Z",
            "--env=LANG=C.UTF-8",
            "--memory=536870912b",
            "--memory-swap=536870912b",
            "--cpus=1.5",
            "--pids-limit=4096",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in {joined}"
            );
        }
        // "kill" duplicates the required KILL capability and is not added twice.
        assert_eq!(
            args.iter()
                .filter(|a| a.eq_ignore_ascii_case("--cap-add=kill"))
                .count(),
            1
        );
        assert!(joined.contains("--label io.koji.adjutant.created="));
        assert!(joined.ends_with("localhost/img:1 sleep infinity"));
        assert_eq!(applied.pids, Some(4096));
        assert!(note.is_none());
    }

    #[test]
    fn the_step_dir_is_always_privately_labelled() {
        let runtime = PodmanRuntime::new(PodmanOptions::default());
        let mut unlabelled = spec();
        unlabelled.selinux_label = SelinuxLabel::None;
        let (args, _, _) = runtime
            .create_args(&unlabelled, &facts(ALL), Path::new("/run/ka/c1"))
            .unwrap();
        assert!(args.contains(&"--volume=/srv/task:/builddir:rw".to_owned()));
        assert!(args.contains(&"--volume=/run/ka/c1:/run/koji-adjutant:rw,Z".to_owned()));
    }

    #[test]
    fn unsupported_limits_are_dropped_with_a_note_not_an_error() {
        let runtime = PodmanRuntime::new(PodmanOptions::default());
        let limits = LimitSupport {
            memory: false,
            cpu: true,
            pids: true,
        };
        let (args, applied, note) = runtime
            .create_args(&spec(), &facts(limits), Path::new("/run/ka/c1"))
            .unwrap();
        assert!(!args.iter().any(|arg| arg.starts_with("--memory")));
        assert_eq!(applied.memory, None);
        let note = note.unwrap();
        assert!(note.contains("memory 512 MiB"), "{note}");
    }

    #[test]
    fn specs_podman_would_misread_are_rejected() {
        let mut bad_mount = spec();
        bad_mount.mounts[0].source = "/srv/a:b".into();
        let mut no_worker = spec();
        no_worker.labels.clear();
        let mut bad_name = spec();
        bad_name.name = "-x y".into();
        let mut bad_cap = spec();
        bad_cap.cap_add = vec!["ALL --privileged".into()];
        let runtime = PodmanRuntime::new(PodmanOptions::default());
        for (spec, what) in [
            (bad_mount, "mounts"),
            (no_worker, "labels"),
            (bad_name, "name"),
            (bad_cap, "cap_add"),
        ] {
            match runtime.create_args(&spec, &facts(ALL), Path::new("/run/x")) {
                Err(RuntimeError::InvalidSpec { what: got, .. }) => assert_eq!(got, what),
                other => panic!("expected an invalid {what}, got {other:?}"),
            }
        }
    }

    #[test]
    fn ps_json_is_parsed_into_summaries() {
        let json = r#"[{"Id":"abc","Names":["koji-adjutant-w1-1-1"],"State":"running",
            "Labels":{"io.koji.adjutant.worker":"w1"}},{"Id":"def","Names":null,"Labels":null}]"#;
        let list = parse_ps_json(json).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "koji-adjutant-w1-1-1");
        assert_eq!(list[0].labels[LABEL_WORKER], "w1");
        assert_eq!(list[1].name, "def");
        assert_eq!(list[1].state, "unknown");
        assert!(parse_ps_json("").unwrap().is_empty());
        assert!(parse_ps_json("{oops").is_err());
    }
}
