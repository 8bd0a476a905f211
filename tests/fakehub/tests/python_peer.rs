//! The fake hub checked by a client nobody here wrote: upstream koji 1.36.1's `ClientSession`
//! and `koji` CLI (`pip install --no-deps koji==1.36.1 requests python-dateutil six
//! defusedxml`). The Python side asserts on every reply, so a misbehaving hub fails the test.

use std::process::Command;
use std::time::Duration;

use koji_fakehub::{
    Action, FakeHub, FakeHubConfig, HostConfig, Injection, NewTask, TaskState, Value,
};

const PEER_SCRIPT: &str = r#"
import os, sys, zlib
import koji
from koji.xmlrpcplus import dumps

url, task_id, upload_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = {'max_retries': 3, 'retry_interval': 0.1, 'offline_retry': True, 'offline_retry_interval': 0.2,
        'user': 'builder1.local', 'password': 'secret'}
session = koji.ClientSession(url, opts)
assert session.getKojiVersion() == '1.35.3'
session.login()
assert session.logged_in and session.sinfo['header-auth'] is True
session.exclusiveSession(force=True)
assert session.echo('OK') == ['OK']
# The hub answers ServerOffline once (injected); the client waits and retries.
assert session.getLoggedInUser()['name'] == 'builder1.local'
# The hub answers HTTP 502 once (injected); the client retries the same callnum.
assert session.host.getID() == 1
host = session.host.getHost()
assert host['name'] == 'builder1.local' and host['capacity'] == 2.0, host
session.host.updateHost(0.0, True, data={'methods': ['sleep'], 'maxjobs': 4})
assigned = session.host.getTasks()
assert [t['id'] for t in assigned] == [task_id], assigned
info = session.getTaskInfo(task_id, request=True)
assert info['request'] == [3] and info['state'] == koji.TASK_STATES['ASSIGNED'], info
opened = session.host.openTask(task_id)
assert opened['state'] == koji.TASK_STATES['OPEN'] and '<methodName>sleep</methodName>' in opened['request']
session.host.setTaskWeight(task_id, 0.5)
assert session.host.getHostTasks() == [{'id': task_id, 'waiting': None, 'weight': 0.5}]

sub = session.subsession()
assert sub.getSessionInfo()['master'] == session.sinfo['session-id']
child = sub.host.subtask(method='sleep', arglist=[1], parent=task_id, label='nap', arch='noarch')
assert sub.host.subtask(method='sleep', arglist=[1], parent=task_id, label='nap') == child
sub.host.taskSetWait(task_id, [child])
assert sub.host.taskWait(task_id) == [[], [child]]

# fastUpload through uploadWrapper: 1 MiB rawUpload chunks, adler32 checked, then checkUpload.
updir = koji.pathinfo.taskrelpath(task_id)
sub.uploadWrapper(upload_file, updir, name='payload.bin')
with open(upload_file, 'rb') as f:
    data = f.read()
check = sub.checkUpload(updir, 'payload.bin', verify='adler32')
assert check['size'] == len(data), check
assert check['hexdigest'] == '%08x' % (zlib.adler32(data) & 0xffffffff), check
assert sub.listTaskOutput(task_id) == ['payload.bin']
try:
    sub.uploadWrapper(upload_file, 'tasks/9999/9999', name='x.bin')
    raise AssertionError('upload into a task we do not own must fail')
except koji.ActionNotAllowed as e:
    assert 'does not own task 9999' in str(e)

# A multicall with one failing entry.
with sub.multicall() as m:
    version = m.getKojiVersion()
    missing = m.getTaskInfo(424242, strict=True)
    echoed = m.echo(1, 'two')
assert version.result == '1.35.3' and echoed.result == [1, 'two']
try:
    missing.result
    raise AssertionError('strict getTaskInfo of a missing task must fault')
except koji.GenericError as e:
    assert 'No such task: 424242' in str(e)

for bad in (lambda: sub.getTaskInfo(), lambda: sub.getTaskInfo(1, bogus=1)):
    try:
        bad()
        raise AssertionError('signature mismatch must be a ParameterError')
    except koji.ParameterError:
        pass

sub.host.closeTask(task_id, dumps(({'done': True},), methodresponse=1))
assert sub.getTaskResult(task_id) == {'done': True}
try:
    sub.host.failTask(task_id, dumps(koji.xmlrpcplus.Fault(1000, 'late')))
    raise AssertionError('a closed task cannot be failed')
except koji.ActionNotAllowed:
    pass
session.logoutChild(sub.sinfo['session-id'])
session.logout()
print('PEER-OK')
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn require_koji_module() {
    let probe = Command::new(python())
        .args(["-c", "import koji, requests; print(koji.__file__)"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "this test needs upstream koji for python3: pip install --no-deps koji==1.36.1 requests \
             python-dateutil six defusedxml ({other:?})"
        ),
    }
}

fn payload() -> Vec<u8> {
    // 2.5 MiB of non-repeating bytes: three rawUpload chunks, the last one short.
    (0..(5u32 << 19))
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_client_session_drives_the_hub() {
    require_koji_module();
    let hub = FakeHub::start(FakeHubConfig {
        hosts: vec![HostConfig::new("builder1.local").with_password("secret")],
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    let task = hub
        .create_task(NewTask::new("sleep", vec![Value::Integer(3)]))
        .unwrap();
    hub.inject(Injection::method(
        "getLoggedInUser",
        Some(1),
        Action::Offline {
            message: "server is offline".into(),
        },
    ));
    hub.inject(Injection::method(
        "host.getID",
        Some(1),
        Action::HttpStatus(502),
    ));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("peer.py");
    std::fs::write(&script, PEER_SCRIPT).unwrap();
    let upload = dir.path().join("payload.bin");
    std::fs::write(&upload, payload()).unwrap();
    let url = hub.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(&script)
            .arg(&url)
            .arg(task.to_string())
            .arg(&upload)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PEER-OK"),
        "peer failed:\n{stdout}\n{stderr}"
    );

    // What the hub recorded agrees with what the peer did.
    let closed = hub.task(task).unwrap();
    assert_eq!(closed.state, TaskState::Closed);
    assert_eq!(
        hub.task_result(task).unwrap(),
        koji_fakehub::xmlrpc::vstruct([("done", Value::Boolean(true))])
    );
    assert_eq!(hub.task_output(task, "payload.bin").unwrap(), payload());
    let child = hub
        .tasks()
        .into_iter()
        .find(|t| t.parent == Some(task))
        .unwrap();
    assert_eq!((child.label.as_deref(), child.priority), (Some("nap"), 19));
    let methods = hub.called_methods();
    let uploads = methods.iter().filter(|m| *m == "rawUpload").count();
    assert_eq!(
        uploads,
        3 + 1,
        "three chunks of payload.bin and one refused upload"
    );
    assert_eq!(
        methods.iter().filter(|m| *m == "getLoggedInUser").count(),
        2,
        "offline once, then retried"
    );
    assert_eq!(
        methods.iter().filter(|m| *m == "host.getID").count(),
        2,
        "502 once, then retried"
    );
    let retried: Vec<_> = hub
        .call_log()
        .into_iter()
        .filter(|r| r["direction"] == "request" && r["method"] == "host.getID")
        .map(|r| r["headers"]["koji-session-callnum"].clone())
        .collect();
    assert_eq!(retried[0], retried[1], "a retry keeps its callnum");
    assert!(methods.contains(&"multiCall".to_owned()));
    assert!(
        hub.sessions().iter().all(|s| s.closed),
        "logout closed the session and its subsession"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_koji_cli_talks_to_the_hub() {
    require_koji_module();
    let hub = FakeHub::start(FakeHubConfig::default()).await.unwrap();
    let task = hub
        .create_task(NewTask::new("sleep", vec![Value::Integer(30)]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("koji.conf");
    std::fs::write(
        &conf,
        format!(
            "[koji]\nserver = {}\nauthtype = password\nmax_retries = 0\n",
            hub.url()
        ),
    )
    .unwrap();
    let conf = conf.to_string_lossy().into_owned();
    let run = move |args: &[&str], password: &str| {
        let mut command =
            Command::new(std::env::var("KOJI_CLI").unwrap_or_else(|_| "koji".to_owned()));
        command
            .args(["-c", &conf, "--user", "kojiadmin", "--password", password])
            .args(args);
        command.output().unwrap()
    };
    let (hello, version, info, wrong, listed, cancel) = tokio::task::spawn_blocking(move || {
        (
            run(&["hello"], "kojiadmin"),
            run(&["call", "getKojiVersion"], "kojiadmin"),
            run(
                &[
                    "call",
                    "--json-output",
                    "getTaskInfo",
                    &task.to_string(),
                    "request=True",
                ],
                "kojiadmin",
            ),
            run(&["hello"], "wrong"),
            run(&["list-tasks"], "kojiadmin"),
            run(&["cancel", &task.to_string()], "kojiadmin"),
        )
    })
    .await
    .unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(hello.status.success(), "{}", text(&hello));
    assert!(
        text(&hello).contains("kojiadmin") && text(&hello).contains("Koji 1.35.3"),
        "{}",
        text(&hello)
    );
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "'1.35.3'");
    let info: serde_json::Value =
        serde_json::from_slice(&info.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&info)));
    assert_eq!(
        (
            info["id"].as_i64(),
            info["method"].as_str(),
            info["request"][0].as_i64()
        ),
        (Some(task), Some("sleep"), Some(30))
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("invalid username or password"),
        "{}",
        text(&wrong)
    );
    let listing = text(&listed);
    assert!(listed.status.success(), "{listing}");
    let row = listing
        .lines()
        .find(|l| l.starts_with(&task.to_string()))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(
        row.contains("kojiadmin") && row.contains("FREE") && row.contains("sleep"),
        "{listing}"
    );
    assert!(cancel.status.success(), "{}", text(&cancel));
    assert_eq!(hub.task(task).unwrap().state, TaskState::Canceled);
    // Give the CLI's logouts time to land before the hub goes away.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A throwaway PKI: a CA, a server certificate for 127.0.0.1 and client certificates.
mod pki {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509, X509NameBuilder};

    pub fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    pub fn cert(
        cn: &str,
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
        server: bool,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        builder
            .set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        builder.set_subject_name(&name).unwrap();
        builder.set_pubkey(key).unwrap();
        builder
            .set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        match issuer {
            None => {
                builder.set_issuer_name(&name).unwrap();
                builder
                    .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                builder.sign(key, MessageDigest::sha256()).unwrap();
            }
            Some((ca, ca_key)) => {
                builder.set_issuer_name(ca.subject_name()).unwrap();
                if server {
                    let san = SubjectAlternativeName::new()
                        .ip("127.0.0.1")
                        .build(&builder.x509v3_context(Some(ca), None))
                        .unwrap();
                    builder.append_extension(san).unwrap();
                }
                builder.sign(ca_key, MessageDigest::sha256()).unwrap();
            }
        }
        builder.build()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_ssl_login_over_https_uses_the_certificate_cn() {
    require_koji_module();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ca_key = pki::key();
    let ca = pki::cert("fakehub test CA", &ca_key, None, false);
    let server_key = pki::key();
    let server = pki::cert("127.0.0.1", &server_key, Some((&ca, &ca_key)), true);
    std::fs::write(path("ca.pem"), ca.to_pem().unwrap()).unwrap();
    std::fs::write(path("server.pem"), server.to_pem().unwrap()).unwrap();
    std::fs::write(
        path("server.key"),
        server_key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    for cn in ["builder1.local", "stranger"] {
        let key = pki::key();
        let cert = pki::cert(cn, &key, Some((&ca, &ca_key)), false);
        let mut pem = cert.to_pem().unwrap();
        pem.extend(key.private_key_to_pem_pkcs8().unwrap());
        std::fs::write(path(&format!("{cn}.pem")), pem).unwrap();
    }
    let hub = FakeHub::start(FakeHubConfig {
        tls: Some(koji_fakehub::TlsConfig {
            cert_pem: path("server.pem"),
            key_pem: path("server.key"),
            client_ca_pem: Some(path("ca.pem")),
        }),
        // Over TLS, only a verified certificate says who logs in.
        ssl_login_user: None,
        ..FakeHubConfig::default()
    })
    .await
    .unwrap();
    assert!(hub.url().starts_with("https://127.0.0.1:"));
    let script = r#"
import sys, koji
url, d = sys.argv[1], sys.argv[2]
s = koji.ClientSession(url, {'max_retries': 0})
assert s.ssl_login(cert=d + '/builder1.local.pem', serverca=d + '/ca.pem')
assert s.getLoggedInUser()['name'] == 'builder1.local'
assert s.getSessionInfo()['authtype'] == koji.AUTHTYPES['SSL']
s.exclusiveSession(force=True)
assert s.host.getID() == 1
other = koji.ClientSession(url, {'max_retries': 0})
try:
    other.ssl_login(cert=d + '/stranger.pem', serverca=d + '/ca.pem')
    raise AssertionError('a certificate of an unknown user must not log in')
except koji.AuthError as e:
    assert 'Unknown user: stranger' in str(e), e
print('TLS-OK')
"#;
    std::fs::write(path("tls.py"), script).unwrap();
    let (script_path, url, dir_arg) = (path("tls.py"), hub.url(), dir.path().to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script_path)
            .arg(url)
            .arg(dir_arg)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && all.contains("TLS-OK"), "{all}");
    assert!(
        hub.called_methods()
            .starts_with(&["sslLogin".to_owned(), "getLoggedInUser".to_owned()])
    );
}

/// Our encoder against Python's own marshaller: Python decodes our document and writes it
/// again with `koji.xmlrpcplus.dumps`; the bytes must be identical.
#[test]
fn encoder_is_byte_identical_to_python_xmlrpc() {
    use koji_fakehub::xmlrpc::{encode_fault, encode_response, vstruct};
    require_koji_module();
    let values = vec![
        Value::Nil,
        Value::Boolean(true),
        Value::Integer(-7),
        Value::Long(1 << 40),
        Value::Long(42),
        Value::Double(2.0),
        Value::Double(0.1),
        Value::Double(1_795_723_412.601_172),
        Value::Double(1e16),
        Value::Double(1.5e-5),
        Value::Double(-0.0),
        Value::String("a < b && c > d — ünïcode".into()),
        Value::String(String::new()),
        Value::Base64(b"short".to_vec()),
        Value::Base64((0..200u8).collect()),
        Value::Base64(Vec::new()),
        Value::Array(vec![]),
        vstruct([]),
        Value::Array(vec![Value::Array(vec![
            Value::Integer(14),
            vstruct([("logs", Value::Array(vec![Value::String("x".into())]))]),
        ])]),
        vstruct([
            ("waiting", Value::Nil),
            ("weight", Value::Double(0.2)),
            ("id", Value::Integer(13)),
        ]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut documents = Vec::new();
    for value in &values {
        documents.push(encode_response(value));
    }
    documents.push(encode_fault(1000, "Task 15 is canceled"));
    let input = dir.path().join("docs.json");
    std::fs::write(&input, serde_json::to_vec(&documents).unwrap()).unwrap();
    let script = r#"
import json, sys
import koji
from koji.xmlrpcplus import dumps, Fault
import xmlrpc.client
docs = json.load(open(sys.argv[1]))
bad = 0
for doc in docs:
    try:
        params, _ = xmlrpc.client.loads(doc)
        again = dumps(params, methodresponse=1)
    except Fault as fault:
        again = dumps(fault)
    if again != doc:
        bad += 1
        print('MISMATCH\nours:   %r\npython: %r' % (doc, again))
print('checked', len(docs), 'bad', bad)
sys.exit(1 if bad else 0)
"#;
    let script_path = dir.path().join("diff.py");
    std::fs::write(&script_path, script).unwrap();
    let output = Command::new(python())
        .arg(&script_path)
        .arg(&input)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("checked {} bad 0", values.len() + 1)),
        "{text}"
    );
}
