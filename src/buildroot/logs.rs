//! The buildroot's log files, in the names Koji users know (spec §3.5), and the sinks that
//! write them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use koji_adjutant_actors::runtime::{LogSink, OutputStream};

use super::BuildrootError;

/// mock's dnf output.
pub const ROOT_LOG: &str = "root.log";
/// rpmbuild's output.
pub const BUILD_LOG: &str = "build.log";
/// Phase changes with timestamps.
pub const STATE_LOG: &str = "state.log";
pub const HW_INFO_LOG: &str = "hw_info.log";
pub const INSTALLED_PKGS_LOG: &str = "installed_pkgs.log";
/// The worker's own view of the task: every step's command line and outcome.
pub const MOCK_OUTPUT_LOG: &str = "mock_output.log";
/// The image reference and its full `rpm -qa` (image mode).
pub const IMAGE_RPMS_LOG: &str = "image_rpms.log";
/// The generated dnf config and macros (kojid uploads its mock config under this name).
pub const MOCK_CONFIG_LOG: &str = "mock_config.log";

/// Upload order: the order kojid's result lists them in does not matter to the hub; a fixed
/// one keeps task results stable.
const ORDER: [&str; 8] = [
    MOCK_CONFIG_LOG,
    MOCK_OUTPUT_LOG,
    STATE_LOG,
    HW_INFO_LOG,
    ROOT_LOG,
    BUILD_LOG,
    INSTALLED_PKGS_LOG,
    IMAGE_RPMS_LOG,
];

/// One log file to mirror to the hub: the upload name and the host path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogFile {
    /// `build.log`, `root.log`, `state.log`, `hw_info.log`, `installed_pkgs.log`,
    /// `mock_output.log`, `image_rpms.log`, `mock_config.log`.
    pub name: String,
    pub path: PathBuf,
}

/// The log directory of one buildroot and its writers.
#[derive(Debug, Clone)]
pub struct BuildrootLogs {
    pub(crate) dir: PathBuf,
}

impl BuildrootLogs {
    pub(crate) fn create(dir: PathBuf) -> Result<Self, BuildrootError> {
        std::fs::create_dir_all(&dir).map_err(BuildrootError::io("creating the log dir", &dir))?;
        Ok(Self { dir })
    }

    /// The log directory (host path).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every log file that exists now, in a stable order. Call it on every sync: files appear
    /// as phases start.
    pub fn files(&self) -> Vec<LogFile> {
        ORDER
            .iter()
            .map(|name| LogFile {
                name: (*name).to_owned(),
                path: self.dir.join(name),
            })
            .filter(|log| log.path.is_file())
            .collect()
    }

    pub(crate) fn sink(&self, name: &str) -> Result<Arc<FileSink>, BuildrootError> {
        FileSink::open(&self.path(name)).map(Arc::new)
    }

    /// Writes a whole log (`installed_pkgs.log` is rewritten after each install) as a new
    /// file renamed over the old one. The live-log uploader sends only the bytes past what it
    /// sent before, unless the file shrank or is a new inode: a longer rewrite in place left
    /// the hub with the old list and the new one's tail.
    pub(crate) fn write(&self, name: &str, content: &str) -> Result<(), BuildrootError> {
        let path = self.path(name);
        // Not `*.log`: the live-log scan must not upload the half-written file.
        let scratch = self.path(&format!(".{name}.new"));
        std::fs::write(&scratch, content).map_err(BuildrootError::io("writing", &scratch))?;
        std::fs::rename(&scratch, &path).map_err(BuildrootError::io("replacing", &path))
    }

    pub(crate) fn append(&self, name: &str, line: &str) -> Result<(), BuildrootError> {
        FileSink::open(&self.path(name))?.write_line(line);
        Ok(())
    }
}

/// `2024-05-01 10:00:00,123` (mock's log timestamp, in UTC).
pub(crate) fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S,%3f")
        .to_string()
}

/// Appends every line to one file. A write error is reported once through tracing and
/// otherwise ignored: a full disk must not turn into a different build failure than the one
/// the step itself reports.
pub(crate) struct FileSink {
    file: Mutex<File>,
    path: PathBuf,
}

impl FileSink {
    pub(crate) fn open(path: &Path) -> Result<Self, BuildrootError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(BuildrootError::io("opening the log", path))?;
        Ok(Self {
            file: Mutex::new(file),
            path: path.to_owned(),
        })
    }

    pub(crate) fn write_line(&self, line: &str) {
        let mut file = match self.file.lock() {
            Ok(file) => file,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(error) = writeln!(file, "{line}") {
            tracing::warn!(log = %self.path.display(), %error, "cannot write to the build log");
        }
    }
}

impl LogSink for FileSink {
    fn line(&self, _stream: OutputStream, line: &str) {
        self.write_line(line);
    }
}

/// Keeps stdout in memory (for commands whose output the engine parses) and sends stderr, and
/// stdout unless it is kept, on to `next`: a parsed `rpm -qa` would only bury the log.
pub(crate) struct CaptureSink {
    pub(crate) stdout: Mutex<Vec<String>>,
    keep_stdout: bool,
    quiet: bool,
    next: Option<Arc<dyn LogSink>>,
}

impl CaptureSink {
    /// `quiet`: kept stdout is not sent on.
    pub(crate) fn new(keep_stdout: bool, quiet: bool, next: Option<Arc<dyn LogSink>>) -> Self {
        Self {
            stdout: Mutex::new(Vec::new()),
            keep_stdout,
            quiet,
            next,
        }
    }

    pub(crate) fn take(&self) -> Vec<String> {
        match self.stdout.lock() {
            Ok(mut lines) => std::mem::take(&mut *lines),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl LogSink for CaptureSink {
    fn line(&self, stream: OutputStream, line: &str) {
        if self.keep_stdout && stream == OutputStream::Stdout {
            match self.stdout.lock() {
                Ok(mut lines) => lines.push(line.to_owned()),
                Err(poisoned) => poisoned.into_inner().push(line.to_owned()),
            }
            if self.quiet {
                return;
            }
        }
        if let Some(next) = &self.next {
            next.line(stream, line);
        }
    }
}

/// Sends every line to several sinks (a Koji log and the task's live tail).
pub(crate) struct TeeSink(pub(crate) Vec<Arc<dyn LogSink>>);

impl LogSink for TeeSink {
    fn line(&self, stream: OutputStream, line: &str) {
        for sink in &self.0 {
            sink.line(stream, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lists_only_existing_logs_in_a_fixed_order() {
        let dir = tempfile::tempdir().unwrap();
        let logs = BuildrootLogs::create(dir.path().join("logs")).unwrap();
        assert!(logs.files().is_empty());
        logs.sink(BUILD_LOG)
            .unwrap()
            .line(OutputStream::Stderr, "error: boom");
        logs.append(STATE_LOG, "Start: init").unwrap();
        let names: Vec<String> = logs.files().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["state.log", "build.log"]);
        assert_eq!(
            std::fs::read_to_string(logs.path(BUILD_LOG)).unwrap(),
            "error: boom\n"
        );
    }

    #[test]
    fn a_rewritten_log_is_a_new_file_for_the_live_uploader() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let logs = BuildrootLogs::create(dir.path().join("logs")).unwrap();
        logs.write(INSTALLED_PKGS_LOG, "bash-5-1.x86_64\n").unwrap();
        let first = std::fs::metadata(logs.path(INSTALLED_PKGS_LOG)).unwrap();
        logs.write(INSTALLED_PKGS_LOG, "bash-5-1.x86_64\ngcc-12-1.x86_64\n")
            .unwrap();
        let second = std::fs::metadata(logs.path(INSTALLED_PKGS_LOG)).unwrap();
        // IncrementalUpload starts again from offset 0 only for a new inode (or a shorter
        // file); the same inode grown would get only its new tail uploaded.
        assert_ne!(first.ino(), second.ino());
        assert_eq!(
            std::fs::read_to_string(logs.path(INSTALLED_PKGS_LOG)).unwrap(),
            "bash-5-1.x86_64\ngcc-12-1.x86_64\n"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [INSTALLED_PKGS_LOG], "no scratch file is left");
    }
}
