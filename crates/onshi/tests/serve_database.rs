//! `onshi serve --database` when the database cannot be reached at start: a clear message naming
//! the URL, its password redacted, and a non-zero exit (the "bad input and faults").

use std::process::Command;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

#[test]
fn an_unreachable_database_at_start_names_the_url_without_its_password_and_exits_1() {
    let data = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "postgres://onshi:s3cret-password@127.0.0.1:{}/onshi",
        closed_port()
    );
    let started = Instant::now();

    let out = Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .arg("--data")
        .arg(data.path())
        .env("RUST_LOG", "off")
        .output()
        .expect("onshi runs");

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL at postgres://onshi:***@127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it gave up quickly"
    );
}

#[test]
fn a_malformed_database_url_is_refused_with_the_password_redacted() {
    let data = tempfile::tempdir().expect("temp dir");

    let out = Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "postgres://onshi:s3cret@127.0.0.1:notaport/onshi",
        ])
        .arg("--data")
        .arg(data.path())
        .env("RUST_LOG", "off")
        .output()
        .expect("onshi runs");

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("postgres://onshi:***@127.0.0.1:notaport/onshi is not a PostgreSQL URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
}
