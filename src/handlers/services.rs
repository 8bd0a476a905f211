//! What the build handlers need from the worker besides the [`TaskContext`]: settings from
//! kojid.conf, file transfer with the hub (topurl downloads, uploads into the task's upload
//! dir) and the container buildroot engine. Each is a trait so that the handlers are tested
//! with in-memory fakes and wired to `src/hub` and `src/buildroot` by the worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use koji_adjutant_actors::handler::TaskContext;
use serde_json::Value;

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
}

/// One installed package of a buildroot, as `setBuildRootList` wants it (§5.5), before the
/// repo's `rpmlist.jsonl` ids are added.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstalledRpm {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: String,
    pub payloadhash: String,
    pub size: i64,
    pub buildtime: i64,
}

impl InstalledRpm {
    pub fn nvra(&self) -> String {
        format!(
            "{}-{}-{}.{}",
            self.name, self.version, self.release, self.arch
        )
    }
}

/// What the build handlers ask of a buildroot (§5.2, replacing the mock config).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildrootRequest {
    pub task_id: i64,
    pub buildroot_id: i64,
    pub repo_id: i64,
    pub tag_name: String,
    /// `canonArch(br_arch)`.
    pub br_arch: String,
    /// The rpm `--target` arch (`armhfp` → `armv7hl`).
    pub target_arch: String,
    /// `build` for buildArch, `srpm-build` for rebuildSRPM.
    pub install_group: String,
    /// `getBuildConfig(tag, event=repo.create_event)` (arches, extra with `rpm.macro.*`,
    /// `mock.*`, …).
    pub build_config: Value,
    /// The image chosen by the PolicyCache.
    pub image: String,
    /// Directory on the host where the engine writes its logs and results.
    pub result_dir: PathBuf,
}

/// How a build step in the buildroot ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// 0 on success; else mock's convention (10 = rpmbuild failed, 1 = unclear, other =
    /// buildroot problem), which selects the log named in the failure message.
    pub exit_status: i32,
    /// Files the step produced in the result dir (rpms and srpms).
    pub outputs: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The buildroot could not be set up (image, group install, BuildRequires).
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Step(String),
    #[error("cancelled")]
    Cancelled,
}

/// A buildroot that exists (container created, group installed).
#[async_trait::async_trait]
pub trait Buildroot: Send {
    /// The rpm database of the buildroot now, minus `buildsys-build` and `gpg-pubkey`.
    async fn installed(&mut self) -> Result<Vec<InstalledRpm>, EngineError>;

    /// `rpmbuild --rebuild` of `srpm` for `target_arch`, offline, as the build user.
    async fn rebuild(&mut self, srpm: &Path, target_arch: &str) -> Result<StepResult, EngineError>;

    /// rebuildSRPM: unpack `srpm` and rebuild it with `rpmbuild -bs` in the buildroot.
    async fn rebuild_srpm(&mut self, srpm: &Path) -> Result<StepResult, EngineError>;

    /// Log files the engine writes (name as uploaded → local path), uploaded live every second
    /// and once more at the end.
    fn log_files(&self) -> Vec<(String, PathBuf)>;
}

/// Creates buildroots (the container engine in `src/buildroot`).
#[async_trait::async_trait]
pub trait BuildrootEngine: Send + Sync + 'static {
    /// Creates the container and installs the group; the result dir receives the logs as it
    /// goes, also on failure.
    async fn create(
        &self,
        ctx: &TaskContext,
        request: &BuildrootRequest,
    ) -> Result<Box<dyn Buildroot>, EngineError>;
}

/// Everything the build handler factories share.
#[derive(Clone)]
pub struct BuildServices {
    pub settings: BuildSettings,
    pub files: Arc<dyn TaskFiles>,
    pub engine: Arc<dyn BuildrootEngine>,
}
