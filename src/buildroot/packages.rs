//! The installed-package list for `host.setBuildRootList` / `updateBuildRootList` (spec §5.5).

use super::BuildrootError;

/// `rpm -qa --qf` format read by [`parse_rpm_qa`]: one tab-separated line per package.
pub(crate) const RPM_QA_FORMAT: &str = "%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{EPOCH}\\t%{ARCH}\\t%{SIGMD5}\\t%{SIZE}\\t%{BUILDTIME}\\t%{INSTALLTIME}\\n";

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

    /// Identity across two `rpm -qa` runs: same NVRA and same payload.
    pub(crate) fn same_package(&self, other: &InstalledRpm) -> bool {
        self.nvra() == other.nvra()
            && self.epoch == other.epoch
            && self.payloadhash == other.payloadhash
    }
}

/// Where image-provided rpms came from, when they are left out of the hub list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageProvenance {
    pub image: String,
    /// The image id podman resolved the reference to, or empty when unknown.
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

/// One parsed line plus its install time (for mock's `installed_pkgs.log`).
pub(crate) struct QaLine {
    pub(crate) rpm: InstalledRpm,
    pub(crate) installtime: i64,
}

/// Parses `rpm -qa --qf RPM_QA_FORMAT` output. `gpg-pubkey` and `buildsys-build` are skipped
/// as kojid skips them.
pub(crate) fn parse_rpm_qa(lines: &[String]) -> Result<Vec<QaLine>, BuildrootError> {
    let mut parsed = Vec::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |message: String| BuildrootError::Parse {
            tool: "rpm -qa".into(),
            message: format!("{message} in line {line:?}"),
        };
        let [
            name,
            version,
            release,
            epoch,
            arch,
            sigmd5,
            size,
            buildtime,
            installtime,
        ] = fields[..]
        else {
            return Err(bad(format!("{} fields instead of 9", fields.len())));
        };
        if name == "gpg-pubkey" || name == "buildsys-build" {
            continue;
        }
        let number = |what: &str, text: &str| -> Result<i64, BuildrootError> {
            text.parse()
                .map_err(|_| bad(format!("{what} {text:?} is not a number")))
        };
        let epoch = match epoch {
            "(none)" => None,
            text => Some(number("epoch", text)?),
        };
        let payloadhash = if sigmd5 == "(none)" {
            String::new()
        } else {
            sigmd5.to_ascii_lowercase()
        };
        parsed.push(QaLine {
            rpm: InstalledRpm {
                name: name.to_owned(),
                version: version.to_owned(),
                release: release.to_owned(),
                epoch,
                arch: arch.to_owned(),
                payloadhash,
                size: number("size", size)?,
                buildtime: number("buildtime", buildtime)?,
                external_repo: None,
                from_image: false,
            },
            installtime: number("installtime", installtime)?,
        });
    }
    parsed.sort_by_key(|line| line.rpm.nvra());
    Ok(parsed)
}

/// mock's `installed_pkgs.log` line: `<nevra> <buildtime> <size> <sigmd5> <installtime>`.
pub(crate) fn installed_pkgs_line(line: &QaLine) -> String {
    let rpm = &line.rpm;
    let epoch = rpm.epoch.map(|e| format!("{e}:")).unwrap_or_default();
    format!(
        "{}-{epoch}{}-{}.{} {} {} {} {}",
        rpm.name,
        rpm.version,
        rpm.release,
        rpm.arch,
        rpm.buildtime,
        rpm.size,
        rpm.payloadhash,
        line.installtime
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_qa_lines_become_hub_entries() {
        let lines = vec![
            "zlib\t1.2\t3.fc40\t(none)\tx86_64\tABCDEF\t100\t1700000000\t1700000100".to_owned(),
            "gpg-pubkey\ta\tb\t(none)\t(none)\t(none)\t0\t0\t0".to_owned(),
            "bash\t5.2\t1\t2\tx86_64\t0123\t7\t8\t9".to_owned(),
            String::new(),
        ];
        let parsed = parse_rpm_qa(&lines).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].rpm.name, "bash");
        assert_eq!(parsed[0].rpm.epoch, Some(2));
        assert_eq!(parsed[1].rpm.payloadhash, "abcdef");
        assert_eq!(parsed[1].rpm.epoch, None);
        assert_eq!(
            installed_pkgs_line(&parsed[0]),
            "bash-2:5.2-1.x86_64 8 7 0123 9"
        );
        assert!(parse_rpm_qa(&["a\tb".to_owned()]).is_err());
        assert!(parse_rpm_qa(&["a\t1\t1\tx\tnoarch\tff\t1\t1\t1".to_owned()]).is_err());
    }

    #[test]
    fn unattributed_image_rpms_are_left_out_of_the_hub_list() {
        let rpm = |name: &str, from_image: bool, external: bool| InstalledRpm {
            name: name.into(),
            version: "1".into(),
            release: "1".into(),
            epoch: None,
            arch: "noarch".into(),
            payloadhash: "00".into(),
            size: 1,
            buildtime: 1,
            external_repo: external.then(|| ExternalRepoRef {
                id: 1,
                name: "img".into(),
                url: "u".into(),
            }),
            from_image,
        };
        let list = InstalledRpms {
            all: vec![
                rpm("a", false, false),
                rpm("b", true, false),
                rpm("c", true, true),
            ],
            image: None,
        };
        let names: Vec<&str> = list.for_hub().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }
}
