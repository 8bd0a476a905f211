//! mock's generated configuration, as a dnf.conf and an rpm macros file (spec §5.2).

use super::BuildrootSpec;

/// One baseurl per topurl: `<topurl>/repos/<tag>/<repo_id>/<arch>`; without topurls,
/// `file://<topdir>/repos/<tag>/<repo_id>/<arch>`. `arch` is the canonical buildroot arch.
pub fn repo_baseurls(
    topurls: &[String],
    topdir: Option<&std::path::Path>,
    tag_name: &str,
    repo_id: i64,
    arch: &str,
) -> Vec<String> {
    let suffix = format!("repos/{tag_name}/{repo_id}/{arch}");
    if topurls.is_empty() {
        return topdir
            .map(|dir| {
                format!(
                    "file://{}/{suffix}",
                    dir.display().to_string().trim_end_matches('/')
                )
            })
            .into_iter()
            .collect();
    }
    topurls
        .iter()
        .map(|url| format!("{}/{suffix}", url.trim_end_matches('/')))
        .collect()
}

/// Python's `str(value)` for a tag extra value (how kojid turns `rpm.macro.*` into text).
pub fn python_str(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_repr(&Value::String(k.clone())),
                    python_repr(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn python_repr(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => {
            format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        other => python_str(other),
    }
}

/// kojid's canonical arch (`canonArch`, spec §4.0).
pub fn canon_arch(arch: &str) -> String {
    let a = arch;
    let canon = if a.len() == 4 && a.starts_with('i') && a.ends_with("86") || a == "athlon" {
        "i386"
    } else if a == "ia32e" {
        "x86_64"
    } else if a == "ppc64le" {
        "ppc64le"
    } else if a.starts_with("ppc64") {
        "ppc64"
    } else if a.starts_with("sparc64") {
        "sparc64"
    } else if a.starts_with("sparc") {
        "sparc"
    } else if a.starts_with("alpha") {
        "alpha"
    } else if a.starts_with("arm") && a[3..].contains('h') {
        "armhfp"
    } else if a.starts_with("arm") {
        "arm"
    } else {
        a
    };
    canon.to_owned()
}

/// kojid's `target_arch`: the arch itself, except `armhfp` → `armv7hl`.
pub fn target_arch(arch: &str) -> String {
    if arch == "armhfp" {
        "armv7hl".to_owned()
    } else {
        arch.to_owned()
    }
}

/// The dnf configuration of a buildroot: kojid's `yum.conf` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnfConfig(pub String);

impl DnfConfig {
    /// kojid's text, line for line (§5.2), with dnf's cache under `/var/cache/dnf`.
    pub fn for_spec(spec: &BuildrootSpec) -> Self {
        let extra = &spec.tag_extra;
        let mut text = String::from("[main]\n");
        if let Some(proxy) = &spec.settings.yum_proxy {
            text.push_str(&format!("proxy={proxy}\n"));
        }
        text.push_str(
            "cachedir=/var/cache/yum\n\
             debuglevel=1\n\
             logfile=/var/log/yum.log\n\
             reposdir=/dev/null\n\
             retries=20\n\
             obsoletes=1\n\
             gpgcheck=0\n\
             assumeyes=1\n\
             keepcache=1\n\
             install_weak_deps=0\n\
             strict=1\n",
        );
        // kojid never sets these; a container image's own dnf.conf may, and dnf would read
        // them from there only if they were missing here, which they are not: this file is
        // the only config dnf reads (`-c`).
        text.push_str("skip_if_unavailable=0\n");
        if !spec.repo_urls.is_empty() {
            text.push_str("\n# repos\n\n[build]\nname=build\n");
            for (index, url) in spec.repo_urls.iter().enumerate() {
                if index == 0 {
                    text.push_str(&format!("baseurl={url}\n"));
                } else {
                    text.push_str(&format!("        {url}\n"));
                }
            }
            if extra.truthy("mock.yum.module_hotfixes") {
                text.push_str("module_hotfixes=1\n");
            }
            if let Some(best) = extra.get("mock.yum.best") {
                let best = match best {
                    serde_json::Value::Bool(b) => i64::from(*b),
                    serde_json::Value::Number(n) => {
                        n.as_i64().unwrap_or(i64::from(n.as_f64() != Some(0.0)))
                    }
                    other => i64::from(
                        super::TagExtra([("v".to_owned(), other.clone())].into_iter().collect())
                            .truthy("v"),
                    ),
                };
                text.push_str(&format!("best={best}\n"));
            }
        }
        DnfConfig(text)
    }
}

/// The macros of a buildroot, in kojid's order (defaults, tag extra, caller's, forced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmMacros(pub Vec<(String, String)>);

impl RpmMacros {
    /// Later entries win, as in kojid's dict: defaults, then `rpm.macro.*`, then the caller's
    /// (`--define`), then the forced `%_topdir`, `%_host_cpu`, `%_host`.
    pub fn for_spec(spec: &BuildrootSpec) -> Self {
        let target = target_arch(&spec.arch);
        let settings = &spec.settings;
        let mut macros: Vec<(String, String)> = vec![
            (
                "%_rpmfilename".into(),
                "%%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm".into(),
            ),
            ("%vendor".into(), settings.vendor.clone()),
            ("%packager".into(), settings.packager.clone()),
            ("%distribution".into(), settings.distribution.clone()),
        ];
        let mut set = |name: String, value: String| {
            if let Some(entry) = macros.iter_mut().find(|(known, _)| *known == name) {
                entry.1 = value;
            } else {
                macros.push((name, value));
            }
        };
        for (key, value) in &spec.tag_extra.0 {
            if let Some(name) = key.strip_prefix("rpm.macro.") {
                set(format!("%{name}"), python_str(value));
            }
        }
        for (name, value) in &spec.extra_macros {
            set(format!("%{}", name.trim_start_matches('%')), value.clone());
        }
        set("%_topdir".into(), "/builddir/build".into());
        set("%_host_cpu".into(), target.clone());
        set("%_host".into(), format!("{target}-{}", settings.mockhost));
        RpmMacros(macros)
    }

    /// The text of an rpm macros file. Values keep kojid's mock-config escaping (`%%` for a
    /// literal `%`), which mock writes into the chroot's macros file as is; newlines in a
    /// value become continuation lines.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.0 {
            text.push_str(&format!("{name} {}\n", value.replace('\n', "\\\n")));
        }
        text
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The environment of the build steps: tag extra `rpm.env.*`.
pub(crate) fn build_environment(spec: &BuildrootSpec) -> Vec<(String, String)> {
    spec.tag_extra
        .0
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("rpm.env.")
                .map(|name| (name.to_owned(), python_str(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::buildroot::{BuildrootSettings, InstallGroup, TagExtra};

    fn spec(extra: serde_json::Value) -> BuildrootSpec {
        let serde_json::Value::Object(map) = extra else {
            panic!()
        };
        BuildrootSpec {
            image: "img".into(),
            work_dir: "/w".into(),
            arch: "armhfp".into(),
            tag_name: "f40-build".into(),
            repo_id: Some(12),
            buildroot_id: Some(34),
            repo_urls: repo_baseurls(
                &["http://a/kojifiles".into(), "http://b/".into()],
                None,
                "f40-build",
                12,
                "armhfp",
            ),
            install_group: InstallGroup::Build,
            tag_extra: TagExtra(map.into_iter().collect()),
            extra_macros: vec![("vendor".into(), "Local".into())],
            settings: BuildrootSettings {
                yum_proxy: Some("http://proxy:3128".into()),
                ..BuildrootSettings::default()
            },
        }
    }

    #[test]
    fn dnf_config_is_kojids_yum_conf() {
        let text = DnfConfig::for_spec(&spec(
            json!({"mock.yum.best": true, "mock.yum.module_hotfixes": 1}),
        ))
        .0;
        assert!(text.starts_with("[main]\nproxy=http://proxy:3128\ncachedir=/var/cache/yum\n"));
        for line in [
            "reposdir=/dev/null",
            "gpgcheck=0",
            "install_weak_deps=0",
            "keepcache=1",
            "strict=1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.contains(
            "[build]\nname=build\nbaseurl=http://a/kojifiles/repos/f40-build/12/armhfp\n        http://b/repos/f40-build/12/armhfp\nmodule_hotfixes=1\nbest=1\n"
        ), "{text}");
        let plain = DnfConfig::for_spec(&spec(json!({"mock.yum.best": 0}))).0;
        assert!(!plain.contains("module_hotfixes"));
        assert!(plain.contains("best=0"));
    }

    #[test]
    fn file_urls_when_there_is_no_topurl() {
        assert_eq!(
            repo_baseurls(
                &[],
                Some(std::path::Path::new("/mnt/koji/")),
                "t",
                3,
                "x86_64"
            ),
            vec!["file:///mnt/koji/repos/t/3/x86_64"]
        );
    }

    #[test]
    fn macros_follow_kojis_order_and_forced_ones_win() {
        let macros = RpmMacros::for_spec(&spec(json!({
            "rpm.macro.dist": ".fc40",
            "rpm.macro._topdir": "/elsewhere",
            "rpm.macro.with_x": 1,
            "rpm.macro.flag": true,
            "rpm.env.LANG": "C",
        })));
        assert_eq!(macros.get("%dist"), Some(".fc40"));
        assert_eq!(macros.get("%with_x"), Some("1"));
        assert_eq!(macros.get("%flag"), Some("True"));
        assert_eq!(macros.get("%vendor"), Some("Local"));
        assert_eq!(macros.get("%packager"), Some("Koji"));
        assert_eq!(macros.get("%_topdir"), Some("/builddir/build"));
        assert_eq!(macros.get("%_host_cpu"), Some("armv7hl"));
        assert_eq!(macros.get("%_host"), Some("armv7hl-koji-linux-gnu"));
        assert!(macros.render().contains("%dist .fc40\n"));
    }

    #[test]
    fn canonical_arches() {
        for (arch, canon) in [
            ("i686", "i386"),
            ("athlon", "i386"),
            ("ppc64le", "ppc64le"),
            ("ppc64p7", "ppc64"),
            ("armv7hl", "armhfp"),
            ("armv5tel", "arm"),
            ("x86_64", "x86_64"),
            ("noarch", "noarch"),
            ("ia32e", "x86_64"),
        ] {
            assert_eq!(canon_arch(arch), canon, "{arch}");
        }
    }

    #[test]
    fn python_str_matches_python() {
        assert_eq!(python_str(&json!(false)), "False");
        assert_eq!(python_str(&json!(["a", 1])), "['a', 1]");
    }
}
