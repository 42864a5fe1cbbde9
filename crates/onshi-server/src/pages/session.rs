//! Page sessions: the operator logs in with the operator token, a site's staff with their
//! institution code and access key (or the mailed one-time link); either gets a random session
//! id in an `HttpOnly; SameSite=Strict` cookie. Only the id's SHA-256 is kept: the operator's in
//! memory (it does not survive a restart and is not shared between replicas: log in again), a
//! site's in the store (it lasts weeks on the staff's browser, through restarts, on every
//! replica, until the site's access key is re-issued). Every form post carries the
//! session's CSRF token in a hidden field, compared in constant time, and a cross-site `Origin`
//! is refused as well.
//!
//! `Secure` is added when the client came over TLS: `X-Forwarded-Proto: https`, which
//! `crate::connections` sets on onshi's own TLS connections and keeps only from trusted proxies.
//!
//! The sessions themselves are kept by [`crate::sessions`].

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::ApiResult;
use crate::secrets::{hash_secret, new_secret};
pub use crate::sessions::{Current, Who, csrf_matches};
use crate::sessions::{PER_PRINCIPAL, SITE_IDLE, SITE_MAX_AGE, Sessions, max_age};
use crate::state::AppState;
use jiff::Timestamp;
use onshi_store::{NewSiteSession, SessionLimits};

/// The operator's session cookie.
pub const OPERATOR_COOKIE: &str = "onshi_operator";
/// A site's session cookie.
pub const SITE_COOKIE: &str = "onshi_site";

impl AppState {
    /// Starts a session; returns the session id for the cookie.
    pub fn login(&self, who: Who) -> String {
        self.sessions_lock().login(who)
    }

    /// Starts a site's session, kept in the store (it lasts weeks, survives a restart and is
    /// the same on every replica) and bound to the site's access-key generation; returns the
    /// session id for the cookie.
    pub async fn login_site(
        &self,
        code: onshi_core::institution::InstitutionCode,
        generation: String,
    ) -> ApiResult<String> {
        let id = new_secret();
        let (id_hash, csrf, now) = (hash_secret(&id), new_secret(), Timestamp::now());
        let limits = site_limits(now);
        self.db(move |s| {
            s.create_site_session(
                &NewSiteSession {
                    id_hash: &id_hash,
                    institution: code,
                    generation: &generation,
                    csrf: &csrf,
                    at: now,
                    keep: u32::try_from(PER_PRINCIPAL).unwrap_or(10),
                },
                &limits,
            )
        })
        .await?;
        Ok(id)
    }

    /// The live site session named by the request's site cookie.
    pub async fn site_session(&self, headers: &HeaderMap) -> ApiResult<Option<Current>> {
        let Some(id) = cookie_value(headers, SITE_COOKIE) else {
            return Ok(None);
        };
        let id_hash = hash_secret(id);
        let now = Timestamp::now();
        let limits = site_limits(now);
        let key = id_hash.clone();
        let found = self
            .db(move |s| s.resume_site_session(&key, &limits, now))
            .await?;
        Ok(found.map(|s| Current::of_site(s.institution, s.generation, s.csrf, id_hash)))
    }

    /// Ends a site session (logout).
    pub async fn logout_site(&self, current: &Current) -> ApiResult<()> {
        let key = current.id_hash().to_owned();
        self.db(move |s| s.end_site_session(&key)).await
    }

    /// What every login form post passes before its credential is checked: a cross-site post
    /// is refused, and so are too many attempts from this client or from everyone.
    pub fn may_try_login(
        &self,
        headers: &HeaderMap,
        client: std::net::IpAddr,
        door: crate::logins::Door,
        lang: onshi_core::lang::Lang,
    ) -> Result<(), super::PageError> {
        if !same_origin(headers) {
            return Err(super::PageError::forbidden(lang));
        }
        if !self.logins.allow(client, door) {
            return Err(super::PageError::too_many_logins(lang));
        }
        Ok(())
    }

    /// The live session named by `cookie` in the request, taking its flash message.
    pub fn session(&self, headers: &HeaderMap, cookie: &str) -> Option<Current> {
        let id = cookie_value(headers, cookie)?;
        self.sessions_lock().resume(id)
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, current: &Current, ok: bool, text: impl Into<String>) {
        self.sessions_lock().flash(current, ok, text.into());
    }

    /// Ends a session.
    pub fn logout(&self, current: &Current) {
        self.sessions_lock().logout(current);
    }

    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a form post comes from this site: an `Origin` header, when the browser sends one,
/// must name the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// When a site's sessions lapse, seen at `now` (the machine's clock: a simulated server clock
/// running fast must not log staff out).
fn site_limits(now: Timestamp) -> SessionLimits {
    let back = |d: std::time::Duration| {
        jiff::SignedDuration::try_from(d)
            .ok()
            .and_then(|d| now.checked_sub(d).ok())
            .unwrap_or(Timestamp::MIN)
    };
    SessionLimits {
        idle_since: back(SITE_IDLE),
        created_since: back(SITE_MAX_AGE),
    }
}

/// The value of one cookie of the request.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 100)
}

fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that carries a new session id of `who` (a site's lasts weeks, the
/// operator's hours: [`max_age`]).
pub fn set_cookie(name: &str, id: &str, who: Who, headers: &HeaderMap) -> HeaderValue {
    let secure = if behind_https(headers) {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{name}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age(who).as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that removes a session cookie.
pub fn clear_cookie(name: &str, headers: &HeaderMap) -> HeaderValue {
    let secure = if behind_https(headers) {
        "; Secure"
    } else {
        ""
    };
    let value = format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_a_cookie_among_several() {
        let h = headers(&[("cookie", "a=1; onshi_operator=abc; b=2")]);
        assert_eq!(cookie_value(&h, OPERATOR_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, SITE_COOKIE), None);
    }

    #[test]
    fn a_cross_site_origin_is_refused() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_https() {
        let plain = set_cookie(OPERATOR_COOKIE, "x", Who::Operator, &HeaderMap::new());
        let plain = plain.to_str().expect("ascii");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = set_cookie(
            OPERATOR_COOKIE,
            "x",
            Who::Operator,
            &headers(&[("x-forwarded-proto", "https")]),
        );
        assert!(tls.to_str().expect("ascii").ends_with("; Secure"));
    }
}
