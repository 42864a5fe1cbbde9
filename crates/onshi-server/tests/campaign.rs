//! A whole campaign over HTTP against the real server on a simulated clock: before 20:00 no
//! offer; inside a night an offer; the throttle honoured; a download resumed with Range; install
//! reported; the terminal `installed` until it reports the new running version; the card reader
//! straight to `applied`; the night of the 25th closed; catch-up from the 31st.

use jiff::Timestamp;
use onshi_api::ErrorCode;
use onshi_api::admin::{CampaignView, Progress, control_path};
use onshi_api::device::{CheckinResponse, ReportRequest, ReportResponse};
use onshi_api::institution::SiteStatus;
use onshi_core::deployment::{DeploymentEvent as E, DeploymentState as S};
use onshi_core::offer::{Action, CampaignAction, CampaignStatus};
use onshi_core::release::Target;
use onshi_core::schedule::Phase;
use onshi_core::trust::{Expect, FetchedMeta, Signed, Trusted, TrustedRoot};
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use onshi_testkit::keys::TestKeys;
use onshi_testkit::{CAMPAIGN, TestApp, spawn_app, spawn_app_with_accel_redirect};
use reqwest::Method;
use serde_json::json;
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
    setup_on(spawn_app("2026-01-10T12:00:00+09:00").await).await
}

async fn setup_on(app: TestApp) -> Fixture {
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
    let components = [
        (
            Target::Terminal,
            terminal_sha.parse().expect("sha"),
            300_000,
        ),
        (
            Target::CardReader(Vendor::Canon),
            reader_sha.parse().expect("sha"),
            50_000,
        ),
    ];
    app.publish("r2026-01", "2.0.0", &components).await;
    let v: CampaignView = app
        .expect_as(
            app.admin(Method::POST, "/api/v1/admin/campaigns")
                .json(&json!({
                    "schedule": "preset:2026-01",
                    "release_id": "r2026-01",
                    "throttle": {"max_concurrent_downloads": 1, "poll_interval_seconds": 60},
                })),
            201,
        )
        .await;
    assert_eq!(v.id, "2026-01");
    assert_eq!(v.status, CampaignStatus::Draft);
    Fixture {
        app,
        terminal_pkg,
        terminal_sha,
    }
}

async fn checkin(app: &TestApp, token: &str) -> CheckinResponse {
    app.checkin(token, "1.0.0", "1.0.0").await
}

/// The instant `at` (RFC 3339).
fn instant(at: &str) -> Timestamp {
    at.parse().expect("instant")
}

/// The state a report moved the deployment to.
async fn reported(app: &TestApp, req: reqwest::RequestBuilder) -> ReportResponse {
    app.expect_as(req, 200).await
}

fn version(v: &str) -> Version {
    Version::parse(v).expect("version")
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
    let v: CampaignView = app
        .expect_as(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    assert_eq!(v.status, CampaignStatus::Active);

    // Before the first night: nothing, and the next window is announced.
    app.set_clock("2026-01-19T19:00:00+09:00").await;
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v.action, Action::None);
    assert_eq!(v.next_window, Some(instant("2026-01-19T11:00:00Z")));
    assert!(v.poll_after_seconds >= 3600);
    let (status, _) = get_range(&app, &sapporo, &terminal_sha, "bytes=0-").await;
    assert_eq!(status, 403, "no download outside a window");

    // Inside the first night: one slot (throttle 1).
    app.set_clock("2026-01-19T20:30:00+09:00").await;
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v.action, Action::Download);
    let artifact = v.campaign.and_then(|c| c.artifact).expect("the package");
    assert_eq!(artifact.sha256.to_string(), terminal_sha);
    let v = checkin(&app, &osaka).await;
    assert_eq!(v.action, Action::RetryLater, "the only slot is taken");
    let (status, _) = get_range(&app, &osaka, &terminal_sha, "bytes=0-").await;
    assert_eq!(status, 429, "no slot, no download");

    // The manifest as signed offline, with the server's timestamp, verifies against the root
    // the installer carries (and the server's root is that root).
    let root = TrustedRoot::bootstrap(TestKeys::root()).expect("root");
    let served: Signed = app
        .expect_as(app.client.get(app.url("/api/v1/trust/root")), 200)
        .await;
    assert_eq!(&served, root.signed());
    let timestamp: Signed = app
        .expect_as(
            app.as_device(Method::GET, "/api/v1/trust/timestamp", &sapporo),
            200,
        )
        .await;
    let named = root
        .reload_timestamp(&timestamp)
        .expect("signed by the timestamp key")
        .snapshot
        .version;
    let snapshot: Signed = app
        .expect_as(
            app.as_device(
                Method::GET,
                &format!("/api/v1/trust/snapshot/{named}"),
                &sapporo,
            ),
            200,
        )
        .await;
    let manifest: Signed = app
        .expect_as(
            app.as_device(Method::GET, "/api/v1/releases/r2026-01/manifest", &sapporo),
            200,
        )
        .await;
    let verified = root
        .verify_release(
            &FetchedMeta {
                timestamp: &timestamp,
                snapshot: &snapshot,
                manifest: &manifest,
            },
            &Trusted::default(),
            &Expect {
                release_id: "r2026-01",
                installed: None,
                now: app.state.clock.now(),
            },
        )
        .expect("valid metadata");
    // An older snapshot version, or one naming more releases than exist, is gone.
    for gone in [named - (1 << 16) * 2, named + 1] {
        app.expect(
            app.as_device(
                Method::GET,
                &format!("/api/v1/trust/snapshot/{gone}"),
                &sapporo,
            ),
            404,
        )
        .await;
    }
    assert_eq!(verified.manifest.version.to_string(), "2.0.0");

    // Download in two parts: the second resumes with Range.
    reported(&app, app.report(&sapporo, 1, &E::DownloadStarted)).await;
    let (status, first) = get_range(&app, &sapporo, &terminal_sha, "bytes=0-99999").await;
    assert_eq!((status, first.len()), (206, 100_000));
    let (status, rest) = get_range(&app, &sapporo, &terminal_sha, "bytes=100000-").await;
    assert_eq!(status, 206);
    let whole = [first, rest].concat();
    assert_eq!(whole, terminal_pkg);
    assert_eq!(hex::encode(sha2::Sha256::digest(&whole)), terminal_sha);
    let verified = ReportRequest::new(CAMPAIGN, 2, &E::DownloadVerified).with_bytes(300_000);
    let v = reported(&app, app.send_report(&sapporo, &verified)).await;
    assert_eq!(v.state, S::Downloaded);

    // The slot is free again for Osaka.
    let v = checkin(&app, &osaka).await;
    assert_eq!(v.action, Action::Download);

    // Install; the terminal stays "restart required".
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v.action, Action::Install);
    reported(&app, app.report(&sapporo, 3, &E::InstallStarted)).await;
    let v = reported(&app, app.report(&sapporo, 4, &E::InstallCompleted)).await;
    assert_eq!(v.state, S::Installed);
    let v = checkin(&app, &sapporo).await;
    assert_eq!(v.action, Action::RestartRequired);

    let p: Progress = app
        .expect_as(
            app.admin(Method::GET, "/api/v1/admin/campaigns/2026-01/progress"),
            200,
        )
        .await;
    assert_eq!(p.all.total, 3);
    assert_eq!(p.all.restart_required, 1);
    assert_eq!(p.by_device[&DeviceKind::Terminal].get(S::Installed), 1);
    assert_eq!(p.by_vendor[&Vendor::Canon].get(S::Waiting), 1);
    let hokkaido = &p.by_prefecture[0];
    assert_eq!(hokkaido.name, "北海道");
    assert_eq!(hokkaido.counts.restart_required, 1);
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
    let v = reported(&app, app.report(&sapporo, 5, &E::Running(version("1.0.0")))).await;
    assert_eq!(v.state, S::Installed);
    let v = reported(&app, app.report(&sapporo, 6, &E::Running(version("2.0.0")))).await;
    assert_eq!(v.state, S::Applied);
    // A repeated report changes nothing; an impossible one is refused with 409.
    let v = reported(&app, app.report(&sapporo, 6, &E::Running(version("2.0.0")))).await;
    assert!(!v.applied);
    app.expect_error(
        app.report(&sapporo, 7, &E::DownloadStarted),
        409,
        ErrorCode::InvalidTransition,
    )
    .await;

    // Osaka finishes its download; then the card reader takes the slot and installs. Installed
    // is not applied: the reader's update is applied by its terminal's restart (DESIGN §3).
    reported(&app, app.report(&osaka, 1, &E::DownloadStarted)).await;
    reported(&app, app.report(&osaka, 2, &E::DownloadVerified)).await;
    let v = checkin(&app, &reader).await;
    assert_eq!(v.action, Action::Download);
    for (seq, event) in [
        (1, E::DownloadStarted),
        (2, E::DownloadVerified),
        (3, E::InstallStarted),
        (4, E::InstallCompleted),
    ] {
        reported(&app, app.report(&reader, seq, &event)).await;
    }
    assert_eq!(checkin(&app, &reader).await.action, Action::None);

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
    let site: SiteStatus = app
        .expect_as(
            app.client
                .get(app.url("/api/v1/institutions/0110113719/devices"))
                .bearer_auth(&key),
            200,
        )
        .await;
    let states: Vec<Option<S>> = site.devices.iter().map(|d| d.state).collect();
    assert_eq!(states, [Some(S::Applied), Some(S::Installed)]);
    let label = site.devices[1].label_ja.as_deref().unwrap_or_default();
    assert!(label.contains("資格確認端末の再起動で適用"), "{site:?}");
    assert!(
        !label.contains("適用済み") && !label.contains("不要"),
        "{site:?}"
    );
    // The site page's reader row says the same, right under the terminal's row.
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(app.url("/site/login"))
        .form(&[("code", "0110113719"), ("access_key", key.as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 303);
    let cookie = login.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let html = app
        .client
        .get(app.url("/site"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("site page")
        .text()
        .await
        .expect("html");
    let row = html
        .split("data-kind=\"card_reader\"")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("the reader's row");
    assert!(
        row.contains("インストール完了（資格確認端末の再起動で適用）"),
        "{row}"
    );
    assert!(!row.contains("適用済み"), "{row}");

    // The agent activates the reader once its terminal runs the new version (here it already
    // does: Sapporo restarted above).
    let v = reported(&app, app.report(&reader, 5, &E::ReaderActivated)).await;
    assert_eq!(v.state, S::Applied);
    let site: SiteStatus = app
        .expect_as(
            app.client
                .get(app.url("/api/v1/institutions/0110113719/devices"))
                .bearer_auth(&key),
            200,
        )
        .await;
    let states: Vec<Option<S>> = site.devices.iter().map(|d| d.state).collect();
    assert_eq!(states, [Some(S::Applied), Some(S::Applied)]);
    // Each row says what the site page says: the state and the advice's headline.
    assert!(
        site.devices.iter().all(
            |d| d.label_ja.as_deref() == Some("適用済み：対応は不要です（更新は適用済みです）")
        ),
        "{site:?}"
    );
    // Another site's key is refused.
    app.expect_error(
        app.client
            .get(app.url("/api/v1/institutions/2714206386/devices"))
            .bearer_auth(&key),
        401,
        ErrorCode::Unauthorized,
    )
    .await;

    // The night of the 25th is closed; Osaka waits for the 26th.
    app.set_clock("2026-01-25T21:00:00+09:00").await;
    let v = checkin(&app, &osaka).await;
    assert_eq!(v.action, Action::None);
    assert_eq!(v.next_window, Some(instant("2026-01-26T11:00:00Z")));

    // From the 31st, all day.
    app.set_clock("2026-02-02T13:00:00+09:00").await;
    let v = checkin(&app, &osaka).await;
    assert_eq!(v.action, Action::Install);
    assert_eq!(v.campaign.map(|c| c.phase), Some(Phase::CatchUp));

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
        "release_published",
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

    let cases: Vec<(reqwest::RequestBuilder, u16, ErrorCode)> = vec![
        (
            app.as_device(Method::POST, "/api/v1/checkin", &token)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            ErrorCode::InvalidJson,
        ),
        (
            app.as_device(Method::POST, "/api/v1/checkin", &token)
                .json(&json!({"installed": "1.0.0", "colour": "blue"})),
            422,
            ErrorCode::InvalidJson,
        ),
        (
            app.as_device(Method::POST, "/api/v1/checkin", &token)
                .json(&json!({"installed": "v1"})),
            422,
            ErrorCode::InvalidJson,
        ),
        (
            app.as_device(Method::POST, "/api/v1/checkin", "wrong-token")
                .json(&json!({})),
            401,
            ErrorCode::Unauthorized,
        ),
        (
            app.client.post(app.url("/api/v1/checkin")).json(&json!({})),
            401,
            ErrorCode::Unauthorized,
        ),
        (
            app.as_device(Method::GET, "/api/v1/artifacts/..%2F..%2Fetc%2Fpasswd", &token),
            400,
            ErrorCode::InvalidSha256,
        ),
        (
            app.as_device(
                Method::GET,
                &format!("/api/v1/artifacts/{}", "0".repeat(64)),
                &token,
            ),
            404,
            ErrorCode::NotFound,
        ),
        (
            app.client
                .post(app.url(&control_path(CAMPAIGN, CampaignAction::Activate)))
                .bearer_auth(&token),
            401,
            ErrorCode::Unauthorized,
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/institutions/import")
                .body("code,name,kind,prefecture,email,auto_restart\n1311111111,x,clinic,13,a@b.jp,\n"),
            400,
            ErrorCode::InvalidInstitution,
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/campaigns").json(&json!({
                "schedule": "id = \"x\"\ntitle = \"x\"\ntimezone = \"Asia/Tokio\"\n",
                "release_id": "r2026-01",
                "throttle": {"max_concurrent_downloads": 1, "poll_interval_seconds": 60},
            })),
            400,
            ErrorCode::InvalidSchedule,
        ),
        (
            app.control(CAMPAIGN, CampaignAction::Resume),
            409,
            ErrorCode::InvalidCampaignTransition,
        ),
        (
            app.admin(Method::GET, "/api/v1/admin/audit?limit=many"),
            400,
            ErrorCode::InvalidQuery,
        ),
        (
            app.admin(Method::DELETE, "/api/v1/admin/audit"),
            405,
            ErrorCode::MethodNotAllowed,
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/institutions/import")
                .body(vec![0xff, 0xfe, 0x00]),
            400,
            ErrorCode::InvalidCsv,
        ),
        (
            app.admin(Method::POST, "/api/v1/admin/institutions")
                .header("content-type", "application/json")
                .body(vec![b' '; onshi_server::MAX_BODY + 1]),
            413,
            ErrorCode::BodyTooLarge,
        ),
    ];
    for (req, status, code) in cases {
        app.expect_error(req, status, code).await;
    }
    // A device never gets another target's package.
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-19T21:00:00+09:00").await;
    assert_eq!(checkin(&app, &token).await.action, Action::Download);
    let (status, bytes) = get_range(&app, &token, &terminal_sha, "bytes=300000-").await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&bytes));
}

#[tokio::test]
async fn a_download_slot_expires_when_progress_stops() {
    let Fixture { app, .. } = setup().await;
    let a = app.enroll("0110113719", "TERM-A").await;
    let b = app.enroll("2714206386", "TERM-B").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-20T01:00:00+09:00").await;
    assert_eq!(checkin(&app, &a).await.action, Action::Download);
    assert_eq!(checkin(&app, &b).await.action, Action::RetryLater);
    // A goes silent for longer than the slot's lifetime (120 s): B gets the slot.
    app.set_clock("2026-01-20T01:03:00+09:00").await;
    assert_eq!(checkin(&app, &b).await.action, Action::Download);
    assert_eq!(checkin(&app, &a).await.action, Action::RetryLater);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_download_leaves_the_server_serving() {
    let Fixture {
        app,
        terminal_sha,
        terminal_pkg,
    } = setup().await;
    let token = app.enroll("0110113719", "TERM-A").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-20T01:00:00+09:00").await;
    assert_eq!(checkin(&app, &token).await.action, Action::Download);
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

/// With `--accel-redirect`, an authorised download is handed to nginx: `X-Accel-Redirect` to the
/// package's place under the internal prefix, the usual validators, no body. A request that
/// fails any check gets its usual error and never the header.
#[tokio::test]
async fn behind_nginx_an_authorised_download_is_an_accel_redirect_and_nothing_else_is() {
    const PREFIX: &str = "/_onshi/artifacts/";
    let Fixture {
        app, terminal_sha, ..
    } = setup_on(spawn_app_with_accel_redirect("2026-01-10T12:00:00+09:00", PREFIX).await).await;
    let path = format!("/api/v1/artifacts/{terminal_sha}");
    let a = app.enroll("0110113719", "TERM-A").await;
    let b = app.enroll("2714206386", "TERM-B").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    let refused = |req: reqwest::RequestBuilder, status: u16, code: ErrorCode| async move {
        let r = req.send().await.expect("request");
        assert_eq!(r.status().as_u16(), status);
        assert!(r.headers().get("x-accel-redirect").is_none(), "{r:?}");
        let body: onshi_api::ErrorBody = r.json().await.expect("an error body");
        assert_eq!(body.code, code, "{body:?}");
    };
    app.set_clock("2026-01-20T01:00:00+09:00").await;
    assert_eq!(checkin(&app, &a).await.action, Action::Download);
    assert_eq!(checkin(&app, &b).await.action, Action::RetryLater);
    // B holds no slot (the throttle's one is A's); a bad token; another package; a path that
    // is not a hash.
    refused(
        app.as_device(Method::GET, &path, &b),
        429,
        ErrorCode::NoDownloadSlot,
    )
    .await;
    refused(
        app.as_device(Method::GET, &path, "wrong-token"),
        401,
        ErrorCode::Unauthorized,
    )
    .await;
    refused(app.client.get(app.url(&path)), 401, ErrorCode::Unauthorized).await;
    refused(
        app.as_device(
            Method::GET,
            &format!("/api/v1/artifacts/{}", "0".repeat(64)),
            &a,
        ),
        404,
        ErrorCode::NotFound,
    )
    .await;
    refused(
        app.as_device(Method::GET, "/api/v1/artifacts/..%2F..%2Fetc%2Fpasswd", &a),
        400,
        ErrorCode::InvalidSha256,
    )
    .await;
    // A holds the slot: the redirect, whatever Range or other headers it sends with it.
    for range in [None, Some("bytes=10-19")] {
        let mut req = app
            .as_device(Method::GET, &path, &a)
            .header("x-accel-redirect", "/etc/passwd");
        if let Some(range) = range {
            req = req.header("range", range);
        }
        let r = req.send().await.expect("download");
        assert_eq!(r.status().as_u16(), 200, "{range:?}");
        let h = r.headers().clone();
        assert_eq!(
            h.get_all("x-accel-redirect").iter().collect::<Vec<_>>(),
            [format!("{PREFIX}{}/{terminal_sha}", &terminal_sha[..2]).as_str()]
        );
        assert_eq!(h["etag"], format!("\"{terminal_sha}\"").as_str());
        assert_eq!(h["cache-control"], "max-age=31536000, immutable");
        assert_eq!(h["accept-ranges"], "bytes");
        assert!(h.get("content-range").is_none());
        assert!(r.bytes().await.expect("body").is_empty());
    }
    // The file itself is where the redirect points, under DATA/artifacts/.
    assert!(
        app.data_dir()
            .join("artifacts")
            .join(&terminal_sha[..2])
            .join(&terminal_sha)
            .is_file()
    );
    // The night is over: outside the window, refused, no header.
    app.set_clock("2026-01-20T12:00:00+09:00").await;
    refused(
        app.as_device(Method::GET, &path, &a),
        403,
        ErrorCode::OutsideWindow,
    )
    .await;
}
