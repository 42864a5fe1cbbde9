//! The advice a site gets, against the notice's schedule and wording.

use super::*;
use DeploymentState as S;
use DeviceKind::{CardReader, Terminal};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid instant")
}

fn preset() -> Campaign {
    Campaign::preset("2026-01").expect("preset")
}

fn facts(devices: &[(DeviceKind, DeploymentState)]) -> Vec<DeviceFacts> {
    devices
        .iter()
        .map(|&(kind, state)| DeviceFacts {
            kind,
            state,
            installed_at: None,
        })
        .collect()
}

fn advice(
    devices: &[(DeviceKind, DeploymentState)],
    auto_restart: Option<Time>,
    at: &str,
) -> Advice {
    let campaign = preset();
    site_advice(
        &Site {
            devices: &facts(devices),
            campaign: Some((&campaign, CampaignStatus::Active)),
            auto_restart,
        },
        ts(at),
    )
}

#[test]
fn waiting_before_the_first_night_keeps_power_on_through_that_night() {
    let a = advice(
        &[(Terminal, S::Waiting), (CardReader, S::Waiting)],
        None,
        "2026-01-19T10:00:00+09:00",
    );
    assert_eq!(
        a,
        Advice::KeepPoweredOn {
            opens: Some(ts("2026-01-19T20:00:00+09:00")),
            closes: Some(ts("2026-01-20T05:00:00+09:00")),
            auto_restart: None,
        }
    );
    let text = a.text(Lang::Ja);
    assert!(
            text.starts_with("2026年1月19日(月) 20:00から2026年1月20日(火) 05:00までの間、資格確認端末と顔認証付きカードリーダーの電源をオンにしたままにしてください。"),
            "{text}"
        );
    assert!(a.action_required());
}

#[test]
fn waiting_on_sunday_the_25th_points_to_the_night_of_the_26th() {
    let a = advice(&[(Terminal, S::Waiting)], None, "2026-01-25T21:00:00+09:00");
    assert_eq!(
        a,
        Advice::KeepPoweredOn {
            opens: Some(ts("2026-01-26T20:00:00+09:00")),
            closes: Some(ts("2026-01-27T05:00:00+09:00")),
            auto_restart: None,
        }
    );
}

#[test]
fn downloading_inside_a_night_keeps_power_on_until_05_00() {
    let a = advice(
        &[(Terminal, S::Downloading)],
        None,
        "2026-01-24T23:00:00+09:00",
    );
    assert_eq!(
        a,
        Advice::KeepPoweredOn {
            opens: None,
            closes: Some(ts("2026-01-25T05:00:00+09:00")),
            auto_restart: None,
        }
    );
    assert!(
        a.text(Lang::Ja)
            .starts_with("現在、配信中です（2026年1月25日(日) 05:00まで）。")
    );
}

#[test]
fn waiting_in_catch_up_is_told_distribution_runs_all_day() {
    let a = advice(&[(Terminal, S::Waiting)], None, "2026-02-02T11:00:00+09:00");
    assert_eq!(
        a,
        Advice::KeepPoweredOn {
            opens: None,
            closes: None,
            auto_restart: None,
        }
    );
    assert!(a.text(Lang::Ja).starts_with("現在、終日配信中です。"));
}

#[test]
fn installed_at_night_restarts_after_the_window_closes() {
    let a = advice(
        &[(Terminal, S::Installed), (CardReader, S::Applied)],
        None,
        "2026-01-20T02:00:00+09:00",
    );
    assert_eq!(
        a,
        Advice::RestartAfter {
            after: ts("2026-01-20T05:00:00+09:00")
        }
    );
    let text = a.text(Lang::Ja);
    assert!(
        text.starts_with(
            "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。"
        ),
        "{text}"
    );
    assert!(text.contains("2026年1月20日(火) 05:00以降"), "{text}");
}

#[test]
fn installed_in_the_morning_restarts_now() {
    let a = advice(
        &[(Terminal, S::Installed)],
        None,
        "2026-01-20T08:30:00+09:00",
    );
    assert_eq!(a, Advice::RestartNow);
    assert_eq!(a.headline(Lang::Ja), "資格確認端末を再起動してください");
}

#[test]
fn auto_restart_before_practice_means_nothing_to_do() {
    let a = advice(
        &[(Terminal, S::Installed)],
        Some(time(7, 30, 0, 0)),
        "2026-01-20T03:00:00+09:00",
    );
    assert_eq!(
        a,
        Advice::AutoRestart {
            at: ts("2026-01-20T07:30:00+09:00")
        }
    );
    assert!(!a.action_required());
    assert!(
            a.text(Lang::Ja)
                .contains("2026年1月20日(火) 07:30に自動で再起動され、そのとき更新が適用されます。手動での再起動は不要です。")
        );
    // Installed in the evening: tomorrow's automatic restart still comes first.
    assert_eq!(
        advice(
            &[(Terminal, S::Installed)],
            Some(time(7, 30, 0, 0)),
            "2026-01-19T21:00:00+09:00"
        ),
        Advice::AutoRestart {
            at: ts("2026-01-20T07:30:00+09:00")
        }
    );
}

#[test]
fn auto_restart_tomorrow_is_too_late_when_installed_during_practice() {
    // Catch-up, Monday 11:00: patients would meet the error until tomorrow 07:30.
    let a = advice(
        &[(Terminal, S::Installed)],
        Some(time(7, 30, 0, 0)),
        "2026-02-02T11:00:00+09:00",
    );
    assert_eq!(a, Advice::RestartNow);
}

#[test]
fn a_site_whose_terminal_and_readers_are_applied_has_nothing_to_do() {
    let a = advice(
        &[(Terminal, S::Applied), (CardReader, S::Applied)],
        None,
        "2026-01-20T08:30:00+09:00",
    );
    assert_eq!(a, Advice::Done);
    assert!(!a.action_required());
}

#[test]
fn an_installed_reader_is_applied_by_the_terminal_restart_and_never_needs_no_restart() {
    let a = advice(
        &[(Terminal, S::Applied), (CardReader, S::Installed)],
        None,
        "2026-01-20T08:30:00+09:00",
    );
    assert_eq!(a, Advice::RestartNow);
    assert!(!S::Installed.label_ja(CardReader).contains("不要"));
}

#[test]
fn a_failure_sends_staff_to_the_call_centre() {
    let a = advice(
        &[(Terminal, S::Installed), (CardReader, S::Failed)],
        None,
        "2026-01-20T08:30:00+09:00",
    );
    assert_eq!(
        a,
        Advice::CallCentre {
            reason: CallReason::Failed
        }
    );
    let text = a.text(Lang::Ja);
    assert!(text.contains("0800-080-4583"), "{text}");
    assert!(text.contains("8:00～18:00"), "{text}");
}

#[test]
fn a_restart_wins_over_a_reader_still_waiting() {
    let a = advice(
        &[(Terminal, S::Installed), (CardReader, S::Waiting)],
        None,
        "2026-01-20T09:00:00+09:00",
    );
    assert_eq!(a, Advice::RestartNow);
}

#[test]
fn paused_and_unscheduled_sites_have_nothing_to_do() {
    let campaign = preset();
    let devices = facts(&[(Terminal, S::Waiting)]);
    let paused = Site {
        devices: &devices,
        campaign: Some((&campaign, CampaignStatus::Paused)),
        auto_restart: None,
    };
    assert_eq!(
        site_advice(&paused, ts("2026-01-20T09:00:00+09:00")),
        Advice::Paused
    );
    let none = Site {
        devices: &[],
        campaign: None,
        auto_restart: None,
    };
    assert_eq!(
        site_advice(&none, ts("2026-01-20T09:00:00+09:00")),
        Advice::NotScheduled
    );
}

#[test]
fn no_window_left_sends_staff_to_the_call_centre() {
    let campaign = Campaign::parse(
        r#"id = "short"
title = "t"
timezone = "Asia/Tokyo"
[nights]
first = 2026-03-02
last = 2026-03-03
opens = "20:00"
closes = "05:00"
"#,
    )
    .expect("campaign");
    let devices = facts(&[(Terminal, S::Waiting)]);
    let site = Site {
        devices: &devices,
        campaign: Some((&campaign, CampaignStatus::Active)),
        auto_restart: None,
    };
    assert_eq!(
        site_advice(&site, ts("2026-03-05T09:00:00+09:00")),
        Advice::CallCentre {
            reason: CallReason::NoWindowLeft
        }
    );
}

#[test]
fn advice_serialises_with_a_tag_for_the_billing_screen() {
    let json = serde_json::to_value(Advice::RestartAfter {
        after: ts("2026-01-20T05:00:00+09:00"),
    })
    .expect("json");
    assert_eq!(json["advice"], "restart_after");
    assert_eq!(json["after"], "2026-01-19T20:00:00Z");
}

#[test]
fn every_advice_has_words_in_both_languages() {
    let at = ts("2026-01-20T05:00:00+09:00");
    for a in [
        Advice::Done,
        Advice::NotScheduled,
        Advice::KeepPoweredOn {
            opens: Some(at),
            closes: None,
            auto_restart: None,
        },
        Advice::Paused,
        Advice::RestartNow,
        Advice::RestartAfter { after: at },
        Advice::AutoRestart { at },
        Advice::CallCentre {
            reason: CallReason::NoWindowLeft,
        },
    ] {
        for lang in [Lang::Ja, Lang::En] {
            assert!(!a.text(lang).is_empty() && !a.headline(lang).is_empty());
        }
        assert!(!a.slug().is_empty());
    }
}

#[test]
fn a_site_with_a_known_automatic_restart_is_told_it_applies_the_update_not_to_restart() {
    let device = DeviceFacts {
        kind: Terminal,
        state: S::Waiting,
        installed_at: None,
    };
    let campaign = Campaign::preset("2026-01").expect("preset");
    let moment = Moment::of(
        &campaign,
        CampaignStatus::Active,
        ts("2026-01-19T13:00:00+09:00"),
    );
    let a = device_advice(&device, &moment, Some(time(7, 30, 0, 0)));
    let ja = a.text(Lang::Ja);
    assert!(
        ja.ends_with("インストールの完了後、2026年1月20日(火) 07:30の自動再起動で更新が適用されますので、ほかに対応は不要です。"),
        "{ja}"
    );
    assert!(!ja.contains("設定している場合"), "{ja}");
    let en = a.text(Lang::En);
    assert!(
        en.contains("the terminal's automatic restart at") && !en.contains("not needed if"),
        "{en}"
    );
    // Where the setting is unknown (the public /guidance), the notice's parenthetical stays.
    let unknown = device_advice(&device, &moment, None).text(Lang::Ja);
    assert!(
        unknown.contains("05:00以降（翌朝）に資格確認端末を再起動してください（日々の診療等の開始前に自動で再起動がされるよう設定している場合は手動での再起動は不要です）"),
        "{unknown}"
    );
}

#[test]
fn restart_tomorrow_morning_says_to_restart_at_once_when_901_appears() {
    let a = Advice::RestartAfter {
        after: ts("2026-01-21T05:00:00+09:00"),
    };
    assert!(
        a.text(Lang::Ja)
            .ends_with("ただし、エラー（901）が表示された場合はすぐに再起動してください。")
    );
    assert!(
        a.text(Lang::En)
            .ends_with("But if an error (901) appears, restart it at once.")
    );
}

#[test]
fn the_completion_check_names_a_command_only_where_a_vendor_reads_it_and_never_a_path() {
    for lang in [Lang::Ja, Lang::En] {
        for from in [
            CheckedFrom::SitePage,
            CheckedFrom::Guidance,
            CheckedFrom::Mail,
            CheckedFrom::Agent,
        ] {
            let text = completion_check_text(None, lang, from);
            assert!(!text.contains("/site"), "{from:?}: {text}");
            assert_eq!(
                text.contains("onshi-agent status"),
                from == CheckedFrom::Agent,
                "{from:?}: {text}"
            );
        }
    }
    assert!(
        completion_check_text(None, Lang::Ja, CheckedFrom::SitePage)
            .ends_with("上の「機器ごとの状況」でも確認できます。")
    );
}
