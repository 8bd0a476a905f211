//! `koji-adjutant run`: the worker process.
//!
//! An actix `System` hosts the Supervisor (TaskActors need its local task set). `main` keeps
//! the process side: it turns OS signals into `WorkerSignal`s, answers systemd, and maps the
//! worker's end onto an exit status or a re-exec. The worker never daemonises itself; systemd
//! runs it in the foreground, as the packaged kojid.service runs `kojid --fg`.

use std::collections::HashSet;
use std::sync::Arc;

use koji_adjutant_actors::builtin::register_builtin;
use koji_adjutant_actors::hub::HostHub;
use koji_adjutant_actors::probe::SystemProbe;
use koji_adjutant_actors::runtime::ContainerRuntime;
use koji_adjutant_actors::settings::WorkerSettings;
use koji_adjutant_actors::{HandlerRegistry, Supervisor, WorkerDeps, WorkerExit, WorkerSignal};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::hub_adapter::{HostHubAdapter, subsession_client};
use super::notify::SdNotifier;
use super::settings::{self, SettingsError};
use crate::config::{self, Config, ConfigSource};
use crate::handlers::register::register_build_handlers;
use crate::handlers::repos::RepoServices;
use crate::handlers::services::BuildServices;
use crate::podman::PodmanRuntime;
use crate::web::{MonitorServer, MonitorSources, WebSettings};

/// How `run` ended, for `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Exit with this status: 0 after a shutdown, 1 when the worker could not run or stopped
    /// on an error.
    Exit(u8),
    /// SIGUSR1 or a `restart` task: `main` re-executes the worker with the same argv.
    Restart,
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(
        "cannot log in to the hub: {0}; check `server`, the certificate or user/password in kojid.conf, and that the hub is reachable (koji-adjutant doctor)"
    )]
    Login(koji_adjutant_actors::HubError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot set up the build handlers: {0}")]
    BuildHandlers(#[from] crate::buildroot::BuildrootError),
    #[error(transparent)]
    Metrics(#[from] crate::web::metrics::MetricsError),
    #[error(transparent)]
    Monitoring(#[from] crate::web::WebError),
}

/// Options of the run path that do not come from the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Log in and out without running the main loop (kojid's `--skip-main`).
    pub skip_main: bool,
    /// `--max-load`: replaces kojid's load limit of 4 × online CPUs.
    pub max_load_per_cpu: Option<f64>,
}

impl RunOptions {
    /// The worker settings of `config` with the command line applied.
    fn worker_settings(&self, config: &Config) -> Result<WorkerSettings, SettingsError> {
        let mut settings = settings::worker_settings(config)?;
        if let Some(factor) = self.max_load_per_cpu {
            settings.live.max_load_per_cpu = factor;
        }
        Ok(settings)
    }
}

/// Runs the worker until it shuts down. `source` is where SIGHUP re-reads the configuration.
pub fn run(config: &Config, source: ConfigSource, options: &RunOptions) -> RunOutcome {
    let system = actix_rt::System::new();
    let outcome = system.block_on(run_worker(config, source, options));
    match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("koji-adjutant: {error}");
            RunOutcome::Exit(1)
        }
    }
}

async fn run_worker(
    config: &Config,
    source: ConfigSource,
    options: &RunOptions,
) -> Result<RunOutcome, StartError> {
    let worker_settings = options.worker_settings(config)?;
    let podman_options = settings::podman_options(config)?;
    let hub_options = settings::hub_options(config);
    tracing::info!(
        worker_id = %worker_settings.worker_id,
        hub = %hub_options.server,
        systemd = SdNotifier::is_active(),
        "starting the worker"
    );

    // Cancelled once the worker has ended, so that no hub call outlives it.
    let cancel = CancellationToken::new();
    let hub = HostHubAdapter::connect(hub_options, cancel.clone())
        .await
        .map_err(StartError::Login)?;
    if options.skip_main {
        tracing::info!("--skip-main: logged in, logging out without running the main loop");
        if let Err(error) = hub.logout().await {
            tracing::warn!(%error, "logout failed");
        }
        return Ok(RunOutcome::Exit(0));
    }

    let runtime = PodmanRuntime::new(podman_options);
    // Probed now so that a broken podman is reported at start-up, not at the first task;
    // tasks that need no container (sleep, wait) still run without it.
    if let Err(error) = runtime.probe().await {
        tracing::error!(%error, "podman does not answer; tasks that need a container will fail (run koji-adjutant doctor)");
    }

    // Containers left by an earlier run of this worker (a crash, `kill -9`) are removed before
    // any task is taken: no task runs yet, so every container with this worker's label is an
    // orphan, and a task the hub gives back would otherwise meet its old container's name.
    // The ContainerRegistry sweeps again periodically.
    match runtime
        .reap_orphans(&worker_settings.worker_id, &HashSet::new())
        .await
    {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => tracing::warn!(
            containers = ?removed,
            "removed orphaned containers left by an earlier run of this worker"
        ),
        Err(error) => tracing::error!(
            %error,
            "cannot list this worker's containers to remove orphans; the registry will try again"
        ),
    }

    let mut handlers = HandlerRegistry::new();
    register_builtin(&mut handlers);
    // Each task's uploads go over its own subsession, as kojid's task process sends them.
    register_build_handlers(
        &mut handlers,
        BuildServices::from_config(config, subsession_client)?,
    );
    crate::handlers::repos::register(
        &mut handlers,
        RepoServices::from_config_with_subsessions(config, subsession_client),
    );

    // Installed before the worker starts, so that its first metrics are recorded.
    let metrics = crate::web::install_metrics()?;
    actix_rt::spawn(crate::web::run_upkeep(metrics.clone(), cancel.clone()));

    let worker = Supervisor::start_worker(WorkerDeps {
        hub: Arc::new(hub),
        runtime: Arc::new(runtime),
        probe: Arc::new(SystemProbe),
        handlers: Arc::new(handlers),
        notifier: Arc::new(SdNotifier),
        settings: worker_settings.clone(),
    });
    if config.adjutant.monitoring_enabled {
        let web_settings = WebSettings::from_config(config, &worker_settings.worker_id);
        // Bound before anything else can fail, so that a taken port stops start-up with a
        // clear error instead of a worker nobody can watch.
        let server = match MonitorServer::bind(
            web_settings,
            MonitorSources::from_handle(&worker),
            Some(metrics),
        ) {
            Ok(server) => server,
            Err(error) => {
                worker.supervisor.do_send(WorkerSignal::Interrupt);
                let _ = worker.exit.await;
                return Err(error.into());
            }
        };
        let shutdown = cancel.clone();
        actix_rt::spawn(async move {
            if let Err(error) = server.run(shutdown).await {
                tracing::error!(%error, "the monitoring server stopped");
            }
        });
    }

    let signals = actix_rt::spawn(forward_signals(
        worker.supervisor.clone(),
        source,
        options.clone(),
        cancel.clone(),
        RestartOnly::of(config),
        worker_settings,
    ));
    let exit = worker.exit.await;
    signals.abort();
    cancel.cancel();
    Ok(match exit {
        Ok(WorkerExit::Shutdown) => {
            tracing::info!("the worker has shut down");
            RunOutcome::Exit(0)
        }
        Ok(WorkerExit::Restart) => {
            tracing::info!("restarting the worker");
            RunOutcome::Restart
        }
        Ok(WorkerExit::Fatal(message)) => {
            tracing::error!("the worker stopped: {message}");
            eprintln!("koji-adjutant: {message}");
            RunOutcome::Exit(1)
        }
        Err(_) => {
            tracing::error!("the worker ended without saying why");
            RunOutcome::Exit(1)
        }
    })
}

/// The parts of the configuration that only apply at start-up, to tell the operator which
/// changes a reload cannot apply.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartOnly {
    hub: crate::hub::options::HubOptions,
    podman: Option<crate::podman::PodmanOptions>,
    monitoring: (bool, std::net::SocketAddr),
}

impl RestartOnly {
    pub fn of(config: &Config) -> Self {
        Self {
            hub: settings::hub_options(config),
            podman: settings::podman_options(config).ok(),
            monitoring: (
                config.adjutant.monitoring_enabled,
                config.adjutant.monitoring_bind,
            ),
        }
    }

    /// Names of what changed between `self` and `new`.
    pub fn changes(&self, new: &RestartOnly) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.hub != new.hub {
            changed.push("hub connection (server, cert, timeouts, retries)");
        }
        if self.podman != new.podman {
            changed.push("podman runtime (podman, container_labels, container_timeouts)");
        }
        if self.monitoring != new.monitoring {
            changed.push("monitoring server (monitoring_enabled, monitoring_bind)");
        }
        changed
    }
}

/// SIGTERM → drain (a second one aborts), SIGINT → abort, SIGUSR1 → restart when idle,
/// SIGHUP → reload. Tokio's handlers replace the default actions, so no signal kills the
/// process behind the Supervisor's back.
async fn forward_signals(
    supervisor: actix::Addr<Supervisor>,
    source: ConfigSource,
    options: RunOptions,
    cancel: CancellationToken,
    mut restart_only: RestartOnly,
    mut current: WorkerSettings,
) {
    let streams = (|| -> std::io::Result<_> {
        Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::user_defined1())?,
            signal(SignalKind::hangup())?,
        ))
    })();
    let (mut term, mut int, mut usr1, mut hup) = match streams {
        Ok(streams) => streams,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers; stop the worker with SIGKILL only after freeing its tasks");
            return;
        }
    };
    let mut terms = 0u32;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                terms += 1;
                supervisor.do_send(WorkerSignal::Terminate);
                if terms >= 2 {
                    give_up_on_the_hub_later(&cancel);
                }
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received");
                supervisor.do_send(WorkerSignal::Interrupt);
                give_up_on_the_hub_later(&cancel);
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1 received: restarting once idle");
                supervisor.do_send(WorkerSignal::RestartWhenIdle);
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading the configuration");
                if let Some((settings, restart)) = reload(&source, &options, &restart_only) {
                    current = settings.clone();
                    restart_only = restart;
                    supervisor.do_send(WorkerSignal::Reload(Box::new(settings)));
                } else {
                    tracing::warn!(settings = ?current.live, "keeping the settings in force");
                }
            }
        }
    }
}

/// How long an abort may spend on its last hub calls (`host.freeTasks`, the final heartbeat,
/// `logout`) before they are abandoned.
const ABORT_HUB_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// An abort (SIGINT, a second SIGTERM) must end even while the hub is offline, when the
/// client would wait for it forever: after a grace period every hub call in flight or to come
/// fails at once. The hub frees the tasks after its host timeout.
fn give_up_on_the_hub_later(cancel: &CancellationToken) {
    let cancel = cancel.clone();
    actix_rt::spawn(async move {
        tokio::time::sleep(ABORT_HUB_GRACE).await;
        if !cancel.is_cancelled() {
            tracing::warn!(
                grace_secs = ABORT_HUB_GRACE.as_secs(),
                "the hub did not answer the shutdown calls in time; exiting without them"
            );
            cancel.cancel();
        }
    });
}

/// Re-reads the configuration. A file that no longer loads changes nothing.
fn reload(
    source: &ConfigSource,
    options: &RunOptions,
    restart_only: &RestartOnly,
) -> Option<(WorkerSettings, RestartOnly)> {
    let config = match config::load(source) {
        Ok(config) => config,
        Err(error) => {
            for line in error.to_string().lines() {
                tracing::error!("reload: {line}");
            }
            return None;
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let settings = match options.worker_settings(&config) {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!("reload: {error}");
            return None;
        }
    };
    let new = RestartOnly::of(&config);
    for name in restart_only.changes(&new) {
        tracing::warn!("setting {name} changed; it applies after a restart");
    }
    Some((settings, new))
}
