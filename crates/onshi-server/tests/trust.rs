//! The server's keys never silently change the trust (on SQLite, and on PostgreSQL in the
//! second pass): a missing or foreign timestamp key, a missing or foreign root stop the server
//! with what to do; and the operator token alone cannot publish a release or a root.

use std::path::{Path, PathBuf};

use onshi_api::ErrorCode;
use onshi_api::admin::RootPublished;
use onshi_clock::Clock;
use onshi_core::release::{Target, encode_signing_key};
use onshi_core::trust::{Role, RoleKeys, Root, Signed, TrustError, TrustedRoot};
use onshi_testkit::keys::{self, FAR, TIMESTAMP_KEY, TestKeys, key, public};
use onshi_testkit::{TestApp, spawn_app};
use reqwest::Method;

/// A server's configuration on `data` (and a PostgreSQL `database`) with these key files.
fn config(
    data: &Path,
    database: Option<String>,
    clock: Clock,
    root: Option<PathBuf>,
    (timestamp_key, snapshot_key): (Option<PathBuf>, Option<PathBuf>),
) -> onshi_server::Config {
    onshi_server::Config {
        data_dir: data.to_path_buf(),
        database,
        listen: "127.0.0.1:0".parse().expect("addr"),
        clock,
        timestamp_key,
        snapshot_key,
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
    }
}

/// Starts another server on `app`'s DATA and database with these key files.
async fn restart(
    app: &TestApp,
    root: Option<PathBuf>,
    timestamp_key: Option<PathBuf>,
) -> anyhow::Result<onshi_server::Running> {
    let clock =
        Clock::simulated("2026-01-10T00:00:00Z".parse().expect("instant"), 1.0).expect("clock");
    let database = app.schema.as_ref().map(|s| s.url.clone());
    onshi_server::start(config(
        app.data_dir(),
        database,
        clock,
        root,
        (timestamp_key, None),
    ))
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
        onshi_server::start(config(data.path(), None, Clock::real(), None, (None, None))).await,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_key_rotates_through_a_root_naming_both_keys_and_a_restart() {
    let app = spawn_app("2026-01-10T09:00:00+09:00").await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body("code,name,kind,prefecture,email\n0110113719,テスト診療所,clinic,北海道,a@example.invalid\n"),
        201,
    )
    .await;
    let token = app.enroll("0110113719", "terminal-1").await;
    let v1 = TrustedRoot::bootstrap(TestKeys::root()).expect("root");
    // Step 1 (`onshi keys rotate --timestamp-key OLD.pub --timestamp-key NEW.pub`): root 2
    // names the old and the new key for both online roles.
    let mut r2 = v1.root().clone();
    r2.version = 2;
    r2.keys.insert(public(22).id(), public(22));
    r2.roles.timestamp = RoleKeys::of(&[public(TIMESTAMP_KEY), public(22)], 1);
    r2.roles.snapshot = r2.roles.timestamp.clone();
    let r2 = Signed::sign(&r2, &[&key(1), &key(2)]);
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/trust/root")
            .json(&r2),
        201,
    )
    .await;
    // Step 2: the servers restart with the new key; it is the root's, so they start.
    let new_key = app.data_dir().join("new-timestamp.key");
    write_key(&new_key, 22);
    let replica = restart(&app, None, Some(new_key))
        .await
        .expect("starts with the new key");
    let replica_url = format!("http://{}", replica.addr);
    tokio::spawn(replica.wait());
    // Step 3: root 3 names only the new key. A server still holding the old key refuses it (it
    // could no longer sign); the restarted one publishes it.
    let mut r3: Root = r2.parse(Role::Root).expect("root 2");
    r3.version = 3;
    r3.keys.remove(&public(TIMESTAMP_KEY).id());
    r3.roles.timestamp = RoleKeys::of(&[public(22)], 1);
    r3.roles.snapshot = r3.roles.timestamp.clone();
    let r3 = Signed::sign(&r3, &[&key(1), &key(2)]);
    let e = app
        .expect_error(
            app.admin(Method::POST, "/api/v1/admin/trust/root")
                .json(&r3),
            400,
            ErrorCode::UntrustedMetadata,
        )
        .await;
    assert!(e.message.contains("timestamp key"), "{}", e.message);
    let published = reqwest::Client::new()
        .post(format!("{replica_url}/api/v1/admin/trust/root"))
        .bearer_auth(onshi_testkit::OPERATOR_TOKEN)
        .json(&r3)
        .send()
        .await
        .expect("answer");
    assert_eq!(published.status(), 201);
    // Under root 3 an agent takes the new key's timestamp and refuses the old key's.
    let v3 = v1.next(r2).and_then(|v2| v2.next(r3)).expect("the chain");
    let timestamp_of = async |base: &str| -> Signed {
        let answer = reqwest::Client::new()
            .get(format!("{base}/api/v1/trust/timestamp"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
        answer.json().await.expect("signed")
    };
    let now = app.state.clock.now();
    let new = timestamp_of(&replica_url).await;
    assert!(v3.update_timestamp(&new, None, now).is_ok());
    let old = timestamp_of(&app.url("")).await;
    assert!(matches!(
        v3.update_timestamp(&old, None, now),
        Err(TrustError::Threshold {
            role: Role::Timestamp,
            valid: 0,
            ..
        })
    ));
    // And the old key no longer starts a server.
    let why = message(restart(&app, None, None).await);
    assert!(
        why.contains("is not a timestamp key of the trusted root version 3"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_snapshot_key_moved_aside_or_wrong_stops_the_server() {
    // A ceremony with a snapshot key apart from the timestamp key (`keys init --snapshot-key`).
    let data = tempfile::tempdir().expect("temp dir");
    let keys_dir = data.path().join("keys");
    std::fs::create_dir_all(&keys_dir).expect("keys");
    write_key(&keys_dir.join("timestamp.key"), TIMESTAMP_KEY);
    let root = Root::new(
        1,
        FAR.parse().expect("instant"),
        (&keys::ROOT_KEYS.map(public), 2),
        (&[public(keys::TARGETS_KEY)], 1),
        (&[public(21)], 1),
        (&[public(TIMESTAMP_KEY)], 1),
    );
    let root_file = data.path().join("root.json");
    std::fs::write(
        &root_file,
        serde_json::to_vec(&Signed::sign(&root, &[&key(1), &key(2)])).expect("json"),
    )
    .expect("root.json");
    let start = |snapshot_key: Option<PathBuf>| {
        onshi_server::start(config(
            data.path(),
            None,
            Clock::real(),
            Some(root_file.clone()),
            (None, snapshot_key),
        ))
    };
    // No DATA/keys/snapshot.key: the timestamp key would sign snapshots, and it is not the
    // root's snapshot key.
    let why = message(start(None).await);
    assert!(
        why.contains("is not a snapshot key of the trusted root version 1"),
        "{why}"
    );
    let wrong = data.path().join("wrong.key");
    write_key(&wrong, 77);
    let why = message(start(Some(wrong)).await);
    assert!(why.contains("is not a snapshot key"), "{why}");
    write_key(&keys_dir.join("snapshot.key"), 21);
    start(None)
        .await
        .expect("starts with DATA/keys/snapshot.key");
}
