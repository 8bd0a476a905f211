//! Running one short podman command: bounded in time, output captured, failures typed.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use koji_adjutant_actors::runtime::RuntimeError;
use tokio::process::Command;

/// What a finished podman command printed.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// podman's own diagnosis, for error messages: its `Error:` lines when there are any.
    pub fn message(&self) -> String {
        podman_message(&self.stderr, &self.stdout)
    }
}

/// Picks the most useful part of podman's output for an error message.
pub(crate) fn podman_message(stderr: &str, stdout: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("Error:"))
        .collect();
    let text = if !errors.is_empty() {
        errors.join("; ")
    } else if !stderr.trim().is_empty() {
        stderr.trim().to_owned()
    } else {
        stdout.trim().to_owned()
    };
    if text.is_empty() {
        "podman printed nothing".to_owned()
    } else {
        text
    }
}

pub(crate) fn spawn_error(program: &Path, err: &std::io::Error) -> RuntimeError {
    let hint = if err.kind() == std::io::ErrorKind::NotFound {
        " (is podman installed? run scripts/setup-host.sh or set the podman path)"
    } else {
        ""
    };
    RuntimeError::Spawn {
        program: program.display().to_string(),
        message: format!("{err}{hint}"),
    }
}

/// Runs `podman <args>` and returns its output whatever its exit status; only a failure to run
/// it at all, or running past `timeout`, is an error.
///
/// `cwd` matters because conmon, which podman starts for containers and exec sessions, inherits
/// it and drops a file named `oom` there when the OOM killer strikes.
pub(crate) async fn run<I, S>(
    program: &Path,
    operation: &str,
    args: I,
    timeout: Duration,
    cwd: Option<&Path>,
) -> Result<Output, RuntimeError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timed-out podman client is killed; its container is handled by name afterwards.
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let result = wait(command, program, operation, timeout).await;
    // `operation` is one of the runtime's fixed names, so it is a bounded label.
    let outcome = match &result {
        Ok(output) if output.status == 0 => "ok",
        Ok(_) => "failed",
        Err(_) => "error",
    };
    metrics::counter!("adjutant_container_operations_total", "operation" => operation.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("adjutant_container_operation_duration_seconds", "operation" => operation.to_owned())
        .record(started.elapsed().as_secs_f64());
    result
}

async fn wait(
    mut command: Command,
    program: &Path,
    operation: &str,
    timeout: Duration,
) -> Result<Output, RuntimeError> {
    let child = command.spawn().map_err(|err| spawn_error(program, &err))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => Ok(Output {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
        Ok(Err(err)) => Err(RuntimeError::Podman {
            operation: operation.to_owned(),
            status: -1,
            message: format!("waiting for podman failed: {err}"),
        }),
        Err(_) => Err(RuntimeError::Podman {
            operation: operation.to_owned(),
            status: -1,
            message: format!(
                "podman did not finish within {}s and was killed; check `podman ps` and the \
                 host's load",
                timeout.as_secs()
            ),
        }),
    }
}

/// Like [`run`], but a non-zero exit status is an error carrying podman's message.
pub(crate) async fn run_ok<I, S>(
    program: &Path,
    operation: &str,
    args: I,
    timeout: Duration,
    cwd: Option<&Path>,
) -> Result<Output, RuntimeError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = run(program, operation, args, timeout, cwd).await?;
    if output.status == 0 {
        Ok(output)
    } else {
        Err(RuntimeError::Podman {
            operation: operation.to_owned(),
            status: output.status,
            message: output.message(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_prefers_error_lines() {
        let stderr = "time=\"x\" level=warning msg=\"noise\"\nError: no such container foo\n";
        assert_eq!(
            podman_message(stderr, ""),
            "Error: no such container foo".to_owned()
        );
    }

    #[test]
    fn message_falls_back_to_stderr_then_stdout() {
        assert_eq!(podman_message("  oops \n", "out"), "oops");
        assert_eq!(podman_message("", " out "), "out");
        assert_eq!(podman_message("", ""), "podman printed nothing");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error_with_a_hint() {
        let err = run(
            Path::new("/nonexistent/podman"),
            "info",
            ["info"],
            Duration::from_secs(5),
            None,
        )
        .await
        .unwrap_err();
        match err {
            RuntimeError::Spawn { program, message } => {
                assert_eq!(program, "/nonexistent/podman");
                assert!(message.contains("is podman installed"), "{message}");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_and_reported() {
        let started = std::time::Instant::now();
        let err = run(
            Path::new("sleep"),
            "pull",
            ["30"],
            Duration::from_millis(200),
            None,
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("did not finish within"), "{err}");
    }
}
