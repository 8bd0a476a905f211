//! A stub Koji repo on disk and the host tools that make it (rpmbuild, createrepo_c), shared by
//! the tests that run build handlers or the daemon against the fake hub. Included with
//! `#[path]`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .expect("the host tool (scripts/setup-dev.sh installs it)");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// A noarch stub rpm `name` with no files, built into `rpmdir/noarch/`.
pub fn build_stub_rpm(name: &str, rpmdir: &Path) -> PathBuf {
    let scratch = tempfile::tempdir().unwrap();
    let spec = scratch.path().join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1\nRelease: 1\nSummary: stub\nLicense: MIT\n\
             BuildArch: noarch\n%description\nstub\n%files\n"
        ),
    )
    .unwrap();
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", scratch.path().join("top").display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", rpmdir.display()))
        .arg(&spec));
    rpmdir.join(format!("noarch/{name}-1-1.noarch.rpm"))
}

/// Repo 1 of dist-build on disk, as kojira would leave it: one stub rpm that the comps groups
/// `build` and `srpm-build` list, createrepo_c metadata and the `rpmlist.jsonl` the hub writes.
pub fn make_repo_by_hand(topdir: &Path) {
    let dir = topdir.join("repos/dist-build/1/x86_64");
    std::fs::create_dir_all(&dir).unwrap();
    let rpm = build_stub_rpm("stub-build-tools", &dir);
    let sigmd5 = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{SIGMD5}"])
        .arg(&rpm));
    std::fs::write(
        dir.join("rpmlist.jsonl"),
        format!(
            "{}\n",
            json!({"arch": "noarch", "build_id": 1, "buildroot_id": null, "buildtime": 0,
                   "draft": false, "epoch": null, "extra": null, "id": 101,
                   "metadata_only": false, "name": "stub-build-tools", "payloadhash": sigmd5.trim(),
                   "release": "1", "size": 0, "version": "1"})
        ),
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let comps = scratch.path().join("comps.xml");
    std::fs::write(&comps, comps_xml(&["stub-build-tools"])).unwrap();
    run(Command::new("createrepo_c")
        .args(["-q", "-g"])
        .arg(&comps)
        .arg(&dir));
    for path in [
        topdir.join("repos"),
        topdir.join("repos/dist-build"),
        topdir.join("repos/dist-build/1"),
        dir.clone(),
    ] {
        open_up(&path);
    }
}

/// comps.xml with the `build` and `srpm-build` groups, both listing `packages`.
pub fn comps_xml(packages: &[&str]) -> String {
    let reqs: String = packages
        .iter()
        .map(|p| format!("<packagereq type=\"mandatory\">{p}</packagereq>"))
        .collect();
    let group = |id: &str| {
        format!(
            "<group><id>{id}</id><name>{id}</name><description>{id}</description>\
             <default>true</default><uservisible>true</uservisible><packagelist>{reqs}\
             </packagelist></group>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<comps>{}{}</comps>\n",
        group("build"),
        group("srpm-build")
    )
}
