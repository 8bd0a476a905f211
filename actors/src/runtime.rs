//! The container runtime contract that TaskActors drive and `src/podman` implements.
//!
//! Every type here is runtime-neutral: nothing names the podman CLI, so the supervision core can
//! be tested with an in-memory fake runtime.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Label naming the worker that owns a container; orphan reaping is scoped by it, and a runtime
/// may refuse a spec without it.
pub const LABEL_WORKER: &str = "io.koji.adjutant.worker";
pub const LABEL_TASK_ID: &str = "io.koji.adjutant.task_id";
pub const LABEL_METHOD: &str = "io.koji.adjutant.method";
/// RFC 3339 UTC creation time; the runtime fills it in when the spec does not.
pub const LABEL_CREATED: &str = "io.koji.adjutant.created";

/// The deterministic container name `koji-adjutant-<worker>-<task>-<attempt>`. Characters a
/// container name cannot hold (anything but letters, digits, `_`, `.`, `-`) become `-`.
pub fn container_name(worker_id: &str, task_id: i64, attempt: u32) -> String {
    let worker: String = worker_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("koji-adjutant-{worker}-{task_id}-{attempt}")
}

/// The labels every task container carries (the runtime adds the creation time).
pub fn task_labels(worker_id: &str, task_id: i64, method: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_WORKER.to_owned(), worker_id.to_owned()),
        (LABEL_TASK_ID.to_owned(), task_id.to_string()),
        (LABEL_METHOD.to_owned(), method.to_owned()),
    ])
}

/// When to fetch an image from its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    IfNotPresent,
    Always,
    Never,
}

/// How a bind mount is relabelled for SELinux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SelinuxLabel {
    /// `:z`, shared between containers (right for a shared `/mnt/koji`).
    Shared,
    /// `:Z`, private to one container.
    Private,
    /// No relabelling.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// The network a container (or one step) gets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum NetworkMode {
    None,
    Host,
    /// Any other podman network name, passed through.
    Named(String),
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ResourceLimits {
    /// Bytes.
    pub memory: Option<u64>,
    /// CPUs, may be fractional.
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
}

/// Everything needed to create one task container.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContainerSpec {
    pub image: String,
    /// Deterministic: `koji-adjutant-<worker>-<task>-<n>`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub selinux_label: SelinuxLabel,
    pub env: BTreeMap<String, String>,
    pub network: NetworkMode,
    /// Capabilities added back after `--cap-drop=ALL`.
    pub cap_add: Vec<String>,
    pub limits: ResourceLimits,
}

/// A created container, named so that it can always be found again by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ContainerHandle {
    pub id: String,
    pub name: String,
}

/// One command run inside a started container.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExecSpec {
    /// A short name for the step ("buildroot", "rpmbuild"), used in errors, logs and metrics.
    pub step: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: Option<PathBuf>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Receives a step's output line by line while it runs.
pub trait LogSink: Send + Sync {
    fn line(&self, stream: OutputStream, line: &str);
}

/// How a step ended when the runtime itself did not fail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecOutcome {
    /// The command's own exit status (never podman's).
    pub exit_code: i32,
    /// Set when the kernel's OOM killer ended the step.
    pub oom_killed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: String,
}

/// What the runtime knows about a local image: enough to say afterwards exactly which image a
/// buildroot came from, since a tag such as `:latest` moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// The full image id (hex content hash of the image config, as `podman images --no-trunc`).
    pub id: String,
    /// The manifest digest the image was pulled by; empty for a locally built image.
    pub digest: String,
    /// Every `name@digest` the image is known by in registries (empty when never pushed/pulled).
    pub repo_digests: Vec<String>,
    /// Creation time as the runtime prints it (RFC 3339).
    pub created: String,
    pub labels: BTreeMap<String, String>,
}

/// What went wrong in the runtime, with enough detail for a task's failure message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {image} is not present and the pull policy is {policy}: {message}")]
    ImageUnavailable {
        image: String,
        policy: String,
        message: String,
    },
    #[error("step {step} timed out after {limit:?} and was killed")]
    StepTimeout { step: String, limit: Duration },
    #[error("step {step} was cancelled")]
    Cancelled { step: String },
    #[error("out of memory (limit {limit})")]
    OutOfMemory { limit: String },
    #[error("podman {operation} failed (exit status {status}): {message}")]
    Podman {
        operation: String,
        status: i32,
        message: String,
    },
    #[error("could not run {program}: {message}")]
    Spawn { program: String, message: String },
    /// The spec cannot be turned into a container (a path podman cannot express, a missing
    /// ownership label, …). Nothing was created.
    #[error("invalid container spec: {what}: {message}")]
    InvalidSpec { what: String, message: String },
}

/// The container runtime. Implementations must make `remove` idempotent and must kill the
/// process inside the container when an exec is cancelled.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError>;
    /// Identity of a local image (it is not pulled); a missing image is `ImageUnavailable`.
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError>;
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerHandle, RuntimeError>;
    async fn start(&self, container: &ContainerHandle) -> Result<(), RuntimeError>;
    /// Runs one step. Returns the command's own exit status; a failure of podman itself is an
    /// `Err`, never an exit code. When the step's cgroup saw an OOM kill and the step failed,
    /// the result is `Err(OutOfMemory)`; when it still exited 0, `oom_killed` is set.
    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
        cancel: CancellationToken,
    ) -> Result<ExecOutcome, RuntimeError>;
    async fn stop(&self, container: &ContainerHandle, grace: Duration) -> Result<(), RuntimeError>;
    async fn kill(&self, container: &ContainerHandle) -> Result<(), RuntimeError>;
    async fn remove(&self, container: &ContainerHandle, force: bool) -> Result<(), RuntimeError>;
    /// Containers labelled `io.koji.adjutant.worker=<worker_id>`.
    async fn list_owned(&self, worker_id: &str) -> Result<Vec<ContainerSummary>, RuntimeError>;
    /// Removes this worker's containers whose names are not in `live`; returns the removed names.
    async fn reap_orphans(
        &self,
        worker_id: &str,
        live: &HashSet<String>,
    ) -> Result<Vec<String>, RuntimeError>;
}

/// Owns one container for its owner's lifetime: when the lease is dropped without
/// [`ContainerLease::remove`] having finished (the owner returned early, panicked, or its future
/// was dropped), the container is force-removed anyway.
///
/// The removal on drop runs on a dedicated thread with its own small tokio runtime, because the
/// owner's runtime may be shutting down (an actix arbiter stopping, a test ending) and would then
/// drop a task spawned on it before the container is gone. Pass a [`TaskTracker`] with
/// [`ContainerLease::tracked`] so that a shutdown can wait for those removals.
///
/// [`TaskTracker`]: tokio_util::task::TaskTracker
pub struct ContainerLease {
    runtime: Arc<dyn ContainerRuntime>,
    container: Option<ContainerHandle>,
    tracker: Option<tokio_util::task::TaskTracker>,
}

impl ContainerLease {
    /// Takes ownership of an already created container.
    pub fn new(runtime: Arc<dyn ContainerRuntime>, container: ContainerHandle) -> Self {
        Self {
            runtime,
            container: Some(container),
            tracker: None,
        }
    }

    /// Creates the container described by `spec` and leases it.
    pub async fn create(
        runtime: Arc<dyn ContainerRuntime>,
        spec: &ContainerSpec,
    ) -> Result<Self, RuntimeError> {
        let container = runtime.create(spec).await?;
        Ok(Self::new(runtime, container))
    }

    /// Registers removals done on drop with `tracker`, so `tracker.wait()` covers them.
    pub fn tracked(mut self, tracker: tokio_util::task::TaskTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    pub fn container(&self) -> &ContainerHandle {
        // Only `remove` and `drop` take the handle out, and both consume the lease.
        self.container
            .as_ref()
            .unwrap_or_else(|| unreachable!("a live lease always holds its container"))
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    /// Force-removes the container now. If this future is itself dropped midway, or the removal
    /// fails, the drop path tries again.
    pub async fn remove(mut self) -> Result<(), RuntimeError> {
        let Some(container) = self.container.clone() else {
            return Ok(());
        };
        self.runtime.remove(&container, true).await?;
        self.container = None;
        Ok(())
    }
}

impl std::fmt::Debug for ContainerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerLease")
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl Drop for ContainerLease {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        let runtime = Arc::clone(&self.runtime);
        let token = self.tracker.as_ref().map(|tracker| tracker.token());
        let name = container.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("remove-{name}"))
            .spawn(move || {
                let _token = token;
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        tracing::error!(container = %container.name, %err,
                            "cannot build a runtime to remove the container; the orphan reaper will remove it");
                        return;
                    }
                };
                if let Err(err) = rt.block_on(runtime.remove(&container, true)) {
                    tracing::error!(container = %container.name, %err,
                        "removing the container of a dropped lease failed; the orphan reaper will retry");
                }
            });
        if let Err(err) = spawned {
            tracing::error!(container = %name, %err,
                "cannot start a thread to remove the container; the orphan reaper will remove it");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records removals; everything else is inert.
    #[derive(Default)]
    struct RecordingRuntime {
        removed: Mutex<Vec<String>>,
        fail_removals: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl ContainerRuntime for RecordingRuntime {
        async fn ensure_image(&self, _: &str, _: PullPolicy) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn inspect_image(&self, _: &str) -> Result<ImageInfo, RuntimeError> {
            Ok(ImageInfo::default())
        }
        async fn create(&self, spec: &ContainerSpec) -> Result<ContainerHandle, RuntimeError> {
            Ok(ContainerHandle {
                id: format!("id-{}", spec.name),
                name: spec.name.clone(),
            })
        }
        async fn start(&self, _: &ContainerHandle) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn exec(
            &self,
            _: &ContainerHandle,
            _: &ExecSpec,
            _: Arc<dyn LogSink>,
            cancel: CancellationToken,
        ) -> Result<ExecOutcome, RuntimeError> {
            cancel.cancelled().await;
            Err(RuntimeError::Cancelled {
                step: "test".into(),
            })
        }
        async fn stop(&self, _: &ContainerHandle, _: Duration) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn kill(&self, _: &ContainerHandle) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn remove(&self, container: &ContainerHandle, _: bool) -> Result<(), RuntimeError> {
            {
                let mut failures = self.fail_removals.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    return Err(RuntimeError::Podman {
                        operation: "rm".into(),
                        status: 125,
                        message: "transient".into(),
                    });
                }
            }
            self.removed.lock().unwrap().push(container.name.clone());
            Ok(())
        }
        async fn list_owned(&self, _: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
            Ok(Vec::new())
        }
        async fn reap_orphans(
            &self,
            _: &str,
            _: &HashSet<String>,
        ) -> Result<Vec<String>, RuntimeError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn container_names_are_deterministic_and_valid() {
        assert_eq!(
            container_name("builder01.example.com", 4242, 1),
            "koji-adjutant-builder01.example.com-4242-1"
        );
        assert_eq!(container_name("a b/c@d", 7, 2), "koji-adjutant-a-b-c-d-7-2");
        let labels = task_labels("w1", 7, "buildArch");
        assert_eq!(labels[LABEL_WORKER], "w1");
        assert_eq!(labels[LABEL_TASK_ID], "7");
        assert_eq!(labels[LABEL_METHOD], "buildArch");
    }

    fn handle(name: &str) -> ContainerHandle {
        ContainerHandle {
            id: format!("id-{name}"),
            name: name.to_owned(),
        }
    }

    #[tokio::test]
    async fn an_explicit_remove_removes_once() {
        let fake = Arc::new(RecordingRuntime::default());
        let lease = ContainerLease::new(fake.clone(), handle("a"));
        assert_eq!(lease.container().name, "a");
        lease.remove().await.unwrap();
        // Give a (wrong) drop-path removal time to show up.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*fake.removed.lock().unwrap(), vec!["a"]);
    }

    #[tokio::test]
    async fn a_failed_remove_is_retried_when_the_lease_drops() {
        let fake = Arc::new(RecordingRuntime::default());
        *fake.fail_removals.lock().unwrap() = 1;
        let tracker = tokio_util::task::TaskTracker::new();
        let lease = ContainerLease::new(fake.clone(), handle("b")).tracked(tracker.clone());
        assert!(lease.remove().await.is_err());
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .unwrap();
        assert_eq!(*fake.removed.lock().unwrap(), vec!["b"]);
    }

    #[tokio::test]
    async fn dropping_the_owner_future_or_panicking_removes_the_container() {
        let fake = Arc::new(RecordingRuntime::default());
        let tracker = tokio_util::task::TaskTracker::new();

        let runtime: Arc<dyn ContainerRuntime> = fake.clone();
        let lease =
            ContainerLease::new(runtime.clone(), handle("dropped")).tracked(tracker.clone());
        let owner = async move {
            let _ = lease
                .runtime()
                .exec(
                    lease.container(),
                    &ExecSpec {
                        step: "wait".into(),
                        argv: vec!["true".into()],
                        env: BTreeMap::new(),
                        user: None,
                        workdir: None,
                        stdin: None,
                        timeout: None,
                    },
                    Arc::new(NoSink),
                    CancellationToken::new(),
                )
                .await;
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(50), owner)
                .await
                .is_err()
        );

        let lease = ContainerLease::new(runtime, handle("panicked")).tracked(tracker.clone());
        let panicked = tokio::spawn(async move {
            let _lease = lease;
            panic!("owner panics");
        });
        assert!(panicked.await.unwrap_err().is_panic());

        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .unwrap();
        let mut removed = fake.removed.lock().unwrap().clone();
        removed.sort();
        assert_eq!(removed, vec!["dropped", "panicked"]);
    }

    struct NoSink;

    impl LogSink for NoSink {
        fn line(&self, _: OutputStream, _: &str) {}
    }
}
