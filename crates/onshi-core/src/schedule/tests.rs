use super::*;
use jiff::SignedDuration;
use proptest::prelude::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("valid RFC 3339 instant")
}

fn preset() -> Campaign {
    Campaign::preset("2026-01").expect("the preset is valid")
}

fn campaign(body: &str) -> Result<Campaign, ScheduleError> {
    Campaign::parse(&format!("id = \"t\"\ntitle = \"test\"\n{body}"))
}

fn jst(c: &Campaign, t: Option<Timestamp>) -> Option<String> {
    t.map(|t| c.rfc3339(t))
}

#[test]
fn preset_has_eleven_nights_without_the_25th() {
    let c = preset();
    assert_eq!(c.id(), "2026-01");
    assert_eq!(c.windows().len(), 11);
    let nights: Vec<String> = c.windows().iter().map(|w| w.night.to_string()).collect();
    assert!(!nights.contains(&"2026-01-25".to_owned()));
    assert_eq!(nights.first().map(String::as_str), Some("2026-01-19"));
    assert_eq!(nights.last().map(String::as_str), Some("2026-01-30"));
    assert_eq!(c.excluded(), &[jiff::civil::date(2026, 1, 25)]);
    assert_eq!(c.rfc3339(c.windows()[0].opens), "2026-01-19T20:00:00+09:00");
    assert_eq!(
        c.rfc3339(c.windows()[0].closes),
        "2026-01-20T05:00:00+09:00"
    );
}

#[test]
fn night_of_24th_runs_until_05_on_25th() {
    let c = preset();
    let s = c.status(at("2026-01-25T04:30:00+09:00"));
    assert!(s.distributing);
    assert_eq!(s.phase, Phase::Night);
    assert_eq!(s.night, Some(jiff::civil::date(2026, 1, 24)));
    assert_eq!(
        jst(&c, s.opened_at).as_deref(),
        Some("2026-01-24T20:00:00+09:00")
    );
    assert_eq!(
        jst(&c, s.closes_at).as_deref(),
        Some("2026-01-25T05:00:00+09:00")
    );
    assert_eq!(s.next_opening, None);
}

#[test]
fn no_distribution_on_the_night_of_the_25th() {
    let c = preset();
    for t in [
        "2026-01-25T05:00:00+09:00",
        "2026-01-25T21:00:00+09:00",
        "2026-01-26T04:59:59+09:00",
    ] {
        let s = c.status(at(t));
        assert!(!s.distributing, "{t}");
        assert_eq!(s.phase, Phase::Between, "{t}");
        assert_eq!(
            jst(&c, s.next_opening).as_deref(),
            Some("2026-01-26T20:00:00+09:00"),
            "{t}"
        );
        assert_eq!((s.night, s.opened_at, s.closes_at), (None, None, None));
    }
}

#[test]
fn windows_are_half_open() {
    let c = preset();
    assert!(c.is_distributing(at("2026-01-19T20:00:00+09:00")));
    assert!(!c.is_distributing(at("2026-01-19T19:59:59.999+09:00")));
    assert!(c.is_distributing(at("2026-01-20T04:59:59.999+09:00")));
    assert!(!c.is_distributing(at("2026-01-20T05:00:00+09:00")));
}

#[test]
fn before_the_first_night_points_at_it() {
    let c = preset();
    let s = c.status(at("2026-01-10T12:00:00+09:00"));
    assert_eq!(s.phase, Phase::Before);
    assert!(!s.distributing);
    assert_eq!(
        jst(&c, s.next_opening).as_deref(),
        Some("2026-01-19T20:00:00+09:00")
    );
}

#[test]
fn daytime_between_nights_points_at_the_same_evening() {
    let c = preset();
    let s = c.status(at("2026-01-21T12:00:00+09:00"));
    assert_eq!(s.phase, Phase::Between);
    assert_eq!(
        jst(&c, s.next_opening).as_deref(),
        Some("2026-01-21T20:00:00+09:00")
    );
}

#[test]
fn night_of_30th_wins_over_catch_up_until_05_on_31st() {
    let c = preset();
    let s = c.status(at("2026-01-31T02:00:00+09:00"));
    assert_eq!(s.phase, Phase::Night);
    assert_eq!(s.night, Some(jiff::civil::date(2026, 1, 30)));
    assert_eq!(
        jst(&c, s.closes_at).as_deref(),
        Some("2026-01-31T05:00:00+09:00")
    );
    let s = c.status(at("2026-01-31T05:00:00+09:00"));
    assert_eq!(s.phase, Phase::CatchUp);
    assert!(s.distributing);
    assert_eq!(
        jst(&c, s.opened_at).as_deref(),
        Some("2026-01-31T00:00:00+09:00")
    );
    assert_eq!(s.closes_at, None);
}

#[test]
fn catch_up_runs_all_day_with_no_end() {
    let c = preset();
    for t in ["2026-02-10T13:00:00+09:00", "2027-06-01T03:00:00Z"] {
        let s = c.status(at(t));
        assert_eq!(s.phase, Phase::CatchUp, "{t}");
        assert!(s.distributing);
        assert_eq!((s.closes_at, s.next_opening, s.night), (None, None, None));
    }
}

#[test]
fn instants_with_any_offset_are_the_same_instant() {
    let c = preset();
    let z = c.report(at("2026-01-24T19:30:00Z"));
    let jst = c.report(at("2026-01-25T04:30:00+09:00"));
    assert_eq!(z, jst);
    assert_eq!(z.at, "2026-01-25T04:30:00+09:00");
    assert_eq!(z.night.as_deref(), Some("2026-01-24"));
}

#[test]
fn report_has_the_contract_shape() {
    let c = preset();
    let r = c.report(at("2026-01-25T21:00:00+09:00"));
    assert_eq!(r.phase.slug(), "between");
    assert_eq!(r.next_opening.as_deref(), Some("2026-01-26T20:00:00+09:00"));
    assert_eq!(r.opened_at, None);
}

const BERLIN: &str = r#"timezone = "Europe/Berlin"
[nights]
first = 2026-03-27
last = 2026-03-30
opens = "22:00"
closes = "06:00"
"#;

#[test]
fn berlin_spring_forward_night_is_one_hour_shorter() {
    let c = campaign(BERLIN).expect("valid");
    let hours: Vec<i64> = c
        .windows()
        .iter()
        .map(|w| (w.closes.as_second() - w.opens.as_second()) / 3600)
        .collect();
    // The night of 28 March 2026 loses an hour at 02:00 CET → 03:00 CEST.
    assert_eq!(hours, [8, 7, 8, 8]);
    assert_eq!(
        c.rfc3339(c.windows()[1].closes),
        "2026-03-29T06:00:00+02:00"
    );
    assert_eq!(c.rfc3339(c.windows()[1].opens), "2026-03-28T22:00:00+01:00");
}

#[test]
fn berlin_fall_back_night_is_one_hour_longer() {
    let c = campaign(
        r#"timezone = "Europe/Berlin"
[nights]
first = 2026-10-24
last = 2026-10-24
opens = "22:00"
closes = "06:00"
"#,
    )
    .expect("valid");
    let w = c.windows()[0];
    assert_eq!(w.closes.as_second() - w.opens.as_second(), 9 * 3600);
    // 02:30 happens twice that night; both are inside the window.
    assert!(c.is_distributing(at("2026-10-25T02:30:00+02:00")));
    assert!(c.is_distributing(at("2026-10-25T02:30:00+01:00")));
}

#[test]
fn a_window_swallowed_by_the_spring_forward_gap_is_left_out() {
    let c = campaign(
        r#"timezone = "Europe/Berlin"
[nights]
first = 2026-03-28
last = 2026-03-30
opens = "02:30"
closes = "03:00"
"#,
    )
    .expect("other nights remain");
    // On 29 March 02:30 does not exist (it becomes 03:30 CEST), so 02:30–03:00 is empty.
    let nights: Vec<String> = c.windows().iter().map(|w| w.night.to_string()).collect();
    assert_eq!(nights, ["2026-03-28", "2026-03-30"]);
}

#[test]
fn a_window_inside_the_spring_forward_gap_moves_past_the_jump() {
    let c = campaign(
        r#"timezone = "Europe/Berlin"
[nights]
first = 2026-03-29
last = 2026-03-29
opens = "02:15"
closes = "02:45"
"#,
    )
    .expect("valid");
    let w = c.windows()[0];
    assert_eq!(c.rfc3339(w.opens), "2026-03-29T03:15:00+02:00");
    assert_eq!(c.rfc3339(w.closes), "2026-03-29T03:45:00+02:00");
}

const DAILY_24H: &str = r#"timezone = "Asia/Tokyo"
[nights]
first = 2026-01-19
last = 2026-01-21
except = [2026-01-20]
opens = "09:00"
closes = "09:00"
"#;

#[test]
fn closes_equal_to_opens_is_a_24_hour_window() {
    let c = campaign(DAILY_24H).expect("valid");
    let w = c.windows()[0];
    assert_eq!(w.closes.as_second() - w.opens.as_second(), 24 * 3600);
    let s = c.status(at("2026-01-20T08:59:00+09:00"));
    assert_eq!(s.night, Some(jiff::civil::date(2026, 1, 19)));
    let s = c.status(at("2026-01-20T09:00:00+09:00"));
    assert_eq!(s.phase, Phase::Between);
    assert_eq!(
        jst(&c, s.next_opening).as_deref(),
        Some("2026-01-21T09:00:00+09:00")
    );
}

#[test]
fn back_to_back_24_hour_windows_are_one_spell() {
    let c = campaign(
        r#"timezone = "Asia/Tokyo"
[nights]
first = 2026-01-19
last = 2026-01-21
opens = "09:00"
closes = "09:00"
"#,
    )
    .expect("valid");
    let s = c.status(at("2026-01-20T09:00:00+09:00"));
    assert_eq!(s.night, Some(jiff::civil::date(2026, 1, 20)));
    assert_eq!(c.next_opening(at("2026-01-19T10:00:00+09:00")), None);
    let s = c.status(at("2026-01-22T09:00:00+09:00"));
    assert_eq!(s.phase, Phase::After);
    assert_eq!(s.next_opening, None);
}

#[test]
fn after_the_last_night_without_catch_up_nothing_opens_again() {
    let c = campaign(
        r#"timezone = "Asia/Tokyo"
[nights]
first = 2026-01-19
last = 2026-01-19
opens = "20:00"
closes = "05:00"
"#,
    )
    .expect("valid");
    let s = c.status(at("2026-01-21T00:00:00+09:00"));
    assert_eq!(s.phase, Phase::After);
    assert_eq!(s.next_opening, None);
}

#[test]
fn a_catch_up_only_campaign_is_before_then_catch_up() {
    let c = campaign("timezone = \"Asia/Tokyo\"\n[catch_up]\nall_day_from = 2026-02-01\n")
        .expect("valid");
    let s = c.status(at("2026-01-31T23:00:00+09:00"));
    assert_eq!(s.phase, Phase::Before);
    assert_eq!(
        jst(&c, s.next_opening).as_deref(),
        Some("2026-02-01T00:00:00+09:00")
    );
    assert_eq!(
        c.status(at("2026-02-01T00:00:00+09:00")).phase,
        Phase::CatchUp
    );
}

#[test]
fn catch_up_starting_on_the_last_night_takes_the_day_and_the_night_keeps_its_label() {
    let c = campaign(
        r#"timezone = "Asia/Tokyo"
[nights]
first = 2026-01-19
last = 2026-01-21
opens = "20:00"
closes = "05:00"
[catch_up]
all_day_from = 2026-01-21
"#,
    )
    .expect("valid");
    assert_eq!(
        c.status(at("2026-01-21T12:00:00+09:00")).phase,
        Phase::CatchUp
    );
    assert_eq!(
        c.status(at("2026-01-21T21:00:00+09:00")).phase,
        Phase::Night
    );
    assert_eq!(
        c.status(at("2026-01-22T06:00:00+09:00")).phase,
        Phase::CatchUp
    );
}

fn rejects(body: &str) -> ScheduleError {
    campaign(body).expect_err("must be rejected")
}

const NIGHTS_TAIL: &str = "opens = \"20:00\"\ncloses = \"05:00\"\n";

#[test]
fn an_empty_schedule_is_rejected() {
    assert_eq!(rejects("timezone = \"Asia/Tokyo\"\n"), ScheduleError::Empty);
    let all_excluded = format!(
        "timezone = \"Asia/Tokyo\"\n[nights]\nfirst = 2026-01-19\nlast = 2026-01-20\nexcept = [2026-01-19, 2026-01-20]\n{NIGHTS_TAIL}"
    );
    assert_eq!(rejects(&all_excluded), ScheduleError::Empty);
}

#[test]
fn malformed_fields_are_rejected_naming_the_field() {
    let nights = |first: &str, last: &str, extra: &str, opens: &str, closes: &str| {
        format!(
            "timezone = \"Asia/Tokyo\"\n[nights]\nfirst = {first}\nlast = {last}\n{extra}opens = \"{opens}\"\ncloses = \"{closes}\"\n"
        )
    };
    let ok = ("2026-01-19", "2026-01-30", "", "20:00", "05:00");
    assert!(campaign(&nights(ok.0, ok.1, ok.2, ok.3, ok.4)).is_ok());

    for bad_time in ["25:00", "8:00", "20:00:00", "20:60", "", "twenty"] {
        let e = rejects(&nights(ok.0, ok.1, "", bad_time, ok.4));
        assert!(e.to_string().contains("nights.opens"), "{e}");
    }
    let e = rejects(&nights(ok.0, ok.1, "", ok.3, "5"));
    assert!(e.to_string().contains("nights.closes"));
    assert!(matches!(
        rejects(&nights("2026-01-30", "2026-01-19", "", ok.3, ok.4)),
        ScheduleError::LastBeforeFirst { .. }
    ));
    assert!(matches!(
        rejects(&nights(ok.0, ok.1, "except = [2026-02-25]\n", ok.3, ok.4)),
        ScheduleError::ExceptOutsideNights(_)
    ));
    let e = rejects(&nights("2026-01-19T20:00:00+09:00", ok.1, "", ok.3, ok.4));
    assert!(e.to_string().contains("nights.first"), "{e}");
    assert!(matches!(
        rejects(&nights("2000-01-01", "2026-01-01", "", ok.3, ok.4)),
        ScheduleError::TooManyNights(_)
    ));
}

#[test]
fn typos_and_bad_headers_are_rejected() {
    let e = rejects("timezone = \"Asia/Tokio\"\n[catch_up]\nall_day_from = 2026-01-31\n");
    assert_eq!(e, ScheduleError::UnknownTimeZone("Asia/Tokio".into()));
    let e = rejects("timezone = \"Asia/Tokyo\"\n[catch_up]\nall_day_form = 2026-01-31\n");
    assert!(e.to_string().contains("all_day_form"), "{e}");
    let e = Campaign::parse("title = \"x\"\ntimezone = \"Asia/Tokyo\"\n").expect_err("no id");
    assert!(e.to_string().contains("id"), "{e}");
    let e = Campaign::parse("id = \"a b\"\ntitle = \"x\"\ntimezone = \"Asia/Tokyo\"\n")
        .expect_err("bad id");
    assert!(matches!(e, ScheduleError::BadId(_)));
    let e = Campaign::parse("id = \"a\"\ntitle = \" \"\ntimezone = \"Asia/Tokyo\"\n")
        .expect_err("empty title");
    assert_eq!(e, ScheduleError::EmptyTitle);
    assert!(matches!(
        Campaign::parse("id = "),
        Err(ScheduleError::Toml(_))
    ));
    assert!(matches!(
        Campaign::preset("2025-12"),
        Err(ScheduleError::UnknownPreset(_))
    ));
}

#[test]
fn catch_up_before_the_first_night_is_rejected() {
    let e = rejects(&format!(
        "timezone = \"Asia/Tokyo\"\n[nights]\nfirst = 2026-01-19\nlast = 2026-01-20\n{NIGHTS_TAIL}[catch_up]\nall_day_from = 2026-01-10\n"
    ));
    assert!(matches!(e, ScheduleError::CatchUpBeforeFirstNight { .. }));
}

// ---- properties over generated campaigns ----

const ZONES: [&str; 5] = [
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe", // a 30-minute DST shift
    "UTC",
];

prop_compose! {
    fn any_campaign()(
        zone in 0..ZONES.len(),
        first_day in 0i32..330,
        span in 1i32..25,
        opens in 0i8..96,
        closes in 0i8..96,
        except_mask in any::<u32>(),
        catch_up in proptest::option::of(0i32..30),
    ) -> Option<Campaign> {
        let first = jiff::civil::date(2026, 1, 1) + jiff::Span::new().days(first_day);
        let last = first + jiff::Span::new().days(span - 1);
        let except: Vec<String> = (0..span)
            .filter(|i| except_mask & (1 << (i % 32)) != 0 && i % 3 == 0)
            .map(|i| (first + jiff::Span::new().days(i)).to_string())
            .collect();
        let hm = |q: i8| format!("{:02}:{:02}", q / 4, (q % 4) * 15);
        let mut text = format!(
            "id = \"p\"\ntitle = \"p\"\ntimezone = \"{}\"\n[nights]\nfirst = {first}\nlast = {last}\nexcept = [{}]\nopens = \"{}\"\ncloses = \"{}\"\n",
            ZONES[zone], except.join(", "), hm(opens), hm(closes)
        );
        if let Some(offset) = catch_up {
            text.push_str(&format!("[catch_up]\nall_day_from = {}\n", first + jiff::Span::new().days(offset)));
        }
        Campaign::parse(&text).ok()
    }
}

fn instant_near(c: &Campaign, offset_minutes: i64) -> Timestamp {
    let base = c
        .windows()
        .first()
        .map(|w| w.opens)
        .or(c.catch_up_from())
        .expect("a valid campaign has a window or catch-up");
    base.checked_add(jiff::SignedDuration::from_mins(offset_minutes))
        .expect("in range")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn next_opening_is_in_the_future_and_opens_distribution(
        c in any_campaign(), offset in -3000i64..50_000
    ) {
        let Some(c) = c else { return Ok(()) };
        let t = instant_near(&c, offset);
        let s = c.status(t);
        prop_assert_eq!(s.distributing, c.is_distributing(t));
        if s.distributing {
            prop_assert!(matches!(s.phase, Phase::Night | Phase::CatchUp));
            prop_assert!(s.next_opening.is_none());
            let opened = s.opened_at.expect("open windows have an opening");
            prop_assert!(opened <= t);
            if let Some(closes) = s.closes_at { prop_assert!(t < closes); }
        } else {
            prop_assert!(!matches!(s.phase, Phase::Night | Phase::CatchUp));
            if let Some(n) = s.next_opening {
                prop_assert!(n > t, "next opening {} not after {}", n, t);
                prop_assert!(c.is_distributing(n));
                let just_before = n.checked_sub(jiff::SignedDuration::from_nanos(1)).expect("range");
                prop_assert!(!c.is_distributing(just_before));
                // Nothing opens in between.
                for w in c.windows() {
                    prop_assert!(!(w.opens > t && w.opens < n));
                }
            } else {
                prop_assert_eq!(s.phase, Phase::After);
                prop_assert!(c.catch_up_from().is_none());
                prop_assert!(c.windows().iter().all(|w| w.closes <= t));
            }
        }
    }

    #[test]
    fn no_instant_is_both_inside_and_before_a_window(
        c in any_campaign(), offset in -3000i64..50_000
    ) {
        let Some(c) = c else { return Ok(()) };
        let t = instant_near(&c, offset);
        let s = c.status(t);
        if s.phase == Phase::Before {
            prop_assert!(c.windows().iter().all(|w| t < w.opens));
            prop_assert!(c.catch_up_from().is_none_or(|cu| t < cu));
        }
        let inside = c.windows().iter().filter(|w| w.contains(t)).count();
        prop_assert!(inside <= 1, "windows overlap at {}", t);
        if inside == 1 {
            prop_assert_eq!(s.phase, Phase::Night);
        }
    }

    #[test]
    fn windows_are_sorted_disjoint_and_at_most_a_day_and_an_hour(c in any_campaign()) {
        let Some(c) = c else { return Ok(()) };
        for pair in c.windows().windows(2) {
            prop_assert!(pair[0].closes <= pair[1].opens);
            prop_assert!(pair[0].night < pair[1].night);
        }
        for w in c.windows() {
            let secs = w.closes.as_second() - w.opens.as_second();
            prop_assert!(secs > 0 && secs <= 25 * 3600);
            prop_assert!(!c.excluded().contains(&w.night));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Campaign::parse(&text);
    }
}

#[test]
fn silent_after_hours_defaults_to_three_days_and_is_checked() {
    assert_eq!(preset().silent_after(), SignedDuration::from_hours(72));
    let with = |line: &str| {
        campaign(&format!(
            "timezone = \"Asia/Tokyo\"\n{line}\n[catch_up]\nall_day_from = 2026-01-31\n"
        ))
    };
    let c = with("silent_after_hours = 24").expect("24 hours");
    assert_eq!(c.silent_after(), SignedDuration::from_hours(24));
    for bad in ["silent_after_hours = 0", "silent_after_hours = 721"] {
        let e = with(bad).expect_err(bad);
        assert!(e.to_string().contains("silent_after_hours"), "{e}");
    }
}

#[test]
fn the_preset_shows_billing_notices_in_january_2026_only() {
    let c = Campaign::preset("2026-01").expect("preset");
    let d = |s: &str| s.parse::<Date>().expect("date");
    assert_eq!(c.billing_period(), Some((d("2026-01-01"), d("2026-01-31"))));
    let at = |s: &str| s.parse::<Timestamp>().expect("instant");
    assert!(!c.billing_open(at("2025-12-31T23:59:59+09:00")));
    assert!(c.billing_open(at("2026-01-01T00:00:00+09:00")));
    assert!(c.billing_open(at("2026-01-31T23:59:59+09:00")));
    assert!(!c.billing_open(at("2026-02-01T00:00:00+09:00")));
    assert_eq!(c.completion_check(), None);
}

#[test]
fn a_completion_check_site_must_be_https_with_a_procedure() {
    let base = r#"id = "x"
title = "t"
timezone = "Asia/Tokyo"
[catch_up]
all_day_from = 2026-03-01
"#;
    let ok = Campaign::parse(&format!(
        "{base}[completion_check]\nurl = \"https://example.jp/check\"\nprocedure = \"画面の版数を確認\"\n"
    ))
    .expect("campaign");
    assert_eq!(
        ok.completion_check().map(|c| c.url.as_str()),
        Some("https://example.jp/check")
    );
    let err = Campaign::parse(&format!(
        "{base}[completion_check]\nurl = \"http://example.jp\"\nprocedure = \"p\"\n"
    ))
    .expect_err("http refused");
    assert!(err.to_string().contains("completion_check.url"), "{err}");
    let err = Campaign::parse(&format!(
        "{base}[billing_notices]\nfrom = 2026-02-01\nuntil = 2026-01-31\n"
    ))
    .expect_err("until before from");
    assert!(err.to_string().contains("billing_notices.until"), "{err}");
}
