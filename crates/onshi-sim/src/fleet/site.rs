//! The model's sites one at a time, for what needs sites rather than a simulation: `onshi demo`,
//! its load mode and the benchmark fixture. Each site takes the simulator's own draws (`draw`)
//! and then a prefecture; kinds are dealt in the scenario's proportions, spread out, so that a
//! fleet of 30 sites already holds every kind.

use std::cmp::Reverse;

use jiff::SignedDuration;
use onshi_core::institution::{InstitutionKind, Prefecture};
use onshi_core::vendor::Vendor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{FLEET_STREAM, Habit, draw, flag, pick, staff_restart_delay};
use crate::scenario::Scenario;

/// One site as the model draws it: what it is and what its staff do. The hours, patients and
/// My Number card share of its kind are in [`Scenario::site_kind`].
#[derive(Debug, Clone, PartialEq)]
pub struct SiteModel {
    pub kind: InstitutionKind,
    /// Drawn by the scenario's `prefectures.weights`.
    pub prefecture: Prefecture,
    /// Face-authentication card readers on the terminal, 0 to 3.
    pub readers: u8,
    /// The maker of those readers (a site buys them from one). Drawn for every site, as the
    /// simulator does; a site without readers has no face-authentication maker at all.
    pub vendor: Vendor,
    /// Never switched off.
    pub always_on: bool,
    /// The terminal restarts itself before practice every day
    /// ([`crate::scenario::SiteKind::auto_restart_at`]).
    pub auto_restart: bool,
    /// Staff call the call centre when a patient's check-in fails.
    pub calls: bool,
    /// Staff act on the morning "restart required" e-mail, when the scenario sends it.
    pub acts_on_mail: bool,
    /// What staff do after the install when the terminal does not restart itself.
    pub habit: Habit,
    /// For [`Habit::DaysLater`]: how many days after the install's day.
    pub days_later: u16,
    pub downlink_bps: f64,
    /// How long after they switch the terminal on in the morning staff restart it.
    pub staff_restart_delay: SignedDuration,
    /// One bit per day from the scenario's start: staff leave the terminal on that night.
    nights: Vec<u64>,
    days: usize,
}

impl SiteModel {
    /// Whether staff leave the terminal on through the night that starts on day `day` (0 is
    /// the scenario's `start`). The scenario's `days` nights are drawn; the days before and
    /// after repeat them.
    pub fn night_on(&self, day: i64) -> bool {
        let days = i64::try_from(self.days).unwrap_or(i64::MAX).max(1);
        let d = usize::try_from(day.rem_euclid(days)).unwrap_or(0);
        self.nights
            .get(d / 64)
            .is_some_and(|word| word & (1 << (d % 64)) != 0)
    }
}

/// Site after site of `scenario`'s model with `seed`, without end (take as many as needed).
/// The same scenario and seed give the same sites.
pub fn sites(scenario: &Scenario, seed: u64) -> Sites<'_> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(FLEET_STREAM);
    Sites {
        scenario,
        rng,
        dealer: Dealer::new(scenario.sites.each_ref().map(|k| k.count)),
    }
}

/// The iterator of [`sites`].
#[derive(Debug, Clone)]
pub struct Sites<'a> {
    scenario: &'a Scenario,
    rng: ChaCha8Rng,
    dealer: Dealer,
}

impl Iterator for Sites<'_> {
    type Item = SiteModel;

    fn next(&mut self) -> Option<SiteModel> {
        let sc = self.scenario;
        let params = &sc.sites[self.dealer.next_kind()];
        let days = usize::from(sc.days);
        let d = draw(sc, params, days, days.div_ceil(64).max(1), &mut self.rng);
        let n = pick(&sc.prefectures, self.rng.r#gen());
        let prefecture = u8::try_from(n + 1)
            .ok()
            .and_then(Prefecture::from_number)
            .unwrap_or_else(|| unreachable!("47 weights"));
        Some(SiteModel {
            kind: params.kind,
            prefecture,
            readers: d.readers,
            vendor: d.vendor,
            always_on: d.flags & flag::ALWAYS_ON != 0,
            auto_restart: d.flags & flag::AUTO_RESTART != 0,
            calls: d.flags & flag::CALLS != 0,
            acts_on_mail: d.flags & flag::MAIL_ACTS != 0,
            habit: d.habit,
            days_later: d.days_later,
            downlink_bps: d.downlink_bps,
            staff_restart_delay: SignedDuration::from_secs(i64::from(staff_restart_delay(
                d.jitter,
            ))),
            nights: d.nights,
            days,
        })
    }
}

/// Deals kinds in proportion to the scenario's counts: each site goes to the kind furthest
/// behind its share so far, so after as many sites as the scenario has, each kind has exactly
/// its count, and a small fleet holds the kinds in about the national mix.
#[derive(Debug, Clone)]
struct Dealer {
    counts: [u32; 4],
    dealt: [u64; 4],
}

impl Dealer {
    fn new(counts: [u32; 4]) -> Self {
        Self {
            counts,
            dealt: [0; 4],
        }
    }

    /// The index (in [`InstitutionKind::ALL`] order) of the next site's kind.
    fn next_kind(&mut self) -> usize {
        let total: u64 = self.counts.iter().map(|c| u64::from(*c)).sum();
        let n = self.dealt.iter().sum::<u64>() + 1;
        let behind = |k: usize| {
            i128::from(n) * i128::from(self.counts[k])
                - i128::from(total) * i128::from(self.dealt[k])
        };
        let k = (0..4)
            .filter(|k| self.counts[*k] > 0)
            .max_by_key(|&k| (behind(k), Reverse(k)))
            .unwrap_or(0);
        self.dealt[k] += 1;
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Fleet;

    fn national() -> Scenario {
        Scenario::preset("national-2026-01").expect("the preset")
    }

    #[test]
    fn kinds_are_dealt_in_the_preset_s_proportions() {
        let s = national();
        let counts = s.sites.each_ref().map(|k| k.count);
        // The whole country: exactly the preset's counts.
        let mut dealer = Dealer::new(counts);
        let mut got = [0u32; 4];
        for _ in 0..s.site_count() {
            got[dealer.next_kind()] += 1;
        }
        assert_eq!(got, counts);
        // The counts have 100 in common: every 2,297 sites hold a hundredth of them, spread so
        // that the first 30 already hold a hospital.
        let mut dealer = Dealer::new(counts);
        let first: Vec<usize> = (0..2_297).map(|_| dealer.next_kind()).collect();
        for (k, count) in counts.iter().enumerate() {
            let n = first.iter().filter(|x| **x == k).count();
            assert_eq!(n, usize::try_from(count / 100).expect("small"), "{k}");
            assert!(
                first[..30].contains(&k),
                "kind {k} missing from {:?}",
                &first[..30]
            );
        }
    }

    #[test]
    fn a_kind_without_sites_is_never_dealt() {
        let mut dealer = Dealer::new([0, 3, 0, 1]);
        let kinds: Vec<usize> = (0..8).map(|_| dealer.next_kind()).collect();
        assert_eq!(kinds, [1, 1, 3, 1, 1, 1, 3, 1]);
    }

    #[test]
    fn the_same_seed_gives_the_same_sites_and_another_seed_does_not() {
        let s = national();
        let a: Vec<SiteModel> = sites(&s, 7).take(50).collect();
        assert_eq!(a, sites(&s, 7).take(50).collect::<Vec<_>>());
        assert_ne!(a, sites(&s, 8).take(50).collect::<Vec<_>>());
    }

    #[test]
    fn with_one_kind_the_sites_are_the_simulator_s_fleet() {
        let s = Scenario::parse(
            "[sites.hospital]\ncount = 0\n[sites.clinic]\ncount = 300\n\
             [sites.dental]\ncount = 0\n[sites.pharmacy]\ncount = 0\n",
            crate::scenario::preset_campaign,
        )
        .expect("valid scenario");
        let fleet = Fleet::generate(&s, 5);
        // The prefecture is one more draw per site: the fleet's stream moves on after each.
        let one: Vec<SiteModel> = sites(&s, 5).take(1).collect();
        let site = &one[0];
        assert_eq!(site.kind, fleet.kind(0));
        assert_eq!(usize::from(site.readers) + 1, fleet.devices_of(0).len());
        assert_eq!((site.readers > 0).then_some(site.vendor), fleet.vendor(0));
        assert_eq!(site.always_on, fleet.always_on(0));
        assert_eq!(site.auto_restart, fleet.auto_restart(0));
        assert_eq!(site.habit, fleet.habit(0));
        assert_eq!(site.days_later, fleet.days_later(0));
        assert_eq!(
            site.staff_restart_delay.as_secs(),
            i64::from(fleet.staff_restart_delay(0))
        );
        for day in 0..21 {
            assert_eq!(site.night_on(day), fleet.night_on(0, day as usize), "{day}");
        }
        // Days past the drawn ones repeat them.
        assert_eq!(site.night_on(21), site.night_on(0));
        assert_eq!(site.night_on(-1), site.night_on(20));
    }

    #[test]
    fn sites_follow_the_preset_s_shares() {
        let s = national();
        let all: Vec<SiteModel> = sites(&s, 1).take(20_000).collect();
        let share = |f: &dyn Fn(&SiteModel) -> bool| {
            all.iter().filter(|x| f(x)).count() as f64 / all.len() as f64
        };
        // Expected over the national mix of kinds.
        let expect = |f: &dyn Fn(&crate::scenario::SiteKind) -> f64| {
            s.sites
                .iter()
                .map(|k| f64::from(k.count) * f(k))
                .sum::<f64>()
                / s.site_count() as f64
        };
        let auto = share(&|x| x.auto_restart);
        let want = expect(&|k| k.auto_restart);
        assert!(
            (auto - want).abs() < 0.015,
            "auto-restart {auto}, preset {want}"
        );
        let always = share(&|x| x.always_on);
        let want = expect(&|k| k.always_on);
        assert!(
            (always - want).abs() < 0.015,
            "always on {always}, preset {want}"
        );
        let off = share(&|x| !x.always_on && !x.night_on(1));
        let want = expect(&|k| (1.0 - k.always_on) * (1.0 - k.night_on));
        assert!(
            (off - want).abs() < 0.015,
            "off on a night {off}, preset {want}"
        );
        let panasonic = share(&|x| x.vendor == Vendor::Panasonic);
        assert!((panasonic - s.vendors[0]).abs() < 0.015, "{panasonic}");
        let morning = share(&|x| x.habit == Habit::NextMorning);
        assert!((morning - s.staff.next_morning).abs() < 0.015, "{morning}");
        for x in &all {
            let readers = &s.site_kind(x.kind).readers;
            assert!(readers[usize::from(x.readers)] > 0.0, "{x:?}");
            assert!(x.staff_restart_delay <= SignedDuration::from_mins(25));
        }
        // Prefectures by population: Tokyo (13) has the most sites, and every one has some.
        let mut per = [0u32; 47];
        for x in &all {
            per[usize::from(x.prefecture.number() - 1)] += 1;
        }
        assert!(per.iter().all(|n| *n > 0), "{per:?}");
        assert_eq!(per.iter().max(), Some(&per[12]), "{per:?}");
    }
}
