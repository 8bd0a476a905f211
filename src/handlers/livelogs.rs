//! Live log upload (§3.5): every second, each `*.log` file in the task work dir is synced to
//! the hub with the incremental uploader, and once more when the task ends, so that a failed
//! or cancelled task still has its logs on the hub.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::services::TaskFiles;

/// kojid's order of the logs in a task result; other logs follow by name.
const KNOWN_ORDER: [&str; 8] = [
    "build.log",
    "installed_pkgs.log",
    "state.log",
    "hw_info.log",
    "root.log",
    "mock_config.log",
    "mock_output.log",
    "image_rpms.log",
];

/// The `*.log` files in `dir` and its direct subdirectories by upload name, skipping `local/`
/// (downloads). When two files share a name the shallower one wins, so the set does not
/// change between scans.
pub fn scan_logs(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut found: BTreeMap<String, (usize, PathBuf)> = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((current, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                // Logs live at most one level down (the engine's `logs/`); deeper trees are
                // build material whose `*.log` files are no task logs.
                if depth == 0 && entry.file_name() != "local" {
                    stack.push((path, depth + 1));
                }
            } else if kind.is_file()
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
                && name.ends_with(".log")
            {
                let better = found.get(name).is_none_or(|(d, _)| depth < *d);
                if better {
                    found.insert(name.to_owned(), (depth, path.clone()));
                }
            }
        }
    }
    found.into_iter().map(|(k, (_, p))| (k, p)).collect()
}

/// Log names in kojid's result order.
pub fn ordered_names(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by_key(|name| {
        (
            KNOWN_ORDER
                .iter()
                .position(|known| known == name)
                .unwrap_or(KNOWN_ORDER.len()),
            name.clone(),
        )
    });
    names
}

pub struct LiveLogs {
    files: Arc<dyn TaskFiles>,
    task_id: i64,
    dir: PathBuf,
    stop: CancellationToken,
    ticker: Option<JoinHandle<()>>,
}

impl LiveLogs {
    /// Starts syncing the logs of `dir` every `period`.
    pub fn start(files: Arc<dyn TaskFiles>, task_id: i64, dir: PathBuf, period: Duration) -> Self {
        let stop = CancellationToken::new();
        let ticker = {
            let files = Arc::clone(&files);
            let dir = dir.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(period) => {}
                    }
                    sync_all(files.as_ref(), task_id, &dir, Some(&stop)).await;
                }
            })
        };
        Self {
            files,
            task_id,
            dir,
            stop,
            ticker: Some(ticker),
        }
    }

    /// Stops the ticker, syncs every log a last time and returns their work-relative paths in
    /// kojid's order.
    pub async fn finish(mut self) -> Vec<String> {
        self.stop.cancel();
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.await;
        }
        let names = sync_all(self.files.as_ref(), self.task_id, &self.dir, None).await;
        self.files.forget_task(self.task_id).await;
        let prefix = super::services::task_upload_dir(self.task_id);
        ordered_names(names)
            .into_iter()
            .map(|name| format!("{prefix}/{name}"))
            .collect()
    }
}

impl Drop for LiveLogs {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One sync of every log; a failed upload is logged and retried on the next tick (a live log
/// must never fail the build). A ticker's sync stops between logs once `stop` is cancelled:
/// an aborted task logs its subsession out next, and later uploads on it would only fail.
async fn sync_all(
    files: &dyn TaskFiles,
    task_id: i64,
    dir: &Path,
    stop: Option<&CancellationToken>,
) -> Vec<String> {
    let mut names = Vec::new();
    for (name, path) in scan_logs(dir) {
        if stop.is_some_and(CancellationToken::is_cancelled) {
            break;
        }
        if let Err(error) = files.sync_log(task_id, &path, &name).await {
            tracing::warn!(task_id, log = %name, %error, "live log upload failed; retrying on the next tick");
        }
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_logs_but_not_downloads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mock_config.log"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("result")).unwrap();
        std::fs::write(dir.path().join("result/build.log"), "x").unwrap();
        std::fs::write(dir.path().join("result/mock_config.log"), "y").unwrap();
        std::fs::write(dir.path().join("result/hello.rpm"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("local/tasks")).unwrap();
        std::fs::write(dir.path().join("local/tasks/evil.log"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("result/BUILD/pkg")).unwrap();
        std::fs::write(dir.path().join("result/BUILD/pkg/config.log"), "x").unwrap();
        let logs = scan_logs(dir.path());
        assert_eq!(
            logs.keys().cloned().collect::<Vec<_>>(),
            ["build.log", "mock_config.log"]
        );
        assert_eq!(logs["mock_config.log"], dir.path().join("mock_config.log"));
    }

    #[test]
    fn result_order_follows_kojid() {
        let names = ordered_names(
            [
                "root.log",
                "zz.log",
                "build.log",
                "mock_output.log",
                "state.log",
            ]
            .map(String::from),
        );
        assert_eq!(
            names,
            [
                "build.log",
                "state.log",
                "root.log",
                "mock_output.log",
                "zz.log"
            ]
        );
    }
}
