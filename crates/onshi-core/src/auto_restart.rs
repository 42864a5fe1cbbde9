//! The site's daily automatic restart (the notice: 日々の診療等の開始前に自動で再起動する設定).
//! A terminal with an installed update restarts at the site's time, but never before 05:00,
//! when the night's distribution window has closed; the agent asks this module when.

use jiff::Timestamp;
use jiff::civil::Time;

use crate::jst;

/// The earliest time of day an automatic restart happens: the end of the night window.
pub const EARLIEST: Time = Time::constant(5, 0, 0, 0);

/// When a terminal whose update finished installing at `installed_at` restarts by itself, for a
/// site that set the daily restart time `at` (Japan time): the first such time strictly after
/// the install, with times before 05:00 moved to 05:00.
pub fn next_restart(installed_at: Timestamp, at: Time) -> Timestamp {
    let at = at.max(EARLIEST);
    let mut day = jst::civil(installed_at).date();
    loop {
        // Japan has no daylight saving time, so every local time exists exactly once.
        let candidate = day
            .to_datetime(at)
            .to_zoned(jst::tz())
            .map(|z| z.timestamp())
            .unwrap_or(installed_at);
        if candidate > installed_at {
            return candidate;
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => return installed_at,
        }
    }
}

/// Whether the automatic restart for an update installed at `installed_at` is due at `now`.
pub fn is_due(installed_at: Timestamp, at: Time, now: Timestamp) -> bool {
    now >= next_restart(installed_at, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn an_install_in_the_night_restarts_the_next_morning_at_the_site_time() {
        let at = Time::constant(7, 30, 0, 0);
        assert_eq!(
            next_restart(t("2026-01-19T22:10:00+09:00"), at),
            t("2026-01-20T07:30:00+09:00")
        );
        // Installed just after midnight: the same calendar morning.
        assert_eq!(
            next_restart(t("2026-01-20T01:00:00+09:00"), at),
            t("2026-01-20T07:30:00+09:00")
        );
    }

    #[test]
    fn a_time_inside_the_night_waits_for_five_o_clock() {
        let at = Time::constant(3, 0, 0, 0);
        assert_eq!(
            next_restart(t("2026-01-19T22:00:00+09:00"), at),
            t("2026-01-20T05:00:00+09:00")
        );
    }

    #[test]
    fn an_install_in_the_catch_up_day_restarts_the_same_day_if_the_time_is_still_ahead() {
        let at = Time::constant(12, 0, 0, 0);
        assert_eq!(
            next_restart(t("2026-02-02T09:00:00+09:00"), at),
            t("2026-02-02T12:00:00+09:00")
        );
        assert_eq!(
            next_restart(t("2026-02-02T12:00:00+09:00"), at),
            t("2026-02-03T12:00:00+09:00")
        );
    }

    #[test]
    fn due_only_from_the_restart_time_on() {
        let at = Time::constant(6, 0, 0, 0);
        let installed = t("2026-01-19T23:00:00+09:00");
        assert!(!is_due(installed, at, t("2026-01-20T05:59:59+09:00")));
        assert!(is_due(installed, at, t("2026-01-20T06:00:00+09:00")));
    }
}
