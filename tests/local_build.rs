//! `koji-adjutant build FOO.src.rpm`: the binary, real podman, the builder image, real rpmbuild.
//! Needs what tests/buildroot.rs needs (root, podman, the image, rpmbuild on the host).

use std::path::Path;
use std::process::Command;

#[path = "support/srpm.rs"]
mod srpm;
use srpm::build_srpm;
#[path = "support/distro_repo.rs"]
mod distro_repo;
#[path = "support/static_http.rs"]
mod static_http;

const BIN: &str = env!("CARGO_BIN_EXE_koji-adjutant");

/// `rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH}'` of a built file.
fn rpm_query(path: &Path) -> String {
    let output = Command::new("rpm")
        .arg("-qp")
        .arg("--qf")
        .arg("%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{VENDOR}")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn local_build(srpm: &Path, result_dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("build")
        .arg(srpm)
        .arg("--resultdir")
        .arg(result_dir)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn local_builds_of_the_noarch_and_the_c_srpm_with_a_dist_define() {
    let top = tempfile::tempdir().unwrap();
    for (package, arch) in [("hello-noarch", "noarch"), ("hello-c", "x86_64")] {
        let srpm = build_srpm(package, top.path());
        let results = top.path().join(format!("results-{package}"));
        let output = local_build(&srpm, &results, &["--define", "dist .el99"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{package}: {stdout}\n{stderr}");

        let binary = results.join(format!("{package}-1.0-1.el99.{arch}.rpm"));
        let source = results.join(format!("{package}-1.0-1.el99.src.rpm"));
        assert!(
            stdout.contains(&format!("wrote {}", binary.display())),
            "{stdout}"
        );
        assert_eq!(
            rpm_query(&binary),
            format!("{package} 1.0 1.el99 {arch} Koji")
        );
        // A source rpm's header carries the arch it was built for: noarch for BuildArch noarch.
        assert_eq!(
            rpm_query(&source),
            format!("{package} 1.0 1.el99 {arch} Koji")
        );
        for log in [
            "build.log",
            "root.log",
            "state.log",
            "hw_info.log",
            "installed_pkgs.log",
            "mock_output.log",
            "mock_config.log",
        ] {
            assert!(results.join(log).is_file(), "{package}: {log} missing");
        }
        let build_log = std::fs::read_to_string(results.join("build.log")).unwrap();
        assert!(build_log.contains("Wrote:"), "{build_log}");
        assert!(
            stdout.contains("phase init:") && stdout.contains("phase build:"),
            "{stdout}"
        );
        // The work dir is gone; only results and logs are left.
        let leftovers: Vec<String> = std::fs::read_dir(&results)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn a_failing_local_build_exits_1_with_kojids_message_and_keeps_the_logs() {
    let top = tempfile::tempdir().unwrap();
    let srpm = build_srpm("fails-build", top.path());
    let results = top.path().join("results");
    let output = local_build(&srpm, &results, &["--arch", "noarch"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error building package (arch noarch), rpmbuild exited with status 1; see build.log for more information"
        ),
        "{stderr}"
    );
    let build_log = std::fs::read_to_string(results.join("build.log")).unwrap();
    assert!(build_log.contains("FAILS-BUILD"), "{build_log}");
}

#[test]
fn bad_arguments_exit_2_and_say_what_is_wrong() {
    let top = tempfile::tempdir().unwrap();
    let output = local_build(
        &top.path().join("missing.src.rpm"),
        &top.path().join("r"),
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a file"));
    let srpm = build_srpm("hello-noarch", top.path());
    let output = local_build(
        &srpm,
        &top.path().join("r"),
        &["--buildroot-mode", "chroot"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--buildroot-mode must be one of image, installroot")
    );
    let output = local_build(&srpm, &top.path().join("r"), &["--define", "novalue"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not 'NAME VALUE'"));
}

#[test]
fn a_local_build_in_installroot_mode_uses_only_the_distribution_repo() {
    let repo = distro_repo::distro_repo("localhost/koji-adjutant-builder:latest");
    let url = static_http::serve(repo.dir.clone());
    let top = tempfile::tempdir().unwrap();
    let srpm = build_srpm("hello-c", top.path());
    let results = top.path().join("results");
    let output = local_build(
        &srpm,
        &results,
        &[
            "--buildroot-mode",
            "installroot",
            "--repo",
            &url,
            "--define",
            "dist .ir2",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = |name: &str| std::fs::read_to_string(results.join(name)).unwrap_or_default();
    assert!(
        output.status.success(),
        "{stdout}\n{stderr}\n{}\n{}",
        log("root.log"),
        log("build.log")
    );
    let arch = std::env::consts::ARCH;
    let binary = results.join(format!("hello-c-1.0-1.ir2.{arch}.rpm"));
    assert_eq!(rpm_query(&binary), format!("hello-c 1.0 1.ir2 {arch} Koji"));
    assert!(log("mock_config.log").contains("# buildroot mode: installroot"));
    assert!(log("root.log").contains("'--installroot=/buildroot' install @build"));
    // installed_pkgs.log is the installroot's rpmdb: the repo's packages, gcc among them (the
    // SRPM's BuildRequires), and none of the image's.
    let installed = log("installed_pkgs.log");
    let nevras: Vec<&str> = installed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(nevras.len() > 50, "{installed}");
    for nevra in &nevras {
        assert!(
            repo.packages
                .iter()
                .any(|name| nevra.starts_with(&format!("{name}-"))),
            "{nevra} is not a package of the repo"
        );
    }
    assert!(
        nevras.iter().any(|n| n.starts_with("gcc-12-")),
        "{installed}"
    );
    assert!(!installed.contains("debian-rootfs-provides"), "{installed}");
    assert!(!results.join("image_rpms.log").exists());
}
