//! The buildroot engine against real podman, the real builder image and real rpmbuild.
//!
//! Needs root, podman and `localhost/koji-adjutant-builder:latest` (scripts/setup-dev.sh,
//! scripts/build-image.sh), and rpmbuild + createrepo_c on the host. Every test uses its own
//! container names (LocalContainers with a unique prefix) and its own temp dirs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use koji_adjutant::buildroot::{
    BuildNetwork, Buildroot, BuildrootError, BuildrootMode, BuildrootSettings, BuildrootSpec,
    ExternalRepoRef, ImageRpmPolicy, InstallGroup, LocalContainers, TagExtra, UidGid,
};
use koji_adjutant::podman::{PodmanOptions, PodmanRuntime};
use koji_adjutant_actors::runtime::{ContainerRuntime, LogSink, Mount, OutputStream};
use tokio_util::sync::CancellationToken;

#[path = "support/srpm.rs"]
mod srpm;
use srpm::{build_srpm, build_srpm_from};
#[path = "support/static_http.rs"]
mod static_http;
use static_http::serve;
#[path = "support/distro_repo.rs"]
mod distro_repo;
use distro_repo::distro_repo;

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

// ---------------------------------------------------------------------------------------------
// installroot mode with a real distribution: the builder image's Debian userland repackaged as
// rpms (tests/support/distro_repo.rs), served on 127.0.0.1.
// ---------------------------------------------------------------------------------------------

/// The distribution repo's URL; made and served once per test process.
fn distro_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| serve(distro_repo(IMAGE).dir.clone()))
}

fn installroot_settings() -> BuildrootSettings {
    BuildrootSettings {
        mode: BuildrootMode::Installroot,
        ..BuildrootSettings::default()
    }
}

/// `rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH}'` on the host.
fn rpm_query(path: &Path) -> String {
    let output = std::process::Command::new("rpm")
        .args(["-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rpm -qp {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The ELF machine number of `arch` (`e_machine`).
fn elf_machine(arch: &str) -> u16 {
    match arch {
        "x86_64" => 62,
        "aarch64" => 183,
        "ppc64le" => 21,
        "s390x" => 22,
        other => panic!("no ELF machine number known for {other}"),
    }
}

/// The bytes of `path` in `rpm`: `rpm2cpio` on the host, then the newc archive read here
/// (the host has no cpio).
fn file_in_rpm(rpm: &Path, path: &str) -> Vec<u8> {
    let output = std::process::Command::new("rpm2cpio")
        .arg(rpm)
        .output()
        .unwrap();
    assert!(output.status.success(), "rpm2cpio {}", rpm.display());
    let archive = output.stdout;
    let field = |at: usize| {
        let hex = std::str::from_utf8(&archive[at..at + 8]).unwrap();
        usize::from_str_radix(hex, 16).unwrap()
    };
    let align = |n: usize| (n + 3) & !3;
    let mut at = 0;
    while at + 110 <= archive.len() {
        assert_eq!(&archive[at..at + 6], b"070701", "not a newc cpio archive");
        let (size, name_size) = (field(at + 54), field(at + 94));
        let name = std::str::from_utf8(&archive[at + 110..at + 110 + name_size - 1]).unwrap();
        let data = align(at + 110 + name_size);
        if name == "TRAILER!!!" {
            break;
        }
        if name.trim_start_matches('.') == path {
            return archive[data..data + size].to_vec();
        }
        at = align(data + size);
    }
    panic!("{path} is not in {}", rpm.display())
}

/// The distribution repo as a Koji repo's `rpmlist.jsonl` would list it: NVRA → id and the
/// header's SIGMD5, read on the host from the rpm files.
fn repo_rpmlist() -> &'static std::collections::HashMap<String, serde_json::Value> {
    static LIST: OnceLock<std::collections::HashMap<String, serde_json::Value>> = OnceLock::new();
    LIST.get_or_init(|| {
        let dir = &distro_repo(IMAGE).dir;
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg("rpm -qp --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH} %{SIGMD5}\\n' \"$1\"/*.rpm")
            .arg("sh")
            .arg(dir)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .enumerate()
            .map(|(id, line)| {
                let (nvra, sigmd5) = line.split_once(' ').unwrap();
                (
                    nvra.to_owned(),
                    serde_json::json!({"id": id + 1, "payloadhash": sigmd5}),
                )
            })
            .collect()
    })
}

/// Asserts that every installed rpm came from the distribution repo and all of them go to
/// the hub (there is no image rpm in an installroot).
fn assert_only_repo_rpms(installed: &koji_adjutant::buildroot::InstalledRpms) -> Vec<String> {
    let repo = &distro_repo(IMAGE).packages;
    let names: Vec<String> = installed.all.iter().map(|r| r.name.clone()).collect();
    for name in &names {
        assert!(repo.contains(name), "{name} is not in the repo: {names:?}");
    }
    assert!(installed.all.iter().all(|r| !r.from_image));
    assert!(installed.image.is_none());
    assert_eq!(installed.for_hub().len(), installed.all.len());
    names
}

#[tokio::test]
async fn installroot_builds_the_noarch_and_the_c_srpm_from_a_distribution_repo() {
    let host_arch = std::env::consts::ARCH;
    for (package, arch) in [("hello-noarch", "noarch"), ("hello-c", host_arch)] {
        let work = tempfile::tempdir().unwrap();
        let srpm = build_srpm(package, &work.path().join("work"));
        let mut spec = spec(
            work.path(),
            host_arch,
            vec![distro_url().to_owned()],
            installroot_settings(),
        );
        spec.tag_extra = TagExtra(
            [("rpm.macro.dist".to_owned(), serde_json::json!(".ir1"))]
                .into_iter()
                .collect(),
        );
        let started = std::time::Instant::now();
        let mut buildroot = Buildroot::init(containers(&format!("ir-{package}")), spec, None)
            .await
            .unwrap_or_else(|e| {
                let root_log = std::fs::read_to_string(work.path().join("logs/root.log"));
                panic!("{package}: {e}\n{}", root_log.unwrap_or_default())
            });
        let before = buildroot.installed_rpms().await.unwrap();
        let output = buildroot.build_rpms(&srpm).await;
        let after = buildroot.installed_rpms().await.unwrap();
        let log_dir = buildroot.logs().dir().to_path_buf();
        buildroot.release().await.unwrap();
        eprintln!(
            "{package}: init + build in installroot mode took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let build_log = read(log_dir.join("build.log"));
        let root_log = read(log_dir.join("root.log"));
        let output = output.unwrap_or_else(|e| panic!("{e}\n{root_log}\n{build_log}"));

        let names: Vec<String> = output
            .rpms
            .iter()
            .chain(&output.srpms)
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                format!("{package}-1.0-1.ir1.{arch}.rpm"),
                format!("{package}-1.0-1.ir1.src.rpm")
            ]
        );
        assert_eq!(
            rpm_query(&output.rpms[0]),
            format!("{package} 1.0 1.ir1 {arch}")
        );
        assert!(
            build_log.contains("Wrote: /builddir/build/RPMS/"),
            "{build_log}"
        );
        // rpmbuild ran chrooted into the installroot (see also the root-probe test).
        assert!(
            build_log.contains("unshare --user --map-root-user --net --mount")
                && build_log.contains("--root=$R --wd=/builddir"),
            "{build_log}"
        );

        // The buildroot is the repo's group and nothing else; the image's rpmdb (with its
        // debian-rootfs-provides) is not in it.
        // As the hub checks setBuildRootList: every installed rpm is one of the repo's, by
        // NVRA and payload hash, so each gets the repo's rpm id.
        let list =
            koji_adjutant::handlers::build_arch::hub_rpm_list(&after, Some(repo_rpmlist()), &[])
                .unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), after.all.len());
        for entry in list {
            assert!(entry.get("id").is_some(), "not a repo rpm: {entry}");
            assert!(entry.get("external_repo").is_none(), "{entry}");
        }
        let before = assert_only_repo_rpms(&before);
        let after = assert_only_repo_rpms(&after);
        for needed in ["filesystem", "bash", "dash", "coreutils", "rpm", "tar"] {
            assert!(before.iter().any(|n| n == needed), "{needed}: {before:?}");
        }
        assert!(!before.iter().any(|n| n == "debian-rootfs-provides"));
        assert!(
            root_log.contains("'--installroot=/buildroot' install @build"),
            "{root_log}"
        );
        if package == "hello-c" {
            // gcc and make are not in @build: the SRPM's BuildRequires brought them, from the
            // repo, into the installroot.
            for brought in ["gcc", "gcc-12", "make", "libc6-dev", "binutils"] {
                assert!(
                    !before.iter().any(|n| n == brought),
                    "{brought}: {before:?}"
                );
                assert!(after.iter().any(|n| n == brought), "{brought}: {after:?}");
            }
            assert!(
                root_log.contains("BuildRequires of hello-c-1.0-1.ir1.src.rpm: gcc make"),
                "{root_log}"
            );
            let binary = file_in_rpm(&output.rpms[0], "/usr/bin/hello-c");
            assert_eq!(&binary[..4], b"\x7fELF", "not an ELF file");
            assert_eq!(binary[4], 2, "not a 64-bit ELF file");
            assert_eq!(
                u16::from_le_bytes([binary[18], binary[19]]),
                elf_machine(host_arch)
            );
        } else {
            assert_eq!(
                before, after,
                "a noarch build with no BuildRequires installs nothing"
            );
        }
        assert!(read(log_dir.join("installed_pkgs.log")).contains("filesystem-1-1."));
    }
}

/// A package whose %build reports what the build sees: who owns /bin/sh in the rpmdb it
/// reads, whether the image's dnf is there, its uid and %_topdir, and /dev/null as the repo's
/// rpm %post scriptlet found it during the install.
const ROOT_PROBE_SPEC: &str = "Name: root-probe\nVersion: 1\nRelease: 1\nSummary: probe\n\
License: MIT\nBuildArch: noarch\nBuildRequires: procps\n%description\nprobe\n%prep\n%build\n\
echo \"ROOT-PROBE sh: $(rpm -qf --qf '%%{NAME}' /usr/bin/sh 2>&1)\"\n\
echo \"ROOT-PROBE dnf: $(test -e /usr/bin/dnf && echo present || echo absent)\"\n\
echo \"ROOT-PROBE uid: $(id -u)\"\necho \"ROOT-PROBE topdir: %{_topdir} cwd: $PWD\"\n\
echo \"ROOT-PROBE rpm %%post saw /dev/null: $(cat /var/lib/rpm-post-dev-null 2>&1)\"\n\
echo \"ROOT-PROBE /dev/null now: $(test -c /dev/null && echo device || echo 'not a device')\"\n\
echo \"ROOT-PROBE /dev/shm: $(echo x > /dev/shm/root-probe && echo writable)\"\n\
echo \"ROOT-PROBE fd: $(ls /proc/self/fd 2>&1 | head -1)\"\n\
echo \"ROOT-PROBE cpuinfo: $(cat /proc/cpuinfo 2>&1 | head -1 | cut -c1-9)\"\n\
echo \"ROOT-PROBE process substitution: $(bash -c 'cat <(echo ok)' 2>&1)\"\n\
echo \"ROOT-PROBE ps: $(ps -e -o comm= 2>&1 | tr '\\n' ' ')\"\n\
echo \"ROOT-PROBE ps pids: $(ps -e -o pid= 2>&1 | wc -l)\"\n\
echo \"ROOT-PROBE /sys: $(test -d /sys/class && echo mounted) $(touch /sys/root-probe 2>/dev/null && echo writable || echo read-only)\"\n\
echo \"ROOT-PROBE /proc/sys: $( (echo probe > /proc/sys/kernel/domainname) 2>/dev/null && echo writable || echo 'not writable')\"\n\
echo \"ROOT-PROBE sysrq-trigger: $( (echo h > /proc/sysrq-trigger) 2>/dev/null && echo writable || echo 'not writable')\"\n\
%files\n";

#[tokio::test]
async fn installroot_build_steps_run_chrooted_in_the_installroot() {
    // The test image has no mount(8), so the first installroot run mounts /proc with the
    // python3 fallback; the second gets the host's util-linux mount bound in, as a Fedora
    // image has it, and takes the mount(8) path.
    let has_mount = std::process::Command::new("podman")
        .args(["run", "--rm", "--network=none", IMAGE, "sh", "-c"])
        .arg("command -v mount")
        .status()
        .unwrap();
    assert!(
        !has_mount.success(),
        "{IMAGE} has mount(8) now: the python3 path is untested"
    );
    let host_mount = Mount {
        source: PathBuf::from("/usr/bin/mount"),
        target: PathBuf::from("/usr/local/bin/mount"),
        read_only: true,
    };
    let sources = tempfile::tempdir().unwrap();
    std::fs::write(sources.path().join("root-probe.spec"), ROOT_PROBE_SPEC).unwrap();
    let mut logs = Vec::new();
    let distro = || vec![distro_url().to_owned()];
    for (case, mode, repos, mounts, installroot_proc) in [
        (
            "python3",
            BuildrootMode::Installroot,
            distro(),
            Vec::new(),
            true,
        ),
        (
            "mount",
            BuildrootMode::Installroot,
            distro(),
            vec![host_mount],
            true,
        ),
        // installroot_proc = false: a plain chroot, as before /proc was mounted.
        (
            "no-proc",
            BuildrootMode::Installroot,
            distro(),
            Vec::new(),
            false,
        ),
        // The control: the same probe in image mode sees the image.
        ("image", BuildrootMode::Image, Vec::new(), Vec::new(), true),
    ] {
        let work = tempfile::tempdir().unwrap();
        let srpm = build_srpm_from(sources.path(), "root-probe", &work.path().join("work"));
        let settings = BuildrootSettings {
            mode,
            mounts,
            installroot_proc,
            ..BuildrootSettings::default()
        };
        let mut buildroot = Buildroot::init(
            containers(&format!("probe-{case}")),
            spec(work.path(), "noarch", repos, settings),
            None,
        )
        .await
        .unwrap_or_else(|e| {
            let root_log = std::fs::read_to_string(work.path().join("logs/root.log"));
            panic!("{case}: {e}\n{root_log:?}")
        });
        let result = buildroot.build_rpms(&srpm).await;
        let log_dir = buildroot.logs().dir().to_path_buf();
        buildroot.release().await.unwrap();
        let build_log = read(log_dir.join("build.log"));
        result.unwrap_or_else(|e| panic!("{case}: {e}\n{build_log}"));
        logs.push(build_log);
    }
    let [python3, mount, no_proc, image] = &logs[..] else {
        unreachable!()
    };
    // The probe can tell: without the mounts the same %build finds no /proc.
    assert!(no_proc.contains("ROOT-PROBE sh: dash"), "{no_proc}");
    assert!(!no_proc.contains("ROOT-PROBE fd: 0"), "{no_proc}");
    assert!(
        !no_proc.contains("ROOT-PROBE process substitution: ok"),
        "{no_proc}"
    );
    for installroot in [python3, mount] {
        // rpmbuild reads the installroot's rpmdb (dash owns /bin/sh there) and its files (no
        // dnf: the repo has none), as build_user, with the buildroot's %_topdir.
        for line in [
            "ROOT-PROBE sh: dash",
            "ROOT-PROBE dnf: absent",
            "ROOT-PROBE uid: 1000",
            "ROOT-PROBE topdir: /builddir/build cwd: /builddir/build/BUILD",
            // The repo's rpm package has a %post: rpm ran it chrooted during the group
            // install, and it found mock's /dev/null there already.
            "ROOT-PROBE rpm %post saw /dev/null: device",
            "ROOT-PROBE /dev/null now: device",
            "ROOT-PROBE /dev/shm: writable",
            // /proc and /sys are mounted, as mock mounts them.
            "ROOT-PROBE fd: 0",
            "ROOT-PROBE cpuinfo: processor",
            "ROOT-PROBE process substitution: ok",
            "ROOT-PROBE /sys: mounted read-only",
            // The build user cannot change the kernel through them.
            "ROOT-PROBE /proc/sys: not writable",
            "ROOT-PROBE sysrq-trigger: not writable",
        ] {
            assert!(installroot.contains(line), "{line} missing:\n{installroot}");
        }
        // ps sees the container's pid namespace, which holds this build alone: its init,
        // the build's own processes and ps itself; none of the host's (this test, podman).
        let ps = probe_value(installroot, "ROOT-PROBE ps: ");
        let commands: Vec<&str> = ps.split_whitespace().collect();
        assert!(commands.contains(&"ps"), "{ps}");
        assert!(commands.contains(&"rpmbuild"), "{ps}");
        // The container's own: its init (podman-init) and its main process (sleep).
        assert!(commands.contains(&"podman-init"), "{ps}");
        for host in ["podman", "conmon", "cargo", "systemd", "runc", "crun"] {
            assert!(!commands.contains(&host), "{host} in {ps}");
        }
        assert!(
            !commands.iter().any(|c| c.starts_with("buildroot-")),
            "{ps}"
        );
        let pids: usize = probe_value(installroot, "ROOT-PROBE ps pids: ")
            .trim()
            .parse()
            .unwrap();
        assert!((3..20).contains(&pids), "{pids} processes: {ps}");
    }
    assert!(image.contains("ROOT-PROBE dnf: present"), "{image}");
    assert!(!image.contains("ROOT-PROBE sh: dash"), "{image}");
}

/// The rest of the line after `prefix` in a build log.
fn probe_value<'a>(log: &'a str, prefix: &str) -> &'a str {
    log.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{log}"))
}

#[tokio::test]
async fn installroot_build_step_has_no_network_either() {
    let (port, connections) = listener();
    for (case, build_network) in [
        ("isolated", BuildNetwork::Isolated),
        ("open", BuildNetwork::SameAsBuildroot),
    ] {
        let work = tempfile::tempdir().unwrap();
        let srpm = build_srpm("net-probe", &work.path().join("work"));
        let settings = BuildrootSettings {
            build_network: build_network.clone(),
            ..installroot_settings()
        };
        let mut probe = spec(
            work.path(),
            "noarch",
            vec![distro_url().to_owned()],
            settings,
        );
        probe.extra_macros = vec![("probe_port".into(), port.to_string())];
        let mut buildroot = Buildroot::init(containers(&format!("ir-net-{case}")), probe, None)
            .await
            .unwrap();
        let result = buildroot.build_rpms(&srpm).await;
        let log_dir = buildroot.logs().dir().to_path_buf();
        buildroot.release().await.unwrap();
        let build_log = read(log_dir.join("build.log"));
        match build_network {
            BuildNetwork::Isolated => {
                result.unwrap_or_else(|e| panic!("{e}\n{build_log}"));
                assert!(
                    build_log.contains(&format!(
                        "NETWORK-PROBE: cannot connect to 127.0.0.1:{port}"
                    )),
                    "{build_log}"
                );
                assert_eq!(connections.load(Ordering::SeqCst), 0);
            }
            BuildNetwork::SameAsBuildroot => {
                // The control: the probe can tell, so the isolated run proves something.
                assert!(
                    matches!(result, Err(BuildrootError::Rpmbuild { .. })),
                    "{result:?}"
                );
                assert!(
                    build_log.contains("NETWORK-PROBE: connected"),
                    "{build_log}"
                );
                assert!(connections.load(Ordering::SeqCst) >= 1);
            }
        }
        assert!(build_log.contains("BUILD-UID: 1000:1000"), "{build_log}");
    }
}

#[tokio::test]
async fn installroot_rebuilds_an_srpm_in_an_srpm_build_installroot() {
    let work = tempfile::tempdir().unwrap();
    let srpm = build_srpm("hello-c", &work.path().join("work"));
    let mut srpm_spec = spec(
        work.path(),
        "noarch",
        vec![distro_url().to_owned()],
        installroot_settings(),
    );
    srpm_spec.install_group = InstallGroup::SrpmBuild;
    srpm_spec.tag_extra = TagExtra(
        [("rpm.macro.dist".to_owned(), serde_json::json!(".irs1"))]
            .into_iter()
            .collect(),
    );
    let mut buildroot = Buildroot::init(containers("ir-srpm"), srpm_spec, None)
        .await
        .unwrap();
    let installed = buildroot.installed_rpms().await.unwrap();
    let output = buildroot.build_srpm(&srpm).await;
    let log_dir = buildroot.logs().dir().to_path_buf();
    buildroot.release().await.unwrap();
    let build_log = read(log_dir.join("build.log"));
    let output = output.unwrap_or_else(|e| panic!("{e}\n{build_log}"));
    assert_eq!(
        output.srpm.file_name().unwrap().to_string_lossy(),
        "hello-c-1.0-1.irs1.src.rpm"
    );
    // A valid rpm whose header agrees with its name.
    assert!(
        rpm_query(&output.srpm).starts_with("hello-c 1.0 1.irs1 "),
        "{}",
        rpm_query(&output.srpm)
    );
    assert!(read(log_dir.join("root.log")).contains("install @srpm-build"));
    assert!(
        build_log.contains("--root=$R --wd=/builddir"),
        "{build_log}"
    );
    // @srpm-build is smaller than @build: no compiler, no python.
    let names = assert_only_repo_rpms(&installed);
    assert!(names.iter().any(|n| n == "rpm"), "{names:?}");
    for absent in ["gcc-12", "python3-minimal", "patch"] {
        assert!(!names.iter().any(|n| n == absent), "{absent}: {names:?}");
    }
}
