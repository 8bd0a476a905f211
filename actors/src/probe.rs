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

/// The real host: statvfs for free space, `/proc/loadavg`, and the online CPUs from
/// `/sys/devices/system/cpu/online` (what kojid's `os.sysconf('SC_NPROCESSORS_ONLN')` counts).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemProbe;

impl HostProbe for SystemProbe {
    fn free_space_mib(&self, path: &Path) -> Result<u64, ProbeError> {
        let stat = nix::sys::statvfs::statvfs(path).map_err(|errno| ProbeError {
            what: format!("the free space of {}", path.display()),
            message: errno.desc().to_owned(),
        })?;
        // kojid's checkSpace: f_bavail × f_bsize.
        let bytes = stat.blocks_available().saturating_mul(stat.block_size());
        Ok(bytes / (1024 * 1024))
    }

    fn load_average_1m(&self) -> Result<f64, ProbeError> {
        let error = |message: String| ProbeError {
            what: "/proc/loadavg".to_owned(),
            message,
        };
        let text = std::fs::read_to_string("/proc/loadavg").map_err(|e| error(e.to_string()))?;
        text.split_whitespace()
            .next()
            .and_then(|first| first.parse().ok())
            .ok_or_else(|| error(format!("unexpected content {text:?}")))
    }

    fn online_cpus(&self) -> usize {
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|text| count_cpu_list(text.trim()))
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1)
    }
}

/// Counts a kernel CPU list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    list.split(',').try_fold(0usize, |total, part| {
        let count = match part.split_once('-') {
            Some((first, last)) => {
                let first: usize = first.parse().ok()?;
                let last: usize = last.parse().ok()?;
                last.checked_sub(first)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
        Some(total + count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list(""), None);
    }

    #[test]
    fn the_real_host_answers() {
        let probe = SystemProbe;
        assert!(probe.free_space_mib(Path::new("/")).is_ok());
        assert!(probe.load_average_1m().unwrap() >= 0.0);
        assert!(probe.online_cpus() >= 1);
        let missing = probe
            .free_space_mib(Path::new("/nonexistent/mockdir"))
            .unwrap_err();
        assert_eq!(missing.what, "the free space of /nonexistent/mockdir");
        assert!(missing.message.contains("No such file"), "{missing}");
    }
}
