//! The task work dir `<workdir>/tasks/<id%10000>/<id>` and the one check that a path coming
//! from the hub stays inside it.

use std::path::{Component, Path, PathBuf};

use super::BuildrootError;

/// `<workdir>/tasks/<id % 10000>/<id>`, kojid's per-task directory.
pub fn task_work_dir(workdir: &Path, task_id: i64) -> PathBuf {
    workdir
        .join("tasks")
        .join((task_id % 10000).to_string())
        .join(task_id.to_string())
}

/// Wipes and re-creates the task work dir (kojid wipes it before and after each task), so a
/// re-run task never sees a previous attempt's files.
pub fn prepare_task_work_dir(workdir: &Path, task_id: i64) -> Result<PathBuf, BuildrootError> {
    let dir = task_work_dir(workdir, task_id);
    remove_task_work_dir(workdir, task_id)?;
    std::fs::create_dir_all(&dir)
        .map_err(BuildrootError::io("creating the task work dir", &dir))?;
    Ok(dir)
}

/// Removes the task work dir; a missing dir is fine.
pub fn remove_task_work_dir(workdir: &Path, task_id: i64) -> Result<(), BuildrootError> {
    let dir = task_work_dir(workdir, task_id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BuildrootError::Io {
            action: "removing the task work dir",
            path: dir,
            source,
        }),
    }
}

/// Joins a relative path that came from outside (the hub's SRPM path, a file name) onto
/// `base`, refusing anything that could leave it: absolute paths, `..`, empty names. Symlinks
/// are not followed here; the work dir is the worker's own and holds none it did not make.
pub fn work_relative_path(base: &Path, relative: &str) -> Result<PathBuf, BuildrootError> {
    let invalid = |message: &str| BuildrootError::InvalidInput {
        what: format!("path {relative:?}"),
        message: message.to_owned(),
    };
    if relative.is_empty() {
        return Err(invalid("it is empty"));
    }
    if relative.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut joined = base.to_path_buf();
    let mut parts = 0;
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => {
                joined.push(part);
                parts += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid("it contains '..' and could leave the work dir"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(
                    "it is absolute; a path relative to the work dir is expected",
                ));
            }
        }
    }
    if parts == 0 {
        return Err(invalid("it names no file"));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_dir_is_bucketed_by_id_modulo_10000() {
        assert_eq!(
            task_work_dir(Path::new("/var/tmp/koji"), 123456),
            PathBuf::from("/var/tmp/koji/tasks/3456/123456")
        );
    }

    #[test]
    fn hub_paths_never_leave_the_base() {
        let base = Path::new("/w");
        assert_eq!(
            work_relative_path(base, "cli-build/1.2/foo-1-1.src.rpm").unwrap(),
            PathBuf::from("/w/cli-build/1.2/foo-1-1.src.rpm")
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../x", ".", "a/\0b"] {
            assert!(work_relative_path(base, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prepare_wipes_an_old_attempt() {
        let top = tempfile::tempdir().unwrap();
        let dir = prepare_task_work_dir(top.path(), 7).unwrap();
        std::fs::write(dir.join("stale"), "x").unwrap();
        let again = prepare_task_work_dir(top.path(), 7).unwrap();
        assert_eq!(dir, again);
        assert!(!again.join("stale").exists());
        remove_task_work_dir(top.path(), 7).unwrap();
        assert!(!dir.exists());
        remove_task_work_dir(top.path(), 7).unwrap();
    }
}
