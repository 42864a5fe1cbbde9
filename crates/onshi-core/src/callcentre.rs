//! オンライン資格確認等コールセンター: the number every page and message gives for help, and
//! its opening hours from the notice — Mon–Fri 8:00–18:00 and Sat 8:00–16:00 Japan time,
//! closed on Sundays and on 祝日 (any day [`holidays::is_holiday`] reports, 振替休日 and
//! 国民の休日 included).

use jiff::civil::{Date, DateTime, Time, Weekday, time};
use jiff::{Timestamp, ToSpan};

use crate::{holidays, jst};

/// The call centre's free-dial number (通話無料).
pub const PHONE: &str = "0800-080-4583";

/// The call centre's name as the notice writes it.
pub const NAME_JA: &str = "オンライン資格確認等コールセンター";

/// The hours as the notice writes them, for pages and notices.
pub const HOURS_JA: &str =
    "月曜日～金曜日（祝日を除く）8:00～18:00、土曜日（祝日を除く）8:00～16:00";

/// The hours in English.
pub const HOURS_EN: &str =
    "Mon–Fri 8:00–18:00, Sat 8:00–16:00 (closed on Sundays and public holidays)";

/// The fallback procedure while the card cannot be used (the notice's 【不具合発生時等の対応について】):
/// the portal article KB0011769, under its full title.
pub const FALLBACK_TITLE_JA: &str =
    "マイナ保険証での受付が出来ない場合の資格確認方法・レセプト請求方法";

/// The fallback article's title in English.
pub const FALLBACK_TITLE_EN: &str =
    "How to confirm qualification and bill when the My Number health insurance card cannot be used";

/// The fallback article on the 医療機関等向け総合ポータルサイト.
pub const FALLBACK_URL: &str =
    "https://iryohokenjyoho.service-now.com/csm?id=kb_article_view&sysparm_article=KB0011769#B";

/// Every open day starts at 8:00.
const OPENS: Time = time(8, 0, 0, 0);
/// Monday to Friday close at 18:00.
const WEEKDAY_CLOSES: Time = time(18, 0, 0, 0);
/// Saturday closes early, at 16:00.
const SATURDAY_CLOSES: Time = time(16, 0, 0, 0);

/// How many days [`next_open`] looks ahead. The longest closed stretch in 2000–2099 is the
/// nine days of Golden Week 2019 (Sunday 4/28 to Monday 5/6; a test checks every year), and
/// after [`holidays::LAST_YEAR`] only Sundays close, so two weeks always finds an opening.
const SEARCH_DAYS: usize = 14;

/// Opening hours of one day in Japan time, or None when closed all day.
///
/// Dates outside 2000–2099 have no known holidays, so there only Sundays are closed.
pub fn hours_on(date: Date) -> Option<(Time, Time)> {
    if holidays::is_holiday(date) {
        return None;
    }
    match date.weekday() {
        Weekday::Sunday => None,
        Weekday::Saturday => Some((OPENS, SATURDAY_CLOSES)),
        _ => Some((OPENS, WEEKDAY_CLOSES)),
    }
}

/// Whether the call centre takes calls at `at`: opening time included, closing time excluded.
pub fn is_open(at: Timestamp) -> bool {
    closes_at(at).is_some()
}

/// `at` itself if the call centre is open then, otherwise the next instant it opens.
///
/// Saturates at [`Timestamp::MAX`] only at the end of jiff's range (year 9999), where the next
/// opening cannot be represented; the search bound is explained at `SEARCH_DAYS`.
pub fn next_open(at: Timestamp) -> Timestamp {
    if is_open(at) {
        return at;
    }
    let now = jst::civil(at);
    now.date()
        .series(1.day())
        .take(SEARCH_DAYS)
        .filter_map(|day| hours_on(day).map(|(opens, _)| day.to_datetime(opens)))
        .find(|opening| *opening > now)
        .and_then(instant)
        .unwrap_or(Timestamp::MAX)
}

/// When the call centre is open at `at`, the instant it closes that day; otherwise `None`.
pub fn closes_at(at: Timestamp) -> Option<Timestamp> {
    let now = jst::civil(at);
    let (opens, closes) = hours_on(now.date())?;
    if opens <= now.time() && now.time() < closes {
        instant(now.date().to_datetime(closes))
    } else {
        None
    }
}

/// Whether the call centre is open at an instant, with the next change either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Taking calls until `until` (that day's closing time).
    Open {
        /// The closing instant.
        until: Timestamp,
    },
    /// Not taking calls; opens again at `opens_at`.
    Closed {
        /// The next opening instant.
        opens_at: Timestamp,
    },
}

/// The call centre's [`Status`] at `at`.
pub fn status(at: Timestamp) -> Status {
    match closes_at(at) {
        Some(until) => Status::Open { until },
        None => Status::Closed {
            opens_at: next_open(at),
        },
    }
}

/// Japanese sentence for pages: `受付中（本日18:00まで）` or
/// `受付時間外です。次の受付開始は2026年1月26日(月) 08:00です。`
pub fn status_text_ja(at: Timestamp) -> String {
    match status(at) {
        Status::Open { until } => format!("受付中（本日{}まで）", hh_mm(until)),
        Status::Closed { opens_at } => {
            format!(
                "受付時間外です。次の受付開始は{}です。",
                jst::format_ja(opens_at)
            )
        }
    }
}

/// English counterpart of [`status_text_ja`]: `Open (until 18:00 today)` or
/// `Closed. Next opening: Mon 26 Jan 2026 08:00 JST.`
pub fn status_text_en(at: Timestamp) -> String {
    match status(at) {
        Status::Open { until } => format!("Open (until {} today)", hh_mm(until)),
        Status::Closed { opens_at } => {
            format!("Closed. Next opening: {}.", jst::format_en(opens_at))
        }
    }
}

/// `18:00`: the Japan-time clock reading of `at`.
fn hh_mm(at: Timestamp) -> String {
    let t = jst::civil(at);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// The instant of a Japan-time civil date-time; `None` only beyond jiff's range (year 9999).
fn instant(dt: DateTime) -> Option<Timestamp> {
    jst::tz().to_timestamp(dt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid instant")
    }

    #[test]
    fn open_monday_at_08_00_exactly() {
        let at = ts("2026-01-19T08:00:00+09:00");
        assert!(is_open(at));
        assert_eq!(next_open(at), at);
        assert_eq!(closes_at(at), Some(ts("2026-01-19T18:00:00+09:00")));
    }

    #[test]
    fn closed_monday_at_18_00_exactly() {
        assert!(is_open(ts("2026-01-19T17:59:59.999999999+09:00")));
        let at = ts("2026-01-19T18:00:00+09:00");
        assert!(!is_open(at));
        assert_eq!(closes_at(at), None);
        assert_eq!(next_open(at), ts("2026-01-20T08:00:00+09:00"));
    }

    #[test]
    fn before_08_00_next_open_is_the_same_morning() {
        let at = ts("2026-01-19T07:59:00+09:00");
        assert!(!is_open(at));
        assert_eq!(next_open(at), ts("2026-01-19T08:00:00+09:00"));
    }

    #[test]
    fn saturday_closes_at_16_00() {
        assert_eq!(
            hours_on(date(2026, 1, 24)),
            Some((time(8, 0, 0, 0), time(16, 0, 0, 0)))
        );
        assert!(is_open(ts("2026-01-24T15:59:00+09:00")));
        assert!(!is_open(ts("2026-01-24T16:00:00+09:00")));
    }

    #[test]
    fn sunday_closed_and_next_open_is_monday_08_00() {
        let at = ts("2026-01-25T12:00:00+09:00");
        assert_eq!(hours_on(date(2026, 1, 25)), None);
        assert!(!is_open(at));
        assert_eq!(next_open(at), ts("2026-01-26T08:00:00+09:00"));
    }

    #[test]
    fn holiday_monday_closed_and_next_open_is_tuesday_08_00() {
        // 2026-01-12 is 成人の日.
        let at = ts("2026-01-12T10:00:00+09:00");
        assert!(!is_open(at));
        assert_eq!(next_open(at), ts("2026-01-13T08:00:00+09:00"));
        // From Saturday evening the Sunday and the holiday Monday are both skipped.
        assert_eq!(
            next_open(ts("2026-01-10T16:00:00+09:00")),
            ts("2026-01-13T08:00:00+09:00")
        );
    }

    #[test]
    fn golden_week_2026_open_saturday_2_may_then_closed_until_7_may() {
        assert!(is_open(ts("2026-05-02T15:00:00+09:00")));
        assert_eq!(
            closes_at(ts("2026-05-02T15:00:00+09:00")),
            Some(ts("2026-05-02T16:00:00+09:00"))
        );
        for day in 3..=6 {
            assert_eq!(hours_on(date(2026, 5, day)), None, "5/{day}");
        }
        assert_eq!(
            next_open(ts("2026-05-02T16:00:00+09:00")),
            ts("2026-05-07T08:00:00+09:00")
        );
    }

    #[test]
    fn new_years_day_closed() {
        // 2026-01-01 is a Thursday.
        assert!(!is_open(ts("2026-01-01T10:00:00+09:00")));
        assert_eq!(
            next_open(ts("2026-01-01T10:00:00+09:00")),
            ts("2026-01-02T08:00:00+09:00")
        );
    }

    #[test]
    fn instants_in_utc_are_judged_in_japan_time() {
        // 23:00Z on Sunday is 08:00 on Monday in Japan.
        assert!(is_open(ts("2026-01-18T23:00:00Z")));
        assert!(!is_open(ts("2026-01-18T22:59:59Z")));
        assert!(!is_open(ts("2026-01-19T09:00:00Z")));
        assert_eq!(
            next_open(ts("2026-01-19T09:00:00Z")),
            ts("2026-01-19T23:00:00Z")
        );
    }

    #[test]
    fn status_says_when_it_closes_or_opens() {
        assert_eq!(
            status(ts("2026-01-19T09:00:00+09:00")),
            Status::Open {
                until: ts("2026-01-19T18:00:00+09:00")
            }
        );
        assert_eq!(
            status(ts("2026-01-25T09:00:00+09:00")),
            Status::Closed {
                opens_at: ts("2026-01-26T08:00:00+09:00")
            }
        );
    }

    #[test]
    fn status_text_ja_reads_as_the_page_shows_it() {
        assert_eq!(
            status_text_ja(ts("2026-01-19T09:00:00+09:00")),
            "受付中（本日18:00まで）"
        );
        assert_eq!(
            status_text_ja(ts("2026-01-24T09:00:00+09:00")),
            "受付中（本日16:00まで）"
        );
        assert_eq!(
            status_text_ja(ts("2026-01-25T09:00:00+09:00")),
            "受付時間外です。次の受付開始は2026年1月26日(月) 08:00です。"
        );
    }

    #[test]
    fn status_text_en_reads_as_the_page_shows_it() {
        assert_eq!(
            status_text_en(ts("2026-01-19T09:00:00+09:00")),
            "Open (until 18:00 today)"
        );
        assert_eq!(
            status_text_en(ts("2026-01-25T09:00:00+09:00")),
            "Closed. Next opening: Mon 26 Jan 2026 08:00 JST."
        );
    }

    #[test]
    fn after_2099_only_sundays_are_closed() {
        // 2100-01-01 is a Friday; no holiday is known that far ahead.
        assert!(is_open(ts("2100-01-01T10:00:00+09:00")));
        assert_eq!(hours_on(date(2100, 1, 3)), None);
    }

    #[test]
    fn longest_closed_stretch_fits_in_the_search_window() {
        let mut longest = 0;
        let mut run = 0;
        for day in date(holidays::FIRST_YEAR, 1, 1)
            .series(1.day())
            .take_while(|d| d.year() <= holidays::LAST_YEAR)
        {
            if hours_on(day).is_none() {
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        // Golden Week 2019: Sunday 4/28 to Monday 5/6.
        assert_eq!(longest, 9);
        assert!(longest < SEARCH_DAYS);
    }

    /// 2001-01-01T00:00:00Z and 2099-01-01T00:00:00Z as Unix seconds.
    const FROM_2001: i64 = 978_307_200;
    const TO_2099: i64 = 4_070_908_800;

    proptest! {
        #[test]
        fn next_open_is_never_earlier_and_is_open(
            second in FROM_2001..TO_2099,
            nanos in 0i32..1_000_000_000,
        ) {
            let at = Timestamp::new(second, nanos).expect("in range");
            let next = next_open(at);
            prop_assert!(next >= at);
            prop_assert!(is_open(next), "{at} -> {next}");
            if is_open(at) {
                prop_assert_eq!(next, at);
            }
        }
    }
}
