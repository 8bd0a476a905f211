//! The repo tasks (§4.7–4.9): `newRepo`, `createrepo`, `distRepo`, `createdistrepo`.
//!
//! The hub lays a repo out under `<topdir>/repos/<tag>/<id>/` (`host.repoInit`); these handlers
//! run createrepo_c / mergerepo_c (and dnf for multilib) in a task container that sees the
//! topdir read-only at the same path, write the metadata into the task's work dir, upload it,
//! and let the hub move it into place (`host.repoDone`, `host.distRepoMove`).
//! Operator view: `docs/repo-tasks.md`.

pub mod createrepo;
pub mod distrepo;
pub mod files;
pub mod multilib;
pub mod newrepo;
pub mod paths;
pub mod tools;

use std::path::PathBuf;
use std::sync::Arc;

use koji_adjutant_actors::error::{Fault, HandlerError, HubError};
use koji_adjutant_actors::handler::{HandlerRegistry, TaskHandler, TaskRequest};
use koji_adjutant_actors::hub::TaskInfo;
use koji_adjutant_actors::runtime::{Mount, SelinuxLabel};

use crate::config::keys::{AdjutantSettings, KojidSettings};
pub use crate::config::types::RepoTools;
use crate::config::types::SelinuxLabel as ConfigSelinuxLabel;
use crate::hub::upload::UploadError;

pub use files::{HubCallFiles, TaskFiles, TaskFilesProvider};

/// What the repo tasks need from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSettings {
    /// The Koji volume (`topdir`); mounted read-only at the same path in the tool container so
    /// that the `toplink` symlinks in each repo arch dir resolve.
    pub topdir: PathBuf,
    /// The worker's `workdir`; task work dirs are `<workdir>/tasks/<id % 10000>/<id>`.
    pub workdir: PathBuf,
    pub use_createrepo_c: bool,
    pub createrepo_update: bool,
    pub createrepo_skip_stat: bool,
    pub distrepo_skip_stat: bool,
    pub copy_old_repodata: bool,
    /// Relabelling of the bind mounts. Shared (`z`) by default: a private `:Z` would relabel
    /// the whole Koji volume for this one container, and the hub's httpd and every other
    /// builder would then be denied access to it.
    pub selinux_label: SelinuxLabel,
    /// Numeric `UID:GID` the tools run as: unprivileged, since createrepo_c needs no rights
    /// beyond reading the topdir and writing the task dir.
    pub tool_user: (u32, u32),
    /// Extra bind mounts (`container_mounts`).
    pub extra_mounts: Vec<Mount>,
    /// Where the tools run (`repo_tools`): the same command lines either way.
    pub repo_tools: RepoTools,
}

/// `nobody:nogroup` on Debian and Fedora alike.
pub const DEFAULT_TOOL_USER: (u32, u32) = (65534, 65534);

impl RepoSettings {
    pub fn from_settings(kojid: &KojidSettings, adjutant: &AdjutantSettings) -> Self {
        Self {
            topdir: kojid.topdir.clone(),
            workdir: kojid.workdir.clone(),
            use_createrepo_c: kojid.use_createrepo_c,
            createrepo_update: kojid.createrepo_update,
            createrepo_skip_stat: kojid.createrepo_skip_stat,
            distrepo_skip_stat: kojid.distrepo_skip_stat,
            copy_old_repodata: kojid.copy_old_repodata,
            selinux_label: selinux(adjutant.selinux_label),
            tool_user: DEFAULT_TOOL_USER,
            extra_mounts: adjutant
                .container_mounts
                .0
                .iter()
                .map(|m| Mount {
                    source: m.source.clone(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            repo_tools: adjutant.repo_tools,
        }
    }

    /// Settings for tests and defaults: everything as kojid's defaults, under `topdir` and
    /// `workdir`.
    pub fn new(topdir: impl Into<PathBuf>, workdir: impl Into<PathBuf>) -> Self {
        Self {
            topdir: topdir.into(),
            workdir: workdir.into(),
            use_createrepo_c: true,
            createrepo_update: true,
            createrepo_skip_stat: true,
            distrepo_skip_stat: false,
            copy_old_repodata: false,
            selinux_label: SelinuxLabel::Shared,
            tool_user: DEFAULT_TOOL_USER,
            extra_mounts: Vec::new(),
            repo_tools: RepoTools::Container,
        }
    }
}

fn selinux(label: ConfigSelinuxLabel) -> SelinuxLabel {
    match label {
        ConfigSelinuxLabel::Shared => SelinuxLabel::Shared,
        ConfigSelinuxLabel::Private => SelinuxLabel::Private,
        ConfigSelinuxLabel::None => SelinuxLabel::None,
    }
}

/// What can go wrong in a repo task besides a hub fault.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("upload failed: {0}")]
    Upload(#[from] UploadError),
    #[error("{call} returned something unexpected: {detail}")]
    BadReply { call: String, detail: String },
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Runtime(#[from] koji_adjutant_actors::runtime::RuntimeError),
    /// A Koji fault the task fails with (GenericError, BuildError, …).
    #[error("{0}")]
    Fault(Fault),
    #[error("task refused: {0}")]
    Refuse(String),
}

impl RepoError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }

    pub fn generic(message: impl Into<String>) -> Self {
        Self::Fault(Fault::generic(message))
    }
}

impl From<RepoError> for HandlerError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Fault(fault) => HandlerError::Fault(fault),
            RepoError::Hub(hub) => hub.into(),
            RepoError::Runtime(runtime) => runtime.into(),
            RepoError::Refuse(message) => HandlerError::Refuse {
                soft: true,
                message,
            },
            other => HandlerError::from_chain("repo task failed", &other),
        }
    }
}

/// Everything the repo handlers share.
#[derive(Clone)]
pub struct RepoServices {
    pub settings: Arc<RepoSettings>,
    pub files: Arc<dyn TaskFilesProvider>,
}

impl RepoServices {
    pub fn new(settings: RepoSettings, files: Arc<dyn TaskFilesProvider>) -> Self {
        Self {
            settings: Arc::new(settings),
            files,
        }
    }

    /// From the loaded configuration, uploading with the legacy `uploadFile` through each
    /// task's `TaskHub` (works with any worker, but logs are sent whole at the end).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::new(
            RepoSettings::from_settings(&config.kojid, &config.adjutant),
            Arc::new(files::HubCallFilesProvider),
        )
    }

    /// From the loaded configuration, uploading with rawUpload and live logs through each
    /// task's own subsession client (`session_of` finds it), as kojid's task process does.
    /// This is what the worker registers.
    pub fn from_config_with_subsessions(
        config: &crate::config::Config,
        session_of: crate::handlers::hubfiles::SessionLookup,
    ) -> Self {
        Self::new(
            RepoSettings::from_settings(&config.kojid, &config.adjutant),
            Arc::new(files::SubsessionFiles::new(session_of)),
        )
    }
}

/// Registers `newRepo`, `createrepo`, `distRepo` and `createdistrepo`.
pub fn register(registry: &mut HandlerRegistry, services: RepoServices) {
    let s = services.clone();
    registry.register("newRepo", move |request: &TaskRequest, _info: &TaskInfo| {
        Box::new(newrepo::NewRepo::new(request.clone(), s.clone())) as Box<dyn TaskHandler>
    });
    let s = services.clone();
    registry.register(
        "createrepo",
        move |request: &TaskRequest, _info: &TaskInfo| {
            Box::new(createrepo::CreateRepo::new(request.clone(), s.clone()))
                as Box<dyn TaskHandler>
        },
    );
    let s = services.clone();
    registry.register(
        "distRepo",
        move |request: &TaskRequest, _info: &TaskInfo| {
            Box::new(distrepo::DistRepo::new(request.clone(), s.clone())) as Box<dyn TaskHandler>
        },
    );
    let s = services;
    registry.register(
        "createdistrepo",
        move |request: &TaskRequest, _info: &TaskInfo| {
            Box::new(distrepo::CreateDistRepo::new(request.clone(), s.clone()))
                as Box<dyn TaskHandler>
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, load};

    fn settings(conf: &str) -> RepoSettings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kojid.conf");
        std::fs::write(&path, conf).unwrap();
        let config = load(&ConfigSource {
            path: Some(path),
            overrides: Vec::new(),
            env: Default::default(),
        })
        .unwrap();
        RepoSettings::from_settings(&config.kojid, &config.adjutant)
    }

    #[test]
    fn defaults_are_kojids_with_the_shared_label() {
        let s = settings(
            "[kojid]\nserver = http://hub.example/kojihub\ntopurl = http://hub.example/kojifiles\n",
        );
        assert_eq!(s.topdir, PathBuf::from("/mnt/koji"));
        assert_eq!(s.workdir, PathBuf::from("/var/tmp/koji"));
        assert!(s.use_createrepo_c && s.createrepo_update && s.createrepo_skip_stat);
        assert!(!s.copy_old_repodata && !s.distrepo_skip_stat);
        assert_eq!(s.selinux_label, SelinuxLabel::Shared);
        assert_eq!(s.tool_user, DEFAULT_TOOL_USER);
        assert_eq!(s, RepoSettings::new("/mnt/koji", "/var/tmp/koji"));
    }

    #[test]
    fn keys_reach_the_repo_settings() {
        let s = settings(
            "[kojid]\nserver = http://hub.example/kojihub\ntopurl = http://hub.example/kojifiles\ntopdir = /srv/koji\ncreaterepo_update = False\n\
             createrepo_skip_stat = no\ncopy_old_repodata = yes\n[adjutant]\nselinux_label = none\n\
             container_mounts = /etc/pki:/etc/pki:ro\n",
        );
        assert_eq!(s.topdir, PathBuf::from("/srv/koji"));
        assert!(!s.createrepo_update && !s.createrepo_skip_stat && s.copy_old_repodata);
        assert_eq!(s.selinux_label, SelinuxLabel::None);
        assert_eq!(s.extra_mounts.len(), 1);
        assert!(s.extra_mounts[0].read_only);
    }
}
