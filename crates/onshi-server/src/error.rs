//! The one application error type: every failure leaves the server as JSON
//! `{"code": "...", "message": "..."}` with a stable `code`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use onshi_api::{ErrorBody, ErrorCode};
use onshi_store::{EnrolRefusal, StoreError};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// The database cannot be reached now: nothing was stored, the client should retry.
    pub fn unavailable(err: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %err, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseUnavailable,
            "the database cannot be reached now; nothing was stored, retry later",
        )
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }
}

/// The refusals of the service layer, each with its stable code, so that a service names what
/// went wrong and never picks an HTTP status itself.
impl ApiError {
    /// A campaign schedule that does not parse, or an unknown preset.
    pub fn invalid_schedule(message: impl Into<String>) -> Self {
        Self::bad_request(ErrorCode::InvalidSchedule, message)
    }

    /// A campaign throttle out of bounds.
    pub fn invalid_throttle(message: impl Into<String>) -> Self {
        Self::bad_request(ErrorCode::InvalidThrottle, message)
    }

    /// A campaign action its status does not allow (`onshi_core::offer::InvalidTransition`).
    pub fn invalid_campaign_transition(message: impl Into<String>) -> Self {
        Self::conflict(ErrorCode::InvalidCampaignTransition, message)
    }

    /// An id (release, campaign) that is not 1–64 letters, digits, '.', '_', '-'.
    pub fn invalid_id(message: impl Into<String>) -> Self {
        Self::bad_request(ErrorCode::InvalidId, message)
    }

    /// A release without components or with a target listed twice.
    pub fn invalid_release(message: impl Into<String>) -> Self {
        Self::bad_request(ErrorCode::InvalidRelease, message)
    }

    /// Signed metadata that does not verify against the trusted root.
    pub fn untrusted(e: &onshi_core::trust::TrustError) -> Self {
        Self::bad_request(ErrorCode::UntrustedMetadata, e.to_string())
    }

    /// A release naming a package that was never uploaded.
    pub fn unknown_artifact(message: impl Into<String>) -> Self {
        // Well formed, but it names a package this server does not hold: a conflict with the
        // server's state (upload the package first), not a malformed request.
        Self::conflict(ErrorCode::UnknownArtifact, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            code: self.code,
            message: self.message,
        });
        (self.status, body).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(what) => Self::conflict(ErrorCode::Conflict, what),
            StoreError::Unavailable(why) => Self::unavailable(why),
            StoreError::EnrolRefused(why) => match why {
                EnrolRefusal::SerialTaken => Self::conflict(
                    ErrorCode::AlreadyEnrolled,
                    "this serial is already enrolled; ask the operator to revoke that device \
                     before enrolling it again",
                ),
                EnrolRefusal::Full => Self::conflict(
                    ErrorCode::DeviceLimit,
                    "the site has as many terminals (or the terminal as many card readers) as \
                     it may; ask the operator to revoke one that is no longer used",
                ),
                // One answer for every wrong key, as for an unknown institution.
                EnrolRefusal::Key => {
                    Self::unauthorized("institution code or enrollment key is wrong or expired")
                }
            },
            other => Self::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if is_body_timeout(&rejection) {
            return Self::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                "the body stopped arriving; send it again",
            );
        }
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::InvalidJson,
        };
        Self::new(status, code, rejection.body_text())
    }
}

/// Whether a failure to read a body was the body's pause limit (`crate::limits`).
fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::internal(err)
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// The answer for a path no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// The answer for a known path asked with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}
