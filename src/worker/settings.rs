//! From a loaded `kojid.conf` to the settings of each part of the running worker.

use std::path::Path;

use koji_adjutant_actors::runtime::{PullPolicy, ResourceLimits};
use koji_adjutant_actors::settings::{LiveSettings, WorkerSettings};

use crate::config::Config;
use crate::config::types::ImagePullPolicy;
use crate::hub::options::HubOptions;
use crate::podman::PodmanOptions;

/// Why the configuration cannot run a worker although it loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "memory_limit = {value:?} is too large to count in bytes; use a size such as 4g or 512m"
    )]
    MemoryLimitTooLarge { value: String },
    #[error("pids_limit = {value} is larger than {max}; use a smaller process limit", max = u32::MAX)]
    PidsLimitTooLarge { value: u64 },
}

/// The hub options of the worker. The lock is always forced, as the packaged kojid.service
/// runs `kojid --fg --force-lock`: after a crash or `kill -9` the hub still holds the dead
/// process's exclusive session, and a worker that waits for it to expire stays down for the
/// session's lifetime. `--force-lock` on the command line is accepted and changes nothing.
pub fn hub_options(config: &Config) -> HubOptions {
    HubOptions::from_settings(&config.kojid, true)
}

/// The name of this worker on its containers. `worker_id` when set; otherwise the name the
/// hub knows the host by, which is the login user: the password `user`, or the common name of
/// the client certificate. The machine's host name is the last resort.
pub fn worker_id(config: &Config) -> String {
    if let Some(id) = config
        .adjutant
        .worker_id
        .as_ref()
        .filter(|id| !id.is_empty())
    {
        return id.clone();
    }
    if let Some(cert) = &config.kojid.cert
        && let Some(name) = certificate_common_name(cert)
    {
        return name;
    }
    if let Some(user) = config.kojid.user.as_ref().filter(|user| !user.is_empty()) {
        return user.clone();
    }
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn certificate_common_name(path: &Path) -> Option<String> {
    let pem = std::fs::read(path).ok()?;
    let cert = openssl::x509::X509::from_pem(&pem).ok()?;
    let entry = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?;
    entry.data().to_string().ok()
}

pub fn pull_policy(policy: ImagePullPolicy) -> PullPolicy {
    match policy {
        ImagePullPolicy::IfNotPresent => PullPolicy::IfNotPresent,
        ImagePullPolicy::Always => PullPolicy::Always,
        ImagePullPolicy::Never => PullPolicy::Never,
    }
}

/// `4g` → bytes, with podman's binary units.
fn memory_bytes(value: &str) -> Option<u64> {
    let (digits, factor) = match value.chars().last()? {
        'k' => (&value[..value.len() - 1], 1u64 << 10),
        'm' => (&value[..value.len() - 1], 1 << 20),
        'g' => (&value[..value.len() - 1], 1 << 30),
        'b' => (&value[..value.len() - 1], 1),
        _ => (value, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// Memory, CPU and pids limits of the task containers.
pub fn task_limits(config: &Config) -> Result<ResourceLimits, SettingsError> {
    let adjutant = &config.adjutant;
    let memory = adjutant
        .memory_limit
        .as_ref()
        .map(|size| {
            memory_bytes(&size.0).ok_or_else(|| SettingsError::MemoryLimitTooLarge {
                value: size.0.clone(),
            })
        })
        .transpose()?;
    let pids = adjutant
        .pids_limit
        .map(|value| u32::try_from(value).map_err(|_| SettingsError::PidsLimitTooLarge { value }))
        .transpose()?;
    Ok(ResourceLimits {
        memory,
        cpus: adjutant.cpu_limit,
        pids,
    })
}

/// The supervision core's settings.
pub fn worker_settings(config: &Config) -> Result<WorkerSettings, SettingsError> {
    let kojid = &config.kojid;
    let adjutant = &config.adjutant;
    let defaults = WorkerSettings::default();
    Ok(WorkerSettings {
        worker_id: worker_id(config),
        mockdir: kojid.mockdir.clone(),
        task_avail_delay: kojid.task_avail_delay.as_duration(),
        task_history_ttl: adjutant.monitoring_task_history_ttl.as_duration(),
        container_history_ttl: adjutant.monitoring_container_history_ttl.as_duration(),
        live: LiveSettings {
            maxjobs: usize::try_from(kojid.maxjobs).unwrap_or(usize::MAX),
            sleeptime: kojid.sleeptime.as_duration(),
            minspace_mib: kojid.minspace,
            drain_timeout: adjutant.drain_timeout.as_duration(),
            task_image_default: adjutant.task_image_default.clone(),
            pull_policy: pull_policy(adjutant.image_pull_policy),
            policy_enabled: adjutant.policy_enabled,
            policy_cache_ttl: adjutant.policy_cache_ttl.as_duration(),
            task_limits: task_limits(config)?,
            ..defaults.live
        },
        ..defaults
    })
}

/// The podman runtime's settings. Every container carries `container_labels` under the
/// worker's own labels.
pub fn podman_options(config: &Config) -> Result<PodmanOptions, SettingsError> {
    let adjutant = &config.adjutant;
    Ok(PodmanOptions {
        podman: adjutant.podman.clone(),
        labels: adjutant.container_labels.0.clone(),
        default_limits: task_limits(config)?,
        pull_timeout: adjutant.container_timeouts.pull,
        ..PodmanOptions::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, load};
    use std::time::Duration;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kojid.conf");
        std::fs::write(&path, text).unwrap();
        load(&ConfigSource {
            path: Some(path),
            overrides: vec![],
            env: Default::default(),
        })
        .unwrap()
    }

    const BASE: &str =
        "[kojid]\nserver = http://127.0.0.1:1/kojihub\ntopurl = http://127.0.0.1:1/kojifiles\n";

    #[test]
    fn kojid_keys_become_worker_settings() {
        let config = config(&format!(
            "{BASE}user = builder1.local\nmaxjobs = 3\nsleeptime = 2\nminspace = 10\nmockdir = /srv/mock\n\
             [adjutant]\ndrain_timeout = 60\nmemory_limit = 2g\ncpu_limit = 1.5\npids_limit = 500\n\
             image_pull_policy = never\ntask_image_default = localhost/x:1\ncontainer_labels = a=b\n"
        ));
        let settings = worker_settings(&config).unwrap();
        assert_eq!(settings.worker_id, "builder1.local");
        assert_eq!(settings.mockdir, Path::new("/srv/mock"));
        assert_eq!(settings.live.maxjobs, 3);
        assert_eq!(settings.live.sleeptime, Duration::from_secs(2));
        assert_eq!(settings.live.minspace_mib, 10);
        assert_eq!(settings.live.drain_timeout, Duration::from_secs(60));
        assert_eq!(settings.live.pull_policy, PullPolicy::Never);
        assert_eq!(settings.live.task_image_default, "localhost/x:1");
        assert_eq!(settings.live.task_limits.memory, Some(2 << 30));
        assert_eq!(settings.live.task_limits.cpus, Some(1.5));
        assert_eq!(settings.live.task_limits.pids, Some(500));
        let podman = podman_options(&config).unwrap();
        assert_eq!(podman.labels["a"], "b");
        assert_eq!(podman.default_limits, settings.live.task_limits);
        assert!(hub_options(&config).force_lock);
    }

    #[test]
    fn worker_id_prefers_the_explicit_setting() {
        let config = config(&format!(
            "{BASE}user = builder1.local\n[adjutant]\nworker_id = rack7\n"
        ));
        assert_eq!(worker_id(&config), "rack7");
    }

    #[test]
    fn memory_sizes_use_binary_units() {
        assert_eq!(memory_bytes("512m"), Some(512 << 20));
        assert_eq!(memory_bytes("1024"), Some(1024));
        assert_eq!(memory_bytes("7b"), Some(7));
        assert_eq!(memory_bytes("99999999999999999999g"), None);
    }
}
