//! `onshi schedule` as a script sees it: the real binary, its stdout, stderr and exit code.

use std::process::{Command, Output};

use onshi_core::schedule::Phase;

fn onshi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(args)
        .output()
        .expect("the onshi binary runs")
}

fn at(instant: &str) -> serde_json::Value {
    let out = onshi(&["schedule", "--campaign", "preset:2026-01", "--at", instant]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// The `phase` of a status report.
fn phase(v: &serde_json::Value) -> Phase {
    serde_json::from_value(v["phase"].clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn fails_with_2(args: &[&str], needle: &str) {
    let out = onshi(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn early_on_the_25th_the_night_of_the_24th_is_still_distributing() {
    let v = at("2026-01-25T04:30:00+09:00");
    assert_eq!(v["distributing"], true);
    assert_eq!(phase(&v), Phase::Night);
    assert_eq!(v["night"], "2026-01-24");
    assert_eq!(v["opened_at"], "2026-01-24T20:00:00+09:00");
    assert_eq!(v["closes_at"], "2026-01-25T05:00:00+09:00");
    assert_eq!(v["next_opening"], serde_json::Value::Null);
}

#[test]
fn the_evening_of_the_25th_waits_for_the_26th() {
    let v = at("2026-01-25T21:00:00+09:00");
    assert_eq!(v["distributing"], false);
    assert_eq!(phase(&v), Phase::Between);
    assert_eq!(v["next_opening"], "2026-01-26T20:00:00+09:00");
    for key in ["night", "opened_at", "closes_at"] {
        assert_eq!(v[key], serde_json::Value::Null, "{key}");
    }
}

#[test]
fn february_is_the_catch_up_phase() {
    let v = at("2026-02-10T13:00:00+09:00");
    assert_eq!(v["distributing"], true);
    assert_eq!(phase(&v), Phase::CatchUp);
    assert_eq!(v["closes_at"], serde_json::Value::Null);
}

#[test]
fn utc_instants_are_answered_in_the_campaign_offset() {
    let v = at("2026-01-19T11:00:00Z");
    assert_eq!(v["at"], "2026-01-19T20:00:00+09:00");
    assert_eq!(phase(&v), Phase::Night);
}

#[test]
fn list_prints_every_window_with_weekdays() {
    let out = onshi(&["schedule", "--campaign", "preset:2026-01", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("2026年1月30日(金) 20:00"), "{text}");
    assert!(text.contains("2026年1月25日(日)"), "{text}");

    let out = onshi(&[
        "schedule",
        "--campaign",
        "preset:2026-01",
        "--list",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["windows"].as_array().map(Vec::len), Some(11));
    assert_eq!(v["catch_up_from"], "2026-01-31T00:00:00+09:00");
}

#[test]
fn a_campaign_file_is_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("onshi-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("berlin.toml");
    std::fs::write(
        &file,
        "id = \"b\"\ntitle = \"Berlin\"\ntimezone = \"Europe/Berlin\"\n[nights]\nfirst = 2026-03-28\nlast = 2026-03-28\nopens = \"22:00\"\ncloses = \"06:00\"\n",
    )
    .expect("write");
    let file = file.to_str().expect("utf-8 path");
    let out = onshi(&[
        "schedule",
        "--campaign",
        file,
        "--at",
        "2026-03-29T05:00:00+02:00",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["closes_at"], "2026-03-29T06:00:00+02:00");
    assert_eq!(v["opened_at"], "2026-03-28T22:00:00+01:00");

    std::fs::write(dir.join("bad.toml"), "id = \"b\"\ntitle = \"x\"\ntimezone = \"Asia/Tokyo\"\n[nights]\nfirst = 2026-01-19\nlast = 2026-01-30\nopens = \"25:00\"\ncloses = \"05:00\"\n").expect("write");
    let bad = dir.join("bad.toml");
    fails_with_2(
        &[
            "schedule",
            "--campaign",
            bad.to_str().expect("utf-8"),
            "--list",
        ],
        "nights.opens",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    fails_with_2(
        &[
            "schedule",
            "--campaign",
            "preset:2026-01",
            "--at",
            "2026-01-25 04:30",
        ],
        "--at",
    );
    fails_with_2(
        &[
            "schedule",
            "--campaign",
            "preset:2026-01",
            "--at",
            "2026-01-25T04:30:00",
        ],
        "RFC 3339",
    );
    fails_with_2(
        &["schedule", "--campaign", "preset:1999-01", "--list"],
        "unknown preset",
    );
    fails_with_2(
        &[
            "schedule",
            "--campaign",
            "/nonexistent/campaign.toml",
            "--list",
        ],
        "cannot read campaign file",
    );
    fails_with_2(&["schedule", "--campaign", "preset:2026-01"], "--at");
}
