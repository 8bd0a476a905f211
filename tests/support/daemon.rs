//! The set-up shared by the end-to-end tests through the real daemon (`tests/daemon_e2e.rs`,
//! `tests/koji_cli_e2e.rs`): a fake hub with its build side and topurl server, a hand-made
//! repo of the build tag, one `koji-adjutant run` process, and the checks of a successful build.
//! Included with `#[path]`; the including test crate declares `mod srpm` (support/srpm.rs).

// Each including test uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use koji_adjutant::hub::xmlrpc::{decode_call, decode_response, value_to_json};
use koji_fakehub::build::{BUILD_COMPLETE, BuildSide, serve_topurl};
use koji_fakehub::repos::RepoSide;
use koji_fakehub::state::Repo;
use koji_fakehub::{BuildrootState, FakeHub, FakeHubConfig, HostConfig, NewTask, TaskState, Value};
use serde_json::{Value as Json, json};

use super::srpm::build_srpm;
use super::stub_repo::{make_repo_by_hand, open_up, sha256};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const HOST: &str = "builder1.local";
pub const PASSWORD: &str = "builder";

pub fn ensure_image() {
    static IMAGE: OnceLock<()> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let output = Command::new(Path::new(ROOT).join("scripts/build-image.sh"))
            .output()
            .expect("run scripts/build-image.sh");
        assert!(
            output.status.success(),
            "scripts/build-image.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// A plain HTTP/1.0 GET of `url` (`http://127.0.0.1:port/path`): status and body. Async, as
/// the topurl server runs on this test's own single-threaded runtime.
pub async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http url");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One `koji-adjutant run` process with its own config, work and mock dirs, and log.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub worker_id: String,
}

impl Daemon {
    pub fn start(hub: &FakeHub, topurl: &str, name: &str) -> Self {
        Self::start_with(hub, topurl, name, "")
    }

    /// [`Daemon::start`] with `adjutant` (whole `key = value` lines) added to `[adjutant]`.
    pub fn start_with(hub: &FakeHub, topurl: &str, name: &str, adjutant: &str) -> Self {
        ensure_image();
        let dir = tempfile::tempdir().unwrap();
        open_up(dir.path());
        let worker_id = format!("de2e-{name}-{}", std::process::id());
        let mockdir = dir.path().join("mock");
        let workdir = dir.path().join("work");
        for path in [&mockdir, &workdir] {
            std::fs::create_dir_all(path).unwrap();
            open_up(path);
        }
        let config = format!(
            "[kojid]\nserver = {url}\ntopurl = {topurl}\nuser = {HOST}\npassword = {PASSWORD}\n\
             topdir = {topdir}\n\
             sleeptime = 2\nminspace = 1\nmaxjobs = 10\nmockdir = {mockdir}\n\
             retry_interval = 1\noffline_retry_interval = 2\nworkdir = {workdir}\n\
             [adjutant]\nworker_id = {worker_id}\nmonitoring_enabled = false\n\
             policy_enabled = false\n{adjutant}",
            url = hub.url(),
            topdir = hub.topdir().display(),
            mockdir = mockdir.display(),
            workdir = workdir.display(),
        );
        let config_path = dir.path().join("kojid.conf");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_koji-adjutant"));
        // A test process killed from outside (a timeout, ^C) runs no Drop: the daemon must not
        // outlive it and keep polling a hub that is gone.
        // SAFETY: prctl is async-signal-safe, and the closure touches nothing else.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .arg("-c")
            .arg(&config_path)
            // kojid's load rule would keep a shared 2-core test machine from taking tasks.
            .args(["run", "--fg", "-v", "--max-load", "1000"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start koji-adjutant run");
        Self {
            child,
            dir,
            worker_id,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Waits until task `id` is closed, failed or canceled; panics with the log on timeout.
    pub async fn wait_done(&self, hub: &FakeHub, id: i64, within: Duration) -> TaskState {
        let deadline = Instant::now() + within;
        loop {
            let state = hub.task(id).expect("the task exists").state;
            if matches!(
                state,
                TaskState::Closed | TaskState::Failed | TaskState::Canceled
            ) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} still {state:?} after {within:?}; daemon log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// No host check failed: a task the daemon cannot check is left for other builders, so a
    /// failing check would only show up as a slow test (the build tag once went to
    /// `getBuildConfig` as a name and every build subtask waited forever).
    pub fn assert_took_every_task_at_once(&self) {
        let log = self.log();
        assert!(
            !log.contains("host check failed"),
            "the daemon failed host checks:\n{log}"
        );
    }

    pub fn containers(&self) -> Vec<String> {
        let output = Command::new("podman")
            .args(["ps", "-aq"])
            .arg(format!(
                "--filter=label=io.koji.adjutant.worker={}",
                self.worker_id
            ))
            .output()
            .expect("podman ps");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed half-way must not leave containers behind.
        for id in self.containers() {
            let _ = Command::new("podman").args(["rm", "-f", &id]).output();
        }
    }
}

/// The fake hub with the build side: target `dist` building in `dist-build` (x86_64, %dist
/// `.e2e`) into `dist-dest`, and the topurl server over its topdir.
pub struct World {
    pub hub: FakeHub,
    pub side: BuildSide,
    pub build_tag: i64,
    pub dest_tag: i64,
    pub topurl: String,
    pub _topurl_server: tokio::task::JoinHandle<()>,
}

impl World {
    pub async fn new(with_repo_side: bool) -> (Self, Option<RepoSide>) {
        let hub = FakeHub::start(FakeHubConfig {
            hosts: vec![HostConfig::new(HOST).with_password(PASSWORD)],
            ..FakeHubConfig::default()
        })
        .await
        .unwrap();
        // Container names carry the task id: ids unique to this process keep the tests of
        // parallel processes (and other engineers' tests) apart.
        static WORLDS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let nth = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 5_000_000 + i64::from(std::process::id() % 100_000) * 1000 + nth * 50;
        hub.with_state(|s| s.next_task_id = s.next_task_id.max(base));
        let topdir = hub.topdir();
        open_up(&topdir);
        // Both sides share the hub's one Koji database: the tags made here, the builds the
        // daemon completes and tags, and the repos its newRepo tasks make.
        let side = BuildSide::install(&hub);
        let repo_side = with_repo_side.then(|| RepoSide::install(&hub));
        let build_tag = side.add_tag("dist-build", "x86_64", None);
        let dest_tag = side.add_tag("dist-dest", "", None);
        side.add_target("dist", build_tag, dest_tag);
        for package in ["hello-noarch", "hello-c"] {
            side.add_package(dest_tag, package, false);
        }
        side.with_world(|w| {
            if let Some(tag) = w.tags.get_mut(&build_tag) {
                tag.extra.insert("rpm.macro.dist".into(), json!(".e2e"));
            }
        });
        let (addr, server) = serve_topurl(topdir).await.unwrap();
        (
            Self {
                hub,
                side,
                build_tag,
                dest_tag,
                topurl: format!("http://{addr}"),
                _topurl_server: server,
            },
            repo_side,
        )
    }

    /// Repo 1 of dist-build made by hand, READY on the hub.
    pub fn add_repo_by_hand(&self) {
        make_repo_by_hand(&self.hub.topdir());
        let create_event = self.hub.with_state(|s| s.next_event());
        self.hub.add_repo(Repo {
            id: 1,
            tag_id: self.build_tag,
            tag_name: "dist-build".into(),
            state: 1,
            create_event,
            create_ts: 1.0,
            ..Default::default()
        });
    }

    /// Puts `package`'s SRPM where `koji build` uploads it and submits a `build` task of it.
    pub fn submit_build(&self, package: &str, opts: Json) -> i64 {
        let dir = self.hub.topdir().join("work/cli-build/1700000000.1.e2e");
        let srpm = build_srpm(package, &dir);
        self.submit_srpm(&srpm, opts)
    }

    /// Copies an SRPM where `koji build` uploads it and submits a `build` task of it.
    pub fn submit_srpm(&self, srpm: &Path, opts: Json) -> i64 {
        let dir = self.hub.topdir().join("work/cli-build/1700000000.1.e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join(srpm.file_name().unwrap());
        if target != srpm {
            std::fs::copy(srpm, &target).unwrap();
        }
        let relpath = format!(
            "cli-build/1700000000.1.e2e/{}",
            srpm.file_name().unwrap().to_string_lossy()
        );
        let task = NewTask::new(
            "build",
            vec![
                Value::String(relpath),
                Value::String("dist".to_owned()),
                koji_fakehub::build::to_value(&opts),
            ],
        );
        self.hub.create_task(task).unwrap()
    }

    pub fn children(&self, parent: i64) -> Vec<koji_fakehub::Task> {
        let mut children: Vec<_> = self
            .hub
            .tasks()
            .into_iter()
            .filter(|t| t.parent == Some(parent))
            .collect();
        children.sort_by_key(|t| t.id);
        children
    }

    pub fn result_of(&self, task_id: i64) -> Json {
        koji_fakehub::build::to_json(&self.hub.task_result(task_id).expect("a stored result"))
    }

    /// The states each buildroot was moved to with `host.setBuildRootState`, in call order.
    pub fn buildroot_transitions(&self, buildroot_id: i64) -> Vec<String> {
        let id_marker = |tag: &str| format!("<{tag}>{buildroot_id}</{tag}>");
        self.hub
            .call_log()
            .iter()
            .filter(|r| r["direction"] == "request" && r["method"] == "host.setBuildRootState")
            .filter_map(|r| r["body_xml"].as_str().map(str::to_owned))
            .filter(|body| body.contains(&id_marker("int")) || body.contains(&id_marker("i4")))
            .filter_map(|body| {
                ["INIT", "WAITING", "BUILDING", "EXPIRED"]
                    .into_iter()
                    .find(|state| body.contains(&format!(">{state}<")))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Every check the issue asks of a successful build through the daemon.
    pub fn check_successful_build(&self, parent: i64, scratch: bool, arch: &str, build_tag: &str) {
        self.check_successful_build_with(parent, scratch, arch, build_tag, "stub-build-tools");
    }

    /// [`World::check_successful_build`] for a build tag whose @build group has
    /// `group_package` (the hand-made repo's is `stub-build-tools`).
    pub fn check_successful_build_with(
        &self,
        parent: i64,
        scratch: bool,
        arch: &str,
        build_tag: &str,
        group_package: &str,
    ) {
        // The task tree: rebuildSRPM, buildArch (and tagBuild), all CLOSED, with kojid's labels.
        let children = self.children(parent);
        let labels: Vec<(String, Option<String>)> = children
            .iter()
            .map(|t| (t.method.clone(), t.label.clone()))
            .collect();
        let mut expected = vec![
            ("rebuildSRPM".to_owned(), Some("srpm".to_owned())),
            ("buildArch".to_owned(), Some(arch.to_owned())),
        ];
        if !scratch {
            expected.push(("tagBuild".to_owned(), Some("tag".to_owned())));
        }
        assert_eq!(labels, expected);
        for task in std::iter::once(self.hub.task(parent).unwrap()).chain(children.clone()) {
            assert_eq!(
                task.state,
                TaskState::Closed,
                "task {} {}",
                task.id,
                task.method
            );
        }
        assert_eq!(self.result_of(parent), Json::Null, "build returns nil");
        // The SRPM, the RPMs and the logs went up on each task's own subsession.
        assert_uploads_on_their_tasks_subsessions(
            &self.hub,
            &[children[0].id, children[1].id],
            &["rawUpload", "checkUpload"],
        );

        // rebuildSRPM's result: kojid's {srpm, logs, brootid, source}.
        let srpm_task = &children[0];
        let srpm_result = self.result_of(srpm_task.id);
        let keys = |v: &Json| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            keys(&srpm_result),
            ["brootid", "logs", "source", "srpm"],
            "{srpm_result}"
        );

        // buildArch's result: kojid's {rpms, srpms, logs, brootid}, work-relative paths.
        let arch_task = &children[1];
        let result = self.result_of(arch_task.id);
        assert_eq!(
            keys(&result),
            ["brootid", "logs", "rpms", "srpms"],
            "{result}"
        );
        let dir = format!("tasks/{}/{}", arch_task.id % 10000, arch_task.id);
        let rpms: Vec<String> = serde_json::from_value(result["rpms"].clone()).unwrap();
        assert!(!rpms.is_empty(), "{result}");
        for rpm in &rpms {
            assert!(rpm.starts_with(&dir), "{rpm} is in the task's upload dir");
            assert!(
                rpm.contains(".e2e."),
                "%dist from the tag's rpm.macro.dist: {rpm}"
            );
        }
        let logs: Vec<String> = serde_json::from_value(result["logs"].clone()).unwrap();
        for name in ["build.log", "root.log"] {
            assert!(
                logs.contains(&format!("{dir}/{name}")),
                "{name} in {logs:?}"
            );
            let log = self
                .hub
                .task_output(arch_task.id, name)
                .unwrap_or_else(|| panic!("{name} of buildArch on the hub"));
            assert!(!log.is_empty(), "{name} is empty");
        }
        let build_log =
            String::from_utf8_lossy(&self.hub.task_output(arch_task.id, "build.log").unwrap())
                .into_owned();
        assert!(
            build_log.contains("rpmbuild") || build_log.contains("Wrote:"),
            "{build_log}"
        );

        // The uploaded rpms match the ones the daemon reported, by checksum: the hub's copy
        // is read back through the topurl's disk and compared with what rpm itself says the
        // payload digest is (a truncated or corrupted upload fails both).
        for rpm in &rpms {
            let path = self.hub.topdir().join("work").join(rpm);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!sha256(&bytes).is_empty());
            let check = Command::new("rpm")
                .args(["-K", "--nosignature"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "rpm -K {}: {}",
                path.display(),
                String::from_utf8_lossy(&check.stdout)
            );
        }

        // Buildroots: one per buildroot task, INIT → BUILDING → EXPIRED, with the group's
        // package from the build tag's repo in their lists.
        let buildroots = self.hub.buildroots();
        assert_eq!(buildroots.len(), 2, "{buildroots:?}");
        for br in &buildroots {
            assert_eq!(br.state, BuildrootState::Expired, "buildroot {}", br.id);
            assert_eq!(
                self.buildroot_transitions(br.id),
                ["BUILDING", "EXPIRED"],
                "buildroot {}",
                br.id
            );
            let listed = koji_fakehub::build::to_json(&Value::Array(br.rpms.clone()));
            assert!(
                listed
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["name"] == group_package),
                "the @build group from {build_tag}'s repo is in the list: {listed}"
            );
        }

        self.side.with_world(|w| {
            // The build of this parent task; the RPMs a test imported are builds without one.
            let ours: Vec<_> = w
                .builds
                .values()
                .filter(|b| b.task_id == Some(parent))
                .collect();
            if scratch {
                assert_eq!(w.scratch.len(), 1);
                assert!(ours.is_empty(), "scratch builds are not imported");
            } else {
                assert_eq!(ours.len(), 1, "{:?}", w.builds);
                let build = ours[0];
                assert_eq!(build.state, BUILD_COMPLETE, "{}", build.nvr());
                let tagged: Vec<i64> = w
                    .tagged
                    .iter()
                    .filter(|(_, b)| *b == build.id)
                    .map(|(t, _)| *t)
                    .collect();
                assert_eq!(tagged, [self.dest_tag]);
                // The imported files are the uploaded ones, byte for byte.
                for file in &build.files {
                    let name = file.rsplit('/').next().unwrap();
                    let uploaded = [arch_task.id, srpm_task.id]
                        .iter()
                        .find_map(|id| {
                            std::fs::read(
                                self.hub
                                    .topdir()
                                    .join(format!("work/tasks/{}/{id}/{name}", id % 10000)),
                            )
                            .ok()
                        })
                        .unwrap_or_else(|| panic!("{name} was uploaded"));
                    let imported = std::fs::read(self.hub.topdir().join(file)).unwrap();
                    assert_eq!(sha256(&uploaded), sha256(&imported), "{file}");
                }
            }
        });
    }
}

/// The subsession the daemon opened for each task it took. kojid's take is `host.openTask(N)`
/// and then `subsession()` on the main session, whose reply names the task's new session.
pub fn task_sessions(hub: &FakeHub) -> HashMap<i64, i64> {
    let log = hub.call_log();
    let mut opened: Option<i64> = None;
    let mut asked: HashMap<u64, i64> = HashMap::new();
    let mut sessions = HashMap::new();
    for record in &log {
        let xid = record["xid"].as_u64().unwrap_or_default();
        match (record["direction"].as_str(), record["method"].as_str()) {
            (Some("request"), Some("host.openTask")) => {
                let call = decode_call(record["body_xml"].as_str().unwrap()).unwrap();
                opened = value_to_json(&call.args[0]).as_i64();
            }
            (Some("request"), Some("subsession")) => {
                let task = opened.take().expect("subsession() follows host.openTask");
                asked.insert(xid, task);
            }
            (Some("response"), Some("subsession")) => {
                let task = asked[&xid];
                let body = record["body_xml"].as_str().unwrap();
                let reply = decode_response(body.as_bytes()).unwrap().unwrap();
                let session = value_to_json(&reply)["session-id"].as_i64().unwrap();
                sessions.insert(task, session);
            }
            _ => {}
        }
    }
    sessions
}

/// One upload request of the call log: its method, the session it came on, and the task
/// whose upload dir (`tasks/<id % 10000>/<id>/…`) it writes into.
#[derive(Debug)]
pub struct UploadCall {
    pub method: String,
    pub proc: String,
    pub session: Option<i64>,
    pub task: i64,
}

pub fn upload_calls(hub: &FakeHub) -> Vec<UploadCall> {
    hub.call_log()
        .iter()
        .filter(|record| record["direction"] == "request")
        .filter_map(|record| {
            let method = record["method"].as_str()?;
            let dir = match method {
                "rawUpload" => record["query"]["filepath"].as_str()?.to_owned(),
                "checkUpload" | "uploadFile" => {
                    let call = decode_call(record["body_xml"].as_str()?).unwrap();
                    value_to_json(&call.args[0]).as_str()?.to_owned()
                }
                _ => return None,
            };
            // `koji build`'s own SRPM upload, made by the user, not by the daemon.
            if dir.starts_with("cli-build/") {
                return None;
            }
            let parts: Vec<&str> = dir.split('/').collect();
            assert_eq!(parts[0], "tasks", "{method} outside a task dir: {dir}");
            Some(UploadCall {
                method: method.to_owned(),
                proc: record["proc"].as_str().unwrap_or("none").to_owned(),
                session: record["session_id"].as_i64(),
                task: parts[2].parse().unwrap(),
            })
        })
        .collect()
}

/// kojid sends a task's uploads on that task's own subsession: every upload the daemon made
/// came on the session opened for the task it writes into, none on the main session, and
/// each of `tasks` made each of `methods`.
pub fn assert_uploads_on_their_tasks_subsessions(hub: &FakeHub, tasks: &[i64], methods: &[&str]) {
    let sessions = task_sessions(hub);
    let uploads = upload_calls(hub);
    for upload in &uploads {
        let expected = sessions.get(&upload.task).copied();
        assert!(
            expected.is_some() && upload.session == expected && upload.proc.starts_with("sub:"),
            "{upload:?} is not on task {}'s subsession {expected:?} (task sessions {sessions:?})",
            upload.task
        );
    }
    for task in tasks {
        for method in methods {
            assert!(
                uploads
                    .iter()
                    .any(|u| u.task == *task && u.method == *method),
                "task {task} made no {method}: {uploads:?}"
            );
        }
    }
}
