//! The repo tasks against the fake hub with a topdir laid out as kojihub lays it out, real
//! RPMs built with rpmbuild, and createrepo_c / mergerepo_c / dnf in the builder image.

mod repos_support;

use std::path::Path;

use koji_adjutant_actors::error::HandlerError;
use koji_fakehub::Value;
use repos_support::{NoContainers, World, build_rpm, dist_opts, in_image};

fn repomd(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("repodata/repomd.xml")).unwrap_or_default()
}

/// A tag `name` with arches x86_64 and aarch64, a `build` group, a noarch package and one
/// arch-specific build in both arches.
fn populate(world: &World, name: &str) -> i64 {
    let rpms = world.workdir.path().join("rpms-src");
    let tag = world.side.add_tag(name, &["x86_64", "aarch64"]);
    world.side.with_tag(tag, |t| {
        t.groups
            .insert("build".into(), vec!["stub-bash".into(), "hello".into()]);
    });
    let noarch = build_rpm(&rpms, "stub-bash", "1.0", "noarch", &[]);
    world.side.import_rpm(&noarch, tag, None).unwrap();
    let x86 = build_rpm(&rpms, "hello", "2.0", "x86_64", &["stub-bash"]);
    let build = world.side.import_rpm(&x86, tag, None).unwrap();
    let build_id = world.side.world.lock().unwrap().rpms[&build].build_id;
    let arm = build_rpm(&rpms, "hello", "2.0", "aarch64", &["stub-bash"]);
    world.side.import_rpm(&arm, tag, Some(build_id)).unwrap();
    tag
}

#[actix_rt::test]
async fn new_repo_over_two_arches_is_installable_with_dnf() {
    let world = World::new().await;
    populate(&world, "dist-build");
    let id = world.create("newRepo", vec![Value::String("dist-build".into())]);
    let result = world.run(id).await.expect("newRepo succeeds");
    let repo_id = result[0].as_i64().unwrap();
    assert!(
        result[1].as_i64().is_some(),
        "result is [repo_id, event_id]: {result}"
    );
    let repo = world.side.repo(repo_id).unwrap();
    assert_eq!(repo.state, 1, "repoDone made the repo READY");

    // One createrepo child per arch, with the upstream labels and the noarch task arch.
    let children: Vec<_> = world
        .hub
        .tasks()
        .into_iter()
        .filter(|t| t.parent == Some(id))
        .collect();
    let mut labels: Vec<_> = children
        .iter()
        .map(|t| t.label.clone().unwrap_or_default())
        .collect();
    labels.sort();
    assert_eq!(labels, ["aarch64", "x86_64"]);
    assert!(
        children
            .iter()
            .all(|t| t.method == "createrepo" && t.arch == "noarch")
    );
    assert!(
        children
            .iter()
            .all(|t| t.state == koji_fakehub::TaskState::Closed)
    );
    for child in &children {
        let log = world
            .hub
            .task_output(child.id, "createrepo.log")
            .expect("createrepo.log uploaded");
        assert!(
            String::from_utf8_lossy(&log).contains("Package count: 2"),
            "log: {}",
            String::from_utf8_lossy(&log)
        );
    }

    // The handlers' own calls in the order of the golden `newrepo` transcript (kojid 1.35.3):
    // task:1 getTag, host.repoInit, getRepo, getFullInheritance, host.subtask…, host.taskSetWait,
    // …, host.repoDone; task:2 repoInfo, getExternalRepoList, getTag, uploads.
    let handler_calls: Vec<String> = world
        .hub
        .called_methods()
        .into_iter()
        .filter(|m| {
            [
                "getTag",
                "host.repoInit",
                "getRepo",
                "getFullInheritance",
                "host.subtask",
                "host.taskSetWait",
                "host.repoDone",
                "repoInfo",
                "getExternalRepoList",
            ]
            .contains(&m.as_str())
        })
        .collect();
    assert_eq!(
        handler_calls[..7],
        [
            "getTag",
            "host.repoInit",
            "getRepo",
            "getFullInheritance",
            "host.subtask",
            "host.subtask",
            "host.taskSetWait"
        ],
        "{handler_calls:?}"
    );
    let child_calls: Vec<&str> = handler_calls[7..handler_calls.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        child_calls,
        [
            "repoInfo",
            "getExternalRepoList",
            "getTag",
            "repoInfo",
            "getExternalRepoList",
            "getTag"
        ]
    );
    assert_eq!(
        handler_calls.last().map(String::as_str),
        Some("host.repoDone")
    );

    let repodir = world.side.repo_dir(repo_id).unwrap();
    for arch in ["x86_64", "aarch64"] {
        let md = repomd(&repodir.join(arch));
        assert!(md.contains("primary"), "{arch} has metadata: {md}");
        assert!(md.contains("group"), "{arch} metadata carries comps: {md}");
    }
    let latest = std::fs::read_link(repodir.parent().unwrap().join("latest")).unwrap();
    assert_eq!(latest, Path::new(&repo_id.to_string()));

    // dnf in the image installs the build group and the package from the x86_64 repo.
    let x86 = repodir.join("x86_64");
    let script = format!(
        "dnf -q -y --repofrompath=koji,file://{dir} --repo=koji --setopt=koji.gpgcheck=0 \
         --installroot=/tmp/root --releasever=1 groupinstall build && rpm --root=/tmp/root -q hello stub-bash",
        dir = x86.display()
    );
    let output = in_image(
        &format!("repos-dnf-{}", std::process::id()),
        &world.topdir(),
        &script,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dnf install failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("hello-2.0-1.x86_64"), "{stdout}");
    // The aarch64 repo holds the aarch64 build and the noarch package, not the x86_64 one.
    let script = format!(
        "dnf -q --repofrompath=koji,file://{dir} --repo=koji --forcearch=aarch64 repoquery --qf '%{{name}}.%{{arch}}' '*'",
        dir = repodir.join("aarch64").display()
    );
    let output = in_image(
        &format!("repos-rq-{}", std::process::id()),
        &world.topdir(),
        &script,
    );
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        listed.contains("hello.aarch64") && listed.contains("stub-bash.noarch"),
        "{listed}"
    );
    assert!(!listed.contains("x86_64"), "{listed}");
}

#[actix_rt::test]
async fn update_reuses_the_old_metadata() {
    let world = World::new().await;
    populate(&world, "upd-build");
    let first = world.create("newRepo", vec![Value::String("upd-build".into())]);
    let first_repo = world.run(first).await.unwrap()[0].as_i64().unwrap();
    let second = world.create("newRepo", vec![Value::String("upd-build".into())]);
    let second_repo = world.run(second).await.unwrap()[0].as_i64().unwrap();
    assert_ne!(first_repo, second_repo);
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(second) && t.label.as_deref() == Some("x86_64"))
        .unwrap();
    // The child got the old repo, with tag_id added, and ran createrepo_c --update.
    let request = world
        .hub
        .with_state(|s| s.tasks[&child.id].request_xml.clone());
    assert!(request.contains("<name>tag_id</name>"), "{request}");
    let log = String::from_utf8_lossy(&world.hub.task_output(child.id, "createrepo.log").unwrap())
        .to_string();
    // createrepo_c loaded the copied old metadata (it does so only with --update).
    assert!(
        log.contains("Old metadata from:") && log.contains("- loaded"),
        "{log}"
    );
    let old = repomd(&world.side.repo_dir(first_repo).unwrap().join("x86_64"));
    let new = repomd(&world.side.repo_dir(second_repo).unwrap().join("x86_64"));
    let checksum = |md: &str| -> Vec<String> {
        md.lines()
            .filter(|l| l.contains("<checksum"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        checksum(&old)[0],
        checksum(&new)[0],
        "same packages give the same primary"
    );
}

#[actix_rt::test]
async fn an_empty_tag_gives_empty_repo() {
    let world = World::new().await;
    world.side.add_tag("empty-build", &["x86_64"]);
    let id = world.create("newRepo", vec![Value::String("empty-build".into())]);
    let result = world.run(id).await.unwrap();
    let repodir = world.side.repo_dir(result[0].as_i64().unwrap()).unwrap();
    let marker = std::fs::read_to_string(repodir.join("x86_64/repodata/EMPTY_REPO")).unwrap();
    assert_eq!(
        marker,
        "This repo is empty because its tag has no content for this arch\n"
    );
    assert!(repodir.join("x86_64/repodata/repomd.xml").is_file());
}

#[actix_rt::test]
async fn a_missing_repos_dir_refuses_softly() {
    let world = World::new().await;
    world.side.add_tag("f-build", &["x86_64"]);
    std::fs::remove_dir_all(world.topdir().join("repos")).unwrap();
    let id = world.create("newRepo", vec![Value::String("f-build".into())]);
    let outcome = world.run(id).await;
    match outcome {
        Err(HandlerError::Refuse { soft, message }) => {
            assert!(soft);
            assert!(message.starts_with("No access to repos dir"), "{message}");
        }
        other => panic!("expected a soft refusal, got {other:?}"),
    }
    assert!(
        world
            .hub
            .called_methods()
            .contains(&"host.refuseTask".to_owned())
    );
    assert!(
        !world
            .hub
            .called_methods()
            .contains(&"host.repoInit".to_owned()),
        "no repo was made"
    );
}

#[actix_rt::test]
async fn createrepo_refuses_a_repo_that_is_not_init() {
    let world = World::new().await;
    populate(&world, "ready-build");
    let id = world.create("newRepo", vec![Value::String("ready-build".into())]);
    let repo_id = world.run(id).await.unwrap()[0].as_i64().unwrap();
    let again = world.create(
        "createrepo",
        vec![
            Value::Integer(repo_id as i32),
            Value::String("x86_64".into()),
            Value::Nil,
        ],
    );
    match world.run(again).await {
        Err(HandlerError::Fault(fault)) => {
            assert_eq!(fault.fault_code, 1000);
            assert_eq!(
                fault.message,
                format!("Repo {repo_id} not in INIT state (got 1)")
            );
        }
        other => panic!("expected GenericError, got {other:?}"),
    }
}

#[actix_rt::test]
async fn legacy_and_kojira_argument_forms() {
    let world = World::new().await;
    let tag = populate(&world, "forms-build");
    // kojira: [{id, name}, {opts, __starstar}]
    let mut kw = std::collections::BTreeMap::new();
    kw.insert(
        "opts".to_owned(),
        Value::Struct([("src".to_owned(), Value::Boolean(false))].into()),
    );
    kw.insert("__starstar".to_owned(), Value::Boolean(true));
    let tag_struct = Value::Struct(
        [
            ("id".to_owned(), Value::Integer(tag as i32)),
            ("name".to_owned(), Value::String("forms-build".into())),
        ]
        .into(),
    );
    let id = world.create("newRepo", vec![tag_struct.clone(), Value::Struct(kw)]);
    world.run(id).await.expect("kojira form");
    // Legacy booleans combined with opts are a ParameterError.
    let id = world.create(
        "newRepo",
        vec![
            tag_struct,
            Value::Nil,
            Value::Boolean(true),
            Value::Nil,
            Value::Nil,
            Value::Struct(Default::default()),
        ],
    );
    match world.run(id).await {
        Err(HandlerError::Fault(fault)) => assert_eq!(fault.fault_code, 1019, "{fault:?}"),
        other => panic!("{other:?}"),
    }
}

/// An HTTP server on 127.0.0.1 for an external repo; killed on drop.
struct Served {
    child: std::process::Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Served { child, port }
}

fn pkgorigins(repodata: &Path) -> String {
    // Unique metadata file names: `<sha256>-pkgorigins.gz`.
    let file = std::fs::read_dir(repodata)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("pkgorigins.gz"))
        .unwrap_or_else(|| panic!("no pkgorigins.gz in {}", repodata.display()));
    let output = std::process::Command::new("zcat")
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[actix_rt::test]
async fn external_repos_merge_in_each_mode_with_pkgorigins() {
    let world = World::new().await;
    // The external repo: a newer `hello` (shadowed by the tag's own in koji mode), a tool only
    // it has, and a package the tag blocks.
    let ext = world.workdir.path().join("external");
    let ext_arch = ext.join("x86_64");
    build_rpm(&ext_arch, "hello", "3.0", "x86_64", &[]);
    build_rpm(&ext_arch, "ext-tool", "1.0", "x86_64", &[]);
    build_rpm(&ext_arch, "ext-blocked", "1.0", "noarch", &[]);
    let made = std::process::Command::new("createrepo_c")
        .arg("-q")
        .arg(&ext_arch)
        .status()
        .unwrap();
    assert!(made.success());
    let server = serve(&ext);
    let url = format!("http://127.0.0.1:{}/$arch/", server.port);
    let concrete = url.replace("$arch", "x86_64");

    for mode in ["koji", "simple", "bare"] {
        let tag_name = format!("merge-{mode}");
        let tag = world.side.add_tag(&tag_name, &["x86_64"]);
        let rpms = world.workdir.path().join(format!("rpms-{mode}"));
        let own = build_rpm(&rpms, "hello", "2.0", "x86_64", &[]);
        world.side.import_rpm(&own, tag, None).unwrap();
        world.side.with_tag(tag, |t| {
            t.packages.insert("ext-blocked".into(), true);
        });
        world
            .side
            .add_external_repo(tag, &format!("ext-{mode}"), &url, mode, None);
        let id = world.create("newRepo", vec![Value::String(tag_name.clone())]);
        let result = world
            .run(id)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e:?}"));
        let repodir = world.side.repo_dir(result[0].as_i64().unwrap()).unwrap();
        let child = world
            .hub
            .tasks()
            .into_iter()
            .find(|t| t.parent == Some(id))
            .unwrap();
        assert!(
            world.hub.task_output(child.id, "mergerepos.log").is_some(),
            "{mode}: mergerepos.log uploaded"
        );
        let origins = pkgorigins(&repodir.join("x86_64/repodata"));
        let origin_of = |nevra: &str| -> Option<String> {
            origins
                .lines()
                .find(|l| l.starts_with(nevra))
                .and_then(|l| l.split('\t').nth(1))
                .map(str::to_owned)
        };
        assert_eq!(
            origin_of("ext-tool-1.0-1.x86_64").as_deref(),
            Some(concrete.as_str()),
            "{mode}: {origins}"
        );
        let own_origin = origin_of("hello-2.0-1.x86_64").unwrap_or_default();
        assert!(
            own_origin.starts_with("file://") && own_origin.contains("_premerge"),
            "{mode}: the tag's own package comes from the premerge repo: {origins}"
        );
        match mode {
            "bare" => {
                assert!(
                    origin_of("hello-3.0-1.x86_64").is_some(),
                    "bare keeps all: {origins}"
                );
                assert!(
                    origin_of("ext-blocked").is_some(),
                    "bare ignores the blocklist: {origins}"
                );
            }
            "simple" => {
                // Simple mode filters by the blocklist only, not by package name.
                assert!(
                    origin_of("hello-3.0-1.x86_64").is_some(),
                    "simple: {origins}"
                );
                assert!(
                    origin_of("ext-blocked").is_none(),
                    "simple: blocked: {origins}"
                );
            }
            _ => {
                assert!(
                    origin_of("hello-3.0-1.x86_64").is_none(),
                    "koji: the tag's own package shadows the external one: {origins}"
                );
                assert!(
                    origin_of("ext-blocked").is_none(),
                    "koji: blocked: {origins}"
                );
            }
        }
    }
}

/// Builds `name` again with a marker in its Summary, standing in for a copy signed with `key`
/// (same NEVRA; the metadata then shows which copy createrepo read).
fn signed_variant(
    world: &World,
    name: &str,
    version: &str,
    arch: &str,
    key: &str,
) -> std::path::PathBuf {
    let dir = world.workdir.path().join(format!("signed-{key}"));
    let file = build_rpm(&dir, name, version, arch, &[]);
    let output = std::process::Command::new("rpm")
        .args(["-qp", "--qf", "%{SUMMARY}"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    // Rebuild with the key in the summary.
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join("s.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: copy signed with {key}\nLicense: MIT\n%description\nx\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {key} > %{{buildroot}}/usr/share/{name}/data\n%files\n/usr/share/{name}/data\n"
        ),
    )
    .unwrap();
    let status = std::process::Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg("__os_install_post %{nil}")
        .arg("--define")
        .arg("_build_id_links none")
        .args(["--target", arch])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let built = top
        .path()
        .join("RPMS")
        .join(arch)
        .join(format!("{name}-{version}-1.{arch}.rpm"));
    std::fs::copy(&built, &file).unwrap();
    file
}

#[actix_rt::test]
async fn dist_repo_with_two_keys_picks_the_right_signed_copies() {
    let world = World::new().await;
    std::fs::create_dir_all(world.topdir().join("repos-dist")).unwrap();
    let tag = world.side.add_tag("dist-f1", &["x86_64"]);
    let rpms = world.workdir.path().join("dist-rpms");
    // alpha: signed with both keys → the first preferred key; bravo: only the second key;
    // charlie: unsigned.
    let alpha = world
        .side
        .import_rpm(&build_rpm(&rpms, "alpha", "1.0", "x86_64", &[]), tag, None)
        .unwrap();
    let bravo = world
        .side
        .import_rpm(&build_rpm(&rpms, "bravo", "1.0", "x86_64", &[]), tag, None)
        .unwrap();
    world
        .side
        .import_rpm(
            &build_rpm(&rpms, "charlie", "1.0", "x86_64", &[]),
            tag,
            None,
        )
        .unwrap();
    for (rpm, name, key) in [
        (alpha, "alpha", "aaaa1111"),
        (alpha, "alpha", "bbbb2222"),
        (bravo, "bravo", "bbbb2222"),
    ] {
        let copy = signed_variant(&world, name, "1.0", "x86_64", key);
        world
            .side
            .add_signature(rpm, key, Some(&copy), true)
            .unwrap();
    }
    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64"], false)
        .unwrap();
    let keys = Value::Array(vec![
        Value::String("AAAA1111".into()),
        Value::String("bbbb2222".into()),
    ]);

    // Without permission, the unsigned charlie fails the task with missing_signatures.log.
    let id = world.create(
        "distRepo",
        vec![
            Value::String("dist-f1".into()),
            Value::Integer(repo_id as i32),
            keys.clone(),
            dist_opts(&[]),
        ],
    );
    assert!(world.run(id).await.is_err());
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(id))
        .unwrap();
    let log = String::from_utf8_lossy(
        &world
            .hub
            .task_output(child.id, "missing_signatures.log")
            .unwrap(),
    )
    .into_owned();
    assert!(
        log.contains("charlie-1.0-1.x86_64.rpm") && !log.contains("alpha"),
        "{log}"
    );

    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64"], false)
        .unwrap();
    let id = world.create(
        "distRepo",
        vec![
            Value::String("dist-f1".into()),
            Value::Integer(repo_id as i32),
            keys,
            dist_opts(&[
                ("allow_missing_signatures", Value::Boolean(true)),
                ("write_signed_rpms", Value::Boolean(true)),
            ]),
        ],
    );
    let result = world.run(id).await.expect("distRepo succeeds");
    assert_eq!(
        result,
        serde_json::json!(format!("Dist repository #{repo_id} successfully generated"))
    );
    assert_eq!(world.side.repo(repo_id).unwrap().state, 1);
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(id))
        .unwrap();
    assert_eq!(
        (
            child.method.as_str(),
            child.label.as_deref(),
            child.arch.as_str()
        ),
        ("createdistrepo", Some("x86_64"), "noarch")
    );
    assert!(
        world
            .hub
            .task_output(child.id, "written_signed_rpms.log")
            .is_some()
    );

    let archdir = world.side.repo_dir(repo_id).unwrap().join("x86_64");
    let kojipkgs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(archdir.join("kojipkgs")).unwrap()).unwrap();
    assert_eq!(kojipkgs["alpha-1.0-1.x86_64.rpm"]["sigkey"], "aaaa1111");
    assert_eq!(kojipkgs["bravo-1.0-1.x86_64.rpm"]["sigkey"], "bbbb2222");
    assert!(kojipkgs["charlie-1.0-1.x86_64.rpm"]["sigkey"].is_null());
    let pkglist = std::fs::read_to_string(archdir.join("pkglist")).unwrap();
    assert!(
        pkglist.contains("Packages/a/alpha-1.0-1.x86_64.rpm"),
        "{pkglist}"
    );
    // The metadata was made from the chosen copies: their summaries say which key.
    let script = format!(
        "dnf -q --repofrompath=d,file://{} --repo=d repoquery --qf '%{{name}}:%{{summary}}' '*'",
        archdir.display()
    );
    let output = in_image(
        &format!("repos-dist-{}", std::process::id()),
        &world.topdir(),
        &script,
    );
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        listed.contains("alpha:copy signed with aaaa1111"),
        "{listed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        listed.contains("bravo:copy signed with bbbb2222"),
        "{listed}"
    );
    assert!(listed.contains("charlie:test package charlie"), "{listed}");
    assert!(archdir.join("Packages/b/bravo-1.0-1.x86_64.rpm").is_file());
}

#[actix_rt::test]
async fn copy_old_repodata_clones_identical_arches_only() {
    let mut world = World::new().await;
    world.settings.copy_old_repodata = true;
    let tag = populate(&world, "clone-build");
    let first = world.create("newRepo", vec![Value::String("clone-build".into())]);
    let first_repo = world.run(first).await.unwrap()[0].as_i64().unwrap();

    let second = world.create("newRepo", vec![Value::String("clone-build".into())]);
    let second_repo = world.run(second).await.unwrap()[0].as_i64().unwrap();
    assert!(
        world.hub.tasks().iter().all(|t| t.parent != Some(second)),
        "identical arches are cloned, not rebuilt"
    );
    let repodir = world.side.repo_dir(second_repo).unwrap();
    let repo_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repodir.join("repo.json")).unwrap()).unwrap();
    assert_eq!(repo_json["cloned_from_repo_id"], first_repo);
    assert_eq!(
        repo_json["cloned_archs"],
        serde_json::json!(["aarch64", "x86_64"])
    );
    assert_eq!(
        repomd(&repodir.join("x86_64")),
        repomd(&world.side.repo_dir(first_repo).unwrap().join("x86_64"))
    );

    // A new x86_64 package changes that arch's pkglist only: x86_64 is rebuilt, aarch64 cloned.
    let extra = build_rpm(
        &world.workdir.path().join("more"),
        "newpkg",
        "1.0",
        "x86_64",
        &[],
    );
    world.side.import_rpm(&extra, tag, None).unwrap();
    let third = world.create("newRepo", vec![Value::String("clone-build".into())]);
    let third_repo = world.run(third).await.unwrap()[0].as_i64().unwrap();
    let labels: Vec<_> = world
        .hub
        .tasks()
        .into_iter()
        .filter(|t| t.parent == Some(third))
        .filter_map(|t| t.label)
        .collect();
    assert_eq!(labels, ["x86_64"]);
    let md = repomd(&world.side.repo_dir(third_repo).unwrap().join("aarch64"));
    assert!(md.contains("primary"));
}

#[actix_rt::test]
async fn legacy_upload_file_path_delivers_the_metadata() {
    let mut world = World::new().await;
    world.legacy_uploads = true;
    populate(&world, "legacy-build");
    let id = world.create("newRepo", vec![Value::String("legacy-build".into())]);
    let repo_id = world.run(id).await.unwrap()[0].as_i64().unwrap();
    assert!(
        world
            .hub
            .called_methods()
            .contains(&"uploadFile".to_owned())
    );
    assert!(!world.hub.called_methods().contains(&"rawUpload".to_owned()));
    let x86 = world.side.repo_dir(repo_id).unwrap().join("x86_64");
    assert!(repomd(&x86).contains("primary"));
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(id))
        .unwrap();
    let log = world
        .hub
        .task_output(child.id, "createrepo.log")
        .expect("log sent whole at the end");
    assert!(String::from_utf8_lossy(&log).contains("Package count: 2"));
}

#[actix_rt::test]
async fn missing_signed_copies_fail_until_written_by_the_hub() {
    let world = World::new().await;
    std::fs::create_dir_all(world.topdir().join("repos-dist")).unwrap();
    let tag = world.side.add_tag("dist-f2", &["x86_64"]);
    let rpms = world.workdir.path().join("dist2");
    let delta = world
        .side
        .import_rpm(&build_rpm(&rpms, "delta", "1.0", "x86_64", &[]), tag, None)
        .unwrap();
    // The hub knows the signature but no signed copy is on disk yet.
    let copy = world
        .side
        .add_signature(delta, "cccc3333", None, false)
        .unwrap();
    assert!(!copy.exists());
    let keys = Value::Array(vec![Value::String("cccc3333".into())]);

    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64"], false)
        .unwrap();
    let id = world.create(
        "distRepo",
        vec![
            Value::String("dist-f2".into()),
            Value::Integer(repo_id as i32),
            keys.clone(),
            dist_opts(&[]),
        ],
    );
    match world.run(id).await {
        Err(HandlerError::Fault(fault)) => {
            assert!(fault.message.contains("missing_files.log"), "{fault:?}")
        }
        other => panic!("expected a GenericError, got {other:?}"),
    }
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(id))
        .unwrap();
    let log = String::from_utf8_lossy(
        &world
            .hub
            .task_output(child.id, "missing_files.log")
            .unwrap(),
    )
    .into_owned();
    assert!(
        log.contains("data/signed/cccc3333/x86_64/delta-1.0-1.x86_64.rpm"),
        "{log}"
    );

    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64"], false)
        .unwrap();
    let id = world.create(
        "distRepo",
        vec![
            Value::String("dist-f2".into()),
            Value::Integer(repo_id as i32),
            keys,
            dist_opts(&[("write_signed_rpms", Value::Boolean(true))]),
        ],
    );
    world
        .run(id)
        .await
        .expect("the hub wrote the signed copy first");
    assert!(copy.is_file());
    assert_eq!(
        world.side.world.lock().unwrap().signed_writes,
        [(delta, "cccc3333".to_owned())]
    );
    let archdir = world.side.repo_dir(repo_id).unwrap().join("x86_64");
    assert!(archdir.join("Packages/d/delta-1.0-1.x86_64.rpm").is_file());
}

#[actix_rt::test]
async fn createrepo_checks_the_repo_directory() {
    let world = World::new().await;
    let tag = populate(&world, "dirs-build");
    let init = world
        .client
        .call_json(
            "host.repoInit",
            &[serde_json::json!(tag)],
            &Default::default(),
        )
        .await
        .unwrap();
    let repo_id = init[0].as_i64().unwrap();
    let args = |arch: &str| {
        vec![
            Value::Integer(repo_id as i32),
            Value::String(arch.into()),
            Value::Nil,
        ]
    };

    let id = world.create("createrepo", args("s390x"));
    match world.run(id).await {
        Err(HandlerError::Fault(fault)) => {
            assert_eq!(fault.fault_code, 1000);
            assert!(
                fault.message.starts_with("Repo directory missing: "),
                "{}",
                fault.message
            );
            assert!(
                fault
                    .message
                    .ends_with(&format!("/repos/dirs-build/{repo_id}/s390x")),
                "{}",
                fault.message
            );
        }
        other => panic!("expected GenericError, got {other:?}"),
    }

    std::fs::rename(
        world.topdir().join("repos"),
        world.topdir().join("repos.away"),
    )
    .unwrap();
    let id = world.create("createrepo", args("x86_64"));
    match world.run(id).await {
        Err(HandlerError::Refuse {
            soft: true,
            message,
        }) => {
            assert!(message.starts_with("No access to repos dir"), "{message}")
        }
        other => panic!("expected a soft refusal, got {other:?}"),
    }
    std::fs::rename(
        world.topdir().join("repos.away"),
        world.topdir().join("repos"),
    )
    .unwrap();

    // A path-like arch never reaches the file system.
    let id = world.create("createrepo", args("../x86_64"));
    assert!(matches!(world.run(id).await, Err(HandlerError::Fault(f)) if f.fault_code == 1019));
}

/// `repo_tools = host`: the same newRepo, createrepo children and mergerepo_c merge, with the
/// host's createrepo_c and mergerepo_c and no container at all.
#[actix_rt::test]
async fn host_repo_tools_make_the_same_repos_without_containers() {
    let mut world = World::new().await;
    world.settings.repo_tools = koji_adjutant::handlers::repos::RepoTools::Host;
    world.runtime = std::sync::Arc::new(NoContainers);
    populate(&world, "host-build");
    let id = world.create("newRepo", vec![Value::String("host-build".into())]);
    let result = world.run(id).await.expect("newRepo succeeds on the host");
    let repo_id = result[0].as_i64().unwrap();
    assert_eq!(world.side.repo(repo_id).unwrap().state, 1);
    let children: Vec<_> = world
        .hub
        .tasks()
        .into_iter()
        .filter(|t| t.parent == Some(id))
        .collect();
    assert_eq!(children.len(), 2);
    for child in &children {
        let log = world
            .hub
            .task_output(child.id, "createrepo.log")
            .expect("createrepo.log uploaded");
        assert!(
            String::from_utf8_lossy(&log).contains("Package count: 2"),
            "log: {}",
            String::from_utf8_lossy(&log)
        );
    }
    let repodir = world.side.repo_dir(repo_id).unwrap();
    for arch in ["x86_64", "aarch64"] {
        let md = repomd(&repodir.join(arch));
        assert!(md.contains("primary"), "{arch} has metadata: {md}");
        assert!(md.contains("group"), "{arch} metadata carries comps: {md}");
    }

    // mergerepo_c on the host, with an external repo in koji mode.
    let ext = world.workdir.path().join("external-host");
    let ext_arch = ext.join("x86_64");
    build_rpm(&ext_arch, "ext-tool", "1.0", "x86_64", &[]);
    let made = std::process::Command::new("createrepo_c")
        .arg("-q")
        .arg(&ext_arch)
        .status()
        .unwrap();
    assert!(made.success());
    let server = serve(&ext);
    let url = format!("http://127.0.0.1:{}/$arch/", server.port);
    let tag = world.side.add_tag("host-merge", &["x86_64"]);
    let own = build_rpm(
        &world.workdir.path().join("rpms-host-merge"),
        "hello",
        "2.0",
        "x86_64",
        &[],
    );
    world.side.import_rpm(&own, tag, None).unwrap();
    world
        .side
        .add_external_repo(tag, "ext-host", &url, "koji", None);
    let id = world.create("newRepo", vec![Value::String("host-merge".into())]);
    let result = world.run(id).await.expect("merged newRepo on the host");
    let repodir = world.side.repo_dir(result[0].as_i64().unwrap()).unwrap();
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(id))
        .unwrap();
    assert!(world.hub.task_output(child.id, "mergerepos.log").is_some());
    let origins = pkgorigins(&repodir.join("x86_64/repodata"));
    assert!(
        origins.contains("ext-tool-1.0-1.x86_64") && origins.contains("hello-2.0-1.x86_64"),
        "{origins}"
    );
}
