//! The buildroot engine proper: container, phases, steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use koji_adjutant_actors::handler::TaskContainers;
use koji_adjutant_actors::runtime::{
    ContainerHandle, ContainerRuntime, ContainerSpec, ExecOutcome, ExecSpec, ImageInfo, LogSink,
    Mount, NetworkMode, PullPolicy, RuntimeError, SelinuxLabel,
};
use tokio_util::sync::CancellationToken;

use super::config::{DnfConfig, RpmMacros, build_environment};
use super::logs::{
    BUILD_LOG, CaptureSink, HW_INFO_LOG, IMAGE_RPMS_LOG, INSTALLED_PKGS_LOG, MOCK_CONFIG_LOG,
    MOCK_OUTPUT_LOG, ROOT_LOG, STATE_LOG, TeeSink, timestamp,
};
use super::packages::{RPM_QA_FORMAT, installed_pkgs_line, parse_rpm_qa};
use super::{
    BuildNetwork, BuildOutput, BuildrootError, BuildrootLogs, BuildrootMode, BuildrootSettings,
    BuildrootSpec, ExternalRepoRef, ImageProvenance, ImageRpmPolicy, InstalledRpm, InstalledRpms,
    LogFile, PhaseTiming, SrpmOutput,
};

/// Where the task work dir is mounted in the container.
pub(crate) const TASK_MOUNT: &str = "/koji/task";
/// Where `installroot` mode populates the buildroot inside the container.
pub(crate) const INSTALLROOT: &str = "/buildroot";
/// dnf's config inside the container; the only config dnf reads (`-c`).
const DNF_CONF: &str = "/etc/koji-adjutant/dnf.conf";
/// The capabilities a buildroot container needs on top of the runtime's own: rpm installs
/// files of any owner and mode (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETFCAP), the build step
/// drops to `build_user` (SETUID, SETGID), `installroot` mode makes device nodes (MKNOD).
const BUILDROOT_CAPS: [&str; 8] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETFCAP",
    "SETUID",
    "SETGID",
    "MKNOD",
];

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
    /// Identity of a local image, for `image_rpms.log`.
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError>;
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
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        self.runtime().inspect_image(image).await
    }
}

/// Containers of a local build (`koji-adjutant build`): no registry, no hub; cancelled with
/// `cancel` (Ctrl-C).
pub struct LocalContainers {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub cancel: CancellationToken,
    /// Container names are `<prefix>-<n>`, labels carry `io.koji.adjutant.worker=<prefix>`.
    pub prefix: String,
    pub(crate) serial: AtomicU32,
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
            serial: AtomicU32::new(0),
        }
    }
}

#[async_trait::async_trait]
impl BuildrootContainers for LocalContainers {
    fn next_name(&self) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{n}", self.prefix)
    }
    fn labels(&self) -> BTreeMap<String, String> {
        koji_adjutant_actors::runtime::task_labels(&self.prefix, 0, "localBuild")
    }
    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        pull: PullPolicy,
    ) -> Result<ContainerHandle, RuntimeError> {
        self.runtime.ensure_image(&spec.image, pull).await?;
        let handle = self.runtime.create(spec).await?;
        if let Err(error) = self.runtime.start(&handle).await {
            let _ = self.runtime.remove(&handle, true).await;
            return Err(error);
        }
        Ok(handle)
    }
    async fn exec(
        &self,
        container: &ContainerHandle,
        spec: &ExecSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<ExecOutcome, RuntimeError> {
        self.runtime
            .exec(container, spec, sink, self.cancel.child_token())
            .await
    }
    async fn remove(&self, container: &ContainerHandle) -> Result<(), RuntimeError> {
        self.runtime.remove(container, true).await
    }
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        self.runtime.inspect_image(image).await
    }
}

/// How a step runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum As {
    /// root in the container, on the container's network (dnf, copying files).
    Root,
    /// `build_user`, in the build network (rpmbuild), inside the buildroot.
    Builder,
}

/// Whether a step's stdout is kept for parsing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    No,
    /// Kept, and not written to the log (machine output such as `rpm -qa`).
    Quiet,
    /// Kept and written to the log.
    Tee,
}

/// One step for [`Buildroot::run`].
struct Step<'a> {
    name: &'a str,
    argv: Vec<String>,
    who: As,
    /// The Koji log the output goes to.
    log: &'a str,
    timeout: Duration,
    capture: Capture,
}

/// How a step ended, with its stdout when it was captured.
struct StepResult {
    exit_code: i32,
    stdout: Vec<String>,
}

/// A live buildroot: a started container with its group installed.
pub struct Buildroot {
    pub(crate) containers: Arc<dyn BuildrootContainers>,
    pub(crate) container: Option<ContainerHandle>,
    pub(crate) spec: BuildrootSpec,
    pub(crate) logs: BuildrootLogs,
    pub(crate) timings: Vec<PhaseTiming>,
    observer: Option<Arc<dyn LogSink>>,
    /// `rpm -qa` of the image before anything was installed (`image` mode).
    image_rpms: Vec<InstalledRpm>,
    image_digest: String,
}

impl std::fmt::Debug for Buildroot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buildroot")
            .field("name", &self.spec.name())
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
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
        let logs = BuildrootLogs::create(spec.work_dir.join("logs"))?;
        let mut buildroot = Buildroot {
            containers,
            container: None,
            spec,
            logs,
            timings: Vec::new(),
            observer,
            image_rpms: Vec::new(),
            image_digest: String::new(),
        };
        match buildroot.init_steps().await {
            Ok(()) => Ok(buildroot),
            Err(error) => {
                buildroot.note(&format!("buildroot init failed: {error}"));
                if let Err(removal) = buildroot.remove_container().await {
                    tracing::warn!(%removal, "could not remove the container of a failed buildroot");
                }
                Err(error)
            }
        }
    }

    async fn init_steps(&mut self) -> Result<(), BuildrootError> {
        let started = self.phase_start("init");
        self.write_config()?;
        self.start_container().await?;
        let root = self.root_prefix();
        let user = self.spec.settings.build_user;
        let setup = format!(
            "set -eu\n\
             mkdir -p /etc/koji-adjutant {root}/builddir/build/SPECS {root}/builddir/build/SOURCES \
             {root}/builddir/build/BUILD {root}/builddir/build/BUILDROOT {root}/builddir/build/RPMS \
             {root}/builddir/build/SRPMS {root}/builddir/originals\n\
             cp {TASK_MOUNT}/buildroot/dnf.conf {DNF_CONF}\n\
             cp {TASK_MOUNT}/buildroot/macros {root}/builddir/.rpmmacros\n\
             chown -R {uid}:{gid} {root}/builddir\n",
            uid = user.uid,
            gid = user.gid,
        );
        // One exec for everything before the install: each `podman exec` costs a few tenths of
        // a second. The hardware report and the image's rpm list are written to files in the
        // task dir and read back here.
        let mut setup = setup;
        setup.push_str(&format!(
            "{{ {HW_INFO_SCRIPT}; }} > {TASK_MOUNT}/logs/{HW_INFO_LOG} 2>&1\n"
        ));
        let image_mode = self.spec.settings.mode == BuildrootMode::Image;
        if image_mode {
            setup.push_str(&format!(
                "rpm -qa --qf {} > {TASK_MOUNT}/buildroot/image-rpms.txt\n",
                shell_quote(RPM_QA_FORMAT)
            ));
        } else {
            // Before the group install, as mock does: the packages' scriptlets run chrooted
            // and write to /dev/null; without the node they would make it a regular file.
            setup.push_str(&installroot_base_script());
        }
        if self.spec.settings.build_network == BuildNetwork::Isolated {
            // Proves the build step can be cut off the network before anything depends on
            // it: a build never runs with network because the isolation silently failed.
            let probe = self.builder_argv(vec!["true".into()], false);
            setup.push_str(&format!(
                "if ! {}; then echo 'the network isolation probe failed' >&2; exit {ISOLATION_FAILED}; fi\n",
                probe.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
            ));
        }
        let outcome = self
            .run(Step {
                name: "setup",
                argv: sh(&setup),
                who: As::Root,
                log: MOCK_OUTPUT_LOG,
                timeout: Duration::from_secs(300),
                capture: Capture::No,
            })
            .await?;
        match outcome.exit_code {
            0 => {}
            ISOLATION_FAILED => {
                return Err(BuildrootError::NetworkIsolation {
                    message: "setpriv … unshare --user --map-current-user --net failed in the \
                              container (see mock_output.log)"
                        .into(),
                });
            }
            status => {
                return Err(BuildrootError::Init {
                    name: self.name(),
                    reason: format!("step setup exited with status {status}; see mock_output.log"),
                });
            }
        }
        if image_mode {
            self.snapshot_image_rpms().await?;
        }
        if self.spec.repo_urls.is_empty() {
            if self.spec.settings.mode == BuildrootMode::Installroot {
                return Err(BuildrootError::Init {
                    name: self.name(),
                    reason: "installroot mode needs a repo to populate the buildroot from; \
                             pass a repo or use buildroot_mode = image"
                        .into(),
                });
            }
            self.logs.append(
                ROOT_LOG,
                "No repo is configured: the image's own packages are the buildroot, \
                 nothing is installed.",
            )?;
        } else {
            let group = format!("@{}", self.spec.install_group.name());
            let argv = self.dnf_argv(&["install", &group]);
            let outcome = self
                .run(Step {
                    name: "install-group",
                    argv,
                    who: As::Root,
                    log: ROOT_LOG,
                    timeout: self.spec.settings.install_timeout,
                    capture: Capture::No,
                })
                .await?;
            if outcome.exit_code != 0 {
                return Err(BuildrootError::Init {
                    name: self.name(),
                    reason: format!(
                        "installing {group} failed (dnf exited with status {})",
                        outcome.exit_code
                    ),
                });
            }
        }
        if self.spec.settings.mode == BuildrootMode::Installroot {
            self.finish_installroot().await?;
        }
        self.phase_finish("init", started);
        Ok(())
    }

    /// Writes dnf.conf and the macros into `<work dir>/buildroot/`, and both (with the build
    /// environment) into `mock_config.log`, as kojid uploads its generated mock config.
    fn write_config(&self) -> Result<(), BuildrootError> {
        let dir = self.spec.work_dir.join("buildroot");
        std::fs::create_dir_all(&dir).map_err(BuildrootError::io("creating", &dir))?;
        let dnf = DnfConfig::for_spec(&self.spec);
        let macros = RpmMacros::for_spec(&self.spec).render();
        for (name, text) in [("dnf.conf", &dnf.0), ("macros", &macros)] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(BuildrootError::io("writing", &path))?;
        }
        let mut summary = format!(
            "# Generated by koji-adjutant\n\n# Koji buildroot id: {}\n# Koji buildroot name: {}\n\
             # Koji repo id: {}\n# Koji tag: {}\n\n# image: {}\n# buildroot mode: {}\n\
             # group: {}\n# target arch: {}\n\n# dnf.conf\n{}\n# rpm macros\n{}",
            self.spec.buildroot_id.unwrap_or(0),
            self.spec.name(),
            self.spec.repo_id.unwrap_or(0),
            self.spec.tag_name,
            self.spec.image,
            self.spec.settings.mode,
            self.spec.install_group.name(),
            super::config::target_arch(&self.spec.arch),
            dnf.0,
            macros
        );
        let env = build_environment(&self.spec);
        if !env.is_empty() {
            summary.push_str("\n# build environment\n");
            for (name, value) in env {
                summary.push_str(&format!("{name}={value}\n"));
            }
        }
        self.logs.write(MOCK_CONFIG_LOG, &summary)
    }

    async fn start_container(&mut self) -> Result<(), BuildrootError> {
        let settings = &self.spec.settings;
        let mut mounts = vec![Mount {
            source: self.spec.work_dir.clone(),
            target: PathBuf::from(TASK_MOUNT),
            read_only: false,
        }];
        mounts.extend(settings.mounts.iter().cloned());
        let spec = ContainerSpec {
            image: self.spec.image.clone(),
            name: self.containers.next_name(),
            labels: self.containers.labels(),
            user: Some("0:0".into()),
            workdir: None,
            mounts,
            selinux_label: settings.selinux_label,
            env: BTreeMap::from([("LANG".to_owned(), "C.UTF-8".to_owned())]),
            network: settings.buildroot_network.clone(),
            cap_add: {
                let mut caps: Vec<String> =
                    BUILDROOT_CAPS.iter().map(|c| (*c).to_owned()).collect();
                // rpm chroots into an installroot to run scriptlets.
                if settings.mode == BuildrootMode::Installroot {
                    caps.push("SYS_CHROOT".to_owned());
                }
                caps
            },
            limits: settings.limits.clone(),
        };
        self.note(&format!(
            "creating container {} from {} (network {:?})",
            spec.name, spec.image, spec.network
        ));
        let handle = self
            .containers
            .create_and_start(&spec, settings.pull_policy)
            .await
            .map_err(|error| {
                BuildrootError::from_runtime("starting the buildroot container", error)
            })?;
        self.container = Some(handle);
        Ok(())
    }

    /// The image's `rpm -qa` from before anything was installed (written by the setup step):
    /// these rpms came with the image. `image_rpms.log` names the image by reference, id and
    /// digest, because a tag such as `:latest` moves and only the id says later what was used.
    async fn snapshot_image_rpms(&mut self) -> Result<(), BuildrootError> {
        let identity = match self.containers.inspect_image(&self.spec.image).await {
            Ok(info) => {
                self.image_digest = info.id.clone();
                image_identity_lines(&info)
            }
            // The container already runs from the image, so this is a podman hiccup; the
            // build is still sound and the log says why the identity is missing.
            Err(error) => {
                self.image_digest.clear();
                self.note(&format!(
                    "could not inspect image {}: {error}",
                    self.spec.image
                ));
                format!("image id: unknown ({error})\n")
            }
        };
        let path = self.spec.work_dir.join("buildroot/image-rpms.txt");
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .map_err(BuildrootError::io("reading the image's rpm list", &path))?
            .lines()
            .map(str::to_owned)
            .collect();
        let parsed = parse_rpm_qa(&lines)?;
        let mut text = format!(
            "image: {}\n{identity}\nrpm -qa of the image (these rpms came with the image, \
             not from the Koji repo):\n",
            self.spec.image,
        );
        for line in &parsed {
            text.push_str(&installed_pkgs_line(line));
            text.push('\n');
        }
        self.logs.write(IMAGE_RPMS_LOG, &text)?;
        self.image_rpms = parsed.into_iter().map(|line| line.rpm).collect();
        Ok(())
    }

    async fn query_rpms(&self, step: &str) -> Result<Vec<String>, BuildrootError> {
        let mut argv = vec!["rpm".to_owned()];
        if self.spec.settings.mode == BuildrootMode::Installroot {
            argv.push(format!("--root={INSTALLROOT}"));
        }
        argv.extend([
            "-qa".to_owned(),
            "--qf".to_owned(),
            RPM_QA_FORMAT.replace("\\t", "\t").replace("\\n", "\n"),
        ]);
        let outcome = self
            .run(Step {
                name: step,
                argv,
                who: As::Root,
                log: MOCK_OUTPUT_LOG,
                timeout: Duration::from_secs(600),
                capture: Capture::Quiet,
            })
            .await?;
        let lines = outcome.stdout;
        if outcome.exit_code != 0 {
            return Err(BuildrootError::Parse {
                tool: "rpm -qa".into(),
                message: format!(
                    "exited with status {}; see mock_output.log",
                    outcome.exit_code
                ),
            });
        }
        Ok(lines)
    }

    /// What mock adds to a fresh chroot after the install: the build user's passwd entry (and
    /// the base dirs and nodes again, see [`installroot_base_script`]).
    async fn finish_installroot(&mut self) -> Result<(), BuildrootError> {
        let mut script = installroot_setup_script(self.spec.settings.build_user);
        if self.spec.settings.installroot_proc {
            // Every build step enters the root this way; a missing tool in the image (see
            // INSTALLROOT_MOUNTS) or a refused mount fails init here, with its message in
            // root.log, rather than the first rpmbuild with a bare exit status.
            let probe = self.installroot_argv(
                &format!("{INSTALLROOT_MOUNTS}{INSTALLROOT_PROBE}"),
                Vec::new(),
            );
            script.push_str(&format!(
                "if ! {}; then echo 'koji-adjutant: the build user cannot enter the installroot with /proc and /sys mounted (the reason is above); if the host refuses the mount, set installroot_proc = false in [adjutant]' >&2; exit 1; fi\n",
                probe.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
            ));
        }
        self.expect_success(Step {
            name: "installroot-setup",
            argv: sh(&script),
            who: As::Root,
            log: ROOT_LOG,
            timeout: Duration::from_secs(300),
            capture: Capture::No,
        })
        .await
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
        let lines = self.query_rpms("installed-rpms").await?;
        let parsed = parse_rpm_qa(&lines)?;
        let text: String = parsed
            .iter()
            .map(|line| installed_pkgs_line(line) + "\n")
            .collect();
        self.logs.write(INSTALLED_PKGS_LOG, &text)?;
        let image_mode = self.spec.settings.mode == BuildrootMode::Image;
        let mut all: Vec<InstalledRpm> = parsed.into_iter().map(|line| line.rpm).collect();
        let mut any_from_image = false;
        if image_mode {
            for rpm in &mut all {
                if self.image_rpms.iter().any(|known| known.same_package(rpm)) {
                    rpm.from_image = true;
                    any_from_image = true;
                    if let ImageRpmPolicy::AttributeTo(repo) = &self.spec.settings.image_rpms {
                        rpm.external_repo = Some(repo.clone());
                    }
                }
            }
        }
        let image =
            (any_from_image && self.spec.settings.image_rpms == ImageRpmPolicy::Omit).then(|| {
                ImageProvenance {
                    image: self.spec.image.clone(),
                    digest: self.image_digest.clone(),
                }
            });
        Ok(InstalledRpms { all, image })
    }

    /// buildArch's `mock --rebuild`: installs the SRPM's BuildRequires (root.log), then runs
    /// `rpmbuild --rebuild` as `build_user` with no network (build.log), and collects the
    /// results. `srpm` is a host path inside the task work dir.
    pub async fn build_rpms(&mut self, srpm: &Path) -> Result<BuildOutput, BuildrootError> {
        let arch = self.spec.arch.clone();
        let started = self.phase_start("build");
        let spec_path =
            self.unpack_and_rebuild_srpm(srpm, &arch)
                .await
                .map_err(|error| match error {
                    BuildrootError::Srpm { .. } => BuildrootError::Rpmbuild {
                        arch: arch.clone(),
                        status: 1,
                    },
                    other => other,
                })?;
        self.install_build_requires(&spec_path, &arch).await?;
        let nodeps = if self.spec.repo_urls.is_empty() {
            ""
        } else {
            "--nodeps "
        };
        let build = self
            .run(Step {
                name: "rpmbuild",
                argv: sh(&format!(
                    "exec rpmbuild -bb --target {} {nodeps}{}",
                    shell_quote(&super::config::target_arch(&arch)),
                    shell_quote(&spec_path)
                )),
                who: As::Builder,
                log: BUILD_LOG,
                timeout: self.spec.settings.rpmbuild_timeout,
                capture: Capture::No,
            })
            .await?;
        if build.exit_code != 0 {
            return Err(BuildrootError::Rpmbuild {
                arch,
                status: build.exit_code,
            });
        }
        let output = self.collect_results().await?;
        self.phase_finish("build", started);
        Ok(output)
    }

    /// rebuildSRPM: unpacks `srpm` and runs `rpmbuild -bs --nodeps` as `build_user` with no
    /// network; checks that exactly one SRPM named `<n>-<v>-<r>.src.rpm` came out.
    pub async fn build_srpm(&mut self, srpm: &Path) -> Result<SrpmOutput, BuildrootError> {
        let started = self.phase_start("build-srpm");
        self.unpack_and_rebuild_srpm(srpm, "noarch").await?;
        let output = self.collect_results().await?;
        let [built] = &output.srpms[..] else {
            return Err(BuildrootError::Srpm {
                reason: format!(
                    "expected exactly one source rpm, rpmbuild made {}",
                    output.srpms.len()
                ),
            });
        };
        let file = built
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let argv = vec![
            "rpm".into(),
            "-qp".into(),
            "--qf".into(),
            "%{NAME}-%{VERSION}-%{RELEASE}.src.rpm".into(),
            format!("{TASK_MOUNT}/result/{file}"),
        ];
        let outcome = self
            .run(Step {
                name: "srpm-name",
                argv,
                who: As::Root,
                log: MOCK_OUTPUT_LOG,
                timeout: Duration::from_secs(60),
                capture: Capture::Quiet,
            })
            .await?;
        let expected = outcome.stdout.join("");
        if outcome.exit_code != 0 || expected.trim() != file {
            return Err(BuildrootError::Srpm {
                reason: format!(
                    "the built source rpm is named {file} but its header says {}",
                    expected.trim()
                ),
            });
        }
        self.phase_finish("build-srpm", started);
        Ok(SrpmOutput {
            srpm: built.clone(),
        })
    }

    /// Copies the SRPM into the buildroot, unpacks it and rebuilds it with the buildroot's
    /// macros (so `%dist` applies), as mock does before `-bb`. Returns the spec's path inside
    /// the buildroot.
    async fn unpack_and_rebuild_srpm(
        &mut self,
        srpm: &Path,
        arch: &str,
    ) -> Result<String, BuildrootError> {
        let relative =
            srpm.strip_prefix(&self.spec.work_dir)
                .map_err(|_| BuildrootError::InvalidInput {
                    what: format!("SRPM {}", srpm.display()),
                    message: format!(
                        "it is not inside the task work dir {}",
                        self.spec.work_dir.display()
                    ),
                })?;
        let file_name = relative
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".src.rpm"))
            .ok_or_else(|| BuildrootError::InvalidInput {
                what: format!("SRPM {}", srpm.display()),
                message: "a source rpm's name ends in .src.rpm".into(),
            })?;
        if !srpm.is_file() {
            return Err(BuildrootError::InvalidInput {
                what: format!("SRPM {}", srpm.display()),
                message: "no such file".into(),
            });
        }
        let user = self.spec.settings.build_user;
        let root = self.root_prefix();
        let copy = format!(
            "set -eu\ninstall -o {uid} -g {gid} -m 0644 {src} {root}/builddir/originals/{name}\n",
            uid = user.uid,
            gid = user.gid,
            src = shell_quote(&format!("{TASK_MOUNT}/{}", relative.display())),
            name = shell_quote(&file_name),
        );
        self.expect_success(Step {
            name: "copy-srpm",
            argv: sh(&copy),
            who: As::Root,
            log: MOCK_OUTPUT_LOG,
            timeout: Duration::from_secs(600),
            capture: Capture::No,
        })
        .await?;
        let script = format!(
            "set -eu\ncd /builddir/build\n\
             rpm -i --nodeps --define '_topdir /builddir/build' /builddir/originals/{name} 2>&1 \
               | grep -v -e 'should not be used directly' -e 'assuming you know what you are doing' || true\n\
             set -- SPECS/*.spec\n\
             if [ $# -ne 1 ] || [ ! -f \"$1\" ]; then echo \"error: expected exactly one spec file in the SRPM, found: $*\" >&2; exit 1; fi\n\
             echo \"spec: /builddir/build/$1\"\n\
             exec rpmbuild -bs --target {target} --nodeps \"/builddir/build/$1\"\n",
            name = shell_quote(&file_name),
            target = shell_quote(&super::config::target_arch(arch)),
        );
        let outcome = self
            .run(Step {
                name: "rpmbuild-srpm",
                argv: sh(&script),
                who: As::Builder,
                log: BUILD_LOG,
                timeout: self.spec.settings.rpmbuild_timeout,
                capture: Capture::Tee,
            })
            .await?;
        let lines = outcome.stdout;
        if outcome.exit_code != 0 {
            return Err(BuildrootError::Srpm {
                reason: format!("rpmbuild -bs exited with status {}", outcome.exit_code),
            });
        }
        lines
            .iter()
            .find_map(|line| line.strip_prefix("spec: "))
            .map(str::to_owned)
            .ok_or_else(|| BuildrootError::Srpm {
                reason: "the spec file was not found after unpacking the SRPM".into(),
            })
    }

    /// mock's builddep: the rebuilt SRPM's BuildRequires, installed from the repo with dnf, or
    /// (without a repo) checked against the image's rpmdb by rpmbuild itself.
    async fn install_build_requires(
        &mut self,
        spec_path: &str,
        arch: &str,
    ) -> Result<(), BuildrootError> {
        let root = self.root_prefix();
        let status = if self.spec.repo_urls.is_empty() {
            let outcome = self
                .run(Step {
                    name: "check-buildrequires",
                    argv: sh(&format!(
                        "exec rpmbuild -br --target {} {}",
                        shell_quote(&super::config::target_arch(arch)),
                        shell_quote(spec_path)
                    )),
                    who: As::Builder,
                    log: ROOT_LOG,
                    timeout: self.spec.settings.install_timeout,
                    capture: Capture::No,
                })
                .await?;
            outcome.exit_code
        } else {
            let dnf = self.dnf_argv(&["install"]);
            let script = format!(
                "set -eu\nsrpm=$(ls {root}/builddir/build/SRPMS/*.src.rpm)\n\
                 set --\n\
                 while IFS= read -r req; do\n\
                   case $req in rpmlib\\(*|'') ;; *) set -- \"$@\" \"$req\" ;; esac\n\
                 done <<EOF\n$(rpm -qp --requires \"$srpm\")\nEOF\n\
                 echo \"BuildRequires of $(basename \"$srpm\"): $*\"\n\
                 [ $# -gt 0 ] || exit 0\n\
                 exec {dnf} \"$@\"\n",
                dnf = dnf
                    .iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            let outcome = self
                .run(Step {
                    name: "install-buildrequires",
                    argv: sh(&script),
                    who: As::Root,
                    log: ROOT_LOG,
                    timeout: self.spec.settings.install_timeout,
                    capture: Capture::No,
                })
                .await?;
            outcome.exit_code
        };
        if status != 0 {
            return Err(BuildrootError::BuildRequires {
                arch: arch.to_owned(),
                status,
            });
        }
        Ok(())
    }

    /// Copies every rpm rpmbuild made into `<work dir>/result/` and lists them.
    async fn collect_results(&mut self) -> Result<BuildOutput, BuildrootError> {
        let root = self.root_prefix();
        let script = format!(
            "set -eu\nmkdir -p {TASK_MOUNT}/result\n\
             find {root}/builddir/build/RPMS {root}/builddir/build/SRPMS -type f -name '*.rpm' \
               -exec cp {{}} {TASK_MOUNT}/result/ \\;\n"
        );
        self.expect_success(Step {
            name: "collect-results",
            argv: sh(&script),
            who: As::Root,
            log: MOCK_OUTPUT_LOG,
            timeout: Duration::from_secs(600),
            capture: Capture::No,
        })
        .await?;
        let dir = self.spec.work_dir.join("result");
        let mut output = BuildOutput::default();
        let entries = std::fs::read_dir(&dir).map_err(BuildrootError::io("listing", &dir))?;
        for entry in entries {
            let path = entry.map_err(BuildrootError::io("listing", &dir))?.path();
            let name = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".src.rpm") {
                output.srpms.push(path);
            } else if name.ends_with(".rpm") {
                output.rpms.push(path);
            } else {
                output.unexpected.push(path);
            }
        }
        output.rpms.sort();
        output.srpms.sort();
        Ok(output)
    }

    /// Removes the container. Dropping a `Buildroot` without it also removes the container,
    /// in the background.
    pub async fn release(mut self) -> Result<(), BuildrootError> {
        self.remove_container().await
    }

    async fn remove_container(&mut self) -> Result<(), BuildrootError> {
        if let Some(container) = self.container.clone() {
            self.containers
                .remove(&container)
                .await
                .map_err(|error| BuildrootError::from_runtime("removing the container", error))?;
            self.container = None;
        }
        Ok(())
    }

    fn root_prefix(&self) -> &'static str {
        match self.spec.settings.mode {
            BuildrootMode::Image => "",
            BuildrootMode::Installroot => INSTALLROOT,
        }
    }

    /// `dnf -c <conf> -y [--installroot …] [--releasever …] <args>`, with the package manager
    /// the tag asks for (`mock.package_manager`) when it is one dnf-compatible CLI.
    fn dnf_argv(&self, args: &[&str]) -> Vec<String> {
        let manager = match self.spec.tag_extra.get("mock.package_manager") {
            Some(serde_json::Value::String(name))
                if matches!(name.as_str(), "dnf" | "dnf4" | "dnf5" | "yum") =>
            {
                if name == "dnf4" {
                    "dnf".to_owned()
                } else {
                    name.clone()
                }
            }
            _ => "dnf".to_owned(),
        };
        let mut argv = vec![manager, "-c".into(), DNF_CONF.into(), "-y".into()];
        if let Some(releasever) = self.spec.tag_extra.get("mock.releasever") {
            argv.push(format!(
                "--releasever={}",
                super::config::python_str(releasever)
            ));
        } else if self.spec.settings.mode == BuildrootMode::Installroot {
            // An empty installroot has no system-release to take the version from; the image's
            // own is the best guess, as mock's bootstrap does.
            argv.push("--releasever=/".into());
        }
        if self.spec.settings.mode == BuildrootMode::Installroot {
            argv.push(format!("--installroot={INSTALLROOT}"));
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// The argv that runs `command` as `build_user`, inside the buildroot and, unless the
    /// site allows it, in an empty network namespace. An unprivileged user namespace owns
    /// that network namespace, so the container needs no CAP_SYS_ADMIN.
    ///
    /// In installroot mode the step gets two nested user namespaces: the outer one maps the
    /// build user to root and owns a new mount namespace, where [`INSTALLROOT_MOUNTS`]
    /// rbinds the container's `/proc` and `/sys` into the root (a fresh proc mount is refused
    /// there: podman's masked and read-only paths make `/proc` not "fully visible"); the inner
    /// one maps the build user back to its own uid and chroots.
    fn builder_argv(&self, command: Vec<String>, in_root: bool) -> Vec<String> {
        let settings = &self.spec.settings;
        let mut argv = setpriv_build_user(settings.build_user);
        let isolated = settings.build_network == BuildNetwork::Isolated;
        let installroot = in_root && settings.mode == BuildrootMode::Installroot;
        if installroot && settings.installroot_proc {
            return self
                .installroot_argv(&format!("{INSTALLROOT_MOUNTS}{INSTALLROOT_ENTER}"), command);
        }
        if isolated || installroot {
            argv.extend(["unshare", "--user", "--map-current-user"].map(str::to_owned));
            if isolated {
                argv.push("--net".to_owned());
            }
            if installroot {
                // installroot_proc = false: a plain chroot, /proc and /sys stay empty.
                argv.push(format!("--root={INSTALLROOT}"));
                argv.push("--wd=/builddir".to_owned());
            }
            argv.push("--".to_owned());
        }
        argv.extend(command);
        argv
    }

    /// `setpriv … unshare --user --map-root-user [--net] --mount -- sh -c SCRIPT _ UID GID ARGS…`:
    /// `script` runs as root of the build user's own user namespace, in its own mount
    /// namespace.
    fn installroot_argv(&self, script: &str, args: Vec<String>) -> Vec<String> {
        let settings = &self.spec.settings;
        let user = settings.build_user;
        let mut argv = setpriv_build_user(user);
        argv.extend(["unshare", "--user", "--map-root-user"].map(str::to_owned));
        if settings.build_network == BuildNetwork::Isolated {
            argv.push("--net".to_owned());
        }
        argv.extend(["--mount", "--", "sh", "-c"].map(str::to_owned));
        argv.push(script.to_owned());
        argv.push("koji-adjutant-enter".to_owned());
        argv.push(user.uid.to_string());
        argv.push(user.gid.to_string());
        argv.extend(args);
        argv
    }

    /// Runs a step and requires exit status 0.
    async fn expect_success(&self, step: Step<'_>) -> Result<(), BuildrootError> {
        let name = step.name.to_owned();
        let log = step.log.to_owned();
        let outcome = self.run(step).await?;
        if outcome.exit_code != 0 {
            return Err(BuildrootError::Init {
                name: self.name(),
                reason: format!(
                    "step {name} exited with status {}; see {log}",
                    outcome.exit_code
                ),
            });
        }
        Ok(())
    }

    async fn run(&self, step: Step<'_>) -> Result<StepResult, BuildrootError> {
        let Some(container) = self.container.clone() else {
            return Err(BuildrootError::Init {
                name: self.name(),
                reason: format!("step {} ran without a container", step.name),
            });
        };
        let argv = match step.who {
            As::Root => step.argv,
            As::Builder => self.builder_argv(step.argv, true),
        };
        let mut env = BTreeMap::new();
        if step.who != As::Root {
            env.insert("HOME".to_owned(), "/builddir".to_owned());
            env.insert("USER".to_owned(), "mockbuild".to_owned());
            env.extend(build_environment(&self.spec));
        }
        let command_line = shell_words::join(&argv);
        self.note(&format!("step {}: $ {command_line}", step.name));
        let file: Arc<dyn LogSink> = if step.log == MOCK_OUTPUT_LOG {
            self.mock_output_sink()?
        } else {
            let sink = self.logs.sink(step.log)?;
            sink.write_line(&format!("$ {command_line}"));
            sink
        };
        let capture = Arc::new(CaptureSink::new(
            step.capture != Capture::No,
            step.capture == Capture::Quiet,
            Some(file),
        ));
        let spec = ExecSpec {
            step: step.name.to_owned(),
            argv,
            env,
            user: Some("0:0".into()),
            workdir: None,
            stdin: None,
            timeout: Some(step.timeout),
        };
        let started = Instant::now();
        let result = self
            .containers
            .exec(&container, &spec, Arc::clone(&capture) as Arc<dyn LogSink>)
            .await;
        let elapsed = started.elapsed();
        match result {
            Ok(outcome) => {
                self.note(&format!(
                    "step {} exited with status {} after {:.1} s",
                    step.name,
                    outcome.exit_code,
                    elapsed.as_secs_f64()
                ));
                let stdout = if step.capture != Capture::No {
                    capture.take()
                } else {
                    Vec::new()
                };
                Ok(StepResult {
                    exit_code: outcome.exit_code,
                    stdout,
                })
            }
            Err(error) => {
                let error = BuildrootError::from_runtime(step.name, error);
                self.note(&format!(
                    "step {} failed after {:.1} s: {error}",
                    step.name,
                    elapsed.as_secs_f64()
                ));
                let _ = self
                    .logs
                    .append(step.log, &format!("koji-adjutant: {error}"));
                Err(error)
            }
        }
    }

    fn mock_output_sink(&self) -> Result<Arc<dyn LogSink>, BuildrootError> {
        let file: Arc<dyn LogSink> = self.logs.sink(MOCK_OUTPUT_LOG)?;
        Ok(match &self.observer {
            Some(observer) => Arc::new(TeeSink(vec![file, Arc::clone(observer)])),
            None => file,
        })
    }

    /// A line in mock_output.log (and the observer).
    fn note(&self, text: &str) {
        let line = format!("{} {text}", timestamp());
        match self.mock_output_sink() {
            Ok(sink) => sink.line(koji_adjutant_actors::runtime::OutputStream::Stdout, &line),
            Err(error) => tracing::warn!(%error, "cannot write mock_output.log"),
        }
    }

    fn phase_start(&self, phase: &str) -> Instant {
        let _ = self.logs.append(
            STATE_LOG,
            &format!("{} - INFO: Start: {phase}", timestamp()),
        );
        Instant::now()
    }

    fn phase_finish(&mut self, phase: &str, started: Instant) {
        let duration = started.elapsed();
        let _ = self.logs.append(
            STATE_LOG,
            &format!(
                "{} - INFO: Finish: {phase} ({:.1} s)",
                timestamp(),
                duration.as_secs_f64()
            ),
        );
        self.timings.push(PhaseTiming {
            phase: phase.to_owned(),
            duration,
        });
    }
}

impl Drop for Buildroot {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        let containers = Arc::clone(&self.containers);
        let spawned = std::thread::Builder::new()
            .name(format!("remove-{}", container.name))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    tracing::error!(container = %container.name, "cannot build a runtime to remove the buildroot container; the orphan reaper will");
                    return;
                };
                if let Err(error) = rt.block_on(containers.remove(&container)) {
                    tracing::error!(container = %container.name, %error, "removing a dropped buildroot's container failed; the orphan reaper will retry");
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a thread to remove the buildroot container");
        }
    }
}

/// mock's `_setup_dirs` and `_setup_devices` for the installroot, run before the group install
/// and again after it (idempotent; a node that a scriptlet turned into a plain file is made a
/// device again). rpmbuild writes its scriptlets to `%_tmppath` (`/var/tmp`) as the build
/// user, so both tmp dirs are world-writable and sticky, as Fedora's `filesystem` package and
/// mock make them, whatever the repo's packages own; so is `/dev/shm` (POSIX semaphores and
/// shared memory, where mock mounts a tmpfs).
fn installroot_base_script() -> String {
    format!(
        "R={INSTALLROOT}\n\
         mkdir -p $R/dev/shm $R/dev/pts $R/etc $R/tmp $R/var/tmp $R/var/lib/rpm $R/var/log $R/proc $R/sys\n\
         chmod 1777 $R/tmp $R/var/tmp $R/dev/shm\n\
         for node in 'null c 1 3' 'zero c 1 5' 'full c 1 7' 'random c 1 8' 'urandom c 1 9' 'tty c 5 0'; do\n\
           set -- $node\n\
           [ -c $R/dev/$1 ] || {{ rm -f $R/dev/$1; mknod -m 666 $R/dev/$1 $2 $3 $4; }}\n\
         done\n\
         ln -sfn /proc/self/fd $R/dev/fd\n"
    )
}

/// The `installroot-setup` step after the group install: the base again, and a passwd/group
/// entry for the build user unless the repo's `setup`/`filesystem` package has that id.
fn installroot_setup_script(user: crate::config::types::UidGid) -> String {
    format!(
        "set -eu\n{base}\
         grep -q '^[^:]*:[^:]*:{uid}:' $R/etc/passwd 2>/dev/null || echo 'mockbuild:x:{uid}:{gid}::/builddir:/bin/sh' >> $R/etc/passwd\n\
         grep -q '^[^:]*:[^:]*:{gid}:' $R/etc/group 2>/dev/null || echo 'mock:x:{gid}:' >> $R/etc/group\n",
        base = installroot_base_script(),
        uid = user.uid,
        gid = user.gid
    )
}

/// `setpriv … --`: what follows runs as `user`, with no supplementary groups.
fn setpriv_build_user(user: crate::config::types::UidGid) -> Vec<String> {
    vec![
        "setpriv".to_owned(),
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
        "--clear-groups".to_owned(),
        "--".to_owned(),
    ]
}

/// The start of every installroot build step's script, run by the build user as root of its
/// own user namespace, in its own mount namespace (`unshare --user --map-root-user --mount`),
/// with the uid, gid and command as arguments: gives the installroot mock's `/proc` and
/// `/sys`. [`INSTALLROOT_ENTER`] then drops to the build user's uid in a nested user namespace
/// and chroots.
///
/// `--rbind` of the container's own mounts, because a fresh `mount -t proc` is refused
/// (EPERM, also with `subset=pid` or read-only) while podman's masked and read-only paths
/// hide parts of the container's `/proc`. The rbind carries those submounts along, locked
/// (this user namespace is less privileged than the one that mounted them), so
/// `/proc/sys` stays read-only, the masked files stay masked, and `/sys` stays read-only.
/// The pid namespace is the container's, which holds this one build: a new one would need
/// that fresh proc mount. `mount` (util-linux) is preferred; an image without it (Debian's
/// minimal rootfs) uses python3's ctypes, which dnf 4 brings.
const INSTALLROOT_MOUNTS: &str = r#"R=/buildroot uid=$1 gid=$2
shift 2
if command -v mount >/dev/null 2>&1; then
  mount --rbind /proc $R/proc && mount --rbind /sys $R/sys || exit 96
elif command -v python3 >/dev/null 2>&1; then
  python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for fs in ("/proc", "/sys"):
    # MS_BIND | MS_REC
    if libc.mount(fs.encode(), (sys.argv[1] + fs).encode(), None, 4096 | 16384, None) != 0:
        sys.exit("koji-adjutant: mount --rbind %s %s%s: %s" % (fs, sys.argv[1], fs, os.strerror(ctypes.get_errno())))' $R || exit 96
else
  echo "koji-adjutant: cannot mount /proc and /sys into the installroot: the image has neither mount (util-linux) nor python3" >&2
  exit 96
fi
"#;

/// After [`INSTALLROOT_MOUNTS`]: the build user again, chrooted.
const INSTALLROOT_ENTER: &str =
    r#"exec unshare --user --map-user=$uid --map-group=$gid --root=$R --wd=/builddir -- "$@""#;

/// After [`INSTALLROOT_MOUNTS`], at init: the mounts are there and the image's unshare can map
/// the build user back (`--map-user` is util-linux ≥ 2.38). Runs nothing from the root, which
/// may not have a shell yet.
const INSTALLROOT_PROBE: &str = "test -d $R/proc/self/fd && test -d $R/sys/class || \
{ echo \"koji-adjutant: /proc or /sys is not mounted in $R\" >&2; exit 96; }
unshare --user --map-user=$uid --map-group=$gid -- true || \
{ echo \"koji-adjutant: the image's unshare cannot map the build user back to its uid \
(--map-user needs util-linux 2.38 or later): use an image with a newer util-linux, or set \
installroot_proc = false in [adjutant] for a chroot without /proc and /sys\" >&2; exit 96; }";

/// The setup step's exit status when the network isolation probe failed.
const ISOLATION_FAILED: i32 = 97;

const HW_INFO_SCRIPT: &str = "echo 'CPU info:'; (lscpu 2>/dev/null || grep -m1 'model name' /proc/cpuinfo); \
echo; echo 'Memory:'; (free -h 2>/dev/null || head -3 /proc/meminfo); \
echo; echo 'Storage:'; df -h / 2>/dev/null; echo; echo 'Kernel:'; uname -a; true";

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn shell_quote(text: &str) -> String {
    shell_words::quote(text).into_owned()
}

/// The `image_rpms.log` header lines after `image:`.
fn image_identity_lines(info: &ImageInfo) -> String {
    let or_none = |text: &str| {
        if text.is_empty() {
            "none".to_owned()
        } else {
            text.to_owned()
        }
    };
    format!(
        "image id: {}\nimage digest: {}\nrepo digests: {}\nimage created: {}\n",
        info.id,
        or_none(&info.digest),
        or_none(&info.repo_digests.join(" ")),
        info.created,
    )
}

pub(crate) fn settings_from_config(
    config: &crate::config::Config,
) -> Result<BuildrootSettings, BuildrootError> {
    let kojid = &config.kojid;
    let adjutant = &config.adjutant;
    let network = |name: &str| match name {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => NetworkMode::Named(other.to_owned()),
    };
    let buildroot_network = network(&adjutant.buildroot_network);
    let build_network = if adjutant.build_network == "none" {
        BuildNetwork::Isolated
    } else if adjutant.build_network == adjutant.buildroot_network {
        BuildNetwork::SameAsBuildroot
    } else {
        return Err(BuildrootError::Setting {
            key: "build_network".into(),
            message: format!(
                "{:?} is neither none nor the buildroot_network ({:?}): the build step runs in \
                 the buildroot's container and can only keep its network or lose it",
                adjutant.build_network, adjutant.buildroot_network
            ),
        });
    };
    let label = |label: crate::config::types::SelinuxLabel| match label {
        crate::config::types::SelinuxLabel::Shared => SelinuxLabel::Shared,
        crate::config::types::SelinuxLabel::Private => SelinuxLabel::Private,
        crate::config::types::SelinuxLabel::None => SelinuxLabel::None,
    };
    Ok(BuildrootSettings {
        mode: adjutant.buildroot_mode,
        vendor: kojid.vendor.clone(),
        packager: kojid.packager.clone(),
        distribution: kojid.distribution.clone(),
        mockhost: kojid.mockhost.clone(),
        build_user: adjutant.build_user,
        buildroot_network,
        build_network,
        rpmbuild_timeout: kojid.rpmbuild_timeout.as_duration(),
        yum_proxy: kojid.yum_proxy.clone(),
        installroot_proc: adjutant.installroot_proc,
        mounts: adjutant
            .container_mounts
            .0
            .iter()
            .map(|m| Mount {
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
            })
            .collect(),
        selinux_label: label(adjutant.selinux_label),
        image_rpms: match &adjutant.image_rpms_external_repo {
            None => ImageRpmPolicy::Omit,
            Some(value) => ImageRpmPolicy::AttributeTo(parse_external_repo(value)?),
        },
        ..BuildrootSettings::default()
    })
}

/// `image_rpms_external_repo`: `ID:NAME[:URL]`. The id is what the hub resolves (the rpm's
/// `location`); name and URL only fill the entry when the tag does not list that repo.
fn parse_external_repo(value: &str) -> Result<ExternalRepoRef, BuildrootError> {
    let bad = |why: &str| BuildrootError::Setting {
        key: "image_rpms_external_repo".into(),
        message: format!(
            "{value:?} {why}; write ID:NAME[:URL] with the id and name `koji \
             list-external-repos` shows, or unset it to leave image rpms out of the hub list"
        ),
    };
    let mut parts = value.trim().splitn(3, ':');
    let id = parts.next().unwrap_or_default().trim();
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad("does not start with a positive external repo id"))?;
    let name = parts.next().unwrap_or_default().trim();
    if name.is_empty() {
        return Err(bad("names no external repo after the id"));
    }
    Ok(ExternalRepoRef {
        id,
        name: name.to_owned(),
        url: parts.next().unwrap_or_default().trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, load};

    fn settings(extra: &str) -> Result<BuildrootSettings, BuildrootError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kojid.conf");
        std::fs::write(
            &path,
            format!(
                "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\n\
                 vendor = Example\nmockhost = redhat-linux-gnu\nrpmbuild_timeout = 600\n\
                 yum_proxy = http://proxy:3128\n{extra}"
            ),
        )
        .unwrap();
        let config = load(&ConfigSource {
            path: Some(path),
            ..ConfigSource::default()
        })
        .unwrap();
        BuildrootSettings::from_config(&config)
    }

    #[test]
    fn settings_come_from_kojid_conf_and_the_adjutant_section() {
        let s =
            settings("[adjutant]\nbuild_user = 2000:2001\nbuildroot_mode = installroot\n").unwrap();
        assert_eq!(s.vendor, "Example");
        assert_eq!(s.packager, "Koji");
        assert_eq!(s.mockhost, "redhat-linux-gnu");
        assert_eq!(s.rpmbuild_timeout, Duration::from_secs(600));
        assert_eq!(s.yum_proxy.as_deref(), Some("http://proxy:3128"));
        assert_eq!(
            s.build_user,
            crate::config::types::UidGid {
                uid: 2000,
                gid: 2001
            }
        );
        assert_eq!(s.mode, BuildrootMode::Installroot);
        assert_eq!(s.buildroot_network, NetworkMode::Host);
        assert_eq!(s.build_network, BuildNetwork::Isolated);
        assert!(s.installroot_proc);
        let s = settings("[adjutant]\ninstallroot_proc = false\n").unwrap();
        assert!(!s.installroot_proc);
    }

    #[test]
    fn a_build_network_the_container_cannot_have_is_refused() {
        let same = settings("[adjutant]\nbuild_network = host\n").unwrap();
        assert_eq!(same.build_network, BuildNetwork::SameAsBuildroot);
        let error = settings("[adjutant]\nbuild_network = podman1\n").unwrap_err();
        assert!(error.to_string().contains("build_network"), "{error}");
    }

    #[test]
    fn image_rpms_external_repo_maps_image_rpms_to_an_external_repo() {
        assert_eq!(settings("").unwrap().image_rpms, ImageRpmPolicy::Omit);
        let mapped = settings(
            "[adjutant]\nimage_rpms_external_repo = 7:f40-image:http://images.example/f40/\n",
        )
        .unwrap();
        assert_eq!(
            mapped.image_rpms,
            ImageRpmPolicy::AttributeTo(ExternalRepoRef {
                id: 7,
                name: "f40-image".into(),
                url: "http://images.example/f40/".into(),
            })
        );
        let env_style = settings("adjutant_image_rpms_external_repo = 12:builder\n").unwrap();
        assert_eq!(
            env_style.image_rpms,
            ImageRpmPolicy::AttributeTo(ExternalRepoRef {
                id: 12,
                name: "builder".into(),
                url: String::new(),
            })
        );
        for bad in ["f40-image", "0:x", "-3:x", "7", "7:", "7: :u"] {
            let error =
                settings(&format!("[adjutant]\nimage_rpms_external_repo = {bad}\n")).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("image_rpms_external_repo") && message.contains("ID:NAME"),
                "{bad}: {message}"
            );
        }
    }

    /// An image whose unshare predates `--map-user` (util-linux 2.37, EL9) fails the init
    /// probe with that reason, not with the mount message that init prints after it.
    #[test]
    fn the_installroot_probe_names_an_unshare_without_map_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let unshare = bin.join("unshare");
        std::fs::write(
            &unshare,
            "#!/bin/sh\necho \"unshare: unrecognized option '$3'\" >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&unshare, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("proc/self/fd")).unwrap();
        std::fs::create_dir_all(root.join("sys/class")).unwrap();
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "R={} uid=1000 gid=1000\n{INSTALLROOT_PROBE}",
                root.display()
            ))
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("unrecognized option"), "{stderr}");
        assert!(
            stderr.contains("--map-user needs util-linux 2.38 or later"),
            "{stderr}"
        );
    }

    #[test]
    fn the_installroot_gets_sticky_tmp_dirs_and_a_passwd_entry_for_the_build_user() {
        let script = installroot_setup_script(crate::config::types::UidGid {
            uid: 2000,
            gid: 2001,
        });
        assert!(
            script.contains("chmod 1777 $R/tmp $R/var/tmp $R/dev/shm\n"),
            "{script}"
        );
        assert!(script.starts_with("set -eu\nR=/buildroot\n"), "{script}");
        // A /dev/null that a scriptlet wrote as a plain file is replaced by the device.
        assert!(
            script.contains(
                "[ -c $R/dev/$1 ] || { rm -f $R/dev/$1; mknod -m 666 $R/dev/$1 $2 $3 $4; }"
            ),
            "{script}"
        );
        assert!(
            script.contains("echo 'mockbuild:x:2000:2001::/builddir:/bin/sh' >> $R/etc/passwd"),
            "{script}"
        );
        assert!(
            script.contains("echo 'mock:x:2001:' >> $R/etc/group"),
            "{script}"
        );
    }

    #[test]
    fn the_build_step_wrapper_drops_to_the_build_user_without_network() {
        let spec = BuildrootSpec {
            image: "img".into(),
            work_dir: "/w".into(),
            arch: "x86_64".into(),
            tag_name: "t".into(),
            repo_id: None,
            buildroot_id: None,
            repo_urls: Vec::new(),
            install_group: super::super::InstallGroup::Build,
            tag_extra: super::super::TagExtra::default(),
            extra_macros: Vec::new(),
            settings: BuildrootSettings::default(),
        };
        let containers: Arc<dyn BuildrootContainers> = Arc::new(LocalContainers::new(
            Arc::new(crate::podman::PodmanRuntime::new(
                crate::podman::PodmanOptions::default(),
            )),
            CancellationToken::new(),
            "unit",
        ));
        let logs = BuildrootLogs {
            dir: "/nonexistent".into(),
        };
        let mut buildroot = Buildroot {
            containers,
            container: None,
            spec,
            logs,
            timings: Vec::new(),
            observer: None,
            image_rpms: Vec::new(),
            image_digest: String::new(),
        };
        assert_eq!(
            buildroot
                .builder_argv(vec!["rpmbuild".into()], true)
                .join(" "),
            "setpriv --reuid=1000 --regid=1000 --clear-groups -- unshare --user --map-current-user --net -- rpmbuild"
        );
        buildroot.spec.settings.mode = BuildrootMode::Installroot;
        buildroot.spec.settings.build_network = BuildNetwork::SameAsBuildroot;
        let argv = buildroot.builder_argv(vec!["rpmbuild".into()], true);
        assert_eq!(
            argv[..11].join(" "),
            "setpriv --reuid=1000 --regid=1000 --clear-groups -- unshare --user --map-root-user --mount -- sh"
        );
        assert_eq!(argv[11], "-c");
        assert_eq!(argv[12], format!("{INSTALLROOT_MOUNTS}{INSTALLROOT_ENTER}"));
        assert!(INSTALLROOT_MOUNTS.starts_with(&format!("R={INSTALLROOT} ")));
        assert_eq!(
            argv[13..].join(" "),
            "koji-adjutant-enter 1000 1000 rpmbuild"
        );
        buildroot.spec.settings.build_network = BuildNetwork::Isolated;
        assert_eq!(
            buildroot.builder_argv(vec!["rpmbuild".into()], true)[..11].join(" "),
            "setpriv --reuid=1000 --regid=1000 --clear-groups -- unshare --user --map-root-user --net --mount --"
        );
        buildroot.spec.settings.installroot_proc = false;
        assert_eq!(
            buildroot
                .builder_argv(vec!["rpmbuild".into()], true)
                .join(" "),
            "setpriv --reuid=1000 --regid=1000 --clear-groups -- unshare --user --map-current-user --net --root=/buildroot --wd=/builddir -- rpmbuild"
        );
        buildroot.spec.settings.installroot_proc = true;
        // Outside the root (the setup step's isolation probe) nothing is mounted.
        assert_eq!(
            buildroot.builder_argv(vec!["true".into()], false).join(" "),
            "setpriv --reuid=1000 --regid=1000 --clear-groups -- unshare --user --map-current-user --net -- true"
        );
        assert_eq!(
            buildroot.dnf_argv(&["install", "@build"]).join(" "),
            "dnf -c /etc/koji-adjutant/dnf.conf -y --releasever=/ --installroot=/buildroot install @build"
        );
    }
}
