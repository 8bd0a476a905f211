//! Everything about the podman runtime that an operator can configure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use koji_adjutant_actors::runtime::ResourceLimits;

/// Settings of [`super::PodmanRuntime`]. The config layer maps `kojid.conf` onto this; the
/// defaults suit a rootful Debian or Fedora host.
#[derive(Debug, Clone, PartialEq)]
pub struct PodmanOptions {
    /// The podman executable, a bare name looked up on `PATH` or an absolute path.
    pub podman: PathBuf,
    /// Host directory holding one sub-directory per container, bind-mounted at
    /// [`STEP_DIR_IN_CONTAINER`]: each step writes its own pid and exit status there, so that a
    /// podman failure (which reuses exit codes 125–127 and 255) is never taken for the
    /// command's result.
    pub run_dir: PathBuf,
    /// Labels put on every container, under the spec's own labels.
    pub labels: BTreeMap<String, String>,
    /// Limits applied when a spec leaves one unset.
    pub default_limits: ResourceLimits,
    /// Capabilities added back after `--cap-drop=ALL` on every container, on top of the spec's.
    /// `KILL` lets the runtime's root helper kill a cancelled step that runs as another user.
    pub required_caps: Vec<String>,
    /// Upper bound for `podman pull`.
    pub pull_timeout: Duration,
    /// Upper bound for the short podman commands (create, start, inspect, rm, ps, info).
    pub command_timeout: Duration,
    /// How long the in-container kill of a cancelled or timed-out step may take before the
    /// whole container is killed instead.
    pub kill_timeout: Duration,
    /// podman's `--timeout` on create: a last-resort lifetime after which conmon kills the
    /// container even if the worker is gone. `None` leaves it unlimited.
    pub container_lifetime: Option<Duration>,
}

/// Where a container sees its step directory.
pub const STEP_DIR_IN_CONTAINER: &str = "/run/koji-adjutant";

impl Default for PodmanOptions {
    fn default() -> Self {
        Self {
            podman: PathBuf::from("podman"),
            run_dir: PathBuf::from("/run/koji-adjutant/containers"),
            labels: BTreeMap::new(),
            default_limits: ResourceLimits::default(),
            required_caps: vec!["KILL".to_owned()],
            pull_timeout: Duration::from_secs(600),
            command_timeout: Duration::from_secs(120),
            kill_timeout: Duration::from_secs(30),
            container_lifetime: None,
        }
    }
}
