use std::collections::BTreeSet;

use jiff::Timestamp;

use super::*;
use crate::institution::{InstitutionCode, InstitutionKind, Prefecture, ScoreTable};
use crate::lang::Lang;
use crate::offer::CampaignStatus;
use crate::schedule::{Campaign, PRESET_2026_01, ScheduleError};
use crate::vendor::Vendor;

fn at(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

fn with_waves(table: &str) -> Result<Campaign, ScheduleError> {
    Campaign::parse(&format!("{PRESET_2026_01}\n{table}"))
}

fn plan(table: &str) -> WavePlan {
    with_waves(table)
        .expect("valid campaign")
        .waves()
        .cloned()
        .expect("a plan")
}

/// A synthetic fleet: `n` sites over every prefecture, kind and vendor in a fixed pattern.
fn fleet(n: usize) -> Vec<SiteProfile> {
    (0..n)
        .map(|i| {
            let kind = InstitutionKind::ALL[(i * 7) % 4];
            let table = match kind {
                InstitutionKind::Dental => ScoreTable::Dental,
                InstitutionKind::Pharmacy => ScoreTable::Pharmacy,
                _ => ScoreTable::Medical,
            };
            let pref = Prefecture::from_number((i % 47) as u8 + 1).expect("prefecture");
            let code =
                InstitutionCode::from_parts(pref, table, (i / 47 % 100) as u8, (i % 10_000) as u16)
                    .expect("code");
            let vendors = match i % 11 {
                0 => vec![],
                k => vec![Vendor::ALL[k % 5]],
            };
            SiteProfile {
                code,
                kind,
                vendors,
            }
        })
        .collect()
}

#[test]
fn a_campaign_without_a_waves_table_has_no_plan() {
    assert!(
        Campaign::preset("2026-01")
            .expect("preset")
            .waves()
            .is_none()
    );
}

#[test]
fn a_waves_table_is_read_with_the_gates_defaults() {
    let p = plan(
        "[waves]\nsizes = [\"1%\", 50]\nnamed = [\"0110113719\"]\nmail_to = \"ops@example.jp\"\n",
    );
    assert_eq!(p.count(), 3);
    assert_eq!(p.sizes(), &[WaveSize::Percent(1.0), WaveSize::Sites(50)]);
    assert_eq!(
        p.named(),
        &["0110113719".parse::<InstitutionCode>().expect("code")]
    );
    assert_eq!(p.mail_to(), Some("ops@example.jp"));
    assert_eq!(p.gate(), &Gate::default());
}

#[test]
fn bad_waves_tables_are_refused_naming_the_key() {
    for (table, names) in [
        ("[waves]\nsizes = []\n", "waves.sizes"),
        ("[waves]\nsizes = [\"0%\"]\n", "waves.sizes"),
        ("[waves]\nsizes = [\"100%\"]\n", "waves.sizes"),
        ("[waves]\nsizes = [0]\n", "waves.sizes"),
        ("[waves]\nsizes = [true]\n", "waves.sizes"),
        (
            "[waves]\nsizes = [1]\nnamed = [\"1311111111\"]\n",
            "waves.named",
        ),
        (
            "[waves]\nsizes = [1]\nmail_to = \"nobody\"\n",
            "waves.mail_to",
        ),
        (
            "[waves]\nsizes = [1]\n[waves.gate]\nfailed_percent = 120.0\n",
            "failed_percent",
        ),
        (
            "[waves]\nsizes = [1]\n[waves.gate]\nsoak_hours = -1\n",
            "soak_hours",
        ),
        ("[waves]\nsizes = [1]\n[waves.gate]\nflaky = 1\n", "flaky"),
    ] {
        let e = with_waves(table).expect_err(table).to_string();
        assert!(e.contains(names), "{table}: {e}");
    }
    let many = format!("[waves]\nsizes = [{}]\n", vec!["1"; MAX_WAVES].join(", "));
    assert!(matches!(
        with_waves(&many),
        Err(ScheduleError::Waves(WavesError::TooManyWaves(_)))
    ));
}

#[test]
fn every_site_gets_a_wave_and_the_waves_grow_as_planned() {
    let p = plan("[waves]\nsizes = [\"1%\", \"10%\"]\n");
    let sites = fleet(5_000);
    let waves = assign(&p, "2026-01", &sites);
    assert_eq!(waves.len(), sites.len());
    let count = |w| waves.iter().filter(|x| **x == w).count();
    // 1 % is 50 sites; rounding up per stratum and covering every kind and vendor adds a few.
    assert!((50..=90).contains(&count(0)), "{}", count(0));
    assert!((450..=560).contains(&count(1)), "{}", count(1));
    assert_eq!(count(0) + count(1) + count(2), 5_000);
    assert!(waves.iter().all(|w| *w < 3));
}

#[test]
fn each_early_wave_covers_every_kind_vendor_and_a_spread_of_prefectures() {
    let p = plan("[waves]\nsizes = [\"1%\", \"10%\"]\n");
    let sites = fleet(5_000);
    let waves = assign(&p, "2026-01", &sites);
    for w in 0..2u16 {
        let members: Vec<&SiteProfile> = sites
            .iter()
            .zip(&waves)
            .filter(|(_, x)| **x == w)
            .map(|(s, _)| s)
            .collect();
        let kinds: BTreeSet<_> = members.iter().map(|s| s.kind).collect();
        assert_eq!(kinds.len(), 4, "wave {w}: {kinds:?}");
        let vendors: BTreeSet<_> = members.iter().flat_map(|s| s.vendors.clone()).collect();
        assert_eq!(vendors.len(), 5, "wave {w}: {vendors:?}");
        let prefectures: BTreeSet<_> = members.iter().map(|s| s.code.prefecture()).collect();
        assert!(
            prefectures.len() >= 20,
            "wave {w}: {} prefectures",
            prefectures.len()
        );
    }
}

#[test]
fn a_rare_kind_still_lands_in_the_first_wave() {
    let p = plan("[waves]\nsizes = [\"1%\"]\n");
    let mut sites = fleet(1_000);
    for s in &mut sites {
        if s.kind == InstitutionKind::Hospital {
            s.kind = InstitutionKind::Clinic;
        }
    }
    let hospital = InstitutionCode::from_parts(
        Prefecture::from_number(47).expect("47"),
        ScoreTable::Medical,
        99,
        9_999,
    )
    .expect("code");
    sites.push(SiteProfile {
        code: hospital,
        kind: InstitutionKind::Hospital,
        vendors: vec![],
    });
    let waves = assign(&p, "2026-01", &sites);
    assert_eq!(waves[sites.len() - 1], 0);
}

#[test]
fn named_sites_are_in_the_first_wave_and_the_deal_is_deterministic() {
    let sites = fleet(400);
    let volunteer = sites[399].code;
    let p = plan(&format!(
        "[waves]\nsizes = [\"1%\"]\nnamed = [\"{volunteer}\"]\n"
    ));
    let a = assign(&p, "2026-01", &sites);
    assert_eq!(a[399], 0);
    assert_eq!(a, assign(&p, "2026-01", &sites), "same input, same waves");
    assert_ne!(
        a,
        assign(&p, "2026-02", &sites),
        "another campaign deals other canaries"
    );
}

fn progress(open: u16, opened: &str) -> WaveProgress {
    WaveProgress {
        open,
        opened_at: at(opened),
        hold: None,
        waived: Vec::new(),
        rolled_back: None,
    }
}

fn small_gate_plan() -> (WavePlan, Campaign) {
    let c = with_waves(
        "[waves]\nsizes = [3]\n[waves.gate]\nmin_restarted = 2\nsoak_hours = 6\nnot_running_within_minutes = 30\n",
    )
    .expect("valid");
    (c.waves().cloned().expect("plan"), c)
}

#[test]
fn an_unhealthy_self_check_holds_the_campaign_at_once_and_says_why() {
    let (p, c) = small_gate_plan();
    let h = WaveHealth {
        wave: 0,
        sites: 3,
        devices: 3,
        terminals: 3,
        started: 3,
        applied_terminals: 1,
        unhealthy: 1,
        ..WaveHealth::default()
    };
    let now = at("2026-01-20T06:10:00+09:00");
    let Verdict::Hold(hold) = judge(&p, &progress(1, "2026-01-19T12:00:00+09:00"), &[h], &c, now)
    else {
        panic!("expected a hold");
    };
    assert_eq!(hold.wave, 0);
    assert_eq!(hold.breach.metric, Metric::Unhealthy);
    assert_eq!(hold.at, now);
    let ja = hold.reason(Lang::Ja);
    assert!(ja.starts_with("第1波"), "{ja}");
    assert!(ja.contains("再起動後の自己診断で異常: 1台"), "{ja}");
    assert!(ja.contains("100.0%"), "{ja}");
    let (subject, body) = hold.letter("2026-01", "テスト", 2, Lang::Ja);
    assert!(subject.contains("自動停止"), "{subject}");
    assert!(body.contains("2026年1月20日(火) 06:10"), "{body}");
    assert!(
        body.contains("第2波以降の医療機関等には、この版は配信されていません"),
        "{body}"
    );
    let (_, en) = hold.letter("2026-01", "Test", 2, Lang::En);
    assert!(en.contains("Tue 20 Jan 2026 06:10 JST"), "{en}");
}

#[test]
fn failures_below_the_least_count_do_not_hold() {
    let (p, c) = small_gate_plan();
    let mut h = WaveHealth {
        wave: 0,
        terminals: 3,
        devices: 3,
        started: 3,
        failed: 2,
        ..WaveHealth::default()
    };
    let pr = progress(1, "2026-01-19T12:00:00+09:00");
    let now = at("2026-01-19T22:00:00+09:00");
    assert!(matches!(judge(&p, &pr, &[h], &c, now), Verdict::Wait(_)));
    h.failed = 3;
    assert!(matches!(judge(&p, &pr, &[h], &c, now), Verdict::Hold(_)));
}

#[test]
fn a_restart_without_the_new_version_counts_only_once_its_time_has_passed() {
    let (p, c) = small_gate_plan();
    let pr = progress(1, "2026-01-19T12:00:00+09:00");
    let now = at("2026-01-20T07:00:00+09:00");
    let mut h = WaveHealth {
        wave: 0,
        terminals: 3,
        devices: 3,
        started: 3,
        restarted_old: 1,
        ..WaveHealth::default()
    };
    assert!(matches!(judge(&p, &pr, &[h], &c, now), Verdict::Wait(_)));
    h.restarted_old_overdue = 1;
    let Verdict::Hold(hold) = judge(&p, &pr, &[h], &c, now) else {
        panic!("expected a hold");
    };
    assert_eq!(hold.breach.metric, Metric::NotRunning);
}

#[test]
fn the_next_wave_opens_after_enough_restarts_and_the_soak_time() {
    let (p, c) = small_gate_plan();
    // Opened before the first night: the soak counts from 20:00, 6 h, so until 02:00.
    let pr = progress(1, "2026-01-19T12:00:00+09:00");
    let mut h = WaveHealth {
        wave: 0,
        terminals: 3,
        devices: 3,
        started: 3,
        applied_terminals: 1,
        ..WaveHealth::default()
    };
    assert_eq!(
        judge(&p, &pr, &[h], &c, at("2026-01-20T03:00:00+09:00")),
        Verdict::Wait(Waiting::Restarts { have: 1, need: 2 })
    );
    h.applied_terminals = 2;
    assert_eq!(
        judge(&p, &pr, &[h], &c, at("2026-01-20T01:00:00+09:00")),
        Verdict::Wait(Waiting::Soak {
            until: at("2026-01-20T02:00:00+09:00")
        })
    );
    assert_eq!(
        judge(&p, &pr, &[h], &c, at("2026-01-20T02:00:00+09:00")),
        Verdict::Open(1)
    );
    let opened = pr
        .widened(&p, at("2026-01-20T02:00:00+09:00"))
        .expect("a second wave");
    assert_eq!(opened.open, 2);
    assert!(
        opened
            .widened(&p, at("2026-01-20T03:00:00+09:00"))
            .is_none()
    );
    assert_eq!(
        judge(&p, &opened, &[h], &c, at("2026-01-21T03:00:00+09:00")),
        Verdict::AllOpen
    );
}

#[test]
fn a_wave_smaller_than_the_minimum_needs_all_its_terminals() {
    let (p, c) = small_gate_plan();
    let pr = progress(1, "2026-01-19T12:00:00+09:00");
    let h = WaveHealth {
        wave: 0,
        terminals: 1,
        devices: 1,
        started: 1,
        applied_terminals: 1,
        ..WaveHealth::default()
    };
    assert_eq!(
        judge(&p, &pr, &[h], &c, at("2026-01-20T02:00:00+09:00")),
        Verdict::Open(1)
    );
}

#[test]
fn a_held_campaign_waits_for_the_operator_and_a_resume_waives_that_wave() {
    let (p, c) = small_gate_plan();
    let h = WaveHealth {
        wave: 0,
        terminals: 3,
        devices: 3,
        started: 3,
        applied_terminals: 3,
        unhealthy: 1,
        ..WaveHealth::default()
    };
    let now = at("2026-01-20T06:00:00+09:00");
    let Verdict::Hold(hold) = judge(&p, &progress(1, "2026-01-19T12:00:00+09:00"), &[h], &c, now)
    else {
        panic!("expected a hold");
    };
    let held = WaveProgress {
        hold: Some(hold),
        ..progress(1, "2026-01-19T12:00:00+09:00")
    };
    assert_eq!(judge(&p, &held, &[h], &c, now), Verdict::Held);
    let resumed = held.resumed();
    assert_eq!(resumed.hold, None);
    assert_eq!(resumed.waived, vec![0]);
    assert_eq!(judge(&p, &resumed, &[h], &c, now), Verdict::Open(1));
}

#[test]
fn a_device_outside_the_open_waves_sees_a_paused_campaign() {
    let pr = progress(1, "2026-01-19T12:00:00+09:00");
    assert_eq!(
        status_for(CampaignStatus::Active, Some(&pr), 0),
        CampaignStatus::Active
    );
    assert_eq!(
        status_for(CampaignStatus::Active, Some(&pr), 1),
        CampaignStatus::Paused
    );
    assert_eq!(
        status_for(CampaignStatus::Active, None, 7),
        CampaignStatus::Active
    );
    assert_eq!(
        status_for(CampaignStatus::Closed, Some(&pr), 1),
        CampaignStatus::Closed
    );
}

#[test]
fn progress_survives_its_stored_json() {
    let (p, c) = small_gate_plan();
    let h = WaveHealth {
        wave: 0,
        terminals: 1,
        started: 1,
        applied_terminals: 1,
        unhealthy: 1,
        ..WaveHealth::default()
    };
    let now = at("2026-01-20T06:00:00+09:00");
    let Verdict::Hold(hold) = judge(&p, &progress(1, "2026-01-19T12:00:00+09:00"), &[h], &c, now)
    else {
        panic!("expected a hold");
    };
    let pr = WaveProgress {
        hold: Some(hold),
        ..progress(1, "2026-01-19T12:00:00+09:00")
    };
    let json = serde_json::to_string(&pr).expect("json");
    let back: WaveProgress = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, pr);
}
