//! The installed-package list for `host.setBuildRootList` / `updateBuildRootList` (spec §5.5).

/// An external repo an rpm is attributed to (the operator maps the image to it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExternalRepoRef {
    pub id: i64,
    pub name: String,
    pub url: String,
}

/// One installed rpm, in the shape the hub wants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstalledRpm {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: String,
    /// Lowercase hex of the header's SIGMD5.
    pub payloadhash: String,
    pub size: i64,
    pub buildtime: i64,
    /// Set for image-provided rpms under `ImageRpmPolicy::AttributeTo`.
    pub external_repo: Option<ExternalRepoRef>,
    /// The rpm was already in the image before the buildroot was populated (`image` mode).
    pub from_image: bool,
}

impl InstalledRpm {
    /// `name-version-release.arch`, the key the hub's `rpmlist.jsonl` uses.
    pub fn nvra(&self) -> String {
        format!(
            "{}-{}-{}.{}",
            self.name, self.version, self.release, self.arch
        )
    }
}

/// Where image-provided rpms came from, when they are left out of the hub list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageProvenance {
    pub image: String,
    /// The image's id/digest as podman reports it inside the container's env, or empty.
    pub digest: String,
}

/// The buildroot's rpmdb at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstalledRpms {
    /// Every installed rpm except `buildsys-build` and `gpg-pubkey` (kojid skips those).
    pub all: Vec<InstalledRpm>,
    /// Set when image-provided rpms were left out of [`InstalledRpms::for_hub`].
    pub image: Option<ImageProvenance>,
}

impl InstalledRpms {
    /// The rpms to send to `setBuildRootList`: all of them, less image-provided rpms that are
    /// not attributed to an external repo.
    pub fn for_hub(&self) -> Vec<&InstalledRpm> {
        self.all
            .iter()
            .filter(|rpm| !rpm.from_image || rpm.external_repo.is_some())
            .collect()
    }
}
