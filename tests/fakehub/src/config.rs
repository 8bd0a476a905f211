//! What a test can choose about the hub it starts.

use std::path::PathBuf;
use std::time::Duration;

/// The kojihub release the fake hub imitates. Version-dependent behaviour follows
/// shared/koji-protocol.md §1.10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HubVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl HubVersion {
    pub const V1_33: Self = Self::new(1, 33, 1);
    pub const V1_34: Self = Self::new(1, 34, 1);
    pub const V1_35: Self = Self::new(1, 35, 3);
    pub const V1_36: Self = Self::new(1, 36, 1);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
    /// Hub-side scheduler, `host.getTasks`, `host.refuseTask`, `host.setHostData`.
    pub fn has_scheduler(self) -> bool {
        self.at_least(1, 34)
    }
    /// `host.updateHost(..., data)`, `repo.*`, the `Koji-Version` header.
    pub fn has_host_data_arg(self) -> bool {
        self.at_least(1, 35)
    }
    pub fn sends_version_header(self) -> bool {
        self.at_least(1, 35)
    }
    /// Hubs up to 1.35.x read `Koji-Callnum` instead of `Koji-Session-Callnum` (§1.5).
    pub fn reads_session_callnum_header(self) -> bool {
        self.at_least(1, 36)
    }
}

impl std::fmt::Display for HubVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for HubVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().split('.').map(str::parse::<u32>);
        let bad = || format!("hub version {text:?} is not of the form 1.35 or 1.35.3");
        let major = parts.next().and_then(Result::ok).ok_or_else(bad)?;
        let minor = parts.next().and_then(Result::ok).ok_or_else(bad)?;
        let patch = match parts.next() {
            None => 0,
            Some(p) => p.map_err(|_| bad())?,
        };
        Ok(Self::new(major, minor, patch))
    }
}

/// Which header carries the callnum that the hub checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallnumCheck {
    /// `Koji-Session-Callnum` (what clients send), falling back to `Koji-Callnum`. The checks
    /// (SequenceError, RetryError) are live, which is what client tests want.
    Enforced,
    /// Exactly the configured hub version: ≤1.35 reads only `Koji-Callnum`, so a client that
    /// sends `Koji-Session-Callnum` is never checked (the upstream bug of §1.5/§10.2).
    AsVersion,
}

/// A host the hub knows (a HOST user plus its `host` row).
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub name: String,
    pub arches: String,
    pub capacity: f64,
    pub channels: Vec<String>,
    pub enabled: bool,
    /// Password for `login`; `None` means the host can only use `sslLogin`.
    pub password: Option<String>,
}

impl HostConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            arches: "noarch x86_64".to_owned(),
            capacity: 2.0,
            channels: vec!["default".to_owned(), "createrepo".to_owned()],
            enabled: true,
            password: None,
        }
    }
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
    pub fn with_arches(mut self, arches: impl Into<String>) -> Self {
        self.arches = arches.into();
        self
    }
}

/// A TLS identity for serving https.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    /// When set, client certificates are requested and verified against this CA, and the
    /// `CN` of a verified certificate is the `sslLogin` user.
    pub client_ca_pem: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct FakeHubConfig {
    pub version: HubVersion,
    /// Overrides the `Koji-Version` header text (default: the version).
    pub version_header: Option<String>,
    pub hosts: Vec<HostConfig>,
    /// Normal users: (name, password, admin?). `kojiadmin` with password `kojiadmin` is added
    /// unless a user of that name is configured.
    pub users: Vec<(String, String, bool)>,
    /// Who an `sslLogin` on `/ssllogin` is, when there is no verified TLS client cert.
    pub ssl_login_user: Option<String>,
    pub callnum_check: CallnumCheck,
    /// kojihub's renewal path does not load the expired session's lock, so
    /// `login/sslLogin(renew=True, exclusive=True)` on an exclusive session raises
    /// AuthLockError after the new key was committed (docs/fake-hub.md). `true` (default)
    /// reproduces that; `false` lets such a renewal keep its own lock, which is what the
    /// protocol description (§1.8) assumes.
    pub renew_exclusive_conflicts: bool,
    /// `SessionRenewalTimeout`; `None` = never (hub value 0). Only honoured on hubs ≥1.33.
    pub session_renewal_timeout: Option<Duration>,
    /// Run the scheduler inside `host.getTasks`/`host.getLoadData` when the host has no
    /// assigned task, at most once per this interval (kojihub `RunInterval`, 60 s).
    /// `Some(Duration::ZERO)` runs it on every such call; `None` never (tests drive it).
    pub scheduler_run_interval: Option<Duration>,
    /// `ReadyTimeout`: a host whose last `updateHost` is older is not scheduled.
    pub ready_timeout: Duration,
    /// `AssignTimeout`: an ASSIGNED task not opened within this is taken back (with an
    /// implicit soft refusal when the host checked in meanwhile).
    pub assign_timeout: Duration,
    /// `HostTimeout`: OPEN tasks of a host silent for longer are freed.
    pub host_timeout: Duration,
    /// `MaxJobs` fallback when the host did not publish `maxjobs`.
    pub max_jobs: i64,
    /// `CapacityOvercommit`.
    pub capacity_overcommit: f64,
    /// `MaxRequestLength` for XML-RPC bodies.
    pub max_request_length: usize,
    pub tls: Option<TlsConfig>,
    /// Use this directory as topdir instead of a fresh temporary one.
    pub topdir: Option<PathBuf>,
}

impl Default for FakeHubConfig {
    fn default() -> Self {
        Self {
            version: HubVersion::V1_35,
            version_header: None,
            hosts: vec![HostConfig::new("builder1.local")],
            users: Vec::new(),
            ssl_login_user: Some("builder1.local".to_owned()),
            callnum_check: CallnumCheck::Enforced,
            renew_exclusive_conflicts: true,
            session_renewal_timeout: None,
            scheduler_run_interval: Some(Duration::ZERO),
            ready_timeout: Duration::from_secs(180),
            assign_timeout: Duration::from_secs(300),
            host_timeout: Duration::from_secs(900),
            max_jobs: 15,
            capacity_overcommit: 5.0,
            max_request_length: 4 * 1024 * 1024,
            tls: None,
            topdir: None,
        }
    }
}

impl FakeHubConfig {
    pub fn with_version(mut self, version: HubVersion) -> Self {
        self.version = version;
        self
    }
}
