//! Local builds (`koji-adjutant build FOO.src.rpm`): the buildArch pipeline with no hub.

use std::path::PathBuf;
use std::sync::Arc;

use koji_adjutant_actors::runtime::ContainerRuntime;
use tokio_util::sync::CancellationToken;

use super::{BuildOutput, BuildrootError, BuildrootSettings, InstalledRpms, LogFile, PhaseTiming};

/// A local build's inputs (the `build` subcommand's arguments).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalBuild {
    pub srpm: PathBuf,
    pub image: String,
    /// Baseurls of the `build` repo; empty: the image's own packages are the buildroot.
    pub repos: Vec<String>,
    /// Target arch; `None`: the SRPM's `BuildArch` if noarch, else the host's arch.
    pub arch: Option<String>,
    /// `--define 'name value'`, applied like tag extra `rpm.macro.*`.
    pub defines: Vec<(String, String)>,
    pub result_dir: PathBuf,
    pub settings: BuildrootSettings,
}

/// What a local build left in `result_dir`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalBuildReport {
    pub output: BuildOutput,
    pub logs: Vec<LogFile>,
    pub installed: InstalledRpms,
    pub timings: Vec<PhaseTiming>,
}

/// Runs the pipeline; RPMs, SRPM and logs end up in `result_dir`.
pub async fn run_local_build(
    runtime: Arc<dyn ContainerRuntime>,
    build: &LocalBuild,
    cancel: CancellationToken,
) -> Result<LocalBuildReport, BuildrootError> {
    todo!(
        "{build:?} {}",
        cancel.is_cancelled() && Arc::strong_count(&runtime) > 0
    )
}
