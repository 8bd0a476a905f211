//! Uploading a task's files to the hub.
//!
//! The actors' `TaskHub` has no upload call, so the repo handlers take a [`TaskFilesProvider`]:
//! the worker's [`SubsessionFiles`] hands over the task's own subsession [`HubClient`] (fast
//! `rawUpload`, as kojid does by default) through [`ClientFiles`], and [`HubCallFiles`] works
//! over any `TaskHub` with the legacy base64 `uploadFile` call (`use_fast_upload = False`),
//! for workers that cannot. Either way the uploads are on the task's own session.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use koji_adjutant_actors::handler::TaskContext;
use koji_adjutant_actors::hub::TaskHub;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::RepoError;
use crate::hub::client::HubClient;
use crate::hub::upload::{IncrementalUpload, UploadTarget};

/// kojid's upload block size.
const BLOCK: usize = 1024 * 1024;

/// Uploads for one task.
#[async_trait::async_trait]
pub trait TaskFiles: Send + Sync {
    /// A whole file, verified (kojid's `uploadWrapper`).
    async fn upload(&self, local: &Path, target: &UploadTarget) -> Result<(), RepoError>;
    /// What a growing log gained since the last call (kojid's incremental log upload).
    async fn sync_log(&self, log: &mut IncrementalUpload) -> Result<(), RepoError>;
    /// The last sync once the log is complete.
    async fn finish_log(&self, log: &mut IncrementalUpload, local: &Path) -> Result<(), RepoError> {
        let _ = local;
        self.sync_log(log).await
    }
}

/// Gives each repo task its uploader.
pub trait TaskFilesProvider: Send + Sync {
    fn for_task(&self, ctx: &TaskContext) -> Arc<dyn TaskFiles>;
}

/// Fast uploads through the hub client (rawUpload + checkUpload).
pub struct ClientFiles {
    pub client: HubClient,
}

#[async_trait::async_trait]
impl TaskFiles for ClientFiles {
    async fn upload(&self, local: &Path, target: &UploadTarget) -> Result<(), RepoError> {
        self.client.upload_file(local, target).await?;
        Ok(())
    }

    async fn sync_log(&self, log: &mut IncrementalUpload) -> Result<(), RepoError> {
        log.sync(&self.client).await?;
        Ok(())
    }
}

/// Legacy `uploadFile` through the task's `TaskHub::call`.
pub struct HubCallFiles {
    pub hub: Arc<dyn TaskHub>,
}

/// Uses [`HubCallFiles`] with the task's own subsession.
pub struct HubCallFilesProvider;

impl TaskFilesProvider for HubCallFilesProvider {
    fn for_task(&self, ctx: &TaskContext) -> Arc<dyn TaskFiles> {
        Arc::new(HubCallFiles {
            hub: Arc::clone(&ctx.hub),
        })
    }
}

/// The worker's provider: [`ClientFiles`] over the task's own subsession client, found with
/// `session_of`; [`HubCallFiles`] over the task's `TaskHub` when it offers no client (still
/// the task's session, only slower and with logs sent whole at the end).
pub struct SubsessionFiles {
    session_of: crate::handlers::hubfiles::SessionLookup,
}

impl SubsessionFiles {
    pub fn new(session_of: crate::handlers::hubfiles::SessionLookup) -> Self {
        Self { session_of }
    }
}

impl TaskFilesProvider for SubsessionFiles {
    fn for_task(&self, ctx: &TaskContext) -> Arc<dyn TaskFiles> {
        match (self.session_of)(ctx.hub.as_ref()) {
            Some(client) => Arc::new(ClientFiles { client }),
            None => {
                tracing::warn!(
                    task_id = ctx.task_id,
                    "the task's hub session offers no client; uploading with the legacy uploadFile call"
                );
                HubCallFilesProvider.for_task(ctx)
            }
        }
    }
}

/// Always the same client (tests, and workers that keep one client per task).
pub struct FixedFiles(pub Arc<dyn TaskFiles>);

impl TaskFilesProvider for FixedFiles {
    fn for_task(&self, _ctx: &TaskContext) -> Arc<dyn TaskFiles> {
        Arc::clone(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl HubCallFiles {
    async fn chunk(
        &self,
        target: &UploadTarget,
        size: u64,
        digest: &str,
        offset: i64,
        data: &[u8],
    ) -> Result<(), RepoError> {
        let reply = self
            .hub
            .call(
                "uploadFile",
                vec![
                    json!(target.dir()),
                    json!(target.name()),
                    json!(size),
                    json!(["sha256", digest]),
                    json!(offset),
                    json!(base64::engine::general_purpose::STANDARD.encode(data)),
                ],
                Map::new(),
            )
            .await?;
        if reply != Value::Bool(true) {
            return Err(RepoError::BadReply {
                call: "uploadFile".to_owned(),
                detail: format!(
                    "the hub did not accept {} at offset {offset}: {reply}",
                    target.relative_path()
                ),
            });
        }
        Ok(())
    }

    /// Sends `local` in blocks, then the offset −1 finalisation that makes the hub check the
    /// whole file's size and digest.
    async fn send(&self, local: &Path, target: &UploadTarget) -> Result<u64, RepoError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(RepoError::io("cannot open", local))?;
        let mut whole = Sha256::new();
        let mut offset = 0u64;
        let mut buffer = vec![0u8; BLOCK];
        loop {
            let mut filled = 0;
            while filled < BLOCK {
                let read = file
                    .read(&mut buffer[filled..])
                    .await
                    .map_err(RepoError::io("cannot read", local))?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            if filled == 0 {
                break;
            }
            let chunk = &buffer[..filled];
            whole.update(chunk);
            let digest = hex(&Sha256::digest(chunk));
            let at = i64::try_from(offset).unwrap_or(i64::MAX);
            self.chunk(target, chunk.len() as u64, &digest, at, chunk)
                .await?;
            offset += filled as u64;
        }
        let digest = hex(&whole.finalize());
        self.chunk(target, offset, &digest, -1, &[]).await?;
        Ok(offset)
    }
}

#[async_trait::async_trait]
impl TaskFiles for HubCallFiles {
    async fn upload(&self, local: &Path, target: &UploadTarget) -> Result<(), RepoError> {
        self.send(local, target).await.map(|_| ())
    }

    async fn sync_log(&self, _log: &mut IncrementalUpload) -> Result<(), RepoError> {
        // The legacy call cannot overwrite at an offset, so logs are not live in this mode:
        // each is sent whole once it is complete.
        Ok(())
    }

    async fn finish_log(&self, log: &mut IncrementalUpload, local: &Path) -> Result<(), RepoError> {
        if tokio::fs::metadata(local).await.is_err() {
            return Ok(());
        }
        self.send(local, log.target()).await.map(|_| ())
    }
}
