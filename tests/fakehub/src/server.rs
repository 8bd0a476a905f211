//! The HTTP(S) side: hyper 1 on tokio, one task per connection, kojihub's HTTP rules
//! (POST only, 400 on an empty body, faults with status 200, `Koji-Version`), fault
//! injection, and the call log.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use dxr::Value;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::auth::RequestMeta;
use crate::calllog::CallLog;
use crate::dispatch::{dispatch, lock, lookup, open_session};
use crate::faults::HubFault;
use crate::inject::{Action, UploadCorruption};
use crate::state::HubState;
use crate::xmlrpc::{decode_method_call, encode_fault, encode_response};

/// State shared by all connections.
#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<HubState>,
    pub log: Mutex<CallLog>,
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
pub struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedOnPurpose {}

pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<openssl::ssl::SslAcceptor>,
) {
    // Connections live in this set so that stopping the hub (aborting this task) drops them.
    let mut connections = JoinSet::new();
    let tls = tls.map(Arc::new);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve(TokioIo::new(stream), shared, peer, None).await,
                        Some(acceptor) => {
                            let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else { return };
                            let Ok(mut tls_stream) = tokio_openssl::SslStream::new(ssl, stream) else { return };
                            if std::pin::Pin::new(&mut tls_stream).accept().await.is_err() {
                                return;
                            }
                            let peer_cn = peer_common_name(tls_stream.ssl());
                            serve(TokioIo::new(tls_stream), shared, peer, peer_cn).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn peer_common_name(ssl: &openssl::ssl::SslRef) -> Option<String> {
    if ssl.verify_result() != openssl::x509::X509VerifyResult::OK {
        return None;
    }
    let cert = ssl.peer_certificate()?;
    let entry = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?;
    entry.data().to_string().ok()
}

async fn serve<S>(io: TokioIo<S>, shared: Arc<Shared>, _peer: SocketAddr, peer_cn: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let peer_cn = peer_cn.clone();
        async move { handle(shared, req, peer_cn).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

fn percent_decode(text: &str) -> String {
    let replaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&replaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// `<methodName>` of a body, for the log and for per-method injections, without a full parse.
fn sniff_method_name(body: &str) -> Option<String> {
    let start = body.find("<methodName>")? + "<methodName>".len();
    let end = body.get(start..)?.find("</methodName>")? + start;
    body.get(start..end).map(|name| name.trim().to_owned())
}

struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    extra_headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn xml(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "text/xml",
            body: body.into_bytes(),
            extra_headers: Vec::new(),
        }
    }
    fn fault(fault: &HubFault) -> Self {
        Self::xml(encode_fault(fault.code, &fault.message))
    }
    fn plain(status: StatusCode, text: &str) -> Self {
        Self {
            status,
            content_type: "text/plain",
            body: text.as_bytes().to_vec(),
            extra_headers: Vec::new(),
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer_cn: Option<String>,
) -> Result<Response<Full<Bytes>>, DroppedOnPurpose> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let meta = RequestMeta {
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query()),
        headers,
        peer_cn,
    };
    let is_upload = meta.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim() == "application/octet-stream")
    });
    let text_body = if is_upload {
        None
    } else {
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    let method_name = if is_upload {
        Some("rawUpload".to_owned())
    } else {
        text_body.as_deref().and_then(sniff_method_name)
    };
    let session = meta
        .header("Koji-Session-Id")
        .or_else(|| meta.query_param("session-id"))
        .and_then(|id| id.trim().parse::<i64>().ok())
        .map(|id| {
            let master = shared
                .state
                .lock()
                .ok()
                .and_then(|s| s.sessions.get(&id).and_then(|row| row.master));
            (id, master)
        });
    let xid = match shared.log.lock() {
        Ok(mut log) => log.record_request(
            parts.method.as_str(),
            &meta,
            session,
            method_name.as_deref(),
            text_body.as_deref(),
            &body,
        ),
        Err(_) => 0,
    };

    let action = match shared.state.lock() {
        Ok(mut state) => state.injections.take(method_name.as_deref().unwrap_or("")),
        Err(_) => None,
    };
    let mut reply = None;
    let mut upload_corruption = None;
    match action {
        Some(Action::Delay(duration)) => tokio::time::sleep(duration).await,
        Some(Action::DropConnection) => {
            if let Ok(mut log) = shared.log.lock() {
                log.record_error(
                    xid,
                    method_name.as_deref(),
                    "connection dropped by fault injection",
                );
            }
            return Err(DroppedOnPurpose);
        }
        Some(Action::HttpStatus(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            reply = Some(Reply::plain(
                status,
                status.canonical_reason().unwrap_or("Error"),
            ));
        }
        Some(Action::MalformedXml) => {
            reply = Some(Reply::xml(
                "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n<member>".to_owned(),
            ));
        }
        Some(Action::Offline { message }) => {
            reply = Some(Reply::fault(&HubFault::offline(message)))
        }
        Some(Action::Fault { code, message }) => {
            reply = Some(Reply::fault(&HubFault::new(code, message)))
        }
        Some(Action::CorruptUpload(what)) => upload_corruption = Some(what),
        None => {}
    }

    let reply = match reply {
        Some(reply) => reply,
        None if parts.method != hyper::Method::POST => {
            let mut reply = Reply::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed\nThis is an XML-RPC server. Only POST requests are accepted.",
            );
            reply.extra_headers.push(("Allow", "POST".to_owned()));
            reply
        }
        None if is_upload => match handle_upload(&shared, &meta, &body, upload_corruption) {
            Ok(xml) => Reply::xml(xml),
            Err(fault) => Reply::fault(&fault),
        },
        None if body.is_empty() => Reply::plain(StatusCode::BAD_REQUEST, "400 Bad Request"),
        None => match handle_rpc(&shared, &meta, text_body.as_deref().unwrap_or("")) {
            Ok(xml) => Reply::xml(xml),
            Err(fault) => Reply::fault(&fault),
        },
    };

    let version_header = match shared.state.lock() {
        Ok(state) => match &state.config.version_header {
            Some(text) => Some(text.clone()),
            None if state.config.version.sends_version_header() => {
                Some(state.config.version.to_string())
            }
            None => None,
        },
        Err(_) => None,
    };
    let mut builder = Response::builder()
        .status(reply.status)
        .header("Content-Type", reply.content_type)
        .header("Content-Length", reply.body.len().to_string());
    let mut logged_headers = vec![
        ("Content-Length".to_owned(), reply.body.len().to_string()),
        ("Content-Type".to_owned(), reply.content_type.to_owned()),
    ];
    if let Some(version) = version_header {
        builder = builder.header("Koji-Version", version.as_str());
        logged_headers.push(("Koji-Version".to_owned(), version));
    }
    for (name, value) in &reply.extra_headers {
        builder = builder.header(*name, value.as_str());
        logged_headers.push(((*name).to_owned(), value.clone()));
    }
    if let Ok(mut log) = shared.log.lock() {
        log.record_response(
            xid,
            method_name.as_deref(),
            reply.status.as_u16(),
            &logged_headers,
            &reply.body,
            started.elapsed(),
        );
    }
    let body = Full::new(Bytes::from(reply.body));
    Ok(builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

fn handle_upload(
    shared: &Shared,
    meta: &RequestMeta,
    body: &[u8],
    corruption: Option<UploadCorruption>,
) -> Result<String, HubFault> {
    let caller = open_session(&shared.state, meta, "rawUpload")?;
    let mut value = crate::uploads::raw_upload(&shared.state, &caller, meta, body)?;
    lock(&shared.state)?.commit_callnum(&caller);
    if let (Some(what), Value::Struct(reply)) = (corruption, &mut value) {
        corrupt_upload_reply(reply, what);
    }
    Ok(encode_response(&value))
}

fn corrupt_upload_reply(reply: &mut BTreeMap<String, Value>, what: UploadCorruption) {
    match what {
        UploadCorruption::Digest => {
            let flipped = match reply.get("hexdigest") {
                Some(Value::String(digest)) => u32::from_str_radix(digest, 16)
                    .map(|sum| format!("{:08x}", !sum))
                    .unwrap_or_else(|_| "00000000".to_owned()),
                _ => "00000000".to_owned(),
            };
            reply.insert("hexdigest".to_owned(), Value::String(flipped));
        }
        UploadCorruption::Size => {
            let claimed = match reply.get("size") {
                Some(Value::Integer(size)) => i64::from(*size) + 1,
                Some(Value::Long(size)) => size.saturating_add(1),
                _ => 1,
            };
            reply.insert("size".to_owned(), crate::xmlrpc::vint(claimed));
        }
    }
}

fn handle_rpc(shared: &Shared, meta: &RequestMeta, body: &str) -> Result<String, HubFault> {
    let (version, max_len) = {
        let state = lock(&shared.state)?;
        (state.config.version, state.config.max_request_length)
    };
    if body.len() > max_len {
        return Err(HubFault::generic("Request too long"));
    }
    let call = decode_method_call(body)?;
    let custom = lock(&shared.state)?
        .custom_methods
        .contains_key(&call.method);
    if !custom
        && !matches!(call.method.as_str(), "multiCall" | "system.multicall")
        && lookup(version, &call.method).is_none()
    {
        return Err(HubFault::generic(format!(
            "Invalid method: {}",
            call.method
        )));
    }
    let mut caller = open_session(&shared.state, meta, &call.method)?;
    let value = dispatch(&shared.state, &mut caller, meta, call)?;
    Ok(encode_response(&value))
}

/// Never used as an error; lets `service_fn` infer a concrete error type in tests.
pub type NoError = Infallible;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmlrpc::{vint, vstr};

    fn upload_reply() -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("size".to_owned(), vint(9)),
            ("fileverify".to_owned(), vstr("adler32")),
            ("offset".to_owned(), vint(0)),
            ("hexdigest".to_owned(), vstr("11e60398")),
        ])
    }

    #[test]
    fn a_corrupted_digest_never_matches_the_real_one() {
        let mut reply = upload_reply();
        corrupt_upload_reply(&mut reply, UploadCorruption::Digest);
        assert_eq!(reply["hexdigest"], vstr("ee19fc67"));
        assert_eq!(reply["size"], vint(9), "only the digest is spoiled");
    }

    #[test]
    fn a_corrupted_size_claims_one_byte_more() {
        let mut reply = upload_reply();
        corrupt_upload_reply(&mut reply, UploadCorruption::Size);
        assert_eq!(reply["size"], vint(10));
        assert_eq!(reply["hexdigest"], vstr("11e60398"));
    }
}
