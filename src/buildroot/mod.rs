//! The buildroot engine: kojid's mock buildroot, in a podman container.
//!
//! One [`Buildroot`] is one Koji buildroot (`newBuildRoot` … `EXPIRED`). Its life, in kojid's
//! order (spec §4.2, §4.3, §5):
//!
//! 1. [`Buildroot::init`]: create and start the task container from the image, write the dnf
//!    configuration (mock's view: one repo named `build`) and the rpm macros, install the
//!    group (`@build` or `@srpm-build`): mock's `--init`.
//! 2. [`Buildroot::installed_rpms`]: the package list for `host.setBuildRootList`.
//! 3. [`Buildroot::build_rpms`] (buildArch: BuildRequires, then `rpmbuild --rebuild`) or
//!    [`Buildroot::build_srpm`] (rebuildSRPM: unpack, then `rpmbuild -bs`).
//! 4. [`Buildroot::installed_rpms`] again for `host.updateBuildRootList`.
//! 5. [`Buildroot::release`]: the container goes (it also goes if the `Buildroot` is dropped).
//!
//! The build step runs as the unprivileged `build_user`, in an empty network namespace (see
//! ARCHITECTURE.md, "Network isolation of rpmbuild"). Logs are written under the task work dir
//! in Koji's names; the caller uploads [`Buildroot::log_files`] every second (§3.5).
//!
//! The engine knows nothing of the hub: the handlers (`src/handlers`) make the hub calls, and
//! [`local`] runs the same pipeline with no hub at all (`koji-adjutant build`).

mod config;
mod doctor;
mod engine;
mod error;
pub mod local;
mod logs;
mod packages;
mod workdir;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use koji_adjutant_actors::runtime::{Mount, NetworkMode, PullPolicy, ResourceLimits, SelinuxLabel};

pub use crate::config::types::{BuildrootMode, UidGid};
pub use config::{DnfConfig, RpmMacros, canon_arch, python_str, repo_baseurls, target_arch};
pub use doctor::doctor_checks;
pub use engine::{Buildroot, BuildrootContainers, LocalContainers};
pub use error::BuildrootError;
pub use logs::{BuildrootLogs, LogFile};
pub use packages::{ExternalRepoRef, ImageProvenance, InstalledRpm, InstalledRpms};
pub use workdir::{prepare_task_work_dir, remove_task_work_dir, task_work_dir, work_relative_path};

/// The comps group installed into a buildroot (mock's `chroot_setup_cmd`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum InstallGroup {
    /// `@build`, for buildArch.
    Build,
    /// `@srpm-build`, for rebuildSRPM and buildSRPMFromSCM.
    SrpmBuild,
    /// Any other group name a caller needs (kojid's `install_group` argument).
    Other(String),
}

impl InstallGroup {
    pub fn name(&self) -> &str {
        match self {
            InstallGroup::Build => "build",
            InstallGroup::SrpmBuild => "srpm-build",
            InstallGroup::Other(name) => name,
        }
    }
}

/// The tag's `extra` from `getBuildConfig(tag, event)`, as JSON values (the handlers convert
/// the XML-RPC struct). Only the keys of spec §5.3 that apply to a container are read.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TagExtra(pub BTreeMap<String, serde_json::Value>);

impl TagExtra {
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }

    /// Python truthiness of a key (`bool(extra.get(key))`): absent, `false`, `0`, `""`, `[]`,
    /// `{}` and nil are false.
    pub fn truthy(&self, key: &str) -> bool {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(serde_json::Value::String(s)) => !s.is_empty(),
            Some(serde_json::Value::Array(a)) => !a.is_empty(),
            Some(serde_json::Value::Object(o)) => !o.is_empty(),
        }
    }
}

/// How the build step reaches the network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BuildNetwork {
    /// `build_network = none` (the default): rpmbuild runs in an empty network namespace.
    Isolated,
    /// rpmbuild shares the container's network (`build_network` equal to
    /// `buildroot_network`). Only for sites that must allow it; kojid never does for RPMs.
    SameAsBuildroot,
}

/// What to do with packages that came with the image rather than from the Koji repo (`image`
/// mode only): the hub accepts in `setBuildRootList` only rpms it knows or rpms of an external
/// repo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ImageRpmPolicy {
    /// Left out of the hub list; the image reference, digest and full `rpm -qa` are written to
    /// `image_rpms.log` (uploaded with the other logs).
    Omit,
    /// Reported as rpms of this external repo, which the operator maps to the image.
    AttributeTo(ExternalRepoRef),
}

/// Worker-wide settings that shape every buildroot (kojid.conf and `[adjutant]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BuildrootSettings {
    pub mode: BuildrootMode,
    /// `%vendor`, `%packager`, `%distribution` defaults (kojid.conf).
    pub vendor: String,
    pub packager: String,
    pub distribution: String,
    /// `%_host` is `<target_arch>-<mockhost>`.
    pub mockhost: String,
    /// Numeric uid:gid of the build step.
    pub build_user: UidGid,
    /// Network of the container, used while installing dependencies.
    pub buildroot_network: NetworkMode,
    pub build_network: BuildNetwork,
    /// Limit of the rpmbuild step (kojid's `rpmbuild_timeout`).
    pub rpmbuild_timeout: Duration,
    /// Limit of each dependency install step (group, BuildRequires).
    pub install_timeout: Duration,
    /// kojid's `yum_proxy`, written into the dnf config.
    pub yum_proxy: Option<String>,
    pub limits: ResourceLimits,
    /// `installroot_proc`: the build steps get `/proc` and `/sys` in the installroot.
    pub installroot_proc: bool,
    /// Extra bind mounts (operator's `container_mounts`).
    pub mounts: Vec<Mount>,
    pub selinux_label: SelinuxLabel,
    pub pull_policy: PullPolicy,
    pub image_rpms: ImageRpmPolicy,
}

impl Default for BuildrootSettings {
    /// kojid's defaults and the adjutant's (`build_user` 1000:1000, `buildroot_network` host,
    /// `build_network` none, `rpmbuild_timeout` 86400 s).
    fn default() -> Self {
        Self {
            mode: BuildrootMode::Image,
            vendor: "Koji".into(),
            packager: "Koji".into(),
            distribution: "Koji".into(),
            mockhost: "koji-linux-gnu".into(),
            build_user: UidGid {
                uid: 1000,
                gid: 1000,
            },
            buildroot_network: NetworkMode::Host,
            build_network: BuildNetwork::Isolated,
            rpmbuild_timeout: Duration::from_secs(86400),
            install_timeout: Duration::from_secs(4 * 3600),
            yum_proxy: None,
            limits: ResourceLimits::default(),
            installroot_proc: true,
            mounts: Vec::new(),
            selinux_label: SelinuxLabel::Private,
            pull_policy: PullPolicy::IfNotPresent,
            image_rpms: ImageRpmPolicy::Omit,
        }
    }
}

impl BuildrootSettings {
    /// The settings from a loaded configuration. Fails on a `build_network` other than `none`
    /// or the value of `buildroot_network` (a build step cannot join a third network).
    /// `limits` and `pull_policy` stay at their defaults: the caller sets them from the task
    /// (`TaskContext::limits`, `TaskContext::pull_policy`). `image_rpms` is `AttributeTo` when
    /// `image_rpms_external_repo` is set (`ID:NAME[:URL]`, else an error), `Omit` otherwise.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, BuildrootError> {
        engine::settings_from_config(config)
    }
}

/// One buildroot to make: everything kojid puts into its generated mock config.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BuildrootSpec {
    /// The task image (from the PolicyCache, or `--image`).
    pub image: String,
    /// The task's work dir on the host (`<workdir>/tasks/<id%10000>/<id>`), already prepared
    /// with [`prepare_task_work_dir`]. It is bind-mounted into the container; logs and results
    /// are written below it.
    pub work_dir: PathBuf,
    /// rpm target arch (`noarch` allowed); the buildroot arch is its canonical form.
    pub arch: String,
    pub tag_name: String,
    pub repo_id: Option<i64>,
    pub buildroot_id: Option<i64>,
    /// Baseurls of the one repo named `build` ([`repo_baseurls`]). Empty: no repo at all, the
    /// image's own packages are the buildroot (local builds without `--repo`).
    pub repo_urls: Vec<String>,
    pub install_group: InstallGroup,
    pub tag_extra: TagExtra,
    /// Macros applied after the tag's `rpm.macro.*` and before the forced ones (local
    /// `--define`).
    pub extra_macros: Vec<(String, String)>,
    pub settings: BuildrootSettings,
}

impl BuildrootSpec {
    /// kojid's buildroot name `<tag>-<buildroot id>-<repo id>` (`0` for an absent id).
    pub fn name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.tag_name,
            self.buildroot_id.unwrap_or(0),
            self.repo_id.unwrap_or(0)
        )
    }
}

/// What `rpmbuild --rebuild` produced, as host paths under the task work dir.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BuildOutput {
    pub rpms: Vec<PathBuf>,
    pub srpms: Vec<PathBuf>,
    /// Files in the result dir that are neither rpms nor logs (kojid logs them as unexpected).
    pub unexpected: Vec<PathBuf>,
}

/// What `rpmbuild -bs` produced for rebuildSRPM.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SrpmOutput {
    /// The one SRPM, a host path under the task work dir; its file name is
    /// `<name>-<version>-<release>.src.rpm` from its header (checked).
    pub srpm: PathBuf,
}

/// How long one phase took (state.log and the benchmark).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseTiming {
    pub phase: String,
    pub duration: Duration,
}
