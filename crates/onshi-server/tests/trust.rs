//! The server's keys never silently change the trust (on SQLite, and on PostgreSQL in the
//! second pass): a missing or foreign timestamp key, a missing or foreign root stop the server
//! with what to do; and the operator token alone cannot publish a release or a root.

use std::path::{Path, PathBuf};

use onshi_api::ErrorCode;
use onshi_api::admin::RootPublished;
use onshi_clock::Clock;
use onshi_core::release::{Target, encode_signing_key};
use onshi_core::trust::{Root, Signed};
use onshi_testkit::keys::{self, FAR, TIMESTAMP_KEY, TestKeys, key, public};
use onshi_testkit::{TestApp, spawn_app};
use reqwest::Method;

/// Starts another server on `app`'s DATA and database with these key files.
async fn restart(
    app: &TestApp,
    root: Option<PathBuf>,
    timestamp_key: Option<PathBuf>,
) -> anyhow::Result<onshi_server::Running> {
    onshi_server::start(onshi_server::Config {
        data_dir: app.data_dir().to_path_buf(),
        database: app.schema.as_ref().map(|s| s.url.clone()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        clock: Clock::simulated("2026-01-10T00:00:00Z".parse().expect("instant"), 1.0)
            .expect("clock"),
        timestamp_key,
        trust_root: root,
        operator_token: Some(onshi_testkit::OPERATOR_TOKEN.to_owned()),
        qualification_public: false,
        smtp: None,
        mail_from: None,
        accel_redirect: None,
        limits: onshi_server::Limits::default(),
        tls: None,
        trusted_proxies: Vec::new(),
        metrics_listen: None,
        public_url: None,
    })
    .await
}

fn message(r: anyhow::Result<onshi_server::Running>) -> String {
    match r {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

fn write_key(path: &Path, seed: u8) {
    std::fs::write(path, encode_signing_key(&key(seed)) + "\n").expect("key file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_timestamp_key_moved_aside_the_server_refuses_to_start_and_creates_none() {
    let app = spawn_app("2026-01-10T09:00:00+09:00").await;
    let keys = app.data_dir().join("keys");
    std::fs::rename(&keys, app.data_dir().join("keys.aside")).expect("move aside");
    let why = message(restart(&app, None, None).await);
    assert!(why.contains("timestamp.key"), "{why}");
    assert!(why.contains("never creates one"), "{why}");
    assert!(!keys.join("timestamp.key").exists(), "no key was made up");
    // Put back, it starts again on the same chain.
    std::fs::rename(app.data_dir().join("keys.aside"), &keys).expect("put back");
    restart(&app, None, None)
        .await
        .expect("starts with its key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_timestamp_key_or_a_foreign_root_stops_the_server() {
    let app = spawn_app("2026-01-10T09:00:00+09:00").await;
    let wrong = app.data_dir().join("wrong.key");
    write_key(&wrong, 77);
    let why = message(restart(&app, None, Some(wrong)).await);
    assert!(
        why.contains("is not a timestamp key of the trusted root version 1"),
        "{why}"
    );
    // Another key ceremony's root.json against this database.
    let foreign = Root::new(
        1,
        FAR.parse().expect("instant"),
        (&[public(41)], 1),
        (&[public(42)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
    );
    let file = app.data_dir().join("foreign-root.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&Signed::sign(&foreign, &[&key(41)])).expect("json"),
    )
    .expect("write");
    let why = message(restart(&app, Some(file), None).await);
    assert!(why.contains("trusts another root version 1"), "{why}");
    // The database's own root.json is accepted again.
    let own = app.data_dir().join("own-root.json");
    TestKeys::write_root(&own);
    restart(&app, Some(own), None)
        .await
        .expect("the same root starts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_without_a_root_is_refused() {
    // A fresh SQLite DATA with a timestamp key but no root anywhere (the check is the same
    // code for both stores; the tests above run it on PostgreSQL too).
    let data = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(data.path().join("keys")).expect("keys");
    write_key(&data.path().join("keys/timestamp.key"), TIMESTAMP_KEY);
    let why = message(
        onshi_server::start(onshi_server::Config {
            data_dir: data.path().to_path_buf(),
            database: None,
            listen: "127.0.0.1:0".parse().expect("addr"),
            clock: Clock::real(),
            timestamp_key: None,
            trust_root: None,
            operator_token: Some(onshi_testkit::OPERATOR_TOKEN.to_owned()),
            qualification_public: false,
            smtp: None,
            mail_from: None,
            accel_redirect: None,
            limits: onshi_server::Limits::default(),
            tls: None,
            trusted_proxies: Vec::new(),
            metrics_listen: None,
            public_url: None,
        })
        .await,
    );
    assert!(why.contains("no trusted root"), "{why}");
    assert!(why.contains("--trust-root"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_token_alone_cannot_publish_a_release_or_a_root() {
    let app = spawn_app("2026-01-10T09:00:00+09:00").await;
    let (sha, size) = app.upload(&[5u8; 4096]).await;
    let manifest = keys::manifest("r1", "2.0.0", &[(Target::Terminal, sha, size)]);
    // Whatever key the server holds or an attacker has: not the targets key.
    for signers in [
        vec![key(TIMESTAMP_KEY)],
        vec![key(1), key(2)],
        vec![key(99)],
        vec![],
    ] {
        let signed = Signed::sign(&manifest, &signers.iter().collect::<Vec<_>>());
        let e = app
            .expect_error(
                app.admin(Method::POST, "/api/v1/admin/releases")
                    .json(&signed),
                400,
                ErrorCode::UntrustedMetadata,
            )
            .await;
        assert_eq!(e.code, ErrorCode::UntrustedMetadata, "{}", e.message);
    }
    // A manifest whose package length differs from the upload is refused too.
    let mut wrong = manifest.clone();
    wrong.components[0].size += 1;
    let e = app
        .expect_error(
            app.admin(Method::POST, "/api/v1/admin/releases")
                .json(&Signed::sign(&wrong, &[&key(keys::TARGETS_KEY)])),
            400,
            ErrorCode::InvalidRelease,
        )
        .await;
    assert_eq!(e.code, ErrorCode::InvalidRelease, "{}", e.message);
    app.expect(app.admin(Method::GET, "/api/v1/admin/releases/r1"), 404)
        .await;
    // A new root signed by the server's timestamp key, or by one root key of 2 needed.
    let v2 = Root::new(
        2,
        FAR.parse().expect("instant"),
        (&[public(99)], 1),
        (&[public(99)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
    );
    for signers in [vec![key(TIMESTAMP_KEY), key(99)], vec![key(1), key(99)]] {
        let e = app
            .expect_error(
                app.admin(Method::POST, "/api/v1/admin/trust/root")
                    .json(&Signed::sign(&v2, &signers.iter().collect::<Vec<_>>())),
                400,
                ErrorCode::UntrustedMetadata,
            )
            .await;
        assert_eq!(e.code, ErrorCode::UntrustedMetadata, "{}", e.message);
    }
    app.expect(app.client.get(app.url("/api/v1/trust/root/2")), 404)
        .await;
    // With the targets key it is published; with two root keys the root is.
    app.publish("r1", "2.0.0", &[(Target::Terminal, sha, size)])
        .await;
    let published: RootPublished = app
        .expect_as(
            app.admin(Method::POST, "/api/v1/admin/trust/root")
                .json(&Signed::sign(&v2, &[&key(1), &key(2), &key(99)])),
            201,
        )
        .await;
    assert_eq!(published.version, 2);
    // A root that drops the server's own timestamp key is refused (it would stop the server).
    let v3 = Root::new(
        3,
        FAR.parse().expect("instant"),
        (&[public(99)], 1),
        (&[public(99)], 1),
        (&[public(98)], 1),
    );
    let e = app
        .expect_error(
            app.admin(Method::POST, "/api/v1/admin/trust/root")
                .json(&Signed::sign(&v3, &[&key(99)])),
            400,
            ErrorCode::UntrustedMetadata,
        )
        .await;
    assert!(e.message.contains("timestamp key"), "{}", e.message);
    let served: Signed = app
        .expect_as(app.client.get(app.url("/api/v1/trust/root")), 200)
        .await;
    assert!(served.signed.contains("\"version\":2"), "{}", served.signed);
}
