//! Page sessions: the operator logs in with the operator token, a site's staff with their
//! institution code and access key; either gets a random session id in an `HttpOnly;
//! SameSite=Strict` cookie. Only the id's SHA-256 is kept, in memory: sessions do not survive a
//! restart and are not shared between replicas (log in again). Every form post carries the
//! session's CSRF token in a hidden field, compared in constant time, and a cross-site `Origin`
//! is refused as well.
//!
//! `Secure` is added when the request came through a TLS-terminating proxy that says so
//! (`X-Forwarded-Proto: https`); onshi itself speaks plain HTTP and cannot know otherwise.
//! Expiry uses the machine's monotonic time, not the server's (possibly simulated) clock, so a
//! demo clock running 600× fast does not log people out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use onshi_core::institution::InstitutionCode;
use subtle::ConstantTimeEq;

use crate::auth::{hash_secret, new_secret};
use crate::state::AppState;

/// The operator's session cookie.
pub const OPERATOR_COOKIE: &str = "onshi_operator";
/// A site's session cookie.
pub const SITE_COOKIE: &str = "onshi_site";

/// A session ends after this long without a request…
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// …and at the latest this long after login.
const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions are kept; the least recently used goes first.
const MAX_SESSIONS: usize = 10_000;

/// Who a session speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Operator,
    Site(InstitutionCode),
}

/// A message shown once on the next page (post/redirect/get).
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug)]
struct Session {
    who: Who,
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
}

/// What a page needs of its session.
#[derive(Debug, Clone)]
pub struct Current {
    pub who: Who,
    pub csrf: String,
    pub flash: Option<Flash>,
    key: String,
}

/// Every live session, by the hash of its id.
#[derive(Default)]
pub struct Sessions {
    map: HashMap<String, Session>,
}

impl Sessions {
    fn purge(&mut self, now: Instant) {
        self.map.retain(|_, s| alive(s, now));
        if self.map.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.created) < MAX_AGE
}

impl AppState {
    /// Starts a session; returns the session id for the cookie.
    pub fn login(&self, who: Who) -> String {
        let id = new_secret();
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.purge(now);
        sessions.map.insert(
            hash_secret(&id),
            Session {
                who,
                csrf: new_secret(),
                created: now,
                last_seen: now,
                flash: None,
            },
        );
        id
    }

    /// The live session named by `cookie` in the request, taking its flash message.
    pub fn session(&self, headers: &HeaderMap, cookie: &str) -> Option<Current> {
        let id = cookie_value(headers, cookie)?;
        let key = hash_secret(id);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let s = sessions.map.get_mut(&key)?;
        if !alive(s, now) {
            sessions.map.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(Current {
            who: s.who,
            csrf: s.csrf.clone(),
            flash: s.flash.take(),
            key,
        })
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, current: &Current, ok: bool, text: impl Into<String>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sessions.map.get_mut(&current.key) {
            s.flash = Some(Flash {
                ok,
                text: text.into(),
            });
        }
    }

    /// Ends a session.
    pub fn logout(&self, current: &Current) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .remove(&current.key);
    }
}

/// Whether a posted CSRF token is the session's.
pub fn csrf_matches(current: &Current, posted: &str) -> bool {
    !posted.is_empty() && bool::from(posted.as_bytes().ct_eq(current.csrf.as_bytes()))
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

/// The `Set-Cookie` value that carries a new session id.
pub fn set_cookie(name: &str, id: &str, headers: &HeaderMap) -> HeaderValue {
    let secure = if behind_https(headers) {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{name}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        MAX_AGE.as_secs()
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
        let plain = set_cookie(OPERATOR_COOKIE, "x", &HeaderMap::new());
        let plain = plain.to_str().expect("ascii");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = set_cookie(
            OPERATOR_COOKIE,
            "x",
            &headers(&[("x-forwarded-proto", "https")]),
        );
        assert!(tls.to_str().expect("ascii").ends_with("; Secure"));
    }
}
