//! Secrets and who may do what: the operator token, device tokens, institution enrollment and
//! access keys. Only SHA-256 hashes of secrets are stored; tokens are 256-bit random values, so
//! a fast hash is enough and look-ups by hash leak nothing useful.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onshi_store::{Deployment, Device};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// A new random secret (256 bits, URL-safe base64).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

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
        // Inline when the store answers from memory (SQLite): a thread hand-off per check-in
        // costs more than the look-up. A shared database is asked on the blocking pool.
        let found = if state.store.reads_from_memory() {
            state
                .store
                .device_by_token(&hash)?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_hash_matches() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let stored = hash_secret(&a);
        assert!(secret_matches(&a, &stored));
        assert!(!secret_matches(&b, &stored));
        assert!(!secret_matches(&stored, &stored));
    }
}
