//! Downloads from `topurl` (§3.6): streamed to disk, retried on the statuses kojid retries,
//! length-checked against Content-Length, rpm files sanity-checked.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::session::HubConnection;
use super::transport::{TransportError, error_chain};

/// Statuses retried like kojid's urllib3 `Retry(status_forcelist=…)`.
const RETRY_STATUSES: [u16; 5] = [500, 502, 504, 408, 429];
/// kojid: `Retry(total=3, backoff_factor=0.3)`.
const DOWNLOAD_RETRIES: u32 = 3;
const BACKOFF_FACTOR: f64 = 0.3;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("refusing to download {relpath:?}: {reason}")]
    BadPath {
        relpath: String,
        reason: &'static str,
    },
    #[error(
        "no topurl is configured; set `topurl` in kojid.conf to the URL that serves the Koji file tree"
    )]
    NoTopurl,
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "{url} ended after {got} of {expected} bytes (Content-Length); the download is incomplete"
    )]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("{url} is not an rpm: {detail}")]
    NotAnRpm { url: String, detail: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("download of {url} stopped: the worker is shutting down")]
    Cancelled { url: String },
}

/// A work-relative path from a task, checked so that it stays below the directory it is
/// joined to: no absolute paths, no `..`, no NUL.
pub fn safe_relative_path(relpath: &str) -> Result<PathBuf, DownloadError> {
    let bad = |reason| DownloadError::BadPath {
        relpath: relpath.to_owned(),
        reason,
    };
    if relpath.is_empty() {
        return Err(bad("it is empty"));
    }
    if relpath.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let path = Path::new(relpath);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("it contains '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("it is absolute")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(bad("it names no file"));
    }
    Ok(clean)
}

/// The first of the whitespace-separated topurls, joined with `relpath` (kojid keeps double
/// slashes; so do we, the file server does not mind).
pub fn topurl_for(topurls: &str, relpath: &str) -> Result<String, DownloadError> {
    let base = topurls
        .split_whitespace()
        .next()
        .ok_or(DownloadError::NoTopurl)?;
    safe_relative_path(relpath)?;
    Ok(format!("{}/{}", base.trim_end_matches('/'), relpath))
}

/// rpm lead magic at 0 and the signature header's magic right after the 96-byte lead.
fn check_rpm_magic(head: &[u8]) -> Result<(), String> {
    if head.len() < 100 {
        return Err(format!(
            "only {} bytes, shorter than an rpm lead and header",
            head.len()
        ));
    }
    if head[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err("no rpm lead magic (ed ab ee db) at offset 0".to_owned());
    }
    if head[96..99] != [0x8e, 0xad, 0xe8] {
        return Err("no rpm header magic (8e ad e8) after the lead".to_owned());
    }
    Ok(())
}

impl HubConnection {
    /// `GET <topurl>/<relpath>` into `destination` (written to a temporary name next to it and
    /// renamed when complete). Returns the byte count.
    pub async fn download(&self, relpath: &str, destination: &Path) -> Result<u64, DownloadError> {
        let topurl = self
            .options()
            .topurl
            .as_deref()
            .ok_or(DownloadError::NoTopurl)?;
        let url = topurl_for(topurl, relpath)?;
        let mut retries = 0u32;
        loop {
            let outcome = self.download_once(&url, destination).await;
            let retryable = match &outcome {
                Err(DownloadError::Status { status, .. }) => RETRY_STATUSES.contains(status),
                Err(DownloadError::Transport(error)) => !error.is_certificate_error(),
                _ => false,
            };
            if !retryable || retries >= DOWNLOAD_RETRIES {
                return outcome;
            }
            retries += 1;
            // urllib3's backoff: none before the first retry, then factor × 2^(n-1).
            let backoff = if retries == 1 {
                0.0
            } else {
                BACKOFF_FACTOR * f64::from(1u32 << (retries - 1))
            };
            if let Err(error) = &outcome {
                tracing::warn!(%url, retry = retries, wait_secs = backoff, %error, "download failed, retrying");
            }
            self.wait(
                Duration::from_secs_f64(backoff),
                "waiting to retry a download",
            )
            .await
            .map_err(|_| DownloadError::Cancelled { url: url.clone() })?;
        }
    }

    async fn download_once(&self, url: &str, destination: &Path) -> Result<u64, DownloadError> {
        let response = self.transport().get(url, self.options().timeout).await?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(DownloadError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let expected: Option<u64> = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DownloadError::Io { path, source }
        };
        if let Some(parent) = destination.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
        }
        let partial = destination.with_extension(format!(
            "{}part",
            destination
                .extension()
                .map(|ext| format!("{}.", ext.to_string_lossy()))
                .unwrap_or_default()
        ));
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(io(&partial))?;
        let is_rpm = destination.to_string_lossy().ends_with(".rpm");
        let mut head: Vec<u8> = Vec::new();
        let mut written: u64 = 0;
        let mut body = response.into_body();
        let result = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| TransportError::Request {
                    url: url.to_owned(),
                    detail: error_chain(&error),
                })?;
                if let Ok(data) = frame.into_data() {
                    if is_rpm && head.len() < 100 {
                        let take = (100 - head.len()).min(data.len());
                        head.extend_from_slice(&data[..take]);
                    }
                    file.write_all(&data).await.map_err(io(&partial))?;
                    written += data.len() as u64;
                }
            }
            file.flush().await.map_err(io(&partial))?;
            if let Some(expected) = expected
                && written != expected
            {
                return Err(DownloadError::Truncated {
                    url: url.to_owned(),
                    got: written,
                    expected,
                });
            }
            if is_rpm {
                check_rpm_magic(&head).map_err(|detail| DownloadError::NotAnRpm {
                    url: url.to_owned(),
                    detail,
                })?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
        tokio::fs::rename(&partial, destination)
            .await
            .map_err(io(destination))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_below() {
        assert_eq!(
            safe_relative_path("repos/dist-build/1/x86_64").unwrap(),
            PathBuf::from("repos/dist-build/1/x86_64")
        );
        assert_eq!(
            safe_relative_path("work//tasks/./5").unwrap(),
            PathBuf::from("work/tasks/5")
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a\0b", ".", "./"] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_first_topurl_is_used() {
        let url = topurl_for("http://a/kojifiles http://b/kojifiles", "work/x.rpm").unwrap();
        assert_eq!(url, "http://a/kojifiles/work/x.rpm");
        assert!(matches!(
            topurl_for("  ", "x"),
            Err(DownloadError::NoTopurl)
        ));
    }

    #[test]
    fn rpm_magic() {
        let mut good = vec![0u8; 120];
        good[..4].copy_from_slice(&[0xed, 0xab, 0xee, 0xdb]);
        good[96..99].copy_from_slice(&[0x8e, 0xad, 0xe8]);
        assert!(check_rpm_magic(&good).is_ok());
        assert!(check_rpm_magic(b"<html>404</html>").is_err());
        good[97] = 0;
        assert!(check_rpm_magic(&good).is_err());
    }
}
