//! Multilib for `createdistrepo` (§4.9): which 32-bit packages a 64-bit dist repo carries
//! besides its own. kojid does this in `createDistRepoTask.do_multilib` (`builder/kojid`),
//! between `get_rpms` and `split_pkgs`:
//!
//! 1. Each RPM of the 64-bit repo is judged by python-multilib's `DevelMultilibMethod`
//!    (implemented here, [`MultilibMethod`]) built from the operator's multilib config
//!    (`task_opts.multilib`, read from `<topdir>/work/<path>`). For each chosen one, its
//!    32-bit twin (`…x86_64.rpm` → `…i686.rpm`) must be in the `kojipkgs` of the already
//!    moved 32-bit repo of the same dist repo, else it is reported missing.
//! 2. dnf, with kojid's `dnf.conf-koji-<arch>` (one repo: the 32-bit dist repo) and the 64-bit
//!    arch as the transaction arch, marks the twins for install and resolves their
//!    dependencies. The helper `multilib_dnf.py` (shipped in the binary) does this and reads
//!    the RPM headers, in the task's tool container with no network.
//! 3. Missing twins or dependencies fail the task with `missing_multilib.log`; a failed
//!    depsolve fails it with dnf's problems. Otherwise every package of the transaction that
//!    the 64-bit repo does not already hold joins it, linked to the 32-bit repo's file and
//!    flagged `_multilib` in `kojipkgs`.
//!
//! Where this departs from kojid (docs/repo-tasks.md, "Differences from kojid"), it is because
//! kojid's code cannot work against the hub's dist repo layout: it passes file paths to
//! `dnf.Base.install`, which takes package specs, and it looks for the 32-bit files in
//! `<repo>/<l>/` while `distRepoMove` puts them in `<repo>/Packages/<l>/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use koji_adjutant_actors::handler::TaskContext;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::files::TaskFiles;
use super::paths::{distrepo_dir, multilib_companion, multilib_file_arch, work_file};
use super::tools::{ToolBox, hand_over};
use super::{RepoError, RepoSettings};
use crate::config::ini::{IniDocument, parse_str};
use crate::hub::upload::UploadTarget;

/// The dnf side of the work, written into the task dir and run with the image's python3.
const HELPER: &str = include_str!("multilib_dnf.py");

/// Packages python-multilib always wants in both arches when they are 64-bit (`PREFER_64`).
const PREFER_64: &[&str] = &[
    "gdb",
    "frysk",
    "systemtap",
    "systemtap-runtime",
    "ltrace",
    "strace",
];

const ROOT_LIB_DIRS: &[&str] = &["/lib", "/lib64"];
const USR_LIB_DIRS: &[&str] = &["/usr/lib", "/usr/lib64"];
/// Plug-in dirs whose contents make a package runtime multilib (alsa, dri, gtk modules,
/// krb5, sasl, vdpau, pam, lsb), as python-multilib lists them.
const BY_DIR: &[&str] = &[
    "/usr/lib/alsa-lib",
    "/usr/lib/dri",
    "/usr/lib/gtk-2.0/modules",
    "/usr/lib/gtk-2.0/immodules",
    "/usr/lib/krb5/plugins",
    "/usr/lib/sasl2",
    "/usr/lib/vdpau",
    "/usr/lib64/alsa-lib",
    "/usr/lib64/dri",
    "/usr/lib64/gtk-2.0/modules",
    "/usr/lib64/gtk-2.0/immodules",
    "/usr/lib64/krb5/plugins",
    "/usr/lib64/sasl2",
    "/usr/lib64/vdpau",
    "/lib/security",
    "/lib64/security",
    "/etc/lsb-release.d",
];

/// What can be wrong with an operator's multilib config.
#[derive(Debug, thiserror::Error)]
pub enum MultilibConfigError {
    #[error("cannot parse the multilib config: {0}")]
    Syntax(#[from] crate::config::ini::IniError),
    #[error(
        "the multilib config {file} has no `{key}` in section [{section}]; it needs [runtime] and [devel] sections with `white =` and `black =` lists (they may be empty), like python-multilib's multilib.conf"
    )]
    Missing {
        file: PathBuf,
        section: &'static str,
        key: &'static str,
    },
}

/// The white and black lists of a multilib config (python-multilib's `multilib.conf`), each
/// the option's raw value as `ConfigParser.get` returns it (continuation lines joined by
/// `\n`). python-multilib tests a package with `po.name in <that string>`, a substring test,
/// and so does [`MultilibConfig::listed`]: with the stock config, `perl` counts as
/// white-listed because `perl-libs` is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultilibConfig {
    pub runtime_white: String,
    pub runtime_black: String,
    pub devel_white: String,
    pub devel_black: String,
}

fn raw_value(
    document: &IniDocument,
    file: &Path,
    section: &'static str,
    key: &'static str,
) -> Result<String, MultilibConfigError> {
    // ConfigParser.get falls back to [DEFAULT] for a key the section lacks.
    let value = document
        .section(section)
        .and_then(|s| s.get(key))
        .or_else(|| {
            document
                .section(section)
                .and_then(|_| document.defaults.iter().find(|e| e.key == key))
        })
        .ok_or_else(|| MultilibConfigError::Missing {
            file: file.to_owned(),
            section,
            key,
        })?;
    Ok(value.value.clone())
}

impl MultilibConfig {
    pub fn parse(text: &str, file: &Path) -> Result<Self, MultilibConfigError> {
        let document = parse_str(text, file)?;
        Ok(Self {
            runtime_white: raw_value(&document, file, "runtime", "white")?,
            runtime_black: raw_value(&document, file, "runtime", "black")?,
            devel_white: raw_value(&document, file, "devel", "white")?,
            devel_black: raw_value(&document, file, "devel", "black")?,
        })
    }

    /// python-multilib's `po.name in self.<list>`.
    fn listed(list: &str, name: &str) -> bool {
        list.contains(name)
    }
}

/// What the multilib methods look at in an RPM header.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct PackageFacts {
    pub path: String,
    pub name: String,
    pub arch: String,
    pub files: Vec<String>,
    /// Provide names, without versions.
    pub provides: Vec<String>,
}

/// python-multilib's methods. kojid always builds `DevelMultilibMethod`; the others are here
/// because the rules nest (devel ⊃ runtime ⊃ base) and the tests pin each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultilibMethod {
    None,
    All,
    Runtime,
    Devel,
}

fn glob(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text))
}

impl MultilibMethod {
    pub fn select(self, config: &MultilibConfig, pkg: &PackageFacts) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Runtime => runtime(config, pkg),
            Self::Devel => devel(config, pkg),
        }
    }
}

/// The base method: a few 64-bit tools and 64-bit kernels.
fn base(pkg: &PackageFacts) -> bool {
    if !pkg.arch.contains("64") {
        return false;
    }
    if PREFER_64.contains(&pkg.name.as_str()) {
        return true;
    }
    pkg.name.starts_with("kernel")
        && pkg
            .provides
            .iter()
            .any(|p| p == "kernel" || p == "kernel-devel")
}

fn runtime(config: &MultilibConfig, pkg: &PackageFacts) -> bool {
    if MultilibConfig::listed(&config.runtime_black, &pkg.name) {
        return false;
    }
    if MultilibConfig::listed(&config.runtime_white, &pkg.name) {
        return true;
    }
    if base(pkg) {
        return true;
    }
    if pkg.name.starts_with("kernel") && pkg.provides.iter().any(|p| p == "kernel") {
        return false;
    }
    pkg.files.iter().any(|file| runtime_file(file))
}

/// Whether one file makes a package runtime multilib: shared libraries in the standard
/// dirs, and the plug-in dirs of libraries that load 32-bit modules into 32-bit processes.
fn runtime_file(file: &str) -> bool {
    let Some((dirname, filename)) = file.rsplit_once('/') else {
        return false;
    };
    let in_lib_dir = ROOT_LIB_DIRS.contains(&dirname) || USR_LIB_DIRS.contains(&dirname);
    if in_lib_dir && glob("*.so.*", filename) {
        return true;
    }
    if BY_DIR.contains(&dirname) {
        return true;
    }
    if dirname == "/etc/ld.so.conf.d" && filename.ends_with(".conf") {
        return true;
    }
    if ROOT_LIB_DIRS.contains(&dirname)
        && (filename.starts_with("libnss_") || filename.starts_with("libdb-"))
    {
        return true;
    }
    if !USR_LIB_DIRS.iter().any(|d| dirname.starts_with(d)) {
        return false;
    }
    if dirname.starts_with("/usr/lib/gtk-2.0") || dirname.starts_with("/usr/lib64/gtk-2.0") {
        return [
            "engines",
            "modules",
            "immodules",
            "loaders",
            "printbackends",
            "filesystems",
        ]
        .iter()
        .any(|leaf| glob(&format!("/usr/lib*/gtk-2.0/*/{leaf}"), dirname));
    }
    if dirname.starts_with("/usr/lib/gstreamer-") || dirname.starts_with("/usr/lib64/gstreamer-") {
        return true;
    }
    let plugin_dirs = [
        "/usr/lib*/qt*/plugins/*",
        "/usr/lib*/kde*/plugins/*",
        "/usr/lib*/qt5/qml/*",
        "/usr/lib*/gdk-pixbuf-2.0/*/loaders",
        "/usr/lib*/xine/plugins/*",
    ];
    if plugin_dirs.iter().any(|p| glob(p, dirname)) {
        return true;
    }
    let under = |dirs: [&str; 2]| dirs.contains(&dirname);
    (under(["/usr/lib/oprofile", "/usr/lib64/oprofile"]) && glob("*.so.*", filename))
        || (under(["/usr/lib/wine", "/usr/lib64/wine"]) && filename.ends_with(".so"))
        || (under(["/usr/lib/sane", "/usr/lib64/sane"]) && filename.starts_with("libsane-"))
}

fn devel(config: &MultilibConfig, pkg: &PackageFacts) -> bool {
    if MultilibConfig::listed(&config.devel_black, &pkg.name) {
        return false;
    }
    if MultilibConfig::listed(&config.devel_white, &pkg.name) {
        return true;
    }
    if runtime(config, pkg) {
        return true;
    }
    if pkg.name.starts_with("ghc-") {
        return false;
    }
    if pkg.name.starts_with("kernel") {
        for provide in &pkg.provides {
            if provide == "kernel-devel" {
                return false;
            }
            if provide.ends_with("-devel") || provide.ends_with("-static") {
                return true;
            }
        }
    }
    pkg.name.ends_with("-devel") || pkg.name.ends_with("-static")
}

/// The file name of `basename`'s 32-bit twin: the arch before `.rpm` swapped (noarch stays).
pub fn twin_basename(basename: &str, arch: &str, file_arch: &str) -> String {
    match basename.strip_suffix(&format!(".{arch}.rpm")) {
        Some(stem) => format!("{stem}.{file_arch}.rpm"),
        None => basename.to_owned(),
    }
}

/// `<repo>/Packages/<first letter>/<file>`, where a dist repo keeps its RPMs.
fn packages_path(repo: &Path, basename: &str) -> PathBuf {
    let letter = basename
        .chars()
        .next()
        .map_or('_', |c| c.to_ascii_lowercase())
        .to_string();
    repo.join("Packages").join(letter).join(basename)
}

/// One RPM of the 64-bit repo, as the multilib step sees it.
#[derive(Debug, Clone)]
pub struct RepoRpm {
    pub basename: String,
    pub path: PathBuf,
}

/// A 32-bit RPM the 64-bit repo gains: its entry from the 32-bit repo's `kojipkgs` (with
/// `_multilib` set), and the file it links to.
#[derive(Debug, Clone)]
pub struct MultilibRpm {
    pub basename: String,
    pub info: Value,
    pub sigkey: Option<String>,
    pub path: PathBuf,
}

#[derive(Deserialize)]
struct Inspected {
    packages: Vec<PackageFacts>,
}

#[derive(Deserialize)]
struct Resolved {
    ok: bool,
    problems: Vec<String>,
    install: Vec<Installed>,
}

#[derive(Deserialize)]
struct Installed {
    file: String,
    arch: String,
}

/// Where a createdistrepo task does its multilib work.
pub struct MultilibJob<'a> {
    pub ctx: &'a TaskContext,
    pub settings: &'a RepoSettings,
    pub files: Arc<dyn TaskFiles>,
    pub task_dir: &'a Path,
    pub tag_name: &'a str,
    pub repo_id: i64,
    pub event: Option<i64>,
    /// The 64-bit arch of this repo.
    pub arch: &'a str,
    /// `task_opts.multilib`: the config's path relative to the work dir.
    pub config: &'a str,
}

/// kojid's `dnf.conf-koji-<arch>`, byte for byte (commented-out settings included): `[main]`
/// with the installroot in the task dir, and one repo `koji-<task id>` for the 32-bit repo.
pub fn dnf_conf_text(installroot: &Path, task_id: i64, ml_dir: &Path) -> String {
    format!(
        "\n[main]\ndebuglevel=2\n#pkgpolicy=newest\n#exactarch=1\ngpgcheck=0\n#reposdir=/dev/null\n\
         #cachedir=/dnfcache\ninstallroot={}\n#logfile=/dnf.log\n\n[koji-{task_id}]\n\
         name=koji multilib task\nbaseurl=file://{}\nenabled=1\n\n",
        installroot.display(),
        ml_dir.display()
    )
}

/// kojid's `missing_multilib.log`: a header line, then one path a line.
pub fn missing_log_text(missing: &BTreeSet<String>) -> String {
    let mut text = String::from("The following multilib files were missing:\n");
    for path in missing {
        text.push_str(path);
        text.push('\n');
    }
    text
}

impl MultilibJob<'_> {
    /// The 32-bit packages to add to the repo made of `rpms`.
    pub async fn resolve(&self, rpms: &[RepoRpm]) -> Result<Vec<MultilibRpm>, RepoError> {
        let (Some(ml_dir_arch), Some(file_arch)) =
            (multilib_companion(self.arch), multilib_file_arch(self.arch))
        else {
            return Ok(Vec::new());
        };
        let settings = self.settings;
        let config_path = work_file(&settings.topdir, self.config).ok_or_else(|| {
            RepoError::generic(format!(
                "task_opts multilib must be a path relative to the work dir, got {:?}",
                self.config
            ))
        })?;
        // kojid reads the 32-bit repo's kojipkgs first, then builds the method from the config.
        let ml_dir = distrepo_dir(&settings.topdir, self.repo_id, self.tag_name).join(ml_dir_arch);
        let ml_kojipkgs = ml_dir.join("kojipkgs");
        let ml_pkgs: Map<String, Value> = match std::fs::read_to_string(&ml_kojipkgs) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                RepoError::generic(format!("{} is not valid JSON: {e}", ml_kojipkgs.display()))
            })?,
            Err(error) => {
                return Err(RepoError::generic(format!(
                    "multilib for {} needs the {ml_dir_arch} repo of dist repo {}, but {} cannot be read ({error}): generate the dist repo with {ml_dir_arch} among its arches",
                    self.arch,
                    self.repo_id,
                    ml_kojipkgs.display()
                )));
            }
        };
        let config = read_config(&config_path)?;

        let work = self.task_dir.join("multilib");
        let dnf_dir = self.task_dir.join("dnf");
        for dir in [
            work.clone(),
            dnf_dir.clone(),
            dnf_dir.join("dnfcache"),
            dnf_dir.join("var/lib/rpm"),
        ] {
            std::fs::create_dir_all(&dir).map_err(RepoError::io("cannot create", &dir))?;
            hand_over(settings, &dir)?;
        }
        let helper = work.join("multilib_dnf.py");
        std::fs::write(&helper, HELPER).map_err(RepoError::io("cannot write", &helper))?;
        let mut tools = ToolBox::new(
            self.ctx,
            settings,
            Arc::clone(&self.files),
            self.task_dir.to_owned(),
            Some(self.tag_name.to_owned()),
            self.event,
        );

        // Step 1: which packages are multilib, and are their twins in the 32-bit kojipkgs?
        let inspected: Inspected = self
            .helper(
                &mut tools,
                &helper,
                "inspect",
                &json!({
                    "cachedir": work.join("cache"),
                    "paths": rpms.iter().map(|r| r.path.display().to_string()).collect::<Vec<_>>(),
                }),
            )
            .await?;
        let by_path: BTreeMap<&str, &PackageFacts> = inspected
            .packages
            .iter()
            .map(|p| (p.path.as_str(), p))
            .collect();
        let mut fs_missing: BTreeSet<String> = BTreeSet::new();
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for rpm in rpms {
            let path = rpm.path.display().to_string();
            let facts = by_path.get(path.as_str()).ok_or_else(|| {
                RepoError::generic(format!(
                    "the multilib helper did not report on {path}; see multilib.log"
                ))
            })?;
            if !MultilibMethod::Devel.select(&config, facts) {
                continue;
            }
            let twin = twin_basename(&rpm.basename, self.arch, file_arch);
            let twin_path = packages_path(&ml_dir, &twin).display().to_string();
            if ml_pkgs.contains_key(&twin) {
                wanted.insert(twin);
            } else {
                tracing::error!(
                    task_id = self.ctx.task_id,
                    "{twin_path} (multilib) is not on the filesystem"
                );
                fs_missing.insert(twin_path);
            }
        }

        // Step 2: kojid's dnf config, uploaded under its name.
        tracing::info!(
            task_id = self.ctx.task_id,
            "Resolving multilib for {} using method devel",
            self.arch
        );
        let conf_name = format!("dnf.conf-koji-{}", self.arch);
        let dnf_conf = dnf_dir.join(&conf_name);
        std::fs::write(
            &dnf_conf,
            dnf_conf_text(&dnf_dir, self.ctx.task_id, &ml_dir),
        )
        .map_err(RepoError::io("cannot write", &dnf_conf))?;
        self.files
            .upload(
                &dnf_conf,
                &UploadTarget::for_task(self.ctx.task_id, &[], &conf_name)?,
            )
            .await?;

        // Step 3: mark the twins for install and resolve against the 32-bit repo.
        tracing::info!(
            task_id = self.ctx.task_id,
            "Resolving dependencies for arch {}",
            self.arch
        );
        let mut needed: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        if !wanted.is_empty() {
            let resolved: Resolved = self
                .helper(
                    &mut tools,
                    &helper,
                    "resolve",
                    &json!({
                        "cachedir": work.join("cache"),
                        "dnf_conf": dnf_conf,
                        "arch": self.arch,
                        "install": wanted,
                    }),
                )
                .await?;
            if !resolved.ok {
                // kojid lets dnf's error fail the task; it writes no missing_multilib.log then.
                let problems: Vec<&str> = resolved
                    .problems
                    .iter()
                    .map(|l| l.trim_end())
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                return Err(RepoError::generic(format!(
                    "dnf depsolve was unsuccessful for the multilib packages of {} against {}:\n{}",
                    self.arch,
                    ml_dir.display(),
                    problems.join("\n")
                )));
            }
            tracing::info!(
                task_id = self.ctx.task_id,
                "dnf depsolve successfully finished"
            );
            for pkg in resolved.install {
                let dep_path = packages_path(&ml_dir, &pkg.file);
                if !dep_path.is_file() || !ml_pkgs.contains_key(&pkg.file) {
                    tracing::error!(
                        task_id = self.ctx.task_id,
                        "{} (multilib dep) not on filesystem",
                        dep_path.display()
                    );
                    fs_missing.insert(dep_path.display().to_string());
                }
                needed.insert(pkg.file, (dep_path, pkg.arch));
            }
        }

        // Step 4: anything missing fails the task, with the list.
        if !fs_missing.is_empty() {
            let log = self.task_dir.join("missing_multilib.log");
            std::fs::write(&log, missing_log_text(&fs_missing))
                .map_err(RepoError::io("cannot write", &log))?;
            self.files
                .upload(
                    &log,
                    &UploadTarget::for_task(self.ctx.task_id, &[], "missing_multilib.log")?,
                )
                .await?;
            return Err(RepoError::generic(
                "multilib packages missing. See missing_multilib.log",
            ));
        }

        // Step 5: what the 64-bit repo gains, as kojid updates its kojipkgs.
        let own: BTreeSet<&str> = rpms.iter().map(|r| r.basename.as_str()).collect();
        let mut added = Vec::new();
        for (basename, (path, arch)) in needed {
            if own.contains(basename.as_str()) {
                // noarch packages are in both repos; anything else twice is odd.
                if arch != "noarch" {
                    tracing::warn!(task_id = self.ctx.task_id, "Multilib duplicate: {basename}");
                }
                continue;
            }
            let mut info = ml_pkgs.get(&basename).cloned().unwrap_or(Value::Null);
            let sigkey = info
                .get("sigkey")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
            if let Value::Object(map) = &mut info {
                map.insert("_multilib".into(), json!(true));
            }
            added.push(MultilibRpm {
                basename,
                info,
                sigkey,
                path,
            });
        }
        Ok(added)
    }

    /// Runs one helper mode with a JSON request, returning its JSON result.
    async fn helper<T: serde::de::DeserializeOwned>(
        &self,
        tools: &mut ToolBox<'_>,
        helper: &Path,
        mode: &str,
        request: &Value,
    ) -> Result<T, RepoError> {
        let work = helper.parent().unwrap_or(self.task_dir);
        let request_path = work.join(format!("{mode}-request.json"));
        let result_path = work.join(format!("{mode}-result.json"));
        std::fs::write(&request_path, request.to_string())
            .map_err(RepoError::io("cannot write", &request_path))?;
        let argv = vec![
            // Found on the PATH, in the container as on the host, where `doctor` looks for it.
            "python3".to_owned(),
            helper.display().to_string(),
            mode.to_owned(),
            request_path.display().to_string(),
            result_path.display().to_string(),
        ];
        let status = tools.run("multilib", argv, "multilib.log", false).await?;
        if status != 0 {
            return Err(RepoError::generic(format!(
                "the multilib {mode} step (python3 with dnf) exited with status {status}; see multilib.log. Multilib dist repos need python3 with the dnf module (python3-dnf) in the repo tool image, or on the worker with repo_tools = host (`koji-adjutant doctor` checks it)"
            )));
        }
        let text = std::fs::read_to_string(&result_path)
            .map_err(RepoError::io("cannot read", &result_path))?;
        serde_json::from_str(&text).map_err(|e| RepoError::BadReply {
            call: format!("multilib_dnf.py {mode}"),
            detail: e.to_string(),
        })
    }
}

/// `DevelMultilibMethod(ml_conf)`: the config from the local work dir.
fn read_config(path: &Path) -> Result<MultilibConfig, RepoError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        RepoError::generic(format!(
            "cannot read the multilib config {} ({error}): `koji dist-repo --multilib FILE` uploads it to the hub's work dir, which this worker reads under its topdir",
            path.display()
        ))
    })?;
    MultilibConfig::parse(&text, path).map_err(|e| RepoError::generic(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "[runtime]\nwhite = libflashsupport\n    valgrind\nblack = httpd\n    php\n\n[devel]\nwhite =\nblack = httpd-devel\n    php-devel\n";

    fn config() -> MultilibConfig {
        MultilibConfig::parse(CONF, Path::new("multilib.conf")).unwrap()
    }

    fn pkg(name: &str, arch: &str, files: &[&str]) -> PackageFacts {
        PackageFacts {
            path: format!("/x/{name}.{arch}.rpm"),
            name: name.to_owned(),
            arch: arch.to_owned(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
            provides: vec![name.to_owned()],
        }
    }

    #[test]
    fn the_config_lists_are_substring_tests_as_in_python_multilib() {
        let c = config();
        assert_eq!(c.runtime_white, "libflashsupport\nvalgrind");
        assert_eq!(c.devel_white, "");
        // `po.name in <raw value>`: a part of a listed name counts as listed.
        assert!(MultilibConfig::listed(&c.runtime_black, "php"));
        assert!(MultilibConfig::listed(&c.runtime_black, "http"));
        assert!(!MultilibConfig::listed(&c.runtime_black, "httpd-tools"));
        assert!(!MultilibConfig::listed(&c.devel_white, "libfoo"));
        let http = pkg("http", "x86_64", &["/usr/lib64/libhttp.so.1"]);
        assert!(!MultilibMethod::Devel.select(&c, &http));
        let flash = pkg("flash", "x86_64", &["/usr/bin/flash"]);
        assert!(MultilibMethod::Devel.select(&c, &flash));
        let err = MultilibConfig::parse("[runtime]\nwhite=\nblack=\n", Path::new("m.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[devel]") && err.contains("white"), "{err}");
    }

    #[test]
    fn dnf_conf_and_missing_log_are_kojids_text() {
        let conf = dnf_conf_text(Path::new("/w/tasks/7/7/dnf"), 7, Path::new("/r/i386"));
        assert_eq!(
            conf,
            "\n[main]\ndebuglevel=2\n#pkgpolicy=newest\n#exactarch=1\ngpgcheck=0\n\
             #reposdir=/dev/null\n#cachedir=/dnfcache\ninstallroot=/w/tasks/7/7/dnf\n\
             #logfile=/dnf.log\n\n[koji-7]\nname=koji multilib task\n\
             baseurl=file:///r/i386\nenabled=1\n\n"
        );
        let missing: BTreeSet<String> = ["/r/i386/Packages/b/b.rpm", "/r/i386/Packages/a/a.rpm"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            missing_log_text(&missing),
            "The following multilib files were missing:\n/r/i386/Packages/a/a.rpm\n/r/i386/Packages/b/b.rpm\n"
        );
    }

    #[test]
    fn devel_selects_libraries_devel_and_lists() {
        let c = config();
        let devel = MultilibMethod::Devel;
        assert!(devel.select(&c, &pkg("libfoo", "x86_64", &["/usr/lib64/libfoo.so.1"])));
        assert!(devel.select(&c, &pkg("libfoo-devel", "x86_64", &["/usr/include/foo.h"])));
        assert!(devel.select(
            &c,
            &pkg("libfoo-static", "x86_64", &["/usr/lib64/libfoo.a"])
        ));
        assert!(!devel.select(&c, &pkg("foo-tools", "x86_64", &["/usr/bin/foo"])));
        assert!(devel.select(&c, &pkg("valgrind", "x86_64", &["/usr/bin/valgrind"])));
        assert!(devel.select(&c, &pkg("strace", "x86_64", &["/usr/bin/strace"])));
        assert!(!devel.select(&c, &pkg("strace", "noarch", &["/usr/bin/strace"])));
        assert!(!devel.select(&c, &pkg("php", "x86_64", &["/usr/lib64/libphp.so.8"])));
        assert!(!devel.select(&c, &pkg("php-devel", "x86_64", &["/usr/include/php.h"])));
        assert!(!devel.select(&c, &pkg("ghc-base", "x86_64", &["/usr/lib64/ghc/x.so"])));
        assert!(devel.select(&c, &pkg("nss-mod", "x86_64", &["/lib64/libnss_files.so"])));
        assert!(devel.select(
            &c,
            &pkg(
                "gtk-eng",
                "x86_64",
                &["/usr/lib64/gtk-2.0/2.10.0/engines/libx.so"]
            )
        ));
        assert!(devel.select(
            &c,
            &pkg("qt-plug", "x86_64", &["/usr/lib64/qt5/plugins/styles/x.so"])
        ));
        assert!(devel.select(&c, &pkg("pam-mod", "x86_64", &["/lib64/security/pam_x.so"])));
        assert!(!devel.select(&c, &pkg("libexec", "x86_64", &["/usr/lib64/foo/helper"])));
    }

    #[test]
    fn runtime_leaves_out_devel_and_the_others_are_constant() {
        let c = config();
        let devel_pkg = pkg("libfoo-devel", "x86_64", &["/usr/include/foo.h"]);
        assert!(!MultilibMethod::Runtime.select(&c, &devel_pkg));
        assert!(
            MultilibMethod::Runtime
                .select(&c, &pkg("libfoo", "x86_64", &["/usr/lib64/libfoo.so.1"]))
        );
        assert!(MultilibMethod::All.select(&c, &devel_pkg));
        assert!(!MultilibMethod::None.select(&c, &devel_pkg));
        let mut kernel = pkg("kernel", "x86_64", &["/boot/vmlinuz"]);
        kernel.provides.push("kernel".into());
        assert!(MultilibMethod::Runtime.select(&c, &kernel));
        let mut kernel_devel = pkg("kernel-devel", "x86_64", &["/usr/src/kernels/x/Makefile"]);
        kernel_devel.provides = vec!["kernel-devel".into()];
        assert!(MultilibMethod::Devel.select(&c, &kernel_devel));
        kernel_devel.arch = "i686".into();
        assert!(!MultilibMethod::Devel.select(&c, &kernel_devel));
    }

    #[test]
    fn twins_swap_only_the_arch_suffix() {
        assert_eq!(
            twin_basename("libfoo-1.0-1.x86_64.rpm", "x86_64", "i686"),
            "libfoo-1.0-1.i686.rpm"
        );
        assert_eq!(
            twin_basename("x86_64-tool-1-1.x86_64.rpm", "x86_64", "i686"),
            "x86_64-tool-1-1.i686.rpm"
        );
        assert_eq!(
            twin_basename("common-1-1.noarch.rpm", "x86_64", "i686"),
            "common-1-1.noarch.rpm"
        );
        assert_eq!(
            packages_path(Path::new("/r/i386"), "Libfoo-1-1.i686.rpm"),
            Path::new("/r/i386/Packages/l/Libfoo-1-1.i686.rpm")
        );
    }
}
