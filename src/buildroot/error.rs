//! What can go wrong in a buildroot, worded as kojid words it where a packager sees it.

use std::path::PathBuf;
use std::time::Duration;

use koji_adjutant_actors::runtime::RuntimeError;

/// Errors of the buildroot engine. `Display` is the message the task fails with (the handlers
/// pass it to the hub as a `BuildError`/`BuildrootError` fault); docs/buildroot.md lists them.
#[derive(Debug, thiserror::Error)]
pub enum BuildrootError {
    /// mock's `--init` equivalent failed (container, dnf config or group install).
    #[error("could not init buildroot {name}: {reason}; see root.log for more information")]
    Init { name: String, reason: String },
    /// The SRPM's BuildRequires could not be installed (mock exits 30 here; kojid then says
    /// "see root.log").
    #[error(
        "error building package (arch {arch}), installing the BuildRequires failed (dnf exited with status {status}); see root.log for more information"
    )]
    BuildRequires { arch: String, status: i32 },
    /// rpmbuild itself failed (mock exits 1 or 10 here; kojid then says "see build.log").
    #[error(
        "error building package (arch {arch}), rpmbuild exited with status {status}; see build.log for more information"
    )]
    Rpmbuild { arch: String, status: i32 },
    /// rebuildSRPM's unpack or `rpmbuild -bs` failed (kojid: "error building srpm").
    #[error("error building srpm: {reason}; see build.log for more information")]
    Srpm { reason: String },
    /// A step ran past its limit and was killed.
    #[error("{step} ran longer than its limit of {} seconds and was killed", limit.as_secs())]
    Timeout { step: String, limit: Duration },
    #[error("out of memory (limit {limit}) during {step}")]
    OutOfMemory { step: String, limit: String },
    #[error("the build was cancelled during {step}")]
    Cancelled { step: String },
    /// The build network cannot be cut off (no user namespaces in the container); the build is
    /// refused rather than run with network.
    #[error(
        "cannot isolate the build step from the network: {message}; allow unprivileged user namespaces on the host (sysctl user.max_user_namespaces > 0) or set build_network to the buildroot_network"
    )]
    NetworkIsolation { message: String },
    /// A path from the hub or the command line is unusable (it would leave the work dir, or is
    /// not an SRPM).
    #[error("invalid input {what}: {message}")]
    InvalidInput { what: String, message: String },
    /// A configuration value the engine cannot honour.
    #[error("invalid buildroot setting {key}: {message}")]
    Setting { key: String, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The container runtime failed (podman itself, a missing image, …).
    #[error("{step}: {source}")]
    Runtime {
        step: String,
        #[source]
        source: RuntimeError,
    },
    /// Output of a tool in the container that the engine could not read.
    #[error("unexpected output from {tool}: {message}")]
    Parse { tool: String, message: String },
}

impl BuildrootError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BuildrootError::Io {
            action,
            path,
            source,
        }
    }

    /// A runtime error of `step`, with timeouts, OOM and cancellation turned into the engine's
    /// own variants so that their messages name the step.
    pub(crate) fn from_runtime(step: &str, error: RuntimeError) -> Self {
        match error {
            RuntimeError::StepTimeout { limit, .. } => BuildrootError::Timeout {
                step: step.to_owned(),
                limit,
            },
            RuntimeError::OutOfMemory { limit } => BuildrootError::OutOfMemory {
                step: step.to_owned(),
                limit,
            },
            RuntimeError::Cancelled { .. } => BuildrootError::Cancelled {
                step: step.to_owned(),
            },
            source => BuildrootError::Runtime {
                step: step.to_owned(),
                source,
            },
        }
    }
}
