//! Login attempts limited per client and overall (issue 15): guessing an operator token or a
//! site's access key, or flooding the logins to burn the server's time, gets a few tries a
//! minute per client address and a bounded rate in all; a refused attempt is not even checked.
//! The client's address is its connection's, or the one a trusted proxy forwards
//! (`crate::connections`). The overall bound is kept apart for the operator's login and the
//! sites' (a [`Door`] each), so that sites logging in, or someone flooding the site login from
//! many addresses, never locks the operator out. Counts are per replica, in memory (governor).
//! Both rates are [`LoginRates`], which `onshi serve` may raise: sites reaching the server
//! through one carrier's address translation share one client address.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A client may try this many minutes' worth at once (20 at the default rate)…
const PER_CLIENT_BURST_MINUTES: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");
/// …and all clients together at one door this many seconds' worth (200 at the default rate).
const OVERALL_BURST_SECONDS: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");
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

/// How fast logins may be tried: the steady rates (each with a burst of a few times as much).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRates {
    /// Attempts one client address may make a minute (a burst of twice as many at once).
    pub per_client_per_minute: NonZeroU32,
    /// Attempts of every client together a second, at each door (a burst of ten seconds').
    pub per_door_per_second: NonZeroU32,
}

impl Default for LoginRates {
    fn default() -> Self {
        Self {
            per_client_per_minute: NonZeroU32::new(10).expect("non-zero"),
            per_door_per_second: NonZeroU32::new(20).expect("non-zero"),
        }
    }
}

/// The login limits of one server.
pub struct Logins {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    operator: DefaultDirectRateLimiter,
    sites: DefaultDirectRateLimiter,
}

impl Default for Logins {
    fn default() -> Self {
        Self::new(LoginRates::default())
    }
}

impl Logins {
    /// Limits at `rates`.
    pub fn new(rates: LoginRates) -> Self {
        let (door, client) = (rates.per_door_per_second, rates.per_client_per_minute);
        let overall = || {
            RateLimiter::direct(
                Quota::per_second(door).allow_burst(door.saturating_mul(OVERALL_BURST_SECONDS)),
            )
        };
        Self {
            per_client: RateLimiter::keyed(
                Quota::per_minute(client)
                    .allow_burst(client.saturating_mul(PER_CLIENT_BURST_MINUTES)),
            ),
            operator: overall(),
            sites: overall(),
        }
    }

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
        for _ in 0..20 {
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
        assert!(allowed >= 200, "{allowed}");
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

    #[test]
    fn raised_rates_let_many_sites_behind_one_address_log_in() {
        let logins = Logins::new(LoginRates {
            per_client_per_minute: NonZeroU32::new(6000).expect("non-zero"),
            per_door_per_second: NonZeroU32::new(1000).expect("non-zero"),
        });
        let carrier: IpAddr = "203.0.113.7".parse().expect("ip");
        let allowed = (0..12_000)
            .filter(|_| logins.allow(carrier, Door::Site))
            .count();
        // The door's burst (ten seconds' worth) within the client's (two minutes' worth), and
        // the little a run this quick refills; at the default rates, 20.
        assert!((10_000..11_000).contains(&allowed), "{allowed}");
    }
}
