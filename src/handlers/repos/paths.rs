//! Koji's path layout (`koji.PathInfo`) and arch helpers, as the repo tasks use them.

use std::path::{Path, PathBuf};

/// `tasks/<id % 10000>/<id>`, the task's upload dir relative to the hub's work dir.
pub fn task_relpath(task_id: i64) -> String {
    format!("tasks/{}/{}", task_id % 10000, task_id)
}

/// `<workdir>/tasks/<id % 10000>/<id>`, the task's local work dir.
pub fn task_workdir(workdir: &Path, task_id: i64) -> PathBuf {
    workdir.join(task_relpath(task_id))
}

/// `<topdir>/repos/<tag>/<repo_id>`.
pub fn repo_dir(topdir: &Path, repo_id: i64, tag_name: &str) -> PathBuf {
    topdir
        .join("repos")
        .join(tag_name)
        .join(repo_id.to_string())
}

/// `<topdir>/repos-dist/<tag>/<repo_id>`.
pub fn distrepo_dir(topdir: &Path, repo_id: i64, tag_name: &str) -> PathBuf {
    topdir
        .join("repos-dist")
        .join(tag_name)
        .join(repo_id.to_string())
}

/// `packages/<n>/<v>/<r>` under topdir (volume DEFAULT).
pub fn build_dir(topdir: &Path, name: &str, version: &str, release: &str) -> PathBuf {
    topdir
        .join("packages")
        .join(name)
        .join(version)
        .join(release)
}

/// `koji.canonArch`.
pub fn canon_arch(arch: &str) -> String {
    let is_x86_32 = arch.len() == 4 && arch.starts_with('i') && arch.ends_with("86");
    let canon = if is_x86_32 || arch == "athlon" {
        "i386"
    } else if arch == "ia32e" {
        "x86_64"
    } else if arch == "ppc64le" {
        arch
    } else if arch.starts_with("ppc64") {
        "ppc64"
    } else if arch.starts_with("sparc64") {
        "sparc64"
    } else if arch.starts_with("sparc") {
        "sparc"
    } else if arch.starts_with("alpha") {
        "alpha"
    } else if arch.starts_with("arm") && arch.contains('h') {
        "armhfp"
    } else if arch.starts_with("arm") {
        "arm"
    } else {
        arch
    };
    canon.to_owned()
}

/// The arches whose RPMs go into a dist repo of `arch` (kojid's `createdistrepo` arch
/// family: `koji.arch.getArchList` minus the arches the tool cannot handle).
pub fn arch_family(arch: &str) -> Vec<String> {
    let list: &[&str] = match arch {
        "x86_64" => &["x86_64", "amd64", "ia32e", "noarch"],
        "i386" => &["i686", "i586", "i486", "i386", "athlon", "noarch"],
        "src" => &["src"],
        "aarch64" => &["aarch64", "noarch"],
        "ppc64le" => &["ppc64le", "noarch"],
        "ppc64" => &["ppc64", "ppc64p7", "pseries", "noarch"],
        "s390x" => &["s390x", "noarch"],
        "armhfp" => &["armv7hl", "armv7hnl", "noarch"],
        other => return vec![other.to_owned(), "noarch".to_owned()],
    };
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// The 32-bit companion of a multilib arch (`koji.arch.multilibArches`).
pub fn multilib_companion(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" => Some("i386"),
        "ppc64" => Some("ppc"),
        "s390x" => Some("s390"),
        _ => None,
    }
}

/// The arch that the companion's RPM files carry (kojid's `createdistrepo.archmap`): the name
/// of the 32-bit twin of `<name>-<v>-<r>.x86_64.rpm` is `<name>-<v>-<r>.i686.rpm`.
pub fn multilib_file_arch(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" => Some("i686"),
        "ppc64" => Some("ppc"),
        "s390x" => Some("s390"),
        _ => None,
    }
}

/// `<topdir>/work/<relpath>` for a path the client uploaded (`koji dist-repo --multilib`),
/// or `None` when `relpath` could leave the work dir (absolute, `..`, empty).
pub fn work_file(topdir: &Path, relpath: &str) -> Option<PathBuf> {
    let rel = Path::new(relpath);
    let plain = !relpath.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then(|| topdir.join("work").join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_koji_pathinfo() {
        assert_eq!(task_relpath(51234567), "tasks/4567/51234567");
        assert_eq!(
            repo_dir(Path::new("/mnt/koji"), 7, "f42-build"),
            Path::new("/mnt/koji/repos/f42-build/7")
        );
        assert_eq!(
            distrepo_dir(Path::new("/mnt/koji"), 7, "f42"),
            Path::new("/mnt/koji/repos-dist/f42/7")
        );
    }

    #[test]
    fn work_files_stay_in_the_work_dir() {
        let top = Path::new("/mnt/koji");
        assert_eq!(
            work_file(top, "cli-dist-repo/1.2/multilib.conf"),
            Some(PathBuf::from(
                "/mnt/koji/work/cli-dist-repo/1.2/multilib.conf"
            ))
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert_eq!(work_file(top, bad), None, "{bad}");
        }
        assert_eq!(multilib_file_arch("x86_64"), Some("i686"));
        assert_eq!(multilib_file_arch("aarch64"), None);
    }

    #[test]
    fn canon_arch_matches_koji() {
        for (given, canon) in [
            ("i686", "i386"),
            ("athlon", "i386"),
            ("ia32e", "x86_64"),
            ("ppc64le", "ppc64le"),
            ("ppc64p7", "ppc64"),
            ("armv7hl", "armhfp"),
            ("armv5tel", "arm"),
            ("aarch64", "aarch64"),
            ("x86_64", "x86_64"),
        ] {
            assert_eq!(canon_arch(given), canon, "{given}");
        }
    }
}
