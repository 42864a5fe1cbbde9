//! Card readers that were off, the site's automatic restart, and what the agent refuses.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_powered_off_reader_catches_up_the_next_night_and_auto_restart_applies_after_five() {
    let server = Server::start(
        "2026-01-19T18:00:00+09:00",
        "2.0.0",
        &package(300_000, 3),
        &package(100_000, 4),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("hospital");
    // The hospital set a daily automatic restart at 06:30; the server tells the agent.
    let (terminal, readers) = enroll(
        &server,
        HOSPITAL,
        &dir,
        &["--reader", "canon:R-1", "--reader", "canon:R-2"],
    )
    .await;
    let off = agent_output(vec![
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
    let agent = Running::start(&dir, &[]);
    server.wait_state(terminal, "installed").await;
    server.wait_state(readers[0], "applied").await;
    assert_eq!(server.state_of(readers[1]).await, "waiting");
    let s = status(&dir).await;
    assert_eq!(s["auto_restart"], "06:30", "{s}");
    assert_eq!(s["components"][0]["advice"], "restart_automatically", "{s}");
    assert_eq!(s["components"][2]["advice"], "power_on_reader", "{s}");

    // 05:00 the window closes; 06:29 nothing restarts yet.
    server.set_clock("2026-01-20T06:29:00+09:00").await;
    // The agent has checked in at 06:29 (server time, in UTC in its state file)...
    wait_for("a check-in at 06:29", || {
        std::fs::read_to_string(dir.join("state.json"))
            .is_ok_and(|s| s.contains("2026-01-19T21:29"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and has not restarted.
    assert_eq!(server.state_of(terminal).await, "installed");
    assert_eq!(status(&dir).await["components"][0]["running"], "1.0.0");

    // 06:30: the automatic restart applies the update.
    server.set_clock("2026-01-20T06:31:00+09:00").await;
    server.wait_state(terminal, "applied").await;
    let s = status(&dir).await;
    assert_eq!(s["components"][0]["running"], "2.0.0", "{s}");

    // R-2 is switched on in the daytime: outside a window it still waits.
    let on = agent_output(vec![
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.state_of(readers[1]).await, "waiting");
    assert!(part_len(&dir).is_none());

    // Night 2: it catches up, without a terminal restart.
    server.set_clock("2026-01-20T20:00:00+09:00").await;
    server.wait_state(readers[1], "applied").await;
    let s = status(&dir).await;
    assert_eq!(s["components"][2]["installed"], "2.0.0", "{s}");
    assert_eq!(s["components"][2]["advice"], "done", "{s}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_signed_by_another_key_is_refused_reported_and_never_installed() {
    let server = Server::start(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(50_000, 5),
        &package(10_000, 6),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    // Pin a key that is not the operator's.
    let other = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=";
    let (terminal, _) = enroll(&server, CLINIC, &dir, &["--trust-key", other]).await;
    let agent = Running::start(&dir, &[]);
    server.wait_state(terminal, "failed").await;
    // Still refused after many more check-ins, reported once, nothing downloaded or installed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.state_of(terminal).await, "failed");
    let audit = server.audit().await;
    assert_eq!(audit.matches("manifest refused").count(), 1, "{audit}");
    assert!(!dir.join("versions/2.0.0").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("current")).expect("pointer"),
        "1.0.0"
    );
    assert!(part_len(&dir).is_none());
    drop(agent);
}

async fn wait_for_audit(server: &Server, text: &str) {
    for _ in 0..200 {
        if server.audit().await.contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the audit log never mentioned {text:?}: {}",
        server.audit().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_release_is_refused_as_a_rollback() {
    let server = Server::start(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(50_000, 7),
        &package(10_000, 8),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, _) = enroll(&server, CLINIC, &dir, &["--base-version", "3.1.0"]).await;
    let agent = Running::start(&dir, &[]);
    server.wait_state(terminal, "failed").await;
    // The audit entry follows the state change.
    wait_for_audit(&server, "rollback refused").await;
    assert_eq!(
        std::fs::read_to_string(dir.join("current")).expect("pointer"),
        "3.1.0"
    );
    assert!(!dir.join("versions/2.0.0").exists());
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_unreachable_the_agent_backs_off_and_keeps_the_old_version() {
    let server = Server::start(
        "2026-01-19T20:30:00+09:00",
        "2.0.0",
        &package(50_000, 9),
        &package(10_000, 10),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    enroll(&server, CLINIC, &dir, &[]).await;
    // Point the agent at a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let path = dir.join("agent.json");
    let text = std::fs::read_to_string(&path).expect("agent.json");
    std::fs::write(&path, text.replace(&server.url, &dead)).expect("rewrite");
    // Real pace (no --max-sleep-ms cap on the backoff): 5 s, then 10 s, ...
    let mut child = common::agent()
        .args(["run", "--state-dir"])
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agent starts");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the agent keeps running"
    );
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    let attempts = log_events(
        &log,
        "server not reached; the installed version keeps running",
    );
    assert_eq!(
        attempts.len(),
        1,
        "one attempt, then a backoff of seconds: {log}"
    );
    let s = status(&dir).await;
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
    let server = Server::start(
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
    let (terminal, _) = enroll(&server, CLINIC, &dir, &[]).await;
    // The log goes elsewhere: the disk is about to be full.
    let mut agent = Running::start_with_log(&dir, &tmp.path().join("agent.log"), &[]);
    server.wait_state(terminal, "failed").await;
    wait_for_audit(&server, "no space left").await;
    // The agent is still running, the old version installed and running.
    tokio::time::sleep(Duration::from_millis(300)).await;
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
