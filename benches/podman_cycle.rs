//! Median time of one container cycle, create + start + exec(true) + rm, through
//! `PodmanRuntime` versus the same podman commands from a shell script. 20 runs each,
//! interleaved so that background load hits both alike.
//!
//!     cargo bench -p koji-adjutant --bench podman_cycle
//!
//! Needs root, podman and the builder image (built by scripts/build-image.sh if missing).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koji_adjutant::podman::{LABEL_WORKER, PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::runtime::{
    ContainerRuntime, ContainerSpec, ExecSpec, LogSink, NetworkMode, OutputStream, ResourceLimits,
    SelinuxLabel,
};
use tokio_util::sync::CancellationToken;

const RUNS: usize = 20;

/// The same flags the runtime passes, so that only the driving differs.
const SCRIPT: &str = r#"set -e
name=$1; image=$2; stepdir=$3
podman create --name "$name" --pull=never --init --cap-drop=ALL --security-opt no-new-privileges \
    --cap-add=KILL --network=none --label io.koji.adjutant.worker=bench-script \
    --volume="$stepdir:/run/koji-adjutant:rw" "$image" sleep infinity >/dev/null
podman start "$name" >/dev/null
podman exec "$name" true
podman rm --force --time=0 "$name" >/dev/null
"#;

struct Discard;

impl LogSink for Discard {
    fn line(&self, _: OutputStream, _: &str) {}
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn build_image() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image.sh");
    let output = Command::new(&script)
        .output()
        .map_err(|err| format!("cannot run {}: {err}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "build-image.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(|line| line.trim().to_owned())
        .ok_or_else(|| "build-image.sh printed no image name".to_owned())
}

async fn runtime_cycle(
    runtime: &PodmanRuntime,
    image: &str,
    name: &str,
) -> Result<Duration, String> {
    let spec = ContainerSpec {
        image: image.to_owned(),
        name: name.to_owned(),
        labels: BTreeMap::from([(LABEL_WORKER.to_owned(), "bench-runtime".to_owned())]),
        user: None,
        workdir: None,
        mounts: Vec::new(),
        selinux_label: SelinuxLabel::None,
        env: BTreeMap::new(),
        network: NetworkMode::None,
        cap_add: Vec::new(),
        limits: ResourceLimits::default(),
    };
    let step = ExecSpec {
        step: "true".to_owned(),
        argv: vec!["true".to_owned()],
        env: BTreeMap::new(),
        user: None,
        workdir: None,
        stdin: None,
        timeout: None,
    };
    let started = Instant::now();
    let handle = runtime.create(&spec).await.map_err(|e| e.to_string())?;
    runtime.start(&handle).await.map_err(|e| e.to_string())?;
    let outcome = runtime
        .exec(&handle, &step, Arc::new(Discard), CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    runtime
        .remove(&handle, true)
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if outcome.exit_code != 0 {
        return Err(format!("`true` exited {}", outcome.exit_code));
    }
    Ok(elapsed)
}

fn script_cycle(
    script: &Path,
    image: &str,
    name: &str,
    stepdir: &Path,
) -> Result<Duration, String> {
    let started = Instant::now();
    let status = Command::new("sh")
        .arg(script)
        .args([name, image])
        .arg(stepdir)
        .status()
        .map_err(|err| err.to_string())?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("the shell cycle failed with {status}"));
    }
    Ok(elapsed)
}

fn main() -> Result<(), String> {
    let image = build_image()?;
    let scratch = tempfile::tempdir().map_err(|err| err.to_string())?;
    let script = scratch.path().join("cycle.sh");
    std::fs::write(&script, SCRIPT).map_err(|err| err.to_string())?;
    let stepdir = scratch.path().join("steps");
    std::fs::create_dir_all(&stepdir).map_err(|err| err.to_string())?;
    let runtime = PodmanRuntime::new(PodmanOptions {
        run_dir: scratch.path().join("run"),
        ..PodmanOptions::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    rt.block_on(runtime.probe())
        .map_err(|err| err.to_string())?;

    let pid = std::process::id();
    let mut through_runtime = Vec::with_capacity(RUNS);
    let mut through_script = Vec::with_capacity(RUNS);
    // Two warm-up cycles each fill podman's and the kernel's caches.
    for run in 0..RUNS + 2 {
        let runtime_time = rt.block_on(runtime_cycle(
            &runtime,
            &image,
            &format!("koji-adjutant-bench-{pid}-r{run}"),
        ))?;
        let script_time = script_cycle(
            &script,
            &image,
            &format!("koji-adjutant-bench-{pid}-s{run}"),
            &stepdir,
        )?;
        if run >= 2 {
            through_runtime.push(runtime_time);
            through_script.push(script_time);
        }
    }
    let runtime_median = median(&mut through_runtime);
    let script_median = median(&mut through_script);
    let ratio = runtime_median.as_secs_f64() / script_median.as_secs_f64();
    println!("create+start+exec(true)+rm, median of {RUNS} runs");
    println!(
        "  PodmanRuntime  {:>8.1} ms",
        runtime_median.as_secs_f64() * 1e3
    );
    println!(
        "  shell script   {:>8.1} ms",
        script_median.as_secs_f64() * 1e3
    );
    println!(
        "  ratio          {ratio:>8.3} ({:+.1}%, target within +10%)",
        (ratio - 1.0) * 100.0
    );
    Ok(())
}
