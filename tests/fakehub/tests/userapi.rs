//! The user-side calls of `koji_fakehub::userapi` (`build`, `getUser`, `listBuilds`) and the
//! `listTagged` fields `koji list-tagged` prints, against kojihub's rules, with a raw client.

use std::collections::BTreeMap;

use koji_fakehub::build::{BUILD_COMPLETE, BUILD_FAILED, BuildSide, FakeBuild, to_json};
use koji_fakehub::faults::code;
use koji_fakehub::testclient::RawClient;
use koji_fakehub::userapi::UserApi;
use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, HubFault, TaskState, Value};
use serde_json::{Value as Json, json};

/// A hub with the build side (target `dist`: `dist-build` → `dist-dest`), the user side, one
/// host, and a non-admin user `alice` (user id 3: the host user is 2, as in kojihub's reset).
async fn hub() -> (FakeHub, BuildSide) {
    let hub = FakeHub::start(FakeHubConfig {
        hosts: vec![HostConfig::new("builder1.local").with_password("pw1")],
        users: vec![("alice".to_owned(), "apw".to_owned(), false)],
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let side = BuildSide::install(&hub);
    let build_tag = side.add_tag("dist-build", "x86_64", None);
    let dest_tag = side.add_tag("dist-dest", "", None);
    side.add_target("dist", build_tag, dest_tag);
    UserApi::install(&hub, &side);
    (hub, side)
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn kwargs<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map: BTreeMap<String, Value> = members
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    map.insert("__starstar".to_owned(), Value::Boolean(true));
    Value::Struct(map)
}

async fn user(hub: &FakeHub, name: &str, password: &str) -> RawClient {
    let mut client = RawClient::new(hub.url());
    client.login(name, password).await.unwrap().unwrap();
    client
}

async fn ok(client: &mut RawClient, method: &str, params: Vec<Value>) -> Json {
    match client.call(method, params).await {
        Ok(Ok(value)) => to_json(&value),
        other => panic!("{method} failed: {other:?}"),
    }
}

async fn fault(client: &mut RawClient, method: &str, params: Vec<Value>) -> HubFault {
    match client.call(method, params).await {
        Ok(Err(fault)) => fault,
        other => panic!("{method} should fault, got {other:?}"),
    }
}

const SRC: &str = "cli-build/1700000000.5.abc/hello-1-1.src.rpm";

fn request(hub: &FakeHub, id: i64) -> String {
    hub.task(id).unwrap().request_xml
}

#[tokio::test]
async fn build_queues_a_free_root_task_owned_by_the_caller_that_a_host_takes() {
    let (hub, _) = hub().await;
    let mut alice = user(&hub, "alice", "apw").await;
    let mut scratch = BTreeMap::new();
    scratch.insert("scratch".to_owned(), Value::Boolean(true));
    let id = ok(
        &mut alice,
        "build",
        vec![s(SRC), s("dist"), Value::Struct(scratch)],
    )
    .await
    .as_i64()
    .expect("a task id");
    let task = hub.task(id).unwrap();
    assert_eq!(
        (
            task.state,
            task.method.as_str(),
            task.arch.as_str(),
            task.owner,
            task.parent,
            task.label.clone(),
            task.priority,
            task.channel_id
        ),
        (TaskState::Free, "build", "noarch", 3, None, None, 20, 1)
    );
    let xml = request(&hub, id);
    for part in [
        SRC,
        "<string>dist</string>",
        "<name>scratch</name>",
        "<boolean>1</boolean>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }

    // The host side sees an ordinary task: the scheduler hands it out and openTask opens it.
    let mut host = user(&hub, "builder1.local", "pw1").await;
    ok(
        &mut host,
        "exclusiveSession",
        vec![kwargs([("force", Value::Boolean(true))])],
    )
    .await;
    ok(
        &mut host,
        "host.updateHost",
        vec![Value::Double(0.0), Value::Boolean(true)],
    )
    .await;
    let assigned = ok(&mut host, "host.getTasks", vec![]).await;
    assert!(
        assigned
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == id)),
        "{assigned}"
    );
    let opened = ok(&mut host, "host.openTask", vec![Value::Long(id)]).await;
    assert_eq!(opened["method"], "build");
    assert!(
        opened["request"].as_str().unwrap().contains(SRC),
        "{opened}"
    );
}

#[tokio::test]
async fn build_options_priority_and_channel_follow_kojihub() {
    let (hub, _) = hub().await;
    let mut alice = user(&hub, "alice", "apw").await;
    // opts None becomes {}, priority is relative to PRIO_DEFAULT, a named channel is used.
    let id = ok(
        &mut alice,
        "build",
        vec![
            s(SRC),
            s("dist"),
            kwargs([
                ("priority", Value::Integer(5)),
                ("channel", s("createrepo")),
            ]),
        ],
    )
    .await
    .as_i64()
    .unwrap();
    let task = hub.task(id).unwrap();
    assert_eq!((task.priority, task.channel_id), (25, 2));
    assert!(
        request(&hub, id).contains("<value><struct>\n</struct></value>"),
        "opts None → {{}}: {}",
        request(&hub, id)
    );
    // The target may be None (kojihub's policy data then has no target).
    let none_target = ok(&mut alice, "build", vec![s(SRC), Value::Nil]).await;
    assert!(none_target.as_i64().is_some());
    // Admins may ask for a higher priority (a negative offset).
    let mut admin = user(&hub, "kojiadmin", "kojiadmin").await;
    let urgent = ok(
        &mut admin,
        "build",
        vec![
            s(SRC),
            s("dist"),
            kwargs([("priority", Value::Integer(-5))]),
        ],
    )
    .await
    .as_i64()
    .unwrap();
    assert_eq!(hub.task(urgent).unwrap().priority, 15);
    assert_eq!(hub.task(urgent).unwrap().owner, 1);
}

#[tokio::test]
async fn build_faults_as_kojihub_does() {
    let (hub, _) = hub().await;
    let mut anonymous = RawClient::new(hub.url());
    let f = fault(&mut anonymous, "build", vec![s(SRC), s("dist")]).await;
    assert_eq!(
        (f.code, f.message.as_str()),
        (
            code::ACTION_NOT_ALLOWED,
            "you must be logged in for this operation"
        )
    );
    let mut alice = user(&hub, "alice", "apw").await;
    let cases: Vec<(Vec<Value>, i32, &str)> = vec![
        (vec![s(SRC)], code::PARAMETER, "missing 1 required"),
        (
            vec![Value::Integer(7), s("dist")],
            code::PARAMETER,
            "Invalid type for value '7': <class 'int'>, expected type <class 'str'>",
        ),
        (
            vec![
                s(SRC),
                s("dist"),
                kwargs([("priority", Value::Integer(-1))]),
            ],
            code::ACTION_NOT_ALLOWED,
            "only admins may create high-priority tasks",
        ),
        (
            vec![s(SRC), s("dist"), kwargs([("channel", s("nosuch"))])],
            code::GENERIC,
            "No such channel: nosuch",
        ),
        (
            vec![s(SRC), s("nosuch")],
            code::GENERIC,
            "No such build target: nosuch",
        ),
        (
            vec![s(SRC), s("dist"), Value::Array(vec![s("x")])],
            code::PLAIN,
            "<class 'AttributeError'>: 'list' object has no attribute 'get'",
        ),
    ];
    let before = hub.tasks().len();
    for (params, expected_code, text) in cases {
        let f = fault(&mut alice, "build", params.clone()).await;
        assert_eq!(f.code, expected_code, "{params:?}: {f:?}");
        assert!(f.message.contains(text), "{params:?}: {f:?}");
    }
    assert_eq!(
        hub.tasks().len(),
        before,
        "no task was made by a refused call"
    );
}

#[tokio::test]
async fn get_user_by_id_name_or_session() {
    let (hub, _) = hub().await;
    let mut alice = user(&hub, "alice", "apw").await;
    let me = ok(&mut alice, "getUser", vec![]).await;
    assert_eq!(
        me,
        json!({"id": 3, "name": "alice", "status": 0, "usertype": 0, "krb_principals": []})
    );
    assert_eq!(
        ok(&mut alice, "getUser", vec![Value::Integer(1)]).await["name"],
        "kojiadmin"
    );
    let host = ok(&mut alice, "getUser", vec![s("builder1.local")]).await;
    assert_eq!(
        (host["id"].as_i64(), host["usertype"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(ok(&mut alice, "getUser", vec![s("bob")]).await, Json::Null);
    let f = fault(&mut alice, "getUser", vec![s("bob"), Value::Boolean(true)]).await;
    assert_eq!(
        (f.code, f.message.as_str()),
        (code::GENERIC, "No such user: 'bob'")
    );
    let f = fault(
        &mut alice,
        "getUser",
        vec![Value::Integer(99), Value::Boolean(true)],
    )
    .await;
    assert_eq!(f.message, "No such user: 99");
    let mut anonymous = RawClient::new(hub.url());
    assert_eq!(ok(&mut anonymous, "getUser", vec![]).await, Json::Null);
}

fn add_build(side: &BuildSide, id: i64, name: &str, state: i64, task: Option<i64>) {
    side.with_world(|w| {
        w.builds.insert(
            id,
            FakeBuild {
                id,
                name: name.to_owned(),
                version: "1".to_owned(),
                release: "1".to_owned(),
                epoch: None,
                state,
                task_id: task,
                owner: 3,
                extra: Json::Null,
                source: None,
                files: Vec::new(),
                brmap: Json::Null,
                logs: Json::Null,
            },
        );
    });
}

#[tokio::test]
async fn list_builds_filters_by_task_state_and_prefix() {
    let (hub, side) = hub().await;
    add_build(&side, 100, "hello", BUILD_COMPLETE, Some(7));
    add_build(&side, 101, "other", BUILD_FAILED, Some(8));
    add_build(&side, 102, "imported", BUILD_COMPLETE, None);
    let mut anonymous = RawClient::new(hub.url());
    let nvrs = |list: &Json| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|b| b["nvr"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_task = ok(
        &mut anonymous,
        "listBuilds",
        vec![kwargs([("taskID", Value::Integer(7))])],
    )
    .await;
    assert_eq!(nvrs(&by_task), ["hello-1-1"]);
    assert_eq!(by_task[0]["build_id"], 100);
    assert_eq!(by_task[0]["owner_name"], "alice");
    let any_task = ok(
        &mut anonymous,
        "listBuilds",
        vec![kwargs([("taskID", Value::Integer(-1))])],
    )
    .await;
    assert_eq!(nvrs(&any_task), ["hello-1-1", "other-1-1"]);
    let complete = ok(
        &mut anonymous,
        "listBuilds",
        vec![kwargs([("state", Value::Integer(1))])],
    )
    .await;
    assert_eq!(nvrs(&complete), ["hello-1-1", "imported-1-1"]);
    let prefixed = ok(
        &mut anonymous,
        "listBuilds",
        vec![kwargs([("prefix", s("oth"))])],
    )
    .await;
    assert_eq!(nvrs(&prefixed), ["other-1-1"]);
    let f = fault(
        &mut anonymous,
        "listBuilds",
        vec![kwargs([("pattern", s("h*"))])],
    )
    .await;
    assert_eq!(f.code, code::GENERIC);
    assert!(f.message.contains("pattern"), "{f:?}");
    let f = fault(
        &mut anonymous,
        "listBuilds",
        vec![kwargs([("taskID", s("seven"))])],
    )
    .await;
    assert_eq!(f.code, code::PARAMETER);
}

#[tokio::test]
async fn list_tagged_names_the_tag_and_the_owner() {
    let (hub, side) = hub().await;
    add_build(&side, 100, "hello", BUILD_COMPLETE, Some(7));
    let dest = side.with_world(|w| {
        let dest = w.targets["dist"].2;
        w.tagged.push((dest, 100));
        dest
    });
    let mut anonymous = RawClient::new(hub.url());
    let tagged = ok(&mut anonymous, "listTagged", vec![s("dist-dest")]).await;
    assert_eq!(tagged.as_array().map(Vec::len), Some(1), "{tagged}");
    assert_eq!(
        (
            &tagged[0]["nvr"],
            &tagged[0]["tag_name"],
            &tagged[0]["tag_id"],
            &tagged[0]["owner_name"]
        ),
        (
            &json!("hello-1-1"),
            &json!("dist-dest"),
            &json!(dest),
            &json!("alice")
        )
    );
    let f = fault(&mut anonymous, "listTagged", vec![s("nosuch")]).await;
    assert_eq!(f.message, "No such tagInfo: nosuch");
}

#[tokio::test]
async fn tag_build_checks_like_kojihub_and_queues_a_tag_build_task() {
    let (hub, side) = hub().await;
    add_build(&side, 100, "hello", BUILD_COMPLETE, Some(7));
    add_build(&side, 101, "broken", BUILD_FAILED, Some(8));
    let dest = side.with_world(|w| w.targets["dist"].2);
    let mut anonymous = RawClient::new(hub.url());
    let f = fault(
        &mut anonymous,
        "tagBuild",
        vec![s("dist-dest"), s("hello-1-1")],
    )
    .await;
    assert_eq!(f.code, code::ACTION_NOT_ALLOWED, "{}", f.message);

    let mut alice = user(&hub, "alice", "apw").await;
    let cases: Vec<(Vec<Value>, i32, &str)> = vec![
        (
            vec![s("dist-dest"), s("nosuch-1-1")],
            code::GENERIC,
            "No such build: nosuch-1-1",
        ),
        (
            vec![s("nosuch"), s("hello-1-1")],
            code::GENERIC,
            "No such tagInfo: nosuch",
        ),
        (
            vec![s("dist-dest"), s("hello-1-1")],
            code::TAG,
            "Package hello not in list for dist-dest",
        ),
        (
            vec![s("dist-dest"), Value::Integer(101)],
            code::TAG,
            "build broken-1-1 not complete: state FAILED",
        ),
    ];
    for (params, want_code, want) in cases {
        let f = fault(&mut alice, "tagBuild", params.clone()).await;
        assert_eq!(
            (f.code, f.message.as_str()),
            (want_code, want),
            "{params:?}"
        );
    }
    // Listed in the parent dist-build inherits from: allowed there, by inheritance.
    side.with_tag(dest, |t| {
        t.packages.insert("hello".into(), false);
    });
    let build_tag = side.with_world(|w| w.targets["dist"].1);
    side.with_tag(build_tag, |t| t.parents.push((dest, 0)));
    let task = ok(
        &mut alice,
        "tagBuild",
        vec![s("dist-build"), s("hello-1-1")],
    )
    .await;
    let task = hub.task(task.as_i64().unwrap()).unwrap();
    assert_eq!(task.method, "tagBuild");
    assert_eq!(task.state, TaskState::Free);
    assert_eq!(task.priority, 10);
    assert_eq!(task.parent, None);
    let alice_id = hub.with_state(|st| st.user_by_name("alice").unwrap().id);
    assert_eq!(task.owner, alice_id);
    let request = request(&hub, task.id);
    for part in [
        format!("<int>{build_tag}</int>"),
        "<int>100</int>".to_owned(),
        "<boolean>0</boolean>".to_owned(),
        "<nil/>".to_owned(),
    ] {
        assert!(request.contains(&part), "{part} in {request}");
    }
    side.with_world(|w| {
        assert_eq!(
            w.policy_checks
                .last()
                .map(|(p, d)| (p.as_str(), d["operation"].clone())),
            Some(("tag", json!("tag")))
        );
    });

    // A blocked package and a denied tag policy refuse it.
    side.with_tag(build_tag, |t| {
        t.packages.insert("hello".into(), true);
    });
    let f = fault(
        &mut alice,
        "tagBuild",
        vec![s("dist-build"), s("hello-1-1")],
    )
    .await;
    assert_eq!(
        (f.code, f.message.as_str()),
        (code::TAG, "Package hello blocked in dist-build")
    );
    side.with_world(|w| w.denied_policies.insert("tag".to_owned()));
    let f = fault(&mut alice, "tagBuild", vec![s("dist-dest"), s("hello-1-1")]).await;
    assert_eq!(
        (f.code, f.message.as_str()),
        (code::ACTION_NOT_ALLOWED, "policy violation (tag)")
    );
}
