//! The demo's sites on simulated time: every ten simulated minutes, staff switch terminals off
//! in the evening and on in the morning, restart them by their habit, and patients check in at
//! the reception. Whether a patient with a My Number card meets error 901 is decided by
//! `onshi_core::reception` from the terminal's installed and running versions on disk — the
//! same rule the reception page and `onshi reception` use.
//!
//! In a headless run the driver also tells the [`Governor`] how much is left to fetch, and
//! passes the agents' new pace on when it changes.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use onshi_agent::{Component, StateDir};
use onshi_core::reception::{self, TerminalState};
use onshi_core::schedule::Campaign;
use onshi_core::version::Version;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::governor::{Governor, TICK};
use super::population::{RestartHabit, Site};
use super::site::{Command, SiteTask};

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
            .map_or(SignedDuration::ZERO, Governor::slowed)
    }

    /// Plays every tick up to `now`; `latency` is how long the server took to answer a trivial
    /// request just now (agents act that much later in simulated time).
    pub fn advance(&mut self, now: Timestamp, latency: Duration) {
        if let Some(g) = &mut self.governor {
            let behind = now.duration_since(self.next_tick);
            g.keep_up(behind, latency);
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
            let Some(term) = terminal(&s.dir, &self.target) else {
                return;
            };
            s.terminal_done = term.runs_target;
            (term.state, term.installed_at)
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
            if !self.rng.gen_bool(s.site.card_share().clamp(0.0, 1.0)) {
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
