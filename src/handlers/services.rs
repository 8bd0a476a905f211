//! What the build handlers need from the worker besides the [`TaskContext`]: settings from
//! kojid.conf, file transfer with the hub (topurl downloads, uploads into the task's upload
//! dir) and the container buildroot engine. Each is a trait so that the handlers are tested
//! with in-memory fakes and wired to `src/hub` and `src/buildroot` by the worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use koji_adjutant_actors::handler::TaskContext;

use crate::buildroot::{
    BuildOutput, Buildroot, BuildrootContainers, BuildrootError, BuildrootSettings, BuildrootSpec,
    InstalledRpms, SrpmOutput,
};

/// The kojid.conf settings the build handlers read.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSettings {
    /// `workdir`: task work dirs are `<workdir>/tasks/<id % 10000>/<id>`.
    pub workdir: PathBuf,
    /// `literal_task_arches`: globs of arches kept literally as buildArch task arches.
    pub literal_task_arches: String,
    /// `build_arch_can_fail`: one failing buildArch does not cancel the others.
    pub build_arch_can_fail: bool,
    /// How long `waitrepo` pauses between checks (kojid: 60 s).
    pub waitrepo_pause: std::time::Duration,
    /// How long `waitrepo` waits before giving up (kojid: 120 min).
    pub waitrepo_timeout: std::time::Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            workdir: PathBuf::from("/var/tmp/koji"),
            literal_task_arches: String::new(),
            build_arch_can_fail: false,
            waitrepo_pause: std::time::Duration::from_secs(60),
            waitrepo_timeout: std::time::Duration::from_secs(120 * 60),
        }
    }
}

impl BuildSettings {
    /// kojid's `BaseTaskHandler.workdir`.
    pub fn task_workdir(&self, task_id: i64) -> PathBuf {
        self.workdir
            .join("tasks")
            .join((task_id % 10000).to_string())
            .join(task_id.to_string())
    }
}

/// The work-relative directory a task uploads into (`tasks/<id % 10000>/<id>`), the prefix of
/// every path in its result.
pub fn task_upload_dir(task_id: i64) -> String {
    format!("tasks/{}/{task_id}", task_id % 10000)
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("download of {relpath} failed: {detail}")]
    Download { relpath: String, detail: String },
    /// The file server answered 404: callers that have a fallback (rpmlist.jsonl) use it.
    #[error("{relpath} does not exist on the file server (HTTP 404)")]
    NotFound { relpath: String },
    #[error("upload of {name} failed: {detail}")]
    Upload { name: String, detail: String },
    #[error("refusing path {relpath:?}: {reason}")]
    BadPath { relpath: String, reason: String },
    /// The worker could not find the task's subsession client: a wiring bug, not the hub's.
    #[error(
        "task {task_id} has no hub session of its own to transfer files over (its task hub is not the worker's subsession adapter); this is a bug in koji-adjutant, please report it"
    )]
    NoTaskSession { task_id: i64 },
}

/// Transfers with the hub for one task: topurl downloads and uploads into
/// `tasks/<id % 10000>/<id>/`.
#[async_trait::async_trait]
pub trait TaskFiles: Send + Sync + 'static {
    /// `GET <topurl>/<relpath>` into `destination`.
    async fn download(&self, relpath: &str, destination: &Path) -> Result<u64, FileError>;

    /// Uploads `local` as `<task upload dir>/<name>`, verified (`checkUpload`).
    async fn upload(&self, task_id: i64, local: &Path, name: &str) -> Result<(), FileError>;

    /// Sends what was appended to `local` since the last call (the incremental log uploader,
    /// §3.5), as `<task upload dir>/<name>`.
    async fn sync_log(&self, task_id: i64, local: &Path, name: &str) -> Result<(), FileError>;

    /// The task is over: drop its incremental upload state.
    async fn forget_task(&self, _task_id: i64) {}
}

/// Gives each build task its [`TaskFiles`]. The worker's uploads go over the task's own
/// subsession, as kojid's task process does, so the transfer object is made per task and
/// its incremental upload state (what each live log has sent) lives and dies with the task.
pub trait TaskFilesProvider: Send + Sync + 'static {
    fn for_task(&self, ctx: &TaskContext) -> Arc<dyn TaskFiles>;
}

/// The same [`TaskFiles`] for every task: the handler tests' in-memory files, and runners
/// with one session per task already (the build e2e runner).
pub struct FixedFiles(pub Arc<dyn TaskFiles>);

impl TaskFilesProvider for FixedFiles {
    fn for_task(&self, _ctx: &TaskContext) -> Arc<dyn TaskFiles> {
        Arc::clone(&self.0)
    }
}

/// A live buildroot as the handlers drive it: the engine's [`crate::buildroot::Buildroot`] in
/// the worker, an in-memory fake in the handler tests.
#[async_trait::async_trait]
pub trait ActiveBuildroot: Send + Sync {
    /// The rpmdb now (and `installed_pkgs.log` rewritten).
    async fn installed_rpms(&self) -> Result<InstalledRpms, BuildrootError>;
    /// buildArch's rebuild: BuildRequires, then `rpmbuild --rebuild` offline.
    async fn build_rpms(&mut self, srpm: &Path) -> Result<BuildOutput, BuildrootError>;
    /// rebuildSRPM's unpack and `rpmbuild -bs`.
    async fn build_srpm(&mut self, srpm: &Path) -> Result<SrpmOutput, BuildrootError>;
    /// Removes the container.
    async fn release(self: Box<Self>) -> Result<(), BuildrootError>;
}

/// Makes buildroots (mock `--init`).
#[async_trait::async_trait]
pub trait BuildrootFactory: Send + Sync + 'static {
    async fn init(
        &self,
        ctx: &TaskContext,
        spec: BuildrootSpec,
    ) -> Result<Box<dyn ActiveBuildroot>, BuildrootError>;
}

/// The real engine: one container per buildroot, created through the task's
/// [`koji_adjutant_actors::handler::TaskContainers`] so that the registry knows it and the
/// TaskActor removes it however the task ends.
pub struct ContainerEngine;

#[async_trait::async_trait]
impl BuildrootFactory for ContainerEngine {
    async fn init(
        &self,
        ctx: &TaskContext,
        spec: BuildrootSpec,
    ) -> Result<Box<dyn ActiveBuildroot>, BuildrootError> {
        let containers: Arc<dyn BuildrootContainers> = Arc::new(ctx.containers.clone());
        let buildroot = Buildroot::init(containers, spec, Some(Arc::clone(&ctx.logs))).await?;
        Ok(Box::new(buildroot))
    }
}

#[async_trait::async_trait]
impl ActiveBuildroot for Buildroot {
    async fn installed_rpms(&self) -> Result<InstalledRpms, BuildrootError> {
        Buildroot::installed_rpms(self).await
    }
    async fn build_rpms(&mut self, srpm: &Path) -> Result<BuildOutput, BuildrootError> {
        Buildroot::build_rpms(self, srpm).await
    }
    async fn build_srpm(&mut self, srpm: &Path) -> Result<SrpmOutput, BuildrootError> {
        Buildroot::build_srpm(self, srpm).await
    }
    async fn release(self: Box<Self>) -> Result<(), BuildrootError> {
        Buildroot::release(*self).await
    }
}

/// Everything the build handler factories share.
#[derive(Clone)]
pub struct BuildServices {
    pub settings: BuildSettings,
    /// Transfers with the hub; handlers take one [`TaskFiles`] per task run.
    pub files: Arc<dyn TaskFilesProvider>,
    pub engine: Arc<dyn BuildrootFactory>,
    /// Worker-wide buildroot settings (kojid.conf and `[adjutant]`).
    pub buildroot: BuildrootSettings,
    /// kojid.conf `topurl` (space separated list): the buildroot's repo baseurls.
    pub topurls: Vec<String>,
    /// kojid.conf `topdir`, for `file://` baseurls when no topurl is set.
    pub topdir: Option<PathBuf>,
}

impl BuildServices {
    /// The services the worker registers the build handlers with: settings from the loaded
    /// configuration, file transfer over each task's own subsession (`session_of` finds its
    /// hub client, see [`super::hubfiles::SubsessionFiles`]) and the container engine.
    pub fn from_config(
        config: &crate::config::Config,
        session_of: super::hubfiles::SessionLookup,
    ) -> Result<Self, BuildrootError> {
        let kojid = &config.kojid;
        Ok(Self {
            settings: BuildSettings {
                workdir: kojid.workdir.clone(),
                literal_task_arches: kojid.literal_task_arches.clone(),
                build_arch_can_fail: kojid.build_arch_can_fail,
                ..BuildSettings::default()
            },
            files: Arc::new(super::hubfiles::SubsessionFiles::new(session_of)),
            engine: Arc::new(ContainerEngine),
            buildroot: BuildrootSettings::from_config(config)?,
            topurls: kojid.topurl.0.clone(),
            topdir: Some(kojid.topdir.clone()),
        })
    }
}
