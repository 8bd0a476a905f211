//! The buildroot's log files, in the names Koji users know (spec §3.5).

use std::path::PathBuf;

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
    /// The log directory (host path).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Every log file that exists now, in a stable order. Call it on every sync: files appear
    /// as phases start.
    pub fn files(&self) -> Vec<LogFile> {
        todo!()
    }
}
