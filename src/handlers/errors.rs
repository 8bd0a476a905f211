//! The faults the build handlers fail with. Their codes and messages are what packagers see as
//! the task result, so they follow kojid's wording (§4.1–4.3, §7).

use koji_adjutant_actors::error::{Fault, HandlerError};

pub const BUILD_ERROR: i32 = 1005;
pub const BUILDROOT_ERROR: i32 = 1012;

/// A failure raised by the handlers themselves (kojid's `koji.BuildError` and friends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{fault_class} ({fault_code}): {message}")]
pub struct BuildFailure {
    pub fault_code: i32,
    pub fault_class: &'static str,
    pub message: String,
}

impl BuildFailure {
    pub fn build(message: impl Into<String>) -> Self {
        Self {
            fault_code: BUILD_ERROR,
            fault_class: "BuildError",
            message: message.into(),
        }
    }

    pub fn buildroot(message: impl Into<String>) -> Self {
        Self {
            fault_code: BUILDROOT_ERROR,
            fault_class: "BuildrootError",
            message: message.into(),
        }
    }

    pub fn generic(message: impl Into<String>) -> Self {
        Self {
            fault_code: 1000,
            fault_class: "GenericError",
            message: message.into(),
        }
    }
}

impl From<BuildFailure> for HandlerError {
    fn from(failure: BuildFailure) -> Self {
        HandlerError::Fault(Fault::new(
            failure.fault_code,
            failure.fault_class,
            failure.message,
        ))
    }
}

/// Which log explains a failed rpmbuild, from the build step's exit status, as kojid words it
/// for mock's statuses: 10 is a failure inside rpmbuild, 1 may be either, anything else is the
/// buildroot's.
pub fn build_failure_message(arch: &str, status: i32) -> String {
    let logs = match status {
        10 => "build.log",
        1 => "build.log or root.log",
        _ => "root.log",
    };
    format!(
        "error building package (arch {arch}), mock exited with status {status}; see {logs} for more information"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_name_the_right_log() {
        assert_eq!(
            build_failure_message("x86_64", 1),
            "error building package (arch x86_64), mock exited with status 1; see build.log or root.log for more information"
        );
        assert!(
            build_failure_message("noarch", 10).ends_with("see build.log for more information")
        );
        assert!(build_failure_message("noarch", 30).ends_with("see root.log for more information"));
    }

    #[test]
    fn failures_become_task_faults_with_kojis_codes() {
        let HandlerError::Fault(fault) =
            BuildFailure::build("No matching arches were found").into()
        else {
            panic!("not a fault");
        };
        assert_eq!(fault.fault_code, 1005);
        assert_eq!(fault.fault_class, "BuildError");
        let HandlerError::Fault(fault) = BuildFailure::buildroot("tag/repo mismatch").into() else {
            panic!("not a fault");
        };
        assert_eq!(fault.fault_code, 1012);
    }
}
