//! The agent as the terminal's service under systemd (`onshi_agent::os`, the Linux
//! implementation): `run` tells the service manager it is ready once it works and that it is
//! stopping when SIGTERM (`systemctl stop`) arrives, then exits cleanly; `service-unit` prints
//! the unit an installer writes.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// The next `sd_notify` message on `socket` (waiting at most 60 s: a deadline, not a pause).
async fn next_message(socket: &UnixDatagram) -> String {
    let socket = socket.try_clone().expect("socket");
    tokio::task::spawn_blocking(move || {
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notify message in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tells_systemd_it_is_ready_and_stopping_and_exits_cleanly_on_sigterm() {
    let server = start_server(
        "2026-01-19T18:00:00+09:00",
        "2.0.0",
        &package(10_000, 1),
        &package(10_000, 2),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    let notify = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).expect("the manager's socket");

    let log = tmp.path().join("run.log");
    let mut child = AGENT
        .command()
        .args(["run", "--max-sleep-ms", "50", "--state-dir"])
        .arg(&dir)
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("agent starts");
    let ready = next_message(&socket).await;
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        child.try_wait().expect("status").is_none(),
        "still running once ready"
    );

    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let stopping = next_message(&socket).await;
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    let status = tokio::task::spawn_blocking(move || child.wait().expect("exit"))
        .await
        .expect("join");
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("agent stopped"), "{text}");
}

#[tokio::test]
async fn service_unit_runs_this_binary_on_the_state_directory_at_boot() {
    let out = AGENT
        .output(vec![
            "service-unit".into(),
            "--state-dir".into(),
            "/var/lib/onshi-agent".into(),
        ])
        .await;
    assert!(out.status.success());
    let unit = String::from_utf8(out.stdout).expect("text");
    let exec = format!(
        "ExecStart={} run --boot --state-dir /var/lib/onshi-agent",
        std::fs::canonicalize(AGENT.0)
            .expect("the binary")
            .display()
    );
    assert!(unit.lines().any(|l| l == exec), "{exec}\n{unit}");
    assert!(unit.lines().any(|l| l == "Type=notify"), "{unit}");
}
