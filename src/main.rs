//! The `koji-adjutant` binary: parses the command line and runs a subcommand.
//!
//! Exit status: 0 on success, 1 when `doctor` finds a failure or `run` cannot run, 2 for a
//! usage error or a configuration error (the same status clap uses for bad flags).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing::{error, info, warn};

use koji_adjutant::cli::{self, Cli, Command, OutputFormat};
use koji_adjutant::config::types::RepoTools;
use koji_adjutant::config::{self, Config, ConfigError};
use koji_adjutant::doctor::{self, Check};
use koji_adjutant::hub::{self, options::HubOptions};
use koji_adjutant::logging;
use koji_adjutant::podman::PodmanRuntime;
use koji_adjutant::worker::{self, RunOutcome};

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn report_config_error(err: &ConfigError) -> ExitCode {
    for warning in &err.warnings {
        eprintln!("warning: {warning}");
    }
    let text = err.to_string();
    for line in text.lines() {
        eprintln!("error: {line}");
    }
    eprintln!(
        "koji-adjutant: the configuration has {} problem(s); nothing was started",
        text.lines().count()
    );
    ExitCode::from(EXIT_CONFIG)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Version => {
            println!("koji-adjutant {}", cli::VERSION_LINE);
            ExitCode::SUCCESS
        }
        Command::ConfigReference => {
            print!("{}", config::reference::render());
            ExitCode::SUCCESS
        }
        Command::CheckConfig(args) => {
            let config = match config::load(&cli.config_source(&args.overrides)) {
                Ok(config) => config,
                Err(err) => return report_config_error(&err),
            };
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            match args.format {
                OutputFormat::Text => print!("{}", cli::render_config_text(&config)),
                OutputFormat::Json => {
                    match serde_json::to_string_pretty(&cli::render_config_json(&config)) {
                        Ok(text) => println!("{text}"),
                        Err(err) => {
                            eprintln!("error: cannot render the configuration as JSON: {err}");
                            return ExitCode::from(EXIT_FAILURE);
                        }
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Doctor(args) => {
            let config = match config::load(&cli.config_source(&args.overrides)) {
                Ok(config) => config,
                Err(err) => {
                    println!(
                        "{}",
                        Check::fail(
                            "config",
                            "the configuration does not load (errors below)",
                            "fix the errors, then run koji-adjutant check-config"
                        )
                        .render()
                    );
                    return report_config_error(&err);
                }
            };
            let checks = doctor_checks(&config, args.offline);
            match args.format {
                OutputFormat::Text => {
                    for check in &checks {
                        println!("{}", check.render());
                    }
                }
                OutputFormat::Json => match serde_json::to_string_pretty(&checks) {
                    Ok(text) => println!("{text}"),
                    Err(err) => {
                        eprintln!("error: cannot render the checks as JSON: {err}");
                        return ExitCode::from(EXIT_FAILURE);
                    }
                },
            }
            if doctor::any_failed(&checks) {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::HubCall(args) => {
            let config = match config::load(&cli.config_source(&args.overrides)) {
                Ok(config) => config,
                Err(err) => return report_config_error(&err),
            };
            let level = logging::effective_level(config.kojid.log_level, cli.verbose, cli.debug);
            if let Err(err) = logging::init(config.adjutant.log_format, level) {
                eprintln!("error: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
            hub_call(&config, args)
        }
        Command::Build(args) => ExitCode::from(koji_adjutant::buildroot::local::build_command(
            args,
            cli.verbose,
            cli.debug,
        )),
        Command::Run(args) => {
            let config = match config::load(&cli.config_source(&args.overrides)) {
                Ok(config) => config,
                Err(err) => return report_config_error(&err),
            };
            let level = logging::effective_level(config.kojid.log_level, cli.verbose, cli.debug);
            if let Err(err) = logging::init(config.adjutant.log_format, level) {
                eprintln!("error: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
            run(&config, cli.config_source(&args.overrides), args)
        }
    }
}

/// How long `doctor` and `hub-call` wait for the hub: an operator is watching, so they must not
/// inherit the worker's patience (kojid retries for two hours).
const INTERACTIVE_HUB_TIMEOUT: Duration = Duration::from_secs(30);

/// The hub options of an interactive command: one retry, a short timeout, no offline waits.
fn interactive_hub_options(config: &Config) -> HubOptions {
    let mut options = HubOptions::from_settings(&config.kojid, false);
    options.max_retries = 1;
    options.retry_interval = Duration::from_secs(1);
    options.offline_retry = false;
    options.timeout = options.timeout.min(INTERACTIVE_HUB_TIMEOUT);
    options.auth_timeout = options.auth_timeout.min(INTERACTIVE_HUB_TIMEOUT);
    options
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, std::io::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

/// Every module's preflight checks; each adapter contributes its own.
fn doctor_checks(config: &Config, offline: bool) -> Vec<Check> {
    let mut checks = doctor::config_checks(config);
    checks.extend(koji_adjutant::buildroot::doctor_checks(config));
    checks.extend(podman_checks(config));
    if config.adjutant.repo_tools == RepoTools::Host {
        checks.extend(koji_adjutant::podman::host_repo_tool_checks());
    }
    if offline {
        return checks;
    }
    match block_on(hub::ops::doctor_checks(&interactive_hub_options(config))) {
        Ok(hub_checks) => checks.extend(hub_checks),
        Err(err) => checks.push(Check::fail(
            "hub",
            format!("cannot start the async runtime for the hub checks: {err}"),
            "check the process limits (threads, file descriptors)",
        )),
    }
    checks
}

/// podman itself, the configured image, limits and this worker's leftover containers.
fn podman_checks(config: &Config) -> Vec<Check> {
    let options = match worker::settings::podman_options(config) {
        Ok(options) => options,
        Err(err) => {
            return vec![Check::fail(
                "podman",
                err.to_string(),
                "fix the container settings in [adjutant]",
            )];
        }
    };
    let runtime = PodmanRuntime::new(options);
    let images = [(
        config.adjutant.task_image_default.clone(),
        worker::settings::pull_policy(config.adjutant.image_pull_policy),
    )];
    let worker_id = worker::settings::worker_id(config);
    match block_on(runtime.doctor_checks(&worker_id, &images)) {
        Ok(checks) => checks,
        Err(err) => vec![Check::fail(
            "podman",
            format!("cannot start the async runtime for the podman checks: {err}"),
            "check the process limits (threads, file descriptors)",
        )],
    }
}

fn hub_call(config: &Config, args: &cli::HubCallArgs) -> ExitCode {
    let json_args: serde_json::Value = match serde_json::from_str(&args.args) {
        Ok(value) => value,
        Err(err) => {
            eprintln!(
                "error: the arguments are not valid JSON ({err}); pass one JSON array, e.g. '[1, \"x\"]'"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let options = interactive_hub_options(config);
    match block_on(hub::ops::hub_call(&options, &args.method, &json_args)) {
        Ok(Ok(result)) => match serde_json::to_string_pretty(&result) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: cannot render the result as JSON: {err}");
                ExitCode::from(EXIT_FAILURE)
            }
        },
        Ok(Err(err)) => {
            eprintln!("error: {} failed: {err}", args.method);
            ExitCode::from(EXIT_FAILURE)
        }
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(config: &Config, source: config::ConfigSource, args: &cli::RunArgs) -> ExitCode {
    info!(version = cli::VERSION_LINE, "Starting up");
    for value in &config.values {
        match value.display_value() {
            Some(shown) => info!(
                "config {}.{} = {:?} ({})",
                value.section.name(),
                value.key,
                shown,
                value.source
            ),
            None => info!(
                "config {}.{} unset ({})",
                value.section.name(),
                value.key,
                value.source
            ),
        }
    }
    for warning in &config.warnings {
        warn!("{warning}");
    }
    // kojid applies its RLIMIT_* keys to itself first thing, and logs each at WARNING.
    for setting in &config.rlimits {
        match config::rlimits::apply(setting) {
            Ok((soft, hard)) => warn!(
                "Setting resource limit: {} = [{soft}, {hard}] ({})",
                setting.name, setting.source
            ),
            Err(err) => error!("{err}"),
        }
    }
    if args.debug_mock {
        warn!("--debug-mock is obsolete and ignored");
    }
    if args.force_lock {
        info!("--force-lock: the worker always takes the host's session lock over");
    }
    let options = worker::run::RunOptions {
        skip_main: args.skip_main,
        max_load_per_cpu: args.max_load,
    };
    match worker::run(config, source, &options) {
        RunOutcome::Exit(status) => ExitCode::from(status),
        RunOutcome::Restart => re_exec(),
    }
}

/// kojid's restart: `os.execv(sys.argv[0], sys.argv)`, the same program with the same
/// arguments, so that an upgraded binary takes over.
fn re_exec() -> ExitCode {
    use std::os::unix::process::CommandExt;
    let mut argv = std::env::args_os();
    let Some(program) = argv.next() else {
        error!("cannot restart: the process has no argv[0]; start it again by hand");
        return ExitCode::from(EXIT_FAILURE);
    };
    let error = std::process::Command::new(&program).args(argv).exec();
    error!(
        "cannot re-execute {}: {error}; start the worker again by hand",
        program.to_string_lossy()
    );
    ExitCode::from(EXIT_FAILURE)
}
