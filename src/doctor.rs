//! `koji-adjutant doctor`: preflight checks, each ok/warn/fail with a one-line fix.
//!
//! Each adapter module contributes its own checks as `Vec<Check>`; this module runs and prints
//! them.

use serde::Serialize;

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

    pub fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}
