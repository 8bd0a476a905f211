//! End to end through the real daemon: `koji-adjutant run` (the binary) polls the fake hub,
//! takes `build` and `newRepo` tasks and their children, and runs them in real podman
//! containers from the builder image. The fake hub's topurl file server on 127.0.0.1 serves
//! the repos, so the daemon reaches them exactly as a production builder reaches kojifiles.
//!
//! Needs root, podman, `localhost/koji-adjutant-builder:latest` (scripts/build-image.sh builds
//! it when missing), rpmbuild and createrepo_c on the host (scripts/setup-dev.sh).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use koji_fakehub::{FakeHub, NewTask, TaskState, Value};
use serde_json::{Value as Json, json};

#[path = "support/srpm.rs"]
mod srpm;
use srpm::build_srpm_from;

#[path = "support/stub_repo.rs"]
mod stub_repo;

#[path = "support/daemon.rs"]
mod daemon;
use daemon::*;
use stub_repo::{build_stub_rpm, open_up, run};

#[path = "support/distro_repo.rs"]
mod distro_repo;
use distro_repo::distro_repo;

const IMAGE: &str = "localhost/koji-adjutant-builder:latest";

/// Scenario 1: a scratch build of the noarch SRPM, through the daemon.
#[actix_rt::test]
async fn the_daemon_runs_a_scratch_build_of_the_noarch_srpm() {
    let (world, _) = World::new(false).await;
    world.add_repo_by_hand();
    let daemon = Daemon::start(&world.hub, &world.topurl, "scratch");
    let parent = world.submit_build("hello-noarch", json!({"scratch": true}));
    let state = daemon
        .wait_done(&world.hub, parent, Duration::from_secs(400))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    world.check_successful_build(parent, true, "noarch", "dist-build");
    assert!(daemon.containers().is_empty(), "no container is left");
    daemon.assert_took_every_task_at_once();
}

/// Scenario 2: a regular build of the C SRPM, through the daemon: imported and tagged.
#[actix_rt::test]
async fn the_daemon_runs_a_regular_build_of_the_c_srpm() {
    let (world, _) = World::new(false).await;
    world.add_repo_by_hand();
    let daemon = Daemon::start(&world.hub, &world.topurl, "regular");
    let parent = world.submit_build("hello-c", json!({}));
    let state = daemon
        .wait_done(&world.hub, parent, Duration::from_secs(400))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    world.check_successful_build(parent, false, "x86_64", "dist-build");
    assert!(daemon.containers().is_empty(), "no container is left");
    daemon.assert_took_every_task_at_once();
}

/// Scenario 3 (issue 8's closing scenario): a `newRepo` task through the daemon makes the
/// build tag's repo from real stub RPMs that provide the `build` group; the fake hub serves it
/// over topurl; then a scratch build through the daemon installs its @build group from it.
#[actix_rt::test]
async fn a_repo_made_by_the_daemons_new_repo_serves_the_daemons_next_build() {
    let (world, repo_side) = World::new(true).await;
    let repo_side = repo_side.expect("the repo side is installed");
    let topdir = world.hub.topdir();
    std::fs::create_dir_all(topdir.join("repos")).unwrap();
    open_up(&topdir.join("repos"));
    let stubs = ["stub-build-tools", "stub-shell"];
    repo_side.with_tag(world.build_tag, |t| {
        for group in ["build", "srpm-build"] {
            t.groups.insert(
                group.into(),
                stubs.iter().map(|s| (*s).to_owned()).collect(),
            );
        }
        t.extra.insert("rpm.macro.dist".into(), json!(".e2e"));
    });
    let rpmdir = tempfile::tempdir().unwrap();
    for stub in stubs {
        let rpm = build_stub_rpm(stub, rpmdir.path());
        repo_side.import_rpm(&rpm, world.build_tag, None).unwrap();
    }
    assert!(
        world.hub.with_world(|w| w.repos.is_empty()),
        "no repo before newRepo"
    );

    let daemon = Daemon::start(&world.hub, &world.topurl, "newrepo");
    let new_repo = world
        .hub
        .create_task(NewTask::new(
            "newRepo",
            vec![Value::String("dist-build".to_owned())],
        ))
        .unwrap();
    let state = daemon
        .wait_done(&world.hub, new_repo, Duration::from_secs(300))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    let result = world.result_of(new_repo);
    let repo_id = result[0]
        .as_i64()
        .unwrap_or_else(|| panic!("[repo_id, event]: {result}"));
    assert_eq!(
        repo_side.repo(repo_id).unwrap().state,
        1,
        "repoDone made it READY"
    );
    let createrepos: Vec<i64> = world.children(new_repo).iter().map(|t| t.id).collect();
    for child in world.children(new_repo) {
        assert_eq!(child.method, "createrepo");
        assert_eq!(child.state, TaskState::Closed, "createrepo {}", child.id);
    }
    // The repodata and createrepo.log went up on each createrepo task's own subsession.
    assert_uploads_on_their_tasks_subsessions(
        &world.hub,
        &createrepos,
        &["rawUpload", "checkUpload"],
    );

    // The fake hub serves the repo over topurl, where the build's container will fetch it.
    let repomd_url = format!(
        "{}/repos/dist-build/{repo_id}/x86_64/repodata/repomd.xml",
        world.topurl
    );
    let (status, repomd) = http_get(&repomd_url).await;
    assert_eq!(status, 200, "{repomd_url}: {repomd}");
    assert!(repomd.contains("group"), "comps in the repodata: {repomd}");

    let parent = world.submit_build("hello-noarch", json!({"scratch": true}));
    let state = daemon
        .wait_done(&world.hub, parent, Duration::from_secs(400))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    world.check_successful_build(parent, true, "noarch", "dist-build");
    let arch_task = world.children(parent)[1].clone();
    let root_log =
        String::from_utf8_lossy(&world.hub.task_output(arch_task.id, "root.log").unwrap())
            .into_owned();
    for stub in stubs {
        assert!(
            root_log.contains(stub),
            "{stub} installed from the new repo:\n{root_log}"
        );
    }
    for br in world.hub.buildroots() {
        assert_eq!(br.repo_id, repo_id, "buildroot {} uses the new repo", br.id);
        let listed = koji_fakehub::build::to_json(&Value::Array(br.rpms.clone()));
        for stub in stubs {
            assert!(
                listed.as_array().unwrap().iter().any(|r| r["name"] == stub),
                "{stub} in buildroot {}: {listed}",
                br.id
            );
        }
    }
    assert!(daemon.containers().is_empty(), "no container is left");
    daemon.assert_took_every_task_at_once();
}

/// The Koji loop, as kojihub runs it with one database: the daemon builds `loop-a` into
/// `dist-dest` (which `dist-build` inherits); a `newRepo` of `dist-build` through the daemon
/// then has loop-a's RPM (pkglist, rpmlist, repodata); a build of `loop-b`, whose spec
/// `BuildRequires: loop-a` and whose %build reads a file loop-a ships, succeeds in a buildroot
/// from that repo, and its buildroot list names loop-a with the payload hash the hub imported.
#[actix_rt::test]
async fn a_build_the_daemon_completes_is_in_the_next_repo_and_satisfies_the_next_builds_buildrequires()
 {
    let (world, repo_side) = World::new(true).await;
    let repo_side = repo_side.expect("the repo side is installed");
    let topdir = world.hub.topdir();
    std::fs::create_dir_all(topdir.join("repos")).unwrap();
    open_up(&topdir.join("repos"));
    let stubs = ["stub-build-tools", "stub-shell"];
    repo_side.with_tag(world.build_tag, |t| {
        for group in ["build", "srpm-build"] {
            t.groups.insert(
                group.into(),
                stubs.iter().map(|s| (*s).to_owned()).collect(),
            );
        }
        // kojihub's usual layout: the build tag inherits the destination tag.
        t.parents.push((world.dest_tag, 0));
    });
    for package in ["loop-a", "loop-b"] {
        world.side.add_package(world.dest_tag, package, false);
    }
    let rpmdir = tempfile::tempdir().unwrap();
    for stub in stubs {
        let rpm = build_stub_rpm(stub, rpmdir.path());
        repo_side.import_rpm(&rpm, world.build_tag, None).unwrap();
    }
    let sources = tempfile::tempdir().unwrap();
    std::fs::write(
        sources.path().join("loop-a.spec"),
        "Name: loop-a\nVersion: 1.0\nRelease: 1%{?dist}\nSummary: the first half of the loop\n\
         License: MIT\nBuildArch: noarch\n%description\nships a marker\n%prep\n%build\n\
         %install\nmkdir -p %{buildroot}/usr/share/loop-a\n\
         echo made-by-loop-a > %{buildroot}/usr/share/loop-a/marker\n\
         %files\n/usr/share/loop-a/marker\n",
    )
    .unwrap();
    std::fs::write(
        sources.path().join("loop-b.spec"),
        "Name: loop-b\nVersion: 1.0\nRelease: 1%{?dist}\nSummary: needs loop-a to build\n\
         License: MIT\nBuildArch: noarch\nBuildRequires: loop-a\n%description\nneeds loop-a\n\
         %prep\n%build\ngrep made-by-loop-a /usr/share/loop-a/marker\n%files\n",
    )
    .unwrap();
    let srpms = tempfile::tempdir().unwrap();
    let srpm_a = build_srpm_from(sources.path(), "loop-a", srpms.path());
    let srpm_b = build_srpm_from(sources.path(), "loop-b", srpms.path());

    let daemon = Daemon::start(&world.hub, &world.topurl, "loop");
    let new_repo = || {
        world
            .hub
            .create_task(NewTask::new(
                "newRepo",
                vec![Value::String("dist-build".to_owned())],
            ))
            .unwrap()
    };

    // The first repo: the stubs only.
    let first = new_repo();
    let state = daemon
        .wait_done(&world.hub, first, Duration::from_secs(300))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    let first_repo = world.result_of(first)[0].as_i64().unwrap();

    // Build A: imported by host.completeBuild, tagged into dist-dest by host.tagBuild.
    let build_a = world.submit_srpm(&srpm_a, json!({}));
    let state = daemon
        .wait_done(&world.hub, build_a, Duration::from_secs(400))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    world.check_successful_build(build_a, false, "noarch", "dist-build");
    let (a_rpm, a_relpath, a_payloadhash) = world.side.with_world(|w| {
        let build = w
            .builds
            .values()
            .find(|b| b.task_id == Some(build_a))
            .expect("build A");
        let rpm = w
            .rpms
            .values()
            .find(|r| r.build_id == build.id && r.arch == "noarch")
            .unwrap_or_else(|| panic!("completeBuild stored A's RPM: {:?}", w.rpms));
        (rpm.nvra(), rpm.relpath(), rpm.payloadhash.clone())
    });
    assert!(a_rpm.starts_with("loop-a-1.0-1.e2e.noarch"), "{a_rpm}");
    assert_eq!(
        a_relpath,
        format!("packages/loop-a/1.0/1.e2e/noarch/{a_rpm}.rpm"),
        "kojihub's layout"
    );
    assert!(
        topdir.join(&a_relpath).is_file(),
        "{a_relpath} on the topdir"
    );
    let mut anonymous = koji_fakehub::testclient::RawClient::new(world.hub.url());
    let tagged = anonymous
        .call(
            "listTaggedRPMS",
            vec![
                Value::String("dist-build".to_owned()),
                Value::Nil,
                Value::Boolean(true),
            ],
        )
        .await
        .unwrap()
        .unwrap();
    let tagged = koji_fakehub::build::to_json(&tagged);
    assert!(
        tagged[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "loop-a" && r["tag_name"] == "dist-build"),
        "listTaggedRPMS(dist-build, inherit) has loop-a from dist-dest: {tagged}"
    );

    // The next repo of the build tag, by the daemon: A is in it.
    let second = new_repo();
    let state = daemon
        .wait_done(&world.hub, second, Duration::from_secs(300))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    let second_repo = world.result_of(second)[0].as_i64().unwrap();
    assert!(second_repo > first_repo);
    assert_eq!(repo_side.repo(second_repo).unwrap().state, 1, "READY");
    let archdir = topdir.join(format!("repos/dist-build/{second_repo}/x86_64"));
    let pkglist = std::fs::read_to_string(archdir.join("pkglist")).unwrap();
    assert!(
        pkglist.contains(&format!("toplink/{a_relpath}")),
        "A in the pkglist: {pkglist}"
    );
    let rpmlist = std::fs::read_to_string(archdir.join("rpmlist.jsonl")).unwrap();
    assert!(rpmlist.contains("\"loop-a\""), "{rpmlist}");
    let first_pkglist = std::fs::read_to_string(
        topdir.join(format!("repos/dist-build/{first_repo}/x86_64/pkglist")),
    )
    .unwrap();
    assert!(!first_pkglist.contains("loop-a"), "{first_pkglist}");
    let primary = repodata_primary(&archdir.join("repodata"));
    assert!(
        primary.contains("<name>loop-a</name>"),
        "A in the repodata's primary.xml"
    );

    // Build B, which needs A: its buildroot comes from the second repo and installs A.
    let build_b = world.submit_srpm(&srpm_b, json!({}));
    let state = daemon
        .wait_done(&world.hub, build_b, Duration::from_secs(400))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    let arch_task = world
        .children(build_b)
        .into_iter()
        .find(|t| t.method == "buildArch")
        .unwrap();
    let root_log =
        String::from_utf8_lossy(&world.hub.task_output(arch_task.id, "root.log").unwrap())
            .into_owned();
    assert!(
        root_log.contains("loop-a"),
        "loop-a installed in B's buildroot:\n{root_log}"
    );
    let build_log =
        String::from_utf8_lossy(&world.hub.task_output(arch_task.id, "build.log").unwrap())
            .into_owned();
    assert!(
        build_log.contains("made-by-loop-a"),
        "B's %build read A's file:\n{build_log}"
    );
    let buildroot = world
        .hub
        .buildroots()
        .into_iter()
        .find(|br| br.task_id == Some(arch_task.id))
        .expect("B's buildArch buildroot");
    assert_eq!(buildroot.repo_id, second_repo, "B builds from the new repo");
    let listed = koji_fakehub::build::to_json(&Value::Array(buildroot.rpms.clone()));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "loop-a" && r["payloadhash"] == a_payloadhash.as_str()),
        "setBuildRootList names A with the imported payload hash: {listed}"
    );
    world.side.with_world(|w| {
        let b = w
            .builds
            .values()
            .find(|b| b.task_id == Some(build_b))
            .expect("build B");
        assert_eq!(b.state, koji_fakehub::build::BUILD_COMPLETE, "{}", b.nvr());
    });
    assert!(daemon.containers().is_empty(), "no container is left");
}

/// installroot mode (mock's way, docs/buildroot.md) through the daemon, the Koji way: the
/// build tag holds a whole RPM distribution (the builder image's Debian userland as ~120 rpms,
/// tests/support/distro_repo.rs) and its `build`/`srpm-build` groups; the daemon's own
/// `newRepo` makes the tag's repo; a regular build of hello-c with `buildroot_mode =
/// installroot` populates both buildroots from that repo alone, and the hub accepts the
/// buildroot lists (every rpm known to the repo by NVRA and payload hash).
#[actix_rt::test]
async fn an_installroot_build_through_the_daemon_installs_only_from_the_daemons_new_repo() {
    let started = Instant::now();
    let distro = distro_repo(IMAGE);
    let (world, repo_side) = World::new(true).await;
    let repo_side = repo_side.expect("the repo side is installed");
    let topdir = world.hub.topdir();
    std::fs::create_dir_all(topdir.join("repos")).unwrap();
    open_up(&topdir.join("repos"));
    let groups = distro.groups();
    let group_names: Vec<&str> = groups.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(group_names, ["build", "srpm-build"]);
    repo_side.with_tag(world.build_tag, |t| {
        for (id, packages) in &groups {
            t.groups.insert(id.clone(), packages.clone());
        }
    });
    let files = distro.rpm_files();
    assert!(files.len() > 50, "a whole distribution: {files:?}");
    repo_side.import_rpms(&files, world.build_tag).unwrap();

    let daemon = Daemon::start_with(
        &world.hub,
        &world.topurl,
        "installroot",
        "buildroot_mode = installroot\n",
    );
    let new_repo = world
        .hub
        .create_task(NewTask::new(
            "newRepo",
            vec![Value::String("dist-build".to_owned())],
        ))
        .unwrap();
    let state = daemon
        .wait_done(&world.hub, new_repo, Duration::from_secs(300))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    let repo_id = world.result_of(new_repo)[0].as_i64().unwrap();
    assert_eq!(repo_side.repo(repo_id).unwrap().state, 1, "READY");
    let repo_url = format!("{}/repos/dist-build/{repo_id}/x86_64", world.topurl);

    let parent = world.submit_build("hello-c", json!({}));
    let state = daemon
        .wait_done(&world.hub, parent, Duration::from_secs(600))
        .await;
    assert_eq!(state, TaskState::Closed, "daemon log:\n{}", daemon.log());
    // `filesystem` is in both groups of the distribution.
    world.check_successful_build_with(parent, false, "x86_64", "dist-build", "filesystem");

    let children = world.children(parent);
    let output = |task: i64, name: &str| {
        world
            .hub
            .task_output(task, name)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    };
    for task in &children[..2] {
        let root_log = output(task.id, "root.log").expect("root.log on the hub");
        assert!(
            root_log.contains("--installroot=/buildroot"),
            "task {} {} populated an installroot:\n{root_log}",
            task.id,
            task.method
        );
        // dnf reads only the generated dnf.conf (`reposdir=/dev/null`), whose one repo,
        // `build`, is the daemon's new repo under the topurl, as kojid's mock config has it;
        // root.log names that repo for every package dnf installed.
        let config = output(task.id, "mock_config.log").expect("mock_config.log on the hub");
        assert!(
            config.contains("# buildroot mode: installroot")
                && config.contains("reposdir=/dev/null")
                && config.contains(&format!("[build]\nname=build\nbaseurl={repo_url}\n")),
            "task {} installs from the daemon's repo {repo_url} alone:\n{config}",
            task.id
        );
        assert_eq!(config.matches("baseurl=").count(), 1, "{config}");
        let bash_line = root_log
            .lines()
            .find(|l| l.trim_start().starts_with("bash "))
            .unwrap_or_else(|| panic!("dnf installed bash:\n{root_log}"));
        assert_eq!(
            bash_line.split_whitespace().nth(3),
            Some("build"),
            "{bash_line}"
        );
        // No image rpm is in an installroot, so there is nothing for image_rpms.log.
        assert!(
            output(task.id, "image_rpms.log").is_none(),
            "task {}",
            task.id
        );
        let logs = world.result_of(task.id)["logs"].to_string();
        assert!(!logs.contains("image_rpms.log"), "{logs}");
    }

    // The hub took each buildroot list (it faults on an rpm its repo does not know), and each
    // lists exactly the installroot's packages: installed_pkgs.log is `rpm -qa` in the root.
    let list_calls: Vec<Json> = world
        .hub
        .call_log()
        .into_iter()
        .filter(|r| {
            r["direction"] == "response"
                && (r["method"] == "host.setBuildRootList"
                    || r["method"] == "host.updateBuildRootList")
        })
        .collect();
    // rebuildSRPM's init, buildArch's init and its update after the BuildRequires.
    assert!(list_calls.len() >= 3, "{list_calls:?}");
    for call in &list_calls {
        assert!(call["fault"].is_null(), "the hub refused a list: {call}");
    }
    let buildroots = world.hub.buildroots();
    for task in &children[..2] {
        let br = buildroots
            .iter()
            .find(|br| br.task_id == Some(task.id))
            .unwrap_or_else(|| panic!("a buildroot of task {}", task.id));
        assert_eq!(br.repo_id, repo_id, "buildroot {} uses the new repo", br.id);
        let listed = koji_fakehub::build::to_json(&Value::Array(br.rpms.clone()));
        let listed = listed.as_array().unwrap();
        let mut names: Vec<String> = listed
            .iter()
            .map(|r| {
                assert!(
                    r.get("external_repo").is_none_or(Json::is_null),
                    "every rpm is the repo's, none an external repo's: {r}"
                );
                r["name"].as_str().unwrap().to_owned()
            })
            .collect();
        names.sort();
        for name in &names {
            assert!(distro.packages.contains(name), "{name} is not the repo's");
        }
        assert!(!names.iter().any(|n| n == "debian-rootfs-provides"));
        let installed = output(task.id, "installed_pkgs.log").expect("installed_pkgs.log");
        let mut installed: Vec<String> = installed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        installed.sort();
        let nvras: Vec<String> = listed
            .iter()
            .map(|r| {
                format!(
                    "{}-{}-{}.{}",
                    r["name"].as_str().unwrap(),
                    r["version"].as_str().unwrap(),
                    r["release"].as_str().unwrap(),
                    r["arch"].as_str().unwrap()
                )
            })
            .collect();
        let mut nvras = nvras;
        nvras.sort();
        assert_eq!(nvras, installed, "task {} {}", task.id, task.method);
        for needed in ["bash", "dash", "filesystem", "rpm"] {
            assert!(names.iter().any(|n| n == needed), "{needed}: {names:?}");
        }
        let compiler = names.iter().any(|n| n == "gcc") && names.iter().any(|n| n == "make");
        // gcc and make are hello-c's BuildRequires: buildArch installs them, the SRPM
        // rebuild in @srpm-build has no compiler.
        assert_eq!(
            compiler,
            task.method == "buildArch",
            "{}: {names:?}",
            task.method
        );
    }

    let build = world.side.with_world(|w| {
        let build = w
            .builds
            .values()
            .find(|b| b.task_id == Some(parent))
            .expect("the build");
        w.rpms
            .values()
            .find(|r| r.build_id == build.id && r.arch == "x86_64")
            .map(|r| r.relpath())
            .expect("the x86_64 rpm")
    });
    let query = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}"])
        .arg(topdir.join(&build)));
    assert_eq!(query, "hello-c 1.0 1.e2e x86_64");
    assert!(daemon.containers().is_empty(), "no container is left");
    daemon.assert_took_every_task_at_once();
    eprintln!(
        "distribution import, newRepo and the installroot build took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The uncompressed `primary.xml` of a repodata dir (createrepo_c compresses it with gzip,
/// xz or zstd, depending on its version).
fn repodata_primary(repodata: &Path) -> String {
    let primary = std::fs::read_dir(repodata)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("primary.xml"))
        })
        .unwrap_or_else(|| panic!("no primary.xml in {}", repodata.display()));
    let name = primary.to_string_lossy().into_owned();
    let tool = if name.ends_with(".gz") {
        "gzip"
    } else if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return std::fs::read_to_string(&primary).unwrap();
    };
    let output = std::process::Command::new(tool)
        .arg("-dc")
        .arg(&primary)
        .output()
        .unwrap_or_else(|e| panic!("{tool} -dc {name}: {e}"));
    assert!(output.status.success(), "{tool} -dc {name}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The methods the daemon's main session called, in order (`login` as kojid's `sslLogin`: the
/// tests log in with a password, the transcripts with a certificate).
fn main_session_calls(hub: &FakeHub) -> Vec<String> {
    hub.call_log()
        .iter()
        // A login carries no session yet, so the hub cannot name its process.
        .filter(|record| {
            record["direction"] == "request"
                && (record["proc"] == "main" || record["method"] == "login")
        })
        .filter_map(|record| record["method"].as_str())
        .map(|method| match method {
            "login" => "sslLogin".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

fn transcript_main_calls(name: &str) -> Vec<String> {
    let path = Path::new(ROOT)
        .join("tests/fixtures/hub-transcripts")
        .join(format!("{name}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Json>(line).unwrap())
        .filter(|record| record["direction"] == "request" && record["proc"] == "main")
        .filter_map(|record| record["method"].as_str().map(str::to_owned))
        .collect()
}

/// Scenario `cancel` (transcript tests/fixtures/hub-transcripts/cancel.*): a scratch build
/// whose buildArch sleeps in %build; the buildArch task is cancelled while rpmbuild runs, the
/// parent fails with "Task N is canceled", then the daemon is stopped.
#[actix_rt::test]
async fn the_daemons_main_calls_match_kojids_cancel_transcript_call_for_call() {
    let (world, _) = World::new(false).await;
    world.add_repo_by_hand();
    world.side.add_package(world.dest_tag, "slowpoke", false);
    let sources = tempfile::tempdir().unwrap();
    std::fs::write(
        sources.path().join("slowpoke.spec"),
        "Name: slowpoke\nVersion: 1.0\nRelease: 1\nSummary: sleeps in %build\nLicense: MIT\n\
         BuildArch: noarch\n%description\nsleeps\n%prep\n%build\necho SLEEPING\nsleep 600\n\
         %files\n",
    )
    .unwrap();
    let dir = world.hub.topdir().join("work/cli-build/1700000000.1.e2e");
    let srpm = build_srpm_from(sources.path(), "slowpoke", &dir);
    let relpath = format!(
        "cli-build/1700000000.1.e2e/{}",
        srpm.file_name().unwrap().to_string_lossy()
    );
    let mut daemon = Daemon::start(&world.hub, &world.topurl, "cancel");
    let parent = world
        .hub
        .create_task(NewTask::new(
            "build",
            vec![
                Value::String(relpath),
                Value::String("dist".to_owned()),
                koji_fakehub::build::to_value(&json!({"scratch": true})),
            ],
        ))
        .unwrap();

    // `koji cancel` of the buildArch task once rpmbuild sleeps in %build.
    let deadline = Instant::now() + Duration::from_secs(400);
    let build_arch = loop {
        let running = world
            .children(parent)
            .into_iter()
            .find(|t| t.method == "buildArch")
            .filter(|t| {
                world
                    .hub
                    .task_output(t.id, "build.log")
                    .is_some_and(|log| String::from_utf8_lossy(&log).contains("SLEEPING"))
            });
        if let Some(task) = running {
            break task.id;
        }
        assert!(
            Instant::now() < deadline,
            "buildArch never reached %build; daemon log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    world.hub.cancel_task(build_arch).unwrap();
    let state = daemon
        .wait_done(&world.hub, parent, Duration::from_secs(60))
        .await;
    assert_eq!(state, TaskState::Failed, "daemon log:\n{}", daemon.log());
    assert_eq!(
        world.hub.task(build_arch).unwrap().state,
        TaskState::Canceled
    );
    // kojid's run went on polling for a few cycles before it was stopped.
    let polls = |hub: &FakeHub| {
        main_session_calls(hub)
            .iter()
            .filter(|c| *c == "host.getTasks")
            .count()
    };
    let polls_at_end = polls(&world.hub);
    let deadline = Instant::now() + Duration::from_secs(60);
    while polls(&world.hub) < polls_at_end + 3 {
        assert!(
            Instant::now() < deadline,
            "the daemon stopped polling:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen_at_stop = main_session_calls(&world.hub).len();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(status.success(), "exit {status:?}; log:\n{}", daemon.log());

    let ours = main_session_calls(&world.hub);
    let kojid = transcript_main_calls("cancel");
    eprintln!("ours:  {ours:?}");
    eprintln!("kojid: {kojid:?}");
    // Start-up and shutdown are kojid's exactly.
    assert_eq!(ours[..5], kojid[..5], "start-up differs");
    assert_eq!(
        ours[ours.len() - 3..],
        kojid[kojid.len() - 3..],
        "shutdown differs"
    );
    assert!(seen_at_stop <= ours.len() - 3);
    // In between, every step of kojid's main process that is not part of a bare idle poll
    // cycle comes in kojid's order: three tasks taken (getTaskInfo, [getBuildConfig,]
    // host.openTask, host.setTaskWeight, subsession), the cancelled buildArch noticed
    // (host.getHostTasks, getTaskInfo, logoutChild) and the failed parent reaped.
    let idle = [
        "listBuildroots",
        "host.getHostTasks",
        "host.getHost",
        "host.updateHost",
        "host.getTasks",
    ];
    let events = |calls: &[String]| -> Vec<String> {
        calls[5..calls.len() - 3]
            .iter()
            .filter(|c| !idle.contains(&c.as_str()))
            .cloned()
            .collect()
    };
    let (our_events, kojid_events) = (events(&ours), events(&kojid));
    let is_subsequence = |wanted: &[String], calls: &[String]| {
        let mut wanted = wanted.iter().peekable();
        for call in calls {
            if wanted.peek().is_some_and(|name| *name == call) {
                wanted.next();
            }
        }
        wanted.peek().is_none()
    };
    // Uploads are never on the main session, as with kojid: each task sends its own on its
    // subsession (checked below).
    for upload in ["rawUpload", "checkUpload", "uploadFile"] {
        assert!(
            !ours.iter().any(|c| c == upload),
            "{upload} on the main session: {ours:?}"
        );
    }
    // Normalised as docs/worker.md ("Intended differences") explains: kojid's getTaskInfo
    // calls outside a take (its buildroot checks, once per cycle and buildroot) have no
    // counterpart; the expiry of the cancelled task's buildroot (host.setBuildRootState) is
    // compared by count, as its place depends on when the parent fails.
    let normalise = |events: &[String]| -> (Vec<String>, usize) {
        let mut kept = Vec::new();
        for (i, call) in events.iter().enumerate() {
            let next = events.get(i + 1).map(String::as_str);
            match call.as_str() {
                "host.setBuildRootState" => {}
                "getTaskInfo" if !matches!(next, Some("getBuildConfig" | "host.openTask")) => {}
                _ => kept.push(call.clone()),
            }
        }
        let expiries = events
            .iter()
            .filter(|c| *c == "host.setBuildRootState")
            .count();
        (kept, expiries)
    };
    assert_eq!(
        normalise(&our_events),
        normalise(&kojid_events),
        "the main process's calls differ from kojid's:\n ours  {our_events:?}\n kojid {kojid_events:?}"
    );
    assert!(
        is_subsequence(
            &[
                "host.getHostTasks".to_owned(),
                "getTaskInfo".to_owned(),
                "logoutChild".to_owned()
            ],
            &ours
        ),
        "kojid's cancel sequence"
    );
    // The cancelled buildArch's live logs (build.log said SLEEPING above) went up on its own
    // subsession, as did every other upload.
    assert_uploads_on_their_tasks_subsessions(&world.hub, &[build_arch], &["rawUpload"]);
    assert!(daemon.containers().is_empty(), "no container is left");
}
