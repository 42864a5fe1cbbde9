//! Japanese public holidays (国民の祝日に関する法律) for 2000–2099, hand-written from the law
//! and its amendments so that the crate needs no data file and no network.
//!
//! Three layers, in the order the law applies them: the named holidays of Article 2 (国民の祝日),
//! then the substitute holiday of Article 3(2) (振替休日), then the sandwiched day of Article 3(3)
//! (国民の休日). The named holidays changed several times in this range (Happy Monday 2000/2003,
//! 昭和の日 2007, 山の日 2016, the 2019 enthronement, the 2020/2021 Olympic moves), and each
//! change is written down where the holiday is.

use jiff::ToSpan;
use jiff::civil::{Date, Weekday, date};

/// A holiday: its date and its Japanese name (e.g. "元日", "振替休日", "国民の休日").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    /// The civil date in Japan.
    pub date: Date,
    /// The name the Cabinet Office (内閣府) uses, e.g. "成人の日".
    pub name_ja: &'static str,
    /// An English name for English pages, e.g. "Coming of Age Day".
    pub name_en: &'static str,
}

/// The first year whose holidays this module knows.
pub const FIRST_YEAR: i16 = 2000;

/// The last year whose holidays this module knows: the equinox formula is only valid up to 2099.
pub const LAST_YEAR: i16 = 2099;

/// A year outside [`FIRST_YEAR`]`..=`[`LAST_YEAR`] was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "year {0} is outside the supported holiday calendar ({FIRST_YEAR}–{LAST_YEAR}); \
     the holiday rules before 2000 and the equinox formula after 2099 are not implemented"
)]
pub struct YearOutOfRange(pub i16);

/// A holiday's names, before it is given a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    ja: &'static str,
    en: &'static str,
}

const fn name(ja: &'static str, en: &'static str) -> Name {
    Name { ja, en }
}

const NEW_YEARS_DAY: Name = name("元日", "New Year's Day");
const COMING_OF_AGE_DAY: Name = name("成人の日", "Coming of Age Day");
const NATIONAL_FOUNDATION_DAY: Name = name("建国記念の日", "National Foundation Day");
const EMPERORS_BIRTHDAY: Name = name("天皇誕生日", "The Emperor's Birthday");
const VERNAL_EQUINOX_DAY: Name = name("春分の日", "Vernal Equinox Day");
const SHOWA_DAY: Name = name("昭和の日", "Showa Day");
const CONSTITUTION_DAY: Name = name("憲法記念日", "Constitution Memorial Day");
const GREENERY_DAY: Name = name("みどりの日", "Greenery Day");
const CHILDRENS_DAY: Name = name("こどもの日", "Children's Day");
const MARINE_DAY: Name = name("海の日", "Marine Day");
const MOUNTAIN_DAY: Name = name("山の日", "Mountain Day");
const RESPECT_FOR_THE_AGED_DAY: Name = name("敬老の日", "Respect for the Aged Day");
const AUTUMNAL_EQUINOX_DAY: Name = name("秋分の日", "Autumnal Equinox Day");
const HEALTH_AND_SPORTS_DAY: Name = name("体育の日", "Health and Sports Day");
const SPORTS_DAY: Name = name("スポーツの日", "Sports Day");
const CULTURE_DAY: Name = name("文化の日", "Culture Day");
const LABOUR_THANKSGIVING_DAY: Name = name("勤労感謝の日", "Labour Thanksgiving Day");
const ENTHRONEMENT_DAY: Name = name("天皇の即位の日", "Enthronement Day");
const ENTHRONEMENT_CEREMONY_DAY: Name =
    name("即位礼正殿の儀の行われる日", "Enthronement Ceremony Day");
const SUBSTITUTE_HOLIDAY: Name = name("振替休日", "Substitute Holiday");
const CITIZENS_HOLIDAY: Name = name("国民の休日", "Citizens' Holiday");

/// Every holiday of `year`, sorted by date, or [`YearOutOfRange`] outside 2000–2099.
pub fn holidays_in(year: i16) -> Result<Vec<Holiday>, YearOutOfRange> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(YearOutOfRange(year));
    }
    let mut national = national_holidays(year);
    national.sort_by_key(|&(day, _)| day);
    // Articles 3(2) and 3(3) look only at 国民の祝日, never at the days they themselves create.
    let is_national = |day: Date| national.iter().any(|&(d, _)| d == day);

    let mut others: Vec<(Date, Name)> = Vec::new();
    for &(day, _) in &national {
        if day.weekday() == Weekday::Sunday
            && let Some(substitute) = substitute_for(year, day, is_national)
        {
            others.push((substitute, SUBSTITUTE_HOLIDAY));
        }
    }
    for &(day, _) in &national {
        let (Ok(between), Ok(after)) = (day.tomorrow(), day.checked_add(2.days())) else {
            continue;
        };
        // Until 2006 the law excluded Sundays and substitute days explicitly; from 2007 it
        // excludes only 国民の祝日, but no Sunday or substitute day is sandwiched in 2007–2099,
        // so one rule serves the whole range.
        if is_national(after)
            && !is_national(between)
            && between.weekday() != Weekday::Sunday
            && !others.iter().any(|&(d, _)| d == between)
        {
            others.push((between, CITIZENS_HOLIDAY));
        }
    }

    // No rule crosses a year boundary: 12/31 and 1/2 are never 国民の祝日, so neither a
    // substitute nor a sandwiched day can land in another year.
    let mut all: Vec<Holiday> = national
        .into_iter()
        .chain(others)
        .map(|(date, name)| Holiday {
            date,
            name_ja: name.ja,
            name_en: name.en,
        })
        .collect();
    all.sort_by_key(|h| h.date);
    Ok(all)
}

/// The holiday on `date`, or `None` on an ordinary day. Also `None` for any date outside
/// 2000–2099: callers past [`LAST_YEAR`] see every day as a working day, never an error.
pub fn holiday(date: Date) -> Option<Holiday> {
    holidays_in(date.year())
        .ok()?
        .into_iter()
        .find(|h| h.date == date)
}

/// Whether `date` is a holiday (祝日, 振替休日 or 国民の休日); `false` outside 2000–2099.
pub fn is_holiday(date: Date) -> bool {
    holiday(date).is_some()
}

/// The 国民の祝日 of Article 2 for `year` (plus the two 2019 days the enthronement law made
/// holidays with the same standing), in no particular order. Every `date(..)` here is a real
/// calendar date for any year 2000–2099, so jiff's constructor never panics.
fn national_holidays(year: i16) -> Vec<(Date, Name)> {
    let mut out = vec![
        (date(year, 1, 1), NEW_YEARS_DAY),
        // Happy Monday (2000 amendment): 2nd Monday of January since 2000.
        (nth_monday(year, 1, 2), COMING_OF_AGE_DAY),
        (date(year, 2, 11), NATIONAL_FOUNDATION_DAY),
        (date(year, 3, vernal_equinox_day(year)), VERNAL_EQUINOX_DAY),
        (date(year, 5, 3), CONSTITUTION_DAY),
        (date(year, 5, 5), CHILDRENS_DAY),
        (
            date(year, 9, autumnal_equinox_day(year)),
            AUTUMNAL_EQUINOX_DAY,
        ),
        (date(year, 11, 3), CULTURE_DAY),
        (date(year, 11, 23), LABOUR_THANKSGIVING_DAY),
    ];

    // The birthday follows the reigning emperor: Heisei's 12/23 until 2018, none in 2019 (the
    // abdication fell on 4/30 and Reiwa's birthday 2/23 had already passed), 2/23 from 2020.
    match year {
        ..=2018 => out.push((date(year, 12, 23), EMPERORS_BIRTHDAY)),
        2019 => {}
        _ => out.push((date(year, 2, 23), EMPERORS_BIRTHDAY)),
    }

    // 2005 amendment, in force 2007: 4/29 became 昭和の日 and みどりの日 moved to 5/4.
    if year <= 2006 {
        out.push((date(year, 4, 29), GREENERY_DAY));
    } else {
        out.push((date(year, 4, 29), SHOWA_DAY));
        out.push((date(year, 5, 4), GREENERY_DAY));
    }

    // 海の日: fixed 7/20 until 2002, 3rd Monday of July from 2003 (Happy Monday II), and moved
    // to the eve of the Olympic opening ceremony in 2020 and 2021 by the Tokyo 2020 special
    // measures act.
    let marine = match year {
        ..=2002 => date(year, 7, 20),
        2020 => date(2020, 7, 23),
        2021 => date(2021, 7, 22),
        _ => nth_monday(year, 7, 3),
    };
    out.push((marine, MARINE_DAY));

    // 山の日 exists from 2016; moved next to the Olympic closing ceremony in 2020 (the day
    // after) and 2021 (the day itself, a Sunday, hence 振替休日 8/9).
    match year {
        ..=2015 => {}
        2020 => out.push((date(2020, 8, 10), MOUNTAIN_DAY)),
        2021 => out.push((date(2021, 8, 8), MOUNTAIN_DAY)),
        _ => out.push((date(year, 8, 11), MOUNTAIN_DAY)),
    }

    // 敬老の日: fixed 9/15 until 2002, 3rd Monday of September from 2003.
    let aged = if year <= 2002 {
        date(year, 9, 15)
    } else {
        nth_monday(year, 9, 3)
    };
    out.push((aged, RESPECT_FOR_THE_AGED_DAY));

    // 2nd Monday of October since 2000; renamed スポーツの日 from 2020, and moved to the Olympic
    // opening ceremony in 2020 and 2021 (so those Octobers have no holiday at all).
    match year {
        ..=2019 => out.push((nth_monday(year, 10, 2), HEALTH_AND_SPORTS_DAY)),
        2020 => out.push((date(2020, 7, 24), SPORTS_DAY)),
        2021 => out.push((date(2021, 7, 23), SPORTS_DAY)),
        _ => out.push((nth_monday(year, 10, 2), SPORTS_DAY)),
    }

    // 天皇の即位の日及び即位礼正殿の儀の行われる日を休日とする法律 (2018): both days are treated
    // as 国民の祝日, which is why 4/30 and 5/2 of 2019 became 国民の休日.
    if year == 2019 {
        out.push((date(2019, 5, 1), ENTHRONEMENT_DAY));
        out.push((date(2019, 10, 22), ENTHRONEMENT_CEREMONY_DAY));
    }

    out
}

/// The day that becomes 振替休日 for the 国民の祝日 on `sunday`.
///
/// From 2007 it is the first later day that is not a 国民の祝日 (so 5/3 on a Sunday gives 5/6);
/// until 2006 the law named only "the next day", which was lost if that day was itself a 祝日.
fn substitute_for(year: i16, sunday: Date, is_national: impl Fn(Date) -> bool) -> Option<Date> {
    let mut day = sunday.tomorrow().ok()?;
    if year < 2007 {
        return (!is_national(day)).then_some(day);
    }
    // Terminates: a year has only about twenty 国民の祝日.
    while is_national(day) {
        day = day.tomorrow().ok()?;
    }
    Some(day)
}

/// The `nth` Monday of `month`, e.g. the 2nd Monday of January for 成人の日.
fn nth_monday(year: i16, month: i8, nth: i8) -> Date {
    let first_monday = 1 + date(year, month, 1).weekday().until(Weekday::Monday);
    date(year, month, first_monday + 7 * (nth - 1))
}

/// Day of March of 春分の日 by the standard formula, valid 1980–2099.
fn vernal_equinox_day(year: i16) -> i8 {
    equinox_day(year, 20_843_100)
}

/// Day of September of 秋分の日 by the standard formula, valid 1980–2099.
fn autumnal_equinox_day(year: i16) -> i8 {
    equinox_day(year, 23_248_800)
}

/// `floor(base + 0.242194 * (y - 1980) - floor((y - 1980) / 4))`, in millionths of a day so the
/// floor is exact integer division rather than a float that could land a hair below an integer.
/// `base_millionths` is the formula's constant times 10^6 (20.8431 → 20_843_100).
fn equinox_day(year: i16, base_millionths: i64) -> i8 {
    let n = i64::from(year) - 1980;
    let day = (base_millionths + 242_194 * n) / 1_000_000 - n / 4;
    // Between 19 and 24 for every year in range, so the narrowing cannot truncate.
    day as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The year's list as (month, day, name_ja), the shape the Cabinet Office publishes.
    fn listed(year: i16) -> Vec<(i8, i8, &'static str)> {
        holidays_in(year)
            .expect("year in range")
            .into_iter()
            .map(|h| (h.date.month(), h.date.day(), h.name_ja))
            .collect()
    }

    fn name_on(y: i16, m: i8, d: i8) -> Option<&'static str> {
        holiday(date(y, m, d)).map(|h| h.name_ja)
    }

    #[test]
    fn list_for_2019_matches_the_cabinet_office() {
        assert_eq!(
            listed(2019),
            vec![
                (1, 1, "元日"),
                (1, 14, "成人の日"),
                (2, 11, "建国記念の日"),
                (3, 21, "春分の日"),
                (4, 29, "昭和の日"),
                (4, 30, "国民の休日"),
                (5, 1, "天皇の即位の日"),
                (5, 2, "国民の休日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (5, 6, "振替休日"),
                (7, 15, "海の日"),
                (8, 11, "山の日"),
                (8, 12, "振替休日"),
                (9, 16, "敬老の日"),
                (9, 23, "秋分の日"),
                (10, 14, "体育の日"),
                (10, 22, "即位礼正殿の儀の行われる日"),
                (11, 3, "文化の日"),
                (11, 4, "振替休日"),
                (11, 23, "勤労感謝の日"),
            ]
        );
    }

    #[test]
    fn list_for_2020_matches_the_cabinet_office() {
        assert_eq!(
            listed(2020),
            vec![
                (1, 1, "元日"),
                (1, 13, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (2, 24, "振替休日"),
                (3, 20, "春分の日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (5, 6, "振替休日"),
                (7, 23, "海の日"),
                (7, 24, "スポーツの日"),
                (8, 10, "山の日"),
                (9, 21, "敬老の日"),
                (9, 22, "秋分の日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
            ]
        );
    }

    #[test]
    fn list_for_2021_matches_the_cabinet_office() {
        assert_eq!(
            listed(2021),
            vec![
                (1, 1, "元日"),
                (1, 11, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (3, 20, "春分の日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (7, 22, "海の日"),
                (7, 23, "スポーツの日"),
                (8, 8, "山の日"),
                (8, 9, "振替休日"),
                (9, 20, "敬老の日"),
                (9, 23, "秋分の日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
            ]
        );
    }

    #[test]
    fn list_for_2025_matches_the_cabinet_office() {
        assert_eq!(
            listed(2025),
            vec![
                (1, 1, "元日"),
                (1, 13, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (2, 24, "振替休日"),
                (3, 20, "春分の日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (5, 6, "振替休日"),
                (7, 21, "海の日"),
                (8, 11, "山の日"),
                (9, 15, "敬老の日"),
                (9, 23, "秋分の日"),
                (10, 13, "スポーツの日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
                (11, 24, "振替休日"),
            ]
        );
    }

    #[test]
    fn list_for_2026_matches_the_cabinet_office() {
        assert_eq!(
            listed(2026),
            vec![
                (1, 1, "元日"),
                (1, 12, "成人の日"),
                (2, 11, "建国記念の日"),
                (2, 23, "天皇誕生日"),
                (3, 20, "春分の日"),
                (4, 29, "昭和の日"),
                (5, 3, "憲法記念日"),
                (5, 4, "みどりの日"),
                (5, 5, "こどもの日"),
                (5, 6, "振替休日"),
                (7, 20, "海の日"),
                (8, 11, "山の日"),
                (9, 21, "敬老の日"),
                (9, 22, "国民の休日"),
                (9, 23, "秋分の日"),
                (10, 12, "スポーツの日"),
                (11, 3, "文化の日"),
                (11, 23, "勤労感謝の日"),
            ]
        );
    }

    #[test]
    fn autumnal_equinox_2026_is_23_september() {
        assert_eq!(name_on(2026, 9, 23), Some("秋分の日"));
    }

    #[test]
    fn silver_week_2009_has_citizens_holiday_on_22_september() {
        assert_eq!(name_on(2009, 9, 21), Some("敬老の日"));
        assert_eq!(name_on(2009, 9, 22), Some("国民の休日"));
        assert_eq!(name_on(2009, 9, 23), Some("秋分の日"));
    }

    #[test]
    fn silver_week_2015_has_citizens_holiday_on_22_september() {
        assert_eq!(name_on(2015, 9, 21), Some("敬老の日"));
        assert_eq!(name_on(2015, 9, 22), Some("国民の休日"));
        assert_eq!(name_on(2015, 9, 23), Some("秋分の日"));
    }

    #[test]
    fn before_2007_a_sunday_holiday_moves_to_the_monday() {
        // 2006-01-01 and 2001-12-23 were Sundays; 2002-05-05 too.
        assert_eq!(name_on(2006, 1, 2), Some("振替休日"));
        assert_eq!(name_on(2001, 12, 24), Some("振替休日"));
        assert_eq!(name_on(2002, 5, 6), Some("振替休日"));
    }

    #[test]
    fn before_2007_the_4_may_between_two_holidays_is_a_citizens_holiday_unless_sunday() {
        assert_eq!(name_on(2000, 4, 29), Some("みどりの日"));
        assert_eq!(name_on(2000, 5, 4), Some("国民の休日"));
        // 2003-05-04 was a Sunday: no 国民の休日, and nothing to substitute.
        assert_eq!(name_on(2003, 5, 4), None);
        assert_eq!(name_on(2003, 5, 6), None);
    }

    #[test]
    fn happy_monday_days_were_fixed_dates_until_2002() {
        assert_eq!(name_on(2002, 7, 20), Some("海の日"));
        assert_eq!(name_on(2002, 9, 15), Some("敬老の日"));
        assert_eq!(name_on(2003, 7, 21), Some("海の日"));
        assert_eq!(name_on(2003, 9, 15), Some("敬老の日"));
    }

    #[test]
    fn emperors_birthday_is_23_december_until_2018_and_23_february_from_2020() {
        assert_eq!(name_on(2018, 12, 23), Some("天皇誕生日"));
        assert_eq!(name_on(2018, 12, 24), Some("振替休日"));
        assert_eq!(name_on(2019, 12, 23), None);
        assert_eq!(name_on(2019, 2, 23), None);
    }

    #[test]
    fn mountain_day_starts_in_2016() {
        assert_eq!(name_on(2015, 8, 11), None);
        assert_eq!(name_on(2016, 8, 11), Some("山の日"));
    }

    #[test]
    fn ordinary_day_is_not_a_holiday() {
        assert_eq!(holiday(date(2026, 1, 19)), None);
        assert!(!is_holiday(date(2026, 1, 19)));
        assert!(is_holiday(date(2026, 1, 1)));
    }

    #[test]
    fn english_names_come_with_the_holiday() {
        let h = holiday(date(2026, 5, 6)).expect("holiday");
        assert_eq!((h.name_ja, h.name_en), ("振替休日", "Substitute Holiday"));
    }

    #[test]
    fn years_outside_2000_to_2099_are_out_of_range() {
        assert_eq!(holidays_in(1999), Err(YearOutOfRange(1999)));
        assert_eq!(holidays_in(2100), Err(YearOutOfRange(2100)));
        assert!(holidays_in(2000).is_ok());
        assert!(holidays_in(2099).is_ok());
        assert!(
            YearOutOfRange(2100)
                .to_string()
                .contains("outside the supported holiday calendar (2000–2099)")
        );
    }

    #[test]
    fn dates_outside_2000_to_2099_are_never_holidays() {
        assert_eq!(holiday(date(1999, 1, 1)), None);
        assert_eq!(holiday(date(2100, 1, 1)), None);
        assert!(!is_holiday(date(2100, 1, 1)));
    }

    fn is_national(h: &Holiday) -> bool {
        h.name_ja != "振替休日" && h.name_ja != "国民の休日"
    }

    /// The invariants every year must hold; used by the exhaustive test and the proptest.
    fn check_year(year: i16) -> Result<(), String> {
        let list = holidays_in(year).map_err(|e| e.to_string())?;
        if list.len() < 15 {
            return Err(format!("{year}: only {} holidays", list.len()));
        }
        if !list.windows(2).all(|w| w[0].date < w[1].date) {
            return Err(format!("{year}: not strictly sorted by date"));
        }
        let national_on = |d: Date| list.iter().any(|h| h.date == d && is_national(h));
        for h in list.iter().filter(|h| h.name_ja == "振替休日") {
            // Walk back over the run of 祝日 that pushed the substitute here; it must start on
            // a Sunday, and before 2007 the run is that Sunday alone.
            let mut day = h.date;
            let mut length = 0;
            loop {
                day = day.yesterday().map_err(|e| e.to_string())?;
                length += 1;
                if !national_on(day) {
                    return Err(format!("{year}: {} follows no holiday run", h.date));
                }
                if day.weekday() == Weekday::Sunday {
                    break;
                }
            }
            if year < 2007 && length != 1 {
                return Err(format!("{year}: {} is not the day after a Sunday", h.date));
            }
        }
        Ok(())
    }

    #[test]
    fn every_supported_year_is_sorted_unique_and_its_substitutes_follow_sundays() {
        for year in FIRST_YEAR..=LAST_YEAR {
            assert_eq!(check_year(year), Ok(()));
        }
    }

    #[test]
    fn from_2007_every_sunday_holiday_gets_a_substitute() {
        for year in 2007..=LAST_YEAR {
            let list = holidays_in(year).expect("in range");
            for sunday in list
                .iter()
                .filter(|h| is_national(h) && h.date.weekday() == Weekday::Sunday)
            {
                let substitute = list
                    .iter()
                    .find(|h| h.date > sunday.date && !is_national(h))
                    .map(|h| h.name_ja);
                assert_eq!(substitute, Some("振替休日"), "{}", sunday.date);
            }
        }
    }

    proptest! {
        #[test]
        fn any_year_is_sorted_unique_and_its_substitutes_follow_sundays(
            year in FIRST_YEAR..=LAST_YEAR
        ) {
            prop_assert_eq!(check_year(year), Ok(()));
        }

    }
}
