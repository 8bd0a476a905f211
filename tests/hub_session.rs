//! Session rules against a scripted responder, with tokio's clock paused so that retry waits
//! are asserted in virtual time.

mod hub_support;

use std::sync::Arc;
use std::time::Duration;

use dxr::Value;
use hub_support::{Responder, Step, fault, nil, ok, session};
use koji_adjutant::hub::fault::FaultKind;
use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::hub::session::{HubConnection, HubError, Session};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn options(responder: &Responder) -> HubOptions {
    HubOptions {
        server: responder.url(),
        user: Some("builder1.local".to_owned()),
        password: Some("secret".to_owned()),
        max_retries: 3,
        retry_interval: Duration::from_secs(60),
        offline_retry_interval: Duration::from_secs(120),
        ..HubOptions::default()
    }
}

async fn logged_in(responder: &Responder, options: HubOptions) -> (Arc<HubConnection>, Session) {
    responder.push([session(900001, "key-1", true), nil()]);
    let hub = HubConnection::new(options, CancellationToken::new()).unwrap();
    let main = Session::new(Arc::clone(&hub));
    main.login().await.unwrap();
    (hub, main)
}

fn int(value: i32) -> Step {
    ok(&format!("<value><int>{value}</int></value>"))
}

#[tokio::test(start_paused = true)]
async fn login_then_exclusive_session_and_callnums_from_zero() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([int(1), int(2)]);
    assert_eq!(
        main.call("host.getID", vec![], vec![]).await.unwrap(),
        Value::Integer(1)
    );
    assert_eq!(
        main.call("host.getID", vec![], vec![]).await.unwrap(),
        Value::Integer(2)
    );

    let requests = responder.requests();
    assert_eq!(
        responder.methods(),
        ["login", "exclusiveSession", "host.getID", "host.getID"]
    );
    assert!(requests[0].body_text().contains("<name>opts</name>"));
    assert_eq!(
        requests[0].callnum(),
        None,
        "login goes out without a session"
    );
    assert!(
        requests[1]
            .body_text()
            .contains("<name>force</name>\n<value><boolean>1</boolean>")
    );
    let callnums: Vec<_> = requests[1..].iter().map(|r| r.callnum()).collect();
    assert_eq!(callnums, [Some(0), Some(1), Some(2)]);
    assert_eq!(requests[1].header("koji-session-id"), Some("900001"));
    assert_eq!(requests[1].header("koji-session-key"), Some("key-1"));
    assert_eq!(requests[1].header("user-agent"), Some("koji/1"));
    assert_eq!(
        requests[1].path_and_query, "/kojihub",
        "header mode sends no query parameters"
    );
    assert!(main.is_exclusive());
}

#[tokio::test(start_paused = true)]
async fn transport_errors_retry_first_at_once_then_every_interval_with_the_same_callnum() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([
        Step::Status(500),
        Step::Status(502),
        Step::Status(503),
        int(7),
        int(8),
    ]);
    let start = Instant::now();
    assert_eq!(
        main.call("getTaskInfo", vec![Value::Integer(5)], vec![])
            .await
            .unwrap(),
        Value::Integer(7)
    );
    let requests = responder.requests();
    let attempts = &requests[2..6];
    assert!(
        attempts.iter().all(|r| r.callnum() == Some(1)),
        "retries keep the callnum"
    );
    let offsets: Vec<u64> = attempts.iter().map(|r| (r.at - start).as_secs()).collect();
    assert_eq!(
        offsets,
        [0, 0, 60, 120],
        "first retry immediate, then retry_interval"
    );
    main.call("getTaskInfo", vec![Value::Integer(5)], vec![])
        .await
        .unwrap();
    assert_eq!(responder.requests()[6].callnum(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_retries_plus_one_attempts() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push(std::iter::repeat_n(Step::Status(500), 10));
    let start = Instant::now();
    let error = main.call("host.getHost", vec![], vec![]).await.unwrap_err();
    assert!(matches!(error, HubError::Transport(_)), "{error}");
    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(
        responder.requests().len() - 2,
        4,
        "max_retries=3 → 4 attempts"
    );
    assert_eq!(
        start.elapsed().as_secs(),
        120,
        "0 + 60 + 60 between the 4 attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn faults_are_not_retried() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([fault(1000, "No such task: 5"), int(1)]);
    let error = main
        .call("getTaskInfo", vec![Value::Integer(5)], vec![])
        .await
        .unwrap_err();
    let fault = error.fault().expect("a fault");
    assert_eq!(
        (fault.code, fault.class_name(), fault.message.as_str()),
        (1000, "GenericError", "No such task: 5")
    );
    assert_eq!(responder.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn server_offline_is_waited_out_forever_and_resets_the_count() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    // More offline replies than max_retries: offline waits do not count as attempts.
    responder.push(std::iter::repeat_n(fault(1014, "database outage"), 6));
    responder.push([Step::Status(500), int(3)]);
    let start = Instant::now();
    assert_eq!(
        main.call("host.getHost", vec![], vec![]).await.unwrap(),
        Value::Integer(3)
    );
    let offsets: Vec<u64> = responder.requests()[2..]
        .iter()
        .map(|r| (r.at - start).as_secs())
        .collect();
    assert_eq!(offsets, [0, 120, 240, 360, 480, 600, 720, 720]);
}

#[tokio::test(start_paused = true)]
async fn server_offline_is_a_fault_when_offline_retry_is_off() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(
        &responder,
        HubOptions {
            offline_retry: false,
            ..options(&responder)
        },
    )
    .await;
    responder.push([fault(1014, "server startup error")]);
    let error = main.call("host.getHost", vec![], vec![]).await.unwrap_err();
    assert!(error.is_fault(FaultKind::ServerOffline));
    assert_eq!(responder.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_is_retried_once_at_once() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([Step::Drop, int(4)]);
    let start = Instant::now();
    assert_eq!(
        main.call("host.getHost", vec![], vec![]).await.unwrap(),
        Value::Integer(4)
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    let requests = responder.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[2].callnum(), requests[3].callnum());
}

#[tokio::test(start_paused = true)]
async fn waits_are_cancellable() {
    let responder = Responder::start(vec![]).await;
    responder.push([session(900001, "key-1", true), nil()]);
    let cancel = CancellationToken::new();
    let hub = HubConnection::new(options(&responder), cancel.clone()).unwrap();
    let main = Session::new(hub);
    main.login().await.unwrap();
    responder.push(std::iter::repeat_n(fault(1014, "LockOut"), 1000));
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1000)).await;
        stopper.cancel();
    });
    let start = Instant::now();
    let error = main.call("host.getHost", vec![], vec![]).await.unwrap_err();
    assert!(matches!(error, HubError::Cancelled { .. }), "{error}");
    assert_eq!(start.elapsed().as_secs(), 1000);
}

#[tokio::test(start_paused = true)]
async fn login_is_not_retried() {
    let responder = Responder::start(vec![Step::Status(500), session(1, "k", true)]).await;
    let hub = HubConnection::new(options(&responder), CancellationToken::new()).unwrap();
    let main = Session::new(hub);
    let error = main.login().await.unwrap_err();
    assert!(
        matches!(
            error,
            HubError::LoginFailed {
                method: "login",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(responder.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn auth_expired_renews_with_the_old_headers_and_replays_once() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([
        fault(1007, "session expired"),
        session(900001, "key-2", true),
        int(9),
    ]);
    assert_eq!(
        main.call("host.getHost", vec![], vec![]).await.unwrap(),
        Value::Integer(9)
    );
    let requests = responder.requests();
    assert_eq!(
        responder.methods()[2..],
        ["host.getHost", "login", "host.getHost"]
    );
    let renewal = &requests[3];
    let body = renewal.body_text();
    assert!(
        body.contains("<name>renew</name>\n<value><boolean>1</boolean>"),
        "{body}"
    );
    assert!(
        !body.contains("<name>exclusive</name>"),
        "kojihub fails renewals that ask for exclusive (AuthLockError): {body}"
    );
    assert_eq!(
        renewal.header("koji-session-key"),
        Some("key-1"),
        "renewal names the expired session"
    );
    assert_eq!(renewal.callnum(), Some(2));
    let replay = &requests[4];
    assert_eq!(replay.header("koji-session-key"), Some("key-2"));
    assert_eq!(
        replay.callnum(),
        Some(3),
        "a renewed session keeps counting: the hub kept its last callnum"
    );
}

#[tokio::test(start_paused = true)]
async fn auth_expired_twice_is_an_error() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([
        fault(1007, "expired"),
        session(900001, "key-2", true),
        fault(1007, "expired again"),
    ]);
    let error = main.call("host.getHost", vec![], vec![]).await.unwrap_err();
    assert!(error.is_fault(FaultKind::AuthExpired));
    assert_eq!(responder.requests().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn subsessions_have_their_own_callnum_renew_and_are_closed_by_the_parent() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([session(900002, "sub-key", true)]);
    let sub = main.subsession().await.unwrap();
    assert!(sub.is_subsession());
    responder.push([
        int(1),
        fault(1007, "expired"),
        session(900002, "sub-key-2", true),
        int(2),
    ]);
    sub.call("host.openTask", vec![Value::Integer(5)], vec![])
        .await
        .unwrap();
    sub.call("host.getID", vec![], vec![]).await.unwrap();
    responder.push([nil()]);
    main.logout_child(900002).await.unwrap();

    let requests = responder.requests();
    let methods = responder.methods();
    assert_eq!(
        methods[2..],
        [
            "subsession",
            "host.openTask",
            "host.getID",
            "login",
            "host.getID",
            "logoutChild"
        ]
    );
    assert_eq!(requests[3].header("koji-session-id"), Some("900002"));
    assert_eq!(requests[3].callnum(), Some(0));
    assert_eq!(requests[4].callnum(), Some(1));
    let renewal = requests[5].body_text();
    assert!(renewal.contains("<name>renew</name>"));
    assert!(!renewal.contains("<name>exclusive</name>"));
    assert_eq!(requests[5].header("koji-session-key"), Some("sub-key"));
    assert_eq!(requests[6].header("koji-session-key"), Some("sub-key-2"));
    assert_eq!(
        (requests[5].callnum(), requests[6].callnum()),
        (Some(2), Some(3))
    );
    assert!(requests[7].body_text().contains("<int>900002</int>"));
    assert_eq!(requests[7].header("koji-session-id"), Some("900001"));
    assert_eq!(requests[7].callnum(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn old_hubs_without_header_auth_get_url_parameters() {
    let responder = Responder::start(vec![session(77, "old-key", false), nil(), int(1)]).await;
    let hub = HubConnection::new(options(&responder), CancellationToken::new()).unwrap();
    let main = Session::new(hub);
    main.login().await.unwrap();
    main.call("host.getID", vec![], vec![]).await.unwrap();
    let requests = responder.requests();
    assert_eq!(
        requests[1].path_and_query,
        "/kojihub?session-id=77&session-key=old-key&callnum=0"
    );
    assert_eq!(
        requests[2].path_and_query,
        "/kojihub?session-id=77&session-key=old-key&callnum=1"
    );
}

#[tokio::test(start_paused = true)]
async fn logout_sends_the_kwarg_then_falls_back_for_old_hubs() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([
        fault(1019, "logout() got an unexpected keyword argument"),
        nil(),
    ]);
    main.logout().await.unwrap();
    assert!(!main.is_logged_in().await);
    let requests = responder.requests();
    assert!(
        requests[2]
            .body_text()
            .contains("<name>session_id</name>\n<value><nil/></value>")
    );
    assert!(requests[3].body_text().contains("<params>\n</params>"));
    let error = main.call("host.getID", vec![], vec![]).await.unwrap_err();
    assert!(matches!(error, HubError::NotLoggedIn { .. }));
}

#[tokio::test(start_paused = true)]
async fn logout_ignores_auth_expired_and_is_not_retried() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([fault(1007, "forced out")]);
    main.logout().await.unwrap();
    assert_eq!(responder.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn multicall_has_one_callnum_and_per_call_faults() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    responder.push([ok(
        "<value><array><data><value><array><data><value><int>1</int></value></data></array></value><value><struct><member><name>faultCode</name><value><int>1000</int></value></member><member><name>faultString</name><value><string>bad rpm</string></value></member></struct></value></data></array></value>",
    )]);
    use koji_adjutant::hub::xmlrpc::MulticallEntry;
    let calls = vec![
        MulticallEntry {
            method: "host.writeSignedRPM".to_owned(),
            args: vec![Value::Integer(1), Value::String("abc".to_owned())],
            kwargs: vec![],
        },
        MulticallEntry {
            method: "host.writeSignedRPM".to_owned(),
            args: vec![Value::Integer(2), Value::String("abc".to_owned())],
            kwargs: vec![("force".to_owned(), Value::Boolean(true))],
        },
    ];
    let results = main.multicall(&calls).await.unwrap();
    assert_eq!(results[0], Ok(Value::Integer(1)));
    assert_eq!(results[1].as_ref().unwrap_err().message, "bad rpm");
    let request = &responder.requests()[2];
    assert_eq!(request.method(), "multiCall");
    assert_eq!(request.callnum(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn capabilities_from_the_version_header_or_get_koji_version_or_1_22() {
    let responder = Responder::start(vec![]).await;
    let (hub, main) = logged_in(&responder, options(&responder)).await;
    let caps = main.capabilities().await.unwrap();
    assert_eq!(caps.version.to_string(), "1.35.3");
    assert!(caps.update_host_data && caps.scheduler);
    drop(hub);

    let old = Responder::start(vec![]).await;
    *old.koji_version.lock().unwrap() = None;
    let (_hub, main) = logged_in(&old, options(&old)).await;
    old.push([ok("<value><string>1.33.1</string></value>")]);
    let caps = main.capabilities().await.unwrap();
    assert!(caps.session_renewal && !caps.scheduler);

    let ancient = Responder::start(vec![]).await;
    *ancient.koji_version.lock().unwrap() = None;
    let (_hub, main) = logged_in(&ancient, options(&ancient)).await;
    ancient.push([fault(1000, "Invalid method: getKojiVersion")]);
    let caps = main.capabilities().await.unwrap();
    assert_eq!(caps.version.to_string(), "1.22.0");
    assert!(!caps.session_headers);
}

#[tokio::test]
async fn hub_call_logs_in_calls_and_logs_out_without_forcing_the_lock() {
    use koji_adjutant::hub::ops::hub_call;
    let responder = Responder::start(vec![
        session(900001, "k", true),
        nil(),
        ok("<value><struct><member><name>id</name><value><int>1</int></value></member><member><name>name</name><value><string>builder1.local</string></value></member></struct></value>"),
        nil(),
    ])
    .await;
    let result = hub_call(&options(&responder), "host.getHost", &serde_json::json!([]))
        .await
        .unwrap();
    assert_eq!(
        result,
        serde_json::json!({"id": 1, "name": "builder1.local"})
    );
    assert_eq!(
        responder.methods(),
        ["login", "exclusiveSession", "host.getHost", "logout"]
    );
    assert!(
        responder.requests()[1]
            .body_text()
            .contains("<name>force</name>\n<value><boolean>0</boolean>")
    );

    let responder = Responder::start(vec![
        session(900001, "k", true),
        ok("<value><int>3</int></value>"),
        nil(),
    ])
    .await;
    let result = hub_call(
        &options(&responder),
        "getTaskInfo",
        &serde_json::json!([3, {"request": true, "__starstar": true}]),
    )
    .await
    .unwrap();
    assert_eq!(result, serde_json::json!(3));
    assert_eq!(responder.methods(), ["login", "getTaskInfo", "logout"]);
    assert!(
        responder.requests()[1]
            .body_text()
            .contains("<name>request</name>")
    );
}

#[tokio::test]
async fn doctor_reports_version_login_host_and_channels() {
    use koji_adjutant::doctor::CheckStatus;
    use koji_adjutant::hub::ops::doctor_checks;
    let responder = Responder::start(vec![
        ok("<value><string>1.35.3</string></value>"),
        session(900001, "k", true),
        nil(),
        ok("<value><int>1</int></value>"),
        ok("<value><struct><member><name>id</name><value><int>1</int></value></member><member><name>name</name><value><string>builder1.local</string></value></member><member><name>arches</name><value><string>noarch x86_64</string></value></member><member><name>capacity</name><value><double>2.0</double></value></member><member><name>enabled</name><value><boolean>1</boolean></value></member></struct></value>"),
        ok("<value><array><data><value><struct><member><name>id</name><value><int>1</int></value></member><member><name>name</name><value><string>default</string></value></member></struct></value><value><struct><member><name>id</name><value><int>2</int></value></member><member><name>name</name><value><string>createrepo</string></value></member></struct></value></data></array></value>"),
        nil(),
    ])
    .await;
    let checks = doctor_checks(&options(&responder)).await;
    let names: Vec<_> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
    assert_eq!(
        names,
        [
            ("hub-reachable", CheckStatus::Ok),
            ("hub-version", CheckStatus::Ok),
            ("hub-login", CheckStatus::Ok),
            ("hub-host", CheckStatus::Ok),
            ("hub-host-config", CheckStatus::Ok),
        ]
    );
    assert!(checks[1].detail.contains("1.35.3"));
    assert_eq!(
        checks[4].detail,
        "builder1.local: arches noarch x86_64, capacity 2, channels default, createrepo"
    );

    // Nothing listening: one failed check that says what to fix.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let checks = doctor_checks(&HubOptions {
        server: format!("http://127.0.0.1:{port}/kojihub"),
        ..HubOptions::default()
    })
    .await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, CheckStatus::Fail);
    assert!(checks[0].fix.contains("`server`"));
}

/// The first recorded (request body, response body) of `method`, files in name order.
fn first_exchange(method: &str) -> (String, String) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/hub-transcripts");
    let dir = if dir.exists() {
        dir
    } else {
        std::path::PathBuf::from("/work/shared/fixtures/hub-transcripts")
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        let mut pending: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["method"] != method {
                continue;
            }
            let xid = record["xid"].as_i64().unwrap();
            let body = record["body_xml"].as_str().unwrap_or_default().to_owned();
            if record["direction"] == "request" {
                pending.insert(xid, body);
            } else if record["direction"] == "response"
                && record["fault"].is_null()
                && let Some(request) = pending.remove(&xid)
            {
                return (request, body);
            }
        }
    }
    panic!("no exchange for {method} in the transcripts");
}

#[tokio::test]
async fn typed_calls_encode_like_kojid_and_read_real_replies() {
    use koji_adjutant::hub::client::{HubClient, TagRef};
    use koji_adjutant::hub::types::BuildrootState;

    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    let client = HubClient::from_session(main);
    *responder.scripted_uploads.lock().unwrap() = true;
    macro_rules! check {
        ($method:literal, $call:expr) => {{
            let (request, response) = first_exchange($method);
            responder.push([Step::Xml(response)]);
            if let Err(error) = $call.await {
                panic!("{}: {error}", $method);
            }
            let sent = responder.requests().last().unwrap().clone();
            assert_eq!(
                sent.body_text(),
                request,
                "{} must encode like kojid",
                $method
            );
            // The same headers kojid sends (values differ: our own session).
            assert_eq!(sent.header("content-type"), Some("text/xml"));
            assert_eq!(sent.header("user-agent"), Some("koji/1"));
            for name in [
                "koji-session-id",
                "koji-session-key",
                "koji-session-callnum",
            ] {
                assert!(sent.header(name).is_some(), "{} lacks {name}", $method);
            }
            assert_eq!(sent.path_and_query, "/kojihub");
        }};
    }
    check!("echo", client.echo("OK"));
    check!("host.getID", client.host_get_id());
    check!("getSessionInfo", client.get_session_info());
    check!(
        "listBuildroots",
        client.list_buildroots(
            1,
            &[
                BuildrootState::INIT,
                BuildrootState::WAITING,
                BuildrootState::BUILDING
            ]
        )
    );
    check!("host.getHostTasks", client.host_get_host_tasks());
    check!("host.getHost", client.host_get_host());
    check!("host.getTasks", client.host_get_tasks());
    check!("getTaskInfo", client.get_task_info(13, true));
    check!("host.openTask", client.host_open_task(13));
    check!("host.setTaskWeight", client.host_set_task_weight(13, 0.2));
    check!("getBuildTarget", client.get_build_target("dist", None));
    check!("getTag", client.get_tag(TagRef::Id(1)));
    check!("repo.request", client.repo_request(1, None, None));
    check!("getLastEvent", client.get_last_event());
    check!(
        "getBuildConfig",
        client.get_build_config(TagRef::Id(1), Some(52))
    );
    check!(
        "host.taskSetWait",
        client.host_task_set_wait(13, Some(&[14]))
    );
    check!("host.taskWait", client.host_task_wait(13));
    check!("repoInfo", client.repo_info(1));
    check!(
        "host.newBuildRoot",
        client.host_new_build_root(1, "x86_64", Some(14))
    );
    check!(
        "checkUpload",
        client.check_upload("tasks/14/14", "mock_config.log", None, None)
    );
    check!(
        "host.setBuildRootState",
        client.host_set_build_root_state(7, BuildrootState::BUILDING, None)
    );
    check!("logoutChild", client.logout_child(900003));
    check!(
        "host.taskWaitResults",
        client.host_task_wait_results(13, Some(&[14]), None)
    );
    check!(
        "getPackageConfig",
        client.get_package_config(TagRef::Id(2), "slowpoke", Some(52))
    );
    check!(
        "getAverageBuildDuration",
        client.get_average_build_duration("slowpoke", Some(6))
    );
    check!("host.freeTasks", client.host_free_tasks(&[]));
    check!("host.repoInit", client.host_repo_init(1, Some(1), None));
    check!("getRepo", client.get_repo(TagRef::Id(1)));
    check!(
        "getFullInheritance",
        client.get_full_inheritance(TagRef::Id(1))
    );
    check!(
        "getExternalRepoList",
        client.get_external_repo_list(TagRef::Id(1), Some(38))
    );
    check!("getBuild", client.get_build(7));
    check!("host.tagBuild", client.host_tag_build(9, 2, 7, false, None));
    check!(
        "host.tagNotification",
        client.host_tag_notification(true, Some(2), None, 7, 1, true, None)
    );
    check!("subsession", client.session().subsession());
    check!("exclusiveSession", client.session().acquire_exclusive(true));
    check!("logout", client.logout());
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_is_abandoned_at_shutdown() {
    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let responder = Responder::start(vec![]).await;
    let cancel = CancellationToken::new();
    let hub = HubConnection::new(
        HubOptions {
            server: format!("http://{addr}/kojihub"),
            ..options(&responder)
        },
        cancel.clone(),
    )
    .unwrap();
    let anonymous = Session::new(hub);
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        stopper.cancel();
    });
    let start = Instant::now();
    let error = anonymous
        .call_anonymous("getKojiVersion", vec![], vec![])
        .await
        .unwrap_err();
    assert!(matches!(error, HubError::Cancelled { .. }), "{error}");
    assert_eq!(start.elapsed().as_secs(), 30);
}

#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn every_attempt_and_wait_is_logged_with_its_reason() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(
        &responder,
        HubOptions {
            max_retries: 1,
            ..options(&responder)
        },
    )
    .await;
    responder.push([
        fault(1014, "database outage"),
        Step::Status(502),
        Step::Status(500),
    ]);
    main.call("host.getHost", vec![], vec![]).await.unwrap_err();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("hub is offline")
            && text.contains("database outage")
            && text.contains("wait_secs=120"),
        "{text}"
    );
    assert!(
        text.contains("hub call failed, will retry")
            && text.contains("attempt=1")
            && text.contains("502"),
        "{text}"
    );
    assert!(
        text.contains("giving up on the hub call")
            && text.contains("attempts=2")
            && text.contains("500"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_on_one_session_go_out_one_at_a_time_in_callnum_order() {
    let responder = Responder::start(vec![]).await;
    let (_hub, main) = logged_in(&responder, options(&responder)).await;
    let main = Arc::new(main);
    responder.push((0..20).map(int));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let session = Arc::clone(&main);
            tokio::spawn(async move { session.call("host.getID", vec![], vec![]).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let callnums: Vec<u64> = responder.requests()[2..]
        .iter()
        .filter_map(|r| r.callnum())
        .collect();
    assert_eq!(
        callnums,
        (1..=20).collect::<Vec<u64>>(),
        "the hub sees callnums in order, none twice"
    );
}
