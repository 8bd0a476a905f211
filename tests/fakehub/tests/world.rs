//! The fake hub's one Koji database: the build side and the repo side see the same tags, and a
//! build imported with `host.completeBuild` and tagged with `host.tagBuild` is what
//! `listTaggedRPMS` (with inheritance) and `host.repoInit` read, as on kojihub.
//!
//! Needs `rpmbuild` and `rpm` on the host (the RPMs are real: the hub reads their headers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use koji_fakehub::build::{BuildSide, to_json};
use koji_fakehub::repos::RepoSide;
use koji_fakehub::testclient::RawClient;
use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, NewTask, Value};
use serde_json::{Value as Json, json};

async fn ok(client: &mut RawClient, method: &str, params: Vec<Value>) -> Json {
    match client.call(method, params).await {
        Ok(Ok(value)) => to_json(&value),
        other => panic!("{method} failed: {other:?}"),
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn kwargs<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map: BTreeMap<String, Value> = members
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    map.insert("__starstar".to_owned(), Value::Boolean(true));
    Value::Struct(map)
}

/// `rpmbuild -ba` of a one-file noarch package; returns (SRPM, RPM).
fn build_package(name: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let spec = dir.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n\
             %description\nd\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
             touch %{{buildroot}}/usr/share/{name}/file\n%files\n/usr/share/{name}/file\n"
        ),
    )
    .unwrap();
    let output = Command::new("rpmbuild")
        .arg("-ba")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", dir.join("top").display()))
        .arg(&spec)
        .output()
        .expect("rpmbuild on the host");
    assert!(
        output.status.success(),
        "rpmbuild: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        dir.join(format!("top/SRPMS/{name}-1-1.src.rpm")),
        dir.join(format!("top/RPMS/noarch/{name}-1-1.noarch.rpm")),
    )
}

#[tokio::test]
async fn a_completed_and_tagged_build_is_listed_with_inheritance_and_in_the_next_repo() {
    let hub = FakeHub::start(FakeHubConfig {
        hosts: vec![HostConfig::new("builder1.local").with_password("pw1")],
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let build_side = BuildSide::install(&hub);
    let repo_side = RepoSide::install(&hub);
    // One tag model: a tag made on either side is the other side's tag too.
    let dest = build_side.add_tag("dest", "", None);
    let build_tag = repo_side.add_tag("dest-build", &["x86_64"]);
    repo_side.with_tag(build_tag, |t| t.parents.push((dest, 0)));
    build_side.add_target("t", build_tag, dest);
    build_side.add_package(dest, "worldpkg", false);

    let mut anonymous = RawClient::new(hub.url());
    let config = ok(&mut anonymous, "getBuildConfig", vec![s("dest-build")]).await;
    assert_eq!(config["arches"], "x86_64", "{config}");
    let tag = ok(&mut anonymous, "getTag", vec![s("dest")]).await;
    assert_eq!(tag["id"], dest, "{tag}");
    assert_eq!(tag["arches"], Json::Null, "no arches: None, as kojihub");
    let inheritance = ok(&mut anonymous, "getFullInheritance", vec![s("dest-build")]).await;
    assert_eq!(inheritance[0]["parent_id"], dest, "{inheritance}");

    // A host takes a task and imports a build of it, as kojid's build task does.
    let task = hub.create_task(NewTask::new("build", vec![])).unwrap();
    let mut host = RawClient::new(hub.url());
    host.login("builder1.local", "pw1").await.unwrap().unwrap();
    ok(
        &mut host,
        "exclusiveSession",
        vec![kwargs([("force", Value::Boolean(true))])],
    )
    .await;
    ok(
        &mut host,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    hub.run_scheduler();
    ok(&mut host, "host.openTask", vec![Value::Long(task)]).await;
    let upload = format!("tasks/{}/{task}", task % 10000);
    let uploads = hub.work_dir().join(&upload);
    std::fs::create_dir_all(&uploads).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (srpm, rpm) = build_package("worldpkg", scratch.path());
    for file in [&srpm, &rpm] {
        std::fs::copy(file, uploads.join(file.file_name().unwrap())).unwrap();
    }
    let data = json!({"name": "worldpkg", "version": "1", "release": "1", "epoch": null,
                      "task_id": task});
    let build_id = ok(
        &mut host,
        "host.initBuild",
        vec![koji_fakehub::build::to_value(&data)],
    )
    .await;
    let build_id = build_id.as_i64().unwrap();
    ok(
        &mut host,
        "host.completeBuild",
        vec![
            Value::Long(task),
            Value::Long(build_id),
            s(&format!("{upload}/worldpkg-1-1.src.rpm")),
            Value::Array(vec![s(&format!("{upload}/worldpkg-1-1.noarch.rpm"))]),
            Value::Struct(BTreeMap::new()),
            Value::Struct(BTreeMap::new()),
        ],
    )
    .await;
    let relpath = "packages/worldpkg/1/1/noarch/worldpkg-1-1.noarch.rpm";
    assert!(hub.topdir().join(relpath).is_file(), "stored as kojihub");
    assert!(
        hub.topdir()
            .join("packages/worldpkg/1/1/src/worldpkg-1-1.src.rpm")
            .is_file()
    );
    let tagged_rpms = |inherit: bool| {
        let mut anonymous = RawClient::new(hub.url());
        async move {
            let reply = ok(
                &mut anonymous,
                "listTaggedRPMS",
                vec![s("dest-build"), Value::Nil, Value::Boolean(inherit)],
            )
            .await;
            reply[0].as_array().unwrap().clone()
        }
    };
    assert!(tagged_rpms(true).await.is_empty(), "not tagged yet");

    ok(
        &mut host,
        "host.tagBuild",
        vec![Value::Long(task), s("dest"), Value::Long(build_id)],
    )
    .await;
    let inherited = tagged_rpms(true).await;
    let mut arches: Vec<&str> = inherited
        .iter()
        .map(|r| r["arch"].as_str().unwrap())
        .collect();
    arches.sort_unstable();
    assert_eq!(arches, ["noarch", "src"], "{inherited:?}");
    let noarch = inherited.iter().find(|r| r["arch"] == "noarch").unwrap();
    assert_eq!(noarch["build_id"], build_id);
    assert_eq!(noarch["tag_name"], "dest-build");
    let sigmd5 = Command::new("rpm")
        .args(["-qp", "--qf", "%{SIGMD5}"])
        .arg(&rpm)
        .output()
        .unwrap();
    assert_eq!(
        noarch["payloadhash"],
        String::from_utf8_lossy(&sigmd5.stdout).trim(),
        "the header's payload hash, which setBuildRootList checks"
    );
    assert!(tagged_rpms(false).await.is_empty(), "only through dest");
    let listed = ok(&mut anonymous, "listTagged", vec![s("dest")]).await;
    assert_eq!(listed[0]["nvr"], "worldpkg-1-1", "{listed}");

    // The next repo of the build tag lists it.
    let repo = ok(
        &mut host,
        "host.repoInit",
        vec![s("dest-build"), Value::Long(task)],
    )
    .await;
    let repo_id = repo[0].as_i64().unwrap();
    let pkglist = std::fs::read_to_string(
        hub.topdir()
            .join(format!("repos/dest-build/{repo_id}/x86_64/pkglist")),
    )
    .unwrap();
    assert_eq!(pkglist, format!("toplink/{relpath}\n"));
    let record = ok(&mut anonymous, "repoInfo", vec![Value::Long(repo_id)]).await;
    assert_eq!(record["state"], 0, "INIT until repoDone: {record}");
    assert_eq!(record["task_id"], task);
}
