//! One voice to the site: for each device state, instant and automatic-restart setting, the
//! terminal's agent (which knows only its last check-in), the site page's device row, the site
//! page's headline and the mail of that day give the same advice — the one the notice asks for.

use std::time::Duration;

use super::*;
use crate::notice::{self, Addressee, NoticeKind, SiteFacts};
use crate::offer::{self, Situation};
use DeploymentState as S;
use DeviceKind::Terminal;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid instant")
}

/// One row: a terminal in `state` (installed at `installed`), asked at `now`.
struct Case {
    name: &'static str,
    state: DeploymentState,
    installed: Option<&'static str>,
    now: &'static str,
    auto: Option<Time>,
    expect: Advice,
}

const AUTO: Option<Time> = Some(time(7, 30, 0, 0));

fn cases() -> Vec<Case> {
    let mut rows = Vec::new();
    for auto in [None, AUTO] {
        let keep = |opens: Option<&str>, closes: Option<&str>| Advice::KeepPoweredOn {
            opens: opens.map(ts),
            closes: closes.map(ts),
            auto_restart: auto,
        };
        rows.extend([
            Case {
                name: "waiting before the first night: keep it on through that night",
                state: S::Waiting,
                installed: None,
                now: "2026-01-19T13:00:00+09:00",
                auto,
                expect: keep(
                    Some("2026-01-19T20:00:00+09:00"),
                    Some("2026-01-20T05:00:00+09:00"),
                ),
            },
            Case {
                name: "downloading inside a night: keep it on until 05:00",
                state: S::Downloading,
                installed: None,
                now: "2026-01-20T02:00:00+09:00",
                auto,
                expect: keep(None, Some("2026-01-20T05:00:00+09:00")),
            },
            Case {
                name: "waiting on the night of the 25th (no window): the night of the 26th",
                state: S::Waiting,
                installed: None,
                now: "2026-01-25T21:00:00+09:00",
                auto,
                expect: keep(
                    Some("2026-01-26T20:00:00+09:00"),
                    Some("2026-01-27T05:00:00+09:00"),
                ),
            },
            Case {
                name: "waiting on the 31st: distributed all day, restart when the error appears",
                state: S::Waiting,
                installed: None,
                now: "2026-01-31T10:00:00+09:00",
                auto,
                expect: keep(None, None),
            },
            Case {
                name: "failed: retried in the next window, the call centre if it persists",
                state: S::Failed,
                installed: None,
                now: "2026-01-20T08:30:00+09:00",
                auto,
                expect: Advice::CallCentre {
                    reason: CallReason::Failed,
                },
            },
            Case {
                name: "applied: nothing to do",
                state: S::Applied,
                installed: None,
                now: "2026-01-20T08:30:00+09:00",
                auto,
                expect: Advice::Done,
            },
        ]);
    }
    rows.extend([
        Case {
            name: "installed tonight, 20:30: restart tomorrow after 05:00",
            state: S::Installed,
            installed: Some("2026-01-20T20:10:00+09:00"),
            now: "2026-01-20T20:30:00+09:00",
            auto: None,
            expect: Advice::RestartAfter {
                after: ts("2026-01-21T05:00:00+09:00"),
            },
        },
        Case {
            name: "installed tonight, 20:30, automatic restart: applied at 07:30, nothing to do",
            state: S::Installed,
            installed: Some("2026-01-20T20:10:00+09:00"),
            now: "2026-01-20T20:30:00+09:00",
            auto: AUTO,
            expect: Advice::AutoRestart {
                at: ts("2026-01-21T07:30:00+09:00"),
            },
        },
        Case {
            name: "installed in the night, the next morning: restart now",
            state: S::Installed,
            installed: Some("2026-01-20T01:00:00+09:00"),
            now: "2026-01-20T08:30:00+09:00",
            auto: None,
            expect: Advice::RestartNow,
        },
        Case {
            name: "installed in the night, the automatic restart time passed without it: now",
            state: S::Installed,
            installed: Some("2026-01-20T01:00:00+09:00"),
            now: "2026-01-20T08:30:00+09:00",
            auto: AUTO,
            expect: Advice::RestartNow,
        },
        Case {
            name: "installed on the 20th, not restarted, 21:00 on the 21st: now, not the 22nd",
            state: S::Installed,
            installed: Some("2026-01-20T20:10:00+09:00"),
            now: "2026-01-21T21:00:00+09:00",
            auto: None,
            expect: Advice::RestartNow,
        },
        Case {
            name: "installed in the night of the 24th, asked on the night of the 25th: now",
            state: S::Installed,
            installed: Some("2026-01-25T02:00:00+09:00"),
            now: "2026-01-25T21:00:00+09:00",
            auto: None,
            expect: Advice::RestartNow,
        },
        Case {
            name: "installed in the night of the 30th, 02:00 on the 31st: after 05:00",
            state: S::Installed,
            installed: Some("2026-01-30T23:00:00+09:00"),
            now: "2026-01-31T02:00:00+09:00",
            auto: None,
            expect: Advice::RestartAfter {
                after: ts("2026-01-31T05:00:00+09:00"),
            },
        },
        Case {
            name: "installed in the night of the 30th with automatic restart: at 07:30",
            state: S::Installed,
            installed: Some("2026-01-30T23:00:00+09:00"),
            now: "2026-01-31T02:00:00+09:00",
            auto: AUTO,
            expect: Advice::AutoRestart {
                at: ts("2026-01-31T07:30:00+09:00"),
            },
        },
        Case {
            name: "installed in the catch-up phase: restart now",
            state: S::Installed,
            installed: Some("2026-01-31T09:00:00+09:00"),
            now: "2026-01-31T10:00:00+09:00",
            auto: None,
            expect: Advice::RestartNow,
        },
        Case {
            name: "installed during practice in the catch-up phase, automatic restart: now",
            state: S::Installed,
            installed: Some("2026-01-31T09:00:00+09:00"),
            now: "2026-01-31T10:00:00+09:00",
            auto: AUTO,
            expect: Advice::RestartNow,
        },
    ]);
    rows
}

/// What the terminal's agent says: it knows only the server's answer to its last check-in
/// (`decide`'s next window, the offer's phase) and its own install instant.
fn agent_says(campaign: &Campaign, case: &Case, now: Timestamp) -> Advice {
    let schedule = campaign.status(now);
    let told = offer::decide(&Situation {
        now,
        campaign: CampaignStatus::Active,
        schedule,
        device: Terminal,
        state: case.state,
        has_slot: false,
        poll_interval: Duration::from_secs(600),
        jitter: 0.5,
    });
    device_advice(
        &DeviceFacts {
            kind: Terminal,
            state: case.state,
            installed_at: case.installed.map(ts),
        },
        &Moment::told(
            now,
            schedule.phase,
            told.next_window,
            campaign.night_hours(),
        ),
        case.auto,
    )
}

/// The mails due that day for a site with this terminal and an applied card reader, as the
/// notices worker composes them.
fn mails(campaign: &Campaign, case: &Case, now: Timestamp) -> Vec<(NoticeKind, String)> {
    let facts = SiteFacts {
        terminals: 1,
        readers: 1,
        not_received: u32::from(matches!(case.state, S::Waiting | S::Failed)),
        restart_required: u32::from(case.state == S::Installed),
        applied: 1 + u32::from(case.state == S::Applied),
    };
    let to = Addressee {
        code: "0110113719",
        name: "テスト診療所",
        auto_restart: case.auto,
    };
    notice::due(now, campaign, CampaignStatus::Active, &facts, case.auto)
        .into_iter()
        .filter(|d| d.kind != NoticeKind::Announcement)
        .map(|d| {
            let advice = notice::advice_for(d.kind, campaign, now, case.auto);
            let letter = notice::compose(d.kind, Lang::Ja, to, &facts, campaign, now, advice);
            (d.kind, letter.lead)
        })
        .collect()
}

/// The words the notice requires of each advice.
fn says_what_the_notice_says(advice: &Advice, text: &str) -> bool {
    match advice {
        Advice::RestartAfter { .. } => text.contains("05:00以降") && text.contains("再起動"),
        Advice::RestartNow => text.contains("再起動してください") && !text.contains("不要"),
        Advice::AutoRestart { .. } => text.contains("手動での再起動は不要"),
        Advice::KeepPoweredOn { closes: None, .. } => {
            text.contains("終日配信") && text.contains("エラーが表示された場合")
        }
        // A site whose automatic restart is known is told that it applies the update, at its
        // time the next morning, and is not left to work out whether to restart by hand.
        Advice::KeepPoweredOn {
            closes: Some(closes),
            auto_restart: Some(auto),
            ..
        } => {
            let at = crate::auto_restart::next_restart(*closes, *auto);
            text.contains("電源をオンにしたまま")
                && text.contains(&format!(
                    "{}の自動再起動で更新が適用されます",
                    jst::format_ja(at)
                ))
                && text.contains("ほかに対応は不要です")
                && !text.contains("再起動してください")
                && !text.contains("設定している場合")
        }
        Advice::KeepPoweredOn {
            auto_restart: None, ..
        } => {
            text.contains("電源をオンにしたまま")
                && text.contains("05:00以降（翌朝）に資格確認端末を再起動してください")
                && text.contains("設定している場合は手動での再起動は不要です")
        }
        Advice::CallCentre { .. } => {
            text.contains("次の配信時間帯に自動で再試行")
                && text.contains("0800-080-4583")
                && text
                    .contains("マイナ保険証での受付が出来ない場合の資格確認方法・レセプト請求方法")
        }
        Advice::Done => text.contains("対応は不要"),
        Advice::NotScheduled | Advice::Paused => true,
    }
}

#[test]
fn agent_site_row_headline_and_mail_give_the_advice_the_notice_asks_for() {
    let campaign = Campaign::preset("2026-01").expect("preset");
    let mut mails_checked = 0;
    for case in cases() {
        let now = ts(case.now);
        let device = DeviceFacts {
            kind: Terminal,
            state: case.state,
            installed_at: case.installed.map(ts),
        };
        let row = device_advice(
            &device,
            &Moment::of(&campaign, CampaignStatus::Active, now),
            case.auto,
        );
        let reader = DeviceFacts {
            kind: DeviceKind::CardReader,
            state: S::Applied,
            installed_at: None,
        };
        let headline = site_advice(
            &Site {
                devices: &[device, reader],
                campaign: Some((&campaign, CampaignStatus::Active)),
                auto_restart: case.auto,
            },
            now,
        );
        let agent = agent_says(&campaign, &case, now);
        let auto = if case.auto.is_some() {
            "auto"
        } else {
            "manual"
        };
        assert_eq!(row, case.expect, "site row — {} ({auto})", case.name);
        assert_eq!(headline, case.expect, "headline — {} ({auto})", case.name);
        assert_eq!(agent, case.expect, "agent — {} ({auto})", case.name);
        let text = case.expect.text(Lang::Ja);
        assert!(
            says_what_the_notice_says(&case.expect, &text),
            "{} ({auto}): {text}",
            case.name
        );
        for (kind, lead) in mails(&campaign, &case, now) {
            mails_checked += 1;
            assert!(
                lead.contains(&text),
                "{kind:?} mail — {} ({auto}): {lead}\nexpected: {text}",
                case.name
            );
        }
    }
    assert!(mails_checked >= 4, "only {mails_checked} mails were due");
}

#[test]
fn a_restart_mail_never_says_both_restart_and_no_restart_needed() {
    let campaign = Campaign::preset("2026-01").expect("preset");
    for case in cases().iter().filter(|c| c.state == S::Installed) {
        for (kind, lead) in mails(&campaign, case, ts(case.now)) {
            assert!(
                !(lead.contains("再起動してください") && lead.contains("不要")),
                "{kind:?} — {}: {lead}",
                case.name
            );
        }
    }
}

#[test]
fn the_agent_told_another_campaigns_night_hours_restarts_after_that_close() {
    let campaign = Campaign::parse(
        r#"id = "late"
title = "t"
timezone = "Asia/Tokyo"
[nights]
first = 2026-03-02
last = 2026-03-06
opens = "21:00"
closes = "06:00"
"#,
    )
    .expect("campaign");
    let now = ts("2026-03-03T02:00:00+09:00");
    let device = DeviceFacts {
        kind: Terminal,
        state: S::Installed,
        installed_at: Some(ts("2026-03-02T23:00:00+09:00")),
    };
    let expect = Advice::RestartAfter {
        after: ts("2026-03-03T06:00:00+09:00"),
    };
    let server = Moment::of(&campaign, CampaignStatus::Active, now);
    assert_eq!(device_advice(&device, &server, None), expect);
    let agent = Moment::told(now, Phase::Night, None, campaign.night_hours());
    assert_eq!(device_advice(&device, &agent, None), expect);
}
