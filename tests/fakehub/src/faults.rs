//! Koji fault codes (shared/koji-protocol.md §7) and the fault value the hub raises.

/// The numeric fault codes of `koji/__init__.py`.
pub mod code {
    pub const PLAIN: i32 = 1;
    pub const GENERIC: i32 = 1000;
    pub const LOCK: i32 = 1001;
    pub const AUTH: i32 = 1002;
    pub const TAG: i32 = 1003;
    pub const ACTION_NOT_ALLOWED: i32 = 1004;
    pub const BUILD: i32 = 1005;
    pub const AUTH_LOCK: i32 = 1006;
    pub const AUTH_EXPIRED: i32 = 1007;
    pub const SEQUENCE: i32 = 1008;
    pub const RETRY: i32 = 1009;
    pub const SERVER_OFFLINE: i32 = 1014;
    pub const PARAMETER: i32 = 1019;
}

/// A fault the fake hub answers with. `code` and `message` go on the wire unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault {code}: {message}")]
pub struct HubFault {
    pub code: i32,
    pub message: String,
}

impl HubFault {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    /// A non-Koji exception on the hub (faultCode 1).
    pub fn plain(message: impl Into<String>) -> Self {
        Self::new(code::PLAIN, message)
    }
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(code::GENERIC, message)
    }
    pub fn lock(message: impl Into<String>) -> Self {
        Self::new(code::LOCK, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(code::AUTH, message)
    }
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(code::ACTION_NOT_ALLOWED, message)
    }
    pub fn auth_lock(message: impl Into<String>) -> Self {
        Self::new(code::AUTH_LOCK, message)
    }
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(code::AUTH_EXPIRED, message)
    }
    pub fn sequence(message: impl Into<String>) -> Self {
        Self::new(code::SEQUENCE, message)
    }
    pub fn retry(message: impl Into<String>) -> Self {
        Self::new(code::RETRY, message)
    }
    pub fn offline(message: impl Into<String>) -> Self {
        Self::new(code::SERVER_OFFLINE, message)
    }
    pub fn parameter(message: impl Into<String>) -> Self {
        Self::new(code::PARAMETER, message)
    }
}

/// Errors of the fake hub itself (start-up, TLS set-up), as opposed to faults it answers with.
#[derive(Debug, thiserror::Error)]
pub enum FakeHubError {
    #[error("cannot bind the fake hub to {addr}: {source}; pick a free port or use 127.0.0.1:0")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create the fake hub's topdir: {0}")]
    Topdir(std::io::Error),
    #[error("TLS set-up failed: {0}; check the certificate and key files given in the config")]
    Tls(String),
    #[error("bad seed task: {0}")]
    Seed(String),
}
