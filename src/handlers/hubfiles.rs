//! [`TaskFiles`] over the hub client: downloads from topurl, whole-file uploads (rawUpload +
//! checkUpload) and the incremental log uploader, all into the task's upload dir, on the
//! task's own subsession as kojid's task process sends them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use koji_adjutant_actors::handler::TaskContext;
use koji_adjutant_actors::hub::TaskHub;
use tokio::sync::Mutex;

use super::services::{FileError, TaskFiles, TaskFilesProvider};
use crate::hub::client::HubClient;
use crate::hub::download::DownloadError;
use crate::hub::upload::{IncrementalUpload, UploadTarget};

/// Finds the hub client of a task's subsession behind its `TaskHub` (the worker passes
/// `crate::worker::hub_adapter::subsession_client`); `None` when the hub is not the worker's
/// adapter. A function rather than a type so that the handlers do not depend on the worker.
pub type SessionLookup = fn(&dyn TaskHub) -> Option<HubClient>;

/// The worker's provider: a fresh [`HubFiles`] per task over that task's subsession client,
/// so that its uploads carry the subsession's id and callnums and its live log offsets are
/// dropped with it.
pub struct SubsessionFiles {
    session_of: SessionLookup,
}

impl SubsessionFiles {
    pub fn new(session_of: SessionLookup) -> Self {
        Self { session_of }
    }
}

impl TaskFilesProvider for SubsessionFiles {
    fn for_task(&self, ctx: &TaskContext) -> Arc<dyn TaskFiles> {
        match (self.session_of)(ctx.hub.as_ref()) {
            Some(client) => Arc::new(HubFiles::new(client)),
            None => {
                tracing::error!(
                    task_id = ctx.task_id,
                    "the task's hub session offers no client; its transfers will fail"
                );
                Arc::new(NoTaskSession)
            }
        }
    }
}

/// What a task gets when its session cannot be found: every transfer fails with
/// [`FileError::NoTaskSession`] rather than going over another session the hub would
/// attribute differently.
struct NoTaskSession;

#[async_trait::async_trait]
impl TaskFiles for NoTaskSession {
    async fn download(&self, relpath: &str, _destination: &Path) -> Result<u64, FileError> {
        Err(FileError::Download {
            relpath: relpath.to_owned(),
            detail: "the task has no hub session of its own; this is a bug in koji-adjutant"
                .to_owned(),
        })
    }

    async fn upload(&self, task_id: i64, _local: &Path, _name: &str) -> Result<(), FileError> {
        Err(FileError::NoTaskSession { task_id })
    }

    async fn sync_log(&self, task_id: i64, _local: &Path, _name: &str) -> Result<(), FileError> {
        Err(FileError::NoTaskSession { task_id })
    }
}

/// Transfers over one hub client. The client serialises calls on its session, so the live
/// log ticker and the handler share it; the worker makes one per task (see
/// [`SubsessionFiles`]), and the offsets of its live logs live here, per task and log name.
pub struct HubFiles {
    client: HubClient,
    logs: Mutex<HashMap<(i64, String), IncrementalUpload>>,
}

impl HubFiles {
    pub fn new(client: HubClient) -> Self {
        Self {
            client,
            logs: Mutex::new(HashMap::new()),
        }
    }
}

fn target(task_id: i64, name: &str) -> Result<UploadTarget, FileError> {
    UploadTarget::for_task(task_id, &[], name).map_err(|error| FileError::BadPath {
        relpath: name.to_owned(),
        reason: error.to_string(),
    })
}

#[async_trait::async_trait]
impl TaskFiles for HubFiles {
    async fn download(&self, relpath: &str, destination: &Path) -> Result<u64, FileError> {
        self.client
            .connection()
            .download(relpath, destination)
            .await
            .map_err(|error| match error {
                DownloadError::Status { status: 404, .. } => FileError::NotFound {
                    relpath: relpath.to_owned(),
                },
                other => FileError::Download {
                    relpath: relpath.to_owned(),
                    detail: crate::hub::transport::error_chain(&other),
                },
            })
    }

    async fn upload(&self, task_id: i64, local: &Path, name: &str) -> Result<(), FileError> {
        let target = target(task_id, name)?;
        self.client
            .upload_file(local, &target)
            .await
            .map(drop)
            .map_err(|error| FileError::Upload {
                name: target.relative_path(),
                detail: crate::hub::transport::error_chain(&error),
            })
    }

    async fn sync_log(&self, task_id: i64, local: &Path, name: &str) -> Result<(), FileError> {
        let mut logs = self.logs.lock().await;
        let key = (task_id, name.to_owned());
        if !logs.contains_key(&key) {
            logs.insert(
                key.clone(),
                IncrementalUpload::new(local, target(task_id, name)?),
            );
        }
        let Some(upload) = logs.get_mut(&key) else {
            return Ok(());
        };
        upload
            .sync(&self.client)
            .await
            .map(drop)
            .map_err(|error| FileError::Upload {
                name: name.to_owned(),
                detail: crate::hub::transport::error_chain(&error),
            })
    }

    async fn forget_task(&self, task_id: i64) {
        self.logs.lock().await.retain(|(id, _), _| *id != task_id);
    }
}
