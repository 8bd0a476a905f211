//! Sessions: login, the callnum sequence, retries (§1.9), renewal on AuthExpired (§1.8),
//! subsessions (§1.6) and logout (§1.7).
//!
//! One [`HubConnection`] holds the HTTP pool, the options and the cancellation token; any
//! number of [`Session`]s (the main one and one per task) share it. Calls on one session are
//! serialised by holding its state lock for the whole call, retries included, because the hub
//! checks that callnums arrive in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dxr::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::capabilities::{HubCapabilities, HubVersion};
use super::fault::{FaultKind, KojiFault};
use super::options::{HubOptions, LoginMethod};
use super::transport::{HttpReply, PostRequest, Transport, TransportError};
use super::xmlrpc::{self, Kwargs, MulticallEntry, XmlRpcError};

/// Every way a hub call can fail.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Fault(#[from] KojiFault),
    #[error(transparent)]
    Decode(#[from] XmlRpcError),
    #[error("{method} needs a logged-in session; call login() first")]
    NotLoggedIn { method: String },
    #[error(
        "no way to log in: set `cert` (a PEM with the host's certificate and key) or `user`/`password` in kojid.conf"
    )]
    NoLoginMethod,
    #[error("login to the hub failed ({method}): {detail}")]
    LoginFailed {
        method: &'static str,
        detail: String,
    },
    #[error("the hub answered {method} with something unexpected: {detail}")]
    UnexpectedReply { method: String, detail: String },
    #[error("stopped while {during}: the worker is shutting down")]
    Cancelled { during: String },
}

impl HubError {
    pub fn fault(&self) -> Option<&KojiFault> {
        match self {
            HubError::Fault(fault) => Some(fault),
            _ => None,
        }
    }

    pub fn is_fault(&self, kind: FaultKind) -> bool {
        self.fault().is_some_and(|fault| fault.kind == kind)
    }
}

/// What the hub returned from `sslLogin`, `login` or `subsession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: i64,
    pub session_key: String,
    /// Hubs ≥1.31 read the session from headers; older ones from URL query parameters.
    pub header_auth: bool,
}

impl SessionInfo {
    fn from_value(method: &str, value: &Value) -> Result<Self, HubError> {
        let unexpected = |detail: &str| HubError::UnexpectedReply {
            method: method.to_owned(),
            detail: detail.to_owned(),
        };
        let Value::Struct(members) = value else {
            return Err(unexpected(
                "expected a session struct (nil means the hub refused the login)",
            ));
        };
        let session_id = match members.get("session-id") {
            Some(Value::Integer(id)) => i64::from(*id),
            Some(Value::Long(id)) => *id,
            _ => return Err(unexpected("no integer session-id")),
        };
        let session_key = match members.get("session-key") {
            Some(Value::String(key)) => key.clone(),
            _ => return Err(unexpected("no string session-key")),
        };
        let header_auth = matches!(members.get("header-auth"), Some(Value::Boolean(true)));
        Ok(Self {
            session_id,
            session_key,
            header_auth,
        })
    }
}

/// The shared part: options, HTTP pool, cancellation, what we learnt about the hub.
pub struct HubConnection {
    options: HubOptions,
    transport: Transport,
    cancel: CancellationToken,
    version_header: std::sync::Mutex<Option<String>>,
    capabilities: tokio::sync::OnceCell<HubCapabilities>,
}

impl HubConnection {
    pub fn new(mut options: HubOptions, cancel: CancellationToken) -> Result<Arc<Self>, HubError> {
        // koji's ssl_login forces https and keeps it for every later call: a client
        // certificate over plain HTTP would authenticate nothing.
        if options.login_method() == Some(LoginMethod::Certificate)
            && let Some(rest) = options.server.strip_prefix("http://")
        {
            tracing::warn!(server = %options.server, "certificate login needs https; using https:// for the hub URL");
            options.server = format!("https://{rest}");
        }
        check_server_url(&options.server)?;
        let transport = Transport::new(&options)?;
        Ok(Arc::new(Self {
            options,
            transport,
            cancel,
            version_header: std::sync::Mutex::new(None),
            capabilities: tokio::sync::OnceCell::new(),
        }))
    }

    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The `Koji-Version` header of the latest reply (hubs ≥1.35 send it on every reply).
    pub fn version_header(&self) -> Option<String> {
        self.version_header
            .lock()
            .ok()
            .and_then(|guard| guard.clone())
    }

    fn note_version(&self, reply: &HttpReply) {
        if let Some(version) = reply
            .headers
            .get("koji-version")
            .and_then(|value| value.to_str().ok())
            && let Ok(mut guard) = self.version_header.lock()
        {
            *guard = Some(version.to_owned());
        }
    }

    /// Sleep, unless shutdown comes first.
    pub async fn wait(&self, duration: Duration, during: &str) -> Result<(), HubError> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(HubError::Cancelled { during: during.to_owned() }),
            () = tokio::time::sleep(duration) => Ok(()),
        }
    }

    /// One attempt, plus koji's single immediate retry when a kept-alive connection was
    /// dropped by the hub between two requests.
    async fn send_once(
        &self,
        request: &PostRequest,
        what: &str,
    ) -> Result<HttpReply, TransportError> {
        match self.transport.post(request).await {
            Err(error) if error.is_dropped_connection() => {
                tracing::info!(call = what, %error, "connection dropped, retrying at once on a new connection");
                self.transport.post(request).await
            }
            other => other,
        }
    }

    /// [`Self::retry_loop`], counted and timed for `/metrics` (`adjutant_hub_calls_total`,
    /// `adjutant_hub_call_duration_seconds`); the method name is a bounded label.
    async fn send_with_retries(
        &self,
        request: &PostRequest,
        what: &str,
        callnum: Option<u64>,
        retry_transport_errors: bool,
    ) -> Result<(Value, u32), HubError> {
        let started = std::time::Instant::now();
        let result = self
            .retry_loop(request, what, callnum, retry_transport_errors)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(HubError::Fault(_)) => "fault",
            Err(HubError::Transport(_)) => "transport",
            Err(HubError::Decode(_)) => "decode",
            Err(HubError::Cancelled { .. }) => "cancelled",
            Err(_) => "error",
        };
        metrics::counter!("adjutant_hub_calls_total", "method" => what.to_owned(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("adjutant_hub_call_duration_seconds", "method" => what.to_owned())
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// The retry loop of koji's `ClientSession._callMethod` (§1.9) for one prepared request.
    async fn retry_loop(
        &self,
        request: &PostRequest,
        what: &str,
        callnum: Option<u64>,
        retry_transport_errors: bool,
    ) -> Result<(Value, u32), HubError> {
        let options = &self.options;
        let mut tries: u32 = 0;
        // Every send, offline waits included: koji's `self.retries`, which fastUpload reads
        // to decide whether checkUpload must verify the whole file.
        let mut sends: u32 = 0;
        loop {
            tries += 1;
            sends += 1;
            // A request in flight is abandoned at shutdown too (kojid's SystemExit does the
            // same); the 12 h default timeout must not hold the worker up.
            let sent = tokio::select! {
                () = self.cancel.cancelled() => {
                    return Err(HubError::Cancelled { during: format!("calling {what}") });
                }
                sent = self.send_once(request, what) => sent,
            };
            let error = match sent {
                Ok(reply) => {
                    self.note_version(&reply);
                    match xmlrpc::decode_response(&reply.body) {
                        Ok(Ok(value)) => return Ok((value, sends)),
                        Ok(Err(raw)) => {
                            let fault = KojiFault::from(raw);
                            if fault.kind == FaultKind::ServerOffline && options.offline_retry {
                                metrics::counter!("adjutant_hub_offline_waits_total").increment(1);
                                tracing::warn!(
                                    call = what,
                                    callnum,
                                    reason = %fault.message,
                                    wait_secs = options.offline_retry_interval.as_secs_f64(),
                                    "hub is offline, waiting before trying again"
                                );
                                self.wait(
                                    options.offline_retry_interval,
                                    &format!("waiting for the hub to come back online ({what})"),
                                )
                                .await?;
                                // An outage the hub reports itself is not a failed attempt.
                                tries = 0;
                                continue;
                            }
                            return Err(HubError::Fault(fault));
                        }
                        Err(decode) => HubError::Decode(decode),
                    }
                }
                Err(transport) => {
                    if transport.is_certificate_error() {
                        tracing::error!(call = what, error = %transport, "certificate problem, not retrying");
                        return Err(HubError::Transport(transport));
                    }
                    HubError::Transport(transport)
                }
            };
            if !retry_transport_errors {
                return Err(error);
            }
            if tries > options.max_retries {
                tracing::error!(call = what, callnum, attempts = tries, %error, "giving up on the hub call after max_retries retries");
                return Err(error);
            }
            tracing::warn!(call = what, callnum, attempt = tries, max_retries = options.max_retries, %error, "hub call failed, will retry");
            metrics::counter!("adjutant_hub_retries_total", "method" => what.to_owned())
                .increment(1);
            // The first retry is immediate; later ones honour retry_interval.
            if tries > 1 {
                tracing::info!(
                    call = what,
                    wait_secs = options.retry_interval.as_secs_f64(),
                    "waiting before the next try"
                );
                self.wait(options.retry_interval, &format!("waiting to retry {what}"))
                    .await?;
            }
        }
    }

    /// The hub's version and what it supports (§1.10): `Koji-Version` header, else
    /// `getKojiVersion`, else 1.22. Probed once per connection.
    pub async fn capabilities(&self, session: &Session) -> Result<HubCapabilities, HubError> {
        self.capabilities
            .get_or_try_init(|| async {
                if let Some(header) = self.version_header()
                    && let Some(version) = HubVersion::parse(&header)
                {
                    return Ok(HubCapabilities::for_version(version));
                }
                match session.call("getKojiVersion", vec![], vec![]).await {
                    Ok(Value::String(text)) => Ok(HubCapabilities::for_version(
                        HubVersion::parse(&text).ok_or_else(|| HubError::UnexpectedReply {
                            method: "getKojiVersion".to_owned(),
                            detail: format!("unreadable version {text:?}"),
                        })?,
                    )),
                    Ok(other) => Err(HubError::UnexpectedReply {
                        method: "getKojiVersion".to_owned(),
                        detail: format!("expected a string, got {other:?}"),
                    }),
                    Err(HubError::Fault(fault)) if fault.is_invalid_method() => {
                        Ok(HubCapabilities::for_version(HubVersion::new(1, 22, 0)))
                    }
                    Err(other) => Err(other),
                }
            })
            .await
            .cloned()
    }
}

/// Catch a wrong `server` at start-up rather than at the first call.
fn check_server_url(server: &str) -> Result<(), HubError> {
    let bad = |detail: &str| {
        HubError::Transport(TransportError::BadUrl {
            url: server.to_owned(),
            detail: format!(
                "{detail}; `server` must be the hub's XML-RPC URL, e.g. https://koji.example.com/kojihub"
            ),
        })
    };
    let uri: hyper::Uri = server.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(bad(&format!("scheme {other}:// is not http or https"))),
        None => return Err(bad("no http:// or https:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host name"));
    }
    if uri.query().is_some() {
        return Err(bad("a query string does not belong in it"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    Sub,
}

struct SessionState {
    info: Option<SessionInfo>,
    /// Logged in and usable; false during renewal, when the expired session's headers are
    /// still sent (the hub needs them to renew) but no retries happen.
    logged_in: bool,
    callnum: u64,
}

/// What a prepared request carries.
enum Payload<'a> {
    Call {
        method: &'a str,
        body: Bytes,
    },
    Upload {
        query: &'a [(&'a str, String)],
        data: Bytes,
    },
}

/// One Koji session: the main one, or a task's subsession.
pub struct Session {
    hub: Arc<HubConnection>,
    state: Mutex<SessionState>,
    exclusive: AtomicBool,
    role: Role,
}

impl Session {
    /// A session that is not logged in yet.
    pub fn new(hub: Arc<HubConnection>) -> Self {
        Self {
            hub,
            state: Mutex::new(SessionState {
                info: None,
                logged_in: false,
                callnum: 0,
            }),
            exclusive: AtomicBool::new(false),
            role: Role::Main,
        }
    }

    pub fn hub(&self) -> &Arc<HubConnection> {
        &self.hub
    }

    pub async fn info(&self) -> Option<SessionInfo> {
        self.state.lock().await.info.clone()
    }

    pub async fn is_logged_in(&self) -> bool {
        self.state.lock().await.logged_in
    }

    /// The callnum the next request will carry.
    pub async fn next_callnum(&self) -> u64 {
        self.state.lock().await.callnum
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive.load(Ordering::SeqCst)
    }

    /// Log in like kojid: certificate (`sslLogin` at `/ssllogin`) or password (`login`), then
    /// at once `exclusiveSession(force=…)`, which every `host.*` call needs.
    pub async fn login(&self) -> Result<(), HubError> {
        self.login_shared().await?;
        self.acquire_exclusive(self.hub.options.force_lock).await
    }

    /// Log in without taking the exclusive lock (operator tools that must not disturb a
    /// running worker).
    pub async fn login_shared(&self) -> Result<(), HubError> {
        let mut state = self.state.lock().await;
        self.login_locked(&mut state, false).await
    }

    /// `exclusiveSession(force=…)`: needed for every `host.*` call. Without `force`, a lock
    /// held by another session (a running worker) fails with AuthLockError.
    pub async fn acquire_exclusive(&self, force: bool) -> Result<(), HubError> {
        self.call(
            "exclusiveSession",
            vec![],
            vec![("force".to_owned(), Value::Boolean(force))],
        )
        .await?;
        self.exclusive.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// A call made without a session (or with one, if logged in) and without retries, like
    /// koji's anonymous calls: for probing whether the hub is there at all.
    pub async fn call_anonymous(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, HubError> {
        let mut state = self.state.lock().await;
        let body = Bytes::from(xmlrpc::encode_call(method, &args, &kwargs));
        let timeout = self.hub.options.timeout;
        self.send_locked(&mut state, &Payload::Call { method, body }, timeout)
            .await
            .map(|(value, _)| value)
    }

    async fn login_locked(&self, state: &mut SessionState, renew: bool) -> Result<(), HubError> {
        let options = &self.hub.options;
        let method = options.login_method().ok_or(HubError::NoLoginMethod)?;
        let (name, args, mut kwargs): (&'static str, Vec<Value>, Kwargs) = match &method {
            LoginMethod::Certificate => (
                "sslLogin",
                vec![],
                vec![("proxyuser".to_owned(), Value::Nil)],
            ),
            LoginMethod::Password { user, password } => (
                "login",
                vec![Value::String(user.clone()), Value::String(password.clone())],
                vec![("opts".to_owned(), Value::Nil)],
            ),
        };
        if renew {
            // koji's client also sends `exclusive=<was exclusive>`, but kojihub cannot honour
            // it: an expired session is loaded without its exclusive flag, so the hub commits
            // the new key and then `makeExclusive` finds the session's own lock and raises
            // AuthLockError; the worker is left with no valid key at all (kojihub/auth.py,
            // `Session.__init__` returns before reading `exclusive`; `sslLogin`/`login` then
            // call `makeExclusive`). Without the flag the renewal keeps the session row, and
            // with it the exclusive lock, so leaving it out is what actually renews.
            kwargs.push(("renew".to_owned(), Value::Boolean(true)));
        }
        state.logged_in = false;
        let body = Bytes::from(xmlrpc::encode_call(name, &args, &kwargs));
        let payload = Payload::Call { method: name, body };
        let outcome = self
            .send_locked(state, &payload, options.auth_timeout)
            .await;
        let (value, _) = outcome.map_err(|error| HubError::LoginFailed {
            method: name,
            detail: error.to_string(),
        })?;
        let info =
            SessionInfo::from_value(name, &value).map_err(|error| HubError::LoginFailed {
                method: name,
                detail: error.to_string(),
            })?;
        tracing::info!(
            session_id = info.session_id,
            renew,
            header_auth = info.header_auth,
            "logged in to the hub"
        );
        state.info = Some(info);
        // A renewed session keeps its id, and the hub keeps the last callnum it stored for
        // it: starting again from 0 (as koji's client does) would be a SequenceError on hubs
        // that check the callnum. A new session starts from 0.
        if !renew {
            state.callnum = 0;
        }
        state.logged_in = true;
        Ok(())
    }

    fn prepare(
        &self,
        state: &mut SessionState,
        payload: &Payload<'_>,
        timeout: Duration,
    ) -> PostRequest {
        let server = self.hub.options.server.trim_end_matches('/');
        let mut headers = Vec::new();
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Payload::Upload { query: upload, .. } = payload {
            query.extend(upload.iter().map(|(key, value)| (*key, value.clone())));
        }
        // The expired session's id and key go out during renewal too: the hub renews that one.
        if let Some(info) = &state.info {
            let callnum = state.callnum;
            state.callnum += 1;
            headers.push(("koji-session-id", info.session_id.to_string()));
            headers.push(("koji-session-key", info.session_key.clone()));
            headers.push(("koji-session-callnum", callnum.to_string()));
            if state.logged_in && !info.header_auth {
                query.push(("session-id", info.session_id.to_string()));
                query.push(("session-key", info.session_key.clone()));
                query.push(("callnum", callnum.to_string()));
            }
        }
        let mut url = match payload {
            Payload::Call {
                method: "sslLogin", ..
            } => format!("{server}/ssllogin"),
            _ => server.to_owned(),
        };
        if !query.is_empty() {
            let mut encoder = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in &query {
                encoder.append_pair(key, value);
            }
            url.push('?');
            url.push_str(&encoder.finish());
        }
        let (content_type, body) = match payload {
            Payload::Call { body, .. } => ("text/xml", body.clone()),
            Payload::Upload { data, .. } => ("application/octet-stream", data.clone()),
        };
        PostRequest {
            url,
            content_type,
            headers,
            body,
            timeout,
        }
    }

    async fn send_locked(
        &self,
        state: &mut SessionState,
        payload: &Payload<'_>,
        timeout: Duration,
    ) -> Result<(Value, u32), HubError> {
        let callnum = state.info.as_ref().map(|_| state.callnum);
        let request = self.prepare(state, payload, timeout);
        let what = match payload {
            Payload::Call { method, .. } => *method,
            Payload::Upload { .. } => "rawUpload",
        };
        // Like koji with anon_retry off: only a logged-in session retries transport errors.
        self.hub
            .send_with_retries(&request, what, callnum, state.logged_in)
            .await
    }

    /// Send under the session lock; on AuthExpired renew and replay once (fresh callnum).
    async fn send(&self, payload: Payload<'_>) -> Result<(Value, u32), HubError> {
        let mut state = self.state.lock().await;
        if !state.logged_in {
            let method = match &payload {
                Payload::Call { method, .. } => (*method).to_owned(),
                Payload::Upload { .. } => "rawUpload".to_owned(),
            };
            return Err(HubError::NotLoggedIn { method });
        }
        let timeout = self.hub.options.timeout;
        match self.send_locked(&mut state, &payload, timeout).await {
            Err(HubError::Fault(fault)) if fault.kind == FaultKind::AuthExpired => {
                tracing::warn!(reason = %fault.message, "session expired, renewing it and replaying the call");
                metrics::counter!("adjutant_hub_relogins_total").increment(1);
                self.login_locked(&mut state, true).await?;
                let (value, sends) = self.send_locked(&mut state, &payload, timeout).await?;
                Ok((value, sends + 1))
            }
            other => other,
        }
    }

    /// A plain XML-RPC call with positional and keyword arguments.
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Value, HubError> {
        let body = Bytes::from(xmlrpc::encode_call(method, &args, &kwargs));
        self.send(Payload::Call { method, body })
            .await
            .map(|(value, _)| value)
    }

    /// `multiCall`: one request, one callnum, one result or fault per entry.
    pub async fn multicall(
        &self,
        calls: &[MulticallEntry],
    ) -> Result<Vec<Result<Value, KojiFault>>, HubError> {
        let body = Bytes::from(xmlrpc::encode_multicall(calls));
        let (value, _) = self
            .send(Payload::Call {
                method: "multiCall",
                body,
            })
            .await?;
        Ok(xmlrpc::decode_multicall_results(value, calls.len())?
            .into_iter()
            .map(|entry| entry.map_err(KojiFault::from))
            .collect())
    }

    /// One `rawUpload` POST (§3.2): raw bytes as the body, parameters in the query string.
    /// Also returns how many sends it took (more than one means it was retried).
    pub async fn raw_upload(
        &self,
        query: &[(&str, String)],
        data: Bytes,
    ) -> Result<(Value, u32), HubError> {
        self.send(Payload::Upload { query, data }).await
    }

    /// A child session for one task (`subsession()`): own callnum, inherits the exclusive lock.
    pub async fn subsession(&self) -> Result<Session, HubError> {
        let value = self.call("subsession", vec![], vec![]).await?;
        let info = SessionInfo::from_value("subsession", &value)?;
        Ok(Session {
            hub: Arc::clone(&self.hub),
            state: Mutex::new(SessionState {
                info: Some(info),
                logged_in: true,
                callnum: 0,
            }),
            exclusive: AtomicBool::new(false),
            role: Role::Sub,
        })
    }

    /// Close a child session from the parent (`logoutChild(session_id)`).
    pub async fn logout_child(&self, session_id: i64) -> Result<(), HubError> {
        let id = i32::try_from(session_id).map_or(Value::Long(session_id), Value::Integer);
        self.call("logoutChild", vec![id], vec![]).await.map(|_| ())
    }

    /// `logout(session_id=nil)`: one try, no retries; an already expired session counts as
    /// logged out. Hubs before 1.31 do not know the kwarg and get a bare `logout()`.
    pub async fn logout(&self) -> Result<(), HubError> {
        let mut state = self.state.lock().await;
        if !state.logged_in {
            return Ok(());
        }
        let with_kwarg = Bytes::from(xmlrpc::encode_call(
            "logout",
            &[],
            &[("session_id".to_owned(), Value::Nil)],
        ));
        let timeout = self.hub.options.timeout;
        let mut outcome = self
            .send_once_locked(&mut state, "logout", with_kwarg, timeout)
            .await;
        if matches!(&outcome, Err(error) if error.is_fault(FaultKind::ParameterError)) {
            let bare = Bytes::from(xmlrpc::encode_call("logout", &[], &[]));
            outcome = self
                .send_once_locked(&mut state, "logout", bare, timeout)
                .await;
        }
        state.logged_in = false;
        state.info = None;
        match outcome {
            Ok(_) => Ok(()),
            Err(error) if error.is_fault(FaultKind::AuthExpired) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn send_once_locked(
        &self,
        state: &mut SessionState,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Value, HubError> {
        let request = self.prepare(state, &Payload::Call { method, body }, timeout);
        let callnum = state.info.as_ref().map(|_| state.callnum.saturating_sub(1));
        self.hub
            .send_with_retries(&request, method, callnum, false)
            .await
            .map(|(value, _)| value)
    }

    pub fn is_subsession(&self) -> bool {
        self.role == Role::Sub
    }

    /// Forget the session locally without telling the hub (after the hub closed it).
    pub async fn forget(&self) {
        let mut state = self.state.lock().await;
        state.info = None;
        state.logged_in = false;
    }

    pub async fn capabilities(&self) -> Result<HubCapabilities, HubError> {
        let hub = Arc::clone(&self.hub);
        hub.capabilities(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked_up_front() {
        assert!(check_server_url("https://koji.example.com/kojihub").is_ok());
        assert!(check_server_url("http://127.0.0.1:8080/kojihub").is_ok());
        for bad in [
            "koji.example.com/kojihub",
            "ftp://koji/kojihub",
            "",
            "https:///kojihub",
            "http://h/kojihub?x=1",
        ] {
            let error = check_server_url(bad).unwrap_err().to_string();
            assert!(error.contains("`server`"), "{bad:?}: {error}");
        }
    }
}
