//! Request handling: the route table, the guard (read-only, bearer token), security headers,
//! query validation and the endpoints themselves.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use koji_adjutant_actors::logs::TAIL_LINES;
use koji_adjutant_actors::supervisor::GetRunningTasks;
use serde::Serialize;

use super::model::{
    self, API_VERSION, AnyTask, ItemDocument, LIVE_LOG_NAME, ListDocument, LogDocument,
    STATUS_TAIL_LINES,
};
use super::{AppState, HEALTH_TIMEOUT, MAX_LOG_FOLLOWERS, MAX_TAIL_LINES, dashboard};

type State = web::Data<AppState>;

/// Longest query string accepted; every legitimate one is a few dozen bytes.
const MAX_QUERY_BYTES: usize = 512;
/// Default `tail` of the logs endpoint.
const DEFAULT_TAIL: usize = 100;
/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

pub(crate) const STATUS_CSS: &str = include_str!("static/status.css");
pub(crate) const STATUS_JS: &str = include_str!("static/status.js");

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/status", web::get().to(status_page))
        .route("/status.json", web::get().to(status_json))
        .route("/api/v1/status", web::get().to(status_json))
        .route("/api/v1/containers", web::get().to(containers))
        .route("/api/v1/containers/{id}", web::get().to(container))
        .route("/api/v1/tasks", web::get().to(tasks))
        .route("/api/v1/tasks/{id}", web::get().to(task))
        .route("/api/v1/tasks/{id}/logs", web::get().to(task_logs))
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/static/status.css", web::get().to(css))
        .route("/static/status.js", web::get().to(js))
        .default_service(web::to(not_found));
}

pub(crate) fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .add((header::CACHE_CONTROL, "no-store"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    api_version: u32,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    status: u16,
    message: &'a str,
}

pub(crate) fn error_response(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        api_version: API_VERSION,
        error: ErrorDetail {
            status: status.as_u16(),
            message,
        },
    })
}

/// A refused request: the status and the message for the client.
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn response(&self) -> HttpResponse {
        error_response(self.status, &self.message)
    }
}

/// Compares without an early exit, so that response timing does not reveal the token.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn bearer(req: &ServiceRequest) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// Every request passes here: only GET, the token, and the request counter.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::GET {
        let response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "the monitoring server is read-only: only GET is allowed",
        );
        let mut response = req.into_response(response);
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        count_request("other", response.status());
        return Ok(response);
    }
    if req.path() != "/healthz"
        && let Some(state) = req.app_data::<State>()
        && let Some(expected) = state.token.as_deref()
        && !bearer(&req).is_some_and(|given| token_matches(given, expected.as_bytes()))
    {
        let mut response = req.into_response(error_response(
            StatusCode::UNAUTHORIZED,
            "this monitoring server wants a bearer token: send `Authorization: Bearer <monitoring_token>`",
        ));
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"koji-adjutant\""),
        );
        count_request("unauthorized", response.status());
        return Ok(response);
    }
    let response = next.call(req).await?;
    let endpoint = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "other".to_owned());
    count_request(&endpoint, response.status());
    Ok(response)
}

fn count_request(endpoint: &str, status: StatusCode) {
    let class = match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    ::metrics::counter!("adjutant_http_requests_total", "endpoint" => endpoint.to_owned(), "status" => class)
        .increment(1);
}

/// The query string as validated key/value pairs: bounded length, known keys only, no repeats.
fn parse_query(req: &HttpRequest, allowed: &[&str]) -> Result<BTreeMap<String, String>, Refusal> {
    let raw = req.query_string();
    if raw.len() > MAX_QUERY_BYTES {
        return Err(Refusal::bad_request(format!(
            "the query string is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let mut params = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.contains(&key.as_ref()) {
            let hint = if allowed.is_empty() {
                "this endpoint takes no parameters".to_owned()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            return Err(Refusal::bad_request(format!(
                "unknown query parameter {key:?} ({hint})"
            )));
        }
        if params
            .insert(key.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(Refusal::bad_request(format!(
                "query parameter {key:?} is given more than once"
            )));
        }
    }
    Ok(params)
}

fn parse_task_id(raw: &str) -> Result<i64, Refusal> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(Refusal::bad_request(
            "a task id is a positive decimal number",
        )),
    }
}

/// A log name is a plain file name: no path, no hidden file, nothing to escape.
fn valid_log_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

macro_rules! query_or_return {
    ($req:expr, $allowed:expr) => {
        match parse_query($req, $allowed) {
            Ok(params) => params,
            Err(refusal) => return refusal.response(),
        }
    };
}

async fn root(req: HttpRequest) -> HttpResponse {
    query_or_return!(&req, &[]);
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/status"))
        .finish()
}

pub(crate) fn status_document(state: &AppState) -> model::StatusDocument {
    let snapshot = state.sources.snapshot.borrow().clone();
    let logs = &state.sources.logs;
    model::status_document(
        &state.info,
        &snapshot,
        state.sources.containers.live(),
        state.sources.containers.history(),
        |task_id| logs.tail(task_id, STATUS_TAIL_LINES),
    )
}

async fn status_page(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    let document = status_document(&state);
    match dashboard::render(&document) {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(error) => {
            tracing::error!(%error, "could not render the dashboard");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the dashboard could not be rendered; /status.json has the same data",
            )
        }
    }
}

async fn status_json(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    json(&status_document(&state))
}

async fn containers(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    let registry = &state.sources.containers;
    let items: Vec<_> = registry
        .live()
        .iter()
        .chain(registry.history().iter())
        .map(model::container_view)
        .collect();
    json(&ListDocument::new(items))
}

async fn container(req: HttpRequest, state: State, id: web::Path<String>) -> HttpResponse {
    query_or_return!(&req, &[]);
    let id = id.into_inner();
    let plausible = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plausible {
        return error_response(
            StatusCode::BAD_REQUEST,
            "a container is named by its name or id: letters, digits, '.', '_' and '-'",
        );
    }
    match state.sources.containers.get(&id) {
        Some(record) => json(&ItemDocument::new(model::container_view(&record))),
        None => error_response(
            StatusCode::NOT_FOUND,
            &format!("no container {id:?} is live or in the recent history"),
        ),
    }
}

fn find_task(state: &AppState, task_id: i64) -> Option<AnyTask> {
    let snapshot = state.sources.snapshot.borrow().clone();
    let now = std::time::SystemTime::now();
    if let Some(task) = snapshot.running.iter().find(|t| t.task_id == task_id) {
        let live = state.sources.containers.for_task(task_id);
        let tail = state.sources.logs.tail(task_id, STATUS_TAIL_LINES);
        return Some(AnyTask::Running(model::task_view(
            &state.info,
            task,
            &live,
            tail,
            now,
        )));
    }
    snapshot
        .recent
        .iter()
        .find(|t| t.task_id == task_id)
        .map(|t| AnyTask::Finished(model::finished_view(&state.info, t)))
}

async fn tasks(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    let document = status_document(&state);
    let items: Vec<AnyTask> = document
        .tasks
        .into_iter()
        .map(AnyTask::Running)
        .chain(document.recent_tasks.into_iter().map(AnyTask::Finished))
        .collect();
    json(&ListDocument::new(items))
}

async fn task(req: HttpRequest, state: State, id: web::Path<String>) -> HttpResponse {
    query_or_return!(&req, &[]);
    let task_id = match parse_task_id(&id) {
        Ok(id) => id,
        Err(refusal) => return refusal.response(),
    };
    match find_task(&state, task_id) {
        Some(task) => json(&ItemDocument::new(task)),
        None => error_response(
            StatusCode::NOT_FOUND,
            &format!("task {task_id} is neither running here nor in the recent history"),
        ),
    }
}

struct LogQuery {
    name: String,
    tail: usize,
    follow: bool,
}

fn log_query(params: &BTreeMap<String, String>) -> Result<LogQuery, Refusal> {
    let name = params
        .get("name")
        .cloned()
        .unwrap_or_else(|| LIVE_LOG_NAME.to_owned());
    if !valid_log_name(&name) {
        return Err(Refusal::bad_request(
            "a log name is a plain file name of at most 64 letters, digits, '.', '_' or '-', not starting with '.'",
        ));
    }
    let tail = match params.get("tail") {
        None => DEFAULT_TAIL,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n)
                if (1..=MAX_TAIL_LINES).contains(&n) && raw.bytes().all(|b| b.is_ascii_digit()) =>
            {
                n
            }
            _ => {
                return Err(Refusal::bad_request(format!(
                    "tail is a number of lines from 1 to {MAX_TAIL_LINES}"
                )));
            }
        },
    };
    let follow = match params.get("follow").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => {
            return Err(Refusal::bad_request(
                "follow is 1 (stream as server-sent events) or 0",
            ));
        }
    };
    Ok(LogQuery { name, tail, follow })
}

async fn task_logs(req: HttpRequest, state: State, id: web::Path<String>) -> HttpResponse {
    let params = query_or_return!(&req, &["name", "tail", "follow"]);
    let task_id = match parse_task_id(&id) {
        Ok(id) => id,
        Err(refusal) => return refusal.response(),
    };
    let query = match log_query(&params) {
        Ok(query) => query,
        Err(refusal) => return refusal.response(),
    };
    let running = state
        .sources
        .snapshot
        .borrow()
        .running
        .iter()
        .any(|t| t.task_id == task_id);
    if !running {
        let message = match find_task(&state, task_id) {
            Some(_) => format!(
                "task {task_id} has finished; its logs are on the hub (koji watch-logs or the web UI)"
            ),
            None => format!("task {task_id} is not running on this worker"),
        };
        return error_response(StatusCode::NOT_FOUND, &message);
    }
    if query.name != LIVE_LOG_NAME {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "task {task_id} has no log {:?} here; known logs: {LIVE_LOG_NAME}",
                query.name
            ),
        );
    }
    let lines = state.sources.logs.tail(task_id, query.tail.min(TAIL_LINES));
    if !query.follow {
        return json(&LogDocument {
            api_version: API_VERSION,
            task_id,
            name: query.name,
            lines,
        });
    }
    follow_log(state, task_id, lines)
}

/// Releases a follower slot when the stream is dropped (client gone or task ended).
struct FollowerSlot(State);

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        self.0.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn sse_lines(lines: &[String]) -> Bytes {
    let mut out = String::new();
    for line in lines {
        // A data field ends at a line break, so strip the ones a line may still carry.
        out.push_str("data: ");
        out.push_str(&line.replace(['\r', '\n'], " "));
        out.push_str("\n\n");
    }
    Bytes::from(out)
}

/// The number of lines at the start of `new` already sent as the end of `old`.
fn overlap(old: &[String], new: &[String]) -> usize {
    (0..=old.len().min(new.len()))
        .rev()
        .find(|&k| old[old.len() - k..] == new[..k])
        .unwrap_or(0)
}

fn follow_log(state: State, task_id: i64, initial: Vec<String>) -> HttpResponse {
    if state.followers.fetch_add(1, Ordering::SeqCst) >= MAX_LOG_FOLLOWERS {
        state.followers.fetch_sub(1, Ordering::SeqCst);
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{MAX_LOG_FOLLOWERS} log streams are already open; close one and retry"),
        );
    }
    let slot = FollowerSlot(state);
    let first = sse_lines(&initial);
    let seen = slot.0.sources.logs.tail(task_id, TAIL_LINES);
    let stream = futures::stream::unfold(
        (slot, seen, Some(first), false),
        move |(slot, seen, pending, ended)| async move {
            if ended {
                return None;
            }
            if let Some(first) = pending {
                return Some((Ok::<_, actix_web::Error>(first), (slot, seen, None, false)));
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            let still_running = slot
                .0
                .sources
                .snapshot
                .borrow()
                .running
                .iter()
                .any(|t| t.task_id == task_id);
            let current = slot.0.sources.logs.tail(task_id, TAIL_LINES);
            let fresh = overlap(&seen, &current);
            let mut chunk = sse_lines(&current[fresh..]).to_vec();
            if !still_running {
                chunk.extend_from_slice(b"event: end\ndata: task finished\n\n");
            }
            Some((
                Ok(Bytes::from(chunk)),
                (slot, current, None, !still_running),
            ))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream)
}

async fn metrics(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    publish_scrape_time_gauges(&state);
    let mut body = match &state.metrics {
        Some(handle) => handle.render(),
        None => String::new(),
    };
    super::metrics::render_process_metrics(&mut body);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

/// Gauges derived from the snapshot, set just before rendering so they are never stale.
fn publish_scrape_time_gauges(state: &AppState) {
    let snapshot = state.sources.snapshot.borrow().clone();
    let policy = &snapshot.policy;
    let lookups = policy.hits + policy.misses;
    if lookups > 0 {
        ::metrics::gauge!("adjutant_policy_cache_hit_ratio")
            .set(policy.hits as f64 / lookups as f64);
    }
    ::metrics::gauge!("adjutant_logged_in").set(if snapshot.logged_in { 1.0 } else { 0.0 });
    ::metrics::gauge!("adjutant_build_info", "version" => state.info.version.clone()).set(1.0);
}

#[derive(Serialize)]
struct Health {
    api_version: u32,
    status: &'static str,
    message: String,
}

async fn healthz(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    let asked = tokio::time::timeout(
        HEALTH_TIMEOUT,
        state.sources.supervisor.send(GetRunningTasks),
    )
    .await;
    let (status, health) = match asked {
        Ok(Ok(running)) => (
            StatusCode::OK,
            Health {
                api_version: API_VERSION,
                status: "ok",
                message: format!(
                    "the supervisor answered; {} task(s) running",
                    running.tasks.len()
                ),
            },
        ),
        Ok(Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                api_version: API_VERSION,
                status: "down",
                message: "the supervisor has stopped".to_owned(),
            },
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                api_version: API_VERSION,
                status: "down",
                message: format!(
                    "the supervisor did not answer within {} s",
                    HEALTH_TIMEOUT.as_secs()
                ),
            },
        ),
    };
    HttpResponse::build(status).json(health)
}

#[derive(Serialize)]
struct Ready {
    api_version: u32,
    ready: bool,
    logged_in: bool,
    reason: Option<String>,
}

async fn readyz(req: HttpRequest, state: State) -> HttpResponse {
    query_or_return!(&req, &[]);
    let snapshot = state.sources.snapshot.borrow().clone();
    let ready = snapshot.logged_in && snapshot.readiness.ready;
    let reason = if ready {
        None
    } else if !snapshot.logged_in {
        Some(snapshot.readiness.reason.clone().map_or_else(
            || "not logged in to the hub".to_owned(),
            |r| format!("not logged in to the hub ({r})"),
        ))
    } else {
        Some(
            snapshot
                .readiness
                .reason
                .clone()
                .unwrap_or_else(|| "not ready".to_owned()),
        )
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(Ready {
        api_version: API_VERSION,
        ready,
        logged_in: snapshot.logged_in,
        reason,
    })
}

async fn css(req: HttpRequest) -> HttpResponse {
    query_or_return!(&req, &[]);
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STATUS_CSS)
}

async fn js(req: HttpRequest) -> HttpResponse {
    query_or_return!(&req, &[]);
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(STATUS_JS)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        &format!(
            "no such page: {}. See /status, /api/v1/status, /metrics, /healthz, /readyz",
            req.path().chars().take(200).collect::<String>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_finds_where_new_lines_start() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(overlap(&s(&["a", "b", "c"]), &s(&["b", "c", "d"])), 2);
        assert_eq!(overlap(&s(&["a", "b"]), &s(&["x", "y"])), 0);
        assert_eq!(overlap(&s(&[]), &s(&["x"])), 0);
        assert_eq!(overlap(&s(&["a", "b"]), &s(&["a", "b"])), 2);
    }

    #[test]
    fn log_names_are_plain_file_names() {
        assert!(valid_log_name("build.log"));
        assert!(valid_log_name("output.log"));
        for hostile in [
            "../etc/passwd",
            "/etc/passwd",
            ".hidden",
            "a/b",
            "",
            "a%00b",
            "a b",
        ] {
            assert!(!valid_log_name(hostile), "{hostile:?} must be refused");
        }
        assert!(!valid_log_name(&"x".repeat(65)));
    }

    #[test]
    fn token_comparison() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret2", b"secret"));
    }
}
