//! Helpers the build handlers share: the task work dir, SRPM downloads that never leave it,
//! and SCM URL detection.

use std::path::{Path, PathBuf};

use koji_adjutant_actors::error::HandlerError;

use super::errors::BuildFailure;
use super::rpmheader::RpmHeader;
use super::services::{BuildServices, FileError, TaskFiles};

/// The SCM schemes koji's `SCM.is_scm_url` recognises.
const SCM_SCHEMES: [&str; 11] = [
    "git://",
    "git+http://",
    "git+https://",
    "git+rsync://",
    "git+ssh://",
    "cvs://",
    "cvs+ssh://",
    "svn://",
    "svn+http://",
    "svn+https://",
    "svn+ssh://",
];

pub fn is_scm_url(source: &str) -> bool {
    SCM_SCHEMES.iter().any(|scheme| source.starts_with(scheme))
}

/// Wipes and recreates the task's work dir (kojid does both before and after a task).
pub fn fresh_workdir(services: &BuildServices, task_id: i64) -> Result<PathBuf, HandlerError> {
    let dir = services.settings.task_workdir(task_id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|error| {
            HandlerError::Other(format!(
                "cannot clear the task work dir {}: {error}; check its permissions",
                dir.display()
            ))
        })?;
    }
    std::fs::create_dir_all(&dir).map_err(|error| {
        HandlerError::Other(format!(
            "cannot create the task work dir {}: {error}; check that `workdir` in kojid.conf is writable",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// Removes the task's work dir; failures are only logged, the next run of the same task id
/// wipes it anyway.
pub fn remove_workdir(services: &BuildServices, task_id: i64) {
    let dir = services.settings.task_workdir(task_id);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(task_id, dir = %dir.display(), %error, "could not remove the task work dir");
    }
}

/// Where a work-relative path from the hub lands inside `workdir`: `<workdir>/local/<relpath>`.
/// The path is checked so that no name from the hub can escape the work dir.
pub fn local_path(workdir: &Path, relpath: &str) -> Result<PathBuf, BuildFailure> {
    let clean = crate::hub::download::safe_relative_path(relpath)
        .map_err(|error| BuildFailure::generic(error.to_string()))?;
    Ok(workdir.join("local").join(clean))
}

/// Downloads `<topurl>/work/<relpath>` into the work dir and reads its header; it must be a
/// source rpm (kojid: "… is not a source package").
pub async fn fetch_srpm(
    files: &dyn TaskFiles,
    workdir: &Path,
    relpath: &str,
) -> Result<(PathBuf, RpmHeader), HandlerError> {
    let local = local_path(workdir, relpath)?;
    if let Some(parent) = local.parent() {
        std::fs::create_dir_all(parent).map_err(|error| {
            HandlerError::Other(format!("cannot create {}: {error}", parent.display()))
        })?;
    }
    files
        .download(&format!("work/{relpath}"), &local)
        .await
        .map_err(file_failure)?;
    let header = RpmHeader::read(&local)
        .map_err(|error| HandlerError::from(BuildFailure::build(error.to_string())))?;
    if !header.is_source {
        return Err(BuildFailure::build(format!("{relpath} is not a source package")).into());
    }
    Ok((local, header))
}

/// A transfer failure fails the task with the transfer's own explanation.
pub fn file_failure(error: FileError) -> HandlerError {
    HandlerError::Other(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scm_urls_are_recognised() {
        assert!(is_scm_url(
            "git+https://src.fedoraproject.org/rpms/foo.git#abc"
        ));
        assert!(is_scm_url("git://pkgs/foo#HEAD"));
        assert!(!is_scm_url(
            "cli-build/1700000000.123456.AbCdEfGh/foo-1-1.src.rpm"
        ));
        assert!(!is_scm_url("https://example.com/foo.src.rpm"));
    }

    #[test]
    fn hub_paths_never_escape_the_work_dir() {
        let work = Path::new("/var/tmp/koji/tasks/7/7");
        assert_eq!(
            local_path(work, "tasks/4/4/hello-1.0-1.src.rpm").unwrap(),
            Path::new("/var/tmp/koji/tasks/7/7/local/tasks/4/4/hello-1.0-1.src.rpm")
        );
        for hostile in ["../../etc/passwd", "/etc/passwd", "a/../../b", "", "a\0b"] {
            assert!(local_path(work, hostile).is_err(), "{hostile:?} accepted");
        }
    }
}
