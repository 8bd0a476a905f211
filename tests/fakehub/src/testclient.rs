//! A deliberately simple XML-RPC client for testing the hub itself: it sends exactly what it
//! is told (session headers, callnum, raw bodies), with none of the retry or renewal logic of
//! the real client in `src/hub`.

use bytes::Bytes;
use dxr::Value;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::faults::HubFault;
use crate::xmlrpc::{StoredResult, decode_response, encode_method_call};

#[derive(Debug, thiserror::Error)]
pub enum RawClientError {
    #[error("bad request URL {0}")]
    Url(String),
    #[error("HTTP transport error: {0}")]
    Transport(String),
    #[error("HTTP status {status}: {body}")]
    Status { status: u16, body: String },
    #[error("response is not XML-RPC: {0}")]
    Decode(String),
}

/// A raw HTTP reply.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Session credentials as the hub returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCreds {
    pub id: i64,
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct RawClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Hub URL, e.g. `http://127.0.0.1:PORT/kojihub`.
    pub url: String,
    pub session: Option<SessionCreds>,
    /// The callnum the next call sends.
    pub callnum: i64,
    /// Send the session in query parameters (hubs ≤1.30) instead of headers.
    pub legacy_query_auth: bool,
}

impl RawClient {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            url: url.into(),
            session: None,
            callnum: 0,
            legacy_query_auth: false,
        }
    }

    /// POST (or another verb) a body to `url` + `suffix` with the given headers.
    pub async fn send(
        &self,
        http_method: &str,
        suffix: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<RawReply, RawClientError> {
        let uri = format!("{}{suffix}", self.url);
        let mut builder = hyper::Request::builder()
            .method(http_method)
            .uri(&uri)
            .header("User-Agent", "koji/1");
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| RawClientError::Url(uri))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| RawClientError::Transport(format!("{e:?}")))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RawClientError::Transport(e.to_string()))?
            .to_bytes()
            .to_vec();
        Ok(RawReply {
            status,
            headers,
            body,
        })
    }

    fn session_headers(&self, callnum: i64) -> Vec<(&'static str, String)> {
        match (&self.session, self.legacy_query_auth) {
            (Some(creds), false) => vec![
                ("Koji-Session-Id", creds.id.to_string()),
                ("Koji-Session-Key", creds.key.clone()),
                ("Koji-Session-Callnum", callnum.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    fn session_query(&self, callnum: i64) -> String {
        match (&self.session, self.legacy_query_auth) {
            (Some(creds), true) => format!(
                "?session-id={}&session-key={}&callnum={callnum}",
                creds.id, creds.key
            ),
            _ => String::new(),
        }
    }

    /// Send a call with an explicit callnum and path suffix; returns the raw reply.
    pub async fn call_raw(
        &self,
        suffix: &str,
        callnum: i64,
        method: &str,
        params: &[Value],
    ) -> Result<RawReply, RawClientError> {
        let mut headers = self.session_headers(callnum);
        headers.push(("Content-Type", "text/xml".to_owned()));
        let suffix = format!("{suffix}{}", self.session_query(callnum));
        self.send(
            "POST",
            &suffix,
            &headers,
            encode_method_call(method, params).into_bytes(),
        )
        .await
    }

    fn decode(reply: &RawReply) -> Result<Result<Value, HubFault>, RawClientError> {
        if reply.status != 200 {
            return Err(RawClientError::Status {
                status: reply.status,
                body: reply.text(),
            });
        }
        match decode_response(&reply.text()) {
            Ok(StoredResult::Value(value)) => Ok(Ok(value)),
            Ok(StoredResult::Fault { code, message }) => Ok(Err(HubFault::new(code, message))),
            Err(fault) => Err(RawClientError::Decode(fault.message)),
        }
    }

    /// A call with the next callnum; the outer error is transport, the inner one a fault.
    pub async fn call(
        &mut self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, HubFault>, RawClientError> {
        let callnum = self.callnum;
        if self.session.is_some() {
            self.callnum += 1;
        }
        let reply = self.call_raw("", callnum, method, &params).await?;
        Self::decode(&reply)
    }

    /// Repeat a call with a given callnum (to test SequenceError/RetryError).
    pub async fn call_with_callnum(
        &self,
        callnum: i64,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, HubFault>, RawClientError> {
        let reply = self.call_raw("", callnum, method, &params).await?;
        Self::decode(&reply)
    }

    fn adopt_session(&mut self, value: &Value) -> Option<SessionCreds> {
        let Value::Struct(sinfo) = value else {
            return None;
        };
        let id = sinfo.get("session-id").and_then(crate::xmlrpc::as_int)?;
        let key = match sinfo.get("session-key") {
            Some(Value::String(key)) => key.clone(),
            _ => return None,
        };
        let creds = SessionCreds { id, key };
        self.session = Some(creds.clone());
        self.callnum = 0;
        Some(creds)
    }

    /// `login(user, password)`; on success the client uses the new session.
    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<Result<SessionCreds, HubFault>, RawClientError> {
        let params = vec![
            Value::String(user.to_owned()),
            Value::String(password.to_owned()),
        ];
        let reply = self.call_raw("", self.callnum, "login", &params).await?;
        Ok(match Self::decode(&reply)? {
            Ok(value) => self
                .adopt_session(&value)
                .ok_or_else(|| HubFault::generic("login returned no session")),
            Err(fault) => Err(fault),
        })
    }

    /// `sslLogin` on `<url>/ssllogin`.
    pub async fn ssl_login(&mut self) -> Result<Result<SessionCreds, HubFault>, RawClientError> {
        let reply = self
            .call_raw("/ssllogin", self.callnum, "sslLogin", &[])
            .await?;
        Ok(match Self::decode(&reply)? {
            Ok(value) => self
                .adopt_session(&value)
                .ok_or_else(|| HubFault::generic("sslLogin returned no session")),
            Err(fault) => Err(fault),
        })
    }

    /// A client for a subsession created by this one.
    pub async fn subsession(&mut self) -> Result<Result<RawClient, HubFault>, RawClientError> {
        Ok(match self.call("subsession", Vec::new()).await? {
            Ok(value) => {
                let mut child = self.clone();
                match child.adopt_session(&value) {
                    Some(_) => Ok(child),
                    None => Err(HubFault::generic("subsession returned no session")),
                }
            }
            Err(fault) => Err(fault),
        })
    }

    /// One rawUpload chunk, as `ClientSession._prepUpload` sends it.
    pub async fn raw_upload(
        &mut self,
        reldir: &str,
        name: &str,
        offset: i64,
        overwrite: bool,
        data: &[u8],
    ) -> Result<Result<Value, HubFault>, RawClientError> {
        let callnum = self.callnum;
        self.callnum += 1;
        let mut headers = self.session_headers(callnum);
        headers.push(("Content-Type", "application/octet-stream".to_owned()));
        let mut query = format!(
            "?filename={}&filepath={}&fileverify=adler32&offset={offset}",
            encode_query(name),
            encode_query(reldir)
        );
        if overwrite {
            query.push_str("&overwrite=1");
        }
        if let (Some(creds), true) = (&self.session, self.legacy_query_auth) {
            query.push_str(&format!(
                "&session-id={}&session-key={}&callnum={callnum}",
                creds.id, creds.key
            ));
        }
        let reply = self.send("POST", &query, &headers, data.to_vec()).await?;
        Self::decode(&reply)
    }
}

fn encode_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
