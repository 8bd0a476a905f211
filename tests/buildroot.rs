//! The buildroot engine against real podman, the real builder image and real rpmbuild.
//!
//! Needs root, podman and `localhost/koji-adjutant-builder:latest` (scripts/setup-dev.sh,
//! scripts/build-image.sh), and rpmbuild + createrepo_c on the host. Every test uses its own
//! container names (LocalContainers with a unique prefix) and its own temp dirs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use koji_adjutant::buildroot::{
    BuildNetwork, Buildroot, BuildrootError, BuildrootMode, BuildrootSettings, BuildrootSpec,
    ExternalRepoRef, ImageRpmPolicy, InstallGroup, LocalContainers, TagExtra, UidGid,
};
use koji_adjutant::podman::{PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::runtime::{ContainerRuntime, LogSink, OutputStream};
use tokio_util::sync::CancellationToken;

#[path = "support/srpm.rs"]
mod srpm;
use srpm::build_srpm;

const IMAGE: &str = "localhost/koji-adjutant-builder:latest";

fn runtime() -> Arc<dyn ContainerRuntime> {
    Arc::new(PodmanRuntime::new(PodmanOptions::default()))
}

fn containers(test: &str) -> Arc<LocalContainers> {
    Arc::new(LocalContainers::new(
        runtime(),
        CancellationToken::new(),
        &format!("kat-br-{test}-{}", std::process::id()),
    ))
}

/// A repo with one stub rpm, `stub-build-tools`, which the comps group `build` (and
/// `srpm-build`) lists, made with createrepo_c, served over HTTP on 127.0.0.1.
struct StubRepo {
    _dir: tempfile::TempDir,
    url: String,
}

fn stub_repo() -> StubRepo {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let spec = dir.path().join("stub.spec");
    std::fs::write(
        &spec,
        "Name: stub-build-tools\nVersion: 1\nRelease: 1\nSummary: stub\nLicense: MIT\n\
         BuildArch: noarch\nProvides: koji-adjutant-stub-tool = 2.0\n%description\nstub\n%files\n",
    )
    .unwrap();
    let status = std::process::Command::new("rpmbuild")
        .arg("-bb")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", dir.path().join("top").display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", repo.display()))
        .arg(&spec)
        .status()
        .unwrap();
    assert!(status.success());
    let comps = dir.path().join("comps.xml");
    let group = |id: &str| {
        format!(
            "<group><id>{id}</id><name>{id}</name><description>{id}</description>\
             <default>true</default><uservisible>true</uservisible><packagelist>\
             <packagereq type=\"mandatory\">stub-build-tools</packagereq></packagelist></group>"
        )
    };
    std::fs::write(
        &comps,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<comps>{}{}</comps>\n",
            group("build"),
            group("srpm-build")
        ),
    )
    .unwrap();
    let status = std::process::Command::new("createrepo_c")
        .arg("-q")
        .arg("-g")
        .arg(&comps)
        .arg(&repo)
        .status()
        .expect("createrepo_c on the host (apt-get install createrepo-c)");
    assert!(status.success());
    let url = serve(repo);
    StubRepo { _dir: dir, url }
}

/// A static file server on 127.0.0.1 for the life of the test process.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let path = path
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let file = root.join(path);
                let response = if !path.contains("..") && file.is_file() {
                    let body = std::fs::read(&file).unwrap();
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    head.extend(body);
                    head
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                };
                let _ = stream.write_all(&response);
            });
        }
    });
    url
}

fn spec(
    work_dir: &Path,
    arch: &str,
    repos: Vec<String>,
    settings: BuildrootSettings,
) -> BuildrootSpec {
    BuildrootSpec {
        image: IMAGE.into(),
        work_dir: work_dir.to_path_buf(),
        arch: arch.into(),
        tag_name: "test-build".into(),
        repo_id: Some(7),
        buildroot_id: Some(42),
        repo_urls: repos,
        install_group: InstallGroup::Build,
        tag_extra: TagExtra::default(),
        extra_macros: Vec::new(),
        settings,
    }
}

#[derive(Default)]
struct Lines {
    lines: std::sync::Mutex<Vec<String>>,
}

impl LogSink for Lines {
    fn line(&self, _: OutputStream, line: &str) {
        self.lines.lock().unwrap().push(line.to_owned());
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_group_comes_from_the_comps_repo_and_image_rpms_stay_off_the_hub_list() {
    let repo = stub_repo();
    let work = tempfile::tempdir().unwrap();
    let mut spec = spec(
        work.path(),
        "noarch",
        vec![repo.url.clone()],
        BuildrootSettings::default(),
    );
    spec.tag_extra = TagExtra(
        [
            ("rpm.macro.dist".to_owned(), serde_json::json!(".test1")),
            ("mock.yum.best".to_owned(), serde_json::json!(true)),
        ]
        .into_iter()
        .collect(),
    );
    let srpm = build_srpm("hello-noarch", &work.path().join("work"));
    let mut buildroot = Buildroot::init(containers("group"), spec, None)
        .await
        .unwrap();
    assert_eq!(buildroot.name(), "test-build-42-7");
    let installed = buildroot.installed_rpms().await.unwrap();
    let names: Vec<(&str, bool)> = installed
        .all
        .iter()
        .map(|r| (r.name.as_str(), r.from_image))
        .collect();
    assert_eq!(
        names,
        [
            ("debian-rootfs-provides", true),
            ("stub-build-tools", false)
        ]
    );
    let stub = &installed.all[1];
    assert_eq!(
        (
            stub.version.as_str(),
            stub.release.as_str(),
            stub.arch.as_str()
        ),
        ("1", "1", "noarch")
    );
    assert_eq!(stub.payloadhash.len(), 32, "sigmd5 hex: {stub:?}");
    assert!(stub.buildtime > 0);
    let for_hub: Vec<&str> = installed
        .for_hub()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(for_hub, ["stub-build-tools"]);
    assert_eq!(installed.image.as_ref().unwrap().image, IMAGE);

    let output = buildroot.build_rpms(&srpm).await.unwrap();
    let names: Vec<String> = output
        .rpms
        .iter()
        .chain(&output.srpms)
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "hello-noarch-1.0-1.test1.noarch.rpm",
            "hello-noarch-1.0-1.test1.src.rpm"
        ]
    );
    let logs: Vec<String> = buildroot.log_files().into_iter().map(|l| l.name).collect();
    for expected in [
        "mock_config.log",
        "mock_output.log",
        "state.log",
        "hw_info.log",
        "root.log",
        "build.log",
        "installed_pkgs.log",
        "image_rpms.log",
    ] {
        assert!(
            logs.iter().any(|l| l == expected),
            "{expected} missing: {logs:?}"
        );
    }
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();

    let root_log = read(log_dir.join("root.log"));
    assert!(root_log.contains("install @build"), "{root_log}");
    assert!(root_log.contains("stub-build-tools"), "{root_log}");
    let config = read(log_dir.join("mock_config.log"));
    assert!(
        config.contains(&format!(
            "[build]\nname=build\nbaseurl={}\nbest=1\n",
            repo.url
        )),
        "{config}"
    );
    assert!(config.contains("%dist .test1"), "{config}");
    let image_rpms = read(log_dir.join("image_rpms.log"));
    assert!(
        image_rpms.contains("debian-rootfs-provides-1-1.noarch"),
        "{image_rpms}"
    );
    // The log names the exact image the moving `:latest` tag pointed at.
    let inspect = |format: &str| {
        let output = std::process::Command::new("podman")
            .args(["image", "inspect", "--format", format, IMAGE])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let (id, digest) = (inspect("{{.Id}}"), inspect("{{.Digest}}"));
    assert!(!id.is_empty() && digest.starts_with("sha256:"));
    assert!(
        image_rpms.starts_with(&format!(
            "image: {IMAGE}\nimage id: {id}\nimage digest: {digest}\n"
        )),
        "{image_rpms}"
    );
    assert!(!image_rpms.contains("unknown"), "{image_rpms}");
    assert_eq!(
        installed.image.as_ref().map(|i| i.digest.as_str()),
        Some(id.as_str())
    );
    assert!(read(log_dir.join("installed_pkgs.log")).contains("stub-build-tools-1-1.noarch"));
    let state = read(log_dir.join("state.log"));
    for line in [
        "Start: init",
        "Finish: init",
        "Start: build",
        "Finish: build",
    ] {
        assert!(state.contains(line), "{line} missing in {state}");
    }
    assert!(read(log_dir.join("hw_info.log")).contains("CPU info:"));
    assert!(read(log_dir.join("build.log")).contains("Wrote:"));
}

#[tokio::test]
async fn image_rpms_can_be_attributed_to_an_operator_mapped_external_repo() {
    let repo = stub_repo();
    let work = tempfile::tempdir().unwrap();
    let external = ExternalRepoRef {
        id: 3,
        name: "builder-image".into(),
        url: "http://images.example/builder/".into(),
    };
    // The operator's mapping, as written in kojid.conf.
    let conf = work.path().join("kojid.conf");
    std::fs::write(
        &conf,
        "[kojid]\nserver = https://hub.example/kojihub\ntopurl = https://hub.example/kojifiles\n\
         [adjutant]\nimage_rpms_external_repo = 3:builder-image:http://images.example/builder/\n",
    )
    .unwrap();
    let config = koji_adjutant::config::load(&koji_adjutant::config::ConfigSource {
        path: Some(conf),
        ..Default::default()
    })
    .unwrap();
    let configured = BuildrootSettings::from_config(&config).unwrap();
    assert_eq!(
        configured.image_rpms,
        ImageRpmPolicy::AttributeTo(external.clone())
    );
    let settings = BuildrootSettings {
        image_rpms: configured.image_rpms,
        ..BuildrootSettings::default()
    };
    let buildroot = Buildroot::init(
        containers("attr"),
        spec(work.path(), "noarch", vec![repo.url.clone()], settings),
        None,
    )
    .await
    .unwrap();
    let installed = buildroot.installed_rpms().await.unwrap();
    buildroot.release().await.unwrap();
    assert!(installed.image.is_none());
    let hub: Vec<(&str, Option<i64>)> = installed
        .for_hub()
        .iter()
        .map(|r| (r.name.as_str(), r.external_repo.as_ref().map(|e| e.id)))
        .collect();
    assert_eq!(
        hub,
        [
            ("debian-rootfs-provides", Some(3)),
            ("stub-build-tools", None)
        ]
    );
    // In setBuildRootList shape: the hub resolves the image rpm through `location`.
    let list = koji_adjutant::handlers::build_arch::hub_rpm_list(&installed, None, &[]).unwrap();
    assert_eq!(list[0]["location"], serde_json::json!(3));
    assert_eq!(
        list[0]["external_repo"]["external_repo_name"],
        serde_json::json!("builder-image")
    );
    assert!(list[1].get("location").is_none(), "{list}");
}

/// Accepts connections on 127.0.0.1 and counts them.
fn listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, count)
}

#[tokio::test]
async fn the_build_step_has_no_network_and_runs_as_the_build_user() {
    let (port, connections) = listener();
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("net-probe", &work.path().join("work"));
    let mut isolated = spec(
        work.path(),
        "noarch",
        Vec::new(),
        BuildrootSettings::default(),
    );
    isolated.extra_macros = vec![("probe_port".into(), port.to_string())];
    let mut buildroot = Buildroot::init(containers("net"), isolated, None)
        .await
        .unwrap();
    let result = buildroot.build_rpms(&srpm).await;
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();
    let build_log = read(log_dir.join("build.log"));
    result.unwrap_or_else(|e| panic!("{e}\n{build_log}"));
    assert!(
        build_log.contains(&format!(
            "NETWORK-PROBE: cannot connect to 127.0.0.1:{port}"
        )),
        "{build_log}"
    );
    assert!(build_log.contains("BUILD-UID: 1000:1000"), "{build_log}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);

    // The control: the same package with the build network left on does connect, so the probe
    // can tell the difference; and another build_user is honoured.
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("net-probe", &work.path().join("work"));
    let settings = BuildrootSettings {
        build_network: BuildNetwork::SameAsBuildroot,
        build_user: UidGid {
            uid: 4321,
            gid: 4322,
        },
        ..BuildrootSettings::default()
    };
    let mut open = spec(work.path(), "noarch", Vec::new(), settings);
    open.extra_macros = vec![("probe_port".into(), port.to_string())];
    let mut buildroot = Buildroot::init(containers("net-open"), open, None)
        .await
        .unwrap();
    let result = buildroot.build_rpms(&srpm).await;
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();
    let build_log = read(log_dir.join("build.log"));
    assert!(
        matches!(result, Err(BuildrootError::Rpmbuild { .. })),
        "{result:?}"
    );
    assert!(
        build_log.contains("NETWORK-PROBE: connected"),
        "{build_log}"
    );
    assert!(build_log.contains("BUILD-UID: 4321:4322"), "{build_log}");
    assert!(connections.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_failing_build_gives_kojids_message_and_build_log_has_the_error() {
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("fails-build", &work.path().join("work"));
    let observer = Arc::new(Lines::default());
    let mut buildroot = Buildroot::init(
        containers("fail"),
        spec(
            work.path(),
            "noarch",
            Vec::new(),
            BuildrootSettings::default(),
        ),
        Some(observer.clone() as Arc<dyn LogSink>),
    )
    .await
    .unwrap();
    let error = buildroot.build_rpms(&srpm).await.unwrap_err();
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();
    assert_eq!(
        error.to_string(),
        "error building package (arch noarch), rpmbuild exited with status 1; see build.log for more information"
    );
    // The observer (the task's live tail) saw what mock_output.log got.
    let seen = observer.lines.lock().unwrap().join("\n");
    assert!(
        seen.contains("step rpmbuild exited with status 1"),
        "{seen}"
    );
    let mock_output = read(log_dir.join("mock_output.log"));
    assert!(
        mock_output.contains("step rpmbuild exited with status 1"),
        "{mock_output}"
    );
    let build_log = read(log_dir.join("build.log"));
    assert!(
        build_log.contains("FAILS-BUILD: deliberate failure in %build"),
        "{build_log}"
    );
    assert!(build_log.contains("Bad exit status"), "{build_log}");
}

#[tokio::test]
async fn a_missing_buildrequires_fails_in_the_install_phase_with_root_log_saying_why() {
    let repo = stub_repo();
    for (case, repos, why) in [
        (
            "repo",
            vec![repo.url.clone()],
            "No match for argument: koji-adjutant-no-such-package",
        ),
        (
            "norepo",
            Vec::new(),
            "koji-adjutant-no-such-package is needed by needs-missing",
        ),
    ] {
        let work = tempfile::tempdir().unwrap();
        let srpm = build_srpm("needs-missing", &work.path().join("work"));
        let mut buildroot = Buildroot::init(
            containers(&format!("missing-{case}")),
            spec(work.path(), "noarch", repos, BuildrootSettings::default()),
            None,
        )
        .await
        .unwrap();
        let error = buildroot.build_rpms(&srpm).await.unwrap_err();
        let log_dir = buildroot.logs().dir().to_path_buf();
        buildroot.release().await.unwrap();
        assert!(
            matches!(error, BuildrootError::BuildRequires { .. }),
            "{case}: {error}"
        );
        assert!(error.to_string().contains("see root.log"), "{error}");
        let root_log = read(log_dir.join("root.log"));
        assert!(root_log.contains(why), "{case}: {root_log}");
        let build_log = read(log_dir.join("build.log"));
        assert!(
            !build_log.contains("Executing(%build)"),
            "{case}: {build_log}"
        );
    }
}

#[tokio::test]
async fn installroot_mode_populates_the_buildroot_from_the_repo_alone() {
    let repo = stub_repo();
    let work = tempfile::tempdir().unwrap();
    let settings = BuildrootSettings {
        mode: BuildrootMode::Installroot,
        ..BuildrootSettings::default()
    };
    let buildroot = Buildroot::init(
        containers("installroot"),
        spec(work.path(), "noarch", vec![repo.url.clone()], settings),
        None,
    )
    .await
    .unwrap();
    let installed = buildroot.installed_rpms().await.unwrap();
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();
    let names: Vec<(&str, bool)> = installed
        .all
        .iter()
        .map(|r| (r.name.as_str(), r.from_image))
        .collect();
    // Only what the repo's group brought; the image's own rpmdb is not the buildroot's.
    assert_eq!(names, [("stub-build-tools", false)]);
    assert!(installed.image.is_none());
    assert!(read(log_dir.join("root.log")).contains("--installroot=/buildroot"));

    // Without a repo there is nothing to populate it from: a clear init error.
    let work = tempfile::tempdir().unwrap();
    let settings = BuildrootSettings {
        mode: BuildrootMode::Installroot,
        ..BuildrootSettings::default()
    };
    let error = Buildroot::init(
        containers("installroot-norepo"),
        spec(work.path(), "noarch", Vec::new(), settings),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("installroot mode needs a repo"),
        "{error}"
    );
}

#[tokio::test]
async fn a_step_past_its_limit_is_killed_and_named() {
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("net-probe", &work.path().join("work"));
    let settings = BuildrootSettings {
        // Enough for nothing but the tiniest step: rpmbuild's start-up alone takes longer.
        rpmbuild_timeout: Duration::from_millis(1),
        ..BuildrootSettings::default()
    };
    let mut buildroot = Buildroot::init(
        containers("timeout"),
        spec(work.path(), "noarch", Vec::new(), settings),
        None,
    )
    .await
    .unwrap();
    let error = buildroot.build_rpms(&srpm).await.unwrap_err();
    buildroot.release().await.unwrap();
    assert!(matches!(error, BuildrootError::Timeout { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("rpmbuild-srpm ran longer than its limit"),
        "{error}"
    );
}

#[tokio::test]
async fn an_srpm_outside_the_work_dir_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let srpm = build_srpm("hello-noarch", elsewhere.path());
    let mut buildroot = Buildroot::init(
        containers("outside"),
        spec(
            work.path(),
            "noarch",
            Vec::new(),
            BuildrootSettings::default(),
        ),
        None,
    )
    .await
    .unwrap();
    let error = buildroot.build_rpms(&srpm).await.unwrap_err();
    buildroot.release().await.unwrap();
    assert!(
        matches!(error, BuildrootError::InvalidInput { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_cancelled_build_stops_at_once_and_names_the_step() {
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("net-probe", &work.path().join("work"));
    let mut probe = spec(
        work.path(),
        "noarch",
        Vec::new(),
        BuildrootSettings::default(),
    );
    probe.extra_macros = vec![("build_sleep".into(), "120".into())];
    let cancel = CancellationToken::new();
    let containers = Arc::new(LocalContainers::new(
        runtime(),
        cancel.clone(),
        &format!("kat-br-cancel-{}", std::process::id()),
    ));
    let mut buildroot = Buildroot::init(containers, probe, None).await.unwrap();
    let log_dir = buildroot.logs().dir().to_path_buf();
    let canceller = tokio::spawn(async move {
        // Wait until rpmbuild is in %build, sleeping.
        for _ in 0..600 {
            let log = std::fs::read_to_string(log_dir.join("build.log")).unwrap_or_default();
            if log.contains("NETWORK-PROBE") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cancel.cancel();
        std::time::Instant::now()
    });
    let error = buildroot.build_rpms(&srpm).await.unwrap_err();
    let cancelled_at = canceller.await.unwrap();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(30),
        "the build went on for {:?} after the cancel",
        cancelled_at.elapsed()
    );
    assert!(matches!(error, BuildrootError::Cancelled { .. }), "{error}");
    assert_eq!(error.to_string(), "the build was cancelled during rpmbuild");
    buildroot.release().await.unwrap();
}

#[tokio::test]
async fn rebuild_srpm_in_an_srpm_build_buildroot_applies_the_tag_macros() {
    let repo = stub_repo();
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("hello-c", &work.path().join("work"));
    let mut srpm_spec = spec(
        work.path(),
        "noarch",
        vec![repo.url.clone()],
        BuildrootSettings::default(),
    );
    srpm_spec.install_group = InstallGroup::SrpmBuild;
    srpm_spec.tag_extra = TagExtra(
        [("rpm.macro.dist".to_owned(), serde_json::json!(".srpm1"))]
            .into_iter()
            .collect(),
    );
    let mut buildroot = Buildroot::init(containers("srpm"), srpm_spec, None)
        .await
        .unwrap();
    let output = buildroot.build_srpm(&srpm).await;
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();
    let build_log = read(log_dir.join("build.log"));
    let output = output.unwrap_or_else(|e| panic!("{e}\n{build_log}"));
    assert_eq!(
        output.srpm.file_name().unwrap().to_string_lossy(),
        "hello-c-1.0-1.srpm1.src.rpm"
    );
    assert!(output.srpm.starts_with(work.path()));
    assert!(read(log_dir.join("root.log")).contains("install @srpm-build"));
    // rebuildSRPM never compiles: no %build ran.
    assert!(!build_log.contains("Executing(%build)"), "{build_log}");
}

#[tokio::test]
async fn a_missing_image_under_pull_never_fails_init_and_says_so() {
    let work = tempfile::tempdir().unwrap();
    let settings = BuildrootSettings {
        pull_policy: koji_adjutant_actors::runtime::PullPolicy::Never,
        ..BuildrootSettings::default()
    };
    let mut missing = spec(work.path(), "noarch", Vec::new(), settings);
    missing.image = "localhost/koji-adjutant-no-such-image:1".into();
    let error = Buildroot::init(containers("noimage"), missing, None)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("localhost/koji-adjutant-no-such-image:1") && text.contains("never"),
        "{text}"
    );
    // The failure is in the worker's own log of the task too.
    let mock_output = read(work.path().join("logs/mock_output.log"));
    assert!(
        mock_output.contains("buildroot init failed"),
        "{mock_output}"
    );
}
