//! Errors shared by the actors and the traits they drive.
//!
//! Hub errors carry the same classification as the hub client's `classify()`, so that the
//! supervision core can react the way kojid does without knowing anything about XML-RPC.

use serde::Serialize;

/// Koji fault codes that the supervision core reacts to (§7 of the protocol spec).
pub mod fault_codes {
    /// A plain fault: an unexpected exception on the hub, or a non-Koji error in a task.
    pub const PLAIN: i32 = 1;
    pub const GENERIC_ERROR: i32 = 1000;
    pub const AUTH_ERROR: i32 = 1002;
    pub const ACTION_NOT_ALLOWED: i32 = 1004;
    pub const AUTH_LOCK_ERROR: i32 = 1006;
    pub const AUTH_EXPIRED: i32 = 1007;
    pub const SEQUENCE_ERROR: i32 = 1008;
    pub const RETRY_ERROR: i32 = 1009;
    pub const SERVER_OFFLINE: i32 = 1014;
    pub const GSSAPI_AUTH_ERROR: i32 = 1023;
    pub const PARAMETER_ERROR: i32 = 1019;
}

/// A Koji fault as the hub stores it for a failed task: code, class name and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Fault {
    pub fault_code: i32,
    /// The Koji exception class name (`GenericError`, `BuildError`, …); informative only.
    pub fault_class: String,
    pub message: String,
}

impl Fault {
    pub fn new(
        fault_code: i32,
        fault_class: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            fault_code,
            fault_class: fault_class.into(),
            message: message.into(),
        }
    }

    /// `GenericError` (1000), the fault kojid raises for most handler-level problems.
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(fault_codes::GENERIC_ERROR, "GenericError", message)
    }

    /// `ParameterError` (1019): the task's arguments do not fit the handler's signature.
    pub fn parameter(message: impl Into<String>) -> Self {
        Self::new(fault_codes::PARAMETER_ERROR, "ParameterError", message)
    }

    /// Fault code 1, what kojid sends for any exception that is not a Koji fault.
    pub fn plain(message: impl Into<String>) -> Self {
        Self::new(fault_codes::PLAIN, "Fault", message)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.fault_class, self.fault_code, self.message
        )
    }
}

/// What the caller should do about a failed hub call. Mirrors the hub client's `classify()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorClass {
    /// Transient (transport error after the client's own retries, or ServerOffline): try again
    /// on the next cycle.
    Retry,
    /// The session is gone or expired and could not be renewed transparently: log in again.
    Relogin,
    /// A fault that concerns the task at hand: the task fails with it.
    FailTask,
    /// The hub says the task is not ours any more (ActionNotAllowed on an owner check).
    FreeTask,
    /// Nothing sensible can continue (authentication refused, exclusive lock held elsewhere,
    /// call sequence broken): the worker stops.
    Stop,
}

/// A failed hub call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hub call {call} failed: {message}")]
pub struct HubError {
    /// The XML-RPC method that failed, for logs.
    pub call: String,
    pub class: ErrorClass,
    /// Set when the hub answered with a fault.
    pub fault: Option<Fault>,
    pub message: String,
}

impl HubError {
    pub fn new(call: impl Into<String>, class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            call: call.into(),
            class,
            fault: None,
            message: message.into(),
        }
    }

    /// An error built from a fault, classified the way the hub client's `classify()` does.
    pub fn from_fault(call: impl Into<String>, fault: Fault) -> Self {
        let class = match fault.fault_code {
            fault_codes::SERVER_OFFLINE => ErrorClass::Retry,
            fault_codes::AUTH_EXPIRED => ErrorClass::Relogin,
            // Only the owner check means the task was taken back; other ActionNotAllowed
            // faults (policy denials) are the task's failure.
            fault_codes::ACTION_NOT_ALLOWED if fault.message.contains("does not own task") => {
                ErrorClass::FreeTask
            }
            fault_codes::AUTH_ERROR
            | fault_codes::AUTH_LOCK_ERROR
            | fault_codes::SEQUENCE_ERROR
            | fault_codes::GSSAPI_AUTH_ERROR => ErrorClass::Stop,
            _ => ErrorClass::FailTask,
        };
        Self {
            call: call.into(),
            class,
            message: fault.message.clone(),
            fault: Some(fault),
        }
    }

    pub fn fault_code(&self) -> Option<i32> {
        self.fault.as_ref().map(|f| f.fault_code)
    }

    /// The fault a task fails with when this error ends it: the hub's own fault when there
    /// is one, else fault code 1 naming the call.
    pub fn to_task_fault(&self) -> Fault {
        match &self.fault {
            Some(fault) => fault.clone(),
            None => Fault::plain(self.to_string()),
        }
    }
}

/// How a task handler ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandlerError {
    /// A Koji fault: the task fails with exactly this code and message (`host.failTask`).
    #[error("{0}")]
    Fault(Fault),
    /// Another host should run it (`host.refuseTask`). `soft` refusals expire on the hub.
    #[error("task refused: {message}")]
    Refuse { soft: bool, message: String },
    /// kojid's `ServerRestart` inside a handler: the task is freed so that a pending restart
    /// can happen (`host.freeTasks([id])`).
    #[error("task freed for a pending restart")]
    ServerRestart,
    /// kojid's `ServerExit`: the worker shuts down.
    #[error("worker shutdown requested by the task")]
    ServerExit,
    /// The task was aborted (cancelled, freed, reassigned, or the worker is shutting down);
    /// nothing is reported.
    #[error("task aborted: {0}")]
    Aborted(String),
    /// Any other failure. The message is the chain of causes; it becomes fault code 1.
    #[error("{0}")]
    Other(String),
}

impl HandlerError {
    /// Builds an `Other` failure from an error and its chain of sources, one cause per clause,
    /// which reads better for a packager than a backtrace.
    pub fn from_chain(context: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        Self::Other(format!("{context}: {}", error_chain(error)))
    }
}

impl From<HubError> for HandlerError {
    /// A hub error inside a task fails the task with the hub's fault, whatever its class: an
    /// `ActionNotAllowed` may be a policy denial the packager must see, and when the task is
    /// simply not ours any more the `failTask` is refused harmlessly (as kojid's is).
    fn from(error: HubError) -> Self {
        HandlerError::Fault(error.to_task_fault())
    }
}

impl From<crate::runtime::RuntimeError> for HandlerError {
    fn from(error: crate::runtime::RuntimeError) -> Self {
        match error {
            crate::runtime::RuntimeError::Cancelled { step } => {
                HandlerError::Aborted(format!("step {step} was cancelled"))
            }
            other => HandlerError::Other(error_chain(&other)),
        }
    }
}

/// `outer: cause: root cause`, the way operators read error chains.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: i32, message: &str) -> ErrorClass {
        HubError::from_fault("x", Fault::new(code, "", message)).class
    }

    #[test]
    fn faults_are_classified_like_the_hub_client_does() {
        assert_eq!(class(1014, "database outage"), ErrorClass::Retry);
        assert_eq!(class(1007, "session expired"), ErrorClass::Relogin);
        assert_eq!(
            class(1004, "host 1 does not own task 15"),
            ErrorClass::FreeTask
        );
        assert_eq!(
            class(1004, "policy violation (build_from_srpm)"),
            ErrorClass::FailTask
        );
        for code in [1002, 1006, 1008, 1023] {
            assert_eq!(class(code, ""), ErrorClass::Stop, "{code}");
        }
        for code in [1, 1000, 1005, 1009, 1019, 4242] {
            assert_eq!(class(code, ""), ErrorClass::FailTask, "{code}");
        }
    }

    #[test]
    fn a_task_fails_with_the_hubs_own_fault_or_code_1() {
        let fault = Fault::new(1005, "BuildError", "mock exited with status 1");
        let from_hub: HandlerError =
            HubError::from_fault("host.completeBuild", fault.clone()).into();
        assert_eq!(from_hub, HandlerError::Fault(fault));
        let transport = HubError::new("host.subtask", ErrorClass::Retry, "connection refused");
        let HandlerError::Fault(plain) = transport.into() else {
            panic!()
        };
        assert_eq!(plain.fault_code, 1);
        assert_eq!(
            plain.message,
            "hub call host.subtask failed: connection refused"
        );
    }
}
