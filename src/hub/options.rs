//! Everything the hub client needs to know, independent of how it was configured.
//! The config layer maps `kojid.conf` onto [`HubOptions`]; defaults are kojid's.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the hub client. `Default` gives kojid's defaults (§1.9, §6.2).
#[derive(Debug, Clone, PartialEq)]
pub struct HubOptions {
    /// The XML-RPC URL, e.g. `https://koji.example.com/kojihub` (`server=`).
    pub server: String,
    /// Base URL of the Koji file tree (`topurl=`); only the first of several is used for downloads.
    pub topurl: Option<String>,
    /// Client certificate (`cert=`): one PEM holding cert and key as kojid uses, or the cert
    /// alone when [`HubOptions::key`] is set.
    pub cert: Option<PathBuf>,
    /// Private key in its own PEM file, when it is not in `cert`.
    pub key: Option<PathBuf>,
    /// CA bundle that signed the hub's certificate (`serverca=`); when unset the system trust
    /// store is used.
    pub serverca: Option<PathBuf>,
    /// Skip verification of the hub's certificate. kojid's rule: ignored when `serverca` is set.
    pub no_ssl_verify: bool,
    /// Password login (`user=`/`password=`), for development hubs only.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Connect and read timeout per request (`timeout=`, kojid default 12 h).
    pub timeout: Duration,
    /// Timeout used for login requests (`auth_timeout`, 60 s in koji).
    pub auth_timeout: Duration,
    /// Transport errors are retried up to this many times (`max_retries`, 120).
    pub max_retries: u32,
    /// Wait between retries after the first, immediate one (`retry_interval`, 60 s).
    pub retry_interval: Duration,
    /// Wait out `ServerOffline` faults forever (`offline_retry`, true).
    pub offline_retry: bool,
    /// Wait between two tries while the hub is offline (`offline_retry_interval`, 120 s).
    pub offline_retry_interval: Duration,
    /// rawUpload (true) or the legacy base64 `uploadFile` (false) (`use_fast_upload`).
    pub use_fast_upload: bool,
    /// `exclusiveSession(force=…)` at login; kojid's `--force-lock`.
    pub force_lock: bool,
    /// Answer a hub that asks for the client certificate after the handshake (TLS 1.3
    /// post-handshake auth). Only ever turned off to prove that it matters.
    pub post_handshake_auth: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            server: "http://hub.example.com/kojihub".to_owned(),
            topurl: None,
            cert: None,
            key: None,
            serverca: None,
            no_ssl_verify: false,
            user: None,
            password: None,
            timeout: Duration::from_secs(43_200),
            auth_timeout: Duration::from_secs(60),
            max_retries: 120,
            retry_interval: Duration::from_secs(60),
            offline_retry: true,
            offline_retry_interval: Duration::from_secs(120),
            use_fast_upload: true,
            force_lock: true,
            post_handshake_auth: true,
        }
    }
}

/// How the client logs in, chosen like kojid: certificate first, then password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMethod {
    Certificate,
    Password { user: String, password: String },
}

impl HubOptions {
    pub fn login_method(&self) -> Option<LoginMethod> {
        if self.cert.is_some() {
            return Some(LoginMethod::Certificate);
        }
        self.user.as_ref().map(|user| LoginMethod::Password {
            user: user.clone(),
            password: self.password.clone().unwrap_or_default(),
        })
    }
}

impl HubOptions {
    /// The hub settings of a loaded `kojid.conf`. `force_lock` is kojid's `--force-lock`:
    /// whether login takes the host's exclusive lock over from another session.
    pub fn from_settings(settings: &crate::config::KojidSettings, force_lock: bool) -> Self {
        let defaults = Self::default();
        Self {
            server: settings.server.0.clone(),
            topurl: Some(settings.topurl.first().to_owned()).filter(|url| !url.is_empty()),
            cert: settings.cert.clone(),
            key: None,
            serverca: settings.serverca.clone(),
            no_ssl_verify: settings.no_ssl_verify,
            user: settings.user.clone(),
            password: settings.password.clone(),
            timeout: settings
                .timeout
                .map_or(defaults.timeout, |seconds| seconds.as_duration()),
            max_retries: u32::try_from(settings.max_retries).unwrap_or(u32::MAX),
            retry_interval: settings.retry_interval.as_duration(),
            offline_retry: settings.offline_retry,
            offline_retry_interval: settings.offline_retry_interval.as_duration(),
            use_fast_upload: settings.use_fast_upload,
            force_lock,
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, load};

    #[test]
    fn kojid_conf_maps_onto_hub_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kojid.conf");
        std::fs::write(
            &path,
            "[kojid]\nserver = https://koji.example.com/kojihub\ntopurl = https://a/kojifiles https://b/kojifiles\n\
             cert = /etc/kojid/client.crt\nserverca = /etc/kojid/serverca.crt\nmax_retries = 5\nretry_interval = 7\n\
             offline_retry = False\noffline_retry_interval = 9\ntimeout = 300\nuse_fast_upload = False\n",
        )
        .unwrap();
        let config = load(&ConfigSource {
            path: Some(path),
            overrides: vec![],
            env: Default::default(),
        })
        .unwrap();
        let options = HubOptions::from_settings(&config.kojid, false);
        assert_eq!(options.server, "https://koji.example.com/kojihub");
        assert_eq!(options.topurl.as_deref(), Some("https://a/kojifiles"));
        assert_eq!(options.cert, Some(PathBuf::from("/etc/kojid/client.crt")));
        assert_eq!(
            options.serverca,
            Some(PathBuf::from("/etc/kojid/serverca.crt"))
        );
        assert_eq!(options.max_retries, 5);
        assert_eq!(options.retry_interval, Duration::from_secs(7));
        assert!(!options.offline_retry);
        assert_eq!(options.offline_retry_interval, Duration::from_secs(9));
        assert_eq!(options.timeout, Duration::from_secs(300));
        assert!(!options.use_fast_upload && !options.force_lock);
        assert_eq!(options.login_method(), Some(LoginMethod::Certificate));
    }
}
