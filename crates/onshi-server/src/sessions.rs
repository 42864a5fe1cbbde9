//! The page sessions kept in memory: who each session speaks for, its CSRF token and its flash
//! message, by the SHA-256 of the session id. The cookies and forms around them are
//! [`crate::pages::session`]'s; this store knows no HTTP.
//!
//! Expiry uses the machine's monotonic time, not the server's (possibly simulated) clock, so a
//! demo clock running 600× fast does not log people out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use onshi_core::institution::InstitutionCode;
use subtle::ConstantTimeEq;

use crate::secrets::{hash_secret, new_secret};

/// A session ends after this long without a request…
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// …and at the latest this long after login.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
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

impl Sessions {
    /// Starts a session; returns the session id for the cookie.
    pub fn login(&mut self, who: Who) -> String {
        let id = new_secret();
        let now = Instant::now();
        self.purge(now);
        self.map.insert(
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

    /// The live session with this id, taking its flash message.
    pub fn resume(&mut self, id: &str) -> Option<Current> {
        let key = hash_secret(id);
        let now = Instant::now();
        let s = self.map.get_mut(&key)?;
        if !alive(s, now) {
            self.map.remove(&key);
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
    pub fn flash(&mut self, current: &Current, ok: bool, text: String) {
        if let Some(s) = self.map.get_mut(&current.key) {
            s.flash = Some(Flash { ok, text });
        }
    }

    /// Ends a session.
    pub fn logout(&mut self, current: &Current) {
        self.map.remove(&current.key);
    }
}

/// Whether a posted CSRF token is the session's.
pub fn csrf_matches(current: &Current, posted: &str) -> bool {
    !posted.is_empty() && bool::from(posted.as_bytes().ct_eq(current.csrf.as_bytes()))
}
