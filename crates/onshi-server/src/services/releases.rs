//! Packages and signed releases: the one way a package enters (API upload or the dashboard's
//! form) and the one way a release signed offline is checked and stored.

use onshi_core::release::{Manifest, Sha256};
use onshi_core::trust::Signed;
use onshi_store::Release;

use super::OPERATOR;
use crate::artifacts;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The largest package accepted.
pub const MAX_PACKAGE: u64 = 8 << 30;

/// Stores a package (streamed, at most [`MAX_PACKAGE`] bytes), records and audits it: the one
/// way a package enters, from the API or the dashboard's upload form.
pub async fn store_artifact<S, B, E>(state: &AppState, body: S) -> ApiResult<(Sha256, u64)>
where
    S: futures_lite::Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let (sha, size) = artifacts::store_upload(&state.data_dir, body, MAX_PACKAGE).await?;
    let now = state.now();
    state.db(move |s| s.add_artifact(sha, size, now)).await?;
    state
        .audit(
            OPERATOR,
            "artifact_uploaded",
            sha.hex(),
            format!("{size} bytes"),
        )
        .await?;
    Ok((sha, size))
}

fn valid_id(id: &str, what: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_id(format!(
            "{what} id must be 1–64 characters of letters, digits, '.', '_', '-'"
        )))
    }
}

/// Publishes a release whose manifest was signed offline (`onshi release sign`): it must
/// verify against the trusted root — a threshold of the targets keys, not expired — and every
/// package it lists must be uploaded with the listed length. The server signs nothing here:
/// the operator token alone cannot make a terminal install a package. Shared by the API and
/// the dashboard. Its deltas too: each uploaded with its listed length, and each one that can
/// rebuild a package of the release (`Manifest::check_deltas`).
pub async fn publish_release(state: &AppState, signed: Signed) -> ApiResult<Manifest> {
    let root = {
        let trust = state.trust.clone();
        state.db(move |s| trust.newest(s)).await?
    };
    let manifest = root
        .verify_manifest(&signed, state.now())
        .map_err(|e| ApiError::untrusted(&e))?;
    valid_id(&manifest.release_id, "release")?;
    if manifest.components.is_empty() {
        return Err(ApiError::invalid_release(
            "a release needs at least one component",
        ));
    }
    let mut seen = Vec::new();
    for c in &manifest.components {
        if seen.contains(&c.target) {
            return Err(ApiError::invalid_release(format!(
                "target {} is listed twice",
                c.target
            )));
        }
        seen.push(c.target);
        let sha = c.sha256;
        let size = state
            .db(move |s| s.artifact(sha))
            .await?
            .ok_or_else(|| ApiError::unknown_artifact(format!("no uploaded package {sha}")))?;
        if size != c.size {
            return Err(ApiError::invalid_release(format!(
                "package {sha} is {size} bytes, the manifest says {}",
                c.size
            )));
        }
    }
    manifest
        .check_deltas()
        .map_err(|e| ApiError::invalid_release(e.to_string()))?;
    for d in &manifest.deltas {
        let sha = d.sha256;
        let size = state
            .db(move |s| s.artifact(sha))
            .await?
            .ok_or_else(|| ApiError::unknown_artifact(format!("no uploaded delta {sha}")))?;
        if size != d.size {
            return Err(ApiError::invalid_release(format!(
                "delta {sha} is {size} bytes, the manifest says {}",
                d.size
            )));
        }
    }
    let release = Release {
        id: manifest.release_id.clone(),
        manifest: manifest.clone(),
        signed,
    };
    let now = state.now();
    let id = manifest.release_id.clone();
    state
        .db(move |s| {
            if s.release(&id)?.is_some() {
                return Err(onshi_store::StoreError::Conflict(format!(
                    "release {id} already exists"
                )));
            }
            s.insert_release(&release, now)
        })
        .await?;
    state
        .audit(
            OPERATOR,
            "release_published",
            manifest.release_id.clone(),
            format!("version {} signed offline", manifest.version),
        )
        .await?;
    Ok(manifest)
}
