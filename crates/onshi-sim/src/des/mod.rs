//! The discrete-event simulation: one event queue, every site and device of the fleet, and the
//! rules of `onshi-core` for every decision (the schedule, the offer at check-in, the deployment
//! state machine, the reception desk, the call centre's hours).
//!
//! Events are compact (16 bytes) in a queue ordered by (time, insertion number), so a run is
//! deterministic for a seed. A device has at most one pending chain of events; cancelling a
//! chain (power off, paused download) bumps the device's epoch and stale events are dropped when
//! they come up. Devices waiting for a download slot do not poll in a loop: they wait in a pool,
//! and a freed slot goes at once to a waiter drawn at random, which then checks in and is
//! answered by `offer::decide` like any other device (what thousands of devices retrying every
//! two minutes amount to, without simulating every retry).

use std::cmp::Ordering;

use onshi_core::deployment::{DeploymentEvent, DeploymentState};
use onshi_core::reception::{TerminalState, run_patient};
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::calendar::{Calendar, SimTime};
use crate::fleet::Fleet;
use crate::report::Hourly;
use crate::scenario::Scenario;

mod devices;
mod queue;
mod sites;
mod summary;
#[cfg(test)]
mod tests;
mod waves;

pub use summary::Outcome;

/// The random stream of a run's own draws (the fleet's are in [`crate::fleet::FLEET_STREAM`]).
const RUN_STREAM: u64 = 1;

/// The version the simulated release brings (devices run an older one).
const TARGET_VERSION: &str = "2.0.0";

/// How far a run has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Simulated hours done.
    pub hour: usize,
    /// Simulated hours in all.
    pub hours: usize,
}

/// Runs `scenario` with `seed`, calling `progress` once per simulated hour.
pub fn run(scenario: &Scenario, seed: u64, progress: &mut dyn FnMut(Progress)) -> Outcome {
    let mut sim = Sim::new(scenario, seed);
    sim.start();
    sim.run(progress);
    sim.finish()
}

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// A device's agent checks in (target: device).
    Poll,
    /// A download completes (target: device).
    DownloadDone,
    /// An install completes (target: device).
    InstallDone,
    /// Staff switch the site's terminal and readers on (target: site).
    SwitchOn,
    /// Closing time: staff leave the site on overnight or switch it off (target: site).
    Closing,
    /// A planned restart of the site's terminal (target: site).
    Restart,
    /// A patient with a My Number card checks in while the terminal waits for a restart.
    Patient,
    /// A night window closes and the schedule stops distributing.
    WindowClose,
}

/// One scheduled event: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// Time in the high 32 bits, insertion number in the low 32: one integer orders both.
    key: u64,
    target: u32,
    epoch: u16,
    kind: Kind,
}

impl Event {
    fn at(&self) -> SimTime {
        (self.key >> 32) as SimTime
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that a `BinaryHeap` pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// No position in a pool.
const NONE: u32 = u32::MAX;

/// The state of one run.
struct Sim<'a> {
    sc: &'a Scenario,
    seed: u64,
    cal: Calendar,
    fleet: Fleet,
    rng: ChaCha8Rng,
    queue: queue::Queue,
    seq: u32,
    now: SimTime,
    /// The version being rolled out.
    target: Version,

    // Per device.
    state: Vec<DeploymentState>,
    epoch: Vec<u16>,
    /// Bytes of the package still to download.
    remaining: Vec<f64>,
    /// When the current download segment started.
    dl_since: Vec<SimTime>,
    /// Position in `active` (running downloads) or `waiters` (waiting for a slot).
    pool_pos: Vec<u32>,
    active: Vec<u32>,
    waiters: Vec<u32>,
    /// The window (its opening, in seconds) of each device's last appointment.
    waited_in: Vec<i64>,

    // Per site.
    on: Vec<bool>,
    not_applied: Vec<u8>,
    not_installed: Vec<u8>,
    met_error: Vec<bool>,

    // Whole fleet.
    slots_used: u32,
    /// The campaign's queue for download slots.
    slot_queue: onshi_core::appointment::Queue,
    /// Check-ins answered with an appointment, and the terminal-nights they fall in.
    waiting_checkins: u64,
    waiting_nights: u64,
    per_slot_bps: f64,
    egress_bps: f64,
    counts: [u32; 7],
    restart_required: u32,
    sites_done: u32,
    sites_by_last_night: u64,
    sites_in_catch_up: u64,
    sites_meeting_errors: u64,
    outside_windows: u64,
    illegal: u64,
    events: u64,
    /// Whether a patient's check-in fails on a terminal waiting for a restart (from the
    /// reception desk of `onshi-core`), with and without each vendor's reader showing 901.
    terminal_fails: bool,
    shows_901: [bool; 5],

    hourly: Hourly,
    /// Rows of `hourly` already closed.
    hours_done: usize,

    /// The campaign's waves and their gates (`[waves]`), if it has them.
    waves: Option<waves::SimWaves>,
    /// A faulty release: terminals that restarted onto it, and those whose self-check failed.
    fault_reached: u64,
    fault_unhealthy: u64,
}

/// The index of a state in [`DeploymentState::ALL`].
fn state_index(s: DeploymentState) -> usize {
    match s {
        DeploymentState::Waiting => 0,
        DeploymentState::Downloading => 1,
        DeploymentState::Downloaded => 2,
        DeploymentState::Installing => 3,
        DeploymentState::Installed => 4,
        DeploymentState::Applied => 5,
        DeploymentState::Failed => 6,
    }
}

fn vendor_index(v: Vendor) -> usize {
    Vendor::ALL.iter().position(|x| *x == v).unwrap_or(0)
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, seed: u64) -> Self {
        let cal = Calendar::new(sc);
        let fleet = Fleet::generate(sc, seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(RUN_STREAM);
        let devices = fleet.devices();
        let sites = fleet.sites();
        // A device on the delta's base downloads the delta; a failed one falls back to the
        // package (`devices::download_done`), as the agent does.
        let remaining = (0..devices)
            .map(|d| {
                let full = match fleet.device_kind(d) {
                    DeviceKind::Terminal => sc.distribution.terminal_package_bytes,
                    DeviceKind::CardReader => sc.distribution.reader_package_bytes,
                };
                if sc.deltas.on_base(seed, d) {
                    full * sc.deltas.ratio
                } else {
                    full
                }
            })
            .collect();
        let not_applied: Vec<u8> = (0..sites)
            .map(|s| fleet.devices_of(s).len() as u8)
            .collect();
        let pending = |v: Vendor| run_patient(v, TerminalState::PendingRestart);
        let shows_901 = Vendor::ALL.map(|v| {
            pending(v)
                .steps
                .iter()
                .any(|step| step.reader.code == Some("901"))
        });
        // The failure is in the terminal application (reception.rs): it fails with every
        // vendor's reader, so it fails at a site with a generic reader too.
        let terminal_fails = Vendor::ALL.iter().all(|v| !pending(*v).confirmed);
        let mut counts = [0; 7];
        counts[state_index(DeploymentState::Waiting)] = devices as u32;
        let hours = cal.hours();
        let waves = waves::SimWaves::new(sc, seed, &fleet, cal.instant(0));
        Sim {
            sc,
            seed,
            fleet,
            rng,
            queue: queue::Queue::new(cal.horizon()),
            seq: 0,
            now: 0,
            target: Version::parse(TARGET_VERSION).expect("a literal version parses"),
            state: vec![DeploymentState::Waiting; devices],
            epoch: vec![0; devices],
            remaining,
            dl_since: vec![0; devices],
            pool_pos: vec![NONE; devices],
            active: Vec::new(),
            waiters: Vec::new(),
            waited_in: vec![0; devices],
            slot_queue: onshi_core::appointment::Queue::new(),
            waiting_checkins: 0,
            waiting_nights: 0,
            on: vec![false; sites],
            not_installed: not_applied.clone(),
            not_applied,
            met_error: vec![false; sites],
            slots_used: 0,
            per_slot_bps: sc.distribution.egress_bps
                / f64::from(sc.distribution.max_concurrent_downloads),
            egress_bps: 0.0,
            counts,
            restart_required: 0,
            sites_done: 0,
            sites_by_last_night: 0,
            sites_in_catch_up: 0,
            sites_meeting_errors: 0,
            outside_windows: 0,
            illegal: 0,
            events: 0,
            terminal_fails,
            shows_901,
            hourly: Hourly::new(hours),
            hours_done: 0,
            cal,
            waves,
            fault_reached: 0,
            fault_unhealthy: 0,
        }
    }

    /// Schedules the first events: every site's morning (or, for always-on sites, every
    /// device's first check-in) and every window closing.
    fn start(&mut self) {
        for w in self.sc.campaign.windows() {
            if self.sc.campaign.is_distributing(w.closes) {
                continue; // the next window or the catch-up phase goes on
            }
            if let Some(t) = self.cal.sim_time(w.closes).filter(|t| *t > 0) {
                self.push(t, Kind::WindowClose, 0, 0);
            }
        }
        let poll = self.sc.distribution.poll_interval.as_secs() as f64;
        for site in 0..self.fleet.sites() {
            if self.fleet.always_on(site) {
                self.on[site] = true;
                for d in self.fleet.devices_of(site) {
                    let at = (poll * self.uniform()) as SimTime;
                    self.push_device(at, Kind::Poll, d);
                }
            } else if let Some((_, at)) = self.cal.next_switch_on(self.fleet.kind(site), 0) {
                self.push(at, Kind::SwitchOn, site, 0);
            }
        }
    }

    fn run(&mut self, progress: &mut dyn FnMut(Progress)) {
        while let Some(ev) = self.queue.pop() {
            let at = ev.at();
            self.close_hours_until(at, progress);
            self.now = at;
            self.events += 1;
            let target = ev.target as usize;
            match ev.kind {
                Kind::Poll | Kind::DownloadDone | Kind::InstallDone
                    if ev.epoch != self.epoch[target] => {}
                Kind::Poll => self.poll(target),
                Kind::DownloadDone => self.download_done(target),
                Kind::InstallDone => self.install_done(target),
                Kind::SwitchOn => self.switch_on(target),
                Kind::Closing => self.closing(target),
                Kind::Restart => self.planned_restart(target),
                Kind::Patient => self.patient(target),
                Kind::WindowClose => self.window_close(),
            }
        }
        let horizon = self.cal.horizon();
        self.close_hours_until(horizon, progress);
    }

    /// Schedules an event, unless it falls past the end of the run.
    fn push(&mut self, at: SimTime, kind: Kind, target: usize, epoch: u16) {
        if at >= self.cal.horizon() {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        self.queue.push(Event {
            key: (u64::from(at) << 32) | u64::from(self.seq),
            target: target as u32,
            epoch,
            kind,
        });
    }

    /// Schedules the next event of a device's chain.
    fn push_device(&mut self, at: SimTime, kind: Kind, device: usize) {
        let epoch = self.epoch[device];
        self.push(at, kind, device, epoch);
    }

    /// Cancels a device's pending chain.
    fn cancel(&mut self, device: usize) {
        self.epoch[device] = self.epoch[device].wrapping_add(1);
    }

    /// A uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        rand::Rng::r#gen(&mut self.rng)
    }

    /// Moves a device through the deployment state machine of `onshi-core`. A refused
    /// transition is counted (it would be a simulator bug) and changes nothing.
    fn transition(&mut self, device: usize, event: &DeploymentEvent) -> bool {
        let kind = self.fleet.device_kind(device);
        let from = self.state[device];
        let Ok(to) = from.apply(kind, event, &self.target) else {
            self.illegal += 1;
            return false;
        };
        self.state[device] = to;
        self.counts[state_index(from)] -= 1;
        self.counts[state_index(to)] += 1;
        self.count_wave(device, from, to);
        if from.restart_required(kind) {
            self.restart_required -= 1;
        }
        if to.restart_required(kind) {
            self.restart_required += 1;
        }
        if to == DeploymentState::Applied && from != DeploymentState::Applied {
            let site = self.fleet.site_of(device);
            self.not_applied[site] -= 1;
            if self.not_applied[site] == 0 {
                self.sites_done += 1;
            }
        }
        true
    }

    /// Closes every hourly row that ends at or before `t`.
    fn close_hours_until(&mut self, t: SimTime, progress: &mut dyn FnMut(Progress)) {
        let hours = self.hourly.len();
        while self.hours_done < hours && (self.hours_done as u64 + 1) * 3600 <= u64::from(t) {
            let h = self.hours_done;
            if self.waves.is_some() {
                self.judge_waves(((h + 1) * 3600) as SimTime, t);
            }
            self.hourly.states.push(self.counts);
            self.hourly
                .restart_required_sites
                .push(self.restart_required);
            self.hourly.sites_done.push(self.sites_done);
            self.hours_done += 1;
            if let Some(next) = self.hourly.downloads_peak.get_mut(h + 1) {
                *next = self.active.len() as u32;
                self.hourly.egress_peak_bps[h + 1] = self.egress_bps;
            }
            progress(Progress {
                hour: self.hours_done,
                hours,
            });
        }
        // A last, shorter hour (a daylight-saving day) closes at the end of the run.
        if t >= self.cal.horizon() && self.hours_done < hours {
            self.hourly.states.push(self.counts);
            self.hourly
                .restart_required_sites
                .push(self.restart_required);
            self.hourly.sites_done.push(self.sites_done);
            self.hours_done += 1;
        }
    }

    /// The hourly row holding `t`, if it is inside the run.
    fn hour_of(&self, t: SimTime) -> Option<usize> {
        let h = (t / 3600) as usize;
        (h < self.hourly.len()).then_some(h)
    }
}
