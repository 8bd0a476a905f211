//! TLS against an OpenSSL test server that behaves like upstream's Apache set-up: the TLS
//! handshake asks for no client certificate, and only a request for `/ssllogin` triggers a
//! TLS 1.3 post-handshake CertificateRequest. Certificates are made with the openssl CLI at
//! test time.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koji_adjutant::hub::options::HubOptions;
use koji_adjutant::hub::session::{HubConnection, HubError, Session};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslStream, SslVerifyMode, SslVersion};
use tokio_util::sync::CancellationToken;

unsafe extern "C" {
    // Not wrapped by openssl-sys; part of libssl ≥1.1.1, which the openssl crate links.
    fn SSL_verify_client_post_handshake(ssl: *mut openssl_sys::SSL) -> std::os::raw::c_int;
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// cert and key in one PEM, as kojid uses it.
    client_combined: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    for (name, subject) in [("ca", "/CN=Test Koji CA"), ("other-ca", "/CN=Someone Else")] {
        openssl(
            path,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    std::fs::write(path.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(path.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, subject) in [
        ("server", "/CN=127.0.0.1"),
        ("client", "/CN=builder1.local"),
    ] {
        openssl(
            path,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            path,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    let combined = [
        std::fs::read(path.join("client.crt")).unwrap(),
        std::fs::read(path.join("client.key")).unwrap(),
    ]
    .concat();
    std::fs::write(path.join("client.pem"), combined).unwrap();
    Pki {
        ca: path.join("ca.crt"),
        server_cert: path.join("server.crt"),
        server_key: path.join("server.key"),
        client_combined: path.join("client.pem"),
        client_cert: path.join("client.crt"),
        client_key: path.join("client.key"),
        other_ca: path.join("other-ca.crt"),
        _dir: dir,
    }
}

/// What the server saw: for each request, its path and the client certificate's CN, if any.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn start_server(pki: &Pki) -> (u16, Seen) {
    start_server_asking(pki, false)
}

/// `in_handshake`: ask for the client certificate during the handshake (Apache's
/// `SSLVerifyClient` at server level) instead of only on /ssllogin.
fn start_server_asking(pki: &Pki, in_handshake: bool) -> (u16, Seen) {
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    acceptor
        .set_min_proto_version(Some(SslVersion::TLS1_3))
        .unwrap();
    acceptor
        .set_certificate_chain_file(&pki.server_cert)
        .unwrap();
    acceptor
        .set_private_key_file(&pki.server_key, SslFiletype::PEM)
        .unwrap();
    acceptor.set_ca_file(&pki.ca).unwrap();
    // No certificate during the handshake, like Apache outside <Location /ssllogin>.
    acceptor.set_verify(if in_handshake {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    let acceptor = Arc::new(acceptor.build());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let acceptor = Arc::clone(&acceptor);
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                if let Ok(tls) = acceptor.accept(stream) {
                    serve(tls, &log);
                }
            });
        }
    });
    (port, seen)
}

fn read_request(tls: &mut SslStream<std::net::TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let read = tls.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = tls.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    Some((path, buffer[head_end..head_end + length].to_vec()))
}

fn common_name(cert: &openssl::x509::X509) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map(|entry| String::from_utf8_lossy(entry.data().as_slice()).into_owned())
}

/// Ask for the client certificate after the handshake and wait for it.
fn request_client_cert(tls: &mut SslStream<std::net::TcpStream>) -> Option<String> {
    if let Some(cert) = tls.ssl().peer_certificate() {
        // Already presented during the handshake.
        return common_name(&cert);
    }
    // SAFETY: a `&SslRef` is the address of the underlying SSL object (foreign-types' opaque
    // reference pattern); the stream outlives the calls.
    let raw = tls.ssl() as *const openssl::ssl::SslRef as *mut openssl_sys::SSL;
    let mode = (SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT).bits();
    unsafe { openssl_sys::SSL_set_verify(raw, mode, None) };
    if unsafe { SSL_verify_client_post_handshake(raw) } != 1 {
        // The client did not offer post_handshake_auth: OpenSSL refuses to ask.
        return None;
    }
    // Sends the CertificateRequest; the client answers when it next reads.
    if tls.do_handshake().is_err() {
        return None;
    }
    tls.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut scratch = [0u8; 1];
    for _ in 0..50 {
        if let Some(cert) = tls.ssl().peer_certificate() {
            tls.get_ref()
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            return common_name(&cert);
        }
        // Processes the client's Certificate/Finished; times out because no data follows.
        let _ = tls.ssl_read(&mut scratch);
    }
    None
}

fn serve(mut tls: SslStream<std::net::TcpStream>, log: &Seen) {
    while let Some((path, body)) = read_request(&mut tls) {
        let method = String::from_utf8_lossy(&body)
            .split("<methodName>")
            .nth(1)
            .and_then(|rest| rest.split("</methodName>").next())
            .unwrap_or_default()
            .to_owned();
        let (status, payload) = if path.ends_with("/ssllogin") {
            let cn = request_client_cert(&mut tls);
            log.lock().unwrap().push((path.clone(), cn.clone()));
            match cn {
                Some(_) => (
                    "200 OK",
                    "<?xml version='1.0'?><methodResponse><params><param><value><struct><member><name>session-id</name><value><int>5</int></value></member><member><name>session-key</name><value><string>5-key</string></value></member><member><name>header-auth</name><value><boolean>1</boolean></value></member></struct></value></param></params></methodResponse>".to_owned(),
                ),
                None => ("403 Forbidden", "client certificate required".to_owned()),
            }
        } else {
            log.lock().unwrap().push((path.clone(), None));
            let value = if method == "exclusiveSession" {
                "<nil/>"
            } else {
                "<int>1</int>"
            };
            (
                "200 OK",
                format!(
                    "<?xml version='1.0'?><methodResponse><params><param><value>{value}</value></param></params></methodResponse>"
                ),
            )
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        if tls.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn options(port: u16, pki: &Pki) -> HubOptions {
    HubOptions {
        server: format!("https://127.0.0.1:{port}/kojihub"),
        cert: Some(pki.client_combined.clone()),
        serverca: Some(pki.ca.clone()),
        auth_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(10),
        max_retries: 2,
        retry_interval: Duration::from_millis(10),
        ..HubOptions::default()
    }
}

async fn login(options: HubOptions) -> Result<Session, HubError> {
    let hub = HubConnection::new(options, CancellationToken::new())?;
    let session = Session::new(hub);
    session.login().await?;
    Ok(session)
}

#[tokio::test]
async fn cert_login_works_only_with_post_handshake_auth() {
    let pki = make_pki();
    let (port, seen) = start_server(&pki);

    let session = login(options(port, &pki))
        .await
        .expect("login with post-handshake auth");
    assert_eq!(
        session.call("host.getID", vec![], vec![]).await.unwrap(),
        dxr::Value::Integer(1)
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0],
            (
                "/kojihub/ssllogin".to_owned(),
                Some("builder1.local".to_owned())
            )
        );
        assert_eq!(seen[1].0, "/kojihub");
    }

    seen.lock().unwrap().clear();
    let without = HubOptions {
        post_handshake_auth: false,
        ..options(port, &pki)
    };
    let error = login(without)
        .await
        .err()
        .expect("login must fail without post-handshake auth");
    assert!(
        matches!(
            error,
            HubError::LoginFailed {
                method: "sslLogin",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("403"), "{error}");
    assert_eq!(
        seen.lock().unwrap()[0],
        ("/kojihub/ssllogin".to_owned(), None)
    );
}

#[tokio::test]
async fn separate_cert_and_key_files_work() {
    let pki = make_pki();
    let (port, seen) = start_server(&pki);
    let options = HubOptions {
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
        ..options(port, &pki)
    };
    login(options).await.expect("login");
    assert_eq!(seen.lock().unwrap()[0].1.as_deref(), Some("builder1.local"));
}

#[tokio::test]
async fn wrong_server_ca_is_a_certificate_error_and_not_retried() {
    let pki = make_pki();
    let (port, seen) = start_server(&pki);
    let hub = HubConnection::new(
        HubOptions {
            serverca: Some(pki.other_ca.clone()),
            ..options(port, &pki)
        },
        CancellationToken::new(),
    )
    .unwrap();
    let session = Session::new(hub);
    let error = session.login().await.unwrap_err();
    assert!(
        error.to_string().contains("certificate verify failed"),
        "{error}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_ssl_verify_applies_only_without_serverca() {
    let pki = make_pki();
    let (port, _seen) = start_server(&pki);
    let unverified = HubOptions {
        serverca: None,
        no_ssl_verify: true,
        ..options(port, &pki)
    };
    login(unverified)
        .await
        .expect("no_ssl_verify without serverca skips verification");
    let still_verified = HubOptions {
        serverca: Some(pki.other_ca.clone()),
        no_ssl_verify: true,
        ..options(port, &pki)
    };
    assert!(
        login(still_verified).await.is_err(),
        "serverca wins over no_ssl_verify, as in kojid"
    );
}

#[tokio::test]
async fn unreadable_cert_says_what_to_fix() {
    let pki = make_pki();
    let options = HubOptions {
        cert: Some(pki.ca.with_file_name("missing.pem")),
        ..options(1, &pki)
    };
    let error = HubConnection::new(options, CancellationToken::new())
        .err()
        .expect("error");
    let text = error.to_string();
    assert!(
        text.contains("missing.pem") && text.contains("`cert`"),
        "{text}"
    );
}

#[tokio::test]
async fn certificate_login_forces_https_like_koji() {
    let pki = make_pki();
    let (port, seen) = start_server(&pki);
    let options = HubOptions {
        server: format!("http://127.0.0.1:{port}/kojihub"),
        ..options(port, &pki)
    };
    let session = login(options)
        .await
        .expect("http:// is rewritten to https:// for cert login");
    assert_eq!(
        session.hub().options().server,
        format!("https://127.0.0.1:{port}/kojihub")
    );
    assert_eq!(seen.lock().unwrap()[0].1.as_deref(), Some("builder1.local"));
}

#[tokio::test]
async fn cert_asked_for_in_the_handshake_works_too() {
    let pki = make_pki();
    let (port, seen) = start_server_asking(&pki, true);
    let without_pha = HubOptions {
        post_handshake_auth: false,
        ..options(port, &pki)
    };
    let session = login(without_pha).await.expect("login");
    session.call("host.getID", vec![], vec![]).await.unwrap();
    assert_eq!(seen.lock().unwrap()[0].1.as_deref(), Some("builder1.local"));
}

#[tokio::test]
async fn system_trust_store_is_used_without_serverca() {
    // OpenSSL's default verify paths honour SSL_CERT_FILE. Setting it inside this process
    // would race with the other tests' OpenSSL contexts, so the trusting half runs in a child
    // process of this test binary with the variable set from the start.
    if let Ok(port) = std::env::var("HUB_TLS_SYSTEM_STORE_PORT") {
        let options = HubOptions {
            server: format!("https://127.0.0.1:{port}/kojihub"),
            cert: std::env::var_os("HUB_TLS_CLIENT_PEM").map(Into::into),
            auth_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            ..HubOptions::default()
        };
        login(options)
            .await
            .expect("the system store (SSL_CERT_FILE) is trusted when serverca is unset");
        return;
    }
    let pki = make_pki();
    let (port, _seen) = start_server(&pki);
    let system = HubOptions {
        serverca: None,
        ..options(port, &pki)
    };
    let error = login(system)
        .await
        .err()
        .expect("our test CA is not in the system store");
    assert!(
        error.to_string().contains("certificate verify failed"),
        "{error}"
    );
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "system_trust_store_is_used_without_serverca"])
        .env("SSL_CERT_FILE", &pki.ca)
        .env("HUB_TLS_SYSTEM_STORE_PORT", port.to_string())
        .env("HUB_TLS_CLIENT_PEM", &pki.client_combined)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&child.stderr)
    );
}
