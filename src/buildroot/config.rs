//! mock's generated configuration, as a dnf.conf and an rpm macros file (spec §5.2).

use super::{BuildrootSpec, TagExtra};

/// One baseurl per topurl: `<topurl>/repos/<tag>/<repo_id>/<arch>`; without topurls,
/// `file://<topdir>/repos/<tag>/<repo_id>/<arch>`. `arch` is the canonical buildroot arch.
pub fn repo_baseurls(
    topurls: &[String],
    topdir: Option<&std::path::Path>,
    tag_name: &str,
    repo_id: i64,
    arch: &str,
) -> Vec<String> {
    todo!("{topurls:?} {topdir:?} {tag_name} {repo_id} {arch}")
}

/// Python's `str(value)` for a tag extra value (how kojid turns `rpm.macro.*` into text).
pub fn python_str(value: &serde_json::Value) -> String {
    todo!("{value}")
}

/// The dnf configuration of a buildroot: kojid's `yum.conf` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnfConfig(pub String);

impl DnfConfig {
    pub fn for_spec(spec: &BuildrootSpec) -> Self {
        todo!("{spec:?}")
    }
}

/// The macros of a buildroot, in kojid's order (defaults, tag extra, caller's, forced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmMacros(pub Vec<(String, String)>);

impl RpmMacros {
    pub fn for_spec(spec: &BuildrootSpec) -> Self {
        let _: Option<&TagExtra> = None;
        todo!("{spec:?}")
    }

    /// The text of an rpm macros file (`%name value` lines).
    pub fn render(&self) -> String {
        todo!()
    }
}
