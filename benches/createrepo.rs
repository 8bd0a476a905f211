//! createrepo time for 1,000 and 10,000 small RPMs, through the `newRepo` → `createrepo`
//! handlers (fake hub, tool container, uploads, repoDone) with and without `--update`, next to
//! createrepo_c run by hand on the host over the same repo dir with the same arguments.
//!
//!     cargo bench -p koji-adjutant --bench createrepo            # 1000 and 10000
//!     REPO_BENCH_SIZES=1000 cargo bench -p koji-adjutant --bench createrepo
//!
//! Needs root, podman, rpmbuild and createrepo_c on the host, and the builder image. The RPMs
//! are built once (one rpmbuild per 1,000 subpackages) and cached in `target/repo-bench-rpms`.

#[path = "../tests/repos_support/mod.rs"]
mod repos_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use koji_fakehub::Value;
use repos_support::World;

const BATCH: usize = 1000;

/// `count` tiny noarch RPMs, built as subpackages of a few specs.
fn rpms(count: usize) -> Vec<PathBuf> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/repo-bench-rpms");
    let mut files = Vec::new();
    for batch in 0..count.div_ceil(BATCH) {
        let dir = cache.join(format!("batch{batch}"));
        let done = dir.join("done");
        if !done.is_file() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut spec = format!(
                "Name: bench{batch}\nVersion: 1\nRelease: 1\nSummary: bench\nLicense: MIT\nBuildArch: noarch\n%description\nbench\n"
            );
            for i in 0..BATCH {
                spec.push_str(&format!(
                    "%package -n b{batch}-p{i}\nSummary: package {i}\n%description -n b{batch}-p{i}\nsmall package\n%files -n b{batch}-p{i}\n/usr/share/b{batch}/p{i}\n"
                ));
            }
            spec.push_str(&format!(
                "%install\nmkdir -p %{{buildroot}}/usr/share/b{batch}\nfor i in $(seq 0 {}); do echo $i > %{{buildroot}}/usr/share/b{batch}/p$i; done\n",
                BATCH - 1
            ));
            std::fs::write(dir.join("bench.spec"), spec).unwrap();
            let started = Instant::now();
            let status = Command::new("rpmbuild")
                .arg("-bb")
                .arg("--quiet")
                .arg("--define")
                .arg(format!("_topdir {}", dir.display()))
                .arg("--define")
                .arg("__os_install_post %{nil}")
                .arg(dir.join("bench.spec"))
                .status()
                .unwrap();
            assert!(status.success(), "rpmbuild of batch {batch} failed");
            eprintln!("built {BATCH} RPMs in {:.1?}", started.elapsed());
            std::fs::write(&done, "").unwrap();
        }
        let mut batch_files: Vec<PathBuf> = std::fs::read_dir(dir.join("RPMS/noarch"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('b'))
            })
            .collect();
        batch_files.sort();
        files.extend(batch_files);
    }
    files.truncate(count);
    files
}

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// createrepo_c with kojid's arguments, on the host or (with `topdir`) in a throw-away
/// container of the builder image; returns seconds.
fn by_hand(
    repodir: &Path,
    comps: &Path,
    out: &Path,
    old: Option<&Path>,
    topdir: Option<&Path>,
) -> f64 {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let mut command = match topdir {
        None => Command::new("createrepo_c"),
        Some(topdir) => {
            let mut podman = Command::new("podman");
            podman
                .args(["run", "--rm", "--network=none", "-v"])
                .arg(format!("{0}:{0}:ro", topdir.display()))
                .arg("-v")
                .arg(format!("{0}:{0}:rw", out.display()))
                .args([repos_support::IMAGE, "createrepo_c"]);
            podman
        }
    };
    command
        .args(["--error-exit-val", "-q", "-o"])
        .arg(out)
        .arg("-i")
        .arg(repodir.join("pkglist"))
        .arg("-g")
        .arg(comps);
    if let Some(old) = old {
        let status = Command::new("cp")
            .arg("-a")
            .arg(old)
            .arg(out.join("repodata"))
            .status()
            .unwrap();
        assert!(status.success());
        command.args(["--update", "--skip-stat"]);
    }
    let started = Instant::now();
    let status = command.arg(repodir).status().unwrap();
    assert!(status.success());
    secs(started)
}

fn createrepo_seconds(world: &World, parent: i64) -> f64 {
    world
        .hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(parent))
        .and_then(|t| Some(t.completion_ts? - t.start_ts?))
        .unwrap_or(f64::NAN)
}

#[actix_rt::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("REPO_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    println!(
        "{:>7} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "rpms",
        "newRepo s",
        "createrepo s",
        "by hand s",
        "podman run s",
        "update newRepo",
        "update task",
        "update by hand",
        "update podman"
    );
    for count in sizes {
        let files = rpms(count);
        let world = World::new().await;
        let tag_name = format!("bench-{count}");
        let tag = world.side.add_tag(&tag_name, &["x86_64"]);
        world.side.import_rpms(&files, tag).unwrap();

        let first = world.create("newRepo", vec![Value::String(tag_name.clone())]);
        let started = Instant::now();
        let repo = world.run(first).await.expect("newRepo")[0]
            .as_i64()
            .unwrap();
        let full = secs(started);
        let full_task = createrepo_seconds(&world, first);

        let second = world.create("newRepo", vec![Value::String(tag_name.clone())]);
        let started = Instant::now();
        let repo2 = world.run(second).await.expect("newRepo --update")[0]
            .as_i64()
            .unwrap();
        let update = secs(started);
        let update_task = createrepo_seconds(&world, second);

        let dir = world.side.repo_dir(repo2).unwrap();
        let comps = dir.join("groups/comps.xml");
        let out = world.workdir.path().join("by-hand");
        let topdir = world.topdir();
        let old = world.side.repo_dir(repo).unwrap().join("x86_64/repodata");
        let x86 = dir.join("x86_64");
        let hand = by_hand(&x86, &comps, &out, None, None);
        let hand_update = by_hand(&x86, &comps, &out, Some(&old), None);
        let podman = by_hand(&x86, &comps, &out, None, Some(&topdir));
        let podman_update = by_hand(&x86, &comps, &out, Some(&old), Some(&topdir));
        println!(
            "{count:>7} {full:>14.2} {full_task:>14.2} {hand:>14.2} {podman:>14.2} {update:>14.2} {update_task:>14.2} {hand_update:>14.2} {podman_update:>14.2}"
        );
    }
    println!(
        "newRepo = whole parent task incl. subtask scheduling, container start, uploads and repoDone; \
         createrepo = the createrepo subtask from open to close; by hand = createrepo_c alone on the host; \
         podman run = the same in a fresh container of the builder image."
    );
}
