//! Delta packages (issue 18) with the real agent binary and the real server: a terminal that
//! installed release A is offered B's delta and rebuilds B from its installed package, resuming
//! after kill -9; a tampered or missing base, or a delta damaged on the way, falls back to the
//! full package, reported, and nothing but B's signed bytes is ever installed.

mod common;

use common::*;
use onshi_api::admin::DeploymentListing;
use onshi_core::deployment::DeploymentState as S;
use onshi_core::offer::CampaignAction;
use onshi_core::release::{Delta, Target};
use onshi_core::version::Version;
use onshi_testkit::agent::{log_events, part_len};
use onshi_testkit::{TestApp, wait_for, wait_until};
use reqwest::Method;
use serde_json::json;

const MIB: usize = 1 << 20;
const SECOND: &str = "2026-02";

/// `len` bytes that do not compress by themselves (so a small delta means the base did the
/// work).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Release A: 6 MiB.
fn release_a() -> Vec<u8> {
    noise(6 * MIB, 0x2545_f491_4f6c_dd1d)
}

/// Release B: A with 512 KiB rewritten (so the delta spans more than one chunk of the
/// server's answer, and a kill can cut it), 100 KB inserted (everything after moves) and a
/// tail.
fn release_b(a: &[u8]) -> Vec<u8> {
    let mut b = a.to_vec();
    b[MIB..MIB + 512 * 1024].copy_from_slice(&noise(512 * 1024, 77));
    b.splice(3 * MIB..3 * MIB, package(100_000, 9));
    b.extend_from_slice(b"version B");
    b
}

/// The server in the first night with release A (2.0.0) in campaign 2026-01.
async fn with_release_a(a: &[u8]) -> TestApp {
    let app = with_sites("2026-01-19T20:30:00+09:00").await;
    app.release("r1", "2.0.0", &[(Target::Terminal, a)]).await;
    activate(&app, "r1").await;
    app
}

/// Closes 2026-01 and opens 2026-02 (same nights) with release B (3.0.0) and its delta from
/// 2.0.0 (built as `onshi release delta` builds it; `tamper` may damage it after upload).
async fn release_b_with_delta(app: &TestApp, a: &[u8], b: &[u8]) -> (Vec<u8>, Delta) {
    app.expect(
        app.control(onshi_testkit::CAMPAIGN, CampaignAction::Close),
        200,
    )
    .await;
    let mut delta = Vec::new();
    onshi_agent::delta::encode(a, b, 19, &mut delta).expect("delta");
    assert!(
        delta.len() * 5 < b.len(),
        "the delta is {} bytes for {}",
        delta.len(),
        b.len()
    );
    let (b_sha, b_size) = app.upload(b).await;
    let (d_sha, d_size) = app.upload(&delta).await;
    let mut manifest =
        onshi_testkit::keys::manifest("r2", "3.0.0", &[(Target::Terminal, b_sha, b_size)]);
    let entry = Delta {
        target: Target::Terminal,
        base_version: Version::parse("2.0.0").expect("version"),
        base_sha256: onshi_core::release::Sha256::of(a),
        base_size: a.len() as u64,
        sha256: d_sha,
        size: d_size,
    };
    manifest.deltas.push(entry.clone());
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/releases")
            .json(&onshi_testkit::keys::sign_manifest(&manifest)),
        201,
    )
    .await;
    let schedule = onshi_core::schedule::PRESET_2026_01.replacen("2026-01", SECOND, 1);
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
            .json(&json!({
                "schedule": schedule, "release_id": "r2",
                "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60},
            })),
        201,
    )
    .await;
    app.expect(app.control(SECOND, CampaignAction::Activate), 200)
        .await;
    (delta, entry)
}

async fn state_in_second(app: &TestApp, device: i64) -> Option<S> {
    let rows: Vec<DeploymentListing> = app
        .expect_as(
            app.admin(
                Method::GET,
                &format!("/api/v1/admin/campaigns/{SECOND}/devices"),
            ),
            200,
        )
        .await;
    rows.into_iter()
        .find(|r| r.device.id == device)
        .map(|r| r.state)
}

async fn wait_installed_in_second(app: &TestApp, device: i64) {
    wait_until("the device to install release B", async || {
        state_in_second(app, device).await == Some(S::Installed)
    })
    .await;
}

/// `onshi_artifact_bytes_total{kind=…}` from `/metrics`.
async fn bytes_sent(app: &TestApp, kind: &str) -> u64 {
    let body = app.expect(app.admin(Method::GET, "/metrics"), 200).await;
    let text = body.as_str().expect("Prometheus text");
    let needle = format!("onshi_artifact_bytes_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_goes_from_a_to_b_through_a_delta_resuming_after_kill() {
    let a = release_a();
    let b = release_b(&a);
    let server = with_release_a(&a).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, _) = AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    let agent = AGENT.run(&dir, &[]);
    server.wait_state(terminal, S::Installed).await;
    agent.kill();
    assert_eq!(bytes_sent(&server, "package").await, a.len() as u64);

    let (delta, _) = release_b_with_delta(&server, &a, &b).await;
    // Slowly, so that it is killed mid-delta: the partial delta is resumed, not fetched again.
    let rate = ["--max-rate", "100000"];
    let agent = AGENT.run(&dir, &rate);
    wait_for("a partial delta", || {
        part_len(&dir).is_some_and(|n| n >= 8_000)
    })
    .await;
    agent.kill();
    let first = part_len(&dir).expect("partial delta kept");
    assert!(first < delta.len() as u64, "killed mid-delta");
    let agent = AGENT.run(&dir, &[]);
    wait_installed_in_second(&server, terminal).await;
    let log = agent.log_text();
    let resumed = log_events(&log, "resuming download");
    assert_eq!(resumed[0]["fields"]["offset"], first, "{log}");
    assert_eq!(
        log_events(&log, "package rebuilt from the delta and verified").len(),
        1,
        "{log}"
    );
    assert!(
        log_events(&log, "package downloaded and verified").is_empty(),
        "the full package was not fetched: {log}"
    );
    assert_eq!(
        std::fs::read(dir.join("versions/3.0.0/package")).expect("installed"),
        b
    );
    // What left the server for B is the delta (what the killed attempt had already handed to
    // the connection, and the rest), and no byte of B's package.
    let sent = bytes_sent(&server, "delta").await;
    assert!(
        sent >= delta.len() as u64 && sent < 2 * delta.len() as u64,
        "{sent} bytes of delta sent for {}",
        delta.len()
    );
    assert_eq!(bytes_sent(&server, "package").await, a.len() as u64);
    server.wait_for_audit("rebuilt from a delta").await;
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("downloads"))
        .expect("downloads")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_missing_base_falls_back_to_the_full_package_and_says_why() {
    let a = release_a();
    let b = release_b(&a);
    let server = with_release_a(&a).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let (clinic, hospital) = (tmp.path().join("clinic"), tmp.path().join("hospital"));
    let (t1, _) = AGENT.enroll(&server, CLINIC, &clinic, &[]).await;
    let (t2, _) = AGENT.enroll(&server, HOSPITAL, &hospital, &[]).await;
    for (dir, t) in [(&clinic, t1), (&hospital, t2)] {
        let agent = AGENT.run(dir, &[]);
        server.wait_state(t, S::Installed).await;
        agent.kill();
    }
    // The clinic's installed package was changed; the hospital's is gone.
    let base = clinic.join("versions/2.0.0/package");
    let mut bytes = std::fs::read(&base).expect("base");
    bytes[12_345] ^= 0x01;
    std::fs::write(&base, &bytes).expect("tamper");
    std::fs::remove_file(hospital.join("versions/2.0.0/package")).expect("remove");

    release_b_with_delta(&server, &a, &b).await;
    let agents = [AGENT.run(&clinic, &[]), AGENT.run(&hospital, &[])];
    wait_installed_in_second(&server, t1).await;
    wait_installed_in_second(&server, t2).await;
    for (dir, agent) in [&clinic, &hospital].into_iter().zip(&agents) {
        let log = agent.log_text();
        assert_eq!(
            log_events(&log, "package downloaded and verified").len(),
            1,
            "the full package: {log}"
        );
        assert!(log_events(&log, "package rebuilt from the delta and verified").is_empty());
        assert_eq!(
            std::fs::read(dir.join("versions/3.0.0/package")).expect("installed"),
            b
        );
    }
    server
        .wait_for_audit("full package: the installed 2.0.0 package is missing")
        .await;
    let audit = server.audit().await;
    assert!(
        audit.contains("full package: the installed 2.0.0 package is ")
            && audit
                .matches("full package: the installed 2.0.0 package")
                .count()
                == 2,
        "{audit}"
    );
    assert_eq!(bytes_sent(&server, "delta").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_damaged_on_the_way_is_refused_reported_and_only_b_is_installed() {
    let a = release_a();
    let b = release_b(&a);
    let server = with_release_a(&a).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, _) = AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    let agent = AGENT.run(&dir, &[]);
    server.wait_state(terminal, S::Installed).await;
    agent.kill();

    let (_, entry) = release_b_with_delta(&server, &a, &b).await;
    // The stored delta rots on the server (or a cache between): same length, other bytes.
    let stored = onshi_server::artifacts::path_of(&server.state.data_dir, entry.sha256);
    let mut bytes = std::fs::read(&stored).expect("stored delta");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, &bytes).expect("damage");

    let agent = AGENT.run(&dir, &[]);
    wait_installed_in_second(&server, terminal).await;
    server
        .wait_for_audit("delta refused: SHA-256 mismatch")
        .await;
    let log = agent.log_text();
    assert!(log_events(&log, "package rebuilt from the delta and verified").is_empty());
    assert_eq!(
        log_events(&log, "package downloaded and verified").len(),
        1,
        "{log}"
    );
    // The damaged delta was never applied, and is gone; only B's signed bytes are installed.
    assert!(!dir.join("downloads").join(entry.sha256.hex()).exists());
    assert_eq!(
        std::fs::read(dir.join("versions/3.0.0/package")).expect("installed"),
        b
    );
    let state = std::fs::read_to_string(dir.join("state.json")).expect("state");
    assert!(
        state.contains(&entry.sha256.hex()),
        "remembered as refused: {state}"
    );
    drop(agent);
}
