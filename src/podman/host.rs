//! Running a command on the host instead of in a container, for operators who choose
//! `repo_tools = host`. It lives here because `src/podman` is the one place that spawns
//! processes; the contract matches a container step: output streamed line by line to a
//! `LogSink`, the command's own exit status, a timeout and a cancellation that kill the whole
//! process group (createrepo_c forks workers that must not outlive the task).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use koji_adjutant_actors::runtime::{ExecOutcome, LogSink, OutputStream, RuntimeError};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

/// The `PATH` host commands get: the worker's own environment (which may hold credentials in
/// `KOJI_ADJUTANT_*` variables) is not passed on.
pub const HOST_COMMAND_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One command to run on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    /// Names the step in errors, as `ExecSpec::step` does.
    pub step: String,
    pub argv: Vec<String>,
    /// The whole environment besides `PATH` (the worker's is cleared).
    pub env: BTreeMap<String, String>,
    pub workdir: Option<PathBuf>,
    /// Numeric `UID:GID` to run as. Applied only when the worker is root: an unprivileged
    /// worker cannot switch users and runs the command as itself.
    pub user: Option<(u32, u32)>,
    pub timeout: Option<Duration>,
}

impl HostCommand {
    pub fn new(step: impl Into<String>, argv: Vec<String>) -> Self {
        Self {
            step: step.into(),
            argv,
            env: BTreeMap::new(),
            workdir: None,
            user: None,
            timeout: None,
        }
    }
}

/// Runs [`HostCommand`]s. Stateless; a value so that callers hold it like a runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostCommandRunner;

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut(Duration),
    Cancelled,
}

impl HostCommandRunner {
    pub fn new() -> Self {
        Self
    }

    /// Runs `command` to its end. `Ok` carries the command's exit status (128 + signal when a
    /// signal ended it); a command that cannot be started, ran past its timeout or was
    /// cancelled is an `Err`, its process group killed first.
    pub async fn run(
        &self,
        command: &HostCommand,
        sink: Arc<dyn LogSink>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, RuntimeError> {
        let Some((program, args)) = command.argv.split_first() else {
            return Err(RuntimeError::InvalidSpec {
                what: format!("host step {}", command.step),
                message: "the command line is empty".to_owned(),
            });
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", HOST_COMMAND_PATH)
            .envs(&command.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a kill reaches the tool's children too.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &command.workdir {
            cmd.current_dir(dir);
        }
        if let Some((uid, gid)) = command.user
            && nix::unistd::geteuid().is_root()
        {
            // std also clears the supplementary groups when root switches uid.
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().map_err(|error| RuntimeError::Spawn {
            program: program.clone(),
            message: format!(
                "{error} (repo_tools = host needs it installed on the worker, in {HOST_COMMAND_PATH})"
            ),
        })?;
        let pgid = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let readers = async {
            tokio::join!(
                forward(stdout, OutputStream::Stdout, Arc::clone(&sink)),
                forward(stderr, OutputStream::Stderr, Arc::clone(&sink)),
            )
        };
        let waiting = async {
            let ending = tokio::select! {
                status = child.wait() => Ending::Exited(status),
                () = sleep_or_forever(command.timeout) => Ending::TimedOut(command.timeout.unwrap_or_default()),
                () = cancel.cancelled() => Ending::Cancelled,
            };
            // Also after a normal exit: a child left running in the background would hold the
            // output pipes open and the task would never end.
            kill_group(pgid);
            if !matches!(ending, Ending::Exited(_)) {
                let _ = child.wait().await;
            }
            ending
        };
        let (ending, _) = tokio::join!(waiting, readers);
        match ending {
            Ending::Exited(Ok(status)) => Ok(ExecOutcome {
                exit_code: exit_code(status),
                oom_killed: false,
            }),
            Ending::Exited(Err(error)) => Err(RuntimeError::Spawn {
                program: program.clone(),
                message: format!("waiting for it failed: {error}"),
            }),
            Ending::TimedOut(limit) => Err(RuntimeError::StepTimeout {
                step: command.step.clone(),
                limit,
            }),
            Ending::Cancelled => Err(RuntimeError::Cancelled {
                step: command.step.clone(),
            }),
        }
    }
}

/// Where `program` would be found by a host command: an absolute path as given, else the first
/// executable in [`HOST_COMMAND_PATH`]. Looked up without running anything, for `doctor`.
pub fn find_host_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    HOST_COMMAND_PATH
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|path| executable(path))
}

/// `doctor` checks for `repo_tools = host`: the repo tools present on the worker, and python3
/// with dnf for multilib dist repos.
pub fn host_repo_tool_checks() -> Vec<crate::doctor::Check> {
    let mut checks = host_binary_checks();
    checks.push(python_dnf_check(find_host_program("python3")));
    checks
}

const PYTHON_DNF_FIX: &str = "install python3 with the dnf module (Debian `apt-get install \
     python3-dnf`, Fedora/RHEL `dnf install python3-dnf`) or set repo_tools = container; only \
     multilib dist repos (`koji dist-repo --multilib`) need it";

/// Whether `python` (the host's `python3`, if any) can `import dnf`, which the multilib step of
/// `createdistrepo` runs with. A warning, not a failure: every other repo task works without.
pub fn python_dnf_check(python: Option<PathBuf>) -> crate::doctor::Check {
    use crate::doctor::Check;
    const NAME: &str = "host python3 dnf";
    let Some(python) = python else {
        return Check::warn(
            NAME,
            format!("repo_tools = host but python3 is not in {HOST_COMMAND_PATH}"),
            PYTHON_DNF_FIX,
        );
    };
    // The same environment the multilib helper gets: PATH only.
    let ran = std::process::Command::new(&python)
        .args(["-c", "import dnf"])
        .env_clear()
        .env("PATH", HOST_COMMAND_PATH)
        .stdin(Stdio::null())
        .output();
    match ran {
        Ok(out) if out.status.success() => Check::ok(
            NAME,
            format!(
                "{} imports dnf (repo_tools = host, multilib dist repos)",
                python.display()
            ),
        ),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no error output");
            Check::warn(
                NAME,
                format!(
                    "repo_tools = host but {} cannot import dnf ({}): multilib dist repos would fail",
                    python.display(),
                    why.trim()
                ),
                PYTHON_DNF_FIX,
            )
        }
        Err(error) => Check::warn(
            NAME,
            format!(
                "repo_tools = host but {} cannot be run: {error}",
                python.display()
            ),
            PYTHON_DNF_FIX,
        ),
    }
}

fn host_binary_checks() -> Vec<crate::doctor::Check> {
    ["createrepo_c", "mergerepo_c"]
        .into_iter()
        .map(|tool| match find_host_program(tool) {
            Some(path) => crate::doctor::Check::ok(
                format!("host {tool}"),
                format!("{} (repo_tools = host)", path.display()),
            ),
            None => crate::doctor::Check::fail(
                format!("host {tool}"),
                format!("repo_tools = host but {tool} is not in {HOST_COMMAND_PATH}"),
                "install it (Debian `apt-get install createrepo-c`, Fedora/RHEL `dnf install \
                 createrepo_c`) or set repo_tools = container",
            ),
        })
        .collect()
}

async fn sleep_or_forever(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

fn kill_group(pgid: Option<nix::unistd::Pid>) {
    if let Some(pgid) = pgid {
        // ESRCH (the group is already gone) is the usual, expected answer.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// Sends each line of `stream` to `sink`; bytes that are not UTF-8 are replaced, never fatal.
async fn forward<R: AsyncRead + Unpin>(
    stream: Option<R>,
    which: OutputStream,
    sink: Arc<dyn LogSink>,
) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer);
                sink.line(which, line.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    struct Lines(Mutex<Vec<(OutputStream, String)>>);

    impl LogSink for Lines {
        fn line(&self, stream: OutputStream, line: &str) {
            self.0.lock().unwrap().push((stream, line.to_owned()));
        }
    }

    fn sh(script: &str) -> HostCommand {
        HostCommand::new(
            "test",
            vec!["/bin/sh".into(), "-c".into(), script.to_owned()],
        )
    }

    #[tokio::test]
    async fn streams_both_outputs_and_returns_the_exit_code() {
        let lines = Arc::new(Lines::default());
        let mut command = sh("echo one; echo two >&2; printf 'three\\377'; exit 7");
        command.env.insert("GREETING".into(), "hi".into());
        let outcome = HostCommandRunner
            .run(
                &command,
                Arc::clone(&lines) as Arc<dyn LogSink>,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.exit_code, 7);
        let got = lines.0.lock().unwrap().clone();
        assert!(got.contains(&(OutputStream::Stdout, "one".to_owned())));
        assert!(got.contains(&(OutputStream::Stderr, "two".to_owned())));
        assert!(got.contains(&(OutputStream::Stdout, "three\u{fffd}".to_owned())));
    }

    #[tokio::test]
    async fn passes_only_the_given_environment() {
        let lines = Arc::new(Lines::default());
        let mut command = sh("echo \"$GREETING:${HOME:-unset}:$PATH\"");
        command.env.insert("GREETING".into(), "hi".into());
        HostCommandRunner
            .run(
                &command,
                Arc::clone(&lines) as Arc<dyn LogSink>,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let got = lines.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![(
                OutputStream::Stdout,
                format!("hi:unset:{HOST_COMMAND_PATH}")
            )]
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The background child would write the marker if it outlived the kill.
        let script = format!(
            "(sleep 2; touch {}) & echo started; sleep 30",
            marker.display()
        );
        let mut command = sh(&script);
        command.timeout = Some(Duration::from_millis(500));
        let lines = Arc::new(Lines::default());
        let started = Instant::now();
        let error = HostCommandRunner
            .run(
                &command,
                Arc::clone(&lines) as Arc<dyn LogSink>,
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, RuntimeError::StepTimeout { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            lines.0.lock().unwrap().clone(),
            vec![(OutputStream::Stdout, "started".to_owned())]
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !marker.exists(),
            "a child of the timed-out command survived"
        );
    }

    #[tokio::test]
    async fn cancellation_kills_the_command() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let error = HostCommandRunner
            .run(&sh("sleep 30"), Arc::new(Lines::default()), &cancel)
            .await
            .unwrap_err();
        assert!(matches!(error, RuntimeError::Cancelled { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let error = HostCommandRunner
            .run(
                &HostCommand::new("test", vec!["/nonexistent/createrepo_c".into()]),
                Arc::new(Lines::default()),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/createrepo_c"),
            "{error}"
        );
    }

    #[test]
    fn finds_programs_on_the_host_path_only_when_executable() {
        assert!(find_host_program("sh").is_some());
        assert_eq!(find_host_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_host_program("no-such-repo-tool"), None);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("tool");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert_eq!(find_host_program(plain.to_str().unwrap()), None);
        let checks = host_repo_tool_checks();
        assert_eq!(checks.len(), 3);
        assert_eq!(checks[0].name, "host createrepo_c");
        assert_eq!(checks[2].name, "host python3 dnf");
    }

    #[test]
    fn the_python_dnf_check_runs_the_import() {
        use crate::doctor::CheckStatus;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // Stand-ins for python3: one that has dnf, one that fails the import the way Python does.
        let fake = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let with = fake(
            "with-dnf",
            r#"[ "$1 $2" = "-c import dnf" ] && exit 0; exit 3"#,
        );
        let without = fake(
            "without-dnf",
            "echo 'Traceback (most recent call last):' >&2; \
             echo \"ModuleNotFoundError: No module named 'dnf'\" >&2; exit 1",
        );
        let ok = python_dnf_check(Some(with.clone()));
        assert_eq!(ok.status, CheckStatus::Ok, "{}", ok.render());
        assert!(ok.detail.contains(&with.display().to_string()));
        let missing = python_dnf_check(Some(without));
        assert_eq!(missing.status, CheckStatus::Warn, "{}", missing.render());
        assert!(
            missing.detail.contains("No module named 'dnf'")
                && missing.fix.contains("python3-dnf")
                && missing.fix.contains("repo_tools = container"),
            "{}",
            missing.render()
        );
        let none = python_dnf_check(None);
        assert_eq!(none.status, CheckStatus::Warn);
        assert!(
            none.detail.contains("python3 is not in"),
            "{}",
            none.render()
        );
    }

    #[tokio::test]
    async fn runs_as_the_given_user_when_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut command = sh("id -u; id -g; id -G");
        command.user = Some((65534, 65534));
        command.workdir = Some(dir.path().to_path_buf());
        let lines = Arc::new(Lines::default());
        HostCommandRunner
            .run(
                &command,
                Arc::clone(&lines) as Arc<dyn LogSink>,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let got: Vec<String> = lines
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(got, vec!["65534", "65534", "65534"]);
    }
}
