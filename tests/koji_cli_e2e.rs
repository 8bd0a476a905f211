//! Issue 6's headline, literally: the upstream `koji` CLI (koji 1.36.1, what
//! scripts/setup-dev.sh installs with pip) runs `koji build` and `koji build --scratch` of a
//! local SRPM against the fake hub, waiting with its own task watcher, while the real
//! `koji-adjutant run` daemon is the hub's only builder. The CLI uploads the SRPM to
//! `cli-build/<unique>/` and calls `build`; nothing is queued behind the hub's back.
//!
//! Needs what tests/daemon_e2e.rs needs (root, podman, the builder image, rpmbuild,
//! createrepo_c) plus the `koji` CLI (`KOJI_CLI` overrides its path).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use koji_fakehub::TaskState;
use koji_fakehub::userapi::UserApi;
use serde_json::Value as Json;

#[path = "support/srpm.rs"]
mod srpm;
use srpm::{build_srpm, build_srpm_from};

#[path = "support/stub_repo.rs"]
mod stub_repo;

#[path = "support/daemon.rs"]
mod daemon;
use daemon::*;

fn koji_cli() -> String {
    std::env::var("KOJI_CLI").unwrap_or_else(|_| "koji".to_owned())
}

fn require_koji_cli() {
    let probe = std::process::Command::new(koji_cli())
        .arg("--help")
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "this test needs the upstream koji CLI: pip install --no-deps koji==1.36.1 requests \
             python-dateutil six defusedxml, or set KOJI_CLI ({other:?})"
        ),
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The upstream CLI logged in as kojiadmin, with a `koji.conf` pointing at the fake hub.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new(world: &World) -> Self {
        require_koji_cli();
        let dir = tempfile::tempdir().unwrap();
        // poll_interval: the watcher's sleep between rounds (6 s by default).
        std::fs::write(
            dir.path().join("koji.conf"),
            format!(
                "[koji]\nserver = {}\nweburl = http://127.0.0.1/koji\ntopurl = {}\n\
                 authtype = password\nmax_retries = 0\npoll_interval = 1\n",
                world.hub.url(),
                world.topurl
            ),
        )
        .unwrap();
        Self { dir }
    }

    /// Runs `koji <args>` without blocking the runtime the fake hub serves on; kills it and
    /// panics with its output after `within`.
    async fn run(&self, args: &[&str], within: Duration) -> Output {
        let child = tokio::process::Command::new(koji_cli())
            .arg("-c")
            .arg(self.dir.path().join("koji.conf"))
            .args(["--user", "kojiadmin", "--password", "kojiadmin"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the koji CLI");
        match tokio::time::timeout(within, child.wait_with_output()).await {
            Ok(output) => output.expect("the koji CLI's output"),
            Err(_) => panic!("koji {args:?} did not finish within {within:?}"),
        }
    }

    /// `koji call --json-output <method> <args…>`, which must succeed.
    async fn call(&self, method: &str, args: &[&str]) -> Json {
        let mut all = vec!["call", "--json-output", method];
        all.extend_from_slice(args);
        let output = self.run(&all, Duration::from_secs(60)).await;
        assert!(
            output.status.success(),
            "koji call {method}: {}",
            text(&output)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("koji call {method}: {e}: {}", text(&output)))
    }
}

/// A world whose hub takes `koji build` from the CLI, with the daemon as its only builder.
async fn world_with_daemon(name: &str) -> (World, Daemon, Cli) {
    let (world, _) = World::new(false).await;
    world.add_repo_by_hand();
    UserApi::install(&world.hub, &world.side);
    let daemon = Daemon::start(&world.hub, &world.topurl, name);
    let cli = Cli::new(&world);
    (world, daemon, cli)
}

/// The task id of the CLI's "Created task: N" line.
fn created_task(output: &str) -> i64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Created task: "))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'Created task' line:\n{output}"))
}

/// The watcher printed the subtask `id` (indented under its parent) as finished `state`.
fn assert_watched(output: &str, id: i64, method: &str, state: &str) {
    let prefix = format!("  {id} {method} ");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with(&prefix) && l.trim_end().ends_with(state)),
        "the watcher did not show {method} {id} {state}:\n{output}"
    );
}

/// What both successful runs show: the upload, the task, the watched tree, the final verdict,
/// and the task as kojihub would have it (owner, request with the uploaded path).
fn check_cli_success(world: &World, output: &Output, srpm: &Path) -> i64 {
    let shown = text(output);
    // Shown with --nocapture: what a person running `koji build` sees.
    eprintln!("{shown}");
    assert!(output.status.success(), "koji build failed:\n{shown}");
    let name = srpm.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        shown.contains(&format!("Uploading srpm: {}", srpm.display())),
        "{shown}"
    );
    let parent = created_task(&shown);
    assert!(
        shown.contains("Watching tasks (this may be safely interrupted)..."),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "{parent} build (dist, {name}) completed successfully"
        )),
        "{shown}"
    );
    for child in world.children(parent) {
        assert_watched(&shown, child.id, &child.method, "closed");
    }
    let task = world.hub.task(parent).unwrap();
    assert_eq!(
        (
            task.method.as_str(),
            task.owner,
            task.parent,
            task.arch.as_str()
        ),
        ("build", 1, None, "noarch"),
        "a root build task owned by kojiadmin"
    );
    parent
}

/// The task's request as stored on the hub, decoded.
fn request_json(world: &World, id: i64) -> Json {
    let xml = world.hub.task(id).expect("the task exists").request_xml;
    let call = koji_adjutant::hub::xmlrpc::decode_call(&xml).expect("a methodCall");
    Json::Array(
        call.args
            .iter()
            .map(koji_adjutant::hub::xmlrpc::value_to_json)
            .collect(),
    )
}

/// The request's first argument: the path the CLI uploaded to, `cli-build/<unique>/<srpm>`.
fn uploaded_path(world: &World, parent: i64, name: &str) -> String {
    let request = request_json(world, parent);
    let src = request[0].as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = src.split('/').collect();
    assert!(
        parts.len() == 3 && parts[0] == "cli-build" && parts[2] == name,
        "{request}"
    );
    src
}

#[actix_rt::test]
async fn koji_build_scratch_from_the_upstream_cli_completes_on_the_daemon() {
    let (world, daemon, cli) = world_with_daemon("cli-scratch").await;
    let local = tempfile::tempdir().unwrap();
    let srpm = build_srpm("hello-noarch", local.path());
    let srpm_arg = srpm.to_string_lossy().into_owned();
    let output = cli
        .run(
            &["build", "--wait", "--scratch", "dist", &srpm_arg],
            Duration::from_secs(400),
        )
        .await;
    let parent = check_cli_success(&world, &output, &srpm);
    let name = srpm.file_name().unwrap().to_string_lossy().into_owned();
    let src = uploaded_path(&world, parent, &name);
    // The uploaded SRPM is the local one, byte for byte.
    assert_eq!(
        std::fs::read(world.hub.topdir().join("work").join(&src)).unwrap(),
        std::fs::read(&srpm).unwrap()
    );
    assert_eq!(request_json(&world, parent)[2]["scratch"], true);
    assert_eq!(world.hub.task(parent).unwrap().state, TaskState::Closed);
    world.check_successful_build(parent, true, "noarch", "dist-build");

    // The CLI's own views of the finished task.
    let info = cli
        .run(
            &["taskinfo", "-r", &parent.to_string()],
            Duration::from_secs(60),
        )
        .await;
    let shown = text(&info);
    eprintln!("{shown}");
    assert!(info.status.success(), "koji taskinfo:\n{shown}");
    for line in [
        format!("Task: {parent}"),
        "Type: build".to_owned(),
        "Owner: kojiadmin".to_owned(),
        "State: closed".to_owned(),
        "Host: builder1.local".to_owned(),
    ] {
        assert!(shown.lines().any(|l| l == line), "{line} in:\n{shown}");
    }
    // -r: each subtask, indented, with its logs and outputs in its own task dir.
    for child in world.children(parent) {
        assert!(
            shown.contains(&format!("  Task: {}\n  Type: {}\n", child.id, child.method)),
            "subtask {} in:\n{shown}",
            child.id
        );
        let dir = format!("work/tasks/{}/{}/", child.id % 10000, child.id);
        assert!(shown.contains(&format!("{dir}build.log")), "{shown}");
    }
    let arch = world.children(parent)[1].id;
    assert!(
        shown.contains(&format!(
            "work/tasks/{}/{arch}/{}",
            arch % 10000,
            name.replace(".src.rpm", ".noarch.rpm")
                .replace("-1.noarch", "-1.e2e.noarch")
        )),
        "the noarch rpm among buildArch's outputs:\n{shown}"
    );
    let result = cli.call("getTaskResult", &[&arch.to_string()]).await;
    assert!(
        result["rpms"].as_array().is_some_and(|r| r
            .iter()
            .any(|p| p.as_str().unwrap_or("").ends_with(".noarch.rpm"))),
        "{result}"
    );
    assert!(daemon.containers().is_empty(), "no container is left");
    daemon.assert_took_every_task_at_once();
}

#[actix_rt::test]
async fn koji_build_from_the_upstream_cli_imports_and_tags_on_the_daemon() {
    let (world, daemon, cli) = world_with_daemon("cli-regular").await;
    let local = tempfile::tempdir().unwrap();
    let srpm = build_srpm("hello-c", local.path());
    let srpm_arg = srpm.to_string_lossy().into_owned();
    let output = cli
        .run(
            &["build", "--wait", "dist", &srpm_arg],
            Duration::from_secs(400),
        )
        .await;
    let parent = check_cli_success(&world, &output, &srpm);
    world.check_successful_build(parent, false, "x86_64", "dist-build");
    let nvr = world
        .side
        .with_world(|w| w.builds.values().next().unwrap().nvr());

    let build_id = world.side.with_world(|w| *w.builds.keys().next().unwrap());
    let info = cli
        .run(
            &["taskinfo", "-r", &parent.to_string()],
            Duration::from_secs(60),
        )
        .await;
    let shown = text(&info);
    assert!(info.status.success(), "koji taskinfo:\n{shown}");
    assert!(
        shown.contains(&format!("Task: {parent}\nType: build\n")),
        "{shown}"
    );
    // The parent names its build (listBuilds(taskID=…)).
    assert!(
        shown
            .lines()
            .any(|l| l == format!("Build: {nvr} ({build_id})")),
        "{shown}"
    );
    let result = cli.call("getTaskResult", &[&parent.to_string()]).await;
    assert_eq!(result, Json::Null, "build returns nil");

    let build = cli.call("getBuild", &[&nvr]).await;
    assert_eq!(
        (build["state"].as_i64(), build["task_id"].as_i64()),
        (Some(1), Some(parent)),
        "{build}"
    );
    let tagged = cli
        .run(&["list-tagged", "dist-dest"], Duration::from_secs(60))
        .await;
    let shown = text(&tagged);
    assert!(tagged.status.success(), "koji list-tagged:\n{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&nvr) && l.contains("dist-dest")),
        "{nvr} not listed in dist-dest:\n{shown}"
    );
    assert!(daemon.containers().is_empty(), "no container is left");
    daemon.assert_took_every_task_at_once();
}

#[actix_rt::test]
async fn koji_build_scratch_of_a_failing_package_exits_non_zero_with_kojids_message() {
    let (world, daemon, cli) = world_with_daemon("cli-fail").await;
    world.side.add_package(world.dest_tag, "brokenbuild", false);
    let sources = tempfile::tempdir().unwrap();
    std::fs::write(
        sources.path().join("brokenbuild.spec"),
        "Name: brokenbuild\nVersion: 1.0\nRelease: 1\nSummary: fails in %build\nLicense: MIT\n\
         BuildArch: noarch\n%description\nfails\n%prep\n%build\necho BREAKING\nexit 3\n\
         %files\n",
    )
    .unwrap();
    let local = tempfile::tempdir().unwrap();
    let srpm = build_srpm_from(sources.path(), "brokenbuild", local.path());
    let srpm_arg = srpm.to_string_lossy().into_owned();
    let output = cli
        .run(
            &["build", "--wait", "--scratch", "dist", &srpm_arg],
            Duration::from_secs(400),
        )
        .await;
    let shown = text(&output);
    assert!(!output.status.success(), "koji build succeeded:\n{shown}");
    let parent = created_task(&shown);
    let name = srpm.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        shown.contains(&format!("{parent} build (dist, {name}) failed")),
        "{shown}"
    );
    let arch = world
        .children(parent)
        .into_iter()
        .find(|t| t.method == "buildArch")
        .expect("a buildArch task");
    assert_eq!(arch.state, TaskState::Failed);
    assert_eq!(world.hub.task(parent).unwrap().state, TaskState::Failed);
    eprintln!("{shown}");
    // kojid's message for a failed rpmbuild, on the buildArch task and again on the parent
    // (which fails with its child's fault), each as the watcher prints a FAILED task.
    let message = "FAILED: BuildError: error building package (arch noarch), mock exited with \
                   status 1; see build.log or root.log for more information";
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&format!("  {} buildArch (", arch.id)) && l.ends_with(message)),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&format!("{parent} build (dist, {name})"))
                && l.ends_with(message)),
        "{shown}"
    );
    // The watcher points at the logs under the topurl, and build.log shows %build ran.
    let log_url = format!(
        "{}/work/tasks/{}/{}/build.log",
        world.topurl,
        arch.id % 10000,
        arch.id
    );
    assert!(
        shown.contains("Relevant logs:") && shown.contains(&log_url),
        "{shown}"
    );
    let build_log = String::from_utf8_lossy(
        &world
            .hub
            .task_output(arch.id, "build.log")
            .expect("build.log on the hub"),
    )
    .into_owned();
    assert!(build_log.contains("BREAKING"), "{build_log}");
    assert!(daemon.containers().is_empty(), "no container is left");
}
