//! distRepo's optional outputs against the fake hub with real RPMs and real createrepo_c:
//! delta RPMs from older dist repos (`delta`), zchunk metadata (`zck`, `zck_dict_dir`), the
//! `debug` sub-repo (`split_debuginfo`), and all of them with `repo_tools = host`.

mod repos_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use koji_adjutant_actors::error::HandlerError;
use koji_fakehub::Value;
use repos_support::{NoContainers, World, build_rpm, dist_opts, in_image};
use serde_json::Value as Json;

/// One distRepo run: the new dist repo's id, the createdistrepo child's id, and the outcome.
struct DistRun {
    repo_id: i64,
    child: i64,
    outcome: Result<Json, HandlerError>,
}

async fn dist_repo(world: &World, tag_name: &str, tag: i64, opts: Value) -> DistRun {
    dist_repo_with(world, tag_name, tag, opts, false).await
}

/// [`dist_repo`], with the hub writing the tag's `groups/comps.xml` first when `with_comps`.
async fn dist_repo_with(
    world: &World,
    tag_name: &str,
    tag: i64,
    opts: Value,
    with_comps: bool,
) -> DistRun {
    std::fs::create_dir_all(world.topdir().join("repos-dist")).unwrap();
    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64"], with_comps)
        .unwrap();
    let id = world.create(
        "distRepo",
        vec![
            Value::String(tag_name.into()),
            Value::Integer(repo_id as i32),
            Value::Array(Vec::new()),
            opts,
        ],
    );
    let outcome = world.run(id).await;
    let child = world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(id))
        .expect("a createdistrepo child")
        .id;
    DistRun {
        repo_id,
        child,
        outcome,
    }
}

fn manifest(world: &World, child: i64) -> Vec<String> {
    let bytes = world
        .hub
        .task_output(child, "repo_manifest")
        .expect("repo_manifest uploaded");
    serde_json::from_slice(&bytes).unwrap()
}

fn task_log(world: &World, child: i64, name: &str) -> String {
    String::from_utf8_lossy(
        &world
            .hub
            .task_output(child, name)
            .unwrap_or_else(|| panic!("{name} uploaded")),
    )
    .into_owned()
}

fn repomd(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("repodata/repomd.xml")).unwrap_or_default()
}

/// The decompressed primary.xml of the repo at `dir`.
fn primary(dir: &Path) -> String {
    let data = dir.join("repodata");
    let file = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-primary.xml.gz"))
        .unwrap_or_else(|| panic!("no primary.xml.gz in {}", data.display()));
    let output = Command::new("zcat").arg(&file).output().unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn lines(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `name`, `name-debuginfo` and `name-debugsource` from one spec, as a build with split
/// debug packages yields them (koji tells debug packages by name only).
fn build_with_debuginfo(out: &Path, name: &str, version: &str) -> Vec<PathBuf> {
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "%global debug_package %{{nil}}\n\
             Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test package {name}\nLicense: MIT\n\
             %description\nA package with debug subpackages.\n\
             %package debuginfo\nSummary: Debug information for {name}\n%description debuginfo\nx\n\
             %package debugsource\nSummary: Debug sources for {name}\n%description debugsource\nx\n\
             %install\n\
             mkdir -p %{{buildroot}}/usr/share/{name} %{{buildroot}}/usr/lib/debug/usr/share/{name} %{{buildroot}}/usr/src/debug/{name}\n\
             echo {name}-{version} > %{{buildroot}}/usr/share/{name}/data\n\
             echo debug > %{{buildroot}}/usr/lib/debug/usr/share/{name}/data.debug\n\
             echo 'int main(void) {{ return 0; }}' > %{{buildroot}}/usr/src/debug/{name}/main.c\n\
             %files\n/usr/share/{name}/data\n\
             %files debuginfo\n/usr/lib/debug/usr/share/{name}/data.debug\n\
             %files debugsource\n/usr/src/debug/{name}/main.c\n"
        ),
    )
    .unwrap();
    let output = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg("__os_install_post %{nil}")
        .arg("--define")
        .arg("_build_id_links none")
        .args(["--target", "x86_64"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rpmbuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::create_dir_all(out).unwrap();
    ["", "-debuginfo", "-debugsource"]
        .iter()
        .map(|suffix| {
            let file = format!("{name}{suffix}-{version}-1.x86_64.rpm");
            let dest = out.join(&file);
            std::fs::copy(top.path().join("RPMS/x86_64").join(&file), &dest).unwrap();
            dest
        })
        .collect()
}

/// Imports files as one build into `tag`.
fn import_build(world: &World, files: &[PathBuf], tag: i64) {
    let first = world.side.import_rpm(&files[0], tag, None).unwrap();
    let build_id = world.side.world.lock().unwrap().rpms[&first].build_id;
    for file in &files[1..] {
        world.side.import_rpm(file, tag, Some(build_id)).unwrap();
    }
}

/// What `dnf repoquery` in the builder image lists for the repo at `dir`.
fn repoquery(world: &World, dir: &Path, label: &str) -> BTreeSet<String> {
    let script = format!(
        "dnf -q --repofrompath=d,file://{} --repo=d repoquery --qf '%{{name}}-%{{version}}' '*'",
        dir.display()
    );
    let output = in_image(
        &format!("distextras-{label}-{}", std::process::id()),
        &world.topdir(),
        &script,
    );
    assert!(
        output.status.success(),
        "dnf failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Manifest entries with createrepo_c's checksum prefixes taken off, so that two runs over the
/// same packages compare equal.
fn normalised(manifest: &[String]) -> BTreeSet<String> {
    manifest
        .iter()
        .map(|entry| {
            let (dir, name) = entry.rsplit_once('/').unwrap_or(("", entry));
            let name = match name.split_once('-') {
                Some((hash, rest))
                    if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    rest
                }
                _ => name,
            };
            if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            }
        })
        .collect()
}

/// foo-1.0 and bar-1.0 in a READY dist repo, then foo-1.1 tagged: the repo to make next.
async fn older_dist_repo(world: &World, tag_name: &str) -> (i64, i64) {
    let tag = world.side.add_tag(tag_name, &["x86_64"]);
    let rpms = world.workdir.path().join(format!("{tag_name}-rpms"));
    for (name, version) in [("foo", "1.0"), ("bar", "1.0")] {
        let file = build_rpm(&rpms, name, version, "x86_64", &[]);
        world.side.import_rpm(&file, tag, None).unwrap();
    }
    let old = dist_repo(world, tag_name, tag, dist_opts(&[])).await;
    old.outcome.expect("the older dist repo is made");
    assert_eq!(world.side.repo(old.repo_id).unwrap().state, 1);
    let newer = build_rpm(&rpms, "foo", "1.1", "x86_64", &[]);
    world.side.import_rpm(&newer, tag, None).unwrap();
    (tag, old.repo_id)
}

#[actix_rt::test]
async fn deltas_against_an_older_dist_repo_are_made_uploaded_and_moved() {
    let world = World::new().await;
    let (tag, old_id) = older_dist_repo(&world, "delta-f1").await;
    let old_arch = world.side.repo_dir(old_id).unwrap().join("x86_64");
    assert!(old_arch.join("Packages/f/foo-1.0-1.x86_64.rpm").is_file());

    let new = dist_repo(
        &world,
        "delta-f1",
        tag,
        dist_opts(&[("delta", Value::Array(vec![Value::Integer(old_id as i32)]))]),
    )
    .await;
    new.outcome.expect("distRepo with deltas succeeds");
    let archdir = world.side.repo_dir(new.repo_id).unwrap().join("x86_64");

    // createrepo_c read the old RPM from the old repo's Packages/<letter> dir.
    let log = task_log(&world, new.child, "createrepo.log");
    assert!(
        log.contains(&format!(
            "Generating delta {}",
            old_arch.join("Packages/f/foo-1.0-1.x86_64.rpm").display()
        )),
        "{log}"
    );
    let drpm = "drpms/foo-1.0-1_1.1-1.x86_64.drpm";
    assert!(
        archdir.join(drpm).is_file(),
        "the drpm was moved into the repo"
    );
    // Only the changed package gets a delta.
    let drpms: Vec<_> = std::fs::read_dir(archdir.join("drpms"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(drpms, vec!["foo-1.0-1_1.1-1.x86_64.drpm".to_owned()]);
    let md = repomd(&archdir);
    assert!(md.contains("<data type=\"prestodelta\">"), "{md}");
    let listed = manifest(&world, new.child);
    assert!(listed.contains(&drpm.to_owned()), "{listed:?}");
    let presto = listed
        .iter()
        .find(|p| p.starts_with("repodata/") && p.ends_with("-prestodelta.xml.gz"))
        .unwrap_or_else(|| panic!("prestodelta in the manifest: {listed:?}"));
    let output = Command::new("zcat")
        .arg(archdir.join(presto))
        .output()
        .unwrap();
    let presto = String::from_utf8_lossy(&output.stdout);
    assert!(
        presto.contains("name=\"foo\"")
            && presto.contains("version=\"1.1\"")
            && presto.contains("oldversion=\"1.0\"")
            && presto.contains(drpm),
        "{presto}"
    );
    // The metadata still lists the new packages only, and dnf reads it.
    assert_eq!(
        repoquery(&world, &archdir, "delta"),
        BTreeSet::from(["bar-1.0".to_owned(), "foo-1.1".to_owned()])
    );

    // A delta base whose directory is gone fails the task as kojid does, before any work.
    let gone = dist_repo(&world, "delta-f1", tag, dist_opts(&[])).await;
    gone.outcome.expect("another dist repo");
    std::fs::rename(
        world.side.repo_dir(gone.repo_id).unwrap(),
        world.topdir().join("gone.away"),
    )
    .unwrap();
    let failed = dist_repo(
        &world,
        "delta-f1",
        tag,
        dist_opts(&[(
            "delta",
            Value::Array(vec![Value::Integer(gone.repo_id as i32)]),
        )]),
    )
    .await;
    let error = failed.outcome.expect_err("a missing delta base fails");
    assert!(
        error.to_string().contains("Base drpm repo missing"),
        "{error}"
    );
    assert!(
        world
            .hub
            .task_output(failed.child, "createrepo.log")
            .is_none()
    );

    // A buildroot repo is no delta base: it holds no RPMs, only a pkglist.
    let plain = {
        let mut repos = world.side.world.lock().unwrap();
        let mut record = repos.repos[&old_id].clone();
        record.id = 990_000 + old_id;
        record.dist = false;
        repos.repos.insert(record.id, record.clone());
        record.id
    };
    let failed = dist_repo(
        &world,
        "delta-f1",
        tag,
        dist_opts(&[("delta", Value::Array(vec![Value::Integer(plain as i32)]))]),
    )
    .await;
    let error = failed.outcome.expect_err("a non-dist delta base fails");
    assert!(
        error
            .to_string()
            .contains("Base repo for deltas must also be a dist repo"),
        "{error}"
    );
}

#[actix_rt::test]
async fn zck_metadata_uses_the_dictionary_dir() {
    let world = World::new().await;
    let tag = world.side.add_tag("zck-f1", &["x86_64"]);
    let rpms = world.workdir.path().join("zck-rpms");
    let file = build_rpm(&rpms, "zeta", "1.0", "x86_64", &[]);
    world.side.import_rpm(&file, tag, None).unwrap();
    // The dictionaries live on the Koji volume, so the tools see them in the container too.
    let dicts = world.topdir().join("zdicts");
    std::fs::create_dir_all(&dicts).unwrap();
    // Incompressible bytes, so that the embedded dictionary shows in the file size.
    let mut seed = 0x2545_f491_u32;
    let dictionary: Vec<u8> = (0..8192)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        })
        .collect();
    std::fs::write(dicts.join("primary.xml.zdict"), &dictionary).unwrap();

    let run = dist_repo(
        &world,
        "zck-f1",
        tag,
        dist_opts(&[
            ("zck", Value::Boolean(true)),
            ("zck_dict_dir", Value::String(dicts.display().to_string())),
        ]),
    )
    .await;
    run.outcome.expect("distRepo with zck succeeds");
    let archdir = world.side.repo_dir(run.repo_id).unwrap().join("x86_64");
    let listed = manifest(&world, run.child);
    let md = repomd(&archdir);
    for kind in ["primary", "filelists", "other"] {
        let entry = listed
            .iter()
            .find(|p| p.starts_with("repodata/") && p.ends_with(&format!("-{kind}.xml.zck")))
            .unwrap_or_else(|| panic!("{kind}.xml.zck in the manifest: {listed:?}"));
        assert!(archdir.join(entry).is_file(), "{entry} moved into the repo");
        assert!(md.contains(&format!("<data type=\"{kind}_zck\">")), "{md}");
    }
    // The dictionary for primary was found and embedded in its zchunk file; the others had
    // none, which createrepo_c reports for the directory it was given.
    let size = |kind: &str| {
        let entry = listed
            .iter()
            .find(|p| p.ends_with(&format!("-{kind}.xml.zck")))
            .unwrap();
        std::fs::metadata(archdir.join(entry)).unwrap().len()
    };
    assert!(
        size("primary") > dictionary.len() as u64 && size("other") < 2048,
        "primary {} other {}",
        size("primary"),
        size("other")
    );
    let log = task_log(&world, run.child, "createrepo.log");
    assert!(
        log.contains(&format!(
            "Zchunk dict {}/filelists.xml.zdict doesn't exist",
            dicts.display()
        )),
        "{log}"
    );

    // An empty zck_dict_dir means none, as in kojid: no dictionary is looked for.
    let run = dist_repo(
        &world,
        "zck-f1",
        tag,
        dist_opts(&[
            ("zck", Value::Boolean(true)),
            ("zck_dict_dir", Value::String(String::new())),
        ]),
    )
    .await;
    run.outcome.expect("distRepo with an empty zck_dict_dir");
    let log = task_log(&world, run.child, "createrepo.log");
    assert!(!log.contains("Zchunk dict"), "{log}");
    let listed = manifest(&world, run.child);
    assert!(
        listed.iter().any(|p| p.ends_with("-primary.xml.zck")),
        "{listed:?}"
    );
}

#[actix_rt::test]
async fn split_debuginfo_makes_a_debug_subrepo() {
    let world = World::new().await;
    let tag = world.side.add_tag("split-f1", &["x86_64"]);
    let rpms = world.workdir.path().join("split-rpms");
    import_build(&world, &build_with_debuginfo(&rpms, "foo", "1.0"), tag);
    let other = build_rpm(&rpms, "bar", "1.0", "x86_64", &[]);
    world.side.import_rpm(&other, tag, None).unwrap();
    world.side.with_tag(tag, |t| {
        t.groups.insert("core".into(), vec!["bar".into()]);
    });

    let run = dist_repo_with(
        &world,
        "split-f1",
        tag,
        dist_opts(&[("split_debuginfo", Value::Boolean(true))]),
        true,
    )
    .await;
    run.outcome.expect("distRepo with split_debuginfo succeeds");
    let archdir = world.side.repo_dir(run.repo_id).unwrap().join("x86_64");
    let debug = archdir.join("debug");

    // pkglists as kojid writes them: the sub-repo reaches the shared Packages/ one level up.
    assert_eq!(
        lines(&archdir.join("pkglist")),
        BTreeSet::from([
            "Packages/b/bar-1.0-1.x86_64.rpm".to_owned(),
            "Packages/f/foo-1.0-1.x86_64.rpm".to_owned()
        ])
    );
    assert_eq!(
        lines(&debug.join("pkglist")),
        BTreeSet::from([
            "../Packages/f/foo-debuginfo-1.0-1.x86_64.rpm".to_owned(),
            "../Packages/f/foo-debugsource-1.0-1.x86_64.rpm".to_owned()
        ])
    );
    for file in [
        "foo-1.0-1.x86_64.rpm",
        "foo-debuginfo-1.0-1.x86_64.rpm",
        "foo-debugsource-1.0-1.x86_64.rpm",
    ] {
        assert!(archdir.join("Packages/f").join(file).is_file(), "{file}");
    }
    let primary_debug = primary(&debug);
    assert!(
        primary_debug.contains("<location href=\"../Packages/f/foo-debuginfo-1.0-1.x86_64.rpm\"/>"),
        "{primary_debug}"
    );
    assert!(!primary(&archdir).contains("debuginfo"));
    assert_eq!(
        repoquery(&world, &archdir, "main"),
        BTreeSet::from(["bar-1.0".to_owned(), "foo-1.0".to_owned()])
    );
    assert_eq!(
        repoquery(&world, &debug, "debug"),
        BTreeSet::from([
            "foo-debuginfo-1.0".to_owned(),
            "foo-debugsource-1.0".to_owned()
        ])
    );

    // kojipkgs names every package, and marks the split-off ones.
    let kojipkgs: Json =
        serde_json::from_str(&std::fs::read_to_string(archdir.join("kojipkgs")).unwrap()).unwrap();
    assert_eq!(kojipkgs.as_object().unwrap().len(), 4);
    assert_eq!(
        kojipkgs["foo-debuginfo-1.0-1.x86_64.rpm"]["_subrepo"],
        "debug"
    );
    assert_eq!(
        kojipkgs["foo-debugsource-1.0-1.x86_64.rpm"]["_subrepo"],
        "debug"
    );
    assert!(kojipkgs["foo-1.0-1.x86_64.rpm"].get("_subrepo").is_none());

    // Uploads keep the sub-dir: the manifest names debug/… and the hub moved them there.
    let listed = manifest(&world, run.child);
    assert!(listed.contains(&"debug/pkglist".to_owned()), "{listed:?}");
    assert!(
        listed.contains(&"debug/repodata/repomd.xml".to_owned()),
        "{listed:?}"
    );
    assert!(
        listed.iter().all(|p| !p.starts_with("Packages/")),
        "{listed:?}"
    );
    // Both repos carry the comps, as kojid passes -g to each createrepo_c run.
    assert!(repomd(&archdir).contains("<data type=\"group\">"));
    assert!(repomd(&debug).contains("<data type=\"group\">"));
    // The sub-repo's createrepo_c output has a log of its own, as in kojid.
    assert!(task_log(&world, run.child, "createrepo_debug.log").contains("Package count: 2"));
    assert!(task_log(&world, run.child, "createrepo.log").contains("Package count: 2"));

    // The task dir's Packages/ links point into the topdir: handing the task dir to the tool
    // user must not reach through them to the hub's RPMs.
    for file in [
        "packages/foo/1.0/1/x86_64/foo-1.0-1.x86_64.rpm",
        "packages/foo/1.0/1/x86_64/foo-debuginfo-1.0-1.x86_64.rpm",
        "packages/bar/1.0/1/x86_64/bar-1.0-1.x86_64.rpm",
    ] {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(world.topdir().join(file)).unwrap();
        let me = std::fs::metadata(world.workdir.path()).unwrap().uid();
        assert_eq!(meta.uid(), me, "{file} keeps its owner");
        assert_eq!(meta.mode() & 0o022, 0, "{file} is not made writable");
    }

    // Without debug packages there is no debug sub-repo.
    let tag = world.side.add_tag("split-f2", &["x86_64"]);
    world.side.import_rpm(&other, tag, None).unwrap();
    let run = dist_repo(
        &world,
        "split-f2",
        tag,
        dist_opts(&[("split_debuginfo", Value::Boolean(true))]),
    )
    .await;
    run.outcome.expect("distRepo without debug packages");
    let archdir = world.side.repo_dir(run.repo_id).unwrap().join("x86_64");
    assert!(!archdir.join("debug").exists());
    assert!(repomd(&archdir).contains("primary"));
}

/// The same repo with every extra on (deltas, zck, split debuginfo), once per place the tools
/// run. Returns the normalised manifest, the debug pkglist, and what dnf sees in both repos.
async fn full_dist_repo(
    world: &World,
    label: &str,
) -> (
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeSet<String>,
    BTreeSet<String>,
) {
    let tag_name = format!("full-{label}");
    let (tag, old_id) = older_dist_repo(world, &tag_name).await;
    let rpms = world.workdir.path().join(format!("{tag_name}-debug"));
    import_build(world, &build_with_debuginfo(&rpms, "baz", "2.0"), tag);
    let run = dist_repo(
        world,
        &tag_name,
        tag,
        dist_opts(&[
            ("delta", Value::Array(vec![Value::Integer(old_id as i32)])),
            ("zck", Value::Boolean(true)),
            ("split_debuginfo", Value::Boolean(true)),
        ]),
    )
    .await;
    run.outcome
        .unwrap_or_else(|e| panic!("distRepo with every extra ({label}): {e}"));
    let archdir = world.side.repo_dir(run.repo_id).unwrap().join("x86_64");
    assert!(archdir.join("drpms/foo-1.0-1_1.1-1.x86_64.drpm").is_file());
    (
        normalised(&manifest(world, run.child)),
        lines(&archdir.join("debug/pkglist")),
        repoquery(world, &archdir, &format!("{label}-main")),
        repoquery(world, &archdir.join("debug"), &format!("{label}-debug")),
    )
}

/// `repo_tools = host`: createrepo_c of the worker host makes the same dist repo as the one in
/// the task image, without any container.
#[actix_rt::test]
async fn host_repo_tools_make_the_same_dist_repo_as_the_container() {
    let in_container = World::new().await;
    let expected = full_dist_repo(&in_container, "container").await;

    let mut on_host = World::new().await;
    on_host.settings.repo_tools = koji_adjutant::handlers::repos::RepoTools::Host;
    on_host.runtime = std::sync::Arc::new(NoContainers);
    let got = full_dist_repo(&on_host, "host").await;

    assert_eq!(got, expected);
    let (listed, debug_pkglist, main, debug) = got;
    for entry in [
        "drpms/foo-1.0-1_1.1-1.x86_64.drpm",
        "repodata/prestodelta.xml.gz",
        "repodata/primary.xml.zck",
        "debug/repodata/primary.xml.zck",
        "debug/repodata/repomd.xml",
        "debug/pkglist",
        "kojipkgs",
        "pkglist",
    ] {
        assert!(listed.contains(entry), "{entry} in {listed:?}");
    }
    assert_eq!(
        debug_pkglist,
        BTreeSet::from([
            "../Packages/b/baz-debuginfo-2.0-1.x86_64.rpm".to_owned(),
            "../Packages/b/baz-debugsource-2.0-1.x86_64.rpm".to_owned()
        ])
    );
    assert_eq!(
        main,
        BTreeSet::from([
            "bar-1.0".to_owned(),
            "baz-2.0".to_owned(),
            "foo-1.1".to_owned()
        ])
    );
    assert_eq!(
        debug,
        BTreeSet::from([
            "baz-debuginfo-2.0".to_owned(),
            "baz-debugsource-2.0".to_owned()
        ])
    );
}
