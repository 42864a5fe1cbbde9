//! 予約 — appointments instead of polling. A terminal refused a download slot is given a time to
//! come back from a fair queue, instead of asking again every two minutes all night: first come,
//! first served within a campaign's window, spread so that freed slots are refilled within
//! seconds and never oversubscribed, and never outside the window (an appointment past its close
//! becomes the next window's opening).
//!
//! The rules, all pure (the instant is passed in):
//! - a device's *position* is how many waiting devices arrived before it in this window;
//! - the free slots (of `max_downloads`) are reserved for the first waiting devices due back
//!   within [`HEAD_MAX_POLL`], so a later arrival takes one only when every such device ahead of
//!   it has one reserved too; a device due back later (told a late appointment, or gone away)
//!   is passed, at most [`OVERTAKE_BOUND`] times, after which a slot is held for it (see
//!   [`admits`]);
//! - the appointment comes from the observed slot turnover ([`Turnover`]): near the head, a short
//!   one ([`HEAD_POLL`]) so that a freed slot is taken within seconds; further back, the expected
//!   wait, at most [`EARLY`] of it (and half of [`HEAD_POLL_HORIZON`] short of it) so the device lands
//!   in the head's short polls, never late for its turn;
//! - a place lapses ([`GRACE`] after the appointment) when its device does not come, so a
//!   switched-off terminal cannot stall a slot; it joins the back of the queue when it returns.
//!
//! [`Queue`] holds one campaign's queue in memory (the SQLite server and the simulator); the
//! PostgreSQL store, whose replicas share one queue, keeps the same fields in its tables and
//! asks the same rules ([`admission`], [`come_back`], [`lapsed`], [`Turnover`]).

mod queue;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::offer::{MAX_POLL, OPENING_SPREAD};
use crate::schedule::{Campaign, Status};

pub use queue::{Ahead, ComeBack, Queue, Turn, admission, admission_scan, come_back};

/// The appointment of a device near the head of the queue: a freed slot waits at most about this
/// long for the device it is reserved for.
pub const HEAD_POLL: Duration = Duration::from_secs(5);

/// Devices expected to get a slot within this time are at the head and come back every
/// [`HEAD_POLL`].
pub const HEAD_POLL_HORIZON: Duration = Duration::from_secs(30);

/// The longest the device at the head of the queue waits between two check-ins: a freed slot
/// waits at most about this long when slots are few and held long (with many slots, the head
/// comes back every [`HEAD_POLL`]).
pub const HEAD_MAX_POLL: Duration = Duration::from_secs(60);

/// How long after its appointment a device's place is kept. A device that has not come back by
/// then has lapsed: its place (and any reserved turn) passes on, and it queues again at the back.
pub const GRACE: Duration = Duration::from_secs(30);

/// At most this many later arrivals take a slot before a device that keeps its appointments.
/// A later arrival passes a device only while a slot is reserved for both (the earlier one has
/// not come back yet); once a device has been passed this many times, its slot is held for it
/// until it comes or lapses.
pub const OVERTAKE_BOUND: u32 = 8;

/// How long a slot is assumed to be held before the queue has seen any freed (the first
/// appointments of a window; the observed turnover replaces it as slots are freed).
pub const ASSUMED_HOLD: Duration = Duration::from_secs(10 * 60);

/// The longest hold the turnover counts (a lease renewed all night is one slot, not the rate).
pub const LONGEST_HOLD: Duration = Duration::from_secs(60 * 60);

/// The share of its expected wait after which a device far from the head comes back to hear its
/// place again.
pub const EARLY: f64 = 0.8;

/// The weight of the newest interval in the turnover's moving average.
pub const TURNOVER_WEIGHT: f64 = 0.05;

/// The distribution window a queue belongs to: its opening identifies it (a new window starts a
/// new queue), its close bounds the appointments, and the next opening takes those past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub opened_at: Timestamp,
    /// `None` in the catch-up phase, which runs until the operator closes the campaign.
    pub closes_at: Option<Timestamp>,
    /// When distribution opens again after `closes_at`.
    pub next_opening: Option<Timestamp>,
    /// How long after its appointment a waiting device's place is kept ([`GRACE`] of server
    /// time; a server on a fast simulated clock keeps it longer, see [`Window::with_grace`]).
    pub grace: Duration,
}

impl Window {
    /// The window open at `status.at`, or `None` when the campaign is not distributing.
    pub fn of(campaign: &Campaign, status: &Status) -> Option<Self> {
        if !status.distributing {
            return None;
        }
        let opened_at = status.opened_at?;
        let next_opening = status
            .closes_at
            .and_then(|close| campaign.status(close).next_opening);
        Some(Self {
            opened_at,
            closes_at: status.closes_at,
            next_opening,
            grace: GRACE,
        })
    }

    /// The window with places kept `grace` after their appointments. A server on a fast
    /// simulated clock passes at least a second or two of real time: at 600× the 30 s of
    /// [`GRACE`] are 50 ms, less than an agent's round trip, and every device would lapse on
    /// every return and queue again at the back, so that none reached a slot.
    pub fn with_grace(self, grace: Duration) -> Self {
        Self { grace, ..self }
    }

    /// `at`, or the next window's opening (spread over [`OPENING_SPREAD`] by `jitter`) when `at`
    /// is at or past this window's close.
    pub fn keep_inside(&self, at: Timestamp, jitter: f64) -> Timestamp {
        match self.closes_at {
            Some(close) if at >= close => match self.next_opening {
                Some(open) => open
                    .checked_add(OPENING_SPREAD.mul_f64(jitter.clamp(0.0, 0.999)))
                    .unwrap_or(open),
                // No window after this one: the last moment of this one, when the device is
                // refused once more and then told there is nothing left.
                None => close
                    .checked_sub(SignedDuration::from_secs(1))
                    .unwrap_or(close),
            },
            _ => at,
        }
    }
}

/// The observed slot turnover: a moving average of how long a slot is held (weight
/// [`TURNOVER_WEIGHT`] on the newest), seeded with [`ASSUMED_HOLD`] so the first appointments
/// of a window have a figure before any slot has been freed. `max_downloads` slots each held
/// that long free one every `hold / max_downloads` seconds. It measures the holding, not the
/// frees per second, so slots left idle (a no-show) never make the next appointments later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turnover {
    /// Seconds a slot is held, on average.
    pub hold: f64,
    /// Slots freed so far (the first replaces the assumed hold).
    pub frees: u32,
}

impl Turnover {
    /// The turnover assumed before any slot is freed.
    pub fn assumed() -> Self {
        Self {
            hold: ASSUMED_HOLD.as_secs_f64(),
            frees: 0,
        }
    }

    /// A slot held for `held` was freed (given back, or its lease lapsed). The first one freed
    /// replaces the assumed hold, which may be off by a hundredfold (a small package on a fast
    /// line is held for seconds).
    pub fn freed(&mut self, held: Duration) {
        let held = held.min(LONGEST_HOLD).as_secs_f64();
        if self.frees == 0 {
            self.hold = held;
        } else {
            self.hold += TURNOVER_WEIGHT * (held - self.hold);
        }
        self.frees = self.frees.saturating_add(1);
    }

    /// Whether as many slots have been freed as there are (`slots`): the hold is then measured,
    /// not assumed ([`Queue`] sends no device away for longer than it has been asking until
    /// then).
    pub fn settled(&self, slots: u32) -> bool {
        self.frees >= slots.max(1)
    }

    /// Slots freed per second when all `slots` are busy.
    pub fn rate(&self, slots: u32) -> f64 {
        f64::from(slots.max(1)) / self.hold.max(1.0)
    }
}

/// Whether a waiting device whose appointment was `due` has lapsed at `now` (not come back
/// within `grace`, [`Window::grace`]): its reserved turn passes on, and it queues again at the
/// back.
pub fn lapsed(due: Timestamp, now: Timestamp, grace: Duration) -> bool {
    lapse_cutoff(now, grace).is_some_and(|cutoff| due < cutoff)
}

/// The appointments before which a waiting device has lapsed at `now` ([`lapsed`]): `now` less
/// the grace.
pub fn lapse_cutoff(now: Timestamp, grace: Duration) -> Option<Timestamp> {
    now.checked_sub(grace).ok()
}

/// Whether a waiting device takes one of `free` slots now, with `expected` devices ahead of it
/// due back within [`HEAD_MAX_POLL`] (a free slot is reserved for each) and `held` devices ahead
/// that are not due back yet but were passed [`OVERTAKE_BOUND`] times already (a slot is held
/// for each until it comes or lapses). The other devices ahead, due back later, are passed.
pub fn admits(expected: u64, held: u64, free: u32) -> bool {
    expected.saturating_add(held) < u64::from(free)
}

/// The most an agent adds to its appointment, so that terminals given one instant do not arrive
/// in the same millisecond; well inside [`GRACE`].
pub const AGENT_JITTER: Duration = Duration::from_secs(2);

/// How long an agent told at `server_time` to come back at `come_back_at` waits: the appointment,
/// never earlier, and up to [`AGENT_JITTER`] later (`jitter` in [0, 1)).
pub fn agent_wait(come_back_at: Timestamp, server_time: Timestamp, jitter: f64) -> Duration {
    let until = Duration::try_from(come_back_at.duration_since(server_time)).unwrap_or_default();
    until + AGENT_JITTER.mul_f64(jitter.clamp(0.0, 0.999))
}

/// When a device `position` places behind the head (that many waiting devices arrived before it)
/// should come back, with `free` slots free now (reserved for the devices ahead) and slots freed
/// at `rate` per second. `jitter` in [0, 1) brings it up to 5 % earlier (never later, so that a
/// device keeping its appointment is never late for its turn).
pub fn appointment(
    position: u64,
    free: u32,
    rate: f64,
    now: Timestamp,
    window: &Window,
    jitter: f64,
) -> Timestamp {
    let jitter = jitter.clamp(0.0, 0.999);
    // The slots that must be freed before this device's turn: one for each device ahead of it
    // and one for itself, less the ones free now (reserved for the first of them).
    let needed = (position + 1).saturating_sub(u64::from(free));
    let expected = if rate > 0.0 {
        needed as f64 / rate
    } else {
        f64::INFINITY
    };
    let wait = if expected <= HEAD_POLL_HORIZON.as_secs_f64() {
        HEAD_POLL
    } else if needed <= 1 {
        // The next slot freed is this device's: the queue cannot tell when that is within one
        // hold, so it comes back at least every HEAD_MAX_POLL.
        Duration::try_from_secs_f64(expected * EARLY)
            .unwrap_or(HEAD_MAX_POLL)
            .min(HEAD_MAX_POLL)
    } else {
        // Early rather than late: the device then learns its new place from a fresher
        // turnover, and the error of a long estimate never leaves a slot waiting for it.
        let early = (expected * EARLY).min(expected - HEAD_POLL_HORIZON.as_secs_f64() / 2.0);
        Duration::try_from_secs_f64(early).unwrap_or(MAX_POLL)
    };
    let wait = wait.mul_f64(1.0 - 0.05 * jitter).min(MAX_POLL);
    let at = now.checked_add(wait).unwrap_or(Timestamp::MAX);
    window.keep_inside(at, jitter)
}
