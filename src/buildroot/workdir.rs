//! The task work dir `<workdir>/tasks/<id%10000>/<id>` and the one check that a path coming
//! from the hub stays inside it.

use std::path::{Component, Path, PathBuf};

use super::BuildrootError;

/// `<workdir>/tasks/<id % 10000>/<id>`, kojid's per-task directory.
pub fn task_work_dir(workdir: &Path, task_id: i64) -> PathBuf {
    todo!("{workdir:?} {task_id}")
}

/// Wipes and re-creates the task work dir (kojid wipes it before and after each task).
pub fn prepare_task_work_dir(workdir: &Path, task_id: i64) -> Result<PathBuf, BuildrootError> {
    todo!("{workdir:?} {task_id}")
}

/// Removes the task work dir; a missing dir is fine.
pub fn remove_task_work_dir(workdir: &Path, task_id: i64) -> Result<(), BuildrootError> {
    todo!("{workdir:?} {task_id}")
}

/// Joins a relative path that came from outside (the hub's SRPM path, a file name) onto
/// `base`, refusing anything that could leave it: absolute paths, `..`, empty names.
pub fn work_relative_path(base: &Path, relative: &str) -> Result<PathBuf, BuildrootError> {
    let _ = (Component::CurDir, base, relative);
    todo!()
}
