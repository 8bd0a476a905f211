//! `koji-fakehub`: serve a fake Koji hub from the command line, for demos and for checking the
//! worker by hand.

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use koji_fakehub::build::{BuildSide, serve_topurl};
use koji_fakehub::repos::RepoSide;
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
    /// Serve the build-side calls (targets, build configs, `initBuild`/`completeBuild`,
    /// policies, tagging) and a `topurl` file server over the topdir.
    #[arg(long)]
    build_side: bool,
    /// Serve the repo-side calls (`getTag`, `getRepo`, `listTaggedRPMS`, `host.repoInit`,
    /// `host.repoDone`, `host.distRepoMove`…) and a `topurl` file server over the topdir.
    /// With `--build-side` too, the tag and repo getters come from this side.
    #[arg(long)]
    repo_side: bool,
    /// Create a build target NAME: a destination tag NAME and a build tag NAME-build that
    /// inherits from it, on every side installed (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// Arches of the tags that `--target` creates.
    #[arg(long, default_value = "x86_64")]
    tag_arches: String,
    /// Package allowed in every destination tag (build side; repeatable).
    #[arg(long = "package", value_name = "NAME")]
    packages: Vec<String>,
    /// Packages of the `build` and `srpm-build` groups of every build tag (repo side).
    #[arg(
        long,
        default_value = "bash bzip2 coreutils cpio diffutils findutils gawk gcc grep gzip info make patch redhat-rpm-config rpm-build sed shadow-utils tar unzip util-linux which xz"
    )]
    build_group: String,
    /// RPM file to import and tag into every build tag (repo side; repeatable; needs `rpm`).
    #[arg(long = "rpm", value_name = "FILE")]
    rpms: Vec<std::path::PathBuf>,
    /// Queue a `newRepo` task (channel `createrepo`) for this tag (needs `--repo-side`;
    /// repeatable).
    #[arg(long = "new-repo", value_name = "TAG")]
    new_repos: Vec<String>,
    /// Queue a `build` task of SRC (an SCM URL, or an SRPM path relative to `<topdir>/work`)
    /// into the first `--target` (needs `--build-side`; repeatable).
    #[arg(long = "build", value_name = "SRC")]
    builds: Vec<String>,
}

/// The `newRepo` and `build` tasks the command line asks for, FREE for the scheduler.
fn seed_tasks(hub: &FakeHub, cli: &Cli) -> Result<Vec<(i64, String)>, String> {
    if !cli.new_repos.is_empty() && !cli.repo_side {
        return Err("--new-repo needs --repo-side (it serves host.repoInit)".to_owned());
    }
    if !cli.builds.is_empty() && !cli.build_side {
        return Err("--build needs --build-side (it serves host.initBuild)".to_owned());
    }
    let mut created = Vec::new();
    for tag in &cli.new_repos {
        let mut task = NewTask::new("newRepo", vec![Value::String(tag.clone())]);
        task.channel = "createrepo".to_owned();
        let id = hub.create_task(task).map_err(|fault| fault.to_string())?;
        created.push((id, format!("newRepo {tag}")));
    }
    if !cli.builds.is_empty() {
        let target = cli
            .targets
            .first()
            .ok_or("--build needs a --target to build into")?;
        for src in &cli.builds {
            let task = NewTask::new(
                "build",
                vec![Value::String(src.clone()), Value::String(target.clone())],
            );
            let id = hub.create_task(task).map_err(|fault| fault.to_string())?;
            created.push((id, format!("build {src} into {target}")));
        }
    }
    Ok(created)
}

/// The tags one `--target` stands for.
struct SeededTarget {
    name: String,
    dest_tag: i64,
    build_tag: i64,
}

/// Install the build and repo sides the command line asks for and seed their tags, targets,
/// packages and RPMs. Both sides share the hub's one tag model, so each tag is made once.
fn install_sides(hub: &FakeHub, cli: &Cli) -> Result<Vec<SeededTarget>, String> {
    let seeds_given = !cli.targets.is_empty() || !cli.rpms.is_empty();
    if seeds_given && !cli.build_side && !cli.repo_side {
        return Err("--target and --rpm need --build-side or --repo-side".to_owned());
    }
    if !cli.repo_side && !cli.rpms.is_empty() {
        return Err("--rpm needs --repo-side (RPMs are tagged on the repo side)".to_owned());
    }
    let build = cli.build_side.then(|| BuildSide::install(hub));
    if let Some(build) = &build {
        // `koji build` against this hub: the user-side `build` call queues the task.
        koji_fakehub::userapi::UserApi::install(hub, build);
    }
    let repos = cli.repo_side.then(|| RepoSide::install(hub));
    let arches: Vec<&str> = cli.tag_arches.split_whitespace().collect();
    let group: Vec<String> = cli
        .build_group
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut seeded = Vec::new();
    for name in &cli.targets {
        let build_name = format!("{name}-build");
        // One tag model: the tags are made once, on whichever side is installed.
        let (dest_tag, build_tag) = if let Some(side) = &build {
            let dest = side.add_tag(name, &cli.tag_arches, None);
            let build_tag = side.add_tag(&build_name, &cli.tag_arches, Some(dest));
            for package in &cli.packages {
                side.add_package(dest, package, false);
            }
            (dest, build_tag)
        } else if let Some(side) = &repos {
            let dest = side.add_tag(name, &arches);
            let build_tag = side.add_tag(&build_name, &arches);
            side.with_tag(build_tag, |tag| tag.parents.push((dest, 0)));
            (dest, build_tag)
        } else {
            continue;
        };
        if let Some(side) = &repos {
            side.with_tag(build_tag, |tag| {
                tag.groups.insert("build".to_owned(), group.clone());
                tag.groups.insert("srpm-build".to_owned(), group.clone());
            });
        }
        seeded.push(SeededTarget {
            name: name.clone(),
            dest_tag,
            build_tag,
        });
    }
    // Targets last: on the build side they take ids from the same counter as tags.
    if let Some(side) = &build {
        for target in &seeded {
            side.add_target(&target.name, target.build_tag, target.dest_tag);
        }
    }
    if let Some(side) = &repos {
        for target in &seeded {
            for rpm in &cli.rpms {
                side.import_rpm(rpm, target.build_tag, None)
                    .map_err(|error| format!("cannot import {}: {error}", rpm.display()))?;
            }
        }
    }
    Ok(seeded)
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
    let seeded = match install_sides(&hub, &cli) {
        Ok(seeded) => seeded,
        Err(error) => {
            eprintln!("koji-fakehub: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let queued = match seed_tasks(&hub, &cli) {
        Ok(queued) => queued,
        Err(error) => {
            eprintln!("koji-fakehub: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Builders download repos and task outputs from topurl over HTTP (§3.6).
    let mut topurl = None;
    if cli.build_side || cli.repo_side {
        match serve_topurl(hub.topdir()).await {
            Ok((addr, server)) => topurl = Some((format!("http://{addr}"), server)),
            Err(error) => {
                eprintln!("koji-fakehub: cannot serve topurl: {error}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
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
    if let Some((url, _)) = &topurl {
        say!("topurl: {url}");
    }
    for target in &seeded {
        say!(
            "target {}: build tag {}-build (id {}), destination tag {} (id {})",
            target.name,
            target.name,
            target.build_tag,
            target.name,
            target.dest_tag
        );
    }
    for (id, what) in &queued {
        say!("task {id}: {what}");
    }
    if cli.sleep_tasks > 0 {
        say!(
            "seeded {} sleep task(s) of {} s",
            cli.sleep_tasks,
            cli.sleep_seconds
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    say!("koji-fakehub: stopping");
    if let Some((_, server)) = topurl {
        server.abort();
    }
    std::process::ExitCode::SUCCESS
}
