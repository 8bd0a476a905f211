//! Running the repo tools (createrepo_c, mergerepo_c, dnf) in the task's container, or on the
//! host when `repo_tools = host` (same command lines, user, environment and work dir).
//!
//! One container per task, created on first use: the topdir is mounted read-only at its own
//! path (the `toplink` symlinks in a repo's arch dirs point up into it, and the metadata's
//! `location_href`s are relative to it), the task's work dir read-write at its own path, and
//! the tools run as an unprivileged user. The network is off unless a step needs to fetch an
//! external repo.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koji_adjutant_actors::handler::TaskContext;
use koji_adjutant_actors::runtime::{
    ContainerHandle, ContainerSpec, ExecOutcome, ExecSpec, LogSink, Mount, NetworkMode,
    OutputStream,
};

use super::files::TaskFiles;
use super::{RepoError, RepoSettings, RepoTools};
use crate::hub::upload::{IncrementalUpload, UploadTarget};
use crate::podman::{HostCommand, HostCommandRunner};

/// Appends a step's output to a local log file, which is mirrored to the hub while it grows.
struct FileSink {
    file: Mutex<std::fs::File>,
}

impl LogSink for FileSink {
    fn line(&self, _stream: OutputStream, line: &str) {
        let mut file = match self.file.lock() {
            Ok(file) => file,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A log line that cannot be written must not fail the task; the tool's exit status
        // decides the outcome.
        let _ = writeln!(file, "{line}");
    }
}

/// The tool container of one repo task.
pub struct ToolBox<'a> {
    ctx: &'a TaskContext,
    settings: &'a RepoSettings,
    files: Arc<dyn TaskFiles>,
    task_dir: PathBuf,
    image_tag: Option<String>,
    event: Option<i64>,
    containers: BTreeMap<bool, ContainerHandle>,
}

impl<'a> ToolBox<'a> {
    pub fn new(
        ctx: &'a TaskContext,
        settings: &'a RepoSettings,
        files: Arc<dyn TaskFiles>,
        task_dir: PathBuf,
        image_tag: Option<String>,
        event: Option<i64>,
    ) -> Self {
        Self {
            ctx,
            settings,
            files,
            task_dir,
            image_tag,
            event,
            containers: BTreeMap::new(),
        }
    }

    /// The container for steps with (`true`) or without network.
    async fn container(&mut self, network: bool) -> Result<ContainerHandle, RepoError> {
        if let Some(handle) = self.containers.get(&network) {
            return Ok(handle.clone());
        }
        let image = self
            .ctx
            .resolve_image(self.image_tag.clone(), self.event, "noarch")
            .await;
        let mut mounts = vec![
            Mount {
                source: self.settings.topdir.clone(),
                target: self.settings.topdir.clone(),
                read_only: true,
            },
            Mount {
                source: self.task_dir.clone(),
                target: self.task_dir.clone(),
                read_only: false,
            },
        ];
        mounts.extend(self.settings.extra_mounts.iter().cloned());
        let (uid, gid) = self.settings.tool_user;
        let spec = ContainerSpec {
            image: image.image,
            name: self.ctx.containers.next_name(),
            labels: self.ctx.containers.labels(),
            user: Some(format!("{uid}:{gid}")),
            workdir: Some(self.task_dir.clone()),
            mounts,
            selinux_label: self.settings.selinux_label,
            env: self.tool_env(),
            network: if network {
                NetworkMode::Host
            } else {
                NetworkMode::None
            },
            cap_add: Vec::new(),
            limits: self.ctx.limits.clone(),
        };
        let handle = self
            .ctx
            .containers
            .create_and_start(&spec, self.ctx.pull_policy)
            .await?;
        self.containers.insert(network, handle.clone());
        Ok(handle)
    }

    /// Runs `argv`, its output appended to `<task dir>/<log_name>` and uploaded live to the
    /// task's upload dir. Returns the tool's exit status.
    pub async fn run(
        &mut self,
        step: &str,
        argv: Vec<String>,
        log_name: &str,
        network: bool,
    ) -> Result<i32, RepoError> {
        let log_path = self.task_dir.join(log_name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(RepoError::io("cannot open log", &log_path))?;
        let sink: Arc<dyn LogSink> = Arc::new(FileSink {
            file: Mutex::new(file),
        });
        let target = UploadTarget::for_task(self.ctx.task_id, &[], log_name)?;
        let mut live = IncrementalUpload::new(&log_path, target);
        // The live upload runs beside the step, never instead of it: while a chunk is being
        // sent the step's output must still be read, or a chatty tool (createrepo_c -vd prints
        // a line per package) blocks on a full pipe.
        let done = tokio_util::sync::CancellationToken::new();
        let step_done = done.clone();
        let files = Arc::clone(&self.files);
        let task_id = self.ctx.task_id;
        let step = async {
            let outcome = self.exec(step, argv, None, network, sink).await;
            step_done.cancel();
            outcome
        };
        let live_log = &mut live;
        let mirror = async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tokio::select! {
                    () = done.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(error) = files.sync_log(live_log).await {
                            tracing::warn!(task_id, %error, log = log_name, "live log upload failed; will retry");
                        }
                    }
                }
            }
        };
        let (outcome, ()) = tokio::join!(step, mirror);
        let outcome = outcome?;
        self.files.finish_log(&mut live, &log_path).await?;
        Ok(outcome.exit_code)
    }

    /// The output of a short command (`mergerepo_c --version`), not logged.
    pub async fn output(&mut self, argv: Vec<String>) -> Result<(i32, String), RepoError> {
        let collected = Arc::new(Collect::default());
        let outcome = self
            .exec(
                "probe",
                argv,
                Some(Duration::from_secs(60)),
                false,
                Arc::clone(&collected) as Arc<dyn LogSink>,
            )
            .await?;
        let text = match collected.lines.lock() {
            Ok(lines) => lines.join("\n"),
            Err(poisoned) => poisoned.into_inner().join("\n"),
        };
        Ok((outcome.exit_code, text))
    }

    /// Runs one tool command where `repo_tools` says: in the tool container, or on the host
    /// as the same unprivileged user with the same environment and working dir. On the host
    /// `network` has no effect (host processes share the worker's network).
    async fn exec(
        &mut self,
        step: &str,
        argv: Vec<String>,
        timeout: Option<Duration>,
        network: bool,
        sink: Arc<dyn LogSink>,
    ) -> Result<ExecOutcome, RepoError> {
        match self.settings.repo_tools {
            RepoTools::Container => {
                let container = self.container(network).await?;
                let spec = ExecSpec {
                    step: step.to_owned(),
                    argv,
                    env: BTreeMap::new(),
                    user: None,
                    workdir: None,
                    stdin: None,
                    timeout,
                };
                Ok(self.ctx.containers.exec(&container, &spec, sink).await?)
            }
            RepoTools::Host => {
                let command = HostCommand {
                    step: step.to_owned(),
                    argv,
                    env: self.tool_env(),
                    workdir: Some(self.task_dir.clone()),
                    user: Some(self.settings.tool_user),
                    timeout,
                };
                Ok(HostCommandRunner::new()
                    .run(&command, sink, &self.ctx.cancel)
                    .await?)
            }
        }
    }

    /// The tools' environment, the same in the container and on the host.
    fn tool_env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("HOME".to_owned(), self.task_dir.display().to_string()),
            ("TMPDIR".to_owned(), self.task_dir.display().to_string()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ])
    }

    pub fn task_dir(&self) -> &Path {
        &self.task_dir
    }
}

#[derive(Default)]
struct Collect {
    lines: Mutex<Vec<String>>,
}

impl LogSink for Collect {
    fn line(&self, _stream: OutputStream, line: &str) {
        match self.lines.lock() {
            Ok(mut lines) => lines.push(line.to_owned()),
            Err(poisoned) => poisoned.into_inner().push(line.to_owned()),
        }
    }
}

/// Makes the task's work dir fresh, and owned by the tool user so that the unprivileged tools
/// can write into it (kojid wipes it before and after each handler).
pub fn prepare_task_dir(settings: &RepoSettings, task_dir: &Path) -> Result<(), RepoError> {
    if task_dir.exists() {
        std::fs::remove_dir_all(task_dir).map_err(RepoError::io("cannot clear", task_dir))?;
    }
    std::fs::create_dir_all(task_dir).map_err(RepoError::io("cannot create", task_dir))?;
    hand_over(settings, task_dir)
}

/// Gives `path` to the tool user; when the worker is not root it cannot, so the dir is made
/// writable for everyone instead (a development set-up).
pub fn hand_over(settings: &RepoSettings, path: &Path) -> Result<(), RepoError> {
    use std::os::unix::fs::PermissionsExt;
    let (uid, gid) = settings.tool_user;
    if std::os::unix::fs::chown(path, Some(uid), Some(gid)).is_err() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
            .map_err(RepoError::io("cannot open up", path))?;
    }
    Ok(())
}

/// Recursively hands over a tree (old repodata copied in by the worker, a dist repo's layout).
/// Symlinks are left alone: a dist repo's `Packages/` links point at the hub's RPMs in the
/// topdir, and chown/chmod through them would give those to the tool user (or make them
/// world-writable when the chown is refused). The tools only read through the links.
pub fn hand_over_tree(settings: &RepoSettings, path: &Path) -> Result<(), RepoError> {
    let meta = std::fs::symlink_metadata(path).map_err(RepoError::io("cannot stat", path))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    hand_over(settings, path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(RepoError::io("cannot list", path))? {
            let entry = entry.map_err(RepoError::io("cannot list", path))?;
            hand_over_tree(settings, &entry.path())?;
        }
    }
    Ok(())
}

/// Removes the task's work dir (best effort: it is wiped again before the next task).
pub fn clean_task_dir(task_dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(task_dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %task_dir.display(), %error, "could not remove the task's work dir");
    }
}
