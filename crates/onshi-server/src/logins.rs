//! Login attempts limited per client and overall (issue 15): guessing an operator token or a
//! site's access key, or flooding the logins to burn the server's time, gets a few tries a
//! minute per client address and a bounded rate in all; a refused attempt is not even checked.
//! The client's address is its connection's, or the one a trusted proxy forwards
//! (`crate::connections`). The overall bound is kept apart for the operator's login and the
//! sites' (a [`Door`] each), so that sites logging in, or someone flooding the site login from
//! many addresses, never locks the operator out. Counts are per replica, in memory (governor).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts one client may make at once…
const PER_CLIENT_BURST: NonZeroU32 = NonZeroU32::new(20).expect("non-zero");
/// …and a minute after that.
const PER_CLIENT_PER_MINUTE: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");
/// Attempts of every client together, at once…
const OVERALL_BURST: NonZeroU32 = NonZeroU32::new(200).expect("non-zero");
/// …and a second after that.
const OVERALL_PER_SECOND: NonZeroU32 = NonZeroU32::new(20).expect("non-zero");
/// Client addresses remembered before the ones whose allowance is full again are forgotten.
const REMEMBERED_CLIENTS: usize = 100_000;

/// Which login is tried: each has its own overall bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `/operator/login`.
    Operator,
    /// `/site/login` and the sign-in links (`/site/sign-in`).
    Site,
}

/// The login limits of one server.
pub struct Logins {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    operator: DefaultDirectRateLimiter,
    sites: DefaultDirectRateLimiter,
}

impl Default for Logins {
    fn default() -> Self {
        let overall = || {
            RateLimiter::direct(Quota::per_second(OVERALL_PER_SECOND).allow_burst(OVERALL_BURST))
        };
        Self {
            per_client: RateLimiter::keyed(
                Quota::per_minute(PER_CLIENT_PER_MINUTE).allow_burst(PER_CLIENT_BURST),
            ),
            operator: overall(),
            sites: overall(),
        }
    }
}

impl Logins {
    /// Whether `client` may try to log in at `door` now (counts the attempt).
    pub fn allow(&self, client: IpAddr, door: Door) -> bool {
        if self.per_client.len() > REMEMBERED_CLIENTS {
            self.per_client.retain_recent();
        }
        let overall = match door {
            Door::Operator => &self.operator,
            Door::Site => &self.sites,
        };
        let allowed = self.per_client.check_key(&client).is_ok() && overall.check().is_ok();
        if !allowed {
            tracing::warn!(%client, "login attempt refused: too many");
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_gets_its_burst_and_then_waits_while_another_still_may_try() {
        let logins = Logins::default();
        let guesser: IpAddr = "203.0.113.7".parse().expect("ip");
        let staff: IpAddr = "198.51.100.1".parse().expect("ip");
        for _ in 0..PER_CLIENT_BURST.get() {
            assert!(logins.allow(guesser, Door::Site));
        }
        assert!(!logins.allow(guesser, Door::Site));
        assert!(logins.allow(staff, Door::Site));
    }

    #[test]
    fn many_clients_together_are_bounded_too() {
        let logins = Logins::default();
        let allowed = (0..1000u32)
            .filter(|i| logins.allow(IpAddr::from(i.to_be_bytes()), Door::Site))
            .count();
        assert!(allowed >= OVERALL_BURST.get() as usize, "{allowed}");
        // Refilling at 20 a second, a run this quick cannot get much past the burst.
        assert!(allowed < 400, "{allowed}");
    }

    #[test]
    fn sites_using_up_their_overall_bound_leave_the_operator_its_own() {
        let logins = Logins::default();
        let allowed = (0..1000u32)
            .filter(|i| logins.allow(IpAddr::from(i.to_be_bytes()), Door::Site))
            .count();
        assert!(allowed < 1000, "the sites' bound held: {allowed}");
        let operator: IpAddr = "198.51.100.1".parse().expect("ip");
        assert!(logins.allow(operator, Door::Operator));
    }
}
