//! The pieces of one step (`podman exec`) that do not need podman: the in-container wrapper and
//! kill scripts, and the line splitter that feeds the log sink while the step runs.

use std::sync::Arc;

use koji_adjutant_actors::runtime::{LogSink, OutputStream};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Runs the step's argv and records, in files of the step directory, the shell's pid (which is
/// also the step's session id: runc makes every exec a session leader) and the command's exit
/// status. `$0` is the file prefix. A missing status file after podman returns means podman (or
/// the runtime below it) failed, whatever exit code it used. The wrapper catches SIGTERM (a
/// caught signal, unlike an ignored one, is reset for the command) so that a graceful stop
/// still gets the command's status recorded.
pub(crate) const WRAPPER: &str = r#"trap : TERM; printf '%s\n' "$$" > "$0.pid"; "$@"; rc=$?; printf '%s\n' "$rc" > "$0.rc"; exit "$rc""#;

/// Sends a signal ($1) to the processes of one step: those in session or process group $2. With
/// $2 empty it signals every step: all processes outside session 1, which holds podman's init
/// and the container's main `sleep`, so that the container itself keeps running. Pure POSIX sh
/// over /proc, because production images need not carry procps. Two passes catch children forked
/// during the first. Prints how many processes it signalled in the last pass.
pub(crate) const KILL_STEP: &str = r#"sig=$1; target=$2; self=$$; n=0
for pass in 1 2; do
  n=0
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$self" ] && continue
    read -r stat 2>/dev/null < "$d/stat" || continue
    rest=${stat##*) }
    set -- $rest
    if [ -n "$target" ]; then
      [ "$4" = "$target" ] || [ "$3" = "$target" ] || continue
    else
      [ "$4" = 1 ] || [ "$4" = 0 ] || [ "$4" = "$self" ] && continue
    fi
    kill -s "$sig" "$pid" 2>/dev/null && n=$((n + 1))
  done
done
echo "$n""#;

/// Lines longer than this are cut into pieces, so one runaway line cannot exhaust memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Reads `reader` to its end, handing each line (without its newline, lossily decoded) to the
/// sink as soon as it is complete. Returns the last few lines, for error messages.
pub(crate) async fn pump_lines<R>(
    mut reader: R,
    stream: OutputStream,
    sink: Arc<dyn LogSink>,
    keep_last: usize,
) -> Vec<String>
where
    R: AsyncRead + Unpin,
{
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let mut last: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let emit = |bytes: &[u8], last: &mut std::collections::VecDeque<String>| {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = String::from_utf8_lossy(bytes);
        sink.line(stream, &line);
        if keep_last > 0 {
            if last.len() == keep_last {
                last.pop_front();
            }
            last.push_back(line.into_owned());
        }
    };
    loop {
        let read = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        pending.extend_from_slice(&chunk[..read]);
        let mut start = 0;
        while let Some(offset) = pending[start..].iter().position(|byte| *byte == b'\n') {
            emit(&pending[start..start + offset], &mut last);
            start += offset + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            let rest = pending.split_off(MAX_LINE);
            emit(&pending, &mut last);
            pending = rest;
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut last);
    }
    last.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(OutputStream, String)>>);

    impl LogSink for Collect {
        fn line(&self, stream: OutputStream, line: &str) {
            self.0.lock().unwrap().push((stream, line.to_owned()));
        }
    }

    #[tokio::test]
    async fn splits_lines_strips_cr_and_flushes_a_partial_last_line() {
        let sink = Arc::new(Collect::default());
        let input: &[u8] = b"one\ntwo\r\n\nthree";
        let last = pump_lines(input, OutputStream::Stderr, sink.clone(), 2).await;
        let lines: Vec<String> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(lines, vec!["one", "two", "", "three"]);
        assert_eq!(last, vec!["", "three"]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_dropped() {
        let sink = Arc::new(Collect::default());
        let input: &[u8] = b"caf\xe9\n";
        pump_lines(input, OutputStream::Stdout, sink.clone(), 0).await;
        assert_eq!(sink.0.lock().unwrap()[0].1, "caf\u{fffd}");
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_at_the_limit() {
        let sink = Arc::new(Collect::default());
        let input = vec![b'x'; MAX_LINE * 2 + 10];
        pump_lines(&input[..], OutputStream::Stdout, sink.clone(), 0).await;
        let lengths: Vec<usize> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.len())
            .collect();
        assert_eq!(lengths, vec![MAX_LINE, MAX_LINE, 10]);
    }

    #[test]
    fn wrapper_records_pid_and_status_of_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("s1");
        let status = std::process::Command::new("sh")
            .args(["-c", WRAPPER])
            .arg(&prefix)
            .args(["sh", "-c", "exit 42"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(42));
        let rc = std::fs::read_to_string(dir.path().join("s1.rc")).unwrap();
        assert_eq!(rc.trim(), "42");
        let pid: u32 = std::fs::read_to_string(dir.path().join("s1.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(pid > 1);
    }
}
