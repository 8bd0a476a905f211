//! A fake Koji hub that follows kojihub's rules (sessions, callnum, task state machine, upload
//! rules, fault injection) for koji-adjutant's tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), koji_fakehub::FakeHubError> {
//! use koji_fakehub::{FakeHub, FakeHubConfig, NewTask};
//! let hub = FakeHub::start(FakeHubConfig::default()).await?;
//! let task_id = hub.create_task(NewTask::new("sleep", vec![dxr::Value::Integer(1)])).unwrap();
//! println!("hub at {} has task {task_id}", hub.url());
//! # Ok(()) }
//! ```
//!
//! See docs/fake-hub.md for what it implements and what it does not.

pub mod args;
pub mod auth;
pub mod build;
pub mod calllog;
pub mod config;
pub mod dispatch;
pub mod faults;
pub mod inject;
pub mod repos;
pub mod server;
pub mod state;
pub mod tasks;
pub mod testclient;
pub mod uploads;
pub mod userapi;
pub mod world;
pub mod xmlrpc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::{CallnumCheck, FakeHubConfig, HostConfig, HubVersion, TlsConfig};
pub use dxr::Value;
pub use faults::{FakeHubError, HubFault};
pub use inject::{Action, Injection, Scope, UploadCorruption};
pub use state::{Buildroot, BuildrootState, Host, HubState, Repo, Session, Task, TaskState};
pub use tasks::NewTask;

use calllog::CallLog;
use server::Shared;

/// A running fake hub. Dropping it stops the server and removes its temporary topdir.
#[derive(Debug)]
pub struct FakeHub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    https: bool,
    server: tokio::task::JoinHandle<()>,
    _tempdir: Option<tempfile::TempDir>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn build_tls(tls: &TlsConfig) -> Result<openssl::ssl::SslAcceptor, FakeHubError> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
    let err = |e: openssl::error::ErrorStack| FakeHubError::Tls(e.to_string());
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(err)?;
    builder
        .set_certificate_chain_file(&tls.cert_pem)
        .map_err(err)?;
    builder
        .set_private_key_file(&tls.key_pem, SslFiletype::PEM)
        .map_err(err)?;
    if let Some(ca) = &tls.client_ca_pem {
        builder.set_ca_file(ca).map_err(err)?;
        // Ask for a client certificate but accept connections without one, so that only
        // sslLogin depends on it.
        builder.set_verify(SslVerifyMode::PEER);
    }
    Ok(builder.build())
}

impl FakeHub {
    /// Start a hub on 127.0.0.1 with a free port.
    pub async fn start(config: FakeHubConfig) -> Result<Self, FakeHubError> {
        Self::start_on(config, "127.0.0.1:0").await
    }

    /// Start a hub on the given address (the `koji-fakehub` binary uses a fixed port).
    pub async fn start_on(config: FakeHubConfig, listen: &str) -> Result<Self, FakeHubError> {
        let (tempdir, topdir) = match &config.topdir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(FakeHubError::Topdir)?;
                (None, dir.clone())
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("koji-fakehub-")
                    .tempdir()
                    .map_err(FakeHubError::Topdir)?;
                let path = dir.path().to_owned();
                (Some(dir), path)
            }
        };
        std::fs::create_dir_all(topdir.join("work")).map_err(FakeHubError::Topdir)?;
        let tls = config.tls.as_ref().map(build_tls).transpose()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| FakeHubError::Bind {
                addr: listen.to_owned(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FakeHubError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
        let https = tls.is_some();
        let shared = Arc::new(Shared {
            state: Mutex::new(HubState::new(config, topdir)),
            log: Mutex::new(CallLog::default()),
        });
        let server = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared), tls));
        Ok(Self {
            shared,
            addr,
            https,
            server,
            _tempdir: tempdir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The XML-RPC URL, `http://127.0.0.1:PORT/kojihub` (https with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/kojihub", self.addr)
    }

    /// The directory kojihub calls topdir; uploads land in `<topdir>/work/tasks/...`.
    pub fn topdir(&self) -> PathBuf {
        self.with_state(|s| s.topdir.clone())
    }

    pub fn work_dir(&self) -> PathBuf {
        self.topdir().join("work")
    }

    /// Run `f` with exclusive access to the hub's tables. This is how tests (and later issues)
    /// reach state that has no dedicated helper. Do not block inside `f`.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut HubState) -> R) -> R {
        let mut guard = match self.shared.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    // ---- tasks ---------------------------------------------------------------------------

    pub fn create_task(&self, task: NewTask) -> Result<i64, HubFault> {
        self.with_state(|s| s.make_task(task))
    }

    /// `cancelTask` as an admin would: the task and its children become CANCELED.
    pub fn cancel_task(&self, id: i64) -> Result<bool, HubFault> {
        self.with_state(|s| s.cancel_task_tree(id, true))
    }

    /// Admin `freeTask`: OPEN/ASSIGNED → FREE.
    pub fn free_task(&self, id: i64) -> Result<(), HubFault> {
        self.with_state(|s| s.free_task(id))
    }

    /// One scheduler pass; returns the (task, host) assignments made.
    pub fn run_scheduler(&self) -> Vec<(i64, i64)> {
        self.with_state(HubState::run_scheduler)
    }

    pub fn task(&self, id: i64) -> Option<Task> {
        self.with_state(|s| s.tasks.get(&id).cloned())
    }

    pub fn tasks(&self) -> Vec<Task> {
        self.with_state(|s| s.tasks.values().cloned().collect())
    }

    /// `getTaskResult(id)`: the decoded result, or the stored fault as an error.
    pub fn task_result(&self, id: i64) -> Result<Value, HubFault> {
        self.with_state(|s| s.task_result(id, true))
    }

    pub fn refusals(&self) -> Vec<state::Refusal> {
        self.with_state(|s| s.refusals.clone())
    }

    // ---- hosts, sessions, clock ---------------------------------------------------------

    pub fn host(&self, name: &str) -> Option<Host> {
        self.with_state(|s| s.host_by_name(name).cloned())
    }

    pub fn set_host_enabled(&self, name: &str, enabled: bool) {
        self.with_state(|s| {
            if let Some(host) = s.hosts.values_mut().find(|h| h.name == name) {
                host.enabled = enabled;
            }
        });
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.with_state(|s| s.sessions.values().cloned().collect())
    }

    /// Mark a session (and its subsessions) expired: its next call gets AuthExpired (1007).
    pub fn expire_session(&self, id: i64) {
        self.with_state(|s| s.expire_session_tree(id));
    }

    pub fn expire_all_sessions(&self) {
        self.with_state(|s| {
            for session in s.sessions.values_mut() {
                session.expired = true;
            }
        });
    }

    /// Move the hub's clock forward (session renewal timeout, ReadyTimeout).
    pub fn advance_clock(&self, by: Duration) {
        self.with_state(|s| s.clock_offset += by.as_secs_f64());
    }

    pub fn add_repo(&self, repo: Repo) {
        self.with_world(|w| {
            w.repos.insert(repo.id, repo);
        });
    }

    /// The hub's Koji database, shared by the build and repo sides.
    pub fn world(&self) -> Arc<Mutex<world::KojiWorld>> {
        self.with_state(|s| Arc::clone(&s.world))
    }

    pub fn with_world<R>(&self, f: impl FnOnce(&mut world::KojiWorld) -> R) -> R {
        let world = self.world();
        let mut guard = world::lock(&world);
        f(&mut guard)
    }

    pub fn buildroots(&self) -> Vec<Buildroot> {
        self.with_state(|s| s.buildroots.values().cloned().collect())
    }

    // ---- fault injection -----------------------------------------------------------------

    pub fn inject(&self, injection: Injection) {
        self.with_state(|s| s.injections.add(injection));
    }

    /// ServerOffline (1014) for every request during `duration`.
    pub fn offline_for(&self, duration: Duration) {
        self.inject(Injection::offline_for(duration));
    }

    pub fn clear_injections(&self) {
        self.with_state(|s| s.injections.clear());
    }

    // ---- uploads -------------------------------------------------------------------------

    /// Where an upload to `reldir/name` is stored.
    pub fn upload_path(&self, reldir: &str, name: &str) -> PathBuf {
        self.work_dir().join(reldir).join(name)
    }

    /// The bytes uploaded for a task's output file, if any.
    pub fn task_output(&self, task_id: i64, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.upload_path(&uploads::task_rel_dir(task_id), name)).ok()
    }

    /// Hold the upload lock of a file, so that uploads and checkUpload on it get LockError
    /// (1001), as with a concurrent writer on kojihub. Release with [`Self::unlock_upload`].
    pub fn lock_upload(&self, reldir: &str, name: &str) {
        let path = self.upload_path(reldir, name);
        self.with_state(|s| *s.locked_uploads.entry(path).or_insert(0) += 1);
    }

    pub fn unlock_upload(&self, reldir: &str, name: &str) {
        let path = self.upload_path(reldir, name);
        self.with_state(|s| {
            s.locked_uploads.remove(Path::new(&path));
        });
    }

    // ---- growth ----------------------------------------------------------------------------

    /// Add (or override) a method: `params` are its Python parameter names, the first
    /// `required` of them mandatory, and `mutating` says whether a success stores the callnum.
    /// Host methods should start with `state.verify_host(caller)?` as the built-in ones do.
    pub fn register_method(
        &self,
        name: &'static str,
        params: &'static [&'static str],
        required: usize,
        mutating: bool,
        handler: impl Fn(&mut HubState, &auth::Caller, &args::BoundArgs) -> Result<Value, HubFault>
        + Send
        + Sync
        + 'static,
    ) {
        let function = name.rsplit('.').next().unwrap_or(name);
        let method = state::CustomMethod {
            signature: args::Signature::new(function, params, required),
            mutating,
            handler: Arc::new(handler),
        };
        self.with_state(|s| {
            s.custom_methods.insert(name.to_owned(), method);
        });
    }

    // ---- call log ------------------------------------------------------------------------

    /// Every exchange so far, in the golden transcripts' record shape.
    pub fn call_log(&self) -> Vec<serde_json::Value> {
        match self.shared.log.lock() {
            Ok(log) => log.records().to_vec(),
            Err(poisoned) => poisoned.into_inner().records().to_vec(),
        }
    }

    /// The method names of the requests so far, in order (`rawUpload` for upload POSTs).
    pub fn called_methods(&self) -> Vec<String> {
        self.call_log()
            .iter()
            .filter(|r| r["direction"] == "request")
            .filter_map(|r| r["method"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn clear_call_log(&self) {
        if let Ok(mut log) = self.shared.log.lock() {
            log.clear();
        }
    }
}
