//! Streaming a package to `downloads/<sha256>.part` and resuming it with `Range` after any
//! interruption. Nothing is held in memory but one chunk: the digest is computed as bytes are
//! written, and on resume the bytes already on disk are hashed again rather than trusted, so a
//! cancelled download (window closed, process killed, link cut) is always safe to pick up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use onshi_core::release::Sha256;
use reqwest::StatusCode;
use sha2::{Digest, Sha256 as Hasher};
use tokio::sync::Notify;

use onshi_api::ErrorCode;
use onshi_api::device::ArtifactInfo as Artifact;

use crate::client::{Client, ClientError};
use crate::files::sync_dir;
use crate::layout::StateDir;

/// Why a download stopped without a verified package.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the connection ended after {got} of {expected} bytes")]
    Short { got: u64, expected: u64 },
}

/// How a download ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Complete and its SHA-256 matches: `downloads/<sha256>` is ready to install.
    Verified,
    /// Complete but the digest differs; the file was deleted.
    Mismatch { got: Sha256 },
    /// More bytes came than the package's signed length (TUF's endless data, or a package
    /// changed on the path); the file was deleted.
    Overlong,
}

/// Shared progress of one download, for heartbeats, progress bars and the start report.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    bytes: Arc<AtomicU64>,
    /// Bytes that were already on disk when this attempt started.
    resumed_from: Arc<AtomicU64>,
    /// The server accepted the request (inside a window, with a download slot).
    accepted: Arc<AtomicBool>,
    accepted_signal: Arc<Notify>,
}

impl Progress {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn resumed_from(&self) -> u64 {
        self.resumed_from.load(Ordering::Relaxed)
    }

    /// Whether the server has accepted this attempt's request.
    pub fn is_accepted(&self) -> bool {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Completes once the server has accepted this attempt's request (never, if it refused).
    pub async fn accepted(&self) {
        loop {
            // Registered before the check, so an acceptance in between is not missed.
            let signal = self.accepted_signal.notified();
            if self.is_accepted() {
                return;
            }
            signal.await;
        }
    }

    fn accept(&self) {
        self.accepted.store(true, Ordering::SeqCst);
        self.accepted_signal.notify_waiters();
    }
}

/// The length of the partial file already on disk (what a resume starts from).
pub fn partial_len(dir: &StateDir, sha: Sha256) -> u64 {
    fs::metadata(dir.part(sha)).map_or(0, |m| m.len())
}

/// Downloads `artifact` into `dir`, resuming a partial file. `max_rate` limits bytes per
/// second. Dropping the future leaves a partial file that the next call resumes.
pub async fn fetch(
    client: &Client,
    token: &str,
    dir: &StateDir,
    artifact: &Artifact,
    progress: &Progress,
    max_rate: Option<u64>,
) -> Result<Fetched, DownloadError> {
    let sha = artifact.sha256;
    let complete = dir.complete(sha);
    if complete.is_file() {
        return Ok(Fetched::Verified);
    }
    let downloads = dir.downloads();
    fs::create_dir_all(&downloads).map_err(io_at(&downloads))?;
    let part = dir.part(sha);
    let mut offset = partial_len(dir, sha);
    if offset > artifact.size {
        tracing::warn!(path = %part.display(), offset, size = artifact.size, "partial file longer than the package; starting over");
        truncate(&part)?;
        offset = 0;
    }
    let (mut hasher, hashed) = hash_prefix(&part, offset).await?;
    offset = hashed;
    progress.resumed_from.store(offset, Ordering::Relaxed);
    progress.bytes.store(offset, Ordering::Relaxed);
    if offset < artifact.size {
        if offset > 0 {
            tracing::info!(sha = %sha, offset, size = artifact.size, "resuming download");
        }
        let mut resp = client
            .download(token, &artifact.url, offset, sha)
            .await
            .inspect_err(|e| {
                if e.code() == Some(ErrorCode::RangeNotSatisfiable) {
                    tracing::warn!(sha = %sha, offset, "server refused the resume range");
                }
            })?;
        progress.accept();
        if offset > 0 && resp.status() == StatusCode::OK {
            // The server sent the whole file (its If-Range did not match): start over.
            tracing::warn!(sha = %sha, "server ignored the resume range; downloading from the start");
            truncate(&part)?;
            hasher = Hasher::new();
            offset = 0;
            progress.resumed_from.store(0, Ordering::Relaxed);
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(io_at(&part))?;
        let started = Instant::now();
        let mut this_attempt = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: artifact.url.clone(),
                source,
            })?
        {
            if offset + chunk.len() as u64 > artifact.size {
                drop(file);
                tracing::warn!(
                    expected = artifact.size,
                    "the server sent more than the package's signed length; deleting it"
                );
                fs::remove_file(&part).map_err(io_at(&part))?;
                return Ok(Fetched::Overlong);
            }
            file.write_all(&chunk).map_err(io_at(&part))?;
            hasher.update(&chunk);
            offset += chunk.len() as u64;
            this_attempt += chunk.len() as u64;
            progress.bytes.store(offset, Ordering::Relaxed);
            if let Some(rate) = max_rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(this_attempt as f64 / rate as f64);
                let spent = started.elapsed();
                if due > spent {
                    tokio::time::sleep(due - spent).await;
                }
            }
        }
        file.sync_all().map_err(io_at(&part))?;
        if offset < artifact.size {
            return Err(DownloadError::Short {
                got: offset,
                expected: artifact.size,
            });
        }
    }
    let got = Sha256::from_bytes(hasher.finalize().into());
    if got != sha {
        tracing::warn!(expected = %sha, got = %got, "downloaded package does not match its SHA-256; deleting it");
        fs::remove_file(&part).map_err(io_at(&part))?;
        return Ok(Fetched::Mismatch { got });
    }
    fs::rename(&part, &complete).map_err(io_at(&complete))?;
    sync_dir(&downloads).map_err(io_at(&downloads))?;
    Ok(Fetched::Verified)
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn truncate(path: &Path) -> Result<(), DownloadError> {
    match File::create(path) {
        Ok(_) => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Hashes the first `len` bytes of `path` (fewer if the file is shorter), off the async
/// workers; answers the hasher and how many bytes it took.
async fn hash_prefix(path: &Path, len: u64) -> Result<(Hasher, u64), DownloadError> {
    let owned = path.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || -> io::Result<(Hasher, u64)> {
        let mut hasher = Hasher::new();
        if len == 0 {
            return Ok((hasher, 0));
        }
        let mut file = File::open(&owned)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        while done < len {
            let want = ((len - done) as usize).min(buf.len());
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            done += n as u64;
        }
        Ok((hasher, done))
    })
    .await
    .map_err(|e| io_at(path)(io::Error::other(e)))?;
    let (hasher, done) = hashed.map_err(io_at(path))?;
    if done < len {
        // The file shrank under us; keep exactly what was hashed.
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(done))
            .map_err(io_at(path))?;
    }
    Ok((hasher, done))
}
