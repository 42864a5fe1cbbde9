//! The trust chain as the APIs serve it: each root version for agents to follow, a new root
//! the operator publishes (signed offline; checked here), the timestamp and the snapshot it
//! names (signed with the server's online keys), and a release's offline-signed manifest.

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
        Err(e @ PublishRootError::OnlineKeyDropped(..)) => {
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

/// The published releases' targets metadata, off the async workers (one count query; the
/// manifests themselves only when a release was published since).
async fn targets(state: &AppState) -> ApiResult<crate::trust::Targets> {
    let trust = state.trust.clone();
    state.db(move |s| trust.targets(s)).await
}

/// The timestamp now: it names the snapshot of every published release (TUF 5.4).
pub async fn timestamp(state: &AppState) -> ApiResult<Signed> {
    let root = newest(state).await?;
    let targets = targets(state).await?;
    Ok(state.trust.online(&root, &targets, state.now()).timestamp)
}

/// Snapshot `version`, the one a timestamp of this hour or the last named (TUF 5.5,
/// consistent snapshots); an older one, or one from before a release was published, is gone:
/// the agent starts again from the timestamp.
pub async fn snapshot(state: &AppState, version: u64) -> ApiResult<Signed> {
    let root = newest(state).await?;
    let targets = targets(state).await?;
    state
        .trust
        .snapshot(&root, &targets, version, state.now())
        .ok_or_else(|| ApiError::not_found(format!("snapshot version {version}")))
}

/// A release's targets metadata: its manifest as signed offline (TUF 5.6).
pub async fn release_manifest(state: &AppState, release_id: &str) -> ApiResult<Signed> {
    Ok(state.release(release_id).await?.signed.clone())
}
