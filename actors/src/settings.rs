//! The settings the supervision core needs, already parsed and validated by `src/config`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::runtime::{PullPolicy, ResourceLimits};

/// Worker settings. The ones in [`LiveSettings`] can change on SIGHUP; the others need a restart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerSettings {
    /// Identifies this worker's containers (`io.koji.adjutant.worker` label); usually the host name.
    pub worker_id: String,
    /// The `mockdir`-equivalent whose free space gates readiness.
    pub mockdir: PathBuf,
    /// `task_avail_delay` of the legacy protocol.
    pub task_avail_delay: Duration,
    /// Backoff of the long-lived actors' restarts: first delay, doubled up to `restart_backoff_max`.
    pub restart_backoff_initial: Duration,
    pub restart_backoff_max: Duration,
    /// How long a finished task stays in the snapshot's history (`monitoring_task_history_ttl`).
    pub task_history_ttl: Duration,
    /// How long a removed container stays in the registry's history
    /// (`monitoring_container_history_ttl`).
    pub container_history_ttl: Duration,
    pub live: LiveSettings,
}

/// Settings that apply without a restart (SIGHUP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveSettings {
    pub maxjobs: usize,
    /// The idle poll interval (kojid's `sleeptime`, default 15 s).
    pub sleeptime: Duration,
    /// The fast poll interval used for a while after a task ends or a burst was cut short.
    pub fast_poll_interval: Duration,
    /// How long the fast poll lasts once triggered.
    pub fast_poll_window: Duration,
    /// Minimum free space in `mockdir`, MiB (kojid's `minspace`, default 8192).
    pub minspace_mib: u64,
    /// Not ready when the 1-minute load average exceeds this factor × online CPUs (kojid: 4).
    pub max_load_per_cpu: f64,
    /// SIGTERM drain: how long running tasks may go on. Zero is kojid: kill and free at once.
    pub drain_timeout: Duration,
    /// The image of last resort (`task_image_default`).
    pub task_image_default: String,
    pub pull_policy: PullPolicy,
    /// Ask the hub's `adjutant_image_policy` at all (`policy_enabled`); when off every task
    /// gets `task_image_default`.
    pub policy_enabled: bool,
    pub policy_cache_ttl: Duration,
    /// Memory, CPU and pids limits for the containers of tasks started from now on.
    pub task_limits: ResourceLimits,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            worker_id: "koji-adjutant".to_owned(),
            mockdir: PathBuf::from("/var/lib/mock"),
            task_avail_delay: Duration::from_secs(300),
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            task_history_ttl: Duration::from_secs(86_400),
            container_history_ttl: Duration::from_secs(3600),
            live: LiveSettings::default(),
        }
    }
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            maxjobs: 10,
            sleeptime: Duration::from_secs(15),
            fast_poll_interval: Duration::from_secs(1),
            fast_poll_window: Duration::from_secs(30),
            minspace_mib: 8192,
            max_load_per_cpu: 4.0,
            drain_timeout: Duration::ZERO,
            task_image_default: "registry.fedoraproject.org/fedora:latest".to_owned(),
            pull_policy: PullPolicy::IfNotPresent,
            policy_enabled: true,
            policy_cache_ttl: Duration::from_secs(300),
            task_limits: ResourceLimits::default(),
        }
    }
}

impl WorkerSettings {
    /// Names of the settings that differ between `self` and `new` but only apply after a
    /// restart; the Supervisor logs them on reload.
    pub fn restart_only_changes(&self, new: &WorkerSettings) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.worker_id != new.worker_id {
            changed.push("worker_id");
        }
        if self.mockdir != new.mockdir {
            changed.push("mockdir");
        }
        if self.task_avail_delay != new.task_avail_delay {
            changed.push("task_avail_delay");
        }
        if self.restart_backoff_initial != new.restart_backoff_initial
            || self.restart_backoff_max != new.restart_backoff_max
        {
            changed.push("restart_backoff");
        }
        if self.task_history_ttl != new.task_history_ttl {
            changed.push("monitoring_task_history_ttl");
        }
        if self.container_history_ttl != new.container_history_ttl {
            changed.push("monitoring_container_history_ttl");
        }
        changed
    }
}
