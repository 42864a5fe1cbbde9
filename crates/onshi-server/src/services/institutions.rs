//! Institutions: storing the operator's list (API JSON or CSV, parsed at the handler) and
//! issuing a site's keys, audited.

use onshi_core::institution::InstitutionCode;
use onshi_store::{Institution, InstitutionKey};

use super::OPERATOR;
use crate::error::ApiResult;
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

/// A new enrollment or access key for a site: returned once, only its hash is kept.
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
    let action = match which {
        InstitutionKey::Enrollment => "enrollment_key_issued",
        InstitutionKey::Access => "access_key_issued",
    };
    state.audit(OPERATOR, action, code.to_string(), "").await?;
    Ok(key)
}
