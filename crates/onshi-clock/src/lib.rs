//! The one clock of onshi. Every "what time is it?" in the server, the agent and the demo goes
//! through [`Clock`], so a whole campaign can run on simulated time: a start instant and a speed
//! factor, and (for tests and the demo) an instant the clock can be set to.
//!
//! Must never: be bypassed by a direct `Timestamp::now()` in code that makes a time decision.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A shareable clock: real time, or simulated time running at `speed` × real time from `start`.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    Real,
    Simulated(Mutex<Sim>),
}

#[derive(Debug)]
struct Sim {
    /// The simulated instant at `anchor`.
    start: Timestamp,
    anchor: Instant,
    speed: f64,
}

/// Why a simulated clock cannot be set up or changed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockError {
    /// The speed factor is not a positive finite number.
    BadSpeed(f64),
    /// The clock runs on real time and cannot be set.
    NotSimulated,
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSpeed(s) => write!(f, "clock speed {s} must be a positive number"),
            Self::NotSimulated => f.write_str("the clock runs on real time and cannot be set"),
        }
    }
}

impl std::error::Error for ClockError {}

impl Clock {
    /// Real time.
    pub fn real() -> Self {
        Self {
            inner: Arc::new(Inner::Real),
        }
    }

    /// Simulated time starting at `start`, advancing `speed` simulated seconds per real second.
    /// A speed of 0 is not allowed (use a large start and [`Clock::set`] to stand still).
    pub fn simulated(start: Timestamp, speed: f64) -> Result<Self, ClockError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(ClockError::BadSpeed(speed));
        }
        Ok(Self {
            inner: Arc::new(Inner::Simulated(Mutex::new(Sim {
                start,
                anchor: Instant::now(),
                speed,
            }))),
        })
    }

    /// The current instant.
    pub fn now(&self) -> Timestamp {
        match &*self.inner {
            Inner::Real => Timestamp::now(),
            Inner::Simulated(sim) => {
                let sim = sim.lock().unwrap_or_else(|e| e.into_inner());
                sim.at(Instant::now())
            }
        }
    }

    /// Whether the clock is simulated (and so can be set).
    pub fn is_simulated(&self) -> bool {
        matches!(&*self.inner, Inner::Simulated(_))
    }

    /// Jumps a simulated clock to `to`; it keeps running at its speed from there.
    pub fn set(&self, to: Timestamp) -> Result<(), ClockError> {
        match &*self.inner {
            Inner::Real => Err(ClockError::NotSimulated),
            Inner::Simulated(sim) => {
                let mut sim = sim.lock().unwrap_or_else(|e| e.into_inner());
                sim.start = to;
                sim.anchor = Instant::now();
                Ok(())
            }
        }
    }

    /// Changes a simulated clock's speed from now on; the instant does not jump. The demo sets
    /// its fleet up at real speed, then lets the campaign run fast.
    pub fn set_speed(&self, speed: f64) -> Result<(), ClockError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(ClockError::BadSpeed(speed));
        }
        match &*self.inner {
            Inner::Real => Err(ClockError::NotSimulated),
            Inner::Simulated(sim) => {
                let mut sim = sim.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                sim.start = sim.at(now);
                sim.anchor = now;
                sim.speed = speed;
                Ok(())
            }
        }
    }

    /// The speed factor (1 for real time).
    pub fn speed(&self) -> f64 {
        match &*self.inner {
            Inner::Real => 1.0,
            Inner::Simulated(sim) => sim.lock().unwrap_or_else(|e| e.into_inner()).speed,
        }
    }

    /// How long to wait in real time for `simulated` to pass on this clock.
    pub fn real_duration(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed())
    }

    /// A span of this clock's time that is `span`, and never less than `real` of real time:
    /// see [`at_least_real`].
    pub fn span_at_least_real(&self, span: Duration, real: Duration) -> Duration {
        at_least_real(span, real, self.speed())
    }
}

/// `span` of clock time, lengthened on a clock running at `speed` so that it lasts at least
/// `real` of real time. A hold on shared work (a download slot, a claimed mail) measured in clock
/// time would otherwise lapse on a fast simulated clock while its holder is still at work. On
/// absurd speeds it saturates at `Duration::MAX`.
pub fn at_least_real(span: Duration, real: Duration, speed: f64) -> Duration {
    let floor = Duration::try_from_secs_f64(real.as_secs_f64() * speed).unwrap_or(if speed > 1.0 {
        Duration::MAX
    } else {
        span
    });
    span.max(floor)
}

impl Sim {
    fn at(&self, now: Instant) -> Timestamp {
        let real = now.saturating_duration_since(self.anchor);
        let simulated = real.mul_f64(self.speed);
        let simulated = SignedDuration::try_from(simulated).unwrap_or(SignedDuration::MAX);
        self.start.checked_add(simulated).unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_lasts_at_least_its_real_floor_on_a_fast_clock() {
        let (span, real) = (Duration::from_secs(600), Duration::from_secs(60));
        assert_eq!(at_least_real(span, real, 1.0), span);
        assert_eq!(at_least_real(span, real, 10.0), span);
        assert_eq!(at_least_real(span, real, 60.0), Duration::from_secs(3600));
        assert_eq!(at_least_real(span, real, 0.5), span);
        assert_eq!(at_least_real(span, real, 1e300), Duration::MAX);
        let clock = Clock::simulated(ts("2026-01-19T11:00:00Z"), 600.0).expect("clock");
        assert_eq!(
            clock.span_at_least_real(span, real),
            Duration::from_secs(36_000)
        );
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid instant")
    }

    #[test]
    fn simulated_clock_runs_at_its_speed_from_the_start() {
        let sim = Sim {
            start: ts("2026-01-19T10:59:00Z"),
            anchor: Instant::now(),
            speed: 600.0,
        };
        let later = sim.anchor + Duration::from_millis(100);
        assert_eq!(sim.at(later), ts("2026-01-19T11:00:00Z"));
    }

    #[test]
    fn a_simulated_clock_can_be_set_and_a_real_one_cannot() {
        let clock = Clock::simulated(ts("2026-01-19T10:00:00Z"), 1.0).expect("valid speed");
        clock.set(ts("2026-01-31T00:00:00Z")).expect("simulated");
        assert!(clock.now() >= ts("2026-01-31T00:00:00Z"));
        assert!(clock.now() < ts("2026-01-31T00:01:00Z"));
        assert_eq!(
            Clock::real().set(ts("2026-01-31T00:00:00Z")),
            Err(ClockError::NotSimulated)
        );
    }

    #[test]
    fn a_new_speed_applies_from_now_without_a_jump() {
        let clock = Clock::simulated(ts("2026-01-19T09:00:00Z"), 1.0).expect("valid speed");
        let before = clock.now();
        clock.set_speed(3600.0).expect("simulated");
        assert_eq!(clock.speed(), 3600.0);
        let after = clock.now();
        assert!(after >= before && after < ts("2026-01-19T09:01:00Z"));
        assert_eq!(
            clock.set_speed(0.0),
            Err(ClockError::BadSpeed(0.0)),
            "a stopped clock is refused"
        );
        assert_eq!(Clock::real().set_speed(2.0), Err(ClockError::NotSimulated));
    }

    #[test]
    fn speed_must_be_positive() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Clock::simulated(Timestamp::UNIX_EPOCH, bad).is_err());
        }
        let clock = Clock::simulated(Timestamp::UNIX_EPOCH, 600.0).expect("valid");
        assert_eq!(
            clock.real_duration(Duration::from_secs(600)),
            Duration::from_secs(1)
        );
    }
}
