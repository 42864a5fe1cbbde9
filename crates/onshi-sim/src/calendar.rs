//! Simulated time and the sites' week: whole seconds since the first simulated midnight, each
//! day's opening hours per kind of site (closed on Sundays and 祝日, Saturdays per kind), and the
//! way back to real instants for the schedule and the call centre.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use onshi_core::institution::InstitutionKind;

use crate::scenario::{Scenario, kind_index};

/// Simulated time: whole seconds since 00:00 of the first simulated day (campaign time zone).
pub type SimTime = u32;

/// Days looked at past the end of the run, so that "the next open day" is found across a long
/// closed stretch (the longest, Golden Week, is nine days).
const LOOKAHEAD_DAYS: usize = 14;

/// Staff switch the terminal on this long before opening.
pub const SWITCH_ON_BEFORE_OPENING: SimTime = crate::scenario::SWITCH_ON_BEFORE_OPENING;

/// The calendar of one run.
#[derive(Debug, Clone)]
pub struct Calendar {
    start: Timestamp,
    tz: TimeZone,
    /// 00:00 of each day (run days then look-ahead days), in simulated seconds.
    midnights: Vec<SimTime>,
    dates: Vec<Date>,
    /// The end of the run: 00:00 after the last simulated day.
    horizon: SimTime,
    /// Per kind, per day: `[opens, closes)` in simulated seconds, `None` on a closed day.
    open: [Vec<Option<(SimTime, SimTime)>>; 4],
}

impl Calendar {
    /// The calendar of a scenario: its days in the campaign's zone and each kind's hours.
    pub fn new(scenario: &Scenario) -> Self {
        let tz = scenario.campaign.timezone().clone();
        let local = |date: Date, time: Time| -> Timestamp {
            // A time the zone skips moves past the jump, as the schedule does; a date outside
            // jiff's range cannot come from a validated scenario.
            tz.to_ambiguous_timestamp(date.to_datetime(time))
                .compatible()
                .unwrap_or(Timestamp::MAX)
        };
        let start = local(scenario.start, Time::midnight());
        let total = usize::from(scenario.days) + LOOKAHEAD_DAYS;
        let dates: Vec<Date> = scenario
            .start
            .series(jiff::ToSpan::day(1))
            .take(total)
            .collect();
        let secs = |at: Timestamp| -> SimTime {
            let d = at.as_second() - start.as_second();
            SimTime::try_from(d.max(0)).unwrap_or(SimTime::MAX)
        };
        let midnights: Vec<SimTime> = dates
            .iter()
            .map(|d| secs(local(*d, Time::midnight())))
            .collect();
        let horizon = midnights
            .get(usize::from(scenario.days))
            .copied()
            .unwrap_or(SimTime::MAX);
        let open = InstitutionKind::ALL.map(|kind| {
            let k = scenario.site_kind(kind);
            dates
                .iter()
                .map(|date| {
                    k.open_on(*date)
                        .then(|| (secs(local(*date, k.opens)), secs(local(*date, k.closes))))
                })
                .collect()
        });
        Self {
            start,
            tz,
            midnights,
            dates,
            horizon,
            open,
        }
    }

    /// The first simulated instant.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The end of the run (exclusive), in simulated seconds.
    pub fn horizon(&self) -> SimTime {
        self.horizon
    }

    /// How many hourly rows the run has.
    pub fn hours(&self) -> usize {
        self.horizon.div_ceil(3600) as usize
    }

    /// The real instant of a simulated time.
    pub fn instant(&self, t: SimTime) -> Timestamp {
        Timestamp::from_second(self.start.as_second() + i64::from(t)).unwrap_or(Timestamp::MAX)
    }

    /// The simulated time of an instant: `None` before the start, saturated after.
    pub fn sim_time(&self, at: Timestamp) -> Option<SimTime> {
        let d = at.as_second() - self.start.as_second();
        (d >= 0).then(|| SimTime::try_from(d).unwrap_or(SimTime::MAX))
    }

    /// The instant written in RFC 3339 with the campaign zone's offset.
    pub fn rfc3339(&self, t: SimTime) -> String {
        let at = self.instant(t);
        at.display_with_offset(self.tz.to_offset(at)).to_string()
    }

    /// The local date-time of a simulated time, for tables.
    pub fn civil(&self, t: SimTime) -> jiff::civil::DateTime {
        self.tz.to_datetime(self.instant(t))
    }

    /// The index of the day holding `t`.
    pub fn day_of(&self, t: SimTime) -> usize {
        self.midnights
            .partition_point(|m| *m <= t)
            .saturating_sub(1)
    }

    /// 00:00 of day `day`, in simulated seconds (`None` past the look-ahead).
    pub fn midnight(&self, day: usize) -> Option<SimTime> {
        self.midnights.get(day).copied()
    }

    /// The local date of day `day`.
    pub fn date(&self, day: usize) -> Option<Date> {
        self.dates.get(day).copied()
    }

    /// `[opens, closes)` of `kind` on day `day`, or `None` when closed.
    pub fn open_hours(&self, kind: InstitutionKind, day: usize) -> Option<(SimTime, SimTime)> {
        self.open[kind_index(kind)].get(day).copied().flatten()
    }

    /// The first open day of `kind` at or after `day`, with its hours.
    pub fn next_open_day(
        &self,
        kind: InstitutionKind,
        day: usize,
    ) -> Option<(usize, (SimTime, SimTime))> {
        let days = &self.open[kind_index(kind)];
        (day..days.len()).find_map(|d| days[d].map(|h| (d, h)))
    }

    /// The first moment after `t` at which staff of `kind` switch the terminal on (30 minutes
    /// before opening), with that day's index.
    pub fn next_switch_on(&self, kind: InstitutionKind, t: SimTime) -> Option<(usize, SimTime)> {
        let mut day = self.day_of(t);
        loop {
            let (d, (opens, _)) = self.next_open_day(kind, day)?;
            let on = opens.saturating_sub(SWITCH_ON_BEFORE_OPENING);
            if on > t {
                return Some((d, on));
            }
            day = d + 1;
        }
    }

    /// The first opening time of `kind` after `t` shifted by `-before` seconds (the auto-restart
    /// instant before practice).
    pub fn next_before_opening(
        &self,
        kind: InstitutionKind,
        t: SimTime,
        before: SimTime,
    ) -> Option<SimTime> {
        let mut day = self.day_of(t);
        loop {
            let (d, (opens, _)) = self.next_open_day(kind, day)?;
            let at = opens.saturating_sub(before);
            if at > t {
                return Some(at);
            }
            day = d + 1;
        }
    }

    /// The simulated time at local `time` on day `day`.
    pub fn at_local(&self, day: usize, time: Time) -> Option<SimTime> {
        let date = self.date(day)?;
        let at = self
            .tz
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()?;
        self.sim_time(at)
    }

    /// The instant `open_secs` seconds of `kind`'s opening hours after `t` (patients arrive only
    /// while a site is open). `None` past the look-ahead.
    pub fn after_open_time(
        &self,
        kind: InstitutionKind,
        t: SimTime,
        open_secs: f64,
    ) -> Option<SimTime> {
        let mut left = open_secs.max(0.0);
        let mut day = self.day_of(t);
        loop {
            let (d, (opens, closes)) = self.next_open_day(kind, day)?;
            let from = opens.max(t);
            if from < closes {
                let room = f64::from(closes - from);
                if left < room {
                    return Some(from + left as SimTime);
                }
                left -= room;
            }
            day = d + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn national() -> Calendar {
        Calendar::new(&Scenario::preset("national-2026-01").expect("preset"))
    }

    fn hhmm(c: &Calendar, t: SimTime) -> String {
        let dt = c.civil(t);
        format!("{} {:02}:{:02}", dt.date(), dt.hour(), dt.minute())
    }

    #[test]
    fn the_run_starts_at_midnight_japan_time_and_lasts_21_days() {
        let c = national();
        assert_eq!(c.rfc3339(0), "2026-01-19T00:00:00+09:00");
        assert_eq!(c.horizon(), 21 * 86_400);
        assert_eq!(c.hours(), 504);
    }

    #[test]
    fn clinics_are_closed_on_sundays_and_open_on_saturdays() {
        let c = national();
        // Day 5 is Saturday 24 January, day 6 Sunday 25 January.
        let sat = c
            .open_hours(InstitutionKind::Clinic, 5)
            .expect("open on Saturday");
        assert_eq!(hhmm(&c, sat.0), "2026-01-24 09:00");
        assert_eq!(hhmm(&c, sat.1), "2026-01-24 18:00");
        assert_eq!(c.open_hours(InstitutionKind::Clinic, 6), None);
        let (day, on) = c
            .next_switch_on(InstitutionKind::Clinic, sat.1)
            .expect("Monday");
        assert_eq!(day, 7);
        assert_eq!(hhmm(&c, on), "2026-01-26 08:30");
    }

    #[test]
    fn national_holidays_close_every_site() {
        // 2026-02-11 (建国記念の日) is day 23, past the run but inside the look-ahead.
        let c = national();
        assert_eq!(
            c.date(23).map(|d| d.to_string()).as_deref(),
            Some("2026-02-11")
        );
        for kind in InstitutionKind::ALL {
            assert_eq!(c.open_hours(kind, 23), None, "{kind:?}");
        }
    }

    #[test]
    fn patients_arrive_only_in_opening_hours() {
        let c = national();
        let (opens, closes) = c.open_hours(InstitutionKind::Clinic, 0).expect("Monday");
        // From 07:00, one hour of opening time is 10:00.
        let t = c.after_open_time(InstitutionKind::Clinic, opens - 7200, 3600.0);
        assert_eq!(t.map(|t| hhmm(&c, t)).as_deref(), Some("2026-01-19 10:00"));
        // Half an hour before closing, one hour of opening time runs into Tuesday 09:30.
        let t = c.after_open_time(InstitutionKind::Clinic, closes - 1800, 3600.0);
        assert_eq!(t.map(|t| hhmm(&c, t)).as_deref(), Some("2026-01-20 09:30"));
    }
}
