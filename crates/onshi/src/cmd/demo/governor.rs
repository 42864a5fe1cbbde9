//! How fast a headless demo's clock runs. Two-week campaigns should take seconds, but a
//! request's round trip takes real time however fast the clock runs: at 60,000× a millisecond
//! is a simulated minute, and the burst of downloads when a window opens would outrun the
//! machine. So the governor slows the clock while a window is open (or about to open) and
//! powered sites still have packages to fetch, halves the speed again while that backlog
//! stands still, and trims it whenever the driver or the server falls behind.
//!
//! The agents' pace follows (they are reopened with it): the clock never runs faster than the
//! agents think, or they would sleep through their appointments (an automatic restart at
//! 06:30); slower is harmless (they only check in more often).

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use onshi_agent::{Options, Pace};
use onshi_clock::Clock;

/// The driver's step in simulated time. It lives here, below the driver that steps by it,
/// because the governor counts lag and slow-downs in steps too.
pub const TICK: SignedDuration = SignedDuration::from_mins(10);

/// Sets the clock's speed in a headless run: slow while a window is open (or opens within
/// [`Governor::LEAD`]) and powered sites still have packages to fetch, fast otherwise. The slow
/// speed first spreads the window's first half hour, when every waiting device arrives, over
/// enough real time to serve them, and is halved while the backlog stands still.
pub struct Governor {
    clock: Clock,
    fast: f64,
    /// The agents' pace: the clock never runs faster, or agents would sleep through their
    /// appointments (it may run slower: they then just check in more often).
    pace: f64,
    options: Options,
    slow: Option<Slow>,
    /// A backlog that stopped shrinking is left alone until then.
    calm_until: Timestamp,
    /// Simulated time spent slowed down.
    slowed: SignedDuration,
}

struct Slow {
    smallest_backlog: usize,
    /// When (in real time) the backlog last shrank; counted only while distributing.
    shrank: Option<Instant>,
}

impl Governor {
    /// How long before a window opens the clock slows down (agents then compute their wait for
    /// the opening at the slow pace).
    pub const LEAD: SignedDuration = SignedDuration::from_mins(30);
    /// Devices arriving per real second that the demo aims to serve at a window's opening.
    const ARRIVALS_PER_SECOND: f64 = 150.0;
    /// The slowest the clock runs.
    pub const SLOWEST: f64 = 600.0;
    /// Real time a slowed-down backlog may stand still before the clock is slowed further …
    const PATIENCE: Duration = Duration::from_secs(2);
    /// … and at the slowest, before the governor gives up on it.
    const GIVE_UP: Duration = Duration::from_secs(10);

    /// A governor running `clock` at `fast` when nothing needs to be slowed down for; `options`
    /// are the agents' (their pace is set to follow the clock).
    pub fn new(clock: Clock, fast: f64, options: Options) -> Self {
        Self {
            clock,
            fast,
            pace: fast,
            options,
            slow: None,
            calm_until: Timestamp::MIN,
            slowed: SignedDuration::ZERO,
        }
    }

    /// The agents' options at `speed`.
    fn options(&self, speed: f64) -> Options {
        Options {
            pace: Pace {
                speed,
                ..self.options.pace
            },
            ..self.options
        }
    }

    /// Simulated time spent slowed down for downloads.
    pub fn slowed(&self) -> SignedDuration {
        self.slowed
    }

    /// Decides the speed at `t`, when a window is open (`distributing`) or opens within
    /// [`Governor::LEAD`] (`soon`) and powered sites miss `backlog` packages; answers the agents'
    /// new options when their pace changed.
    pub fn decide(
        &mut self,
        t: Timestamp,
        distributing: bool,
        soon: bool,
        backlog: usize,
    ) -> Option<Options> {
        let Some(slow) = &mut self.slow else {
            if !(soon && backlog > 0 && t >= self.calm_until) {
                return None;
            }
            self.slow = Some(Slow {
                smallest_backlog: backlog,
                shrank: None,
            });
            // The opening's arrivals spread over offer::OPENING_SPREAD of simulated time.
            let spread = onshi_core::offer::OPENING_SPREAD.as_secs_f64();
            let speed = Self::ARRIVALS_PER_SECOND * spread / backlog as f64;
            return self.change(t, speed.clamp(Self::SLOWEST, self.fast), backlog);
        };
        self.slowed += TICK;
        let now = Instant::now();
        if !distributing {
            // Waiting for the window to open: no progress to expect yet.
            slow.shrank = None;
        } else if backlog < slow.smallest_backlog || slow.shrank.is_none() {
            slow.smallest_backlog = slow.smallest_backlog.min(backlog);
            slow.shrank = Some(now);
        }
        let idle = slow.shrank.map_or(Duration::ZERO, |at| now - at);
        let speed = if backlog == 0 || !soon {
            self.slow = None;
            self.fast
        } else if idle > Self::PATIENCE && self.pace > Self::SLOWEST {
            // This machine does not keep up at this speed: halve it.
            slow.shrank = Some(now);
            (self.pace / 2.0).max(Self::SLOWEST)
        } else if idle > Self::GIVE_UP {
            // Stuck even at the slowest: those devices will not move; run on.
            self.slow = None;
            self.calm_until = t
                .checked_add(SignedDuration::from_hours(3))
                .unwrap_or(Timestamp::MAX);
            self.fast
        } else {
            return None;
        };
        self.change(t, speed, backlog)
    }

    /// Sets the agents' pace (and the clock) to `speed`; answers their new options.
    fn change(&mut self, t: Timestamp, speed: f64, backlog: usize) -> Option<Options> {
        if speed == self.pace {
            return None;
        }
        self.pace = speed;
        self.set_speed(speed);
        tracing::debug!(at = %t, clock = %self.clock.now(), speed, backlog, "agents' pace changed");
        Some(self.options(speed))
    }

    /// Slows the clock (below the agents' pace) while the driver is `behind` it, or the server
    /// takes `latency` to answer, by more than a few ticks of simulated time, so that this
    /// machine keeps up with simulated time; speeds it up again, up to the pace, once they have
    /// caught up.
    pub fn keep_up(&mut self, behind: SignedDuration, latency: Duration) {
        let speed = self.clock.speed();
        let answers_in = Duration::try_from_secs_f64(latency.as_secs_f64() * speed)
            .ok()
            .and_then(|d| SignedDuration::try_from(d).ok())
            .unwrap_or(SignedDuration::MAX);
        let behind = behind.max(answers_in);
        let want = if behind > TICK * 3 {
            (speed * 0.7).max(Self::SLOWEST.min(self.pace))
        } else if behind < TICK {
            (speed * 1.25).min(self.pace)
        } else {
            speed
        };
        if want != speed {
            tracing::trace!(behind = %behind, from = speed, to = want, "clock speed trimmed");
            self.set_speed(want);
        }
    }

    fn set_speed(&self, speed: f64) {
        if let Err(e) = self.clock.set_speed(speed) {
            tracing::warn!(error = %e, "cannot change the clock's speed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn governor() -> (Governor, Clock) {
        let clock = Clock::simulated(at("2026-01-19T18:00:00+09:00"), 60_000.0).expect("clock");
        (
            Governor::new(clock.clone(), 60_000.0, Options::default()),
            clock,
        )
    }

    #[test]
    fn the_clock_slows_before_a_window_with_packages_to_fetch_and_runs_fast_once_they_are_in() {
        let (mut g, clock) = governor();
        assert!(
            g.decide(at("2026-01-19T19:00:00+09:00"), false, false, 300)
                .is_none(),
            "no window within half an hour"
        );
        let slow = g
            .decide(at("2026-01-19T19:30:00+09:00"), false, true, 300)
            .expect("slows down");
        // 300 devices arriving over the first half hour at 150 a second: 900×.
        assert_eq!(slow.pace.speed, 900.0);
        assert_eq!(clock.speed(), 900.0);
        assert!(
            g.decide(at("2026-01-19T20:10:00+09:00"), true, true, 120)
                .is_none()
        );
        let fast = g
            .decide(at("2026-01-19T20:40:00+09:00"), true, true, 0)
            .expect("back to fast");
        assert_eq!(fast.pace.speed, 60_000.0);
        assert_eq!(clock.speed(), 60_000.0);
        assert_eq!(g.slowed(), TICK * 2);
    }

    #[test]
    fn with_nothing_to_fetch_a_window_changes_nothing() {
        let (mut g, clock) = governor();
        assert!(
            g.decide(at("2026-01-19T20:00:00+09:00"), true, true, 0)
                .is_none()
        );
        assert_eq!(clock.speed(), 60_000.0);
    }

    #[test]
    fn the_clock_is_trimmed_when_the_machine_falls_behind_but_never_runs_ahead_of_the_agents() {
        let (mut g, clock) = governor();
        g.keep_up(TICK * 5, Duration::ZERO);
        assert_eq!(clock.speed(), 42_000.0);
        // A server that takes 50 ms to answer is 35 simulated minutes late at 42,000×.
        g.keep_up(SignedDuration::ZERO, Duration::from_millis(50));
        assert!((clock.speed() - 29_400.0).abs() < 1e-6, "{}", clock.speed());
        for _ in 0..10 {
            g.keep_up(SignedDuration::ZERO, Duration::ZERO);
        }
        assert_eq!(
            clock.speed(),
            60_000.0,
            "up to the agents' pace, not beyond"
        );
    }
}
