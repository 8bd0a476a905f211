//! Test SRPMs built on the host with `rpmbuild -bs`, shared by the build, buildroot, local
//! build and daemon tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `rpmbuild -bs` of `tests/data/srpms/<package>`; returns the SRPM's path in `dir`.
pub fn build_srpm(package: &str, dir: &Path) -> PathBuf {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/srpms")
        .join(package);
    build_srpm_from(&sources, package, dir)
}

/// `rpmbuild -bs` of `sources/<package>.spec`; returns the SRPM's path in `dir`.
pub fn build_srpm_from(sources: &Path, package: &str, dir: &Path) -> PathBuf {
    let topdir = tempfile::tempdir().unwrap();
    let output = Command::new("rpmbuild")
        .arg("-bs")
        .arg("--define")
        .arg(format!("_topdir {}", topdir.path().display()))
        .arg("--define")
        .arg(format!("_sourcedir {}", sources.display()))
        .arg(sources.join(format!("{package}.spec")))
        .output()
        .expect("rpmbuild on the host (scripts/setup-dev.sh installs rpm)");
    assert!(
        output.status.success(),
        "rpmbuild -bs {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let srpm = std::fs::read_dir(topdir.path().join("SRPMS"))
        .unwrap()
        .next()
        .expect("rpmbuild -bs wrote an SRPM")
        .unwrap()
        .path();
    std::fs::create_dir_all(dir).unwrap();
    let target = dir.join(srpm.file_name().unwrap());
    std::fs::copy(&srpm, &target).unwrap();
    target
}
