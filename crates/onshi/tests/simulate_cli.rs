//! `onshi simulate` as a script sees it: the real binary with a small scenario file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use onshi_core::deployment::DeploymentState;
use onshi_testkit::OPERATOR_TOKEN;
use onshi_testkit::serve::Serve;

fn onshi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onshi"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("the onshi binary runs")
}

/// A thousandth of the country, two weeks, with a throttle to match.
const SMALL: &str = r#"title = "small"
days = 14
[distribution]
max_concurrent_downloads = 20
egress_gbps = 0.04
[sites.hospital]
count = 8
[sites.clinic]
count = 90
[sites.dental]
count = 70
[sites.pharmacy]
count = 62
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("scenario written");
    path.display().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn json_summary_of_a_small_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "small.toml", SMALL);
    let v = json(&onshi(&["--scenario", &file, "--json"]));
    assert_eq!(v["sites"], 230);
    assert_eq!(v["campaign"], "2026-01");
    assert_eq!(v["deadline"]["last_night"], "2026-01-30");
    assert_eq!(v["downloads_started_outside_windows"], 0);
    assert_eq!(v["illegal_transitions"], 0);
    assert_eq!(v["bandwidth"]["peak_concurrent_downloads"], 20);
    let d = &v["deadline"];
    let reached = d["sites_by_last_night"].as_u64().expect("count")
        + d["sites_in_catch_up"].as_u64().expect("count")
        + d["sites_never"].as_u64().expect("count");
    assert_eq!(reached, 230);
    // The same seed twice: the same summary; another seed: another run.
    assert_eq!(v, json(&onshi(&["--scenario", &file, "--json"])));
    let other = json(&onshi(&["--scenario", &file, "--json", "--seed", "2"]));
    assert_eq!(other["seed"], 2);
    assert_ne!(other["errors"], v["errors"]);
}

#[test]
fn out_dir_gets_csv_summary_and_charts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "small.toml", SMALL);
    let out_dir = dir.path().join("out");
    let out = onshi(&[
        "--scenario",
        &file,
        "--out",
        out_dir.to_str().expect("utf-8 path"),
        "--lang",
        "en",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("■ Deadline (sites)"), "{stdout}");
    assert!(stdout.contains("0800-080-4583"), "{stdout}");
    let csv = std::fs::read_to_string(out_dir.join("hourly.csv")).expect("hourly.csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with(
            "hour,waiting,downloading,downloaded,installing,installed,applied,failed,"
        )
    );
    assert!(
        header.contains("egress_gbps")
            && header.contains("patient_errors")
            && header.contains("calls")
    );
    assert_eq!(lines.count(), 14 * 24);
    assert!(csv.contains("\n2026-01-19T20:00:00+09:00,"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).expect("json"))
            .expect("summary.json is JSON");
    assert_eq!(summary["sites"], 230);
    for name in ["completion", "bandwidth", "downloads", "errors"] {
        let svg = std::fs::read_to_string(out_dir.join(format!("{name}.svg"))).expect("svg");
        assert!(
            svg.contains("<svg") && svg.contains("polyline"),
            "{name}.svg"
        );
        let png = std::fs::read(out_dir.join(format!("{name}.png"))).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png");
        assert!(stdout.contains(&format!("{name}.png")), "{stdout}");
    }
}

#[test]
fn the_summary_is_in_japanese_by_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "small.toml", SMALL);
    let out = onshi(&["--scenario", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("■ 期限までに（施設数）"), "{stdout}");
    assert!(stdout.contains("2026-01-30 の夜までに配信完了"), "{stdout}");
    assert!(
        stdout.contains("オンライン資格確認等コールセンター"),
        "{stdout}"
    );
    assert!(stdout.contains("2026年1月19日(月) 00:00"), "{stdout}");
}

#[test]
fn compare_runs_both_with_one_seed_and_prints_the_differences() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = write(dir.path(), "a.toml", SMALL);
    let b_text = SMALL.replace(
        "max_concurrent_downloads = 20",
        "max_concurrent_downloads = 50",
    );
    let b = write(dir.path(), "b.toml", &b_text);
    let v = json(&onshi(&["--compare", &a, &b, "--json", "--seed", "4"]));
    assert_eq!(v["seed"], 4);
    assert_eq!(v["a"]["seed"], 4);
    assert_eq!(v["b"]["seed"], 4);
    let rows = v["rows"].as_array().expect("rows");
    let row = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no row {key}"))
    };
    assert_eq!(row("bandwidth.peak_concurrent_downloads")["a"], 20);
    assert_eq!(row("bandwidth.peak_concurrent_downloads")["b"], 50);
    assert_eq!(row("bandwidth.peak_concurrent_downloads")["change"], 30.0);
    assert_eq!(row("devices")["change"], 0.0);

    let out = onshi(&["--compare", &a, &b, "--lang", "en"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(table.contains("Change (B−A)"), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("peak concurrent downloads"))
        .expect("a row for the peak");
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert!(cells.ends_with(&["20", "50", "+30"]), "{line:?}");
}

#[test]
fn compare_with_and_without_waves_reports_the_sites_a_faulty_release_reached() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "waves.toml",
        &format!(
            "{}\n[waves]\nsizes = [\"5%\"]\n",
            onshi_core::schedule::PRESET_2026_01
        ),
    );
    let faulty = format!("{SMALL}[fault]\nunhealthy_after_restart_share = 0.5\n");
    let a = write(dir.path(), "without.toml", &faulty);
    let b = write(
        dir.path(),
        "with.toml",
        &faulty.replace(
            "title = \"small\"",
            "title = \"small\"\ncampaign = \"waves.toml\"",
        ),
    );
    let v = json(&onshi(&["--compare", &a, &b, "--json"]));
    let rows = v["rows"].as_array().expect("rows");
    let reached = rows
        .iter()
        .find(|r| r["key"] == "fault.sites_reached")
        .expect("a row for the sites the fault reached");
    let (without, with) = (
        reached["a"].as_u64().expect("a number"),
        reached["b"].as_u64().expect("a number"),
    );
    assert!(with * 2 < without, "with waves {with}, without {without}");
    assert_eq!(v["b"]["waves"]["held_wave"], 1, "{}", v["b"]["waves"]);
    assert!(v["a"]["waves"].is_null());

    let out = onshi(&["--compare", &a, &b]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(table.contains("不具合のある版が届いた施設"), "{table}");
}

#[test]
fn a_scenario_may_name_a_campaign_file_next_to_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "one-night.toml",
        "id = \"one-night\"\ntitle = \"t\"\ntimezone = \"Asia/Tokyo\"\n\
         [nights]\nfirst = 2026-01-19\nlast = 2026-01-19\nopens = \"20:00\"\ncloses = \"05:00\"\n",
    );
    let text = format!(
        "campaign = \"one-night.toml\"\n{}",
        SMALL.replace("days = 14", "days = 3")
    );
    let file = write(dir.path(), "s.toml", &text);
    let v = json(&onshi(&["--scenario", &file, "--json"]));
    assert_eq!(v["campaign"], "one-night");
    assert_eq!(v["deadline"]["last_night"], "2026-01-19");
    assert_eq!(v["deadline"]["catch_up_from"], serde_json::Value::Null);
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
fn bad_scenarios_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unknown = write(dir.path(), "u.toml", "[sites.clinic]\nnight_onn = 0.2\n");
    fails_with_2(
        &["--scenario", &unknown],
        "unknown field `sites.clinic.night_onn`",
    );
    let range = write(dir.path(), "r.toml", "[staff]\ncall_share = 2\n");
    fails_with_2(&["--scenario", &range], "`staff.call_share` = 2");
    let toml = write(dir.path(), "t.toml", "days = [\n");
    fails_with_2(&["--scenario", &toml], "not valid TOML");
    let campaign = write(dir.path(), "c.toml", "campaign = \"missing.toml\"\n");
    fails_with_2(&["--scenario", &campaign], "`campaign` = \"missing.toml\"");
    fails_with_2(&["--scenario", "preset:nowhere"], "unknown scenario preset");
    fails_with_2(
        &["--scenario", "/nonexistent/s.toml"],
        "cannot read scenario file",
    );
    fails_with_2(&["--compare", &unknown, &range], "night_onn");
}

#[test]
fn load_mode_drives_a_real_server_with_agents_and_reports_what_it_measured() {
    let data = tempfile::tempdir().expect("temp dir");
    // `onshi serve` on a fresh data directory, its clock inside the first night.
    let server = Serve::start(
        env!("CARGO_BIN_EXE_onshi"),
        data.path(),
        None,
        "2026-01-19T20:30:00+09:00",
        None,
    );
    let url = server.url.clone();
    let keys = tempfile::tempdir().expect("keys dir");
    onshi_testkit::keys::TestKeys::workstation(keys.path());
    let out = Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args([
            "simulate",
            "--against",
            &url,
            "--keys",
            keys.path().to_str().expect("utf-8 path"),
            "--agents",
            "12",
            "--duration",
            "4",
            "--json",
        ])
        .env("ONSHI_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .expect("onshi simulate runs");
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["sites"], 12, "{r}");
    let devices = r["devices"].as_u64().expect("devices");
    assert!(devices >= 12, "{r}");
    assert!(r["requests"].as_u64().expect("requests") >= devices, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["agent_errors"], 0, "{r}");
    let states: BTreeMap<DeploymentState, u64> =
        serde_json::from_value(r["states"].clone()).expect("a count per deployment state");
    let total: u64 = states.values().sum();
    assert_eq!(total, devices, "{r}");
    // Inside the window with a throttle of 50: every terminal installed (restart required),
    // within seconds, and every reader installed with it, waiting for the same restart (no
    // terminal restarts in the window, so nothing is applied).
    let count = |state| states.get(&state).copied().unwrap_or(0);
    assert_eq!(
        count(DeploymentState::Installed),
        devices,
        "terminals and readers wait for the terminal's restart: {r}"
    );
    assert_eq!(count(DeploymentState::Applied), 0, "{r}");
}

#[test]
fn load_mode_without_the_operator_token_is_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(["simulate", "--against", "http://127.0.0.1:9"])
        .env_remove("ONSHI_OPERATOR_TOKEN")
        .output()
        .expect("onshi simulate runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ONSHI_OPERATOR_TOKEN"));
}
