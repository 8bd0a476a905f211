//! The fake hub against kojihub's rules, driven by a raw client that sends exactly what each
//! test needs.

use std::collections::BTreeMap;
use std::time::Duration;

use koji_fakehub::faults::code;
use koji_fakehub::testclient::{RawClient, RawClientError};
use koji_fakehub::xmlrpc::{encode_fault, encode_response, vstruct};
use koji_fakehub::{
    Action, FakeHub, FakeHubConfig, HostConfig, HubFault, HubVersion, Injection, NewTask,
    TaskState, Value,
};

fn config() -> FakeHubConfig {
    FakeHubConfig {
        hosts: vec![
            HostConfig::new("builder1.local").with_password("pw1"),
            HostConfig::new("builder2.local")
                .with_password("pw2")
                .with_arches("aarch64"),
        ],
        ..FakeHubConfig::default()
    }
}

async fn hub() -> FakeHub {
    FakeHub::start(config()).await.unwrap()
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn i(n: i32) -> Value {
    Value::Integer(n)
}

fn kwargs<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map: BTreeMap<String, Value> = members
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    map.insert("__starstar".to_owned(), Value::Boolean(true));
    Value::Struct(map)
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    match value {
        Value::Struct(members) => members
            .get(name)
            .unwrap_or_else(|| panic!("no member {name} in {value:?}")),
        other => panic!("not a struct: {other:?}"),
    }
}

/// A host client logged in by password and holding the exclusive session, as kojid does.
async fn host_client(hub: &FakeHub, user: &str, password: &str) -> RawClient {
    let mut client = RawClient::new(hub.url());
    client.login(user, password).await.unwrap().unwrap();
    client
        .call(
            "exclusiveSession",
            vec![kwargs([("force", Value::Boolean(true))])],
        )
        .await
        .unwrap()
        .unwrap();
    client
}

async fn ok(client: &mut RawClient, method: &str, params: Vec<Value>) -> Value {
    match client.call(method, params).await {
        Ok(Ok(value)) => value,
        other => panic!("{method} failed: {other:?}"),
    }
}

async fn fault(client: &mut RawClient, method: &str, params: Vec<Value>) -> HubFault {
    match client.call(method, params).await {
        Ok(Err(fault)) => fault,
        other => panic!("{method} should fault, got {other:?}"),
    }
}

fn sleep_task(hub: &FakeHub) -> i64 {
    hub.create_task(NewTask::new("sleep", vec![i(1)])).unwrap()
}

/// Heartbeat, then take one scheduled task: the kojid ≥1.35 sequence.
async fn take_task(client: &mut RawClient, task_id: i64) -> Value {
    ok(
        client,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let assigned = ok(client, "host.getTasks", vec![]).await;
    let Value::Array(entries) = &assigned else {
        panic!("{assigned:?}")
    };
    assert!(
        entries
            .iter()
            .any(|e| field(e, "id") == &Value::Integer(i32::try_from(task_id).unwrap())),
        "task {task_id} not assigned: {assigned:?}"
    );
    ok(client, "host.openTask", vec![Value::Long(task_id)]).await
}

// ---- HTTP and dialect ------------------------------------------------------------------------

#[tokio::test]
async fn http_rules_match_kojihub() {
    let hub = hub().await;
    let client = RawClient::new(hub.url());
    let get = client.send("GET", "", &[], Vec::new()).await.unwrap();
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
    let empty = client
        .send(
            "POST",
            "",
            &[("Content-Type", "text/xml".into())],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(empty.status, 400);
    let reply = client.call_raw("", 0, "getKojiVersion", &[]).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("koji-version"), Some("1.35.3"));
    assert_eq!(reply.header("content-type"), Some("text/xml"));
    assert_eq!(
        reply.text(),
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>1.35.3</string></value>\n</param>\n</params>\n</methodResponse>\n"
    );
    let garbage = client
        .send(
            "POST",
            "",
            &[("Content-Type", "text/xml".into())],
            b"<methodCall>".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(garbage.status, 200);
    assert!(
        garbage.text().contains("<int>1</int>"),
        "{}",
        garbage.text()
    );
}

#[tokio::test]
async fn version_header_and_methods_follow_the_hub_version() {
    let old = FakeHub::start(config().with_version(HubVersion::V1_33))
        .await
        .unwrap();
    let mut client = RawClient::new(old.url());
    let reply = client.call_raw("", 0, "getKojiVersion", &[]).await.unwrap();
    assert_eq!(
        reply.header("koji-version"),
        None,
        "1.33 sends no Koji-Version header"
    );
    let mut host = host_client(&old, "builder1.local", "pw1").await;
    let missing = fault(&mut host, "host.getTasks", vec![]).await;
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (1000, "Invalid method: host.getTasks")
    );
    let third_arg = fault(
        &mut host,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true), vstruct([])],
    )
    .await;
    assert_eq!(third_arg.code, code::PARAMETER);
    let names = ok(&mut client, "system.listMethods", vec![]).await;
    assert!(!format!("{names:?}").contains("host.refuseTask"));

    let v134 = FakeHub::start(config().with_version(HubVersion::V1_34))
        .await
        .unwrap();
    let mut host = host_client(&v134, "builder1.local", "pw1").await;
    assert_eq!(
        fault(
            &mut host,
            "host.updateHost",
            vec![Value::Double(0.0), Value::Boolean(true), vstruct([])]
        )
        .await
        .code,
        1019
    );
    ok(
        &mut host,
        "host.setHostData",
        vec![s(r#"{"maxjobs": 3, "methods": ["sleep"]}"#)],
    )
    .await;
    assert_eq!(
        v134.host("builder1.local").unwrap().data,
        Some(vstruct([
            ("maxjobs", i(3)),
            ("methods", Value::Array(vec![s("sleep")]))
        ]))
    );

    let new = FakeHub::start(config().with_version(HubVersion::V1_36))
        .await
        .unwrap();
    let reply = RawClient::new(new.url())
        .call_raw("", 0, "getKojiVersion", &[])
        .await
        .unwrap();
    assert_eq!(reply.header("koji-version"), Some("1.36.1"));
}

#[tokio::test]
async fn unknown_methods_and_signature_mismatches() {
    let hub = hub().await;
    let mut client = RawClient::new(hub.url());
    let unknown = fault(&mut client, "noSuchCall", vec![]).await;
    assert_eq!(
        (unknown.code, unknown.message.as_str()),
        (1000, "Invalid method: noSuchCall")
    );
    let missing = fault(&mut client, "getTaskInfo", vec![]).await;
    assert_eq!(missing.code, code::PARAMETER);
    assert_eq!(
        missing.message,
        "getTaskInfo() missing 1 required positional argument: 'task_id'"
    );
    let extra = fault(
        &mut client,
        "getTaskInfo",
        vec![i(1), Value::Boolean(true), Value::Boolean(false), i(4)],
    )
    .await;
    assert_eq!(
        extra.message,
        "getTaskInfo() takes from 1 to 3 positional arguments but 4 were given"
    );
    let unexpected = fault(
        &mut client,
        "getTaskInfo",
        vec![i(1), kwargs([("bogus", i(1))])],
    )
    .await;
    assert_eq!(
        unexpected.message,
        "getTaskInfo() got an unexpected keyword argument 'bogus'"
    );
    let twice = fault(
        &mut client,
        "getTaskInfo",
        vec![i(1), kwargs([("task_id", i(1))])],
    )
    .await;
    assert_eq!(
        twice.message,
        "getTaskInfo() got multiple values for argument 'task_id'"
    );
    // Keyword form of every argument works, and a missing task is nil unless strict.
    assert_eq!(
        ok(
            &mut client,
            "getTaskInfo",
            vec![kwargs([("task_id", i(77))])]
        )
        .await,
        Value::Nil
    );
    let strict = fault(
        &mut client,
        "getTaskInfo",
        vec![i(77), kwargs([("strict", Value::Boolean(true))])],
    )
    .await;
    assert_eq!(
        (strict.code, strict.message.as_str()),
        (1000, "No such task: 77")
    );
    assert_eq!(
        ok(&mut client, "echo", vec![s("OK"), i(2)]).await,
        Value::Array(vec![s("OK"), i(2)])
    );
}

#[tokio::test]
async fn multicall_returns_results_and_faults_per_call() {
    let hub = hub().await;
    let mut client = RawClient::new(hub.url());
    let call = |name: &str, params: Vec<Value>| {
        vstruct([("methodName", s(name)), ("params", Value::Array(params))])
    };
    let result = ok(
        &mut client,
        "multiCall",
        vec![Value::Array(vec![
            call("getKojiVersion", vec![]),
            call(
                "getTaskInfo",
                vec![i(5), kwargs([("strict", Value::Boolean(true))])],
            ),
            call("nope", vec![]),
        ])],
    )
    .await;
    assert_eq!(
        result,
        Value::Array(vec![
            Value::Array(vec![s("1.35.3")]),
            vstruct([
                ("faultCode", i(1000)),
                ("faultString", s("No such task: 5"))
            ]),
            vstruct([
                ("faultCode", i(1000)),
                ("faultString", s("Invalid method: nope"))
            ]),
        ])
    );
}

#[test]
fn encoder_writes_python_xmlrpc_layout() {
    let value = vstruct([
        ("a", Value::Nil),
        ("b", Value::Double(2.0)),
        ("c", Value::Long(1 << 40)),
        ("d", Value::Long(7)),
    ]);
    assert_eq!(
        encode_response(&value),
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n<member>\n<name>a</name>\n<value><nil/></value></member>\n<member>\n<name>b</name>\n<value><double>2.0</double></value>\n</member>\n<member>\n<name>c</name>\n<value><i8>1099511627776</i8></value>\n</member>\n<member>\n<name>d</name>\n<value><int>7</int></value>\n</member>\n</struct></value>\n</param>\n</params>\n</methodResponse>\n"
    );
    assert_eq!(
        encode_fault(1000, "Task 15 is canceled"),
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>1000</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>Task 15 is canceled</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n"
    );
}

// ---- sessions --------------------------------------------------------------------------------

#[tokio::test]
async fn ssl_login_only_on_the_ssllogin_path() {
    let hub = hub().await;
    let mut client = RawClient::new(hub.url());
    let wrong_path = client
        .call_raw("", 0, "sslLogin", &[kwargs([("proxyuser", Value::Nil)])])
        .await
        .unwrap();
    assert!(
        wrong_path.text().contains("could not verify client"),
        "{}",
        wrong_path.text()
    );
    let creds = client.ssl_login().await.unwrap().unwrap();
    assert!(
        creds.key.starts_with("2-"),
        "key is <user_id>-<random>: {}",
        creds.key
    );
    assert_eq!(creds.key.len(), "2-".len() + 19);
    let info = ok(&mut client, "getSessionInfo", vec![]).await;
    assert_eq!(field(&info, "authtype"), &i(2));
    assert_eq!(field(&info, "exclusive"), &Value::Nil);
    let user = ok(&mut client, "getLoggedInUser", vec![]).await;
    assert_eq!(field(&user, "name"), &s("builder1.local"));
    assert_eq!(field(&user, "usertype"), &i(1));
}

#[tokio::test]
async fn host_calls_need_an_exclusive_host_session() {
    let hub = hub().await;
    let mut anonymous = RawClient::new(hub.url());
    assert_eq!(
        fault(&mut anonymous, "host.getID", vec![]).await.message,
        "Not logged-in"
    );
    let mut admin = RawClient::new(hub.url());
    admin
        .login("kojiadmin", "kojiadmin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        fault(&mut admin, "host.getID", vec![]).await.message,
        "User 1 is not a host"
    );
    let mut shared = RawClient::new(hub.url());
    shared
        .login("builder1.local", "pw1")
        .await
        .unwrap()
        .unwrap();
    let not_exclusive = fault(&mut shared, "host.getID", vec![]).await;
    assert_eq!(
        (not_exclusive.code, not_exclusive.message.as_str()),
        (1002, "This method requires an exclusive session")
    );
    ok(&mut shared, "exclusiveSession", vec![]).await;
    assert_eq!(ok(&mut shared, "host.getID", vec![]).await, i(1));

    // A second process of the same host cannot take the lock without force, and is locked out.
    let mut second = RawClient::new(hub.url());
    second
        .login("builder1.local", "pw1")
        .await
        .unwrap()
        .unwrap();
    let locked = fault(&mut second, "exclusiveSession", vec![]).await;
    assert_eq!(
        (locked.code, locked.message.as_str()),
        (code::AUTH_LOCK, "Cannot get exclusive session")
    );
    assert_eq!(
        fault(&mut second, "getKojiVersion", vec![]).await.code,
        code::AUTH_LOCK
    );
    ok(
        &mut second,
        "exclusiveSession",
        vec![kwargs([("force", Value::Boolean(true))])],
    )
    .await;
    assert_eq!(
        fault(&mut shared, "host.getID", vec![]).await.message,
        "Invalid session or bad credentials"
    );

    // A subsession inherits the lock and may call host methods.
    let mut sub = second.subsession().await.unwrap().unwrap();
    assert_eq!(ok(&mut sub, "host.getID", vec![]).await, i(1));
    let info = ok(&mut sub, "getSessionInfo", vec![]).await;
    assert_eq!(
        field(&info, "master"),
        &Value::Long(second.session.as_ref().unwrap().id).clone_as_int()
    );
    let sub_id = sub.session.as_ref().unwrap().id;
    ok(&mut second, "logoutChild", vec![Value::Long(sub_id)]).await;
    assert_eq!(fault(&mut sub, "host.getID", vec![]).await.code, code::AUTH);
}

trait CloneAsInt {
    fn clone_as_int(&self) -> Value;
}

impl CloneAsInt for Value {
    fn clone_as_int(&self) -> Value {
        match self {
            Value::Long(n) => i32::try_from(*n).map_or(Value::Long(*n), Value::Integer),
            other => other.clone(),
        }
    }
}

#[tokio::test]
async fn callnum_sequence_and_retry_rules() {
    let hub = hub().await;
    let mut client = host_client(&hub, "builder1.local", "pw1").await;
    // callnum 0 was exclusiveSession; 1 updateHost (whitelisted), 2 a data-changing call.
    ok(
        &mut client,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let task = sleep_task(&hub);
    hub.run_scheduler();
    ok(&mut client, "host.openTask", vec![Value::Long(task)]).await;
    let retry = client
        .call_with_callnum(
            2,
            "host.setTaskWeight",
            vec![Value::Long(task), Value::Double(1.0)],
        )
        .await
        .unwrap();
    let retry = retry.unwrap_err();
    assert_eq!(retry.code, code::RETRY);
    assert_eq!(
        retry.message,
        format!(
            "unable to retry call 2 (method host.setTaskWeight) for session {}",
            client.session.as_ref().unwrap().id
        )
    );
    // Whitelisted methods may repeat the callnum.
    client
        .call_with_callnum(
            2,
            "host.updateHost",
            vec![Value::Double(0.0), Value::Boolean(true)],
        )
        .await
        .unwrap()
        .unwrap();
    let sequence = client
        .call_with_callnum(1, "getKojiVersion", vec![])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(sequence.code, code::SEQUENCE);
    // Read-only calls do not store their callnum: repeating one is fine.
    client.callnum = 3;
    ok(&mut client, "getTaskInfo", vec![Value::Long(task)]).await;
    client
        .call_with_callnum(3, "getTaskInfo", vec![Value::Long(task)])
        .await
        .unwrap()
        .unwrap();

    // 1.35 as it really was: it reads Koji-Callnum, so the client's header is never checked.
    let faithful = FakeHub::start(FakeHubConfig {
        callnum_check: koji_fakehub::CallnumCheck::AsVersion,
        ..config()
    })
    .await
    .unwrap();
    let mut client = host_client(&faithful, "builder1.local", "pw1").await;
    client
        .call_with_callnum(0, "exclusiveSession", vec![])
        .await
        .unwrap()
        .unwrap_err();
    client
        .call_with_callnum(0, "getKojiVersion", vec![])
        .await
        .unwrap()
        .unwrap();
    let info = ok(&mut client, "getSessionInfo", vec![]).await;
    assert_eq!(field(&info, "callnum"), &Value::Nil);
}

#[tokio::test]
async fn expiry_and_renewal_keep_the_session_id() {
    let hub = FakeHub::start(FakeHubConfig {
        session_renewal_timeout: Some(Duration::from_secs(24 * 3600)),
        ..config()
    })
    .await
    .unwrap();
    let mut client = host_client(&hub, "builder1.local", "pw1").await;
    let mut sub = client.subsession().await.unwrap().unwrap();
    let old = client.session.clone().unwrap();
    hub.advance_clock(Duration::from_secs(24 * 3600 + 1));
    let expired = fault(&mut client, "host.getID", vec![]).await;
    assert_eq!(
        (expired.code, expired.message.clone()),
        (
            code::AUTH_EXPIRED,
            format!("session \"{}\" has expired", old.id)
        )
    );
    assert_eq!(
        fault(&mut sub, "host.getID", vec![]).await.code,
        code::AUTH_EXPIRED,
        "subsessions expire with their master"
    );
    // Renewal: login with renew, sending the expired session's headers. The session keeps its
    // id and its exclusive lock, and gets a new key.
    let renewed = ok(
        &mut client,
        "login",
        vec![
            s("builder1.local"),
            s("pw1"),
            kwargs([("renew", Value::Boolean(true))]),
        ],
    )
    .await;
    let new_key = match field(&renewed, "session-key") {
        Value::String(key) => key.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(&renewed, "session-id"),
        &Value::Long(old.id).clone_as_int()
    );
    assert_ne!(new_key, old.key);
    client.session.as_mut().unwrap().key = new_key;
    assert_eq!(
        ok(&mut client, "host.getID", vec![]).await,
        i(1),
        "still exclusive after renewal"
    );
    let info = ok(&mut client, "getSessionInfo", vec![]).await;
    assert!(matches!(field(&info, "renew_ts"), Value::Double(_)));
    // A subsession renews the same way.
    let sub_renewed = ok(
        &mut sub,
        "login",
        vec![
            s("builder1.local"),
            s("pw1"),
            kwargs([("renew", Value::Boolean(true))]),
        ],
    )
    .await;
    sub.session.as_mut().unwrap().key = match field(&sub_renewed, "session-key") {
        Value::String(key) => key.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ok(&mut sub, "host.getID", vec![]).await, i(1));

    // What kojihub 1.35 does when the client also asks for `exclusive` (as koji's
    // ClientSession does): the expired session still holds the lock, so makeExclusive raises
    // AuthLockError, after createSession has already committed the new key. The old key is
    // then dead too.
    hub.advance_clock(Duration::from_secs(48 * 3600 + 2));
    assert_eq!(
        fault(&mut client, "host.getID", vec![]).await.code,
        code::AUTH_EXPIRED
    );
    let locked = fault(
        &mut client,
        "login",
        vec![
            s("builder1.local"),
            s("pw1"),
            kwargs([
                ("renew", Value::Boolean(true)),
                ("exclusive", Value::Boolean(true)),
            ]),
        ],
    )
    .await;
    assert_eq!(
        (locked.code, locked.message.as_str()),
        (code::AUTH_LOCK, "Cannot get exclusive session")
    );
    assert_eq!(
        fault(&mut client, "host.getID", vec![]).await.message,
        "Invalid session or bad credentials"
    );
    // With the conflict switched off, the same renewal keeps the session's own lock.
    let lenient = FakeHub::start(FakeHubConfig {
        renew_exclusive_conflicts: false,
        ..config()
    })
    .await
    .unwrap();
    let mut client = host_client(&lenient, "builder1.local", "pw1").await;
    lenient.expire_session(client.session.as_ref().unwrap().id);
    let renewed = ok(
        &mut client,
        "login",
        vec![
            s("builder1.local"),
            s("pw1"),
            kwargs([
                ("renew", Value::Boolean(true)),
                ("exclusive", Value::Boolean(true)),
            ]),
        ],
    )
    .await;
    client.session.as_mut().unwrap().key = match field(&renewed, "session-key") {
        Value::String(key) => key.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ok(&mut client, "host.getID", vec![]).await, i(1));

    // Test-side expiry works without a timeout too.
    let mut fresh = host_client(&hub, "builder1.local", "pw1").await;
    hub.expire_session(fresh.session.as_ref().unwrap().id);
    assert_eq!(
        fault(&mut fresh, "getKojiVersion", vec![]).await.code,
        code::AUTH_EXPIRED
    );
}

#[tokio::test]
async fn legacy_query_parameter_sessions_and_logout() {
    let hub = hub().await;
    let mut client = RawClient::new(hub.url());
    client
        .login("kojiadmin", "kojiadmin")
        .await
        .unwrap()
        .unwrap();
    client.legacy_query_auth = true;
    assert_eq!(
        field(&ok(&mut client, "getLoggedInUser", vec![]).await, "name"),
        &s("kojiadmin")
    );
    ok(
        &mut client,
        "logout",
        vec![kwargs([("session_id", Value::Nil)])],
    )
    .await;
    assert_eq!(
        fault(&mut client, "getLoggedInUser", vec![]).await.message,
        "Invalid session or bad credentials"
    );
    let bad = RawClient::new(hub.url())
        .login("kojiadmin", "nope")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (bad.code, bad.message.as_str()),
        (1002, "invalid username or password")
    );
}

// ---- tasks -----------------------------------------------------------------------------------

#[tokio::test]
async fn task_state_machine_and_ownership() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let mut b2 = host_client(&hub, "builder2.local", "pw2").await;
    ok(
        &mut b2,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let task = sleep_task(&hub);
    let opened = take_task(&mut b1, task).await;
    assert_eq!(field(&opened, "state"), &i(1));
    assert!(
        matches!(field(&opened, "request"), Value::String(xml) if xml.contains("<methodName>sleep</methodName>"))
    );
    // Already OPEN: openTask answers nil, for anyone.
    assert_eq!(
        ok(&mut b1, "host.openTask", vec![Value::Long(task)]).await,
        Value::Nil
    );
    assert_eq!(
        ok(&mut b2, "host.openTask", vec![Value::Long(task)]).await,
        Value::Nil
    );
    let not_owner = fault(
        &mut b2,
        "host.setTaskWeight",
        vec![Value::Long(task), Value::Double(2.0)],
    )
    .await;
    assert_eq!(
        (not_owner.code, not_owner.message.clone()),
        (1004, format!("host 2 does not own task {task}"))
    );
    ok(
        &mut b1,
        "host.setTaskWeight",
        vec![Value::Long(task), Value::Double(1.5)],
    )
    .await;
    let host_tasks = ok(&mut b1, "host.getHostTasks", vec![]).await;
    assert_eq!(
        host_tasks,
        Value::Array(vec![vstruct([
            ("id", i(1)),
            ("waiting", Value::Nil),
            ("weight", Value::Double(1.5))
        ])])
    );

    let failure = encode_fault(1005, "error building package (arch noarch)");
    ok(
        &mut b1,
        "host.failTask",
        vec![Value::Long(task), s(&failure)],
    )
    .await;
    assert_eq!(hub.task(task).unwrap().state, TaskState::Failed);
    let again = fault(
        &mut b1,
        "host.closeTask",
        vec![Value::Long(task), s(&encode_response(&Value::Nil))],
    )
    .await;
    assert_eq!(again.message, format!("host 1 does not own task {task}"));
    let result = fault(&mut b1, "getTaskResult", vec![Value::Long(task)]).await;
    assert_eq!(
        (result.code, result.message.as_str()),
        (1005, "error building package (arch noarch)")
    );
    let soft = ok(
        &mut b1,
        "getTaskResult",
        vec![Value::Long(task), Value::Boolean(false)],
    )
    .await;
    assert_eq!(field(&soft, "faultCode"), &i(1005));

    // Cancel from the test side; the host then cannot close it, and freeing a finished task fails.
    let second = sleep_task(&hub);
    take_task(&mut b1, second).await;
    assert!(hub.cancel_task(second).unwrap());
    assert_eq!(hub.task(second).unwrap().state, TaskState::Canceled);
    let late = fault(
        &mut b1,
        "host.closeTask",
        vec![Value::Long(second), s(&encode_response(&i(1)))],
    )
    .await;
    assert_eq!(late.code, 1004);
    assert_eq!(
        fault(&mut b1, "getTaskResult", vec![Value::Long(second)])
            .await
            .message,
        format!("Task {second} is canceled")
    );
    assert!(hub.free_task(second).is_err());
    let info = ok(&mut b1, "getTaskInfo", vec![Value::Long(second)]).await;
    assert_eq!(field(&info, "state"), &i(3));
}

#[tokio::test]
async fn scheduler_respects_arches_channels_refusals_and_readiness() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let mut b2 = host_client(&hub, "builder2.local", "pw2").await;
    let arm = hub
        .create_task(NewTask::new("buildArch", vec![]).arch("aarch64"))
        .unwrap();
    let repo = hub
        .create_task(NewTask::new("newRepo", vec![]).channel("createrepo"))
        .unwrap();
    assert!(
        hub.run_scheduler().is_empty(),
        "no host has said it is ready"
    );
    ok(
        &mut b1,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    ok(
        &mut b2,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let mut assignments = hub.run_scheduler();
    assignments.sort_unstable();
    assert_eq!(assignments, vec![(arm, 2), (repo, 1)]);
    // A refused task is freed and not offered to the refusing host again.
    ok(
        &mut b1,
        "host.refuseTask",
        vec![
            Value::Long(repo),
            kwargs([
                ("soft", Value::Boolean(false)),
                ("msg", s("no handler for method")),
            ]),
        ],
    )
    .await;
    assert_eq!(hub.task(repo).unwrap().state, TaskState::Free);
    assert_eq!(hub.refusals().len(), 1);
    assert_eq!(
        ok(&mut b1, "host.getTasks", vec![]).await,
        Value::Array(vec![])
    );
    // Refusing someone else's task is silently ignored.
    ok(&mut b1, "host.refuseTask", vec![Value::Long(arm)]).await;
    assert_eq!(hub.task(arm).unwrap().state, TaskState::Assigned);
    // A host silent for longer than ReadyTimeout gets nothing.
    let later = sleep_task(&hub);
    hub.advance_clock(Duration::from_secs(181));
    hub.run_scheduler();
    assert_eq!(hub.task(later).unwrap().state, TaskState::Free);
    ok(
        &mut b1,
        "host.updateHost",
        vec![
            Value::Double(0.0),
            Value::Boolean(true),
            kwargs([("data", vstruct([("maxjobs", i(0))]))]),
        ],
    )
    .await;
    hub.run_scheduler();
    assert_eq!(
        hub.task(later).unwrap().state,
        TaskState::Free,
        "maxjobs 0 from host data"
    );
    ok(
        &mut b1,
        "host.updateHost",
        vec![
            Value::Double(0.0),
            Value::Boolean(true),
            vstruct([("maxjobs", i(5))]),
        ],
    )
    .await;
    let offered = ok(&mut b1, "host.getTasks", vec![]).await;
    assert!(
        format!("{offered:?}").contains("sleep"),
        "getTasks runs the scheduler: {offered:?}"
    );
}

#[tokio::test]
async fn legacy_load_data_and_free_to_open() {
    let hub = FakeHub::start(config().with_version(HubVersion::V1_33))
        .await
        .unwrap();
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let task = sleep_task(&hub);
    assert_eq!(
        ok(&mut b1, "host.getLoadData", vec![]).await,
        Value::Array(vec![Value::Array(vec![]), Value::Array(vec![])])
    );
    ok(
        &mut b1,
        "host.updateHost",
        vec![Value::Double(0.5), Value::Boolean(true)],
    )
    .await;
    let load = ok(&mut b1, "host.getLoadData", vec![]).await;
    let Value::Array(parts) = &load else { panic!() };
    let Value::Array(hosts) = &parts[0] else {
        panic!()
    };
    let Value::Array(tasks) = &parts[1] else {
        panic!()
    };
    assert_eq!(
        field(&hosts[0], "channels"),
        &Value::Array(vec![i(1), i(2)])
    );
    assert_eq!(field(&hosts[0], "task_load"), &Value::Double(0.5));
    assert_eq!(
        field(&tasks[0], "state"),
        &i(0),
        "FREE tasks are offered on ≤1.33"
    );
    let opened = ok(&mut b1, "host.openTask", vec![Value::Long(task)]).await;
    assert_eq!(field(&opened, "host_id"), &i(1));

    let shim = FakeHub::start(config().with_version(HubVersion::V1_35))
        .await
        .unwrap();
    let mut b1 = host_client(&shim, "builder1.local", "pw1").await;
    ok(
        &mut b1,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let free = sleep_task(&shim);
    let load = ok(&mut b1, "host.getLoadData", vec![]).await;
    let Value::Array(parts) = &load else { panic!() };
    let Value::Array(me) = &parts[0] else {
        panic!()
    };
    assert_eq!(field(&me[0], "name"), &s("builder1.local"));
    assert_eq!(field(&me[0], "channels"), &Value::Array(vec![i(1), i(2)]));
    assert!(
        matches!(field(&me[0], "update_ts"), Value::Double(_)),
        "the full get_host struct"
    );
    let text = format!("{load:?}");
    assert!(
        text.contains("\"state\": Integer(4)") || text.contains("Integer(4)"),
        "≥1.34 shim lists assigned tasks: {text}"
    );
    assert_eq!(shim.task(free).unwrap().state, TaskState::Assigned);
}

#[tokio::test]
async fn subtasks_wait_and_results() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let parent = hub
        .create_task(NewTask::new("build", vec![s("x.src.rpm")]).priority(20))
        .unwrap();
    take_task(&mut b1, parent).await;
    let make = |label: &str| {
        vec![kwargs([
            ("method", s("buildArch")),
            ("arglist", Value::Array(vec![s("x.src.rpm"), i(1)])),
            ("parent", Value::Long(parent)),
            ("label", s(label)),
            ("arch", s("x86_64")),
        ])]
    };
    let first = ok(&mut b1, "host.subtask", make("x86_64")).await;
    assert_eq!(
        ok(&mut b1, "host.subtask", make("x86_64")).await,
        first,
        "idempotent per (parent, label)"
    );
    let second = ok(&mut b1, "host.subtask", make("noarch")).await;
    let (Value::Integer(first), Value::Integer(second)) = (first, second) else {
        panic!()
    };
    let child = hub.task(i64::from(first)).unwrap();
    assert_eq!(
        (child.priority, child.parent, child.owner, child.channel_id),
        (19, Some(parent), 1, 1)
    );
    assert_eq!(child.arch, "x86_64");
    let owner_opt = fault(
        &mut b1,
        "host.subtask",
        vec![kwargs([
            ("method", s("x")),
            ("arglist", Value::Array(vec![])),
            ("parent", Value::Long(parent)),
            ("owner", i(1)),
        ])],
    )
    .await;
    assert_eq!(owner_opt.code, 1000);

    ok(
        &mut b1,
        "host.taskSetWait",
        vec![Value::Long(parent), Value::Nil],
    )
    .await;
    let waiting = ok(&mut b1, "host.taskWait", vec![Value::Long(parent)]).await;
    assert_eq!(
        waiting,
        Value::Array(vec![
            Value::Array(vec![]),
            Value::Array(vec![i(first), i(second)])
        ])
    );
    // Children are scheduled, run and finish; the parent's host gets an alert.
    hub.run_scheduler();
    ok(&mut b1, "host.openTask", vec![i(first)]).await;
    ok(&mut b1, "host.openTask", vec![i(second)]).await;
    ok(
        &mut b1,
        "host.closeTask",
        vec![
            i(first),
            s(&encode_response(&vstruct([(
                "rpms",
                Value::Array(vec![s("a.rpm")]),
            )]))),
        ],
    )
    .await;
    let host_tasks = format!("{:?}", ok(&mut b1, "host.getHostTasks", vec![]).await);
    assert!(host_tasks.contains("alert"), "{host_tasks}");
    ok(
        &mut b1,
        "host.failTask",
        vec![i(second), s(&encode_fault(1005, "boom"))],
    )
    .await;
    let done = ok(&mut b1, "host.taskWait", vec![Value::Long(parent)]).await;
    assert_eq!(
        done,
        Value::Array(vec![
            Value::Array(vec![i(first), i(second)]),
            Value::Array(vec![])
        ])
    );
    let raised = fault(
        &mut b1,
        "host.taskWaitResults",
        vec![Value::Long(parent), Value::Array(vec![i(first), i(second)])],
    )
    .await;
    assert_eq!((raised.code, raised.message.as_str()), (1005, "boom"));
    let tolerated = ok(
        &mut b1,
        "host.taskWaitResults",
        vec![
            Value::Long(parent),
            Value::Array(vec![i(first), i(second)]),
            kwargs([("canfail", Value::Array(vec![i(second)]))]),
        ],
    )
    .await;
    assert_eq!(
        tolerated,
        Value::Array(vec![
            Value::Array(vec![
                i(first),
                vstruct([("rpms", Value::Array(vec![s("a.rpm")]))])
            ]),
            Value::Array(vec![
                i(second),
                vstruct([("faultCode", i(1005)), ("faultString", s("boom"))])
            ]),
        ])
    );
    // A canceled child: GenericError "Task N is canceled".
    let third = ok(&mut b1, "host.subtask", make("i686")).await;
    let Value::Integer(third) = third else {
        panic!()
    };
    ok(&mut b1, "cancelTaskChildren", vec![Value::Long(parent)]).await;
    assert_eq!(
        hub.task(i64::from(third)).unwrap().state,
        TaskState::Canceled
    );
    let canceled = fault(
        &mut b1,
        "host.taskWaitResults",
        vec![Value::Long(parent), Value::Array(vec![i(third)])],
    )
    .await;
    assert_eq!(canceled.message, format!("Task {third} is canceled"));
    // canfail only softens a canceled child: an unfinished one is still an error.
    let Value::Integer(fourth) = ok(&mut b1, "host.subtask", make("ppc64le")).await else {
        panic!()
    };
    let unfinished = fault(
        &mut b1,
        "host.taskWaitResults",
        vec![
            Value::Long(parent),
            Value::Array(vec![i(fourth)]),
            kwargs([("canfail", Value::Array(vec![i(fourth)]))]),
        ],
    )
    .await;
    assert_eq!(unfinished.message, format!("Task {fourth} is not finished"));
    let canceled_ok = ok(
        &mut b1,
        "host.taskWaitResults",
        vec![
            Value::Long(parent),
            Value::Array(vec![i(third)]),
            kwargs([("canfail", Value::Array(vec![i(third)]))]),
        ],
    )
    .await;
    assert_eq!(
        canceled_ok,
        Value::Array(vec![Value::Array(vec![
            i(third),
            vstruct([
                ("faultCode", i(1000)),
                ("faultString", s(&format!("Task {third} is canceled")))
            ])
        ])])
    );
    let children = ok(&mut b1, "getTaskChildren", vec![Value::Long(parent)]).await;
    assert!(matches!(children, Value::Array(ref c) if c.len() == 4));
}

#[tokio::test]
async fn free_tasks_skips_tasks_that_are_not_ours() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let mine = sleep_task(&hub);
    take_task(&mut b1, mine).await;
    let other = sleep_task(&hub);
    ok(
        &mut b1,
        "host.freeTasks",
        vec![Value::Array(vec![
            Value::Long(mine),
            Value::Long(other),
            i(999),
        ])],
    )
    .await;
    assert_eq!(hub.task(mine).unwrap().state, TaskState::Free);
    assert_eq!(hub.task(mine).unwrap().host_id, None);
}

#[tokio::test]
async fn buildroot_lifecycle_rules() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let task = sleep_task(&hub);
    take_task(&mut b1, task).await;
    let br = ok(
        &mut b1,
        "host.newBuildRoot",
        vec![i(1), s("x86_64"), kwargs([("task_id", Value::Long(task))])],
    )
    .await;
    let rpm = vstruct([
        ("name", s("bash")),
        ("version", s("1.0")),
        ("release", s("1")),
        ("arch", s("noarch")),
    ]);
    ok(
        &mut b1,
        "host.setBuildRootList",
        vec![br.clone(), Value::Array(vec![rpm.clone()])],
    )
    .await;
    assert_eq!(
        fault(
            &mut b1,
            "host.setBuildRootState",
            vec![br.clone(), s("INIT")]
        )
        .await
        .code,
        1000
    );
    ok(
        &mut b1,
        "host.setBuildRootState",
        vec![br.clone(), s("BUILDING")],
    )
    .await;
    assert_eq!(
        fault(
            &mut b1,
            "host.setBuildRootList",
            vec![br.clone(), Value::Array(vec![])]
        )
        .await
        .code,
        1000
    );
    // kojid sends the whole rpmdb again after the BuildRequires: only new rpms are added.
    let added = vstruct([
        ("name", s("make")),
        ("version", s("4.3")),
        ("release", s("1")),
        ("arch", s("x86_64")),
    ]);
    ok(
        &mut b1,
        "host.updateBuildRootList",
        vec![br.clone(), Value::Array(vec![rpm, added])],
    )
    .await;
    let listed = ok(
        &mut b1,
        "listBuildroots",
        vec![kwargs([
            ("hostID", i(1)),
            ("state", Value::Array(vec![i(0), i(1), i(2)])),
        ])],
    )
    .await;
    assert!(matches!(&listed, Value::Array(l) if l.len() == 1));
    ok(&mut b1, "host.setBuildRootState", vec![br.clone(), i(3)]).await;
    ok(
        &mut b1,
        "host.setBuildRootState",
        vec![br.clone(), s("EXPIRED")],
    )
    .await;
    assert_eq!(
        fault(
            &mut b1,
            "host.setBuildRootState",
            vec![br.clone(), s("BUILDING")]
        )
        .await
        .code,
        1000
    );
    let listed = ok(
        &mut b1,
        "listBuildroots",
        vec![kwargs([
            ("hostID", i(1)),
            ("state", Value::Array(vec![i(0), i(1), i(2)])),
        ])],
    )
    .await;
    assert_eq!(listed, Value::Array(vec![]));
    let names: Vec<String> = hub.buildroots()[0]
        .rpms
        .iter()
        .map(|rpm| match rpm {
            Value::Struct(members) => format!("{:?}", members.get("name")),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names.len(), 2, "bash once, make added: {names:?}");
    assert!(
        names[0].contains("bash") && names[1].contains("make"),
        "{names:?}"
    );
}

// ---- uploads ---------------------------------------------------------------------------------

fn adler(data: &[u8]) -> String {
    let mut sum = adler2::Adler32::new();
    sum.write_slice(data);
    format!("{:08x}", sum.checksum())
}

#[tokio::test]
async fn raw_upload_rules() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let task = sleep_task(&hub);
    take_task(&mut b1, task).await;
    let dir = format!("tasks/{}/{task}", task % 10000);
    let chunk = vec![7u8; 1 << 20];
    let reply = b1
        .raw_upload(&dir, "big.rpm", 0, false, &chunk)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reply,
        vstruct([
            ("fileverify", s("adler32")),
            ("hexdigest", s(&adler(&chunk))),
            ("offset", i(0)),
            ("size", i(1 << 20))
        ])
    );
    b1.raw_upload(&dir, "big.rpm", 1 << 20, false, b"tail")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hub.task_output(task, "big.rpm").unwrap().len(),
        (1 << 20) + 4
    );
    let exists = b1
        .raw_upload(&dir, "big.rpm", 0, false, b"x")
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        exists.message.starts_with("upload path exists: "),
        "{}",
        exists.message
    );
    let short = b1
        .raw_upload(&dir, "big.rpm", 10, false, b"x")
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        short.message.starts_with("Incorrect upload length for "),
        "{}",
        short.message
    );
    // overwrite truncates at the offset: the live-log pattern.
    b1.raw_upload(&dir, "build.log", 0, true, b"hello world")
        .await
        .unwrap()
        .unwrap();
    b1.raw_upload(&dir, "build.log", 5, true, b"!")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hub.task_output(task, "build.log").unwrap(), b"hello!");
    let empty = b1
        .raw_upload(&dir, "empty.log", 0, true, b"")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&empty, "hexdigest"), &s("00000001"));
    // Names and directories.
    for (reldir, name, expected) in [
        (dir.as_str(), "../x", "Invalid upload filename: ../x"),
        (dir.as_str(), ".hidden", "Invalid upload filename: .hidden"),
        ("../etc", "passwd", "Invalid upload directory: ../etc"),
        (
            "tasks/x/notanumber",
            "a",
            "Invalid task upload directory: tasks/x/notanumber",
        ),
    ] {
        let refused = b1
            .raw_upload(reldir, name, 0, true, b"x")
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.message, expected);
    }
    let other = sleep_task(&hub);
    let not_owner = b1
        .raw_upload(&format!("tasks/{other}/{other}"), "a.log", 0, true, b"x")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (not_owner.code, not_owner.message.clone()),
        (1004, format!("host 1 does not own task {other}"))
    );
    // Lock contention.
    hub.lock_upload(&dir, "build.log");
    let locked = b1
        .raw_upload(&dir, "build.log", 0, true, b"x")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(locked.code, code::LOCK);
    let check_locked = fault(&mut b1, "checkUpload", vec![s(&dir), s("build.log")]).await;
    assert_eq!(check_locked.code, code::LOCK);
    hub.unlock_upload(&dir, "build.log");
    // checkUpload and the other helpers.
    let checked = ok(
        &mut b1,
        "checkUpload",
        vec![s(&dir), s("build.log"), kwargs([("verify", s("adler32"))])],
    )
    .await;
    assert_eq!(field(&checked, "size"), &i(6));
    assert_eq!(field(&checked, "hexdigest"), &s(&adler(b"hello!")));
    assert_eq!(
        ok(&mut b1, "checkUpload", vec![s(&dir), s("nothing.log")]).await,
        Value::Nil
    );
    let listed = ok(&mut b1, "listTaskOutput", vec![Value::Long(task)]).await;
    assert_eq!(
        listed,
        Value::Array(vec![s("big.rpm"), s("build.log"), s("empty.log")])
    );
    let part = ok(
        &mut b1,
        "downloadTaskOutput",
        vec![
            Value::Long(task),
            s("build.log"),
            kwargs([("offset", i(1)), ("size", i(3))]),
        ],
    )
    .await;
    assert_eq!(part, s("ZWxs"), "base64 of 'ell'");
    // Once the task is closed, uploads into its directory are refused.
    ok(
        &mut b1,
        "host.closeTask",
        vec![Value::Long(task), s(&encode_response(&Value::Nil))],
    )
    .await;
    assert_eq!(
        b1.raw_upload(&dir, "late.log", 0, true, b"x")
            .await
            .unwrap()
            .unwrap_err()
            .code,
        1004
    );
}

#[tokio::test]
async fn legacy_upload_file() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let task = sleep_task(&hub);
    take_task(&mut b1, task).await;
    let dir = format!("tasks/{task}/{task}");
    let data = b"0123456789".repeat(100);
    let b64 = |d: &[u8]| s(&base64::engine::general_purpose::STANDARD.encode(d));
    let sha = |d: &[u8]| {
        s(&sha2::Sha256::digest(d)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>())
    };
    let pair = |d: &[u8]| Value::Array(vec![s("sha256"), sha(d)]);
    let (a, b) = data.split_at(600);
    let call = |size: i32, sum: Value, offset: i32, chunk: Value| {
        vec![s(&dir), s("f.bin"), i(size), sum, i(offset), chunk]
    };
    assert_eq!(
        ok(&mut b1, "uploadFile", call(600, pair(a), 0, b64(a))).await,
        Value::Boolean(true)
    );
    assert_eq!(
        ok(&mut b1, "uploadFile", call(400, pair(a), 600, b64(b))).await,
        Value::Boolean(false),
        "checksum mismatch"
    );
    assert_eq!(
        ok(&mut b1, "uploadFile", call(400, pair(b), 600, b64(b))).await,
        Value::Boolean(true)
    );
    assert_eq!(
        ok(&mut b1, "uploadFile", call(1000, pair(&data), -1, b64(b""))).await,
        Value::Boolean(true)
    );
    assert_eq!(hub.task_output(task, "f.bin").unwrap(), data);
    let again = fault(&mut b1, "uploadFile", call(600, pair(a), 0, b64(a))).await;
    assert!(
        again.message.starts_with("file already exists: "),
        "{}",
        again.message
    );
}

// ---- fault injection and the call log --------------------------------------------------------

#[tokio::test]
async fn fault_injection() {
    let hub = hub().await;
    let mut client = RawClient::new(hub.url());
    hub.offline_for(Duration::from_millis(300));
    let offline = fault(&mut client, "getKojiVersion", vec![]).await;
    assert_eq!(
        (offline.code, offline.message.as_str()),
        (1014, "server is offline")
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    ok(&mut client, "getKojiVersion", vec![]).await;

    hub.inject(Injection::next(1, Action::HttpStatus(502)));
    assert!(matches!(
        client.call("getKojiVersion", vec![]).await,
        Err(RawClientError::Status { status: 502, .. })
    ));
    hub.inject(Injection::method("echo", Some(1), Action::DropConnection));
    ok(&mut client, "getKojiVersion", vec![]).await;
    assert!(matches!(
        client.call("echo", vec![]).await,
        Err(RawClientError::Transport(_))
    ));
    ok(&mut client, "echo", vec![]).await;
    hub.inject(Injection::next(1, Action::MalformedXml));
    assert!(matches!(
        client.call("echo", vec![]).await,
        Err(RawClientError::Decode(_))
    ));
    hub.inject(Injection::next(
        1,
        Action::Delay(Duration::from_millis(200)),
    ));
    let started = std::time::Instant::now();
    ok(&mut client, "echo", vec![]).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    hub.inject(Injection::method(
        "getKojiVersion",
        None,
        Action::Fault {
            code: 1000,
            message: "Invalid method: getKojiVersion".into(),
        },
    ));
    assert_eq!(
        fault(&mut client, "getKojiVersion", vec![]).await.code,
        1000
    );
    assert_eq!(
        fault(&mut client, "getKojiVersion", vec![]).await.code,
        1000,
        "no count: every call"
    );
    hub.clear_injections();
    ok(&mut client, "getKojiVersion", vec![]).await;
}

#[tokio::test]
async fn call_log_has_the_transcript_shape() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    let task = sleep_task(&hub);
    take_task(&mut b1, task).await;
    b1.raw_upload(&format!("tasks/{task}/{task}"), "x.log", 0, true, b"abc")
        .await
        .unwrap()
        .unwrap();
    fault(&mut b1, "host.openTask", vec![]).await;
    let log = hub.call_log();
    assert_eq!(
        hub.called_methods(),
        [
            "login",
            "exclusiveSession",
            "host.updateHost",
            "host.getTasks",
            "host.openTask",
            "rawUpload",
            "host.openTask"
        ]
    );
    let exclusive = &log[2];
    assert_eq!(exclusive["direction"], "request");
    assert_eq!(exclusive["headers"]["koji-session-callnum"], "0");
    assert!(
        exclusive["body_xml"]
            .as_str()
            .unwrap()
            .contains("<name>__starstar</name>")
    );
    let upload = log
        .iter()
        .find(|r| r["method"] == "rawUpload" && r["direction"] == "request")
        .unwrap();
    assert_eq!(upload["query"]["filename"], "x.log");
    assert_eq!(upload["body"]["adler32"], adler(b"abc"));
    let last = log.last().unwrap();
    assert_eq!(last["direction"], "response");
    assert_eq!(last["status"], 200);
    assert_eq!(last["fault"]["faultCode"], 1019);
    assert_eq!(last["headers"]["Koji-Version"], "1.35.3");
    for (n, record) in log.iter().enumerate() {
        assert_eq!(record["seq"], n + 1);
    }
    hub.clear_call_log();
    assert!(hub.call_log().is_empty());
}

#[tokio::test]
async fn tests_can_register_methods_and_the_log_names_the_session() {
    let hub = hub().await;
    hub.register_method(
        "getBuildConfig",
        &["tag", "event"],
        1,
        false,
        |_state, _caller, args| {
            Ok(vstruct([
                ("name", s(&args.string("tag")?)),
                ("arches", s("x86_64")),
            ]))
        },
    );
    hub.register_method("host.ping", &[], 0, true, |state, caller, _args| {
        Ok(i(i32::try_from(state.verify_host(caller)?).unwrap()))
    });
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    assert_eq!(
        field(
            &ok(&mut b1, "getBuildConfig", vec![s("dist-build")]).await,
            "name"
        ),
        &s("dist-build")
    );
    assert_eq!(
        fault(&mut b1, "getBuildConfig", vec![]).await.code,
        code::PARAMETER
    );
    assert_eq!(ok(&mut b1, "host.ping", vec![]).await, i(1));
    let mut sub = b1.subsession().await.unwrap().unwrap();
    ok(&mut sub, "host.ping", vec![]).await;
    let mut anonymous = RawClient::new(hub.url());
    assert_eq!(
        fault(&mut anonymous, "host.ping", vec![]).await.message,
        "Not logged-in"
    );
    let log = hub.call_log();
    let procs: Vec<_> = log
        .iter()
        .filter(|r| r["direction"] == "request")
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_owned(),
                r["proc"].clone(),
            )
        })
        .collect();
    let sub_id = sub.session.as_ref().unwrap().id;
    assert_eq!(procs[0], ("login".to_owned(), serde_json::Value::Null));
    assert_eq!(
        procs[1],
        ("exclusiveSession".to_owned(), serde_json::json!("main"))
    );
    assert_eq!(
        procs[6],
        (
            "host.ping".to_owned(),
            serde_json::json!(format!("sub:{sub_id}"))
        )
    );
}

#[tokio::test]
async fn the_binary_serves_a_hub_with_seeded_sleep_tasks() {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_koji-fakehub"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--host",
            "builder9.local",
            "--host-password",
            "pw9",
            "--sleep-tasks",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    // The reading end stays open for the child's lifetime.
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    output.read_line(&mut first_line).unwrap();
    let url = first_line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/kojihub"),
        "{first_line}"
    );
    let mut client = RawClient::new(url);
    client
        .login("builder9.local", "pw9")
        .await
        .unwrap()
        .unwrap();
    ok(&mut client, "exclusiveSession", vec![]).await;
    ok(
        &mut client,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true), vstruct([])],
    )
    .await;
    let tasks = ok(&mut client, "host.getTasks", vec![]).await;
    child.kill().unwrap();
    child.wait().unwrap();
    drop(output);
    let Value::Array(tasks) = tasks else {
        panic!("{tasks:?}")
    };
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| field(t, "method") == &s("sleep")));
}

#[tokio::test]
async fn the_binary_installs_the_build_and_repo_sides_on_request() {
    use std::io::BufRead as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_koji-fakehub"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--build-side",
            "--repo-side",
            "--target",
            "f40",
            "--target",
            "el9",
            "--package",
            "hello",
            "--new-repo",
            "f40-build",
            "--build",
            "uploads/hello-1.0-1.src.rpm",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while !lines
        .last()
        .is_some_and(|l: &String| l.starts_with("task") && l.contains("build uploads"))
    {
        let mut line = String::new();
        assert_ne!(output.read_line(&mut line).unwrap(), 0, "{lines:?}");
        lines.push(line.trim().to_owned());
    }
    let value_after = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
            .to_owned()
    };
    let url = lines[0].rsplit(' ').next().unwrap().to_owned();
    let topdir = value_after("topdir: ");
    let topurl = value_after("topurl: ");
    assert!(
        lines
            .iter()
            .any(|l| l == "target f40: build tag f40-build (id 2), destination tag f40 (id 1)")
    );

    let mut client = RawClient::new(url);
    client
        .login("builder1.local", "builder")
        .await
        .unwrap()
        .unwrap();
    let target = ok(&mut client, "getBuildTarget", vec![s("el9")]).await;
    assert_eq!(field(&target, "build_tag_name"), &s("el9-build"));
    assert_eq!(field(&target, "dest_tag_name"), &s("el9"));
    // getTag comes from the repo side; its ids agree with the build side's target.
    let build_tag = ok(&mut client, "getTag", vec![s("el9-build")]).await;
    assert_eq!(field(&build_tag, "id"), field(&target, "build_tag"));
    let inheritance = ok(&mut client, "getFullInheritance", vec![s("el9-build")]).await;
    let Value::Array(parents) = inheritance else {
        panic!("{inheritance:?}")
    };
    assert_eq!(field(&parents[0], "parent_id"), field(&target, "dest_tag"));
    let config = ok(&mut client, "getBuildConfig", vec![s("f40-build")]).await;
    assert_eq!(field(&config, "arches"), &s("x86_64"));
    assert_eq!(
        ok(&mut client, "getRepo", vec![s("f40-build")]).await,
        Value::Nil,
        "no repo until a newRepo task makes one"
    );
    // The queued tasks reach a ready host (in the default and createrepo channels).
    ok(&mut client, "exclusiveSession", vec![]).await;
    ok(
        &mut client,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true), vstruct([])],
    )
    .await;
    let tasks = ok(&mut client, "host.getTasks", vec![]).await;
    let Value::Array(tasks) = tasks else {
        panic!("{tasks:?}")
    };
    let mut methods: Vec<&Value> = tasks.iter().map(|t| field(t, "method")).collect();
    methods.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(methods, [&s("build"), &s("newRepo")]);

    // topurl serves the topdir over plain HTTP.
    std::fs::write(std::path::Path::new(&topdir).join("hello.txt"), b"hi\n").unwrap();
    let mut stream = tokio::net::TcpStream::connect(topurl.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(output);
    assert!(
        reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("\r\n\r\nhi\n"),
        "{reply}"
    );

    // Seeding without a side to seed is refused with a reason.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_koji-fakehub"))
        .args(["--listen", "127.0.0.1:0", "--target", "f40"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--build-side or --repo-side"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_koji-fakehub"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--build-side",
            "--build",
            "x.src.rpm",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--build needs a --target"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn scheduler_takes_back_unopened_and_orphaned_tasks() {
    let hub = hub().await;
    let mut b1 = host_client(&hub, "builder1.local", "pw1").await;
    ok(
        &mut b1,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let unopened = sleep_task(&hub);
    assert_eq!(hub.run_scheduler(), vec![(unopened, 1)]);
    // The host keeps checking in but never opens it: AssignTimeout (300 s) takes it back and
    // records a soft refusal, so the same host is not given it again at once.
    hub.advance_clock(Duration::from_secs(301));
    ok(
        &mut b1,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    assert!(hub.run_scheduler().is_empty());
    assert_eq!(hub.task(unopened).unwrap().state, TaskState::Free);
    let refusal = &hub.refusals()[0];
    assert_eq!(
        (refusal.task_id, refusal.soft, refusal.msg.as_str()),
        (unopened, true, "assignment timed out")
    );

    // An OPEN task of a host silent for HostTimeout (900 s) is freed.
    let running = sleep_task(&hub);
    hub.run_scheduler();
    ok(&mut b1, "host.openTask", vec![Value::Long(running)]).await;
    hub.advance_clock(Duration::from_secs(901));
    hub.run_scheduler();
    let task = hub.task(running).unwrap();
    assert_eq!((task.state, task.host_id), (TaskState::Free, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_subsessions_upload_without_interference() {
    let hub = hub().await;
    let mut main = host_client(&hub, "builder1.local", "pw1").await;
    let task = sleep_task(&hub);
    take_task(&mut main, task).await;
    let dir = format!("tasks/{task}/{task}");
    let mut workers = Vec::new();
    for n in 0..16u8 {
        let mut sub = main.subsession().await.unwrap().unwrap();
        let dir = dir.clone();
        workers.push(tokio::spawn(async move {
            let chunk = vec![n; 256 * 1024];
            for part in 0..3i64 {
                let reply = sub
                    .raw_upload(
                        &dir,
                        &format!("part{n}.bin"),
                        part * 256 * 1024,
                        false,
                        &chunk,
                    )
                    .await;
                assert!(matches!(reply, Ok(Ok(_))), "{reply:?}");
            }
            ok(&mut sub, "host.getID", vec![]).await
        }));
    }
    for worker in workers {
        assert_eq!(worker.await.unwrap(), i(1));
    }
    for n in 0..16u8 {
        let data = hub.task_output(task, &format!("part{n}.bin")).unwrap();
        assert_eq!(data.len(), 3 * 256 * 1024);
        assert!(data.iter().all(|b| *b == n));
    }
    // Every subsession kept its own callnum sequence: 3 uploads + 1 call each.
    let per_session = hub
        .call_log()
        .into_iter()
        .filter(|r| {
            r["direction"] == "request" && r["proc"].as_str().is_some_and(|p| p.starts_with("sub:"))
        })
        .count();
    assert_eq!(per_session, 16 * 4);
}
