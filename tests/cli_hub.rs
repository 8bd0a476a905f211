//! `hub-call` and the hub checks of `doctor`, run as the real binary against the fake hub.

use std::process::Command;

use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig};

async fn fake_hub() -> FakeHub {
    FakeHub::start(FakeHubConfig {
        hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
        ..FakeHubConfig::default()
    })
    .await
    .expect("the fake hub starts")
}

fn config_for(hub_url: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kojid.conf");
    let text = format!(
        "[kojid]\nserver = {hub_url}\ntopurl = http://127.0.0.1:1/kojifiles\nuser = builder1.local\npassword = builder\nworkdir = {work}\nmockdir = {work}\nminspace = 1\n",
        work = dir.display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the binary off the async runtime, so the in-process hub keeps serving.
async fn koji_adjutant(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_koji-adjutant"))
            .args(&args)
            .output()
            .expect("run koji-adjutant")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_call_prints_the_result_as_json_and_fails_clearly_on_a_fault() {
    let hub = fake_hub().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(&hub.url(), dir.path());
    let config = config.display().to_string();

    let output = koji_adjutant(vec![
        "hub-call".into(),
        "-c".into(),
        config.clone(),
        "host.getHost".into(),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let host: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(host["name"], "builder1.local");
    assert_eq!(host["arches"], "noarch x86_64");

    // Keyword arguments travel as the trailing __starstar object.
    let output = koji_adjutant(vec![
        "hub-call".into(),
        "-c".into(),
        config.clone(),
        "echo".into(),
        r#"[1, "two", {"__starstar": true}]"#.into(),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let echoed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(echoed, serde_json::json!([1, "two"]));

    let output = koji_adjutant(vec![
        "hub-call".into(),
        "-c".into(),
        config.clone(),
        "noSuchMethod".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Invalid method: noSuchMethod"), "{stderr}");

    let output = koji_adjutant(vec![
        "hub-call".into(),
        "-c".into(),
        config,
        "echo".into(),
        "[1,".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_hub_login_and_host() {
    let hub = fake_hub().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(&hub.url(), dir.path()).display().to_string();

    let output = koji_adjutant(vec![
        "doctor".into(),
        "-c".into(),
        config.clone(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    let checks: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON checks");
    let status_of = |name: &str| {
        checks
            .iter()
            .find(|check| check["name"] == name)
            .map(|check| check["status"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        status_of("hub-reachable").as_deref(),
        Some("ok"),
        "{checks:#?}"
    );
    assert_eq!(status_of("hub-login").as_deref(), Some("ok"), "{checks:#?}");
    assert_eq!(status_of("hub-host").as_deref(), Some("ok"), "{checks:#?}");

    // A wrong password is a failed login, and doctor exits non-zero.
    let bad = std::fs::read_to_string(&config)
        .expect("read")
        .replace("password = builder", "password = wrong");
    std::fs::write(&config, bad).expect("write");
    let output = koji_adjutant(vec![
        "doctor".into(),
        "-c".into(),
        config.clone(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let checks: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON checks");
    let login = checks
        .iter()
        .find(|check| check["name"] == "hub-login")
        .expect("a login check");
    assert_eq!(login["status"], "fail", "{checks:#?}");

    // --offline leaves the hub alone.
    let output = koji_adjutant(vec![
        "doctor".into(),
        "-c".into(),
        config,
        "--offline".into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    let checks: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON checks");
    assert!(checks.iter().all(|check| {
        !check["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("hub")
    }));
}
