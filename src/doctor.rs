//! `koji-adjutant doctor`: preflight checks, each ok/warn/fail with a one-line fix.
//!
//! Each adapter module contributes its own checks as `Vec<Check>`; this module runs and prints
//! them.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// The outcome of one preflight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name, e.g. "config", "cert", "podman".
    pub name: String,
    pub status: CheckStatus,
    /// What was found, in one line.
    pub detail: String,
    /// How to fix it; empty when the status is Ok.
    pub fix: String,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

impl Check {
    /// `[ ok ] name: detail`, with the fix on a second line when there is one.
    pub fn render(&self) -> String {
        let tag = match self.status {
            CheckStatus::Ok => "[ ok ]",
            CheckStatus::Warn => "[warn]",
            CheckStatus::Fail => "[FAIL]",
        };
        if self.fix.is_empty() {
            format!("{tag} {}: {}", self.name, self.detail)
        } else {
            format!(
                "{tag} {}: {}\n       fix: {}",
                self.name, self.detail, self.fix
            )
        }
    }
}

/// True when any check failed: `doctor` then exits non-zero.
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == CheckStatus::Fail)
}

/// Days a certificate warns before it expires.
pub const CERT_WARN_DAYS: i32 = 30;

/// The checks of this module's area: the configuration and the local paths it names.
pub fn config_checks(config: &Config) -> Vec<Check> {
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let mut checks = vec![Check::ok("config", format!("loaded {}", files.join(", ")))];
    for warning in &config.warnings {
        checks.push(Check::warn(
            "config",
            warning.clone(),
            "edit the config as the message says, then run check-config",
        ));
    }
    checks.push(cert_check(config));
    if let Some(serverca) = &config.kojid.serverca {
        checks.push(ca_check(serverca));
    }
    checks.push(workdir_check(&config.kojid.workdir));
    checks.push(space_check(&config.kojid.mockdir, config.kojid.minspace));
    checks.push(topdir_check(&config.kojid.topdir));
    checks
}

fn expiry_status(
    name: &str,
    what: String,
    not_after: &openssl::asn1::Asn1TimeRef,
    fix: &str,
) -> Check {
    let now = match Asn1Time::days_from_now(0) {
        Ok(now) => now,
        Err(err) => return Check::fail(name, format!("cannot read the clock: {err}"), fix),
    };
    let days = match now.diff(not_after) {
        Ok(diff) => diff.days,
        Err(err) => {
            return Check::fail(name, format!("{what}: unreadable expiry date: {err}"), fix);
        }
    };
    if days < 0 || (days == 0 && now.as_ref() >= not_after) {
        Check::fail(name, format!("{what} expired on {not_after}"), fix)
    } else if days < CERT_WARN_DAYS {
        Check::warn(
            name,
            format!("{what} expires on {not_after}, in {days} days"),
            fix,
        )
    } else {
        Check::ok(
            name,
            format!("{what}, expires on {not_after} ({days} days)"),
        )
    }
}

fn subject_of(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join("/")
}

fn cert_check(config: &Config) -> Check {
    let Some(path) = &config.kojid.cert else {
        if config.kojid.user.is_some() {
            return Check::ok("cert", "no cert set; login uses user/password");
        }
        if config.kojid.keytab.is_file() {
            return Check::ok(
                "cert",
                format!(
                    "no cert set; login uses Kerberos with {}",
                    config.kojid.keytab.display()
                ),
            );
        }
        return Check::warn(
            "cert",
            "no cert, user or keytab: the worker has no way to log in to the hub",
            "set cert = /etc/kojid/client.crt (PEM with certificate and key) in [kojid]",
        );
    };
    let fix = "renew the host certificate and write it with its key to the cert path";
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(err) => {
            return Check::fail(
                "cert",
                format!("cannot read {}: {err}", path.display()),
                "point cert at a readable PEM file holding the certificate and its key",
            );
        }
    };
    let cert = match X509::from_pem(&pem) {
        Ok(cert) => cert,
        Err(_) => {
            return Check::fail(
                "cert",
                format!("{} holds no PEM certificate", path.display()),
                "point cert at a PEM file holding the certificate and its key",
            );
        }
    };
    if PKey::private_key_from_pem(&pem).is_err() {
        return Check::fail(
            "cert",
            format!("{} holds a certificate but no private key", path.display()),
            "append the private key to the cert file, as kojid expects both in one PEM file",
        );
    }
    expiry_status(
        "cert",
        format!("{} ({})", path.display(), subject_of(&cert)),
        cert.not_after(),
        fix,
    )
}

fn ca_check(path: &Path) -> Check {
    let fix = "point serverca at a PEM bundle of the CA that signed the hub's certificate";
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(err) => {
            return Check::fail(
                "serverca",
                format!("cannot read {}: {err}", path.display()),
                fix,
            );
        }
    };
    let certs = match X509::stack_from_pem(&pem) {
        Ok(certs) if !certs.is_empty() => certs,
        _ => {
            return Check::fail(
                "serverca",
                format!("{} holds no PEM certificate", path.display()),
                fix,
            );
        }
    };
    // The bundle is as good as its first certificate to expire.
    let mut soonest = &certs[0];
    for cert in &certs[1..] {
        if cert.not_after() < soonest.not_after() {
            soonest = cert;
        }
    }
    expiry_status(
        "serverca",
        format!(
            "{} ({} certificate(s), soonest to expire: {})",
            path.display(),
            certs.len(),
            subject_of(soonest)
        ),
        soonest.not_after(),
        "replace the CA bundle with a current one",
    )
}

/// The path itself or its nearest existing ancestor.
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

fn writable_dir(dir: &Path) -> Result<(), std::io::Error> {
    tempfile::Builder::new()
        .prefix(".koji-adjutant-doctor")
        .tempfile_in(dir)
        .map(drop)
}

fn workdir_check(workdir: &Path) -> Check {
    let fix = format!(
        "create {} and make it writable by the user the worker runs as",
        workdir.display()
    );
    if workdir.is_dir() {
        return match writable_dir(workdir) {
            Ok(()) => Check::ok("workdir", format!("{} is writable", workdir.display())),
            Err(err) => Check::fail(
                "workdir",
                format!("{} is not writable: {err}", workdir.display()),
                fix,
            ),
        };
    }
    if workdir.exists() {
        return Check::fail(
            "workdir",
            format!("{} exists but is not a directory", workdir.display()),
            fix,
        );
    }
    match existing_ancestor(workdir) {
        Some(parent) if writable_dir(parent).is_ok() => Check::ok(
            "workdir",
            format!(
                "{} does not exist yet and will be created at start-up (as kojid does)",
                workdir.display()
            ),
        ),
        _ => Check::fail(
            "workdir",
            format!("{} does not exist and cannot be created", workdir.display()),
            fix,
        ),
    }
}

/// Free MiB on the filesystem holding `path`.
pub fn free_mib(path: &Path) -> Result<u64, nix::Error> {
    let stat = nix::sys::statvfs::statvfs(path)?;
    let bytes = u128::from(stat.blocks_available()) * u128::from(stat.fragment_size());
    Ok(u64::try_from(bytes / (1024 * 1024)).unwrap_or(u64::MAX))
}

fn space_check(mockdir: &Path, minspace: u64) -> Check {
    let Some(existing) = existing_ancestor(mockdir) else {
        return Check::fail(
            "minspace",
            format!("no part of {} exists", mockdir.display()),
            "set mockdir to a path on the filesystem that holds container storage",
        );
    };
    match free_mib(existing) {
        Ok(free) if free >= minspace => Check::ok(
            "minspace",
            format!(
                "{} MiB free on {} (mockdir {}), minspace is {minspace} MiB",
                free,
                existing.display(),
                mockdir.display()
            ),
        ),
        Ok(free) => Check::fail(
            "minspace",
            format!(
                "only {free} MiB free on {} (mockdir {}), below minspace {minspace} MiB: the worker will take no task",
                existing.display(),
                mockdir.display()
            ),
            "free disk space there, or lower minspace in [kojid]",
        ),
        Err(err) => Check::fail(
            "minspace",
            format!("cannot measure free space on {}: {err}", existing.display()),
            "set mockdir to a readable path on the filesystem that holds container storage",
        ),
    }
}

fn topdir_check(topdir: &Path) -> Check {
    if topdir.is_dir() {
        Check::ok("topdir", format!("{} is present", topdir.display()))
    } else {
        Check::warn(
            "topdir",
            format!(
                "{} is missing: createrepo, newRepo and distRepo tasks will fail",
                topdir.display()
            ),
            "mount the Koji volume at topdir, or set topdir in [kojid] to where it is mounted",
        )
    }
}
