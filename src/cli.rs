//! Command-line interface: `run`, `check-config`, `doctor`, `version`.
//!
//! Option values that set config keys are kept as strings here and checked by the config
//! loader, so a bad `--maxjobs` gets the same message, with its flag as the source, as a bad
//! `maxjobs` in the file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigSource, EffectiveValue, Override, Section};

/// The git revision the binary was built from: from build.rs (a checkout's HEAD, or
/// `KOJI_ADJUTANT_GIT_REV` when building from a tarball), else "unknown".
pub const GIT_REVISION: &str = match option_env!("KOJI_ADJUTANT_GIT_REV") {
    Some(rev) => rev,
    None => "unknown",
};

/// What `--version` and `version` print after the program name: `0.1.0 (git abc123)`.
pub const VERSION_LINE: &str = match option_env!("KOJI_ADJUTANT_VERSION_LINE") {
    Some(line) => line,
    None => env!("CARGO_PKG_VERSION"),
};

/// A kojid-compatible Koji build worker that runs each task in its own podman container.
#[derive(Debug, Parser)]
#[command(name = "koji-adjutant", version = VERSION_LINE, propagate_version = true)]
pub struct Cli {
    /// Config file, or a directory whose *.conf files are read in sorted order
    /// [default: $KOJI_CONFIG, then /etc/kojid/kojid.conf]
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Set any [kojid] or [adjutant] key, overriding file and environment (repeatable)
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,

    /// Log at INFO level (kojid's -v)
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,

    /// Log at DEBUG level (kojid's -d)
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the worker
    Run(RunArgs),
    /// Print the effective configuration, with the source of every value
    CheckConfig(CheckConfigArgs),
    /// Run preflight checks; exits non-zero if any fails
    Doctor(DoctorArgs),
    /// Log in like the worker, make one hub call and print the result as JSON (for debugging)
    HubCall(HubCallArgs),
    /// Build an SRPM locally in a container, as a buildArch task would, with no hub
    Build(BuildArgs),
    /// Print the version and git revision
    Version,
    /// Print docs/config-reference.md, generated from the key definitions
    #[command(hide = true)]
    ConfigReference,
}

/// kojid's command-line overrides of config keys.
#[derive(Debug, Args, Default)]
pub struct KojidOverrides {
    /// Maximum number of concurrent tasks
    #[arg(long, value_name = "N")]
    pub maxjobs: Option<String>,
    /// MiB that must be free in mockdir to take a task
    #[arg(long, value_name = "MIB")]
    pub minspace: Option<String>,
    /// Seconds between polls when no task was taken
    #[arg(long, value_name = "SECONDS")]
    pub sleeptime: Option<String>,
    /// Comma-separated addresses that get error log mails
    #[arg(long = "admin-emails", value_name = "ADDRESSES")]
    pub admin_emails: Option<String>,
    /// Local mount of the Koji volume
    #[arg(long, value_name = "DIR")]
    pub topdir: Option<String>,
    /// File server URL(s)
    #[arg(long, value_name = "URL")]
    pub topurl: Option<String>,
    /// Local scratch root
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Temporary directory inside the buildroot
    #[arg(long = "chroot-tmpdir", value_name = "DIR")]
    pub chroot_tmpdir: Option<String>,
    /// Plugin search path (accepted; plugins cannot be loaded)
    #[arg(long, value_name = "PATH")]
    pub pluginpath: Option<String>,
    /// Plugin to load (repeatable; accepted, plugins cannot be loaded)
    #[arg(long = "plugin", value_name = "NAME")]
    pub plugin: Vec<String>,
    /// mock base directory (the path checked for minspace)
    #[arg(long, value_name = "DIR")]
    pub mockdir: Option<String>,
    /// mock user (accepted, ignored)
    #[arg(long, value_name = "USER")]
    pub mockuser: Option<String>,
    /// Hub XML-RPC URL
    #[arg(short = 's', long, value_name = "URL")]
    pub server: Option<String>,
    /// User for password login
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Password for password login
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Obsolete; only warns
    #[arg(long, value_name = "URL")]
    pub pkgurl: Option<String>,
    /// Log format: text or json
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl KojidOverrides {
    /// The overrides as config keys, each with the flag that set it.
    pub fn to_overrides(&self) -> Vec<Override> {
        let single = [
            ("maxjobs", "--maxjobs", &self.maxjobs),
            ("minspace", "--minspace", &self.minspace),
            ("sleeptime", "--sleeptime", &self.sleeptime),
            ("admin_emails", "--admin-emails", &self.admin_emails),
            ("topdir", "--topdir", &self.topdir),
            ("topurl", "--topurl", &self.topurl),
            ("workdir", "--workdir", &self.workdir),
            ("chroot_tmpdir", "--chroot-tmpdir", &self.chroot_tmpdir),
            ("pluginpath", "--pluginpath", &self.pluginpath),
            ("mockdir", "--mockdir", &self.mockdir),
            ("mockuser", "--mockuser", &self.mockuser),
            ("server", "--server", &self.server),
            ("user", "--user", &self.user),
            ("password", "--password", &self.password),
            ("pkgurl", "--pkgurl", &self.pkgurl),
            ("log_format", "--log-format", &self.log_format),
        ];
        let mut overrides: Vec<Override> = single
            .into_iter()
            .filter_map(|(key, flag, value)| {
                value.as_ref().map(|value| Override {
                    key: key.to_string(),
                    value: value.clone(),
                    flag: flag.to_string(),
                })
            })
            .collect();
        // kojid's --plugin appends to a list that replaces the configured one.
        if !self.plugin.is_empty() {
            overrides.push(Override {
                key: "plugin".to_string(),
                value: self.plugin.join(" "),
                flag: "--plugin".to_string(),
            });
        }
        overrides
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub overrides: KojidOverrides,
    /// Stay in the foreground (the worker never daemonizes; accepted for kojid compatibility)
    #[arg(short = 'f', long = "fg")]
    pub foreground: bool,
    /// Take over the hub session even if another process holds it
    #[arg(long = "force-lock")]
    pub force_lock: bool,
    /// Debug output for task handlers (kojid's --debug-task)
    #[arg(long = "debug-task")]
    pub debug_task: bool,
    /// Log XML-RPC traffic
    #[arg(long = "debug-xmlrpc")]
    pub debug_xmlrpc: bool,
    /// Log in and out without running the main loop
    #[arg(long = "skip-main")]
    pub skip_main: bool,
    /// Obsolete; only warns
    #[arg(long = "debug-mock")]
    pub debug_mock: bool,
    /// Not ready while the 1-minute load average exceeds FACTOR × online CPUs [default: 4, as kojid]
    #[arg(long = "max-load", value_name = "FACTOR", value_parser = parse_load_factor)]
    pub max_load: Option<f64>,
}

fn parse_load_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor > 0.0 => Ok(factor),
        _ => Err(format!(
            "{text:?} is not a positive number; give the load per CPU at which the worker stops taking tasks, e.g. 4"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub overrides: KojidOverrides,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub overrides: KojidOverrides,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// Skip the checks that talk to the hub
    #[arg(long)]
    pub offline: bool,
}

/// `hub-call METHOD [ARGS]`.
#[derive(Debug, Args)]
pub struct HubCallArgs {
    #[command(flatten)]
    pub overrides: KojidOverrides,
    /// The hub method, e.g. getKojiVersion or host.getHost
    pub method: String,
    /// The arguments as one JSON array; a trailing object with "__starstar": true holds
    /// keyword arguments, e.g. '[42, {"request": true, "__starstar": true}]'
    #[arg(default_value = "[]")]
    pub args: String,
}

/// `build FOO.src.rpm`: the buildArch pipeline on this machine (docs/local-builds.md).
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The source rpm to build
    #[arg(value_name = "SRPM")]
    pub srpm: PathBuf,
    /// Container image that is the base of the buildroot
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "localhost/koji-adjutant-builder:latest"
    )]
    pub image: String,
    /// Baseurl of the repo the buildroot is installed from (repeatable; all form the one repo
    /// named `build`). Without it the image's own packages are the buildroot.
    #[arg(long = "repo", value_name = "URL")]
    pub repos: Vec<String>,
    /// Target arch [default: this machine's]
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Define an rpm macro, as a tag's rpm.macro.NAME would (repeatable), e.g. --define 'dist .fc40'
    #[arg(long = "define", value_name = "'NAME VALUE'", value_parser = parse_define)]
    pub defines: Vec<(String, String)>,
    /// Where the RPMs and logs go
    #[arg(
        long = "resultdir",
        value_name = "DIR",
        default_value = "koji-adjutant-results"
    )]
    pub result_dir: PathBuf,
    /// image: install on top of the image; installroot: populate an empty root from the repo
    #[arg(long, value_name = "MODE", default_value = "image")]
    pub buildroot_mode: String,
    /// Numeric UID:GID the build runs as
    #[arg(long, value_name = "UID:GID", default_value = "1000:1000")]
    pub build_user: String,
    /// When to pull the image: if-not-present, always or never
    #[arg(long, value_name = "POLICY", default_value = "if-not-present")]
    pub pull: String,
    /// Seconds rpmbuild may run
    #[arg(long, value_name = "SECONDS", default_value = "86400")]
    pub rpmbuild_timeout: u64,
}

fn parse_define(raw: &str) -> Result<(String, String), String> {
    let raw = raw.trim();
    match raw.split_once(char::is_whitespace) {
        Some((name, value)) if !name.trim_start_matches('%').is_empty() => Ok((
            name.trim_start_matches('%').to_string(),
            value.trim().to_string(),
        )),
        _ => Err(format!(
            "{raw:?} is not 'NAME VALUE'; write e.g. --define 'dist .fc40'"
        )),
    }
}

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "{raw:?} is not KEY=VALUE; write e.g. -o maxjobs=4 or -o log_format=json"
        )),
    }
}

impl Cli {
    /// The config source for this invocation, with the process environment.
    pub fn config_source(&self, overrides: &KojidOverrides) -> ConfigSource {
        let mut all: Vec<Override> = self
            .options
            .iter()
            .map(|(key, value)| Override {
                key: key.clone(),
                value: value.clone(),
                flag: format!("-o {key}"),
            })
            .collect();
        // Named flags win over -o, as the more specific way to say it.
        all.extend(overrides.to_overrides());
        ConfigSource::from_process_env(self.config.clone(), all)
    }
}

fn value_lines(value: &str) -> String {
    // Continuation lines are indented, so the output stays valid kojid.conf text.
    value.replace('\n', "\n    ")
}

fn render_value(out: &mut String, value: &EffectiveValue) {
    use std::fmt::Write;
    let note = if value.note.is_empty() {
        String::new()
    } else {
        format!("; {}", value.note)
    };
    let _ = match value.display_value() {
        Some(shown) => writeln!(
            out,
            "{} = {}  # {}{note}",
            value.key,
            value_lines(shown),
            value.source
        ),
        None => writeln!(out, "# {} is unset ({}){note}", value.key, value.source),
    };
}

/// `check-config`'s text output: kojid.conf-shaped, each value followed by its source.
pub fn render_config_text(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let _ = writeln!(out, "# effective configuration from {}", files.join(", "));
    for warning in &config.warnings {
        let _ = writeln!(out, "# warning: {warning}");
    }
    for section in [Section::Kojid, Section::Adjutant] {
        let _ = writeln!(out, "\n[{}]", section.name());
        for value in config.values.iter().filter(|v| v.section == section) {
            render_value(&mut out, value);
        }
        if section == Section::Kojid {
            for rlimit in &config.rlimits {
                let _ = writeln!(out, "{} = {}  # {}", rlimit.name, rlimit.raw, rlimit.source);
            }
        }
    }
    out
}

/// `check-config --format json`: one object per section, keyed by setting name.
pub fn render_config_json(config: &Config) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut sections = Map::new();
    for section in [Section::Kojid, Section::Adjutant] {
        let mut keys = Map::new();
        for value in config.values.iter().filter(|v| v.section == section) {
            let mut entry = json!({
                "value": value.display_value(),
                "source": value.source,
                "source_text": value.source.to_string(),
                "type": value.type_name,
                "secret": value.secret,
            });
            if !value.note.is_empty() {
                entry["note"] = Value::from(value.note);
            }
            keys.insert(value.key.clone(), entry);
        }
        sections.insert(section.name().to_string(), Value::Object(keys));
    }
    let rlimits: Map<String, Value> = config
        .rlimits
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                json!({"soft": r.limit.soft, "hard": r.limit.hard, "source": r.source, "source_text": r.source.to_string()}),
            )
        })
        .collect();
    json!({
        "files": config.files,
        "warnings": config.warnings,
        "settings": sections,
        "rlimits": rlimits,
    })
}
