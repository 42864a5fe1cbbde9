//! `onshi demo --headless --json` as a script sees it: the real binary runs a small fleet
//! (server, agents, staff and patients in one process) to an instant and prints its summary.

use std::process::{Command, Output};

use serde_json::Value;

/// The same 20 sites every run.
const SITES: &str = "20";
/// With this seed, of the sites drawn from the simulator's preset, some keep their terminal on
/// through the first nights and a few of those wait for an error or for days before restarting.
const SEED: &str = "5";

fn onshi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(args)
        .env_remove("ONSHI_OPERATOR_TOKEN")
        .env("RUST_LOG", "error")
        .output()
        .expect("the onshi binary runs")
}

/// Runs the demo headless to `until` and answers its JSON summary.
fn demo_until(until: &str) -> Value {
    let out = onshi(&[
        "demo",
        "--headless",
        "--json",
        "--sites",
        SITES,
        "--seed",
        SEED,
        "--until",
        until,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stderr}"));
    assert_eq!(summary["simulated_until"], until);
    summary
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// What every summary must satisfy.
fn consistent(s: &Value) {
    assert_eq!(n(&s["institutions"]), 20);
    assert_eq!(s["sites"], s["institutions"], "DESIGN.md's name for it");
    let devices = n(&s["devices"]);
    assert_eq!(devices, n(&s["terminals"]) + n(&s["card_readers"]));
    assert_eq!(n(&s["terminals"]), 20, "one terminal per site");
    let states = s["states"].as_object().expect("states");
    assert_eq!(states.values().map(n).sum::<u64>(), devices, "{states:?}");
    assert_eq!(n(&s["downloads_started_outside_windows"]), 0, "{s}");
    assert!(n(&s["downloads_started"]) >= n(&s["kept_power_on"]["devices"]));
    // At least the announcement to every site when the campaign is activated.
    assert!(n(&s["mails_sent"]) >= n(&s["institutions"]), "{s}");
    assert_eq!(s["reception_errors_901"], s["patients_met_901"]);
    assert_eq!(n(&s["agent_errors"]), 0, "{s}");
    // Every site whose terminal stayed on through a night has the update.
    let kept = &s["kept_power_on"];
    assert!(n(&kept["sites"]) > 0, "{s}");
    assert_eq!(kept["updated"], kept["devices"], "{s}");
}

#[test]
fn a_night_and_two_mornings_of_a_small_fleet() {
    // The first night, up to 08:00: sites that kept their terminal on have the update; some
    // terminals still wait for their restart, but no reception has opened since the installs
    // (the last patients came before 19:00), so no patient met error 901.
    let morning = demo_until("2026-01-20T08:00:00+09:00");
    consistent(&morning);
    assert!(n(&morning["restart_required"]) > 0, "{morning}");
    // The card readers of those terminals are installed too, waiting for the same restart: not
    // applied, and not counted as terminals needing a restart.
    assert!(
        n(&morning["states"]["installed"]) > n(&morning["restart_required"]),
        "{morning}"
    );
    assert_eq!(n(&morning["patients_met_901"]), 0, "{morning}");

    // Through the next day: the terminals of sites whose staff restart only when the first
    // error appears (or days later) meet patients before their restart — with this seed, some.
    let later = demo_until("2026-01-21T12:00:00+09:00");
    consistent(&later);
    assert!(n(&later["patients"]) > 0, "{later}");
    let met = n(&later["patients_met_901"]);
    let sites = n(&later["sites_met_901"]);
    assert!(sites >= 1, "{later}");
    assert!(met >= sites, "{later}");
    assert!(met < n(&later["card_patients"]), "{later}");
}

#[test]
fn bad_arguments_exit_with_2_and_name_the_problem() {
    for (args, needle) in [
        (
            &[
                "demo",
                "--headless",
                "--until",
                "2026-01-20T08:00:00+09:00",
                "--sites",
                "0",
            ][..],
            "--sites 0",
        ),
        (
            &["demo", "--headless", "--until", "2026-01-19T08:00:00+09:00"][..],
            "must be after the start",
        ),
        (
            &["demo", "--headless", "--until", "tomorrow"][..],
            "--until",
        ),
        (
            &["demo", "--clock", "2026-13-01T00:00:00+09:00"][..],
            "--clock",
        ),
        (&["demo", "--json"][..], "--headless"),
        (&["demo", "--clock-speed", "0.5"][..], "--clock-speed"),
    ] {
        let out = onshi(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Starts the live demo, waits for its banner and first hour's line, sends `signal` and answers
/// the exit status and what it wrote to stderr.
fn live_demo_stopped_by(signal: &str) -> (std::process::ExitStatus, String) {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut child = Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args([
            "demo",
            "--sites",
            "5",
            "--listen",
            "127.0.0.1:0",
            "--lang",
            "en",
        ])
        .env_remove("ONSHI_OPERATOR_TOKEN")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the onshi binary runs");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    // The banner, then a line per simulated hour: the driver and the server are both running.
    let mut lines = stdout.lines().map_while(Result::ok);
    assert!(
        lines.any(|l| l.contains("Ctrl-C to stop")),
        "the demo printed its banner"
    );
    let first_hour = lines.next().expect("a line for the first simulated hour");
    let drain = std::thread::spawn(move || lines.count());
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    assert!(!first_hour.trim().is_empty(), "{first_hour:?}");
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop on {signal}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = drain.join();
    (status, reader.join().expect("stderr read"))
}

#[test]
fn sigterm_and_ctrl_c_stop_the_live_demo_cleanly() {
    for signal in ["-TERM", "-INT"] {
        let (status, stderr) = live_demo_stopped_by(signal);
        assert!(status.success(), "{signal}: {status}: {stderr}");
        assert!(stderr.contains("stopped."), "{signal}: {stderr}");
        assert!(!stderr.contains("no answer"), "{signal}: {stderr}");
    }
}
