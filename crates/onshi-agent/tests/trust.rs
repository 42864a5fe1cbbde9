//! The trust chain against the real agent binary and the real server: what a compromised server
//! or database cannot make a terminal install, enrolment that trusts only the installer's root,
//! and key rotations that running agents follow without re-enrolling.

mod common;

use common::*;
use onshi_core::offer::CampaignAction;
use onshi_core::release::Target;
use onshi_core::trust::{Role, Root, Signed};
use onshi_testkit::agent::{part_len, wait_for_step_after};
use onshi_testkit::keys::{self, FAR, TIMESTAMP_KEY, key, public};
use onshi_testkit::wait_for;
use reqwest::Method;

const EVENING: &str = "2026-01-19T20:30:00+09:00";

fn current(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("current")).unwrap_or_default()
}

/// The root version in the agent's `trust.json`.
fn trusted_root_version(dir: &std::path::Path) -> u64 {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("trust.json")).expect("trust.json"))
            .expect("json");
    let root: Signed = serde_json::from_value(file["root"].clone()).expect("signed root");
    root.parse::<Root>(Role::Root).expect("root").version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_the_targets_keys_did_not_sign_is_refused_reported_and_never_installed() {
    let server = with_sites(EVENING).await;
    // Written into the database as a compromised server could: signed with the server's own
    // timestamp key and a stranger's key, neither of them a targets key.
    inject_release(&server, "r1", "2.0.0", &package(50_000, 5), |m| {
        Signed::sign(m, &[&key(TIMESTAMP_KEY), &key(99)])
    })
    .await;
    activate(&server, "r1").await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, _) = AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    let agent = AGENT.run(&dir, &[]);
    server
        .wait_state(terminal, onshi_core::deployment::DeploymentState::Failed)
        .await;
    // Still refused after more check-ins, reported once, nothing downloaded or installed.
    for _ in 0..3 {
        wait_for_step_after(&dir, terminal, server.state.clock.now()).await;
    }
    let audit = server.audit().await;
    assert_eq!(
        audit
            .matches("metadata refused: targets metadata has 0 valid signature(s)")
            .count(),
        1,
        "{audit}"
    );
    assert_eq!(current(&dir), "1.0.0");
    assert!(part_len(&dir).is_none(), "nothing fetched");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_for_another_release_expired_or_endless_is_refused() {
    let server = with_sites(EVENING).await;
    // A manifest validly signed, but for release "r-other", served as "r1" (a replay).
    inject_release(&server, "r1", "2.0.0", &package(50_000, 6), |m| {
        let mut other = m.clone();
        other.release_id = "r-other".into();
        Signed::sign(&other, &[&key(keys::TARGETS_KEY)])
    })
    .await;
    activate(&server, "r1").await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let clinic = tmp.path().join("clinic");
    AGENT.enroll(&server, CLINIC, &clinic, &[]).await;
    let agent = AGENT.run(&clinic, &[]);
    server
        .wait_for_audit(
            "metadata is for release \\\"r-other\\\", but release \\\"r1\\\" was offered",
        )
        .await;
    drop(agent);
    assert_eq!(current(&clinic), "1.0.0");

    // Expired: the API refuses to publish it; written into the database anyway, the agent
    // refuses it too (an indefinite freeze on an old release is noticed).
    let server = with_sites(EVENING).await;
    let (sha, size) = server.upload(&package(50_000, 7)).await;
    let mut stale = keys::manifest("r1", "2.0.0", &[(Target::Terminal, sha, size)]);
    stale.expires = "2026-01-19T10:00:00Z".parse().expect("instant");
    let body = Signed::sign(&stale, &[&key(keys::TARGETS_KEY)]);
    let refused = server
        .expect_error(
            server
                .admin(Method::POST, "/api/v1/admin/releases")
                .json(&body),
            400,
            onshi_api::ErrorCode::UntrustedMetadata,
        )
        .await;
    assert_eq!(refused.code, onshi_api::ErrorCode::UntrustedMetadata);
    assert!(refused.message.contains("expired"), "{}", refused.message);
    inject_release(&server, "r1", "2.0.0", &package(50_000, 7), |_| {
        body.clone()
    })
    .await;
    activate(&server, "r1").await;
    let hospital = tmp.path().join("hospital");
    AGENT.enroll(&server, HOSPITAL, &hospital, &[]).await;
    let agent = AGENT.run(&hospital, &[]);
    server
        .wait_for_audit("metadata refused: targets metadata expired at 2026-01-19T10:00:00Z")
        .await;
    drop(agent);
    assert_eq!(current(&hospital), "1.0.0");

    // Endless data: a manifest over the agent's limit is cut off, not read to the end.
    let server = with_sites(EVENING).await;
    inject_release(&server, "r1", "2.0.0", &package(50_000, 8), |m| {
        let mut huge = m.clone();
        huge.created_at = "x".repeat(onshi_api::device::MAX_METADATA_BYTES);
        Signed::sign(&huge, &[&key(keys::TARGETS_KEY)])
    })
    .await;
    activate(&server, "r1").await;
    let third = tmp.path().join("third");
    AGENT.enroll(&server, CLINIC, &third, &[]).await;
    let agent = AGENT.run(&third, &[]);
    server.wait_for_audit("bytes; refused").await;
    drop(agent);
    assert_eq!(current(&third), "1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_refuses_a_server_whose_root_does_not_chain_to_the_installers() {
    let server = start_server(EVENING, "2.0.0", &package(1000, 11), &package(1000, 12)).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    // Another organisation's key ceremony.
    let foreign = Root::new(
        1,
        FAR.parse().expect("instant"),
        (&[public(41), public(42)], 1),
        (&[public(43)], 1),
        (&[public(44)], 1),
        (&[public(44)], 1),
    );
    let root_file = tmp.path().join("foreign-root.json");
    std::fs::write(
        &root_file,
        serde_json::to_vec(&Signed::sign(&foreign, &[&key(41)])).expect("json"),
    )
    .expect("write");
    let dir = tmp.path().join("clinic");
    let key = server.enrollment_key(CLINIC).await;
    let out = AGENT
        .output(
            [
                "enroll",
                "--server",
                &server.url(""),
                "--institution",
                CLINIC,
                "--key",
                &key,
                "--state-dir",
                &dir.display().to_string(),
                "--trust-root",
                &root_file.display().to_string(),
            ]
            .map(str::to_owned)
            .to_vec(),
        )
        .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not chain to the trusted root"),
        "{stderr}"
    );
    assert!(!dir.join("agent.json").exists(), "nothing enrolled");
    // Without the installer's root there is no enrolment at all.
    let out = AGENT
        .output(
            [
                "enroll",
                "--server",
                &server.url(""),
                "--institution",
                CLINIC,
                "--key",
                &key,
                "--state-dir",
                &dir.display().to_string(),
            ]
            .map(str::to_owned)
            .to_vec(),
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "--trust-root is required");
    assert!(!dir.join("agent.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_agents_follow_a_targets_then_a_root_key_rotation_and_refuse_the_revoked_key() {
    let server = start_server(EVENING, "2.0.0", &package(50_000, 13), &package(1000, 14)).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    AGENT.enroll(&server, CLINIC, &dir, &[]).await;
    let agent = AGENT.run(&dir, &[]);
    wait_for("2.0.0 installed", || current(&dir) == "2.0.0").await;
    assert_eq!(trusted_root_version(&dir), 1);

    // Targets key 10 is rotated out for key 12: root version 2, signed by root keys 1 and 2.
    let v2 = Root::new(
        2,
        FAR.parse().expect("instant"),
        (&keys::ROOT_KEYS.map(public), 2),
        (&[public(12)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
    );
    let publish_root = |root: Signed| {
        server.expect(
            server
                .admin(Method::POST, "/api/v1/admin/trust/root")
                .json(&root),
            201,
        )
    };
    // Signed by one root key only: below the threshold, refused.
    server
        .expect(
            server
                .admin(Method::POST, "/api/v1/admin/trust/root")
                .json(&Signed::sign(&v2, &[&key(1)])),
            400,
        )
        .await;
    publish_root(Signed::sign(&v2, &[&key(1), &key(2)])).await;
    // The revoked key can no longer publish a release, the new one can.
    let (sha, size) = server.upload(&package(60_000, 15)).await;
    let components = [(Target::Terminal, sha, size)];
    let manifest = keys::manifest("r2", "3.0.0", &components);
    server
        .expect(
            server
                .admin(Method::POST, "/api/v1/admin/releases")
                .json(&Signed::sign(&manifest, &[&key(keys::TARGETS_KEY)])),
            400,
        )
        .await;
    server
        .expect(
            server
                .admin(Method::POST, "/api/v1/admin/releases")
                .json(&Signed::sign(&manifest, &[&key(12)])),
            201,
        )
        .await;
    server
        .expect(server.control(CAMPAIGN_ID, CampaignAction::Close), 200)
        .await;
    campaign(&server, "2026-01b", "r2").await;
    wait_for("3.0.0 installed", || current(&dir) == "3.0.0").await;
    assert_eq!(
        trusted_root_version(&dir),
        2,
        "the agent followed the chain"
    );

    // The root keys themselves are rotated: version 3 under keys 4, 5, 6, signed by the old
    // threshold (1, 2) and the new one (4, 5).
    let v3 = Root::new(
        3,
        FAR.parse().expect("instant"),
        (&[public(4), public(5), public(6)], 2),
        (&[public(12)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
    );
    server
        .expect(
            server
                .admin(Method::POST, "/api/v1/admin/trust/root")
                .json(&Signed::sign(&v3, &[&key(4), &key(5)])),
            400,
        )
        .await;
    publish_root(Signed::sign(&v3, &[&key(1), &key(2), &key(4), &key(5)])).await;
    let (sha, size) = server.upload(&package(60_000, 16)).await;
    server
        .expect(
            server
                .admin(Method::POST, "/api/v1/admin/releases")
                .json(&Signed::sign(
                    &keys::manifest("r3", "4.0.0", &[(Target::Terminal, sha, size)]),
                    &[&key(12)],
                )),
            201,
        )
        .await;
    server
        .expect(server.control("2026-01b", CampaignAction::Close), 200)
        .await;
    campaign(&server, "2026-01c", "r3").await;
    wait_for("4.0.0 installed", || current(&dir) == "4.0.0").await;
    assert_eq!(trusted_root_version(&dir), 3);

    // Metadata signed only by the revoked targets key, put into the database behind the API's
    // back: the agent refuses it and keeps 4.0.0.
    inject_release(&server, "r4", "5.0.0", &package(60_000, 17), |m| {
        Signed::sign(m, &[&key(keys::TARGETS_KEY)])
    })
    .await;
    server
        .expect(server.control("2026-01c", CampaignAction::Close), 200)
        .await;
    campaign(&server, "2026-01d", "r4").await;
    server
        .wait_for_audit("metadata refused: targets metadata has 0 valid signature(s)")
        .await;
    drop(agent);
    assert_eq!(current(&dir), "4.0.0");
    assert!(!dir.join("versions/5.0.0").exists());
}

const CAMPAIGN_ID: &str = onshi_testkit::CAMPAIGN;
