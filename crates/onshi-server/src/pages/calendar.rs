//! The campaign's schedule as a month calendar: the nights that distribute (from 20:00 into the
//! next morning), the excluded nights, the catch-up days and today.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use maud::{Markup, html};
use onshi_core::holidays;
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;

/// At most this many months are drawn (a long campaign shows its first months).
const MAX_MONTHS: usize = 3;

/// What a day is in the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Day {
    Night,
    Excluded,
    CatchUp,
    Nothing,
}

fn day_of(c: &Campaign, d: Date) -> Day {
    if c.windows().iter().any(|w| w.night == d) {
        Day::Night
    } else if c.excluded().contains(&d) {
        Day::Excluded
    } else if c.catch_up_date().is_some_and(|from| d >= from) {
        Day::CatchUp
    } else {
        Day::Nothing
    }
}

/// The calendar of the months from the first night to a week into the catch-up phase.
pub fn render(c: &Campaign, now: Timestamp, lang: Lang) -> Markup {
    let Some(first) = c.windows().first().map(|w| w.night).or(c.catch_up_date()) else {
        return html! {};
    };
    let last = c
        .catch_up_date()
        .and_then(|d| d.checked_add(jiff::ToSpan::days(6)).ok())
        .or(c.windows().last().map(|w| w.night))
        .unwrap_or(first);
    let today = jst::civil(now).date();
    let opens = c
        .night_hours()
        .map(|(o, _)| format!("{:02}:{:02}", o.hour(), o.minute()));
    let mut months = Vec::new();
    let mut m = first.first_of_month();
    while m <= last && months.len() < MAX_MONTHS {
        months.push(m);
        m = match m.checked_add(jiff::ToSpan::months(1)) {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    let heads: [&str; 7] = match lang {
        Lang::Ja => ["日", "月", "火", "水", "木", "金", "土"],
        Lang::En => ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
    };
    html! {
        div class="panels" id="calendar" {
            @for month in &months {
                div {
                    h3 { (match lang { Lang::Ja => format!("{}年{}月", month.year(), month.month()), Lang::En => month.strftime("%B %Y").to_string() }) }
                    div class="cal" {
                        @for h in heads { div class="head" { (h) } }
                        @for _ in 0..month.weekday().to_sunday_zero_offset() { div class="blank" {} }
                        @for d in month.series(jiff::ToSpan::days(1)).take_while(|d| d.month() == month.month()) {
                            @let kind = day_of(c, d);
                            @let red = d.weekday() == Weekday::Sunday || holidays::is_holiday(d);
                            div class={
                                (match kind { Day::Night => "night", Day::Excluded => "excluded", Day::CatchUp => "catch_up", Day::Nothing => "" })
                                @if d == today { " today" }
                            } data-date=(d.to_string()) {
                                strong style=[red.then_some("color:#b3261e")] { (d.day()) }
                                br;
                                @match kind {
                                    Day::Night => { (opens.clone().unwrap_or_default()) "–" }
                                    Day::Excluded => { (lang.pick("配信なし", "none")) }
                                    Day::CatchUp => { (lang.pick("終日", "all day")) }
                                    Day::Nothing => {}
                                }
                            }
                        }
                    }
                }
            }
        }
        p class="legend" {
            span class="night" style="background:#dbe9fb" { (lang.pick("夜間配信（翌朝まで）", "night window (into the next morning)")) }
            span style="background:#eee" { (lang.pick("配信なし", "excluded")) }
            span style="background:#fde9c8" { (lang.pick("終日配信", "catch-up, all day")) }
            span style="outline:2px solid #b3261e" { (lang.pick("今日", "today")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn the_25th_is_excluded_and_the_31st_starts_catch_up() {
        let c = Campaign::preset("2026-01").expect("preset");
        assert_eq!(day_of(&c, date(2026, 1, 19)), Day::Night);
        assert_eq!(day_of(&c, date(2026, 1, 25)), Day::Excluded);
        assert_eq!(day_of(&c, date(2026, 1, 30)), Day::Night);
        assert_eq!(day_of(&c, date(2026, 1, 31)), Day::CatchUp);
        assert_eq!(day_of(&c, date(2026, 1, 18)), Day::Nothing);
    }
}
