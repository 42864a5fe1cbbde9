//! Institutions: storing the operator's list (API JSON or CSV, parsed at the handler) and
//! issuing a site's keys, audited.

use onshi_core::institution::InstitutionCode;
use onshi_store::{Institution, InstitutionKey};

use super::OPERATOR;
use jiff::Timestamp;

use crate::error::{ApiError, ApiResult};
use crate::secrets::{hash_secret, new_secret};
use crate::state::AppState;

/// Creates or updates institutions, all or none; returns how many were stored.
pub async fn save(state: &AppState, list: Vec<Institution>) -> ApiResult<usize> {
    let now = state.now();
    let n = list.len();
    let imported = state.db(move |s| s.upsert_institutions(&list, now)).await?;
    state
        .audit(
            OPERATOR,
            "institutions_upserted",
            "institutions",
            format!("{n}"),
        )
        .await?;
    Ok(imported)
}

/// A new enrolment key for a site: it enrols at most `uses` terminals until `valid` from now
/// (server time); returned once, only its hash is kept, and it ends the site's previous key.
pub async fn issue_enrollment_key(
    state: &AppState,
    code: InstitutionCode,
    uses: u32,
    valid: std::time::Duration,
) -> ApiResult<(String, Timestamp)> {
    let key = new_secret();
    let hash = hash_secret(&key);
    let expires = state
        .now()
        .checked_add(valid)
        .map_err(|e| ApiError::internal(format!("key expiry: {e}")))?;
    state
        .db(move |s| s.set_enrollment_key(code, &hash, expires, uses))
        .await?;
    state
        .audit(
            OPERATOR,
            "enrollment_key_issued",
            code.to_string(),
            format!("uses {uses}, expires {expires}"),
        )
        .await?;
    Ok((key, expires))
}

/// Revokes a device (and a terminal's card readers): their tokens end at once and their
/// download slots are freed; audited.
pub async fn revoke_device(state: &AppState, id: i64) -> ApiResult<Vec<i64>> {
    let now = state.now();
    let revoked = state.db(move |s| s.revoke_device(id, now)).await?;
    let detail = revoked
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    state
        .audit(OPERATOR, "device_revoked", format!("device:{id}"), detail)
        .await?;
    tracing::info!(device = id, revoked = ?revoked, "device revoked");
    Ok(revoked)
}

/// A new access key for a site: returned once, only its hash is kept.
pub async fn issue_key(
    state: &AppState,
    code: InstitutionCode,
    which: InstitutionKey,
) -> ApiResult<String> {
    let key = new_secret();
    let hash = hash_secret(&key);
    state
        .db(move |s| s.set_institution_key(code, which, &hash))
        .await?;
    if which == InstitutionKey::Access {
        // A new key ends the sessions opened with the old one, on every replica (they are in
        // the store; a session also remembers the key's generation, which `/site` checks).
        let ended = state.db(move |s| s.end_site_sessions_of(code)).await?;
        tracing::info!(institution = %code, ended, "access key re-issued: the site's sessions ended");
    }
    let action = match which {
        InstitutionKey::Enrollment => "enrollment_key_issued",
        InstitutionKey::Access => "access_key_issued",
    };
    state.audit(OPERATOR, action, code.to_string(), "").await?;
    Ok(key)
}
