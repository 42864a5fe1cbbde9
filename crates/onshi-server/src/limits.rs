//! Time and size limits on every connection and request (DESIGN.md §7: "every connection and
//! body has a time and size limit, checked before the body is read").
//!
//! [`Limits`] is what `onshi serve` sets. The connection's limits (how long its request head may
//! take, how many connections at once, how long a shutdown waits) are applied where connections
//! are accepted, in [`crate::connections`]; the request's limits are router layers built here: a
//! body limit per route group that refuses a declared `Content-Length` over it before a byte of
//! the body is read (and stops a body of undeclared length at the same size), a limit on the
//! pause between two chunks of a body, and a deadline for a whole request on the small routes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse as _;
use onshi_api::ErrorCode;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::error::ApiError;
pub use crate::logins::LoginRates;

/// The body limit of the device API and of every route open without a credential (enrolment,
/// the logins, the reception forms, the mock qualification service): what they take is a few
/// hundred bytes, so a few KiB is room enough and a hostile body costs nothing.
pub const SMALL_BODY: usize = 16 << 10;
/// The body limit of the operator's page forms: the largest is a campaign's schedule (TOML text
/// of a few KiB). Only read once the operator's session was found ([`crate::pages`]).
pub const FORM_BODY: usize = 64 << 10;

/// How many request deadlines an operator API request may take ([`Limits::operator_deadline`]).
pub const OPERATOR_DEADLINE_FACTOR: u32 = 10;

/// The time and size limits of the server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's head (request line and headers) must arrive within this after the connection
    /// is ready for it; so an idle keep-alive connection is closed after this long too.
    pub header_timeout: Duration,
    /// The longest pause between two chunks of a request body.
    pub body_timeout: Duration,
    /// The longest a request of the device API, a login or another small route may take to be
    /// answered, its body included (a package download's streaming is not counted).
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// After SIGTERM or Ctrl-C: how long requests in flight may still take before their
    /// connections are closed. The buffered "last contact" times are written after that.
    pub shutdown_deadline: Duration,
    /// How fast logins may be tried, per client address and in all.
    pub logins: LoginRates,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_deadline: Duration::from_secs(10),
            logins: LoginRates::default(),
        }
    }
}

impl Limits {
    /// The body limit of a route group: a declared `Content-Length` over `max` is refused (413)
    /// before the body is read; a body of undeclared length is cut off at `max`.
    pub fn body(max: usize) -> RequestBodyLimitLayer {
        RequestBodyLimitLayer::new(max)
    }

    /// The deadline of a whole request (answered 408 `request_timeout`).
    pub fn request_deadline(&self) -> TimeoutLayer {
        TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, self.request_timeout)
    }

    /// The deadline of an operator API request, whose body may be 64 MiB (an institution list
    /// of every site): [`OPERATOR_DEADLINE_FACTOR`] times the request deadline. Package uploads,
    /// which may take longer still, are limited by the pause between their chunks instead.
    pub fn operator_deadline(&self) -> TimeoutLayer {
        TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            self.request_timeout
                .saturating_mul(OPERATOR_DEADLINE_FACTOR),
        )
    }

    /// The limit on the pause between two chunks of a request body.
    pub fn body_pause(&self) -> RequestBodyTimeoutLayer {
        RequestBodyTimeoutLayer::new(self.body_timeout)
    }
}

/// The answers of the limit layers (an empty 408, a plain-text 413) as the one JSON error body,
/// like every other failure of the server.
pub async fn errors_as_json(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        _ => return response,
    };
    let json = HeaderValue::from_static("application/json");
    if response.headers().get(header::CONTENT_TYPE) == Some(&json) {
        return response;
    }
    let message = match code {
        ErrorCode::BodyTooLarge => "the body is over this route's limit",
        _ => "the request was not completed in time",
    };
    tracing::debug!(%status, "request refused by a limit");
    ApiError::new(status, code, message).into_response()
}
