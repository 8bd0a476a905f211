//! [`TaskFiles`] over the hub client: downloads from topurl, whole-file uploads (rawUpload +
//! checkUpload) and the incremental log uploader, all into the task's upload dir.

use std::collections::HashMap;
use std::path::Path;

use tokio::sync::Mutex;

use super::services::{FileError, TaskFiles};
use crate::hub::client::HubClient;
use crate::hub::download::DownloadError;
use crate::hub::upload::{IncrementalUpload, UploadTarget};

/// The hub client serialises calls on its session, so one `HubFiles` serves every task.
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
