//! `koji-fakehub`: serve a fake Koji hub from the command line, for demos and for checking the
//! worker by hand.

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use koji_fakehub::{FakeHub, FakeHubConfig, HostConfig, HubVersion, NewTask, Value};

#[derive(Debug, Parser)]
#[command(
    name = "koji-fakehub",
    about = "A fake Koji hub that follows kojihub's rules, for tests and demos"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Host user(s) the hub knows; `sslLogin` on /ssllogin logs in as the first one.
    #[arg(long = "host", default_value = "builder1.local")]
    hosts: Vec<String>,
    /// Password for the hosts' `login(user, password)`.
    #[arg(long, default_value = "builder")]
    host_password: String,
    /// Arches of the hosts.
    #[arg(long, default_value = "noarch x86_64")]
    arches: String,
    /// kojihub version to imitate: 1.33, 1.34, 1.35 or 1.36.
    #[arg(long, default_value = "1.35.3")]
    hub_version: HubVersion,
    /// Seed this many `sleep` tasks (FREE, channel default).
    #[arg(long, default_value_t = 0)]
    sleep_tasks: u32,
    /// Seconds each seeded `sleep` task sleeps.
    #[arg(long, default_value_t = 5)]
    sleep_seconds: i32,
    /// Keep uploads here instead of a temporary directory.
    #[arg(long)]
    topdir: Option<std::path::PathBuf>,
    /// SessionRenewalTimeout in seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    session_timeout: u64,
}

/// Print a line; a closed stdout (a test that stopped reading) must not kill the hub.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = FakeHubConfig {
        version: cli.hub_version,
        hosts: cli
            .hosts
            .iter()
            .map(|name| {
                HostConfig::new(name)
                    .with_password(&cli.host_password)
                    .with_arches(&cli.arches)
            })
            .collect(),
        ssl_login_user: cli.hosts.first().cloned(),
        session_renewal_timeout: (cli.session_timeout > 0)
            .then(|| Duration::from_secs(cli.session_timeout)),
        topdir: cli.topdir.clone(),
        ..FakeHubConfig::default()
    };
    let hub = match FakeHub::start_on(config, &cli.listen).await {
        Ok(hub) => hub,
        Err(err) => {
            eprintln!("koji-fakehub: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for _ in 0..cli.sleep_tasks {
        if let Err(fault) = hub.create_task(NewTask::new(
            "sleep",
            vec![Value::Integer(cli.sleep_seconds)],
        )) {
            eprintln!("koji-fakehub: cannot seed a sleep task: {fault}");
            return std::process::ExitCode::FAILURE;
        }
    }
    say!(
        "koji-fakehub {} listening on {}",
        cli.hub_version,
        hub.url()
    );
    say!("topdir: {}", hub.topdir().display());
    say!(
        "hosts: {} (password login: {:?}); admin user: kojiadmin/kojiadmin",
        cli.hosts.join(", "),
        cli.host_password
    );
    if cli.sleep_tasks > 0 {
        say!(
            "seeded {} sleep task(s) of {} s",
            cli.sleep_tasks,
            cli.sleep_seconds
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    say!("koji-fakehub: stopping");
    std::process::ExitCode::SUCCESS
}
