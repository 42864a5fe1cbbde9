//! The demo's sites, drawn from the simulator's model of the country (`onshi_sim::fleet::sites`
//! over the preset, see [`crate::fleet::model`]): kind, prefecture, card readers and their maker,
//! automatic restart, the nights staff leave the terminal on, the restart habit, and the hours,
//! patients and card share of each kind. This module adds the synthetic identity of each site
//! ([`crate::fleet`]) and turns the model's days and times into instants on the calendar. Seeded:
//! the same `--seed` gives the same sites with the same habits.

use std::fmt::Write as _;
use std::sync::Arc;

use jiff::civil::{Date, Time};
use jiff::{Timestamp, ToSpan as _};
use onshi_core::institution::{InstitutionCode, InstitutionKind};
use onshi_core::vendor::Vendor;
use onshi_core::{auto_restart, jst};
use onshi_sim::fleet::{Habit, SiteModel};
use onshi_sim::scenario::SiteKind;

use crate::fleet;

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
    /// The maker of the site's card readers (a site buys its readers from one vendor). A site
    /// without face-authentication readers still has the maker the model drew, whose screens
    /// the demo's reception shows.
    pub vendor: Vendor,
    /// How many face-authentication card readers hang off the terminal (0–3).
    pub readers: u8,
    pub habit: RestartHabit,
    /// The model's draws for this site.
    model: SiteModel,
    /// The model's parameters of the site's kind: opening hours, patients.
    params: Arc<SiteKind>,
    /// Day 0 of the model's nights (the preset's first day).
    start: Date,
}

/// When a terminal with an installed update gets restarted (the notice: restart it the next
/// morning after 05:00, unless it restarts itself before practice starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartHabit {
    /// The site set a daily automatic restart; the agent restarts the terminal at this time.
    Automatic(Time),
    /// Staff restart it the next morning they come in, before opening.
    NextMorning,
    /// Staff restart it when the first patient meets the error.
    OnFirstError,
    /// Staff restart it in the morning this many days after the install's day.
    DaysLater(u16),
}

impl Population {
    /// `n` sites from `seed`, as the model draws them.
    pub fn generate(n: u32, seed: u64) -> anyhow::Result<Self> {
        let scenario = fleet::model()?;
        let params = scenario.sites.clone().map(Arc::new);
        let mut codes = fleet::Codes::default();
        let mut sites = Vec::with_capacity(usize::try_from(n)?);
        for (index, model) in (0..n).zip(onshi_sim::fleet::sites(&scenario, seed)) {
            let kind = model.kind;
            let params = params[onshi_sim::scenario::kind_index(kind)].clone();
            let code = codes
                .next(model.prefecture, kind)
                .ok_or_else(|| anyhow::anyhow!("no 医療機関コード left for site {index}"))?;
            let habit = if model.auto_restart {
                RestartHabit::Automatic(params.auto_restart_at())
            } else {
                match model.habit {
                    Habit::NextMorning => RestartHabit::NextMorning,
                    Habit::OnError => RestartHabit::OnFirstError,
                    Habit::DaysLater => RestartHabit::DaysLater(model.days_later),
                }
            };
            sites.push(Site {
                code,
                name: fleet::name(kind, index),
                kind,
                email: fleet::email(index),
                vendor: model.vendor,
                readers: model.readers,
                habit,
                model,
                params,
                start: scenario.start,
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

    /// Whether the site sees patients on `date` (the model's week: closed on Sundays and
    /// 祝日, Saturdays per kind).
    pub fn opens_on(&self, date: Date) -> bool {
        self.params.open_on(date)
    }

    /// Whether the reception is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let now = jst::civil(at);
        self.opens_on(now.date())
            && self.params.opens <= now.time()
            && now.time() < self.params.closes
    }

    /// Patients arriving per hour while open.
    pub fn patients_per_hour(&self) -> f64 {
        self.params.patients_per_day / self.params.open_seconds() * 3600.0
    }

    /// The share of the site's patients who use their My Number card (マイナ保険証) at the
    /// reception: the model's `mynumber_share` for the site's kind.
    pub fn card_share(&self) -> f64 {
        self.params.mynumber_share
    }

    /// Whether staff switch the terminal off on the evening of `date`: unless it is never
    /// switched off, on the nights the model did not draw it left on.
    pub fn powers_off(&self, date: Date) -> bool {
        let day = self.start.until(date).map_or(0, |span| span.get_days());
        !self.model.always_on && !self.model.night_on(i64::from(day))
    }

    /// The first closing time at or after `at`, on a day the site was open: when staff switch
    /// the terminal off if they do.
    pub fn next_evening(&self, at: Timestamp) -> Timestamp {
        let mut date = jst::civil(at).date();
        for _ in 0..400 {
            let t = instant(date, self.params.closes).unwrap_or(at);
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

    /// When staff switch a terminal that went off at `off` on again: before opening on their
    /// next working day.
    pub fn power_on_after(&self, off: Timestamp) -> Timestamp {
        self.next_workday_at(off, self.params.switch_on_at())
    }

    /// When staff restart a terminal whose update finished installing at `installed_at`; `None`
    /// when the habit is not a planned restart (the agent's automatic one, or at the first
    /// error).
    pub fn staff_restart_due(&self, installed_at: Timestamp) -> Option<Timestamp> {
        let from = match self.habit {
            RestartHabit::NextMorning => installed_at,
            RestartHabit::DaysLater(days) => {
                let day = jst::civil(installed_at)
                    .date()
                    .checked_add(i64::from(days).days())
                    .ok()?;
                instant(day, Time::midnight())?
            }
            RestartHabit::Automatic(_) | RestartHabit::OnFirstError => return None,
        };
        let arrive = self.next_workday_at(from, self.params.switch_on_at());
        arrive.checked_add(self.model.staff_restart_delay).ok()
    }
}

/// `date` at `time` in Japan.
fn instant(date: Date, time: Time) -> Option<Timestamp> {
    date.to_datetime(time)
        .to_zoned(jst::tz())
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn preset() -> onshi_sim::Scenario {
        fleet::model().expect("the preset")
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
    fn each_site_draws_card_patients_with_its_kind_s_share() {
        let p = Population::generate(200, 1).expect("population");
        for site in &p.sites {
            let kind = preset()
                .sites
                .into_iter()
                .find(|k| k.kind == site.kind)
                .expect("every kind is in the preset");
            assert_eq!(site.card_share(), kind.mynumber_share, "{:?}", site.kind);
        }
    }

    #[test]
    fn sites_have_the_preset_s_readers_habits_and_nights() {
        let s = preset();
        let p = Population::generate(2000, 1).expect("population");
        let share = |f: &dyn Fn(&Site) -> bool| {
            p.sites.iter().filter(|x| f(x)).count() as f64 / p.sites.len() as f64
        };
        // Expected over the preset's mix of kinds.
        let expect = |f: &dyn Fn(&SiteKind) -> f64| {
            s.sites
                .iter()
                .map(|k| f64::from(k.count) * f(k))
                .sum::<f64>()
                / s.site_count() as f64
        };
        let auto = share(&|x| matches!(x.habit, RestartHabit::Automatic(_)));
        let want = expect(&|k| k.auto_restart);
        assert!(
            (auto - want).abs() < 0.03,
            "auto-restart {auto}, preset {want}"
        );
        let morning = share(&|x| x.habit == RestartHabit::NextMorning);
        let want = (1.0 - want) * s.staff.next_morning;
        assert!(
            (morning - want).abs() < 0.03,
            "next morning {morning}, preset {want}"
        );
        let night = jiff::civil::date(2026, 1, 20);
        let off = share(&|x| x.powers_off(night));
        let want = expect(&|k| (1.0 - k.always_on) * (1.0 - k.night_on));
        assert!(
            (off - want).abs() < 0.03,
            "off on a night {off}, preset {want}"
        );
        for x in &p.sites {
            let kind = s.site_kind(x.kind);
            assert!(
                kind.readers[usize::from(x.readers)] > 0.0,
                "{} readers",
                x.readers
            );
            assert_eq!(x.reader_serials().len(), usize::from(x.readers));
            if let RestartHabit::Automatic(at) = x.habit {
                assert_eq!(at, kind.auto_restart_at());
            }
            let evening = jst::civil(x.next_evening(ts("2026-01-20T00:00:00+09:00")));
            assert_eq!(evening.time(), kind.closes);
            assert!(
                evening.time() <= Time::constant(20, 0, 0, 0),
                "off before the window"
            );
        }
    }

    #[test]
    fn the_nights_a_site_stays_on_are_the_model_s() {
        let p = Population::generate(100, 3).expect("population");
        let start = preset().start;
        let mut on = 0;
        for x in &p.sites {
            for d in 0..21 {
                let date = start.checked_add(d.days()).expect("a date");
                let off = x.powers_off(date);
                assert_eq!(
                    off,
                    !x.model.always_on && !x.model.night_on(d),
                    "{} {date}",
                    x.code
                );
                on += u32::from(!off);
            }
        }
        assert!(on > 0);
    }

    #[test]
    fn a_clinic_is_open_in_the_preset_s_hours_and_never_on_sunday_or_a_holiday() {
        let p = Population::generate(20, 3).expect("population");
        let clinic = p
            .sites
            .iter()
            .find(|s| s.kind == InstitutionKind::Clinic)
            .expect("a clinic among 20");
        let k = preset().site_kind(InstitutionKind::Clinic).clone();
        let at =
            |date: &str, time: Time| instant(date.parse().expect("date"), time).expect("instant");
        let minute = jiff::SignedDuration::from_mins(1);
        let before = |t: Time| t.checked_sub(minute).expect("a time");
        // Monday 19th.
        assert!(clinic.is_open(at("2026-01-19", k.opens)));
        assert!(!clinic.is_open(at("2026-01-19", before(k.opens))));
        assert!(clinic.is_open(at("2026-01-19", before(k.closes))));
        assert!(!clinic.is_open(at("2026-01-19", k.closes)));
        // Saturday 24th as the preset says, Sunday 25th and 建国記念の日 never.
        assert_eq!(clinic.is_open(at("2026-01-24", k.opens)), k.saturday);
        assert!(!clinic.is_open(at("2026-01-25", k.opens)));
        assert!(!clinic.is_open(at("2026-02-11", k.opens)));
        let per_hour = k.patients_per_day / k.open_seconds() * 3600.0;
        assert!((clinic.patients_per_hour() - per_hour).abs() < 1e-9);
    }

    #[test]
    fn staff_restart_on_the_next_working_morning() {
        let p = Population::generate(200, 5).expect("population");
        let site = p
            .sites
            .iter()
            .find(|s| s.habit == RestartHabit::NextMorning)
            .expect("a next-morning site");
        // Installed in the night of Saturday 24th: nobody is in on Sunday, so Monday morning,
        // once staff have switched the terminal on and before the first patient.
        let due = site
            .staff_restart_due(ts("2026-01-24T21:00:00+09:00"))
            .expect("planned");
        let civil = jst::civil(due);
        assert_eq!(civil.date(), jiff::civil::date(2026, 1, 26));
        let arrive = site.params.switch_on_at();
        assert_eq!(
            arrive.duration_until(civil.time()),
            site.model.staff_restart_delay
        );
        assert!(civil.time() < site.params.opens, "before the first patient");
    }

    #[test]
    fn staff_who_wait_days_restart_in_the_morning_that_many_days_later() {
        let p = Population::generate(400, 5).expect("population");
        let site = p
            .sites
            .iter()
            .find(|s| matches!(s.habit, RestartHabit::DaysLater(_)))
            .expect("a days-later site");
        let RestartHabit::DaysLater(days) = site.habit else {
            unreachable!()
        };
        // Installed on the night of Monday 19th.
        let due = site
            .staff_restart_due(ts("2026-01-19T22:00:00+09:00"))
            .expect("planned");
        let mut first = jiff::civil::date(2026, 1, 19)
            .checked_add(i64::from(days).days())
            .expect("a date");
        while !site.opens_on(first) {
            first = first.tomorrow().expect("a date");
        }
        assert_eq!(jst::civil(due).date(), first);
        assert!(jst::civil(due).time() < site.params.opens);
    }
}
