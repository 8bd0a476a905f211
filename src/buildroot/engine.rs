//! The buildroot engine proper: container, phases, steps.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use koji_adjutant_actors::handler::TaskContainers;
use koji_adjutant_actors::runtime::{
    ContainerHandle, ContainerRuntime, ContainerSpec, ExecOutcome, ExecSpec, LogSink, PullPolicy,
    RuntimeError,
};
use tokio_util::sync::CancellationToken;

use super::{
    BuildOutput, BuildrootError, BuildrootLogs, BuildrootSettings, BuildrootSpec, InstalledRpms,
    LogFile, PhaseTiming, SrpmOutput,
};

/// Where a buildroot gets its containers: the task's [`TaskContainers`] in the worker (so the
/// registry knows them and the TaskActor removes them), or [`LocalContainers`] for local
/// builds.
#[async_trait::async_trait]
pub trait BuildrootContainers: Send + Sync {
    /// The next deterministic container name.
    fn next_name(&self) -> String;
    /// Labels for a new container.
    fn labels(&self) -> BTreeMap<String, String>;
    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        pull: PullPolicy,
    ) -> Result<ContainerHandle, RuntimeError>;
    /// Runs one step; cancelled with the task.
    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<ExecOutcome, RuntimeError>;
    async fn remove(&self, container: &ContainerHandle) -> Result<(), RuntimeError>;
}

#[async_trait::async_trait]
impl BuildrootContainers for TaskContainers {
    fn next_name(&self) -> String {
        TaskContainers::next_name(self)
    }
    fn labels(&self) -> BTreeMap<String, String> {
        TaskContainers::labels(self)
    }
    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        pull: PullPolicy,
    ) -> Result<ContainerHandle, RuntimeError> {
        TaskContainers::create_and_start(self, spec, pull).await
    }
    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<ExecOutcome, RuntimeError> {
        TaskContainers::exec(self, container, spec, sink).await
    }
    async fn remove(&self, container: &ContainerHandle) -> Result<(), RuntimeError> {
        self.runtime().remove(container, true).await
    }
}

/// Containers of a local build (`koji-adjutant build`): no registry, no hub; cancelled with
/// `cancel` (Ctrl-C).
pub struct LocalContainers {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub cancel: CancellationToken,
    /// Container names are `<prefix>-<n>`, labels carry `io.koji.adjutant.worker=<prefix>`.
    pub prefix: String,
    pub(crate) serial: std::sync::atomic::AtomicU32,
}

impl LocalContainers {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        cancel: CancellationToken,
        prefix: &str,
    ) -> Self {
        Self {
            runtime,
            cancel,
            prefix: prefix.to_owned(),
            serial: std::sync::atomic::AtomicU32::new(0),
        }
    }
}

#[async_trait::async_trait]
impl BuildrootContainers for LocalContainers {
    fn next_name(&self) -> String {
        todo!()
    }
    fn labels(&self) -> BTreeMap<String, String> {
        todo!()
    }
    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        pull: PullPolicy,
    ) -> Result<ContainerHandle, RuntimeError> {
        todo!("{spec:?} {pull:?}")
    }
    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<ExecOutcome, RuntimeError> {
        let _ = sink;
        todo!("{container:?} {spec:?}")
    }
    async fn remove(&self, container: &ContainerHandle) -> Result<(), RuntimeError> {
        todo!("{container:?}")
    }
}

/// A live buildroot: a started container with its group installed.
pub struct Buildroot {
    pub(crate) containers: Arc<dyn BuildrootContainers>,
    pub(crate) container: Option<ContainerHandle>,
    pub(crate) spec: BuildrootSpec,
    pub(crate) logs: BuildrootLogs,
    pub(crate) timings: Vec<PhaseTiming>,
}

impl Buildroot {
    /// mock `--init`: creates and starts the container, writes the dnf config and macros,
    /// installs the group, writes `hw_info.log`. `observer` also receives every line written
    /// to `mock_output.log` (the task's live log tail in the dashboard). On failure the
    /// container is removed and the logs stay in the work dir.
    pub async fn init(
        containers: Arc<dyn BuildrootContainers>,
        spec: BuildrootSpec,
        observer: Option<Arc<dyn LogSink>>,
    ) -> Result<Self, BuildrootError> {
        todo!(
            "{spec:?} {}",
            observer.is_some() && Arc::strong_count(&containers) > 0
        )
    }

    /// kojid's buildroot name `<tag>-<br_id>-<repo_id>`.
    pub fn name(&self) -> String {
        self.spec.name()
    }

    pub fn spec(&self) -> &BuildrootSpec {
        &self.spec
    }

    /// The log files that exist now; upload each with the incremental uploader every second.
    pub fn log_files(&self) -> Vec<LogFile> {
        self.logs.files()
    }

    pub fn logs(&self) -> &BuildrootLogs {
        &self.logs
    }

    /// Phase durations so far.
    pub fn timings(&self) -> &[PhaseTiming] {
        &self.timings
    }

    /// The rpmdb of the buildroot now; also rewrites `installed_pkgs.log`.
    pub async fn installed_rpms(&self) -> Result<InstalledRpms, BuildrootError> {
        todo!()
    }

    /// buildArch's `mock --rebuild`: installs the SRPM's BuildRequires (root.log), then runs
    /// `rpmbuild --rebuild` as `build_user` with no network (build.log), and collects the
    /// results. `srpm` is a host path inside the task work dir.
    pub async fn build_rpms(&mut self, srpm: &Path) -> Result<BuildOutput, BuildrootError> {
        todo!("{srpm:?}")
    }

    /// rebuildSRPM: unpacks `srpm` and runs `rpmbuild -bs --nodeps` as `build_user` with no
    /// network; checks that exactly one SRPM named `<n>-<v>-<r>.src.rpm` came out.
    pub async fn build_srpm(&mut self, srpm: &Path) -> Result<SrpmOutput, BuildrootError> {
        todo!("{srpm:?}")
    }

    /// Removes the container. Dropping a `Buildroot` without it also removes the container,
    /// in the background.
    pub async fn release(mut self) -> Result<(), BuildrootError> {
        let _ = self.container.take();
        todo!()
    }
}

pub(crate) fn settings_from_config(
    config: &crate::config::Config,
) -> Result<BuildrootSettings, BuildrootError> {
    let _ = config;
    todo!()
}
