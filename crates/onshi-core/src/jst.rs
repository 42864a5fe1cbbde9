//! Japan time (日本標準時): the zone every user-visible time is shown in, and the one way to
//! write a time for people: `2026年1月19日(月) 20:00`.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{self, TimeZone};

/// Japan Standard Time, UTC+9. Japan has observed no daylight saving time since 1951, so a
/// fixed offset is exact for every date this product deals with and needs no tz database.
pub fn tz() -> TimeZone {
    TimeZone::fixed(tz::offset(9))
}

/// The civil date and time in Japan at `at`.
pub fn civil(at: Timestamp) -> DateTime {
    tz().to_datetime(at)
}

/// The one-character Japanese weekday name: 月, 火, 水, 木, 金, 土, 日.
pub fn weekday_ja(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Monday => "月",
        Weekday::Tuesday => "火",
        Weekday::Wednesday => "水",
        Weekday::Thursday => "木",
        Weekday::Friday => "金",
        Weekday::Saturday => "土",
        Weekday::Sunday => "日",
    }
}

/// `2026年1月19日(月)`.
pub fn format_date_ja(date: Date) -> String {
    format!(
        "{}年{}月{}日({})",
        date.year(),
        date.month(),
        date.day(),
        weekday_ja(date.weekday())
    )
}

/// `2026年1月19日(月) 20:00` for a civil date-time (already in the zone to show).
pub fn format_datetime_ja(dt: DateTime) -> String {
    format!(
        "{} {:02}:{:02}",
        format_date_ja(dt.date()),
        dt.hour(),
        dt.minute()
    )
}

/// `2026年1月19日(月) 20:00` for an instant, shown in Japan time.
pub fn format_ja(at: Timestamp) -> String {
    format_datetime_ja(civil(at))
}

/// `Mon 19 Jan 2026 20:00` for a civil date-time, the English counterpart of
/// [`format_datetime_ja`].
pub fn format_datetime_en(dt: DateTime) -> String {
    dt.strftime("%a %-d %b %Y %H:%M").to_string()
}

/// `Mon 19 Jan 2026` for a date.
pub fn format_date_en(date: Date) -> String {
    date.strftime("%a %-d %b %Y").to_string()
}

/// `Mon 19 Jan 2026 20:00 JST`, the English counterpart of [`format_ja`].
pub fn format_en(at: Timestamp) -> String {
    format!("{} JST", format_datetime_en(civil(at)))
}

/// An instant in Japan time in the language asked for.
pub fn format(at: Timestamp, lang: crate::lang::Lang) -> String {
    match lang {
        crate::lang::Lang::Ja => format_ja(at),
        crate::lang::Lang::En => format_en(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_an_instant_in_japan_time_with_weekday() {
        let at: Timestamp = "2026-01-19T11:00:00Z".parse().expect("valid instant");
        assert_eq!(format_ja(at), "2026年1月19日(月) 20:00");
        assert_eq!(format_en(at), "Mon 19 Jan 2026 20:00 JST");
    }

    #[test]
    fn the_date_changes_at_midnight_japan_time_not_utc() {
        let at: Timestamp = "2026-01-24T15:30:00Z".parse().expect("valid instant");
        assert_eq!(format_ja(at), "2026年1月25日(日) 00:30");
    }
}
