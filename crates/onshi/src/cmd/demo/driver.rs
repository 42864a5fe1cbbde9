//! The demo's sites on simulated time: every ten simulated minutes, staff switch terminals off
//! in the evening and on in the morning, restart them by their habit, and patients check in at
//! the reception. Whether a patient with a My Number card meets error 901 is decided by
//! `onshi_core::reception` from the terminal's installed and running versions on disk — the
//! same rule the reception page and `onshi reception` use.
//!
//! A headless run also has a [`Governor`]: it slows the clock while a window is open and sites
//! still have packages to fetch, so that the burst of downloads at 20:00 is served in real time
//! that the machine has, and runs fast through the rest of the day.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use onshi_agent::{Component, Options, Pace, StateDir};
use onshi_clock::Clock;
use onshi_core::reception::{self, TerminalState};
use onshi_core::schedule::Campaign;
use onshi_core::version::Version;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::population::{CARD_SHARE, RestartHabit, Site};
use super::site::{Command, SiteTask};

/// The driver's step in simulated time.
pub const TICK: SignedDuration = SignedDuration::from_mins(10);

/// What happened at the sites, counted by the driver.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Patients who came to a reception.
    pub patients: u64,
    /// Of those, patients who used their My Number card.
    pub card_patients: u64,
    /// Card patients whose check-in ended on error 901 (terminal not restarted).
    pub met_901: u64,
    /// Restarts staff did (not counting automatic restarts and power cycles).
    pub staff_restarts: u64,
    /// Evenings on which staff switched a terminal off.
    pub switch_offs: u64,
}

/// One site as the driver sees it.
struct SiteState {
    site: Site,
    dir: StateDir,
    /// The terminal and each card reader.
    components: Vec<Component>,
    task: SiteTask,
    powered: bool,
    /// When the terminal was last switched on or off (the start of the demo counts as on).
    since: Timestamp,
    next_evening: Timestamp,
    power_on_at: Option<Timestamp>,
    /// Powered on through at least one whole night window.
    kept_on: bool,
    met_901: bool,
    /// Every component has the release installed (it never goes back): nothing left to fetch.
    fetched: bool,
    /// The terminal runs the release: no restart pending any more, nothing left to read.
    terminal_done: bool,
}

/// The sites and the simulated day.
pub struct Driver {
    schedule: Campaign,
    /// The release's version: a component below it still has a package to fetch.
    target: Version,
    governor: Option<Governor>,
    from: Timestamp,
    next_tick: Timestamp,
    sites: Vec<SiteState>,
    rng: StdRng,
    pub tally: Tally,
}

/// A site at the end of the run.
pub struct SiteOutcome {
    pub code: String,
    pub devices: u64,
    pub kept_on: bool,
    pub met_901: bool,
    pub agent_error: Option<String>,
}

impl Driver {
    /// Every site starts powered on at `from`. With a governor, the clock's speed follows the
    /// work to do (headless); without, it stays as set (live).
    pub fn new(
        schedule: Campaign,
        target: Version,
        governor: Option<Governor>,
        from: Timestamp,
        seed: u64,
        sites: Vec<(Site, StateDir, SiteTask)>,
    ) -> Self {
        let sites = sites
            .into_iter()
            .map(|(site, dir, task)| SiteState {
                next_evening: site.next_evening(from),
                components: dir
                    .load_identity()
                    .map(|identity| dir.components(&identity))
                    .unwrap_or_else(|_| vec![Component::Terminal]),
                site,
                dir,
                task,
                powered: true,
                since: from,
                power_on_at: None,
                kept_on: false,
                met_901: false,
                fetched: false,
                terminal_done: false,
            })
            .collect();
        Self {
            schedule,
            target,
            governor,
            from,
            next_tick: from.checked_add(TICK).unwrap_or(from),
            sites,
            rng: StdRng::seed_from_u64(seed ^ 0x5245_4345_5054_494f),
            tally: Tally::default(),
        }
    }

    /// Simulated time run slowed down by the governor.
    pub fn slowed(&self) -> SignedDuration {
        self.governor
            .as_ref()
            .map_or(SignedDuration::ZERO, |g| g.slowed)
    }

    /// Plays every tick up to `now`; `latency` is how long the server took to answer a trivial
    /// request just now (agents act that much later in simulated time).
    pub fn advance(&mut self, now: Timestamp, latency: Duration) {
        if let Some(g) = &mut self.governor {
            let behind = now.duration_since(self.next_tick);
            let answers_in = SignedDuration::try_from(latency.mul_f64(g.clock.speed()))
                .unwrap_or(SignedDuration::MAX);
            g.keep_up(behind.max(answers_in));
        }
        while self.next_tick <= now {
            let t = self.next_tick;
            self.tick(t);
            self.next_tick = t.checked_add(TICK).unwrap_or(Timestamp::MAX);
        }
    }

    /// Stops every site's agent; answers what became of each site.
    pub async fn stop(mut self) -> Vec<SiteOutcome> {
        for s in &mut self.sites {
            s.task.close();
        }
        let mut out = Vec::with_capacity(self.sites.len());
        for s in self.sites {
            let agent_error = s.task.join().await;
            out.push(SiteOutcome {
                code: s.site.code.to_string(),
                devices: 1 + u64::from(s.site.readers),
                kept_on: s.kept_on,
                met_901: s.met_901,
                agent_error,
            });
        }
        out
    }

    /// The slot `(t − TICK, t]`.
    fn tick(&mut self, t: Timestamp) {
        let slot_start = t.checked_sub(TICK).unwrap_or(t);
        self.note_windows_closed(slot_start, t);
        for i in 0..self.sites.len() {
            self.power(i, t);
            if self.sites[i].powered {
                self.staff_and_patients(i, slot_start, t);
            }
        }
        self.govern(t);
    }

    /// Lets the governor set the clock's speed, and every agent follow it.
    fn govern(&mut self, t: Timestamp) {
        let Some(governor) = &mut self.governor else {
            return;
        };
        let soon = t
            .checked_add(Governor::LEAD)
            .is_ok_and(|later| self.schedule.is_distributing(later))
            || self.schedule.is_distributing(t);
        // Only worth reading the disks when a window is open or about to open.
        let mut backlog = 0;
        if soon {
            for s in self.sites.iter_mut().filter(|s| s.powered && !s.fetched) {
                let missing = s
                    .components
                    .iter()
                    .filter(|c| s.dir.installed(c).is_ok_and(|v| v < self.target))
                    .count();
                s.fetched = missing == 0;
                backlog += missing;
            }
        }
        let distributing = self.schedule.is_distributing(t);
        if let Some(options) = governor.decide(t, distributing, soon, backlog) {
            for s in &self.sites {
                s.task.send(Command::Pace(options));
            }
        }
    }

    /// A night window that closed in this slot: the sites that were on through all of it.
    fn note_windows_closed(&mut self, slot_start: Timestamp, t: Timestamp) {
        for w in self.schedule.windows() {
            if slot_start < w.closes && w.closes <= t && w.opens >= self.from {
                for s in &mut self.sites {
                    if s.powered && s.since <= w.opens {
                        s.kept_on = true;
                    }
                }
            }
        }
    }

    /// Staff switch the terminal off in the evening (on the nights they do) and on in the
    /// morning of their next working day.
    fn power(&mut self, i: usize, t: Timestamp) {
        let s = &mut self.sites[i];
        if !s.powered {
            if let Some(on) = s.power_on_at.filter(|on| *on <= t) {
                s.task.send(Command::PowerOn);
                s.powered = true;
                s.since = on;
                s.power_on_at = None;
                s.next_evening = s.site.next_evening(on);
            }
            return;
        }
        if s.next_evening > t {
            return;
        }
        let evening = s.next_evening;
        if s.site.powers_off(onshi_core::jst::civil(evening).date()) {
            s.task.send(Command::PowerOff);
            s.powered = false;
            s.since = evening;
            s.power_on_at = Some(s.site.power_on_after(evening));
            self.tally.switch_offs += 1;
        }
        let after = evening
            .checked_add(SignedDuration::from_secs(1))
            .unwrap_or(evening);
        s.next_evening = s.site.next_evening(after);
    }

    /// A restart by the staff's habit, then this slot's patients at the reception.
    fn staff_and_patients(&mut self, i: usize, slot_start: Timestamp, t: Timestamp) {
        let s = &mut self.sites[i];
        let (state, installed_at) = if s.terminal_done {
            (TerminalState::UpToDate, None)
        } else {
            let Some(t) = terminal(&s.dir, &self.target) else {
                return;
            };
            s.terminal_done = t.runs_target;
            (t.state, t.installed_at)
        };
        if state == TerminalState::PendingRestart
            && !s.task.restarting()
            && s.site
                .staff_restart_due(installed_at.unwrap_or(t))
                .is_some_and(|due| due <= t)
        {
            s.task.send(Command::Restart);
            self.tally.staff_restarts += 1;
        }
        if !s.site.is_open(slot_start) {
            return;
        }
        let expected = s.site.patients_per_hour() * TICK.as_secs_f64() / 3600.0;
        for _ in 0..poisson(&mut self.rng, expected) {
            self.tally.patients += 1;
            if !self.rng.gen_bool(CARD_SHARE) {
                continue;
            }
            self.tally.card_patients += 1;
            if s.task.restarting() {
                // Staff are restarting the terminal; the patient waits and then succeeds.
                continue;
            }
            let trace = reception::run_patient(s.site.vendor, state);
            if trace
                .steps
                .iter()
                .any(|step| step.reader.code == Some("901"))
            {
                tracing::debug!(site = %s.site.code, habit = ?s.site.habit, at = %slot_start, "a patient met error 901");
                self.tally.met_901 += 1;
                s.met_901 = true;
                if s.site.habit == RestartHabit::OnFirstError {
                    s.task.send(Command::Restart);
                    self.tally.staff_restarts += 1;
                }
            }
        }
    }
}

/// Sets the clock's speed in a headless run: slow while a window is open (or opens within
/// [`Governor::LEAD`]) and powered sites still have packages to fetch, fast otherwise. The slow
/// speed spreads the window's first half hour, when every waiting device arrives, over enough
/// real time for this machine to serve them; it is chosen once per spell from the backlog.
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
    pub slowed: SignedDuration,
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
    pub fn options(&self, speed: f64) -> Options {
        Options {
            pace: Pace {
                speed,
                ..self.options.pace
            },
            ..self.options
        }
    }

    /// Decides the speed at `t`; answers the agents' new options when it changed.
    fn decide(
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

    /// Slows the clock (below the agents' pace) while the driver, or the server's answers, lag
    /// behind it by more than a few ticks of simulated time, so that this machine keeps up with
    /// simulated time; speeds it up again, up to the pace, once they have caught up.
    fn keep_up(&mut self, behind: SignedDuration) {
        let speed = self.clock.speed();
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

/// The terminal as the agent left it on disk.
struct Terminal {
    /// Up to date, or a newer version installed and a restart pending.
    state: TerminalState,
    /// When the pending version finished installing.
    installed_at: Option<Timestamp>,
    /// It runs the release already (nothing can change any more).
    runs_target: bool,
}

fn terminal(dir: &StateDir, target: &Version) -> Option<Terminal> {
    let installed = dir.installed(&Component::Terminal).ok()?;
    let running = dir.running().ok()?;
    let state = TerminalState::from_versions(&running, &installed);
    let installed_at = match state {
        TerminalState::PendingRestart => dir
            .slot_info(&Component::Terminal, &installed)
            .and_then(|i| i.installed_at),
        TerminalState::UpToDate => None,
    };
    Some(Terminal {
        state,
        installed_at,
        runs_target: running >= *target,
    })
}

/// A Poisson-distributed count with mean `lambda` (Knuth's method; the means here are small).
fn poisson(rng: &mut StdRng, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.r#gen();
    while p > limit && k < 1000 {
        k += 1;
        p *= rng.r#gen::<f64>();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_counts_have_the_asked_mean() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 20_000;
        let total: u32 = (0..n).map(|_| poisson(&mut rng, 3.0)).sum();
        let mean = f64::from(total) / f64::from(n);
        assert!((2.9..3.1).contains(&mean), "{mean}");
    }
}
