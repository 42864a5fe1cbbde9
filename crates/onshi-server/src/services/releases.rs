//! Packages and signed releases: the one way a package enters (API upload or the dashboard's
//! form) and the one way a release is checked, signed and stored.

use onshi_core::release::{Component, Manifest, Sha256, SignedManifest};
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

pub use onshi_api::admin::{ComponentInput, ReleaseInput};

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

/// Checks the packages, signs and stores a release: shared by the API and the dashboard.
pub async fn sign_release(state: &AppState, input: ReleaseInput) -> ApiResult<SignedManifest> {
    valid_id(&input.id, "release")?;
    if input.components.is_empty() {
        return Err(ApiError::invalid_release(
            "a release needs at least one component",
        ));
    }
    let mut components = Vec::new();
    for c in input.components {
        if components.iter().any(|x: &Component| x.target == c.target) {
            return Err(ApiError::invalid_release(format!(
                "target {} is listed twice",
                c.target
            )));
        }
        let sha = c.sha256;
        let size = state
            .db(move |s| s.artifact(sha))
            .await?
            .ok_or_else(|| ApiError::unknown_artifact(format!("no uploaded package {sha}")))?;
        components.push(Component {
            target: c.target,
            sha256: c.sha256,
            size,
        });
    }
    let manifest = Manifest {
        release_id: input.id.clone(),
        version: input.version,
        created_at: state.now().to_string(),
        components,
    };
    let signed = SignedManifest::sign(&manifest, &state.signing_key);
    let release = Release {
        id: input.id.clone(),
        manifest,
        signed: signed.clone(),
    };
    let now = state.now();
    let id = input.id.clone();
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
        .audit(OPERATOR, "release_created", input.id, "signed")
        .await?;
    Ok(signed)
}
