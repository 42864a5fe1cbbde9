//! Card readers that were off, the site's automatic restart, and what the agent refuses.

mod common;

use common::*;
use jiff::Timestamp;
use onshi_core::deployment::DeploymentState as S;
use onshi_testkit::agent::{last_contact, part_len, wait_for_step_after};
use onshi_testkit::wait_for;

fn at(instant: &str) -> Timestamp {
    instant.parse().expect("an instant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_powered_off_reader_catches_up_the_next_night_and_auto_restart_applies_after_five() {
    let server = start_server(
        "2026-01-19T18:00:00+09:00",
        "2.0.0",
        &package(300_000, 3),
        &package(100_000, 4),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("hospital");
    // The hospital set a daily automatic restart at 06:30; the server tells the agent.
    let (terminal, readers) = AGENT
        .enroll(
            &server,
            HOSPITAL,
            &dir,
            &["--reader", "canon:R-1", "--reader", "canon:R-2"],
        )
        .await;
    let off = AGENT
        .output(vec![
            "reader".into(),
            "--state-dir".into(),
            dir.display().to_string(),
            "--serial".into(),
            "R-2".into(),
            "--power".into(),
            "off".into(),
        ])
        .await;
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );

    // Night 1: the terminal and the reader that is on take the update; R-2 does not.
    server.set_clock("2026-01-19T20:00:00+09:00").await;
    let agent = AGENT.run(&dir, &[]);
    server.wait_state(terminal, S::Installed).await;
    // The reader that is on installs its component; the terminal's restart applies it.
    server.wait_state(readers[0], S::Installed).await;
    assert_eq!(server.state_of(readers[1]).await, S::Waiting);
    let s = AGENT.status(&dir).await;
    assert_eq!(s["auto_restart"], "06:30", "{s}");
    assert_eq!(s["components"][0]["advice"], "auto_restart", "{s}");
    assert_eq!(s["components"][1]["installed"], "2.0.0", "{s}");
    assert_eq!(s["components"][1]["running"], "1.0.0", "{s}");
    assert_eq!(s["components"][1]["advice"], "auto_restart", "{s}");
    assert!(
        s["components"][0]["advice_text"]
            .as_str()
            .is_some_and(|a| a.contains("2026年1月20日(火) 06:30に自動で再起動")),
        "{s}"
    );
    assert_eq!(s["components"][2]["advice"], "power_on_reader", "{s}");

    // 05:00 the window closes; 06:29 nothing restarts yet.
    server.set_clock("2026-01-20T06:29:00+09:00").await;
    // The agent has checked in at 06:29 and finished that step (it checked in again)...
    wait_for_step_after(&dir, terminal, at("2026-01-20T06:29:00+09:00")).await;
    // ...and has not restarted.
    assert_eq!(server.state_of(terminal).await, S::Installed);
    assert_eq!(
        AGENT.status(&dir).await["components"][0]["running"],
        "1.0.0"
    );

    assert_eq!(server.state_of(readers[0]).await, S::Installed);

    // 06:30: the automatic restart applies the update, on the terminal and on its reader.
    server.set_clock("2026-01-20T06:31:00+09:00").await;
    server.wait_state(terminal, S::Applied).await;
    server.wait_state(readers[0], S::Applied).await;
    let s = AGENT.status(&dir).await;
    assert_eq!(s["components"][0]["running"], "2.0.0", "{s}");
    assert_eq!(s["components"][1]["running"], "2.0.0", "{s}");
    assert_eq!(s["components"][1]["advice"], "done", "{s}");

    // R-2 is switched on in the daytime: outside a window it still waits.
    let on = AGENT
        .output(vec![
            "reader".into(),
            "--state-dir".into(),
            dir.display().to_string(),
            "--serial".into(),
            "R-2".into(),
            "--power".into(),
            "on".into(),
        ])
        .await;
    assert!(on.status.success());
    server.set_clock("2026-01-20T10:00:00+09:00").await;
    wait_for_step_after(&dir, readers[1], at("2026-01-20T10:00:00+09:00")).await;
    assert_eq!(server.state_of(readers[1]).await, S::Waiting);
    assert!(part_len(&dir).is_none());

    // Night 2: it catches up; its terminal already restarted onto 2.0.0, so it is applied.
    server.set_clock("2026-01-20T20:00:00+09:00").await;
    server.wait_state(readers[1], S::Applied).await;
    let s = AGENT.status(&dir).await;
    assert_eq!(s["components"][2]["installed"], "2.0.0", "{s}");
    assert_eq!(s["components"][2]["advice"], "done", "{s}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_stays_installed_while_its_terminal_waits_and_is_applied_by_the_terminals_restart()
{
    let server = start_server(
        "2026-01-19T20:00:00+09:00",
        "2.0.0",
        &package(80_000, 7),
        &package(20_000, 8),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    // The clinic has no automatic restart: only staff restart the terminal.
    let (terminal, readers) = AGENT
        .enroll(&server, CLINIC, &dir, &["--reader", "canon:R-1"])
        .await;
    let reader = readers[0];
    let agent = AGENT.run(&dir, &[]);
    server.wait_state(terminal, S::Installed).await;
    server.wait_state(reader, S::Installed).await;
    // Many check-ins later, in the night and the next day, the reader still waits.
    for at_ in ["2026-01-20T02:00:00+09:00", "2026-01-20T09:00:00+09:00"] {
        server.set_clock(at_).await;
        wait_for_step_after(&dir, reader, at(at_)).await;
        wait_for_step_after(&dir, terminal, at(at_)).await;
        assert_eq!(server.state_of(reader).await, S::Installed, "at {at_}");
    }
    let s = AGENT.status(&dir).await;
    let r = &s["components"][1];
    assert_eq!(r["installed"], "2.0.0", "{s}");
    assert_eq!(r["running"], "1.0.0", "{s}");
    assert_eq!(r["advice"], "restart_now", "{s}");
    let en = AGENT
        .output(vec![
            "status".into(),
            "--state-dir".into(),
            dir.display().to_string(),
            "--lang".into(),
            "en".into(),
        ])
        .await;
    let en = String::from_utf8_lossy(&en.stdout).into_owned();
    assert!(
        en.contains("Restart required: applied when the terminal restarts"),
        "{en}"
    );
    assert!(!en.contains("Restart required: no"), "{en}");
    agent.kill();

    // Staff switch the terminal off and on while the agent is stopped: the agent starts with
    // the terminal (`run --boot`), finds it running 2.0.0 and activates the reader.
    let agent = AGENT.run(&dir, &["--boot"]);
    server.wait_state(terminal, S::Applied).await;
    server.wait_state(reader, S::Applied).await;
    let s = AGENT.status(&dir).await;
    assert_eq!(s["components"][1]["running"], "2.0.0", "{s}");
    assert_eq!(s["components"][1]["advice"], "done", "{s}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_release_is_refused_as_a_rollback() {
    let server = start_server(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(50_000, 7),
        &package(10_000, 8),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, _) = AGENT
        .enroll(&server, CLINIC, &dir, &["--base-version", "3.1.0"])
        .await;
    let agent = AGENT.run(&dir, &[]);
    server.wait_state(terminal, S::Failed).await;
    // The audit entry follows the state change.
    server.wait_for_audit("rollback refused").await;
    assert_eq!(
        std::fs::read_to_string(dir.join("current")).expect("pointer"),
        "3.1.0"
    );
    assert!(!dir.join("versions/2.0.0").exists());
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_unreachable_the_agent_backs_off_and_keeps_the_old_version() {
    let server = start_server(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(50_000, 9),
        &package(10_000, 10),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    // Point the agent at a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let path = dir.join("agent.json");
    let text = std::fs::read_to_string(&path).expect("agent.json");
    std::fs::write(&path, text.replace(&server.base, &dead)).expect("rewrite");
    // Real pace (no --max-sleep-ms cap on the backoff): 5 s, then 10 s, ...
    let mut agent = AGENT.run_at_own_pace(&dir, &tmp.path().join("agent.log"), &[]);
    let unreached = "server not reached; the installed version keeps running";
    wait_for("the first attempt", || !agent.events(unreached).is_empty()).await;
    assert!(agent.alive(), "the agent keeps running");
    // The attempt says how long the agent now waits: the 5 s back-off less at most half of it
    // (jitter); so this is the only attempt so far.
    let attempts = agent.events(unreached);
    assert_eq!(attempts.len(), 1, "{}", agent.log_text());
    let wait_s = attempts[0]["fields"]["wait_s"].as_f64().expect("wait_s");
    assert!(
        (2.5..=5.0).contains(&wait_s),
        "one attempt, then a backoff of seconds: {}",
        agent.log_text()
    );
    drop(agent);
    let s = AGENT.status(&dir).await;
    let t = &s["components"][0];
    assert_eq!(t["running"], "1.0.0");
    assert!(
        t["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach the server")),
        "{s}"
    );
    assert_eq!(t["advice"], "not_contacted", "{s}");
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts `size` of tmpfs at `path`; None where mounting is not allowed (not root), which
    /// fails the test under CI=true, where `.ci/run` runs as root.
    fn mount(path: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "mounting a tmpfs failed under CI (is .ci/run running as root?)"
            );
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self(path.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_clearly_and_the_old_version_keeps_running() {
    let server = start_server(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(3 << 20, 11),
        &package(10_000, 12),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some(_disk) = SmallDisk::mount(&tmp.path().join("disk"), "1m") else {
        return;
    };
    let dir = tmp.path().join("disk/clinic");
    let (terminal, _) = AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    // The log goes elsewhere: the disk is about to be full.
    let mut agent = AGENT.run_with_log(&dir, &tmp.path().join("agent.log"), &[]);
    server.wait_state(terminal, S::Failed).await;
    server.wait_for_audit("no space left").await;
    // The agent carries on: it checks in again after the failure (the state file records it,
    // or, the disk being full, the log says it could not)...
    let failed_at = server.state.clock.now();
    let unrecorded = "could not record the check-in in state.json";
    let before = agent.events(unrecorded).len();
    wait_for("a check-in after the failure", || {
        last_contact(&dir, terminal).is_some_and(|t| t > failed_at)
            || agent.events(unrecorded).len() > before
    })
    .await;
    // ...is still running, the old version installed and running.
    assert!(
        agent.alive(),
        "the agent keeps running on a full disk: {}",
        agent.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("current")).expect("pointer"),
        "1.0.0"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("running")).expect("running"),
        "1.0.0"
    );
    assert!(!dir.join("versions/2.0.0").exists());
}

#[tokio::test]
async fn a_plain_http_server_off_this_machine_is_refused_before_anything_is_sent() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // `.invalid` never resolves: had the agent tried to connect, it would fail otherwise.
    let out = AGENT
        .output(
            [
                "enroll",
                "--server",
                "http://onshi.invalid:8080",
                "--institution",
                HOSPITAL,
                "--key",
                "some-key",
                "--trust-root",
                "root.json",
                "--state-dir",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([tmp.path().join("site").display().to_string()])
            .collect(),
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("must be https://"), "{stderr}");
    assert!(!tmp.path().join("site").join("agent.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_self_check_runs_after_the_restart_and_its_failure_is_reported() {
    let server = start_server(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(50_000, 11),
        &package(10_000, 12),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, _) = AGENT
        .enroll(&server, CLINIC, &dir, &["--self-check-command", "false"])
        .await;
    let agent = AGENT.run(&dir, &[]);
    server.wait_state(terminal, S::Installed).await;
    drop(agent);
    server.set_clock("2026-01-20T07:00:00+09:00").await;
    let out = AGENT
        .output(vec![
            "restart".into(),
            "--state-dir".into(),
            dir.display().to_string(),
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_state(terminal, S::Applied).await;
    server.wait_for_audit("self-check failed").await;
}
