//! The host facts readiness depends on, and the service manager notifications, behind traits so
//! that the supervision core is testable without a real disk, load or systemd.

use std::path::Path;

/// Why a host fact could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {what}: {message}")]
pub struct ProbeError {
    pub what: String,
    pub message: String,
}

pub trait HostProbe: Send + Sync + 'static {
    /// Free space available to unprivileged users under `path`, in MiB (statvfs
    /// f_bavail × f_bsize, as kojid's `checkSpace`).
    fn free_space_mib(&self, path: &Path) -> Result<u64, ProbeError>;
    /// The 1-minute load average.
    fn load_average_1m(&self) -> Result<f64, ProbeError>;
    fn online_cpus(&self) -> usize;
}

/// sd_notify-style notifications. The real one (in `src/`) writes to `NOTIFY_SOCKET`.
pub trait Notifier: Send + Sync + 'static {
    fn ready(&self);
    fn status(&self, status: &str);
    fn watchdog(&self);
    fn stopping(&self);
}

/// A notifier for when no service manager listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn ready(&self) {}
    fn status(&self, _status: &str) {}
    fn watchdog(&self) {}
    fn stopping(&self) {}
}
