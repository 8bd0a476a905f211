//! One noarch build (tests/data/srpms/hello-noarch, no repo, image mode) through the buildroot
//! engine, phase by phase, versus the same steps run by hand with podman from a shell script
//! (create + start, unpack and `rpmbuild -bs`, `rpmbuild -bb` as the build user without
//! network, copy out, rm). 3 runs each, interleaved; medians printed. The difference is the
//! worker's overhead: its extra steps (hw_info, rpm -qa snapshots, the isolation probe, the
//! BuildRequires check) and its own bookkeeping.
//!
//!     cargo bench -p koji-adjutant --bench buildroot_phases
//!
//! Needs root, podman, rpmbuild on the host and the builder image (scripts/build-image.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koji_adjutant::buildroot::{
    Buildroot, BuildrootSettings, BuildrootSpec, InstallGroup, LocalContainers, TagExtra,
};
use koji_adjutant::podman::{PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::runtime::ContainerRuntime;
use tokio_util::sync::CancellationToken;

const RUNS: usize = 3;
const IMAGE: &str = "localhost/koji-adjutant-builder:latest";

/// The same steps by hand; prints `phase seconds` lines.
const SCRIPT: &str = r#"set -e
name=$1; image=$2; work=$3; srpm=$4
now() { date +%s.%N; }
t0=$(now)
podman run -d --name "$name" --pull=never --init --cap-drop=ALL --security-opt no-new-privileges \
    --cap-add=CHOWN,DAC_OVERRIDE,FOWNER,FSETID,SETFCAP,SETUID,SETGID,KILL --network=host \
    --label io.koji.adjutant.worker=bench-script -v "$work:/koji/task:Z" "$image" sleep infinity >/dev/null
podman exec "$name" sh -c 'mkdir -p /builddir/build && echo "%_topdir /builddir/build" > /builddir/.rpmmacros && chown -R 1000:1000 /builddir'
t1=$(now)
podman exec -e HOME=/builddir "$name" setpriv --reuid=1000 --regid=1000 --clear-groups -- \
    unshare --user --map-current-user --net -- sh -c "cd /builddir && rpm -i --nodeps /koji/task/$srpm 2>/dev/null; rpmbuild -bs --nodeps build/SPECS/*.spec" >/dev/null
podman exec -e HOME=/builddir "$name" setpriv --reuid=1000 --regid=1000 --clear-groups -- \
    unshare --user --map-current-user --net -- sh -c 'rpmbuild -bb /builddir/build/SPECS/*.spec' >/dev/null 2>&1
podman exec "$name" sh -c 'mkdir -p /koji/task/result && find /builddir/build/RPMS /builddir/build/SRPMS -name "*.rpm" -exec cp {} /koji/task/result/ \;'
t2=$(now)
podman rm -f -t 0 "$name" >/dev/null
t3=$(now)
echo "init $(awk "BEGIN{print $t1 - $t0}")"
echo "build $(awk "BEGIN{print $t2 - $t1}")"
echo "release $(awk "BEGIN{print $t3 - $t2}")"
"#;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn make_srpm(dir: &Path) -> Result<PathBuf, String> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/srpms/hello-noarch");
    let top = dir.join("top");
    let output = Command::new("rpmbuild")
        .arg("-bs")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_sourcedir {}", sources.display()))
        .arg(sources.join("hello-noarch.spec"))
        .output()
        .map_err(|e| format!("rpmbuild: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(top.join("SRPMS/hello-noarch-1.0-1.src.rpm"))
}

async fn engine_run(
    runtime: Arc<dyn ContainerRuntime>,
    srpm: &Path,
    run: usize,
) -> Result<BTreeMap<&'static str, Duration>, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let local = work.path().join("hello-noarch-1.0-1.src.rpm");
    std::fs::copy(srpm, &local).map_err(|e| e.to_string())?;
    let spec = BuildrootSpec {
        image: IMAGE.into(),
        work_dir: work.path().to_path_buf(),
        arch: "noarch".into(),
        tag_name: "bench".into(),
        repo_id: None,
        buildroot_id: None,
        repo_urls: Vec::new(),
        install_group: InstallGroup::Build,
        tag_extra: TagExtra::default(),
        extra_macros: Vec::new(),
        settings: BuildrootSettings::default(),
    };
    let containers = Arc::new(LocalContainers::new(
        runtime,
        CancellationToken::new(),
        &format!("bench-br-{}-{run}", std::process::id()),
    ));
    let mut phases = BTreeMap::new();
    let started = Instant::now();
    let mut buildroot = Buildroot::init(containers, spec, None)
        .await
        .map_err(|e| e.to_string())?;
    phases.insert("init", started.elapsed());
    let started = Instant::now();
    buildroot
        .installed_rpms()
        .await
        .map_err(|e| e.to_string())?;
    phases.insert("installed list", started.elapsed());
    let started = Instant::now();
    buildroot
        .build_rpms(&local)
        .await
        .map_err(|e| e.to_string())?;
    phases.insert("build", started.elapsed());
    let started = Instant::now();
    buildroot
        .installed_rpms()
        .await
        .map_err(|e| e.to_string())?;
    phases.insert("installed list (after)", started.elapsed());
    let started = Instant::now();
    buildroot.release().await.map_err(|e| e.to_string())?;
    phases.insert("release", started.elapsed());
    Ok(phases)
}

fn script_run(
    script: &Path,
    srpm: &Path,
    run: usize,
) -> Result<BTreeMap<String, Duration>, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(srpm, work.path().join("hello-noarch-1.0-1.src.rpm"))
        .map_err(|e| e.to_string())?;
    let output = Command::new("sh")
        .arg(script)
        .arg(format!("bench-br-script-{}-{run}", std::process::id()))
        .arg(IMAGE)
        .arg(work.path())
        .arg("hello-noarch-1.0-1.src.rpm")
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "the by-hand script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut phases = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((phase, seconds)) = line.split_once(' ') {
            let seconds: f64 = seconds
                .trim()
                .parse()
                .map_err(|_| format!("bad line {line:?}"))?;
            phases.insert(phase.to_owned(), Duration::from_secs_f64(seconds));
        }
    }
    Ok(phases)
}

fn main() -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let srpm = make_srpm(scratch.path())?;
    let script = scratch.path().join("by-hand.sh");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(PodmanRuntime::new(PodmanOptions {
        run_dir: scratch.path().join("run"),
        ..PodmanOptions::default()
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut engine: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut by_hand: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut engine_total = Vec::new();
    let mut hand_total = Vec::new();
    for run in 0..RUNS {
        let phases = rt.block_on(engine_run(Arc::clone(&runtime), &srpm, run))?;
        engine_total.push(phases.values().sum());
        for (phase, took) in phases {
            engine.entry(phase).or_default().push(took);
        }
        let phases = script_run(&script, &srpm, run)?;
        hand_total.push(phases.values().sum());
        for (phase, took) in phases {
            by_hand.entry(phase).or_default().push(took);
        }
    }
    println!("one noarch build (hello-noarch, image mode, no repo), median of {RUNS} runs");
    println!("{:<26} {:>10} {:>10}", "phase", "engine s", "by hand s");
    for phase in [
        "init",
        "installed list",
        "build",
        "installed list (after)",
        "release",
    ] {
        let engine_s = engine.get_mut(phase).map(|s| median(s).as_secs_f64());
        let hand_s = by_hand.get_mut(phase).map(|s| median(s).as_secs_f64());
        println!(
            "{phase:<26} {:>10} {:>10}",
            engine_s
                .map(|s| format!("{s:.2}"))
                .unwrap_or_else(|| "-".into()),
            hand_s
                .map(|s| format!("{s:.2}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    let engine_median = median(&mut engine_total).as_secs_f64();
    let hand_median = median(&mut hand_total).as_secs_f64();
    println!("{:<26} {engine_median:>10.2} {hand_median:>10.2}", "total");
    println!(
        "worker overhead: {:.2} s ({:.0}%)",
        engine_median - hand_median,
        100.0 * (engine_median - hand_median) / hand_median
    );
    Ok(())
}
