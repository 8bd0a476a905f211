//! Uploads to the hub (§3): whole files through `rawUpload` (§3.2) or the legacy base64
//! `uploadFile` (§3.3), and live logs through [`IncrementalUpload`] (§3.5).
//!
//! Every remote location is an [`UploadTarget`] made by [`UploadTarget::for_task`], the one
//! place that checks names, so a hostile file name from a task can never point outside the
//! task's own upload directory.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use dxr::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::client::HubClient;
use super::fault::FaultKind;
use super::session::HubError;
use super::types::{RawUploadReply, UploadCheck};
use super::xmlrpc;

/// rawUpload block size; kojid does not let it be configured.
pub const UPLOAD_BLOCK_SIZE: usize = 1024 * 1024;
/// Chunk size of the live log uploader.
pub const LOG_CHUNK_SIZE: usize = 64 * 1024;
/// Attempts per log chunk whose digest does not match (koji: `retries=5`, off by one).
pub const LOG_CHUNK_ATTEMPTS: u32 = 7;
/// Wait between two attempts of one log chunk.
pub const LOG_CHUNK_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Attempts per legacy `uploadFile` chunk the hub rejects.
const LEGACY_CHUNK_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("refusing upload name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("refusing task id {0}: upload directories exist only for positive task ids")]
    BadTaskId(i64),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(
        "hub stored {got} for the chunk of {expected} at offset {offset} of {target}; the upload is corrupt"
    )]
    ChunkMismatch {
        target: String,
        offset: u64,
        expected: String,
        got: String,
    },
    #[error("upload of {target} failed its final check: {detail}")]
    CheckFailed { target: String, detail: String },
    #[error(
        "hub rejected the chunk at offset {offset} of {target} {attempts} times (legacy uploadFile)"
    )]
    LegacyChunkRejected {
        target: String,
        offset: u64,
        attempts: u32,
    },
    #[error("unexpected rawUpload reply for {target}: {detail}")]
    BadReply { target: String, detail: String },
}

/// Where a file goes on the hub: `filepath` (relative to the work dir) and `filename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    dir: String,
    name: String,
}

/// Refuses what kojihub's `get_upload_path` refuses, and what could escape the directory.
fn check_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("it is empty");
    }
    if component.contains('/') {
        return Err("it contains '/'");
    }
    if component.starts_with('.') {
        return Err("it starts with '.' (hidden files, '.' and '..' are not allowed)");
    }
    if component.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if component.chars().any(char::is_control) {
        return Err("it contains control characters");
    }
    if component.len() > 255 {
        return Err("it is longer than 255 bytes");
    }
    Ok(())
}

impl UploadTarget {
    /// `tasks/<id % 10000>/<id>[/<subdir>…]` and a file name, every part checked.
    pub fn for_task(task_id: i64, subdir: &[&str], name: &str) -> Result<Self, UploadError> {
        if task_id <= 0 {
            return Err(UploadError::BadTaskId(task_id));
        }
        check_component(name).map_err(|reason| UploadError::BadName {
            name: name.to_owned(),
            reason,
        })?;
        let mut dir = format!("tasks/{}/{}", task_id % 10000, task_id);
        for part in subdir {
            check_component(part).map_err(|reason| UploadError::BadName {
                name: (*part).to_owned(),
                reason,
            })?;
            dir.push('/');
            dir.push_str(part);
        }
        Ok(Self {
            dir,
            name: name.to_owned(),
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The work-relative path reported in task results (`tasks/…/<name>`).
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }
}

fn adler32_hex(data: &[u8]) -> String {
    format!("{:08x}", adler2::adler32_slice(data))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UploadError + '_ {
    move |source| UploadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Read up to `limit` bytes (less only at EOF).
async fn read_up_to(file: &mut tokio::fs::File, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(limit);
    while buffer.len() < limit {
        let read = (&mut *file)
            .take((limit - buffer.len()) as u64)
            .read_to_end(&mut buffer)
            .await?;
        if read == 0 {
            break;
        }
    }
    Ok(buffer)
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    pub bytes: u64,
    pub chunks: u32,
    /// Some chunk needed a retry, so the whole file was verified by the hub.
    pub verified: bool,
}

impl HubClient {
    /// One rawUpload chunk; returns the reply and whether it had to be retried.
    async fn raw_upload_chunk(
        &self,
        target: &UploadTarget,
        offset: u64,
        chunk: &[u8],
        overwrite: bool,
    ) -> Result<(RawUploadReply, bool), UploadError> {
        let mut query = vec![
            ("filename", target.name.clone()),
            ("filepath", target.dir.clone()),
            ("fileverify", "adler32".to_owned()),
            ("offset", offset.to_string()),
        ];
        if overwrite {
            query.push(("overwrite", "1".to_owned()));
        }
        let (value, sends) = self
            .session()
            .raw_upload(&query, Bytes::copy_from_slice(chunk))
            .await?;
        let reply: RawUploadReply =
            xmlrpc::from_value(&value).map_err(|error| UploadError::BadReply {
                target: target.relative_path(),
                detail: error.to_string(),
            })?;
        metrics::counter!("adjutant_upload_bytes_total").increment(chunk.len() as u64);
        if sends > 1 {
            metrics::counter!("adjutant_upload_retries_total").increment(1);
        }
        Ok((reply, sends > 1))
    }

    /// Upload a whole file like kojid's `uploadWrapper`: rawUpload in 1 MiB blocks (always
    /// at least one, even for an empty file), each checked by size and adler32, then
    /// `checkUpload`, verifying the whole file when any block was retried. With
    /// `use_fast_upload = false` it first asks whether the hub knows `checkUpload` and uses
    /// the legacy base64 `uploadFile` only when it does not.
    pub async fn upload_file(
        &self,
        local: &Path,
        target: &UploadTarget,
    ) -> Result<UploadSummary, UploadError> {
        if !self.connection().options().use_fast_upload {
            match self
                .check_upload(target.dir(), target.name(), None, None)
                .await
            {
                Ok(_) => {}
                // koji catches GenericError only ("Invalid method: checkUpload" on hubs
                // before 1.7.1); anything else is a real problem.
                Err(HubError::Fault(fault)) if fault.kind == FaultKind::GenericError => {
                    tracing::info!(%fault, "hub has no checkUpload, using the legacy uploadFile");
                    return self.upload_file_legacy(local, target).await;
                }
                Err(other) => return Err(other.into()),
            }
        }
        self.fast_upload(local, target, true).await
    }

    /// kojid's `fastUpload` (§3.2).
    pub async fn fast_upload(
        &self,
        local: &Path,
        target: &UploadTarget,
        overwrite: bool,
    ) -> Result<UploadSummary, UploadError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(io_error(local))?;
        let size_before = file.metadata().await.map_err(io_error(local))?.len();
        let mut whole = adler2::Adler32::new();
        let mut offset: u64 = 0;
        let mut chunks = 0u32;
        let mut retried = false;
        loop {
            let chunk = read_up_to(&mut file, UPLOAD_BLOCK_SIZE)
                .await
                .map_err(io_error(local))?;
            if chunk.is_empty() && chunks > 0 {
                break;
            }
            let (reply, was_retried) = self
                .raw_upload_chunk(target, offset, &chunk, overwrite)
                .await?;
            retried |= was_retried;
            chunks += 1;
            let expected = adler32_hex(&chunk);
            if reply.size != chunk.len() as i64 {
                return Err(UploadError::ChunkMismatch {
                    target: target.relative_path(),
                    offset,
                    expected: format!("{} bytes", chunk.len()),
                    got: format!("{} bytes", reply.size),
                });
            }
            if reply.hexdigest.as_deref() != Some(expected.as_str()) {
                return Err(UploadError::ChunkMismatch {
                    target: target.relative_path(),
                    offset,
                    expected: format!("adler32 {expected}"),
                    got: format!("adler32 {}", reply.hexdigest.unwrap_or_default()),
                });
            }
            whole.write_slice(&chunk);
            offset += chunk.len() as u64;
            if chunk.len() < UPLOAD_BLOCK_SIZE {
                break;
            }
        }
        if offset != size_before {
            tracing::error!(file = %local.display(), before = size_before, sent = offset, "local file changed size while it was uploaded");
        }
        let verify = retried.then_some("adler32");
        let check = self
            .check_upload(target.dir(), target.name(), verify, None)
            .await?;
        let check = check.ok_or_else(|| UploadError::CheckFailed {
            target: target.relative_path(),
            detail: "the hub has no such file (checkUpload returned nil)".to_owned(),
        })?;
        verify_check(
            target,
            &check,
            offset,
            retried.then(|| format!("{:08x}", whole.checksum())),
        )?;
        Ok(UploadSummary {
            bytes: offset,
            chunks,
            verified: retried,
        })
    }

    /// One legacy `uploadFile` call; `false` from the hub means "size or checksum mismatch,
    /// send it again".
    async fn upload_file_call(
        &self,
        target: &UploadTarget,
        size: u64,
        sha256: &str,
        offset: i64,
        data: &[u8],
    ) -> Result<bool, UploadError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let value = self
            .call(
                "uploadFile",
                vec![
                    Value::String(target.dir.clone()),
                    Value::String(target.name.clone()),
                    i32::try_from(size).map_or(Value::Long(size), Value::Integer),
                    Value::Array(vec![
                        Value::String("sha256".to_owned()),
                        Value::String(sha256.to_owned()),
                    ]),
                    i32::try_from(offset).map_or(Value::Long(offset), Value::Integer),
                    Value::String(encoded),
                ],
                vec![],
            )
            .await?;
        metrics::counter!("adjutant_upload_bytes_total").increment(data.len() as u64);
        Ok(matches!(value, Value::Boolean(true)))
    }

    /// The legacy upload (§3.3): base64 chunks with their sha256, each re-sent up to 5 times
    /// when the hub says it did not match, then a final call at offset -1 with the size and
    /// the whole file's sha256.
    pub async fn upload_file_legacy(
        &self,
        local: &Path,
        target: &UploadTarget,
    ) -> Result<UploadSummary, UploadError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(io_error(local))?;
        let mut whole = Sha256::new();
        let mut offset: u64 = 0;
        let mut chunks = 0u32;
        loop {
            let chunk = read_up_to(&mut file, UPLOAD_BLOCK_SIZE)
                .await
                .map_err(io_error(local))?;
            if chunk.is_empty() {
                break;
            }
            let digest = hex(&Sha256::digest(&chunk));
            self.legacy_chunk_with_retries(
                target,
                chunk.len() as u64,
                &digest,
                offset as i64,
                &chunk,
            )
            .await?;
            whole.update(&chunk);
            offset += chunk.len() as u64;
            chunks += 1;
        }
        let digest = hex(&whole.finalize());
        self.legacy_chunk_with_retries(target, offset, &digest, -1, &[])
            .await?;
        Ok(UploadSummary {
            bytes: offset,
            chunks,
            verified: true,
        })
    }

    async fn legacy_chunk_with_retries(
        &self,
        target: &UploadTarget,
        size: u64,
        digest: &str,
        offset: i64,
        data: &[u8],
    ) -> Result<(), UploadError> {
        for attempt in 1..=LEGACY_CHUNK_ATTEMPTS {
            if self
                .upload_file_call(target, size, digest, offset, data)
                .await?
            {
                return Ok(());
            }
            tracing::warn!(target = %target.relative_path(), offset, attempt, "hub rejected an uploadFile chunk, sending it again");
        }
        Err(UploadError::LegacyChunkRejected {
            target: target.relative_path(),
            offset: offset.max(0) as u64,
            attempts: LEGACY_CHUNK_ATTEMPTS,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn verify_check(
    target: &UploadTarget,
    check: &UploadCheck,
    sent: u64,
    whole_adler: Option<String>,
) -> Result<(), UploadError> {
    if check.size != sent as i64 {
        return Err(UploadError::CheckFailed {
            target: target.relative_path(),
            detail: format!("the hub has {} bytes, {} were sent", check.size, sent),
        });
    }
    if let Some(expected) = whole_adler
        && check.hexdigest.as_deref() != Some(expected.as_str())
    {
        return Err(UploadError::CheckFailed {
            target: target.relative_path(),
            detail: format!(
                "whole-file adler32 is {} on the hub, {expected} here",
                check.hexdigest.as_deref().unwrap_or("missing")
            ),
        });
    }
    Ok(())
}

/// Identity of a local file, to notice it was replaced (new inode) between two syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

/// A growing local file mirrored to the hub (§3.5). The TaskActor calls [`Self::sync`] every
/// second; each call sends only the bytes written since the previous one, in 64 KiB
/// `overwrite` chunks at their offsets. When the file shrank or was replaced, it starts again
/// from offset 0, and overwrite truncates the hub's copy there.
#[derive(Debug)]
pub struct IncrementalUpload {
    local: PathBuf,
    target: UploadTarget,
    position: u64,
    identity: Option<FileIdentity>,
}

impl IncrementalUpload {
    pub fn new(local: impl Into<PathBuf>, target: UploadTarget) -> Self {
        Self {
            local: local.into(),
            target,
            position: 0,
            identity: None,
        }
    }

    pub fn target(&self) -> &UploadTarget {
        &self.target
    }

    /// Bytes of the local file already sent.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Send what is new. A missing file is not an error (the process may not have created it
    /// yet). Hub faults and transport errors that outlast the session's retries propagate,
    /// as in kojid; a chunk whose digest keeps mismatching is logged and skipped.
    pub async fn sync(&mut self, client: &HubClient) -> Result<u64, UploadError> {
        let metadata = match tokio::fs::metadata(&self.local).await {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(UploadError::Io {
                    path: self.local.clone(),
                    source,
                });
            }
        };
        let identity = FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
        };
        if self.identity.is_some_and(|known| known != identity) {
            tracing::info!(file = %self.local.display(), "log file was replaced, uploading it again from the start");
            self.position = 0;
        } else if metadata.len() < self.position {
            tracing::info!(file = %self.local.display(), size = metadata.len(), sent = self.position, "log file shrank, uploading it again from the start");
            self.position = 0;
        }
        self.identity = Some(identity);
        let end = metadata.len();
        if end == self.position {
            return Ok(0);
        }
        let mut file = tokio::fs::File::open(&self.local)
            .await
            .map_err(io_error(&self.local))?;
        file.seek(SeekFrom::Start(self.position))
            .await
            .map_err(io_error(&self.local))?;
        let mut sent = 0u64;
        let fast = client.connection().options().use_fast_upload;
        loop {
            let chunk = read_up_to(&mut file, LOG_CHUNK_SIZE)
                .await
                .map_err(io_error(&self.local))?;
            if chunk.is_empty() {
                break;
            }
            let offset = self.position;
            self.upload_log_chunk(client, fast, offset, &chunk).await?;
            self.position += chunk.len() as u64;
            sent += chunk.len() as u64;
        }
        // How far the hub's copy trailed the file: from its last write until it was sent.
        if let Ok(written) = metadata.modified() {
            let lag = written.elapsed().unwrap_or_default();
            metrics::histogram!("adjutant_log_upload_lag_seconds").record(lag.as_secs_f64());
        }
        Ok(sent)
    }

    async fn upload_log_chunk(
        &self,
        client: &HubClient,
        fast: bool,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(), UploadError> {
        let expected = adler32_hex(chunk);
        let digest = hex(&Sha256::digest(chunk));
        for attempt in 1..=LOG_CHUNK_ATTEMPTS {
            let accepted = if fast {
                let (reply, _) = client
                    .raw_upload_chunk(&self.target, offset, chunk, true)
                    .await?;
                reply.hexdigest.as_deref() == Some(expected.as_str())
                    && reply.size == chunk.len() as i64
            } else {
                client
                    .upload_file_call(
                        &self.target,
                        chunk.len() as u64,
                        &digest,
                        offset as i64,
                        chunk,
                    )
                    .await?
            };
            if accepted {
                return Ok(());
            }
            if attempt < LOG_CHUNK_ATTEMPTS {
                metrics::counter!("adjutant_upload_retries_total").increment(1);
                tracing::warn!(target = %self.target.relative_path(), offset, attempt, "log chunk did not arrive intact, sending it again");
                client
                    .connection()
                    .wait(
                        LOG_CHUNK_RETRY_WAIT,
                        &format!("retrying a log chunk of {}", self.target.relative_path()),
                    )
                    .await?;
            }
        }
        tracing::error!(target = %self.target.relative_path(), offset, "giving up on a log chunk; the hub's copy of this log may be inconsistent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_upload_dirs() {
        let target = UploadTarget::for_task(51234567, &[], "build.log").unwrap();
        assert_eq!(target.dir(), "tasks/4567/51234567");
        assert_eq!(target.relative_path(), "tasks/4567/51234567/build.log");
        let nested = UploadTarget::for_task(14, &["repodata"], "repomd.xml").unwrap();
        assert_eq!(nested.dir(), "tasks/14/14/repodata");
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            "a/b",
            "../etc",
            "..",
            ".",
            ".hidden",
            "x\0y",
            "/abs",
            "line\nbreak",
            &"n".repeat(256),
        ] {
            assert!(
                matches!(
                    UploadTarget::for_task(1, &[], name),
                    Err(UploadError::BadName { .. })
                ),
                "{name:?} must be refused"
            );
            assert!(
                matches!(
                    UploadTarget::for_task(1, &[name], "ok.log"),
                    Err(UploadError::BadName { .. })
                ),
                "{name:?} must be refused as a directory"
            );
        }
        assert!(matches!(
            UploadTarget::for_task(0, &[], "a"),
            Err(UploadError::BadTaskId(0))
        ));
        assert!(matches!(
            UploadTarget::for_task(-3, &[], "a"),
            Err(UploadError::BadTaskId(-3))
        ));
        assert!(UploadTarget::for_task(1, &[], "hello-1.0-1.src.rpm").is_ok());
        assert!(UploadTarget::for_task(1, &[], "name with spaces & ümlaut.log").is_ok());
    }

    #[test]
    fn adler32_is_zlibs() {
        assert_eq!(adler32_hex(b""), "00000001");
        assert_eq!(adler32_hex(b"Wikipedia"), "11e60398");
    }
}
