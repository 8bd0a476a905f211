//! Local builds (`koji-adjutant build FOO.src.rpm`): the buildArch pipeline with no hub.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use koji_adjutant_actors::runtime::ContainerRuntime;
use tokio_util::sync::CancellationToken;

use super::{
    BuildOutput, Buildroot, BuildrootError, BuildrootSettings, BuildrootSpec, InstallGroup,
    InstalledRpms, LocalContainers, LogFile, PhaseTiming, TagExtra,
};

/// A local build's inputs (the `build` subcommand's arguments).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalBuild {
    pub srpm: PathBuf,
    pub image: String,
    /// Baseurls of the `build` repo; empty: the image's own packages are the buildroot.
    pub repos: Vec<String>,
    /// Target arch; `None`: the host's arch (a `BuildArch: noarch` package still builds
    /// noarch rpms, as with mock).
    pub arch: Option<String>,
    /// `--define 'name value'`, applied like tag extra `rpm.macro.*`.
    pub defines: Vec<(String, String)>,
    pub result_dir: PathBuf,
    pub settings: BuildrootSettings,
}

/// What a local build left in `result_dir`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalBuildReport {
    /// Paths in `result_dir`.
    pub output: BuildOutput,
    /// Paths in `result_dir`.
    pub logs: Vec<LogFile>,
    pub installed: InstalledRpms,
    pub timings: Vec<PhaseTiming>,
}

/// What a failed local build leaves behind: the error and the logs copied to `result_dir`.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct LocalBuildFailure {
    #[source]
    pub error: BuildrootError,
    pub logs: Vec<LogFile>,
}

/// Runs the pipeline; RPMs, the rebuilt SRPM and the logs end up in `result_dir` (flat, as
/// mock's result dir). The work dir is a temporary directory next to `result_dir`, removed
/// afterwards.
pub async fn run_local_build(
    runtime: Arc<dyn ContainerRuntime>,
    build: &LocalBuild,
    cancel: CancellationToken,
) -> Result<LocalBuildReport, LocalBuildFailure> {
    let fail = |error: BuildrootError| LocalBuildFailure {
        error,
        logs: Vec::new(),
    };
    let srpm_name = build
        .srpm
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".src.rpm"))
        .ok_or_else(|| {
            fail(BuildrootError::InvalidInput {
                what: format!("SRPM {}", build.srpm.display()),
                message: "expected a source rpm (a file named *.src.rpm)".into(),
            })
        })?;
    std::fs::create_dir_all(&build.result_dir)
        .map_err(BuildrootError::io(
            "creating the result dir",
            &build.result_dir,
        ))
        .map_err(fail)?;
    let work = tempfile::Builder::new()
        .prefix(".koji-adjutant-work-")
        .tempdir_in(&build.result_dir)
        .map_err(BuildrootError::io(
            "creating a work dir in",
            &build.result_dir,
        ))
        .map_err(fail)?;
    let work_dir = work.path().to_path_buf();
    let srpm_dir = work_dir.join("srpm");
    std::fs::create_dir_all(&srpm_dir)
        .map_err(BuildrootError::io("creating", &srpm_dir))
        .map_err(fail)?;
    let local_srpm = srpm_dir.join(&srpm_name);
    std::fs::copy(&build.srpm, &local_srpm)
        .map_err(BuildrootError::io("copying the SRPM", &build.srpm))
        .map_err(fail)?;
    let arch = build
        .arch
        .clone()
        .unwrap_or_else(|| super::canon_arch(std::env::consts::ARCH));
    let spec = BuildrootSpec {
        image: build.image.clone(),
        work_dir: work_dir.clone(),
        arch,
        tag_name: "local".into(),
        repo_id: None,
        buildroot_id: None,
        repo_urls: build.repos.clone(),
        install_group: InstallGroup::Build,
        tag_extra: TagExtra::default(),
        extra_macros: build.defines.clone(),
        settings: build.settings.clone(),
    };
    // Unique per build, so that parallel local builds (and tests) never share a name.
    let prefix = format!(
        "koji-adjutant-local-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let containers = Arc::new(LocalContainers::new(runtime, cancel, &prefix));
    let outcome = build_in(containers, spec, &local_srpm).await;
    let logs = copy_logs(&work_dir.join("logs"), &build.result_dir);
    let (output, installed, timings) = match outcome {
        Ok(done) => done,
        Err(error) => return Err(LocalBuildFailure { error, logs }),
    };
    let mut copied = BuildOutput::default();
    for (from, to) in [
        (&output.rpms, &mut copied.rpms),
        (&output.srpms, &mut copied.srpms),
    ] {
        for path in from {
            let target = build.result_dir.join(path.file_name().unwrap_or_default());
            std::fs::copy(path, &target)
                .map_err(BuildrootError::io(
                    "copying a result to the result dir",
                    path,
                ))
                .map_err(|error| LocalBuildFailure {
                    error,
                    logs: logs.clone(),
                })?;
            to.push(target);
        }
    }
    Ok(LocalBuildReport {
        output: copied,
        logs,
        installed,
        timings,
    })
}

async fn build_in(
    containers: Arc<LocalContainers>,
    spec: BuildrootSpec,
    srpm: &Path,
) -> Result<(BuildOutput, InstalledRpms, Vec<PhaseTiming>), BuildrootError> {
    let mut buildroot = Buildroot::init(containers, spec, None).await?;
    let result = async {
        buildroot.installed_rpms().await?;
        let output = buildroot.build_rpms(srpm).await?;
        let installed = buildroot.installed_rpms().await?;
        Ok((output, installed))
    }
    .await;
    let timings = buildroot.timings().to_vec();
    let released = buildroot.release().await;
    let (output, installed) = result?;
    released?;
    Ok((output, installed, timings))
}

/// Copies the Koji logs into the result dir; a log that cannot be copied is reported, not
/// fatal: the build's own outcome matters more.
fn copy_logs(from: &Path, to: &Path) -> Vec<LogFile> {
    let logs = super::BuildrootLogs {
        dir: from.to_path_buf(),
    };
    let mut copied = Vec::new();
    for log in logs.files() {
        let target = to.join(&log.name);
        match std::fs::copy(&log.path, &target) {
            Ok(_) => copied.push(LogFile {
                name: log.name,
                path: target,
            }),
            Err(error) => {
                tracing::warn!(log = %log.path.display(), %error, "cannot copy a log to the result dir")
            }
        }
    }
    copied
}

/// The `build` subcommand: parses its arguments, runs the build in podman, prints where the
/// RPMs and logs are. Returns the process exit status: 0 built, 1 the build failed, 2 bad
/// arguments.
pub fn build_command(args: &crate::cli::BuildArgs, verbose: bool, debug: bool) -> u8 {
    use crate::config::types::{BuildrootMode, SettingType, UidGid};

    let level = crate::logging::effective_level(None, verbose, debug);
    if let Err(error) = crate::logging::init(crate::config::types::LogFormat::Text, level) {
        eprintln!("error: {error}");
        return 2;
    }
    let usage = |message: String| {
        eprintln!("koji-adjutant build: {message}");
        2
    };
    let mode = match BuildrootMode::parse(&args.buildroot_mode) {
        Ok(mode) => mode,
        Err(expected) => return usage(format!("--buildroot-mode must be {expected}")),
    };
    let build_user = match UidGid::parse(&args.build_user) {
        Ok(user) => user,
        Err(expected) => return usage(format!("--build-user must be a {expected}")),
    };
    let pull_policy = match args.pull.as_str() {
        "if-not-present" => koji_adjutant_actors::runtime::PullPolicy::IfNotPresent,
        "always" => koji_adjutant_actors::runtime::PullPolicy::Always,
        "never" => koji_adjutant_actors::runtime::PullPolicy::Never,
        other => {
            return usage(format!(
                "--pull must be if-not-present, always or never, not {other:?}"
            ));
        }
    };
    if !args.srpm.is_file() {
        return usage(format!("{} is not a file", args.srpm.display()));
    }
    let build = LocalBuild {
        srpm: args.srpm.clone(),
        image: args.image.clone(),
        repos: args.repos.clone(),
        arch: args.arch.clone(),
        defines: args.defines.clone(),
        result_dir: args.result_dir.clone(),
        settings: BuildrootSettings {
            mode,
            build_user,
            pull_policy,
            rpmbuild_timeout: std::time::Duration::from_secs(args.rpmbuild_timeout),
            ..BuildrootSettings::default()
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("koji-adjutant build: cannot start the async runtime: {error}");
            return 1;
        }
    };
    let outcome = runtime.block_on(async {
        let podman: Arc<dyn ContainerRuntime> = Arc::new(crate::podman::PodmanRuntime::new(
            crate::podman::PodmanOptions::default(),
        ));
        let cancel = CancellationToken::new();
        let on_interrupt = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("koji-adjutant build: interrupted, stopping the build");
                on_interrupt.cancel();
            }
        });
        run_local_build(podman, &build, cancel).await
    });
    match outcome {
        Ok(report) => {
            for timing in &report.timings {
                println!(
                    "phase {}: {:.1} s",
                    timing.phase,
                    timing.duration.as_secs_f64()
                );
            }
            for path in report.output.srpms.iter().chain(&report.output.rpms) {
                println!("wrote {}", path.display());
            }
            println!("logs in {}", build.result_dir.display());
            0
        }
        Err(failure) => {
            eprintln!("koji-adjutant build: {}", failure.error);
            if !failure.logs.is_empty() {
                eprintln!("logs in {}", build.result_dir.display());
            }
            1
        }
    }
}
