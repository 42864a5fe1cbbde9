//! The demo's sites: who they are (kind, prefecture, card readers and their vendor, automatic
//! restart) and how their staff behave (opening hours, patients per hour, switching the terminal
//! off at night, when they restart it after an install). Seeded: the same `--seed` gives the same
//! sites with the same habits.

use std::fmt::Write as _;

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, Timestamp};
use onshi_core::institution::{InstitutionCode, InstitutionKind};
use onshi_core::vendor::Vendor;
use onshi_core::{auto_restart, holidays, jst};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fleet;

/// Share of sites that set a daily automatic restart (日々の診療等の開始前に自動で再起動).
const AUTO_RESTART_SHARE: f64 = 0.30;
/// Share of sites whose staff switch the terminal off every evening.
const ALWAYS_OFF_SHARE: f64 = 0.05;
/// The chance that any other site switches it off on a given evening; with the sites above,
/// about 15 % of terminals are off on a given night.
const SOMETIMES_OFF_RATE: f64 = 0.105;
/// Share of patients who use their My Number card (マイナ保険証) at the reception.
pub const CARD_SHARE: f64 = 0.8;

/// All the sites of one demo.
#[derive(Debug, Clone)]
pub struct Population {
    pub sites: Vec<Site>,
}

/// One institution with its terminal, its readers and its staff's habits.
#[derive(Debug, Clone)]
pub struct Site {
    pub code: InstitutionCode,
    pub name: String,
    pub kind: InstitutionKind,
    pub email: String,
    /// The maker of the site's card readers (a site buys its readers from one vendor).
    pub vendor: Vendor,
    /// How many card readers hang off the terminal: up to 3 at a hospital, otherwise 1.
    pub readers: u8,
    pub habit: RestartHabit,
    /// The chance that staff switch the terminal off on an evening the site was open.
    night_off: f64,
    /// When staff switch the terminal off in the evening (if they do) …
    pub evening: Time,
    /// … and on again in the morning of the next day the site opens.
    pub morning: Time,
    /// Mixed into the per-night decisions.
    seed: u64,
}

/// When a terminal with an installed update gets restarted (the notice: restart it the next
/// morning after 05:00, unless it restarts itself before practice starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartHabit {
    /// The site set a daily automatic restart; the agent restarts the terminal at this time.
    Automatic(Time),
    /// Staff restart it the next morning they come in, before opening (about 60 %).
    NextMorning(Time),
    /// Staff restart it when the first patient meets the error (about 30 %).
    OnFirstError,
    /// Staff get round to it days later (about 10 %).
    DaysLater { days: u8, at: Time },
}

/// Opening hours and patients of a kind of site.
struct Hours {
    opens: Time,
    closes: Time,
    saturday_closes: Time,
    patients_per_hour: f64,
}

fn hours(kind: InstitutionKind) -> Hours {
    let t = |h, m| Time::constant(h, m, 0, 0);
    match kind {
        InstitutionKind::Hospital => Hours {
            opens: t(8, 30),
            closes: t(17, 0),
            saturday_closes: t(12, 0),
            patients_per_hour: 20.0,
        },
        InstitutionKind::Clinic => Hours {
            opens: t(9, 0),
            closes: t(18, 0),
            saturday_closes: t(12, 0),
            patients_per_hour: 4.0,
        },
        InstitutionKind::Dental => Hours {
            opens: t(9, 0),
            closes: t(18, 0),
            saturday_closes: t(13, 0),
            patients_per_hour: 3.0,
        },
        InstitutionKind::Pharmacy => Hours {
            opens: t(9, 0),
            closes: t(19, 0),
            saturday_closes: t(13, 0),
            patients_per_hour: 6.0,
        },
    }
}

impl Population {
    /// `n` sites from `seed`: kinds in the national mix, prefectures by population, a fifth of
    /// readers from each vendor, habits in the shares above.
    pub fn generate(n: u32, seed: u64) -> anyhow::Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut codes = fleet::Codes::default();
        let mut sites = Vec::with_capacity(usize::try_from(n)?);
        for index in 0..n {
            let kind = fleet::kind_at(index);
            let prefecture = fleet::prefecture_by_population(rng.r#gen());
            let code = codes
                .next(prefecture, kind)
                .ok_or_else(|| anyhow::anyhow!("no 医療機関コード left for site {index}"))?;
            let h = hours(kind);
            let vendor = Vendor::ALL[rng.gen_range(0..Vendor::ALL.len())];
            let readers = if kind == InstitutionKind::Hospital {
                rng.gen_range(1..=3)
            } else {
                1
            };
            let evening =
                add_minutes(h.closes, 5 * rng.gen_range(3..=12)).min(Time::constant(19, 55, 0, 0));
            let morning = add_minutes(h.opens, -5 * rng.gen_range(4..=12));
            let habit = if rng.gen_bool(AUTO_RESTART_SHARE) {
                RestartHabit::Automatic(add_minutes(
                    Time::constant(6, 0, 0, 0),
                    15 * rng.gen_range(0..=10),
                ))
            } else {
                let u: f64 = rng.r#gen();
                if u < 0.6 {
                    RestartHabit::NextMorning(add_minutes(morning, 5 * rng.gen_range(1..=3)))
                } else if u < 0.9 {
                    RestartHabit::OnFirstError
                } else {
                    RestartHabit::DaysLater {
                        days: rng.gen_range(2..=4),
                        at: add_minutes(Time::constant(12, 0, 0, 0), 15 * rng.gen_range(0..=6)),
                    }
                }
            };
            let night_off = if rng.gen_bool(ALWAYS_OFF_SHARE) {
                1.0
            } else {
                SOMETIMES_OFF_RATE
            };
            sites.push(Site {
                code,
                name: fleet::name(kind, index),
                kind,
                email: fleet::email(index),
                vendor,
                readers,
                habit,
                night_off,
                evening,
                morning,
                seed: rng.r#gen(),
            });
        }
        Ok(Self { sites })
    }

    /// The institutions as the operator's CSV import takes them
    /// (`code,name,kind,prefecture,email,auto_restart`).
    pub fn csv(&self) -> String {
        let mut out = String::from("code,name,kind,prefecture,email,auto_restart\n");
        for s in &self.sites {
            let auto = match s.habit {
                RestartHabit::Automatic(at) => at.strftime("%H:%M").to_string(),
                _ => String::new(),
            };
            // Synthetic names and addresses hold no comma, quote or line break: no quoting.
            let _ = writeln!(
                out,
                "{},{},{},{},{},{auto}",
                s.code,
                s.name,
                s.kind.slug(),
                s.code.prefecture().number(),
                s.email
            );
        }
        out
    }

    /// How many card readers all sites have.
    pub fn readers(&self) -> usize {
        self.sites.iter().map(|s| usize::from(s.readers)).sum()
    }
}

impl Site {
    /// The terminal's serial number.
    pub fn terminal_serial(&self) -> String {
        format!("TERM-{}", self.code)
    }

    /// The card readers' vendors and serial numbers.
    pub fn reader_serials(&self) -> Vec<(Vendor, String)> {
        (1..=self.readers)
            .map(|n| {
                let maker = self.vendor.slug().to_uppercase();
                (self.vendor, format!("{maker}-{}-{n}", self.code))
            })
            .collect()
    }

    /// Whether the site sees patients on `date`: Monday to Saturday, not on national holidays.
    pub fn opens_on(&self, date: Date) -> bool {
        date.weekday() != Weekday::Sunday && !holidays::is_holiday(date)
    }

    /// Whether the reception is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let now = jst::civil(at);
        if !self.opens_on(now.date()) {
            return false;
        }
        let h = hours(self.kind);
        let closes = if now.date().weekday() == Weekday::Saturday {
            h.saturday_closes
        } else {
            h.closes
        };
        h.opens <= now.time() && now.time() < closes
    }

    /// Patients arriving per hour while open.
    pub fn patients_per_hour(&self) -> f64 {
        hours(self.kind).patients_per_hour
    }

    /// Whether staff switch the terminal off on the evening of `date` (a fixed answer per site
    /// and date, so a run is repeatable).
    pub fn powers_off(&self, date: Date) -> bool {
        let day = i64::from(date.year()) * 400 + i64::from(date.day_of_year());
        let h = splitmix64(self.seed ^ (day as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        u < self.night_off
    }

    /// The first evening switch-off moment at or after `at`, on a day the site was open.
    pub fn next_evening(&self, at: Timestamp) -> Timestamp {
        let mut date = jst::civil(at).date();
        for _ in 0..400 {
            let t = instant(date, self.evening).unwrap_or(at);
            if t >= at && self.opens_on(date) {
                return t;
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        Timestamp::MAX
    }

    /// The first moment after `after`, at time of day `at` (never before 05:00), on a day the
    /// site opens: when staff come in.
    pub fn next_workday_at(&self, after: Timestamp, at: Time) -> Timestamp {
        let mut t = auto_restart::next_restart(after, at);
        for _ in 0..400 {
            if self.opens_on(jst::civil(t).date()) {
                return t;
            }
            t = auto_restart::next_restart(t, at);
        }
        t
    }

    /// When staff switch a terminal that went off at `off` on again.
    pub fn power_on_after(&self, off: Timestamp) -> Timestamp {
        self.next_workday_at(off, self.morning)
    }

    /// When staff restart a terminal whose update finished installing at `installed_at`; `None`
    /// when the habit is not a planned restart (the agent's automatic one, or at the first
    /// error).
    pub fn staff_restart_due(&self, installed_at: Timestamp) -> Option<Timestamp> {
        match self.habit {
            RestartHabit::NextMorning(at) => Some(self.next_workday_at(installed_at, at)),
            RestartHabit::DaysLater { days, at } => {
                let later = installed_at
                    .checked_add(SignedDuration::from_hours(24 * i64::from(days) - 12))
                    .unwrap_or(installed_at);
                Some(self.next_workday_at(later, at))
            }
            RestartHabit::Automatic(_) | RestartHabit::OnFirstError => None,
        }
    }
}

/// `time` shifted by `minutes` within the day (clamped to the day).
fn add_minutes(time: Time, minutes: i32) -> Time {
    let secs = i64::from(time.hour()) * 3600 + i64::from(time.minute()) * 60;
    let secs = (secs + i64::from(minutes) * 60).clamp(0, 86_399);
    Time::new(
        i8::try_from(secs / 3600).unwrap_or(0),
        i8::try_from(secs / 60 % 60).unwrap_or(0),
        0,
        0,
    )
    .unwrap_or(time)
}

/// `date` at `time` in Japan.
fn instant(date: Date, time: Time) -> Option<Timestamp> {
    date.to_datetime(time)
        .to_zoned(jst::tz())
        .ok()
        .map(|z| z.timestamp())
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn the_same_seed_gives_the_same_sites() {
        let a = Population::generate(50, 7).expect("population");
        let b = Population::generate(50, 7).expect("population");
        assert_eq!(a.csv(), b.csv());
        assert_ne!(
            a.csv(),
            Population::generate(50, 8).expect("population").csv()
        );
    }

    #[test]
    fn shares_of_habits_and_readers_are_near_the_brief() {
        let p = Population::generate(2000, 1).expect("population");
        let share = |f: &dyn Fn(&Site) -> bool| {
            p.sites.iter().filter(|s| f(s)).count() as f64 / p.sites.len() as f64
        };
        let auto = share(&|s| matches!(s.habit, RestartHabit::Automatic(_)));
        assert!((0.26..0.34).contains(&auto), "{auto}");
        let morning = share(&|s| matches!(s.habit, RestartHabit::NextMorning(_)));
        assert!((0.38..0.46).contains(&morning), "{morning}");
        for s in &p.sites {
            assert!(s.readers >= 1 && s.readers <= 3);
            if s.kind != InstitutionKind::Hospital {
                assert_eq!(s.readers, 1);
            }
            assert!(
                s.evening < Time::constant(20, 0, 0, 0),
                "off before the window"
            );
        }
        let night = jiff::civil::date(2026, 1, 20);
        let off = share(&|s| s.powers_off(night));
        assert!(
            (0.11..0.19).contains(&off),
            "{off} of terminals off on a night"
        );
    }

    #[test]
    fn a_clinic_is_closed_on_sunday_and_saturday_afternoon() {
        let p = Population::generate(20, 3).expect("population");
        let clinic = p
            .sites
            .iter()
            .find(|s| s.kind == InstitutionKind::Clinic)
            .expect("a clinic among 20");
        assert!(clinic.is_open(ts("2026-01-19T10:00:00+09:00")));
        assert!(!clinic.is_open(ts("2026-01-19T08:00:00+09:00")));
        assert!(clinic.is_open(ts("2026-01-24T11:00:00+09:00")));
        assert!(!clinic.is_open(ts("2026-01-24T14:00:00+09:00")));
        assert!(!clinic.is_open(ts("2026-01-25T10:00:00+09:00")));
    }

    #[test]
    fn staff_restart_on_the_next_working_morning() {
        let p = Population::generate(200, 5).expect("population");
        let site = p
            .sites
            .iter()
            .find(|s| matches!(s.habit, RestartHabit::NextMorning(_)))
            .expect("a next-morning site");
        let RestartHabit::NextMorning(at) = site.habit else {
            unreachable!()
        };
        // Installed in the night of Saturday 24th: nobody is in on Sunday, so Monday morning.
        let due = site
            .staff_restart_due(ts("2026-01-24T21:00:00+09:00"))
            .expect("planned");
        let civil = jst::civil(due);
        assert_eq!(civil.date(), jiff::civil::date(2026, 1, 26));
        assert_eq!(civil.time(), at);
        assert!(at < hours(site.kind).opens, "before the first patient");
    }
}
