//! Security headers on every answer: `X-Content-Type-Options: nosniff` everywhere, and on the
//! HTML pages a Content Security Policy that allows only their inline CSS, their inline
//! confirms (by their hashes) and onshi's own script (`pages.js`, which may fetch from onshi), no framing by another site (the operator's controls cannot be
//! clicked through a frame), forms posted only to onshi, and no referrer sent elsewhere.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::pages::actions::CONFIRM_REVOKE;
use crate::pages::dashboard::CONFIRM_CLOSE;

/// Adds the security headers to an answer.
pub async fn secure(mut response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy().clone());
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

/// The pages' Content Security Policy.
fn policy() -> &'static HeaderValue {
    static POLICY: OnceLock<HeaderValue> = OnceLock::new();
    POLICY.get_or_init(|| {
        let scripts: String = CONFIRM_CLOSE
            .iter()
            .chain(&CONFIRM_REVOKE)
            .map(|s| {
                let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s));
                format!(" 'sha256-{hash}'")
            })
            .collect();
        let text = format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             script-src 'self' 'unsafe-hashes'{scripts}; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'"
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
        })
    })
}
