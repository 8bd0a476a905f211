//! The monitoring web layer: dashboard, JSON API, metrics and health endpoints.
//!
//! Read-only, served by actix-web inside the worker's process. Everything comes from the actors'
//! published snapshot (`tokio::sync::watch`), the container registry's dashmap reader and the
//! log tails: no request ever waits on an actor, except `/healthz`, whose job is to ask one.
//! Operator documentation: `docs/monitoring.md`.

pub mod dashboard;
pub mod metrics;
pub mod model;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use actix::Addr;
use actix_web::{App, HttpServer, middleware, web};
use koji_adjutant_actors::logs::LogTails;
use koji_adjutant_actors::registry::RegistryReader;
use koji_adjutant_actors::snapshot::SnapshotReceiver;
use koji_adjutant_actors::{Supervisor, WorkerHandle};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

pub use self::metrics::{MetricsError, install_metrics, run_upkeep};
pub use self::model::{API_VERSION, StaticInfo};

/// actix-web worker threads: the pages are cheap, and the builds need the cores.
pub const HTTP_WORKERS: usize = 2;

/// Most log lines one request may ask for (`tail`).
pub const MAX_TAIL_LINES: usize = 1000;

/// Concurrent `follow=1` log streams; more are refused with 503 so that a forgotten browser tab
/// cannot pile up pollers.
pub const MAX_LOG_FOLLOWERS: usize = 32;

/// How long `/healthz` waits for the Supervisor to answer.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the monitoring server needs from the configuration.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `monitoring_bind`.
    pub bind: SocketAddr,
    /// `monitoring_token`: when set, every endpoint but `/healthz` wants
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The worker's identity and the hub's addresses, shown on the dashboard.
    pub info: StaticInfo,
}

impl WebSettings {
    /// From the loaded configuration. `worker_id` is the one the worker labels its containers
    /// with. Task ids link to the hub's web UI when `[adjutant] weburl` is set (kojid.conf has
    /// no such key of its own).
    pub fn from_config(config: &crate::config::Config, worker_id: &str) -> Self {
        let weburl = config
            .adjutant
            .weburl
            .clone()
            .filter(|url| !url.trim().is_empty());
        Self {
            bind: config.adjutant.monitoring_bind,
            token: config.adjutant.monitoring_token.clone(),
            info: StaticInfo {
                worker_id: worker_id.to_owned(),
                hub_url: config.kojid.server.0.clone(),
                weburl,
                version: crate::cli::VERSION_LINE.to_owned(),
            },
        }
    }
}

/// The worker's read side, taken from its [`WorkerHandle`].
#[derive(Clone)]
pub struct MonitorSources {
    pub supervisor: Addr<Supervisor>,
    pub snapshot: SnapshotReceiver,
    pub containers: RegistryReader,
    pub logs: LogTails,
}

impl MonitorSources {
    pub fn from_handle(handle: &WorkerHandle) -> Self {
        Self {
            supervisor: handle.supervisor.clone(),
            snapshot: handle.snapshot.clone(),
            containers: handle.containers.clone(),
            logs: handle.logs.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot listen on {bind} for the monitoring server: {source}. Choose a free address with monitoring_bind, or set monitoring_enabled = false"
    )]
    Bind {
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the monitoring server stopped with an error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Shared by every request handler.
pub(crate) struct AppState {
    pub sources: MonitorSources,
    pub info: StaticInfo,
    pub token: Option<String>,
    pub metrics: Option<PrometheusHandle>,
    pub followers: AtomicUsize,
}

/// A bound monitoring server, not yet serving. Binding first lets the caller learn the port
/// (tests bind port 0) and fail start-up on a taken address before the worker logs in.
pub struct MonitorServer {
    server: actix_web::dev::Server,
    addrs: Vec<SocketAddr>,
}

impl MonitorServer {
    pub fn bind(
        settings: WebSettings,
        sources: MonitorSources,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, WebError> {
        let state = web::Data::from(Arc::new(AppState {
            sources,
            info: settings.info,
            token: settings.token.filter(|t| !t.is_empty()),
            metrics,
            followers: AtomicUsize::new(0),
        }));
        let bind = settings.bind;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(routes::guard))
                .wrap(routes::security_headers())
                .configure(routes::configure)
        })
        .workers(HTTP_WORKERS)
        // The worker owns the drain: SIGTERM must reach the Supervisor, not stop this server.
        .disable_signals()
        .shutdown_timeout(2)
        .bind(bind)
        .map_err(|source| WebError::Bind { bind, source })?;
        let addrs = server.addrs();
        Ok(Self {
            server: server.run(),
            addrs,
        })
    }

    /// The addresses actually bound (the port is known here when `monitoring_bind` used 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Serves until `shutdown` is cancelled; open connections get 2 s to finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WebError> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => return served.map_err(WebError::Serve),
            () = shutdown.cancelled() => {}
        }
        handle.stop(true).await;
        server.await.map_err(WebError::Serve)
    }
}

/// Binds `settings.bind` and serves until `shutdown`: the one call the daemon makes.
pub async fn serve(
    settings: WebSettings,
    sources: MonitorSources,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) -> Result<(), WebError> {
    let bind = settings.bind;
    let server = MonitorServer::bind(settings, sources, metrics)?;
    tracing::info!(%bind, "monitoring server listening");
    server.run(shutdown).await
}
