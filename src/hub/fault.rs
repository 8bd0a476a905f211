//! Koji faults (§7 of the protocol spec) as a typed enum, and what the worker does about each.

use super::xmlrpc::RawFault;

/// Every fault code kojihub defines. The class names are Koji's exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Code 1: an unexpected exception on the hub (not a Koji exception class).
    Unexpected,
    GenericError,
    LockError,
    AuthError,
    TagError,
    ActionNotAllowed,
    BuildError,
    AuthLockError,
    AuthExpired,
    SequenceError,
    RetryError,
    PreBuildError,
    PostBuildError,
    BuildrootError,
    FunctionDeprecated,
    ServerOffline,
    LiveCDError,
    PluginError,
    CallbackError,
    ApplianceError,
    ParameterError,
    ImportError,
    ConfigurationError,
    LiveMediaError,
    GSSAPIAuthError,
    NameValidationError,
    /// A code Koji does not define (a plugin's own, or a newer hub).
    Unknown,
}

const TABLE: &[(i32, FaultKind, &str)] = &[
    (1, FaultKind::Unexpected, "Fault"),
    (1000, FaultKind::GenericError, "GenericError"),
    (1001, FaultKind::LockError, "LockError"),
    (1002, FaultKind::AuthError, "AuthError"),
    (1003, FaultKind::TagError, "TagError"),
    (1004, FaultKind::ActionNotAllowed, "ActionNotAllowed"),
    (1005, FaultKind::BuildError, "BuildError"),
    (1006, FaultKind::AuthLockError, "AuthLockError"),
    (1007, FaultKind::AuthExpired, "AuthExpired"),
    (1008, FaultKind::SequenceError, "SequenceError"),
    (1009, FaultKind::RetryError, "RetryError"),
    (1010, FaultKind::PreBuildError, "PreBuildError"),
    (1011, FaultKind::PostBuildError, "PostBuildError"),
    (1012, FaultKind::BuildrootError, "BuildrootError"),
    (1013, FaultKind::FunctionDeprecated, "FunctionDeprecated"),
    (1014, FaultKind::ServerOffline, "ServerOffline"),
    (1015, FaultKind::LiveCDError, "LiveCDError"),
    (1016, FaultKind::PluginError, "PluginError"),
    (1017, FaultKind::CallbackError, "CallbackError"),
    (1018, FaultKind::ApplianceError, "ApplianceError"),
    (1019, FaultKind::ParameterError, "ParameterError"),
    (1020, FaultKind::ImportError, "ImportError"),
    (1021, FaultKind::ConfigurationError, "ConfigurationError"),
    (1022, FaultKind::LiveMediaError, "LiveMediaError"),
    (1023, FaultKind::GSSAPIAuthError, "GSSAPIAuthError"),
    (1024, FaultKind::NameValidationError, "NameValidationError"),
];

impl FaultKind {
    pub fn from_code(code: i32) -> Self {
        TABLE
            .iter()
            .find(|(known, _, _)| *known == code)
            .map_or(FaultKind::Unknown, |(_, kind, _)| *kind)
    }

    /// Koji's exception class name, as the hub and the web UI show it.
    pub fn class_name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, kind, _)| *kind == self)
            .map_or("Fault", |(_, _, name)| name)
    }

    /// The code Koji uses for this class; `None` for [`FaultKind::Unknown`].
    pub fn code(self) -> Option<i32> {
        TABLE
            .iter()
            .find(|(_, kind, _)| *kind == self)
            .map(|(code, _, _)| *code)
    }

    /// Subclasses of AuthError in Koji (`except AuthError` catches them).
    pub fn is_auth_error(self) -> bool {
        matches!(
            self,
            FaultKind::AuthError
                | FaultKind::AuthLockError
                | FaultKind::AuthExpired
                | FaultKind::SequenceError
                | FaultKind::RetryError
                | FaultKind::GSSAPIAuthError
        )
    }

    /// Subclasses of BuildError in Koji.
    pub fn is_build_error(self) -> bool {
        matches!(
            self,
            FaultKind::BuildError
                | FaultKind::PreBuildError
                | FaultKind::PostBuildError
                | FaultKind::BuildrootError
        )
    }
}

/// What the caller should do about a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Wait and send the same request again (only ServerOffline).
    Retry,
    /// Renew the session with `renew=true` and replay the call once.
    Relogin,
    /// The task that made the call fails with this fault as its result.
    FailTask,
    /// The task is not ours any more (freed, reassigned, canceled): drop it without reporting.
    FreeTask,
    /// The worker cannot go on (bad credentials, lock held elsewhere, sequence broken): stop.
    Stop,
}

/// A fault from the hub with its code, class and message kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hub fault {code} {class}: {message}", class = .kind.class_name())]
pub struct KojiFault {
    pub kind: FaultKind,
    pub code: i32,
    pub message: String,
}

impl KojiFault {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            kind: FaultKind::from_code(code),
            code,
            message: message.into(),
        }
    }

    pub fn class_name(&self) -> &'static str {
        self.kind.class_name()
    }

    /// `Invalid method: X`, which the hub uses for unknown methods and which callers use to
    /// probe for capabilities of older hubs.
    pub fn is_invalid_method(&self) -> bool {
        self.kind == FaultKind::GenericError && self.message.starts_with("Invalid method")
    }

    /// kojid's reaction to each fault (§7), for a call made on behalf of a task or the loop.
    pub fn classify(&self) -> FaultAction {
        match self.kind {
            FaultKind::ServerOffline => FaultAction::Retry,
            FaultKind::AuthExpired => FaultAction::Relogin,
            // "host H does not own task T": the hub took the task back (freed, reassigned or
            // canceled). kojid checks whether the task was lost and drops it; reporting a
            // result would fail again.
            FaultKind::ActionNotAllowed if self.message.contains("does not own task") => {
                FaultAction::FreeTask
            }
            FaultKind::AuthError
            | FaultKind::AuthLockError
            | FaultKind::SequenceError
            | FaultKind::GSSAPIAuthError => FaultAction::Stop,
            // kojid's main loop re-raises RetryError (the daemon dies); inside a task it only
            // fails that task, which is the scope every hub call here is made in.
            FaultKind::RetryError => FaultAction::FailTask,
            FaultKind::Unexpected
            | FaultKind::GenericError
            | FaultKind::LockError
            | FaultKind::TagError
            | FaultKind::ActionNotAllowed
            | FaultKind::BuildError
            | FaultKind::PreBuildError
            | FaultKind::PostBuildError
            | FaultKind::BuildrootError
            | FaultKind::FunctionDeprecated
            | FaultKind::LiveCDError
            | FaultKind::PluginError
            | FaultKind::CallbackError
            | FaultKind::ApplianceError
            | FaultKind::ParameterError
            | FaultKind::ImportError
            | FaultKind::ConfigurationError
            | FaultKind::LiveMediaError
            | FaultKind::NameValidationError
            | FaultKind::Unknown => FaultAction::FailTask,
        }
    }

    pub fn to_raw(&self) -> RawFault {
        RawFault {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl From<RawFault> for KojiFault {
    fn from(raw: RawFault) -> Self {
        KojiFault::new(raw.code, raw.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(code: i32, message: &str) -> FaultAction {
        KojiFault::new(code, message).classify()
    }

    #[test]
    fn every_code_of_section_7_has_its_class() {
        let expected = [
            (1, "Fault"),
            (1000, "GenericError"),
            (1001, "LockError"),
            (1002, "AuthError"),
            (1003, "TagError"),
            (1004, "ActionNotAllowed"),
            (1005, "BuildError"),
            (1006, "AuthLockError"),
            (1007, "AuthExpired"),
            (1008, "SequenceError"),
            (1009, "RetryError"),
            (1010, "PreBuildError"),
            (1011, "PostBuildError"),
            (1012, "BuildrootError"),
            (1013, "FunctionDeprecated"),
            (1014, "ServerOffline"),
            (1015, "LiveCDError"),
            (1016, "PluginError"),
            (1017, "CallbackError"),
            (1018, "ApplianceError"),
            (1019, "ParameterError"),
            (1020, "ImportError"),
            (1021, "ConfigurationError"),
            (1022, "LiveMediaError"),
            (1023, "GSSAPIAuthError"),
            (1024, "NameValidationError"),
        ];
        for (code, class) in expected {
            let fault = KojiFault::new(code, "m");
            assert_eq!(fault.class_name(), class, "code {code}");
            assert_eq!(fault.kind.code(), Some(code));
        }
        let unknown = KojiFault::new(4242, "plugin says no");
        assert_eq!(unknown.kind, FaultKind::Unknown);
        assert_eq!(unknown.code, 4242);
        assert_eq!(unknown.to_string(), "hub fault 4242 Fault: plugin says no");
    }

    #[test]
    fn classify_per_code() {
        assert_eq!(action(1, "ValueError: x"), FaultAction::FailTask);
        assert_eq!(action(1000, "No such task"), FaultAction::FailTask);
        assert_eq!(action(1001, "locked"), FaultAction::FailTask);
        assert_eq!(
            action(1002, "Invalid session or bad credentials"),
            FaultAction::Stop
        );
        assert_eq!(action(1003, "tag"), FaultAction::FailTask);
        assert_eq!(
            action(1004, "host 1 does not own task 15"),
            FaultAction::FreeTask
        );
        assert_eq!(
            action(1004, "policy violation (tag): deny"),
            FaultAction::FailTask
        );
        assert_eq!(action(1005, "mock failed"), FaultAction::FailTask);
        assert_eq!(action(1006, "lock held"), FaultAction::Stop);
        assert_eq!(action(1007, "expired"), FaultAction::Relogin);
        assert_eq!(action(1008, "sequence"), FaultAction::Stop);
        assert_eq!(action(1009, "retry"), FaultAction::FailTask);
        for code in [
            1010, 1011, 1012, 1013, 1015, 1016, 1017, 1018, 1019, 1020, 1021, 1022, 1024, 77,
        ] {
            assert_eq!(action(code, "x"), FaultAction::FailTask, "code {code}");
        }
        assert_eq!(action(1014, "database outage"), FaultAction::Retry);
        assert_eq!(action(1023, "gssapi"), FaultAction::Stop);
    }

    #[test]
    fn families_and_probing() {
        assert!(FaultKind::AuthExpired.is_auth_error());
        assert!(FaultKind::RetryError.is_auth_error());
        assert!(!FaultKind::ServerOffline.is_auth_error());
        assert!(FaultKind::BuildrootError.is_build_error());
        assert!(KojiFault::new(1000, "Invalid method: getKojiVersion").is_invalid_method());
        assert!(!KojiFault::new(1019, "Invalid method: x").is_invalid_method());
    }
}
