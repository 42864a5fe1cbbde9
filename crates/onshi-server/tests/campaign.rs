//! A whole campaign over HTTP against the real server on a simulated clock: before 20:00 no
//! offer; inside a night an offer; the throttle honoured; a download resumed with Range; install
//! reported; the terminal `installed` until it reports the new running version; the card reader
//! straight to `applied`; the night of the 25th closed; catch-up from the 31st.

use onshi_core::release::{SignedManifest, decode_public_key};
use onshi_testkit::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
2714206386,テスト病院 大阪,hospital,27,osaka@example.invalid,07:30
";

struct Fixture {
    app: TestApp,
    terminal_pkg: Vec<u8>,
    terminal_sha: String,
}

fn package(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn upload(app: &TestApp, bytes: Vec<u8>) -> String {
    let v = app
        .expect(
            app.admin(Method::PUT, "/api/v1/admin/artifacts")
                .body(bytes),
            201,
        )
        .await;
    v["sha256"].as_str().expect("sha256").to_owned()
}

async fn setup() -> Fixture {
    let app = spawn_app("2026-01-10T12:00:00+09:00").await;
    let v = app
        .expect(
            app.admin(Method::POST, "/api/v1/admin/institutions/import")
                .header("content-type", "text/csv")
                .body(SITES_CSV),
            201,
        )
        .await;
    assert_eq!(v["imported"], 2);
    let terminal_pkg = package(300_000, 1);
    let terminal_sha = upload(&app, terminal_pkg.clone()).await;
    let reader_sha = upload(&app, package(50_000, 2)).await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/releases")
            .json(&json!({
                "id": "r2026-01",
                "version": "2.0.0",
                "components": [
                    {"target": "terminal", "sha256": terminal_sha},
                    {"target": "card_reader:canon", "sha256": reader_sha},
                ]
            })),
        201,
    )
    .await;
    let v = app
        .expect(
            app.admin(Method::POST, "/api/v1/admin/campaigns")
                .json(&json!({
                    "schedule": "preset:2026-01",
                    "release_id": "r2026-01",
                    "throttle": {"max_concurrent_downloads": 1, "poll_interval_seconds": 60},
                })),
            201,
        )
        .await;
    assert_eq!(v["id"], "2026-01");
    assert_eq!(v["status"], "draft");
    Fixture {
        app,
        terminal_pkg,
        terminal_sha,
    }
}

async fn checkin(app: &TestApp, token: &str) -> Value {
    app.expect(
        app.as_device(Method::POST, "/api/v1/checkin", token)
            .json(&json!({"installed": "1.0.0", "running": "1.0.0"})),
        200,
    )
    .await
}

async fn get_range(app: &TestApp, token: &str, sha: &str, range: &str) -> (u16, Vec<u8>) {
    let r = app
        .as_device(Method::GET, &format!("/api/v1/artifacts/{sha}"), token)
        .header("range", range)
        .send()
        .await
        .expect("download");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("bytes").to_vec())
}

#[tokio::test]
async fn a_whole_campaign_runs_by_the_notice() {
    let Fixture {
        app,
        terminal_pkg,
        terminal_sha,
    } = setup().await;
    let sapporo = app.enroll("0110113719", "TERM-A").await;
    let osaka = app.enroll("2714206386", "TERM-B").await;
    let reader = app
        .expect(
            app.as_device(Method::POST, "/api/v1/readers", &sapporo)
                .json(&json!({"vendor": "canon", "serial": "CANON-1"})),
            201,
        )
        .await["device_token"]
        .as_str()
        .expect("reader token")
        .to_owned();
    let v = app
        .expect(
            app.admin(Method::POST, "/api/v1/admin/campaigns/2026-01/activate"),
            200,
        )
        .await;
    assert_eq!(v["status"], "active");

    // Before the first night: nothing, and the next window is announced.
    app.set_clock("2026-01-19T19:00:00+09:00").await;
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v["action"], "none");
    assert_eq!(v["next_window"], "2026-01-19T11:00:00Z");
    assert!(v["poll_after_seconds"].as_u64().expect("poll") >= 3600);
    let (status, _) = get_range(&app, &sapporo, &terminal_sha, "bytes=0-").await;
    assert_eq!(status, 403, "no download outside a window");

    // Inside the first night: one slot (throttle 1).
    app.set_clock("2026-01-19T20:30:00+09:00").await;
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v["action"], "download");
    assert_eq!(v["campaign"]["artifact"]["sha256"], terminal_sha.as_str());
    let v = checkin(&app, &osaka).await;
    assert_eq!(v["action"], "retry_later", "the only slot is taken");
    let (status, _) = get_range(&app, &osaka, &terminal_sha, "bytes=0-").await;
    assert_eq!(status, 429, "no slot, no download");

    // The manifest verifies with the server's public key.
    let pk = app
        .expect(app.client.get(app.url("/api/v1/public-key")), 200)
        .await["signing_public_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let signed: SignedManifest = serde_json::from_value(
        app.expect(
            app.as_device(Method::GET, "/api/v1/releases/r2026-01/manifest", &sapporo),
            200,
        )
        .await,
    )
    .expect("signed manifest");
    let manifest = signed
        .verify(&decode_public_key(&pk).expect("pk"), None)
        .expect("valid signature");
    assert_eq!(manifest.version.to_string(), "2.0.0");

    // Download in two parts: the second resumes with Range.
    app.expect(app.report(&sapporo, 1, "download_started", json!({})), 200)
        .await;
    let (status, first) = get_range(&app, &sapporo, &terminal_sha, "bytes=0-99999").await;
    assert_eq!((status, first.len()), (206, 100_000));
    let (status, rest) = get_range(&app, &sapporo, &terminal_sha, "bytes=100000-").await;
    assert_eq!(status, 206);
    let whole = [first, rest].concat();
    assert_eq!(whole, terminal_pkg);
    assert_eq!(hex::encode(sha2::Sha256::digest(&whole)), terminal_sha);
    let v = app
        .expect(
            app.report(&sapporo, 2, "download_verified", json!({"bytes": 300_000})),
            200,
        )
        .await;
    assert_eq!(v["state"], "downloaded");

    // The slot is free again for Osaka.
    let v = checkin(&app, &osaka).await;
    assert_eq!(v["action"], "download");

    // Install; the terminal stays "restart required".
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v["action"], "install");
    app.expect(app.report(&sapporo, 3, "install_started", json!({})), 200)
        .await;
    let v = app
        .expect(app.report(&sapporo, 4, "install_completed", json!({})), 200)
        .await;
    assert_eq!(v["state"], "installed");
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v["action"], "restart_required");

    let p = app
        .expect(
            app.admin(Method::GET, "/api/v1/admin/campaigns/2026-01/progress"),
            200,
        )
        .await;
    assert_eq!(p["all"]["total"], 3);
    assert_eq!(p["all"]["restart_required"], 1);
    assert_eq!(p["by_device"]["terminal"]["states"]["installed"], 1);
    assert_eq!(p["by_vendor"]["canon"]["states"]["waiting"], 1);
    let hokkaido = &p["by_prefecture"][0];
    assert_eq!(hokkaido["name"], "北海道");
    assert_eq!(hokkaido["restart_required"], 1);
    let list = app
        .expect(
            app.admin(
                Method::GET,
                "/api/v1/admin/campaigns/2026-01/devices?state=installed&device=terminal",
            ),
            200,
        )
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["institution"]["code"], "0110113719");
    let csv = app
        .admin(
            Method::GET,
            "/api/v1/admin/campaigns/2026-01/devices?state=installed&format=csv",
        )
        .send()
        .await
        .expect("csv")
        .text()
        .await
        .expect("text");
    assert!(csv.starts_with("institution_code,"), "{csv}");
    assert!(
        csv.contains("0110113719,テスト診療所 札幌,北海道,clinic"),
        "{csv}"
    );

    // Running the old version keeps it installed; the new one applies it.
    let v = app
        .expect(
            app.report(&sapporo, 5, "running", json!({"version": "1.0.0"})),
            200,
        )
        .await;
    assert_eq!(v["state"], "installed");
    let v = app
        .expect(
            app.report(&sapporo, 6, "running", json!({"version": "2.0.0"})),
            200,
        )
        .await;
    assert_eq!(v["state"], "applied");
    // A repeated report changes nothing; an impossible one is refused with 409.
    let v = app
        .expect(
            app.report(&sapporo, 6, "running", json!({"version": "2.0.0"})),
            200,
        )
        .await;
    assert_eq!(v["applied"], false);
    let v = app
        .expect(
            app.as_device(Method::POST, "/api/v1/report", &sapporo)
                .json(&json!({"campaign_id": "2026-01", "seq": 7, "event": "download_started"})),
            409,
        )
        .await;
    assert_eq!(v["code"], "invalid_transition");

    // Osaka finishes its download; then the card reader takes the slot and applies without a
    // restart.
    app.expect(app.report(&osaka, 1, "download_started", json!({})), 200)
        .await;
    app.expect(app.report(&osaka, 2, "download_verified", json!({})), 200)
        .await;
    let v = checkin(&app, &reader).await;
    assert_eq!(v["action"], "download");
    for (seq, event) in [
        (1, "download_started"),
        (2, "download_verified"),
        (3, "install_started"),
        (4, "install_completed"),
    ] {
        app.expect(app.report(&reader, seq, event, json!({})), 200)
            .await;
    }
    let v = app
        .expect(app.report(&reader, 5, "reader_activated", json!({})), 200)
        .await;
    assert_eq!(v["state"], "applied");

    // The site's own check (institution access key).
    let key = app
        .expect(
            app.admin(
                Method::POST,
                "/api/v1/admin/institutions/0110113719/access-key",
            ),
            200,
        )
        .await["access_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let site = app
        .expect(
            app.client
                .get(app.url("/api/v1/institutions/0110113719/devices"))
                .bearer_auth(&key),
            200,
        )
        .await;
    let states: Vec<&str> = site["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["applied", "applied"]);
    let v = app
        .expect(
            app.client
                .get(app.url("/api/v1/institutions/2714206386/devices"))
                .bearer_auth(&key),
            401,
        )
        .await;
    assert_eq!(v["code"], "unauthorized", "another site's key is refused");

    // The night of the 25th is closed; Osaka waits for the 26th.
    app.set_clock("2026-01-25T21:00:00+09:00").await;
    let v = checkin(&app, &osaka).await;
    assert_eq!(v["action"], "none");
    assert_eq!(v["next_window"], "2026-01-26T11:00:00Z");

    // From the 31st, all day.
    app.set_clock("2026-02-02T13:00:00+09:00").await;
    let v = checkin(&app, &osaka).await;
    assert_eq!(v["action"], "install");
    assert_eq!(v["campaign"]["phase"], "catch_up");

    let audit = app
        .expect(app.admin(Method::GET, "/api/v1/admin/audit?limit=500"), 200)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    for expected in [
        "campaign_activate",
        "release_created",
        "state_change",
        "enroll_reader",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing in {actions:?}"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error() {
    let Fixture {
        app, terminal_sha, ..
    } = setup().await;
    let token = app.enroll("0110113719", "TERM-A").await;

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.as_device(Method::POST, "/api/v1/checkin", &token)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_json",
        ),
        (
            app.as_device(Method::POST, "/api/v1/checkin", &token)
                .json(&json!({"installed": "1.0.0", "colour": "blue"})),
            422,
            "invalid_json",
        ),
        (
            app.as_device(Method::POST, "/api/v1/checkin", &token)
                .json(&json!({"installed": "v1"})),
            422,
            "invalid_json",
        ),
        (
            app.as_device(Method::POST, "/api/v1/checkin", "wrong-token")
                .json(&json!({})),
            401,
            "unauthorized",
        ),
        (
            app.client.post(app.url("/api/v1/checkin")).json(&json!({})),
            401,
            "unauthorized",
        ),
        (
            app.as_device(Method::GET, "/api/v1/artifacts/..%2F..%2Fetc%2Fpasswd", &token),
            400,
            "invalid_sha256",
        ),
        (
            app.as_device(
                Method::GET,
                &format!("/api/v1/artifacts/{}", "0".repeat(64)),
                &token,
            ),
            404,
            "not_found",
        ),
        (
            app.client
                .post(app.url("/api/v1/admin/campaigns/2026-01/activate"))
                .bearer_auth(&token),
            401,
            "unauthorized",
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/institutions/import")
                .body("code,name,kind,prefecture,email,auto_restart\n1311111111,x,clinic,13,a@b.jp,\n"),
            400,
            "invalid_institution",
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/campaigns").json(&json!({
                "schedule": "id = \"x\"\ntitle = \"x\"\ntimezone = \"Asia/Tokio\"\n",
                "release_id": "r2026-01",
                "throttle": {"max_concurrent_downloads": 1, "poll_interval_seconds": 60},
            })),
            400,
            "invalid_schedule",
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/campaigns/2026-01/resume"),
            409,
            "invalid_campaign_transition",
        ),
        (
            app.admin(Method::GET, "/api/v1/admin/audit?limit=many"),
            400,
            "invalid_query",
        ),
        (
            app.admin(Method::DELETE, "/api/v1/admin/audit"),
            405,
            "method_not_allowed",
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/institutions/import")
                .body(vec![0xff, 0xfe, 0x00]),
            400,
            "invalid_csv",
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/institutions")
                .header("content-type", "application/json")
                .body(vec![b' '; onshi_server::MAX_BODY + 1]),
            413,
            "body_too_large",
        ),
    ];
    for (req, status, code) in cases {
        let v = app.expect(req, status).await;
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    // A device never gets another target's package.
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns/2026-01/activate"),
        200,
    )
    .await;
    app.set_clock("2026-01-19T21:00:00+09:00").await;
    assert_eq!(checkin(&app, &token).await["action"], "download");
    let (status, bytes) = get_range(&app, &token, &terminal_sha, "bytes=300000-").await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&bytes));
}

#[tokio::test]
async fn a_download_slot_expires_when_progress_stops() {
    let Fixture { app, .. } = setup().await;
    let a = app.enroll("0110113719", "TERM-A").await;
    let b = app.enroll("2714206386", "TERM-B").await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns/2026-01/activate"),
        200,
    )
    .await;
    app.set_clock("2026-01-20T01:00:00+09:00").await;
    assert_eq!(checkin(&app, &a).await["action"], "download");
    assert_eq!(checkin(&app, &b).await["action"], "retry_later");
    // A goes silent for longer than the slot's lifetime (120 s): B gets the slot.
    app.set_clock("2026-01-20T01:03:00+09:00").await;
    assert_eq!(checkin(&app, &b).await["action"], "download");
    assert_eq!(checkin(&app, &a).await["action"], "retry_later");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_download_leaves_the_server_serving() {
    let Fixture {
        app,
        terminal_sha,
        terminal_pkg,
    } = setup().await;
    let token = app.enroll("0110113719", "TERM-A").await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns/2026-01/activate"),
        200,
    )
    .await;
    app.set_clock("2026-01-20T01:00:00+09:00").await;
    assert_eq!(checkin(&app, &token).await["action"], "download");
    let mut r = app
        .as_device(
            Method::GET,
            &format!("/api/v1/artifacts/{terminal_sha}"),
            &token,
        )
        .send()
        .await
        .expect("download starts");
    let first = r.chunk().await.expect("a chunk").expect("bytes");
    assert!(!first.is_empty());
    drop(r); // the connection goes away mid-body
    let (status, rest) = get_range(
        &app,
        &token,
        &terminal_sha,
        &format!("bytes={}-", first.len()),
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!([first.to_vec(), rest].concat(), terminal_pkg);
}
