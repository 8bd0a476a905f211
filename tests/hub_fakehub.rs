//! The hub client against the fake hub (`tests/fakehub`), which enforces kojihub's rules:
//! callnum order, exclusive sessions, expiry and renewal, task ownership, upload paths.

use std::sync::Arc;
use std::time::Duration;

use dxr::Value;
use koji_adjutant::doctor::CheckStatus;
use koji_adjutant::hub::client::HubClient;
use koji_adjutant::hub::fault::FaultKind;
use koji_adjutant::hub::ops::{doctor_checks, hub_call};
use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::hub::session::{HubConnection, Session};
use koji_adjutant::hub::upload::{IncrementalUpload, UploadError, UploadTarget};
use koji_adjutant::hub::xmlrpc::MulticallEntry;
use koji_fakehub::{
    Action, FakeHub, FakeHubConfig, HostConfig, Injection, NewTask, UploadCorruption,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;

async fn fake_hub() -> FakeHub {
    FakeHub::start(FakeHubConfig {
        hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
        ..FakeHubConfig::default()
    })
    .await
    .unwrap()
}

fn options(hub: &FakeHub) -> HubOptions {
    HubOptions {
        server: hub.url(),
        user: Some("builder1.local".to_owned()),
        password: Some("builder".to_owned()),
        max_retries: 3,
        retry_interval: Duration::from_secs(60),
        offline_retry_interval: Duration::from_secs(120),
        ..HubOptions::default()
    }
}

async fn worker(hub: &FakeHub) -> HubClient {
    HubClient::connect(options(hub), CancellationToken::new())
        .await
        .unwrap()
}

/// A task OPEN on this host, so that uploads into its directory are allowed.
async fn open_task(hub: &FakeHub, client: &HubClient) -> i64 {
    let host_id = client.host_get_id().await.unwrap();
    let mut task = NewTask::new("sleep", vec![Value::Integer(1)]);
    task.assign = Some(host_id);
    let id = hub.create_task(task).unwrap();
    let opened = client
        .host_open_task(id)
        .await
        .unwrap()
        .expect("the hub opens an assigned task");
    assert_eq!(opened.id, id);
    id
}

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn login_exclusive_session_and_host_calls() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    assert_eq!(client.host_get_id().await.unwrap(), 1);
    let info = client.get_session_info().await.unwrap();
    assert_eq!(info.exclusive, Some(true));
    let host = client.host_get_host().await.unwrap();
    assert_eq!(host.name, "builder1.local");
    client.host_update_host(0.0, true, None).await.unwrap();
    assert!(client.host_get_tasks().await.unwrap().is_empty());
    client.logout().await.unwrap();
    assert_eq!(
        hub.called_methods(),
        [
            "login",
            "exclusiveSession",
            "host.getID",
            "getSessionInfo",
            "host.getHost",
            "host.updateHost",
            "host.getTasks",
            "logout"
        ]
    );
}

#[tokio::test]
async fn a_second_worker_takes_the_lock_over_and_the_first_is_shut_out() {
    let hub = fake_hub().await;
    let first = worker(&hub).await;
    let _second = worker(&hub).await;
    let error = first.host_get_id().await.unwrap_err();
    assert!(
        error.fault().is_some_and(|f| f.kind.is_auth_error()),
        "{error}"
    );
}

#[tokio::test]
async fn many_calls_keep_the_callnum_order_the_hub_enforces() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    for weight in 0..20 {
        client
            .host_set_task_weight(task, f64::from(weight) / 10.0)
            .await
            .unwrap();
    }
    let sub = client.subsession().await.unwrap();
    for _ in 0..5 {
        sub.host_get_id().await.unwrap();
        client.host_get_id().await.unwrap();
    }
}

#[tokio::test]
async fn expired_sessions_are_renewed_and_keep_the_lock() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let sub = client.subsession().await.unwrap();
    let main_id = client.session().info().await.unwrap().session_id;
    let old_key = client.session().info().await.unwrap().session_key;
    hub.expire_session(main_id);
    // The main session renews and replays; the lock survives (host.* still works).
    assert_eq!(client.host_get_id().await.unwrap(), 1);
    let renewed = client.session().info().await.unwrap();
    assert_eq!(renewed.session_id, main_id);
    assert_ne!(renewed.session_key, old_key);
    assert_eq!(
        client.get_session_info().await.unwrap().exclusive,
        Some(true)
    );
    // The subsession expired with its master, and renews the same way.
    assert_eq!(sub.host_get_id().await.unwrap(), 1);
    let methods = hub.called_methods();
    assert_eq!(
        methods.iter().filter(|m| *m == "login").count(),
        3,
        "{methods:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn offline_hub_is_waited_out_on_the_virtual_clock() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    hub.offline_for(Duration::from_secs(300));
    let start = Instant::now();
    assert_eq!(client.host_get_id().await.unwrap(), 1);
    assert_eq!(
        start.elapsed().as_secs(),
        360,
        "tries at 0, 120, 240, success at 360"
    );
}

#[tokio::test(start_paused = true)]
async fn http_errors_and_dropped_connections_are_retried() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    hub.inject(Injection::method(
        "host.getHost",
        Some(2),
        Action::HttpStatus(502),
    ));
    let start = Instant::now();
    client.host_get_host().await.unwrap();
    assert_eq!(
        start.elapsed().as_secs(),
        60,
        "first retry immediate, second after retry_interval"
    );
    hub.inject(Injection::method(
        "host.getID",
        Some(1),
        Action::DropConnection,
    ));
    let start = Instant::now();
    client.host_get_id().await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    hub.inject(Injection::method(
        "host.getID",
        Some(1),
        Action::MalformedXml,
    ));
    client.host_get_id().await.unwrap();
}

#[tokio::test]
async fn uploads_of_edge_sizes_land_byte_for_byte() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    let dir = tempfile::tempdir().unwrap();
    for (index, size) in [0, 1, MIB, MIB + 1, 3 * MIB, 3_153_291]
        .into_iter()
        .enumerate()
    {
        let name = format!("file-{size}.rpm");
        let local = dir.path().join(&name);
        let data = pseudo_random(size, index as u32 + 1);
        std::fs::write(&local, &data).unwrap();
        let summary = client
            .upload_file(&local, &UploadTarget::for_task(task, &[], &name).unwrap())
            .await
            .unwrap();
        assert_eq!(summary.bytes, size as u64);
        assert_eq!(summary.chunks as usize, size.div_ceil(MIB).max(1));
        assert!(hub.task_output(task, &name).unwrap() == data, "size {size}");
    }
}

#[tokio::test]
async fn upload_rules_of_the_hub_surface_as_faults() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.log");
    std::fs::write(&local, b"first").unwrap();
    let target = UploadTarget::for_task(task, &[], "x.log").unwrap();
    client.upload_file(&local, &target).await.unwrap();

    // Without overwrite an existing file is refused ("upload path exists").
    let error = client
        .fast_upload(&local, &target, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UploadError::Hub(e) if e.is_fault(FaultKind::GenericError)),
        "{error}"
    );

    // A concurrent writer holds the lock: LockError.
    hub.lock_upload(target.dir(), target.name());
    let error = client.upload_file(&local, &target).await.unwrap_err();
    assert!(
        matches!(&error, UploadError::Hub(e) if e.is_fault(FaultKind::LockError)),
        "{error}"
    );
    hub.unlock_upload(target.dir(), target.name());

    // Another task's directory: not ours, ActionNotAllowed.
    let foreign = hub
        .create_task(NewTask::new("sleep", vec![Value::Integer(1)]))
        .unwrap();
    let error = client
        .upload_file(
            &local,
            &UploadTarget::for_task(foreign, &[], "x.log").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UploadError::Hub(e) if e.is_fault(FaultKind::ActionNotAllowed)),
        "{error}"
    );
}

#[tokio::test]
async fn incremental_log_upload_follows_a_growing_truncated_and_replaced_file() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("build.log");
    let mut uploader = IncrementalUpload::new(
        &local,
        UploadTarget::for_task(task, &[], "build.log").unwrap(),
    );

    let first = pseudo_random(150_000, 1);
    std::fs::write(&local, &first).unwrap();
    assert_eq!(uploader.sync(&client).await.unwrap(), 150_000);
    assert!(hub.task_output(task, "build.log").unwrap() == first);

    let mut grown = first.clone();
    grown.extend_from_slice(b"more output\n");
    std::fs::write(&local, &grown).unwrap();
    assert_eq!(uploader.sync(&client).await.unwrap(), 12);
    assert!(hub.task_output(task, "build.log").unwrap() == grown);

    std::fs::write(&local, b"rotated\n").unwrap();
    assert_eq!(uploader.sync(&client).await.unwrap(), 8);
    assert_eq!(hub.task_output(task, "build.log").unwrap(), b"rotated\n");

    let fresh = dir.path().join("new.log");
    std::fs::write(&fresh, b"a brand new file, longer than before\n").unwrap();
    std::fs::rename(&fresh, &local).unwrap();
    uploader.sync(&client).await.unwrap();
    assert_eq!(
        hub.task_output(task, "build.log").unwrap(),
        b"a brand new file, longer than before\n"
    );

    let offsets: Vec<String> = hub
        .call_log()
        .iter()
        .filter(|r| r["direction"] == "request" && r["method"] == "rawUpload")
        .map(|r| {
            format!(
                "{}+{}",
                r["query"]["offset"].as_str().unwrap_or("?"),
                r["body"]["len"]
            )
        })
        .collect();
    assert_eq!(
        offsets,
        [
            "0+65536",
            "65536+65536",
            "131072+18928",
            "150000+12",
            "0+8",
            "0+37"
        ]
    );
}

/// The upload requests the hub saw since `from` (an index into the call log), as
/// `method@offset` so that retries of one chunk show up as repeats.
fn upload_requests_since(hub: &FakeHub, from: usize) -> Vec<String> {
    hub.call_log()
        .iter()
        .skip(from)
        .filter(|r| r["direction"] == "request")
        .filter(|r| r["method"] == "rawUpload" || r["method"] == "checkUpload")
        .map(|r| match r["query"]["offset"].as_str() {
            Some(offset) => format!("{}@{offset}", r["method"].as_str().unwrap_or("?")),
            None => r["method"].as_str().unwrap_or("?").to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_mismatching_chunk_fails_a_fast_upload_at_once() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.rpm");
    std::fs::write(&local, pseudo_random(2 * MIB + 10, 7)).unwrap();
    let target = UploadTarget::for_task(task, &[], "big.rpm").unwrap();

    // §3.2: a chunk whose reported adler32 differs is a GenericError in fastUpload; nothing
    // is retried and checkUpload is never reached.
    let before = hub.call_log().len();
    hub.inject(Injection::corrupt_uploads(1, UploadCorruption::Digest));
    let error = client.upload_file(&local, &target).await.unwrap_err();
    match &error {
        UploadError::ChunkMismatch {
            offset,
            expected,
            got,
            ..
        } => {
            assert_eq!(*offset, 0);
            assert!(expected.starts_with("adler32 ") && got.starts_with("adler32 "));
            assert_ne!(expected, got);
        }
        other => panic!("expected a chunk mismatch, got {other}"),
    }
    assert_eq!(upload_requests_since(&hub, before), ["rawUpload@0"]);

    // The same for a wrong size, here on the first chunk of a fresh attempt.
    let before = hub.call_log().len();
    hub.inject(Injection::corrupt_uploads(1, UploadCorruption::Size));
    let error = client.upload_file(&local, &target).await.unwrap_err();
    match &error {
        UploadError::ChunkMismatch {
            offset,
            expected,
            got,
            ..
        } => {
            assert_eq!(*offset, 0);
            assert_eq!(expected, &format!("{MIB} bytes"));
            assert_eq!(got, &format!("{} bytes", MIB + 1));
        }
        other => panic!("expected a chunk mismatch, got {other}"),
    }
    assert_eq!(upload_requests_since(&hub, before), ["rawUpload@0"]);

    // With the hub honest again the same upload goes through and checks out.
    let before = hub.call_log().len();
    let summary = client.upload_file(&local, &target).await.unwrap();
    assert_eq!(summary.chunks, 3);
    assert!(!summary.verified, "no chunk was retried by the transport");
    assert_eq!(
        upload_requests_since(&hub, before),
        [
            "rawUpload@0",
            &format!("rawUpload@{MIB}"),
            &format!("rawUpload@{}", 2 * MIB),
            "checkUpload"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_mismatching_log_chunk_is_retried_then_skipped() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("build.log");
    let data = pseudo_random(150_000, 3);
    std::fs::write(&local, &data).unwrap();
    let mut uploader = IncrementalUpload::new(
        &local,
        UploadTarget::for_task(task, &[], "build.log").unwrap(),
    );

    // Nine spoiled replies: all 7 attempts at the first chunk (§3.5: then it moves on), and
    // two at the second, whose third attempt is accepted.
    let before = hub.call_log().len();
    hub.inject(Injection::corrupt_uploads(9, UploadCorruption::Digest));
    let start = Instant::now();
    assert_eq!(uploader.sync(&client).await.unwrap(), 150_000);
    assert_eq!(
        start.elapsed().as_secs(),
        80,
        "10 s between attempts: 6 waits for the first chunk, 2 for the second"
    );
    let mut expected = vec!["rawUpload@0"; 7];
    expected.extend(["rawUpload@65536"; 3]);
    expected.push("rawUpload@131072");
    assert_eq!(upload_requests_since(&hub, before), expected);
    assert_eq!(uploader.position(), 150_000);
    // The fake hub stored every attempt, only its replies lied, so its copy is whole.
    assert!(hub.task_output(task, "build.log").unwrap() == data);

    // A skipped chunk is not sent again on the next sync: only new bytes go.
    let mut grown = data.clone();
    grown.extend_from_slice(b"tail\n");
    std::fs::write(&local, &grown).unwrap();
    let before = hub.call_log().len();
    assert_eq!(uploader.sync(&client).await.unwrap(), 5);
    assert_eq!(upload_requests_since(&hub, before), ["rawUpload@150000"]);

    // A wrong size counts as a mismatch too.
    grown.extend_from_slice(b"more\n");
    std::fs::write(&local, &grown).unwrap();
    let before = hub.call_log().len();
    hub.inject(Injection::corrupt_uploads(1, UploadCorruption::Size));
    let start = Instant::now();
    assert_eq!(uploader.sync(&client).await.unwrap(), 5);
    assert_eq!(start.elapsed().as_secs(), 10);
    assert_eq!(
        upload_requests_since(&hub, before),
        ["rawUpload@150005", "rawUpload@150005"]
    );
    assert!(hub.task_output(task, "build.log").unwrap() == grown);
}

#[tokio::test]
async fn closing_a_task_ends_its_uploads() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    client
        .host_close_task(task, &Value::String("done".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        hub.task_result(task).unwrap(),
        Value::String("done".to_owned())
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("late.log");
    std::fs::write(&local, b"too late").unwrap();
    let error = client
        .upload_file(
            &local,
            &UploadTarget::for_task(task, &[], "late.log").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, UploadError::Hub(e) if e.is_fault(FaultKind::ActionNotAllowed)),
        "{error}"
    );
}

#[tokio::test]
async fn multicall_and_fail_task_round_trip() {
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let task = open_task(&hub, &client).await;
    let results = client
        .session()
        .multicall(&[
            MulticallEntry {
                method: "host.getID".to_owned(),
                args: vec![],
                kwargs: vec![],
            },
            MulticallEntry {
                method: "noSuchMethod".to_owned(),
                args: vec![],
                kwargs: vec![],
            },
        ])
        .await
        .unwrap();
    assert_eq!(results[0], Ok(Value::Integer(1)));
    assert!(results[1].as_ref().unwrap_err().is_invalid_method());
    let fault = koji_adjutant::hub::xmlrpc::RawFault {
        code: 1005,
        message: "mock exited with status 1".to_owned(),
    };
    client.host_fail_task(task, &fault).await.unwrap();
    let stored = hub.task_result(task).unwrap_err();
    assert_eq!(stored.code, 1005);
}

#[tokio::test]
async fn hub_call_and_doctor_against_the_fake_hub() {
    let hub = fake_hub().await;
    // The fake hub has no listChannels yet; give it one that reads its tables.
    hub.register_method(
        "listChannels",
        &["hostID", "event", "enabled"],
        0,
        false,
        |state, _caller, args| {
            let host_id = args.opt_int("hostID")?.unwrap_or(0);
            let channels = state
                .hosts
                .get(&host_id)
                .map(|h| h.channels.clone())
                .unwrap_or_default();
            Ok(Value::Array(
                channels
                    .into_iter()
                    .map(|id| {
                        let name = state.channels.get(&id).cloned().unwrap_or_default();
                        Value::Struct(
                            [
                                ("id".to_owned(), Value::Long(id)),
                                ("name".to_owned(), Value::String(name)),
                            ]
                            .into_iter()
                            .collect(),
                        )
                    })
                    .collect(),
            ))
        },
    );
    let checks = doctor_checks(&options(&hub)).await;
    let statuses: Vec<_> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
    assert_eq!(
        statuses,
        [
            ("hub-reachable", CheckStatus::Ok),
            ("hub-version", CheckStatus::Ok),
            ("hub-login", CheckStatus::Ok),
            ("hub-host", CheckStatus::Ok),
            ("hub-host-config", CheckStatus::Ok),
        ],
        "{checks:#?}"
    );
    assert!(
        checks[4].detail.contains("default, createrepo"),
        "{}",
        checks[4].detail
    );

    let task = hub
        .create_task(NewTask::new("sleep", vec![Value::Integer(7)]))
        .unwrap();
    let info = hub_call(
        &options(&hub),
        "getTaskInfo",
        &serde_json::json!([task, {"request": true, "__starstar": true}]),
    )
    .await
    .unwrap();
    assert_eq!(info["method"], "sleep");
    assert_eq!(info["request"], serde_json::json!([7]));

    // While a worker holds the lock, hub-call on host.* fails instead of stealing it.
    let running = worker(&hub).await;
    let error = hub_call(&options(&hub), "host.getID", &serde_json::Value::Null)
        .await
        .unwrap_err();
    assert!(error.is_fault(FaultKind::AuthLockError), "{error}");
    assert_eq!(
        running.host_get_id().await.unwrap(),
        1,
        "the running worker keeps its session"
    );
}

#[tokio::test]
async fn old_hub_without_version_header_is_probed() {
    let hub = FakeHub::start(FakeHubConfig {
        version: koji_fakehub::HubVersion::V1_34,
        hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let connection = HubConnection::new(options(&hub), CancellationToken::new()).unwrap();
    let session = Session::new(Arc::clone(&connection));
    session.login().await.unwrap();
    let caps = session.capabilities().await.unwrap();
    assert_eq!((caps.version.major, caps.version.minor), (1, 34));
    assert!(caps.scheduler && !caps.update_host_data);
    // updateHost drops `data` for this hub instead of getting ParameterError.
    let client = HubClient::from_session(session);
    let data = koji_adjutant::hub::types::HostData {
        methods: vec!["buildArch".to_owned()],
        ..Default::default()
    };
    client
        .host_update_host(0.0, true, Some(&data))
        .await
        .unwrap();
}

#[tokio::test]
async fn subtasks_children_output_and_buildroots() {
    use koji_adjutant::hub::types::{BuildrootState, SubtaskOptions, TaskState};
    let hub = fake_hub().await;
    let client = worker(&hub).await;
    let parent = open_task(&hub, &client).await;
    let options = SubtaskOptions {
        label: Some("x86_64".to_owned()),
        arch: Some("x86_64".to_owned()),
        ..SubtaskOptions::default()
    };
    let child = client
        .host_subtask("sleep", vec![Value::Integer(1)], parent, &options)
        .await
        .unwrap();
    let again = client
        .host_subtask("sleep", vec![Value::Integer(1)], parent, &options)
        .await
        .unwrap();
    assert_eq!(child, again, "subtask is idempotent per (parent, label)");
    let children = client.get_task_children(parent).await.unwrap();
    assert_eq!(children.iter().map(|t| t.id).collect::<Vec<_>>(), [child]);
    assert_eq!(children[0].parent, Some(parent));
    client
        .host_task_set_wait(parent, Some(&[child]))
        .await
        .unwrap();
    let (finished, unfinished) = client.host_task_wait(parent).await.unwrap();
    assert!(finished.is_empty() && unfinished == [child]);
    assert!(!client.task_finished(child).await.unwrap());
    client.cancel_task_children(parent).await.unwrap();
    assert!(client.task_finished(child).await.unwrap());
    assert_eq!(
        hub.task(child).unwrap().state.name(),
        TaskState::CANCELED.name()
    );

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("mock_config.log");
    std::fs::write(&local, b"config_opts = {}\n").unwrap();
    client
        .upload_file(
            &local,
            &UploadTarget::for_task(parent, &[], "mock_config.log").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        client.list_task_output(parent).await.unwrap(),
        ["mock_config.log"]
    );

    hub.add_repo(koji_fakehub::Repo {
        id: 1,
        tag_id: 1,
        tag_name: "dist-build".to_owned(),
        state: 1,
        create_event: 38,
        create_ts: 1795723265.1,
        ..Default::default()
    });
    let buildroot = client
        .host_new_build_root(1, "x86_64", Some(parent))
        .await
        .unwrap();
    client
        .host_set_build_root_state(buildroot, BuildrootState::BUILDING, Some(parent))
        .await
        .unwrap();
    let info = client.get_buildroot(buildroot).await.unwrap().unwrap();
    assert_eq!(info.state, Some(BuildrootState::BUILDING));
    let listed = client
        .list_buildroots(1, &[BuildrootState::BUILDING])
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|b| b.id).collect::<Vec<_>>(), [buildroot]);
}

#[tokio::test]
async fn legacy_scheduling_hub_1_33() {
    let hub = FakeHub::start(FakeHubConfig {
        version: koji_fakehub::HubVersion::V1_33,
        hosts: vec![HostConfig::new("builder1.local").with_password("builder")],
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let client = worker(&hub).await;
    let caps = client.capabilities().await.unwrap();
    assert!(!caps.scheduler && caps.session_renewal);
    client.host_update_host(0.0, true, None).await.unwrap();
    let task = hub
        .create_task(NewTask::new("sleep", vec![Value::Integer(1)]))
        .unwrap();
    let (hosts, tasks) = client.host_get_load_data().await.unwrap();
    assert!(
        hosts.iter().any(|h| h.id == 1 && !h.channels.is_empty()),
        "{hosts:?}"
    );
    assert!(tasks.iter().any(|t| t.id == task), "{tasks:?}");
    let error = client.host_get_tasks().await.unwrap_err();
    assert!(
        error.fault().is_some_and(|f| f.is_invalid_method()),
        "{error}"
    );
}
