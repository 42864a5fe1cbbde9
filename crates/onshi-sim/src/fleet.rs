//! The synthetic fleet: every site with its terminal and readers, and what its staff do, drawn
//! once from the scenario and the seed.
//!
//! Struct of arrays, because the national fleet has ~230,000 sites and ~420,000 devices. Each
//! site takes the same number of random draws in the same order whatever the shares are, so two
//! scenarios with the same seed and counts differ only where their parameters differ (raising
//! `auto_restart` from 20 % to 60 % turns 40 % more sites into auto-restart sites, and leaves
//! every site's nights, vendor and downlink as they were).
//!
//! This is the one model of the country's sites: [`sites`] (in `fleet/site.rs`) draws sites one
//! at a time with the same draws (`draw`), plus a prefecture, for `onshi demo`, its load mode
//! and the benchmark fixture.

use onshi_core::institution::InstitutionKind;
use onshi_core::vendor::{DeviceKind, Vendor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Scenario, SiteKind};

mod site;

pub use site::{SiteModel, Sites, sites};

/// What staff do after the install, at a site whose terminal does not restart itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Habit {
    /// Restart before practice the morning after the install.
    NextMorning,
    /// Restart only when a patient's check-in fails.
    OnError,
    /// Restart some days later, whatever happens.
    DaysLater,
}

/// Site flags, one bit each.
mod flag {
    pub const ALWAYS_ON: u8 = 1;
    pub const AUTO_RESTART: u8 = 2;
    pub const CALLS: u8 = 4;
    pub const MAIL_ACTS: u8 = 8;
}

/// The random stream of the fleet (the run's own draws use another).
pub const FLEET_STREAM: u64 = 0;

/// Every site and device of one run.
#[derive(Debug, Clone)]
pub struct Fleet {
    site_kind: Vec<InstitutionKind>,
    site_vendor: Vec<Option<Vendor>>,
    /// The site's terminal; its readers are the devices right after it.
    site_first_device: Vec<u32>,
    site_devices: Vec<u8>,
    site_downlink_bps: Vec<f32>,
    site_flags: Vec<u8>,
    site_habit: Vec<Habit>,
    site_days_later: Vec<u16>,
    /// Per site, one bit per simulated evening: staff leave the terminal on that night.
    night_on: Vec<u64>,
    words_per_site: usize,
    /// Small per-site draws used at run time (minutes of a morning restart), fixed per site.
    site_jitter: Vec<f32>,
    device_site: Vec<u32>,
}

impl Fleet {
    /// Draws the fleet of `scenario` with `seed`.
    pub fn generate(scenario: &Scenario, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(FLEET_STREAM);
        let sites = usize::try_from(scenario.site_count()).unwrap_or(usize::MAX);
        let days = usize::from(scenario.days);
        let words_per_site = days.div_ceil(64).max(1);
        let mut fleet = Fleet {
            site_kind: Vec::with_capacity(sites),
            site_vendor: Vec::with_capacity(sites),
            site_first_device: Vec::with_capacity(sites),
            site_devices: Vec::with_capacity(sites),
            site_downlink_bps: Vec::with_capacity(sites),
            site_flags: Vec::with_capacity(sites),
            site_habit: Vec::with_capacity(sites),
            site_days_later: Vec::with_capacity(sites),
            night_on: Vec::with_capacity(sites * words_per_site),
            words_per_site,
            site_jitter: Vec::with_capacity(sites),
            device_site: Vec::with_capacity(sites * 2),
        };
        for params in &scenario.sites {
            for _ in 0..params.count {
                let site = fleet.site_kind.len() as u32;
                let d = draw(scenario, params, days, words_per_site, &mut rng);
                fleet.site_kind.push(params.kind);
                fleet.site_vendor.push((d.readers > 0).then_some(d.vendor));
                fleet.site_first_device.push(fleet.device_site.len() as u32);
                fleet.site_devices.push(1 + d.readers);
                fleet.site_downlink_bps.push(d.downlink_bps as f32);
                fleet.site_flags.push(d.flags);
                fleet.site_habit.push(d.habit);
                fleet.site_days_later.push(d.days_later);
                fleet.night_on.extend(d.nights);
                fleet.site_jitter.push(d.jitter);
                for _ in 0..=d.readers {
                    fleet.device_site.push(site);
                }
            }
        }
        fleet
    }

    /// How many sites.
    pub fn sites(&self) -> usize {
        self.site_kind.len()
    }

    /// How many devices (terminals and readers).
    pub fn devices(&self) -> usize {
        self.device_site.len()
    }

    pub fn kind(&self, site: usize) -> InstitutionKind {
        self.site_kind[site]
    }

    /// The maker of the site's face-authentication readers; `None` when it has none.
    pub fn vendor(&self, site: usize) -> Option<Vendor> {
        self.site_vendor[site]
    }

    /// The site's devices: its terminal first, then its readers.
    pub fn devices_of(&self, site: usize) -> std::ops::Range<usize> {
        let first = self.site_first_device[site] as usize;
        first..first + usize::from(self.site_devices[site])
    }

    /// The site's terminal.
    pub fn terminal(&self, site: usize) -> usize {
        self.site_first_device[site] as usize
    }

    pub fn site_of(&self, device: usize) -> usize {
        self.device_site[device] as usize
    }

    /// Terminal or card reader.
    pub fn device_kind(&self, device: usize) -> DeviceKind {
        if self.terminal(self.site_of(device)) == device {
            DeviceKind::Terminal
        } else {
            DeviceKind::CardReader
        }
    }

    pub fn downlink_bps(&self, site: usize) -> f64 {
        f64::from(self.site_downlink_bps[site])
    }

    /// Never switched off (24-hour sites, terminals nobody shuts down).
    pub fn always_on(&self, site: usize) -> bool {
        self.site_flags[site] & flag::ALWAYS_ON != 0
    }

    /// The terminal restarts itself before practice every open day.
    pub fn auto_restart(&self, site: usize) -> bool {
        self.site_flags[site] & flag::AUTO_RESTART != 0
    }

    /// Staff call the call centre when a patient's check-in fails.
    pub fn calls(&self, site: usize) -> bool {
        self.site_flags[site] & flag::CALLS != 0
    }

    /// Staff restart before opening when the morning e-mail says a restart is required.
    pub fn acts_on_mail(&self, site: usize) -> bool {
        self.site_flags[site] & flag::MAIL_ACTS != 0
    }

    pub fn habit(&self, site: usize) -> Habit {
        self.site_habit[site]
    }

    /// How many days later a `DaysLater` site restarts.
    pub fn days_later(&self, site: usize) -> u16 {
        self.site_days_later[site]
    }

    /// Whether staff leave the terminal on through the night that starts on day `day`.
    pub fn night_on(&self, site: usize, day: usize) -> bool {
        let w = self.words_per_site;
        day < w * 64 && self.night_on[site * w + day / 64] & (1 << (day % 64)) != 0
    }

    /// How long after arriving in the morning staff restart the terminal, in seconds.
    pub fn staff_restart_delay(&self, site: usize) -> u32 {
        staff_restart_delay(self.site_jitter[site])
    }

    /// How many devices of each kind: (terminals, readers).
    pub fn device_counts(&self) -> (u64, u64) {
        let terminals = self.sites() as u64;
        (terminals, self.devices() as u64 - terminals)
    }
}

/// Staff restart the terminal within this long after they arrive (before opening), in seconds.
const STAFF_RESTART_SPREAD: f64 = 25.0 * 60.0;

/// How long after arriving staff restart, for a site's fixed draw `jitter` in [0, 1).
fn staff_restart_delay(jitter: f32) -> u32 {
    (STAFF_RESTART_SPREAD * f64::from(jitter)) as u32
}

/// What the model draws for one site, in the order it draws it. The simulator's [`Fleet`] and
/// the sites of [`sites`] both come from here.
struct Draw {
    readers: u8,
    /// Drawn for every site, so that the readers' shares change nothing else; a site with no
    /// face-authentication reader has no maker.
    vendor: Vendor,
    flags: u8,
    habit: Habit,
    days_later: u16,
    downlink_bps: f64,
    jitter: f32,
    /// One bit per simulated evening: staff leave the terminal on that night.
    nights: Vec<u64>,
}

/// Draws one site of kind `params` (the same draws in the same order whatever the shares).
fn draw(
    scenario: &Scenario,
    params: &SiteKind,
    days: usize,
    words: usize,
    rng: &mut ChaCha8Rng,
) -> Draw {
    let (lo, hi) = scenario.distribution.site_downlink_bps;
    let staff = &scenario.staff;
    let readers = pick(&params.readers, rng.r#gen());
    let vendor = Vendor::ALL[pick(&scenario.vendors, rng.r#gen())];
    let mut flags = 0;
    if rng.r#gen::<f64>() < params.always_on {
        flags |= flag::ALWAYS_ON;
    }
    if rng.r#gen::<f64>() < params.auto_restart {
        flags |= flag::AUTO_RESTART;
    }
    if rng.r#gen::<f64>() < staff.call_share {
        flags |= flag::CALLS;
    }
    let mail_draw: f64 = rng.r#gen();
    if scenario
        .mail
        .as_ref()
        .is_some_and(|m| mail_draw < m.acts_share)
    {
        flags |= flag::MAIL_ACTS;
    }
    let habit = [Habit::NextMorning, Habit::OnError, Habit::DaysLater][pick(
        &[staff.next_morning, staff.on_error, staff.days_later],
        rng.r#gen(),
    )];
    // "Some days later": at least one day, exponential with the given mean.
    let u: f64 = rng.r#gen();
    let extra = -(1.0 - u).ln() * (staff.days_later_mean_days - 1.0);
    let days_later = (1.0 + extra).round().clamp(1.0, 365.0) as u16;
    let downlink_bps = lo + (hi - lo) * rng.r#gen::<f64>();
    let jitter: f32 = rng.r#gen();
    let mut nights = vec![0u64; words];
    for day in 0..days {
        if rng.r#gen::<f64>() < params.night_on {
            nights[day / 64] |= 1 << (day % 64);
        }
    }
    Draw {
        // At most MAX_READERS (3): the scenario lists at most four shares.
        readers: readers as u8,
        vendor,
        flags,
        habit,
        days_later,
        downlink_bps,
        jitter,
        nights,
    }
}

/// The index chosen by `u` in [0, 1) from shares that sum to 1.
fn pick(shares: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (i, s) in shares.iter().enumerate() {
        acc += s;
        if u < acc {
            return i;
        }
    }
    // Rounding can leave the sum a hair under 1: the last share with any weight takes the rest.
    shares.iter().rposition(|s| *s > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The national fleet, one simulated day (fewer draws: tests run unoptimised).
    fn national() -> Scenario {
        Scenario::parse("days = 1", crate::scenario::preset_campaign).expect("valid scenario")
    }

    /// A hundredth of the country, 21 days.
    fn small() -> Scenario {
        Scenario::parse(
            "[sites.hospital]\ncount = 82\n[sites.clinic]\ncount = 897\n\
             [sites.dental]\ncount = 703\n[sites.pharmacy]\ncount = 615\n",
            crate::scenario::preset_campaign,
        )
        .expect("valid scenario")
    }

    #[test]
    fn the_national_fleet_has_the_brief_s_numbers() {
        let s = national();
        let f = Fleet::generate(&s, 1);
        assert_eq!(f.sites(), 8_200 + 89_700 + 70_300 + 61_500);
        let (terminals, readers) = f.device_counts();
        assert_eq!(terminals, 229_700);
        // ≈ 420,000 devices: every terminal, 1–3 readers per hospital, most other sites one.
        let devices = terminals + readers;
        assert!((400_000..440_000).contains(&devices), "{devices}");
        let hospital_readers: Vec<usize> = (0..8_200).map(|s| f.devices_of(s).len() - 1).collect();
        assert!(hospital_readers.iter().all(|r| (1..=3).contains(r)));
        for v in Vendor::ALL {
            let n = (0..f.sites()).filter(|s| f.vendor(*s) == Some(v)).count();
            assert!(n > 20_000, "{v}: {n}");
        }
        // One night bit per simulated day.
        assert_eq!(f.words_per_site, 1);
        for kind in InstitutionKind::ALL {
            assert!((0..f.sites()).any(|site| f.kind(site) == kind));
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_fleet_and_another_seed_does_not() {
        let s = small();
        let a = Fleet::generate(&s, 7);
        let b = Fleet::generate(&s, 7);
        let c = Fleet::generate(&s, 8);
        assert_eq!(a.device_site, b.device_site);
        assert_eq!(a.night_on, b.night_on);
        assert_ne!(a.night_on, c.night_on);
    }

    #[test]
    fn raising_a_share_changes_only_that_attribute() {
        let low = small();
        let mut high = small();
        for k in &mut high.sites {
            k.auto_restart = 0.6;
        }
        let a = Fleet::generate(&low, 3);
        let b = Fleet::generate(&high, 3);
        assert_eq!(a.night_on, b.night_on);
        assert_eq!(a.site_vendor, b.site_vendor);
        let auto = |f: &Fleet| (0..f.sites()).filter(|s| f.auto_restart(*s)).count();
        assert!(auto(&b) > auto(&a) * 2);
        assert!((0..a.sites()).all(|s| !a.auto_restart(s) || b.auto_restart(s)));
    }

    #[test]
    fn pick_follows_the_shares() {
        assert_eq!(pick(&[0.2, 0.8], 0.1), 0);
        assert_eq!(pick(&[0.2, 0.8], 0.2), 1);
        assert_eq!(pick(&[0.0, 0.3, 0.4, 0.3], 0.0), 1);
        assert_eq!(pick(&[0.5, 0.5, 0.0], 0.999_999_999_999), 1);
    }
}
