//! Shared set-up for the repo task tests: a fake hub with the repo side, a topdir with real
//! RPMs built by rpmbuild, a `TaskHub` over the real hub client, and a tiny task runner that
//! plays the worker (open, run the handler in a standalone context, close or fail).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use koji_adjutant::handlers::repos::files::{ClientFiles, FixedFiles, HubCallFilesProvider};
use koji_adjutant::handlers::repos::{RepoServices, RepoSettings, register};
use koji_adjutant::hub::client::HubClient;
use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::podman::PodmanOptions;
use koji_adjutant::podman::PodmanRuntime;
use koji_adjutant_actors::error::{Fault, HandlerError};
use koji_adjutant_actors::handler::{HandlerRegistry, TaskRequest};
use koji_adjutant_actors::hub::TaskHub;
use koji_adjutant_actors::runtime::ContainerRuntime;
use koji_adjutant_actors::testing::standalone_context;
use koji_fakehub::repos::RepoSide;
use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, NewTask, Value};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

#[path = "../support/client_task_hub.rs"]
mod client_task_hub;
pub use client_task_hub::ClientTaskHub;

pub const IMAGE: &str = "localhost/koji-adjutant-builder:latest";

/// A fake hub with the repo side, its topdir readable by the unprivileged tool user, a logged
/// in host client, and a worker dir.
pub struct World {
    pub hub: FakeHub,
    pub side: RepoSide,
    pub client: HubClient,
    pub host_id: i64,
    pub workdir: tempfile::TempDir,
    pub run_dir: tempfile::TempDir,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub settings: RepoSettings,
    /// Upload with the legacy `uploadFile` through the task's `TaskHub` instead of rawUpload.
    pub legacy_uploads: bool,
}

fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl World {
    pub async fn new() -> Self {
        let hub = FakeHub::start(FakeHubConfig {
            hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
            ..FakeHubConfig::default()
        })
        .await
        .unwrap();
        // Container names carry the task id and the standalone context's fixed worker id, so
        // task ids are made unique per test process to keep parallel tests apart.
        static WORLDS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let nth = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 1_000_000 + i64::from(std::process::id() % 100_000) * 1000 + nth * 50;
        hub.with_state(|s| s.next_task_id = s.next_task_id.max(base));
        let topdir = hub.topdir();
        open_up(&topdir);
        std::fs::create_dir_all(topdir.join("repos")).unwrap();
        let side = RepoSide::install(&hub);
        let client = HubClient::connect(
            HubOptions {
                server: hub.url(),
                user: Some("builder1.local".to_owned()),
                password: Some("builder".to_owned()),
                max_retries: 2,
                ..HubOptions::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let host_id = client.host_get_id().await.unwrap();
        let workdir = tempfile::tempdir().unwrap();
        open_up(workdir.path());
        let run_dir = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(PodmanRuntime::new(PodmanOptions {
            run_dir: run_dir.path().to_owned(),
            kill_timeout: Duration::from_secs(10),
            ..PodmanOptions::default()
        }));
        let settings = RepoSettings::new(&topdir, workdir.path());
        Self {
            hub,
            side,
            client,
            host_id,
            workdir,
            run_dir,
            runtime,
            settings,
            legacy_uploads: false,
        }
    }

    pub fn topdir(&self) -> PathBuf {
        self.hub.topdir()
    }

    pub fn registry(&self) -> HandlerRegistry {
        let mut registry = HandlerRegistry::new();
        register(
            &mut registry,
            RepoServices {
                settings: Arc::new(self.settings.clone()),
                files: if self.legacy_uploads {
                    Arc::new(HubCallFilesProvider)
                } else {
                    Arc::new(FixedFiles(Arc::new(ClientFiles {
                        client: self.client.clone(),
                    })))
                },
            },
        );
        registry
    }

    pub fn create(&self, method: &str, args: Vec<Value>) -> i64 {
        let mut task = NewTask::new(method, args);
        task.channel = "createrepo".to_owned();
        self.hub.create_task(task).unwrap()
    }

    /// Opens `id` and runs it as the worker would, reporting the outcome to the hub. Child
    /// tasks it creates are run too, and the parent is alerted when they end.
    pub async fn run(&self, id: i64) -> Result<Json, HandlerError> {
        Box::pin(self.run_inner(id)).await
    }

    async fn run_inner(&self, id: i64) -> Result<Json, HandlerError> {
        let opened = self.client.host_open_task(id).await.unwrap();
        assert!(opened.is_some(), "task {id} could not be opened");
        let hub: Arc<dyn TaskHub> = Arc::new(ClientTaskHub {
            client: self.client.clone(),
        });
        let info = hub.get_task_info(id, true).await.unwrap();
        let request = TaskRequest::decode(info.request.clone().unwrap_or_default());
        let factory = self.registry().get(&info.method).expect("a repo method");
        let handler = factory.create(&request, &info);
        let (ctx, standalone) = standalone_context(
            info,
            request,
            self.host_id,
            Arc::clone(&hub),
            Arc::clone(&self.runtime),
            IMAGE,
        );
        let containers = ctx.containers.clone();
        let run = handler.run(ctx);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    let children: Vec<i64> = self
                        .hub
                        .tasks()
                        .into_iter()
                        .filter(|t| t.parent == Some(id) && t.state == koji_fakehub::TaskState::Free)
                        .map(|t| t.id)
                        .collect();
                    if !children.is_empty() {
                        for child in children {
                            let _ = Box::pin(self.run_inner(child)).await;
                        }
                        standalone.alert();
                    }
                }
            }
        };
        containers.remove_all().await;
        match &outcome {
            Ok(result) => hub.close_task(id, result).await.unwrap(),
            Err(HandlerError::Fault(fault)) => hub.fail_task(id, fault).await.unwrap(),
            Err(HandlerError::Refuse { soft, message }) => {
                hub.refuse_task(id, *soft, message).await.unwrap()
            }
            Err(other) => hub
                .fail_task(id, &Fault::plain(other.to_string()))
                .await
                .unwrap(),
        }
        outcome
    }
}

/// distRepo's task options for x86_64 (latest, not inherited), with `extra` on top.
pub fn dist_opts(extra: &[(&str, Value)]) -> Value {
    let mut map: std::collections::BTreeMap<String, Value> = [
        (
            "arch".to_owned(),
            Value::Array(vec![Value::String("x86_64".into())]),
        ),
        ("latest".to_owned(), Value::Boolean(true)),
        ("inherit".to_owned(), Value::Boolean(false)),
    ]
    .into();
    for (k, v) in extra {
        map.insert((*k).to_owned(), v.clone());
    }
    Value::Struct(map)
}

/// Builds a tiny RPM with rpmbuild on the host: one file, optional requires.
pub fn build_rpm(out: &Path, name: &str, version: &str, arch: &str, requires: &[&str]) -> PathBuf {
    let preamble = spec_preamble(arch, requires);
    rpmbuild_binary(
        out,
        name,
        version,
        arch,
        &format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test package {name}\nLicense: MIT\n{preamble}\
             %description\nA tiny package for the repo tests.\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {name}-{version} > %{{buildroot}}/usr/share/{name}/data\n\
             %files\n/usr/share/{name}/data\n"
        ),
    )
}

/// Runs a shell command in the builder image with the topdir mounted read-only.
pub fn in_image(name: &str, topdir: &Path, script: &str) -> std::process::Output {
    Command::new("podman")
        .args(["run", "--rm", "--network=none", "--name", name, "-v"])
        .arg(format!("{}:{}:ro", topdir.display(), topdir.display()))
        .args([IMAGE, "sh", "-c", script])
        .output()
        .unwrap()
}

/// A runtime that refuses every container: with `repo_tools = host` none may be made.
pub struct NoContainers;

fn no_container(what: &str) -> koji_adjutant_actors::runtime::RuntimeError {
    koji_adjutant_actors::runtime::RuntimeError::InvalidSpec {
        what: what.to_owned(),
        message: "repo_tools = host must not use the container runtime".to_owned(),
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for NoContainers {
    async fn ensure_image(
        &self,
        _: &str,
        _: koji_adjutant_actors::runtime::PullPolicy,
    ) -> Result<(), koji_adjutant_actors::runtime::RuntimeError> {
        Err(no_container("ensure_image"))
    }
    async fn inspect_image(
        &self,
        _: &str,
    ) -> Result<koji_adjutant_actors::runtime::ImageInfo, koji_adjutant_actors::runtime::RuntimeError>
    {
        Err(no_container("inspect_image"))
    }
    async fn create(
        &self,
        _: &koji_adjutant_actors::runtime::ContainerSpec,
    ) -> Result<
        koji_adjutant_actors::runtime::ContainerHandle,
        koji_adjutant_actors::runtime::RuntimeError,
    > {
        Err(no_container("create"))
    }
    async fn start(
        &self,
        _: &koji_adjutant_actors::runtime::ContainerHandle,
    ) -> Result<(), koji_adjutant_actors::runtime::RuntimeError> {
        Err(no_container("start"))
    }
    async fn exec(
        &self,
        _: &koji_adjutant_actors::runtime::ContainerHandle,
        _: &koji_adjutant_actors::runtime::ExecSpec,
        _: Arc<dyn koji_adjutant_actors::runtime::LogSink>,
        _: CancellationToken,
    ) -> Result<
        koji_adjutant_actors::runtime::ExecOutcome,
        koji_adjutant_actors::runtime::RuntimeError,
    > {
        Err(no_container("exec"))
    }
    async fn stop(
        &self,
        _: &koji_adjutant_actors::runtime::ContainerHandle,
        _: Duration,
    ) -> Result<(), koji_adjutant_actors::runtime::RuntimeError> {
        Ok(())
    }
    async fn kill(
        &self,
        _: &koji_adjutant_actors::runtime::ContainerHandle,
    ) -> Result<(), koji_adjutant_actors::runtime::RuntimeError> {
        Ok(())
    }
    async fn remove(
        &self,
        _: &koji_adjutant_actors::runtime::ContainerHandle,
        _: bool,
    ) -> Result<(), koji_adjutant_actors::runtime::RuntimeError> {
        Ok(())
    }
    async fn list_owned(
        &self,
        _: &str,
    ) -> Result<
        Vec<koji_adjutant_actors::runtime::ContainerSummary>,
        koji_adjutant_actors::runtime::RuntimeError,
    > {
        Ok(Vec::new())
    }
    async fn reap_orphans(
        &self,
        _: &str,
        _: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, koji_adjutant_actors::runtime::RuntimeError> {
        Ok(Vec::new())
    }
}

/// Builds an RPM for `arch` holding empty `files` (any paths: `/usr/lib64/libfoo.so.1` makes
/// it look like a library to the multilib rules) with the given `Requires:`.
pub fn build_rpm_with_files(
    out: &Path,
    name: &str,
    arch: &str,
    files: &[&str],
    requires: &[&str],
) -> PathBuf {
    let preamble = spec_preamble(arch, requires);
    let install: String = files
        .iter()
        .map(|f| {
            format!("mkdir -p %{{buildroot}}$(dirname {f})\necho {name} > %{{buildroot}}{f}\n")
        })
        .collect();
    let listed: String = files.iter().map(|f| format!("{f}\n")).collect();
    rpmbuild_binary(
        out,
        name,
        "1.0",
        arch,
        &format!(
            "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: multilib test package {name}\nLicense: MIT\n\
             AutoReqProv: no\n{preamble}%description\nA tiny package for the multilib tests.\n\
             %install\n{install}%files\n{listed}"
        ),
    )
}

/// `BuildArch: noarch` where it applies, and one `Requires:` line each.
fn spec_preamble(arch: &str, requires: &[&str]) -> String {
    let buildarch = if arch == "noarch" {
        "BuildArch: noarch\n"
    } else {
        ""
    };
    let requires: String = requires
        .iter()
        .map(|r| format!("Requires: {r}\n"))
        .collect();
    format!("{buildarch}{requires}")
}

/// `rpmbuild -bb` of `spec` for `arch` (release 1) on the host; the RPM is copied into `out`.
fn rpmbuild_binary(out: &Path, name: &str, version: &str, arch: &str, spec: &str) -> PathBuf {
    let top = tempfile::tempdir().unwrap();
    let spec_path = top.path().join(format!("{name}.spec"));
    std::fs::write(&spec_path, spec).unwrap();
    let mut command = Command::new("rpmbuild");
    command
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg("__os_install_post %{nil}")
        .arg("--define")
        .arg("_build_id_links none");
    if arch != "noarch" {
        command.arg("--target").arg(arch);
    }
    let output = command.arg(&spec_path).output().unwrap();
    assert!(
        output.status.success(),
        "rpmbuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = format!("{name}-{version}-1.{arch}.rpm");
    std::fs::create_dir_all(out).unwrap();
    let dest = out.join(&file);
    std::fs::copy(top.path().join("RPMS").join(arch).join(&file), &dest).unwrap();
    dest
}
