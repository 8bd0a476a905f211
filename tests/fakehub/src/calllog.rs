//! The call log: every exchange in the shape of the golden transcripts' records
//! (shared/fixtures/hub-transcripts/README.md), so that tests assert on the same fields.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value as Json, json};
use sha2::Digest as _;

use crate::auth::RequestMeta;

#[derive(Debug)]
pub struct CallLog {
    started: Instant,
    next_xid: u64,
    records: Vec<Json>,
}

impl Default for CallLog {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            next_xid: 1,
            records: Vec::new(),
        }
    }
}

/// `{len, sha256, adler32, b64}` (or `b64_head` + `truncated` over 64 KiB), as in the
/// transcripts.
fn body_summary(body: &[u8]) -> Json {
    let sha = sha2::Sha256::digest(body);
    let mut adler = adler2::Adler32::new();
    adler.write_slice(body);
    let engine = base64::engine::general_purpose::STANDARD;
    let mut summary = Map::new();
    summary.insert("len".into(), json!(body.len()));
    summary.insert(
        "sha256".into(),
        json!(sha.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    );
    summary.insert("adler32".into(), json!(format!("{:08x}", adler.checksum())));
    if body.len() > 64 * 1024 {
        summary.insert(
            "b64_head".into(),
            json!(engine.encode(body.get(..256).unwrap_or(body))),
        );
        summary.insert("truncated".into(), json!(true));
    } else {
        summary.insert("b64".into(), json!(engine.encode(body)));
    }
    Json::Object(summary)
}

fn fault_of(body: &str) -> Json {
    if !body.contains("<fault>") {
        return Json::Null;
    }
    match dxr::FaultResponse::from_xml(body) {
        Ok(fault) => json!({"faultCode": fault.fault.code(), "faultString": fault.fault.string()}),
        Err(_) => Json::Null,
    }
}

impl CallLog {
    fn stamp(&self) -> (String, f64) {
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        (now, self.started.elapsed().as_secs_f64())
    }

    /// `proc` is `main` for a session without master, `sub:<id>` for a subsession (kojid's
    /// task processes use one each), and null without a session.
    #[allow(clippy::too_many_arguments)]
    pub fn record_request(
        &mut self,
        http_method: &str,
        meta: &RequestMeta,
        session: Option<(i64, Option<i64>)>,
        method: Option<&str>,
        body_xml: Option<&str>,
        raw: &[u8],
    ) -> u64 {
        let xid = self.next_xid;
        self.next_xid += 1;
        let (t, rel) = self.stamp();
        let headers: Map<String, Json> = meta
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        let query = if meta.query.is_empty() {
            Json::Null
        } else {
            Json::Object(
                meta.query
                    .iter()
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect(),
            )
        };
        let is_xml = body_xml.is_some_and(|b| b.trim_start().starts_with('<'));
        self.records.push(json!({
            "seq": self.records.len() + 1,
            "xid": xid,
            "t": t,
            "rel": rel,
            "proc": match session {
                Some((_, None)) => json!("main"),
                Some((id, Some(_))) => json!(format!("sub:{id}")),
                None => Json::Null,
            },
            "session_id": session.map(|(id, _)| id),
            "direction": "request",
            "http_method": http_method,
            "url_path": meta.path,
            "query": query,
            "headers": headers,
            "method": method,
            "body_xml": if is_xml { json!(body_xml) } else { Json::Null },
            "body": if is_xml { Json::Null } else { body_summary(raw) },
        }));
        xid
    }

    pub fn record_response(
        &mut self,
        xid: u64,
        method: Option<&str>,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        elapsed: Duration,
    ) {
        let (t, rel) = self.stamp();
        let text = String::from_utf8_lossy(body);
        let is_xml = text.trim_start().starts_with("<?xml");
        let headers: Map<String, Json> =
            headers.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
        self.records.push(json!({
            "seq": self.records.len() + 1,
            "xid": xid,
            "t": t,
            "rel": rel,
            "proc": Json::Null,
            "direction": "response",
            "status": status,
            "headers": headers,
            "method": method,
            "body_xml": if is_xml { json!(text) } else { Json::Null },
            "body": if is_xml { Json::Null } else { body_summary(body) },
            "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
            "fault": if is_xml { fault_of(&text) } else { Json::Null },
        }));
    }

    pub fn record_error(&mut self, xid: u64, method: Option<&str>, error: &str) {
        let (t, rel) = self.stamp();
        self.records.push(json!({
            "seq": self.records.len() + 1,
            "xid": xid,
            "t": t,
            "rel": rel,
            "proc": Json::Null,
            "direction": "error",
            "method": method,
            "error": error,
        }));
    }

    pub fn records(&self) -> &[Json] {
        &self.records
    }

    pub fn clear(&mut self) {
        self.records.clear();
    }
}
