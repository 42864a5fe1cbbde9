//! Who may do what: the operator token and device tokens presented as bearer tokens. Only
//! SHA-256 hashes of secrets are stored ([`crate::secrets`]).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use onshi_store::{Deployment, Device};

use crate::error::ApiError;
pub use crate::secrets::{hash_secret, new_secret, secret_matches};
use crate::state::AppState;

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <token>'"))
}

/// The operator, authenticated by the operator token.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        if secret_matches(token, &state.operator_token_hash) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized("wrong operator token"))
        }
    }
}

/// A device, authenticated by its own token.
pub struct DeviceAuth {
    pub device: Device,
    /// Its open deployments when the store was asked for them in the same call (a shared
    /// database: one round trip per check-in); `None` when the store answers from memory.
    pub open: Option<Vec<Deployment>>,
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let hash = hash_secret(bearer(&parts.headers)?);
        // Inline when the store has the device in memory (SQLite, a PostgreSQL replica told of
        // the others' writes): a thread hand-off per check-in costs more than the look-up. A
        // token not in memory (an unknown one: a scanner's, a revoked device's) is looked up in
        // the database, which is never done on an async worker.
        let found = if state.store.reads_from_memory() {
            match state.store.remembered_device(&hash) {
                Some(device) => Some(device),
                None => state.db(move |s| s.device_by_token(&hash)).await?,
            }
            .map(|device| DeviceAuth { device, open: None })
        } else {
            state
                .db(move |s| s.device_and_open_deployments(&hash))
                .await?
                .map(|(device, open)| DeviceAuth {
                    device,
                    open: Some(open),
                })
        };
        found.ok_or_else(|| ApiError::unauthorized("unknown device token"))
    }
}
