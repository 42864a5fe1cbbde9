//! The page sessions kept in memory: who each session speaks for, its CSRF token and its flash
//! message, by the SHA-256 of the session id. The pages keep the operator's here; a site's are
//! in the store (`Store::create_site_session`), with the lifetimes and the per-site cap named
//! here. The cookies and forms around them are [`crate::pages::session`]'s; this store knows
//! no HTTP.
//!
//! Expiry uses the machine's monotonic time, not the server's (possibly simulated) clock, so a
//! demo clock running 600× fast does not log people out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use onshi_core::institution::InstitutionCode;
use subtle::ConstantTimeEq;

use crate::secrets::{hash_secret, new_secret};

/// The operator's session ends after this long without a request…
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// …and at the latest this long after login.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// A site's session lasts on its browser: a reception PC or phone stays signed in for weeks,
/// so staff do not type the access key every morning. It ends after this long unused…
pub const SITE_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// …at the latest this long after login, and at once when the site's access key is re-issued
/// (its generation, checked on every page).
pub const SITE_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);
/// At most this many sessions of one principal (the operator, or one site) are kept; a new
/// login beyond them ends that principal's least recently used session, never another's.
pub const PER_PRINCIPAL: usize = 10;
/// At most this many sites' sessions are kept in all; beyond them the least recently used
/// site session ends. The operator's sessions are never counted nor ended for a site's login.
pub const MAX_SITE_SESSIONS: usize = 100_000;

/// Who a session speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

impl Current {
    /// A site's session as the store keeps it (`id_hash`: the SHA-256 of its id).
    pub fn of_site(
        code: InstitutionCode,
        generation: String,
        csrf: String,
        id_hash: String,
    ) -> Self {
        Self {
            who: Who::Site(code),
            generation: Some(generation),
            csrf,
            flash: None,
            key: id_hash,
        }
    }

    /// The SHA-256 of the session's id, as stored.
    pub fn id_hash(&self) -> &str {
        &self.key
    }
}

/// What a page needs of its session.
#[derive(Debug, Clone)]
pub struct Current {
    pub who: Who,
    /// A site's access-key generation when its session began (see
    /// `crate::services::sign_in::current_generation`); `None` for the operator.
    pub generation: Option<String>,
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
    /// Drops expired sessions, then makes room for one more session of `who`: at most
    /// [`PER_PRINCIPAL`] per principal and [`MAX_SITE_SESSIONS`] sites' in all, so one site
    /// logging in again and again only ends its own sessions.
    fn purge(&mut self, who: Who, now: Instant) {
        self.map.retain(|_, s| alive(s, now));
        let oldest_where = |map: &HashMap<String, Session>, keep: &dyn Fn(&Session) -> bool| {
            map.iter()
                .filter(|(_, s)| keep(s))
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        };
        let own = self.map.values().filter(|s| s.who == who).count();
        if own >= PER_PRINCIPAL
            && let Some(oldest) = oldest_where(&self.map, &|s| s.who == who)
        {
            self.map.remove(&oldest);
        }
        let is_site = |s: &Session| matches!(s.who, Who::Site(_));
        if matches!(who, Who::Site(_))
            && self.map.values().filter(|s| is_site(s)).count() >= MAX_SITE_SESSIONS
            && let Some(oldest) = oldest_where(&self.map, &is_site)
        {
            self.map.remove(&oldest);
        }
    }

    /// Ends every session of `who` (a site whose access key was re-issued).
    pub fn end_all_of(&mut self, who: Who) -> usize {
        let before = self.map.len();
        self.map.retain(|_, s| s.who != who);
        before - self.map.len()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    let (idle, max_age) = lifetime(s.who);
    now.duration_since(s.last_seen) < idle && now.duration_since(s.created) < max_age
}

/// How long a session of `who` may stay unused, and at most.
fn lifetime(who: Who) -> (Duration, Duration) {
    match who {
        Who::Operator => (IDLE, MAX_AGE),
        Who::Site(_) => (SITE_IDLE, SITE_MAX_AGE),
    }
}

/// How long the cookie of a session of `who` lasts.
pub fn max_age(who: Who) -> Duration {
    lifetime(who).1
}

impl Sessions {
    /// Starts a session; returns the session id for the cookie.
    pub fn login(&mut self, who: Who) -> String {
        let id = new_secret();
        let now = Instant::now();
        self.purge(who, now);
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
            generation: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn site(n: u16) -> Who {
        use onshi_core::institution::{Prefecture, ScoreTable};
        let p = Prefecture::from_number(13).expect("Tokyo");
        Who::Site(InstitutionCode::from_parts(p, ScoreTable::Medical, 1, n).expect("code"))
    }

    #[test]
    fn the_operators_session_survives_10000_site_logins() {
        let mut sessions = Sessions::default();
        let operator = sessions.login(Who::Operator);
        for i in 0..10_000u32 {
            // One site logging in again and again, and many sites once each.
            let who = if i % 2 == 0 {
                site(1)
            } else {
                site(2 + (i % 5000) as u16)
            };
            sessions.login(who);
        }
        assert!(sessions.resume(&operator).is_some());
        let of_site_1 = sessions.map.values().filter(|s| s.who == site(1)).count();
        assert_eq!(of_site_1, PER_PRINCIPAL);
    }

    #[test]
    fn a_site_logging_in_again_and_again_ends_only_its_own_oldest_session() {
        let mut sessions = Sessions::default();
        let other = sessions.login(site(2));
        let first = sessions.login(site(1));
        for _ in 0..PER_PRINCIPAL {
            sessions.login(site(1));
        }
        assert!(sessions.resume(&first).is_none(), "its own oldest ended");
        assert!(sessions.resume(&other).is_some(), "another site's kept");
    }

    #[test]
    fn ending_a_sites_sessions_leaves_the_others() {
        let mut sessions = Sessions::default();
        let a = sessions.login(site(1));
        let b = sessions.login(site(1));
        let other = sessions.login(site(2));
        let operator = sessions.login(Who::Operator);
        assert_eq!(sessions.end_all_of(site(1)), 2);
        assert!(sessions.resume(&a).is_none() && sessions.resume(&b).is_none());
        assert!(sessions.resume(&other).is_some() && sessions.resume(&operator).is_some());
    }
}
