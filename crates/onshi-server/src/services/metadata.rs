//! The trust chain as the APIs serve it: each root version for agents to follow, a new root
//! the operator publishes (signed offline; checked here), and a release's metadata for a
//! device — its offline-signed manifest with the server's short-lived timestamp.

use onshi_api::device::ReleaseMetadata;
use onshi_core::trust::Signed;

use super::OPERATOR;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::trust::PublishRootError;

/// Root `version` as signed. Every agent asks for the version after its own before it trusts a
/// release: that 404 is answered from memory.
pub async fn root(state: &AppState, version: u64) -> ApiResult<Signed> {
    let newest = newest(state).await?;
    (version <= newest.version())
        .then(|| state.trust.known(version))
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("root version {version}")))
}

/// The newest root as signed.
pub async fn newest_root(state: &AppState) -> ApiResult<Signed> {
    Ok(newest(state).await?.signed().clone())
}

/// The newest root: from memory while fresh, else read from the store off the async workers.
async fn newest(state: &AppState) -> ApiResult<onshi_core::trust::TrustedRoot> {
    if let Some(root) = state.trust.fresh() {
        return Ok(root);
    }
    let trust = state.trust.clone();
    state.db(move |s| trust.newest(s)).await
}

/// Publishes the next root (a rotation): it must be signed by a threshold of the current root's
/// root keys and of its own, and still name this server's timestamp key.
pub async fn publish_root(state: &AppState, signed: Signed) -> ApiResult<u64> {
    let trust = state.trust.clone();
    let published = tokio::task::spawn_blocking({
        let store = state.store.clone();
        move || trust.publish_root(store.as_ref(), signed)
    })
    .await
    .map_err(ApiError::internal)?;
    let root = match published {
        Ok(root) => root,
        Err(PublishRootError::Untrusted(e)) => return Err(ApiError::untrusted(&e)),
        Err(e @ PublishRootError::TimestampKeyDropped(_)) => {
            return Err(ApiError::bad_request(
                onshi_api::ErrorCode::UntrustedMetadata,
                e.to_string(),
            ));
        }
        Err(e @ PublishRootError::Raced(_)) => {
            return Err(ApiError::conflict(
                onshi_api::ErrorCode::Conflict,
                e.to_string(),
            ));
        }
        Err(PublishRootError::Store(e)) => return Err(e.into()),
    };
    state
        .audit(
            OPERATOR,
            "root_published",
            format!("root v{}", root.version()),
            format!("expires {}", root.root().expires),
        )
        .await?;
    Ok(root.version())
}

/// A release's metadata for a device: the manifest as signed offline and a timestamp signed
/// now under the newest root.
pub async fn release_metadata(state: &AppState, release_id: &str) -> ApiResult<ReleaseMetadata> {
    let release = state.release(release_id).await?;
    let root = newest(state).await?;
    let timestamp = state
        .trust
        .timestamp(&root, release_id, &release.signed, state.now());
    Ok(ReleaseMetadata {
        manifest: release.signed.clone(),
        timestamp,
    })
}
