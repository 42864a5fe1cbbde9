//! Content-addressed package storage under `DATA/artifacts/`, and serving it with `Range`,
//! `If-Range` and `ETag`, streamed from disk (never buffered whole).

use onshi_api::ErrorCode;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_lite::StreamExt as _;
use onshi_core::release::Sha256;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;

/// Where an artifact lives: `DATA/artifacts/ab/abcdef…`. The name is a parsed [`Sha256`], so a
/// request can never name a path outside the directory.
pub fn path_of(data_dir: &Path, sha: Sha256) -> PathBuf {
    let hex = sha.hex();
    data_dir.join("artifacts").join(&hex[..2]).join(hex)
}

/// Streams an upload to disk while hashing it, then moves it to its content address. Returns
/// the digest and size.
pub async fn store_upload<S, B, E>(
    data_dir: &Path,
    body: S,
    max_size: u64,
) -> Result<(Sha256, u64), ApiError>
where
    S: futures_lite::Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let tmp_dir = data_dir.join("artifacts").join("tmp");
    tokio::fs::create_dir_all(&tmp_dir)
        .await
        .map_err(ApiError::internal)?;
    let tmp = tmp_dir.join(format!("upload-{}", crate::secrets::new_secret()));
    let result = write_hashed(&tmp, body, max_size).await;
    let (sha, size) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let dest = path_of(data_dir, sha);
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(ApiError::internal)?;
    }
    tokio::fs::rename(&tmp, &dest)
        .await
        .map_err(ApiError::internal)?;
    Ok((sha, size))
}

async fn write_hashed<S, B, E>(
    tmp: &Path,
    body: S,
    max_size: u64,
) -> Result<(Sha256, u64), ApiError>
where
    S: futures_lite::Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut stream = std::pin::pin!(body);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                ErrorCode::UploadInterrupted,
                format!("upload interrupted: {e}"),
            )
        })?;
        let chunk = chunk.as_ref();
        size += chunk.len() as u64;
        if size > max_size {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BodyTooLarge,
                format!("package larger than {max_size} bytes"),
            ));
        }
        hasher.update(chunk);
        file.write_all(chunk).await.map_err(ApiError::internal)?;
    }
    if size == 0 {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyPackage,
            "the package is empty",
        ));
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok((Sha256::from_bytes(hasher.finalize().into()), size))
}

/// A parsed `Range: bytes=a-b` request (one range; suffix ranges `bytes=-n` included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header: the whole file.
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that cannot be satisfied.
    Unsatisfiable,
}

/// Parses `Range` against a file of `size` bytes.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        // Multipart ranges are not worth their complexity for an agent's resume: serve whole.
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b.parse::<u64>().ok().map(|n| {
            if n == 0 {
                None
            } else {
                Some((size.saturating_sub(n), size.saturating_sub(1)))
            }
        }),
        (false, _) => a.parse::<u64>().ok().map(|start| {
            let end = if b.is_empty() {
                Some(size.saturating_sub(1))
            } else {
                b.parse::<u64>().ok().map(|e| e.min(size.saturating_sub(1)))
            };
            end.map(|end| (start, end))
        }),
        (true, true) => None,
    };
    match parsed {
        None => RangeRequest::Full,
        Some(None) => RangeRequest::Unsatisfiable,
        Some(Some((start, end))) if start > end || start >= size => RangeRequest::Unsatisfiable,
        Some(Some((start, end))) => RangeRequest::Part { start, end },
    }
}

/// Serves an artifact file with `ETag` = its hash, `Cache-Control: public, immutable` (content
/// addressed, so any HTTP cache in front of the replicas may keep it for a year), and one byte
/// range when asked (honouring `If-Range`).
pub async fn serve(path: &Path, sha: Sha256, headers: &HeaderMap) -> Result<Response, ApiError> {
    let opened = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(path)?;
            let size = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, size))
        })
        .await
        .map_err(ApiError::internal)?
    };
    let (mut file, size) = opened.map_err(|_| ApiError::not_found(format!("artifact {sha}")))?;
    let etag = format!("\"{}\"", sha.hex());
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .map(|v| v.as_bytes() == etag.as_bytes())
        .unwrap_or(true);
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, common_headers(&etag)).into_response());
    }
    let range = if if_range_ok {
        parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            size,
        )
    } else {
        RangeRequest::Full
    };
    let (status, start, len) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeRequest::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::RangeNotSatisfiable,
                format!("the artifact has {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    if start > 0 {
        // A seek on a regular file only sets the offset: no I/O to wait for.
        file.seek(SeekFrom::Start(start))
            .map_err(ApiError::internal)?;
    }
    let mut resp = Response::new(Body::from_stream(file_stream(file, len)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.extend(common_headers(&etag));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {}-{}/{}", start, start + len - 1, size);
        if let Ok(v) = HeaderValue::from_str(&cr) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// Checks an `--accel-redirect` prefix: an absolute path that starts and ends with `/`, is more
/// than `/` alone (that would be the proxied API itself), has no `..` and only ASCII letters,
/// digits and `-._~/`, so that it is a header value and an nginx location as written.
pub fn check_accel_prefix(prefix: &str) -> Result<(), String> {
    if !(prefix.len() > 1 && prefix.starts_with('/') && prefix.ends_with('/')) {
        return Err("must start and end with '/' (e.g. /_onshi/artifacts/)".into());
    }
    if prefix.contains("..") {
        return Err("must not contain '..'".into());
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/".contains(*c)))
    {
        return Err(format!(
            "must not contain {c:?} (ASCII letters, digits and -._~/ only)"
        ));
    }
    Ok(())
}

/// The `X-Accel-Redirect` target of an artifact: `PREFIX<ab>/<sha256 hex>`, the layout of
/// [`path_of`] under nginx's internal location. Made of the checked prefix and the parsed hash
/// only.
pub fn accel_target(prefix: &str, sha: Sha256) -> String {
    let hex = sha.hex();
    format!("{prefix}{}/{hex}", &hex[..2])
}

/// An authorised download handed to nginx: `200` with `X-Accel-Redirect`, the artifact's
/// `ETag`, `Cache-Control` and `Accept-Ranges`, and no body; nginx then serves the file from its
/// `internal` location with `sendfile`, applying the client's `Range` and `If-Range`
/// (`deploy/nginx.conf`). A missing file is `404` here as in [`serve`], and a matching
/// `If-None-Match` is answered `304` by onshi itself.
pub async fn accel_redirect(
    data_dir: &Path,
    prefix: &str,
    sha: Sha256,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let is_file = tokio::fs::metadata(path_of(data_dir, sha))
        .await
        .is_ok_and(|m| m.is_file());
    if !is_file {
        return Err(ApiError::not_found(format!("artifact {sha}")));
    }
    let etag = format!("\"{}\"", sha.hex());
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, common_headers(&etag)).into_response());
    }
    let target = HeaderValue::from_str(&accel_target(prefix, sha)).map_err(ApiError::internal)?;
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.extend(common_headers(&etag));
    h.insert(X_ACCEL_REDIRECT, target);
    Ok(resp)
}

/// nginx's header for an internal redirect.
pub const X_ACCEL_REDIRECT: &str = "x-accel-redirect";

/// Bytes read from disk per step of a download: each step is one `read` on the blocking pool
/// (one copy, page cache to the chunk that hyper writes to the socket). As large as today's
/// socket writes want, small enough that the throttle's downloads at once (1000 by default)
/// hold little memory: at most one chunk being read and one being written per download.
const CHUNK: usize = 256 * 1024;

/// `len` bytes of `file` from its current position, as a body stream. Each chunk is read
/// straight into the buffer that is sent (no intermediate copy, unlike `tokio::fs::File`, which
/// reads into its own buffer and copies from it), on the blocking pool, one chunk at a time; a
/// file shorter than promised ends the stream with an error, so the client sees a short body.
fn file_stream(
    file: std::fs::File,
    len: u64,
) -> impl futures_lite::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_lite::stream::unfold(Some((file, len)), |state| async move {
        let (file, left) = state?;
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left).map_or(CHUNK, |n| n.min(CHUNK));
        let read = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut chunk = Vec::with_capacity(want);
            (&mut file).take(want as u64).read_to_end(&mut chunk)?;
            if chunk.len() < want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the artifact file is shorter than its recorded size",
                ));
            }
            Ok((file, chunk))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        Some(match read {
            Ok((file, chunk)) => (Ok(Bytes::from(chunk)), Some((file, left - want as u64))),
            Err(e) => (Err(e), None),
        })
    })
}

fn common_headers(etag: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Not `public`: the answer is to an authenticated request (a device's token, its window
    // and slot checked), which a shared cache must not store and serve to others (RFC 9111
    // §3.5); the device's own cache may keep it, immutable.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000, immutable"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_against_the_file_size() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            Part { start: 50, end: 99 }
        );
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=x-y"), 100), Full);
    }

    #[test]
    fn accel_prefixes_are_checked_and_targets_follow_the_artifact_layout() {
        for ok in ["/_onshi/artifacts/", "/a/", "/x-y.z~/"] {
            assert_eq!(check_accel_prefix(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "/", "_onshi/", "/_onshi", "/../", "/a/../b/", "/a b/", "/a\nb/", "/ä/", "/a?/",
            "/a%2e/", "/a;b/",
        ] {
            assert!(check_accel_prefix(bad).is_err(), "{bad:?}");
        }
        let sha = Sha256::of(b"x");
        let hex = sha.hex();
        assert_eq!(
            accel_target("/_onshi/artifacts/", sha),
            format!("/_onshi/artifacts/{}/{hex}", &hex[..2])
        );
    }

    #[test]
    fn artifact_paths_stay_inside_the_data_directory() {
        let sha = Sha256::of(b"x");
        let p = path_of(Path::new("/data"), sha);
        assert!(p.starts_with("/data/artifacts"));
        assert_eq!(
            p.file_name().and_then(|n| n.to_str()),
            Some(sha.hex().as_str())
        );
    }

    async fn collect(path: &Path, start: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut stream = std::pin::pin!(file_stream(file, len));
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_file_is_streamed_in_chunks_from_the_range_start_to_its_end() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("package");
        let bytes: Vec<u8> = (0..(2 * CHUNK + 1000)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes)?;
        assert_eq!(collect(&path, 0, bytes.len() as u64).await?, bytes);
        let (start, len) = (CHUNK - 7, CHUNK + 20);
        assert_eq!(
            collect(&path, start as u64, len as u64).await?,
            bytes[start..start + len]
        );
        assert!(collect(&path, 5, 0).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_ends_the_stream_with_an_error() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("package");
        std::fs::write(&path, vec![7u8; CHUNK + 10])?;
        let result = collect(&path, 0, CHUNK as u64 + 11).await;
        assert!(
            matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{result:?}"
        );
        Ok(())
    }
}
