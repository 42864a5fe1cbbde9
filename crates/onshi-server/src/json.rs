//! `ApiJson`, `ApiQuery` and `ApiPath`: axum's JSON, query and path extractors with our error
//! body for malformed input.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use onshi_api::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest JSON or CSV body accepted (a CSV of 230,000 institutions fits).
pub const MAX_BODY: usize = 64 << 20;

/// A query string; a malformed one answers 400 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))?;
        Ok(Self(value))
    }
}

/// The path's parameters; one that does not decode (percent-encoded bytes that are not UTF-8,
/// say) answers 400 `invalid_id` as the JSON error body, not axum's plain text.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidId, e.body_text()))?;
        Ok(Self(value))
    }
}

/// A JSON body: malformed JSON answers 400 `invalid_json`; well-formed JSON with unknown fields
/// or wrong types answers 422 `invalid_json`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
