//! Enrolment that a leaked key cannot turn into a takeover or a stalled night (issue 15,
//! DESIGN.md §7): an enrolled serial is not enrolled again until the operator revokes it, a
//! revoked device is refused at once, an enrolment key enrols its number of terminals and
//! nothing after it expires, a terminal has a bounded number of card readers, and one site's
//! key cannot take the campaign's download slots. On SQLite, and with
//! `ONSHI_TEST_DATABASE=postgres` on PostgreSQL.

use onshi_api::ErrorCode;
use onshi_api::admin::{EnrollmentKey, Revoked};
use onshi_api::device::{
    CheckinRequest, EnrollRequest, Enrolled, MAX_READERS_PER_TERMINAL, ReaderRequest,
};
use onshi_core::offer::{Action, CampaignAction};
use onshi_core::vendor::Vendor;
use onshi_testkit::{Api, CAMPAIGN, spawn_app, terminal_campaign};
use reqwest::{Method, RequestBuilder};

const SITE: &str = "0110113719";
const OTHER_SITE: &str = "2714206386";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,1,sapporo@example.invalid,
2714206386,テスト病院 大阪,hospital,27,osaka@example.invalid,
";
/// A weekday morning before the campaign.
const MORNING: &str = "2026-01-13T10:00:00+09:00";
/// Inside the first night's window.
const NIGHT: &str = "2026-01-19T21:00:00+09:00";

/// A key of `site` for `uses` terminals, valid `hours`.
async fn key(api: &Api, site: &str, uses: u32, hours: u32) -> EnrollmentKey {
    api.expect_as(
        api.admin(
            Method::POST,
            &format!(
                "/api/v1/admin/institutions/{site}/enrollment-key?uses={uses}&valid_hours={hours}"
            ),
        ),
        200,
    )
    .await
}

/// `at` is within a minute after `expected` (the simulated clock runs at real speed).
fn assert_close(at: jiff::Timestamp, expected: &str) {
    let expected: jiff::Timestamp = expected.parse().expect("instant");
    let ahead = at.as_second() - expected.as_second();
    assert!(
        (0..60).contains(&ahead),
        "{at} is not just after {expected}"
    );
}

fn enrol(api: &Api, site: &str, key: &str, serial: &str) -> RequestBuilder {
    api.client
        .post(api.url("/api/v1/enroll"))
        .json(&EnrollRequest {
            institution_code: site.to_owned(),
            enrollment_key: key.to_owned(),
            serial: serial.to_owned(),
        })
}

fn checkin(api: &Api, token: &str) -> RequestBuilder {
    api.as_device(Method::POST, "/api/v1/checkin", token)
        .json(&CheckinRequest {
            installed: None,
            running: None,
        })
}

async fn revoke(api: &Api, device: i64) -> Vec<i64> {
    api.expect_as::<Revoked>(
        api.admin(
            Method::POST,
            &format!("/api/v1/admin/devices/{device}/revoke"),
        ),
        200,
    )
    .await
    .revoked
}

async fn sites(api: &Api) {
    api.expect(
        api.admin(Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body(SITES_CSV),
        201,
    )
    .await;
}

#[tokio::test]
async fn re_enrolling_an_enrolled_serial_is_refused_and_the_first_terminal_keeps_its_token() {
    let app = spawn_app(MORNING).await;
    sites(&app).await;
    let first: Enrolled = app
        .expect_as(
            enrol(
                &app,
                SITE,
                &key(&app, SITE, 2, 24).await.enrollment_key,
                "T1",
            ),
            201,
        )
        .await;

    // The site's key (say, leaked) and the guessable serial: refused, whatever the key.
    let fresh = key(&app, SITE, 2, 24).await.enrollment_key;
    app.expect_error(
        enrol(&app, SITE, &fresh, "T1"),
        409,
        ErrorCode::AlreadyEnrolled,
    )
    .await;
    app.expect(checkin(&app, &first.device_token), 200).await;

    // Once the operator revokes it, the serial enrols again, with the same id.
    assert_eq!(revoke(&app, first.device_id).await, vec![first.device_id]);
    let again: Enrolled = app.expect_as(enrol(&app, SITE, &fresh, "T1"), 201).await;
    assert_eq!(again.device_id, first.device_id);
    app.expect(checkin(&app, &again.device_token), 200).await;
    assert!(app.audit().await.contains("device_revoked"));
}

#[tokio::test]
async fn a_revoked_terminal_and_its_readers_are_refused_at_once() {
    let app = spawn_app(MORNING).await;
    sites(&app).await;
    let terminal: Enrolled = app
        .expect_as(
            enrol(
                &app,
                SITE,
                &key(&app, SITE, 1, 24).await.enrollment_key,
                "T1",
            ),
            201,
        )
        .await;
    let reader: Enrolled = app
        .expect_as(
            app.as_device(Method::POST, "/api/v1/readers", &terminal.device_token)
                .json(&ReaderRequest {
                    vendor: Vendor::Canon,
                    serial: "C1".to_owned(),
                }),
            201,
        )
        .await;
    app.expect(checkin(&app, &terminal.device_token), 200).await;
    app.expect(checkin(&app, &reader.device_token), 200).await;

    let mut revoked = revoke(&app, terminal.device_id).await;
    revoked.sort_unstable();
    assert_eq!(revoked, vec![terminal.device_id, reader.device_id]);

    app.expect_error(
        checkin(&app, &terminal.device_token),
        401,
        ErrorCode::Unauthorized,
    )
    .await;
    app.expect_error(
        checkin(&app, &reader.device_token),
        401,
        ErrorCode::Unauthorized,
    )
    .await;
    // Revoking again changes nothing; an unknown device is not found.
    assert!(revoke(&app, terminal.device_id).await.is_empty());
    app.expect_error(
        app.admin(Method::POST, "/api/v1/admin/devices/987654/revoke"),
        404,
        ErrorCode::NotFound,
    )
    .await;
    // Only the operator revokes.
    app.expect_error(
        app.as_device(
            Method::POST,
            &format!("/api/v1/admin/devices/{}/revoke", terminal.device_id),
            &terminal.device_token,
        ),
        401,
        ErrorCode::Unauthorized,
    )
    .await;
}

#[tokio::test]
async fn an_enrolment_key_enrols_its_uses_and_nothing_after_it_expires() {
    let app = spawn_app(MORNING).await;
    sites(&app).await;
    let two = key(&app, SITE, 2, 24).await;
    assert_eq!(two.uses, 2);
    // 24 hours of server time (which runs on from MORNING while the test runs).
    assert_close(two.expires_at, "2026-01-14T01:00:00Z");
    app.expect(enrol(&app, SITE, &two.enrollment_key, "T1"), 201)
        .await;
    app.expect(enrol(&app, SITE, &two.enrollment_key, "T2"), 201)
        .await;
    app.expect_error(
        enrol(&app, SITE, &two.enrollment_key, "T3"),
        401,
        ErrorCode::Unauthorized,
    )
    .await;

    let short = key(&app, SITE, 1, 1).await.enrollment_key;
    app.set_clock("2026-01-13T11:00:01+09:00").await;
    app.expect_error(
        enrol(&app, SITE, &short, "T3"),
        401,
        ErrorCode::Unauthorized,
    )
    .await;

    // The default: one terminal, a week.
    let default: EnrollmentKey = app
        .expect_as(
            app.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{SITE}/enrollment-key"),
            ),
            200,
        )
        .await;
    assert_eq!(default.uses, 1);
    assert_close(default.expires_at, "2026-01-20T02:00:01Z");
    for bad in ["uses=0", "uses=17", "valid_hours=0", "valid_hours=721"] {
        app.expect_error(
            app.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{SITE}/enrollment-key?{bad}"),
            ),
            400,
            ErrorCode::InvalidQuery,
        )
        .await;
    }
}

#[tokio::test]
async fn a_terminal_enrols_at_most_its_cap_of_card_readers() {
    let app = spawn_app(MORNING).await;
    sites(&app).await;
    let terminal: Enrolled = app
        .expect_as(
            enrol(
                &app,
                SITE,
                &key(&app, SITE, 1, 24).await.enrollment_key,
                "T1",
            ),
            201,
        )
        .await;
    let reader = |serial: String| {
        app.as_device(Method::POST, "/api/v1/readers", &terminal.device_token)
            .json(&ReaderRequest {
                vendor: Vendor::Panasonic,
                serial,
            })
    };
    for n in 0..MAX_READERS_PER_TERMINAL {
        app.expect(reader(format!("R{n}")), 201).await;
    }
    app.expect_error(reader("R0".to_owned()), 409, ErrorCode::AlreadyEnrolled)
        .await;
    app.expect_error(reader("R-extra".to_owned()), 409, ErrorCode::DeviceLimit)
        .await;
}

#[tokio::test]
async fn one_sites_leaked_key_cannot_take_the_campaigns_download_slots() {
    let app = spawn_app(MORNING).await;
    // Ten download slots for the night, as in the reproduction.
    terminal_campaign(&app, SITES_CSV.to_owned(), 1000, "r1", 10, 60).await;
    let leaked = key(&app, SITE, 1, 24 * 7).await.enrollment_key;
    // Someone with the site's key enrols a fake terminal; the key is then used up, so the
    // eleven more fakes of the reproduction are refused.
    let fake: Enrolled = app
        .expect_as(enrol(&app, SITE, &leaked, "terminal-0110113719"), 201)
        .await;
    for n in 0..11 {
        app.expect_error(
            enrol(&app, SITE, &leaked, &format!("fake-{n}")),
            401,
            ErrorCode::Unauthorized,
        )
        .await;
    }
    let real = app.enroll(OTHER_SITE, "T-OSAKA").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock(NIGHT).await;
    let answer = app.checkin(&real, "1.0.0", "1.0.0").await;
    assert_eq!(answer.action, Action::Download, "{answer:?}");
    let answer = app.checkin(&fake.device_token, "1.0.0", "1.0.0").await;
    assert_eq!(answer.action, Action::Download, "one device, one slot");
    let progress = app
        .expect(
            app.admin(
                Method::GET,
                &format!("/api/v1/admin/campaigns/{CAMPAIGN}/progress"),
            ),
            200,
        )
        .await;
    assert_eq!(progress["live_downloads"], 2, "{progress}");

    // The site's staff tell the operator, who revokes the fake: its slot is free at once and
    // the real terminal enrols with a new key.
    revoke(&app, fake.device_id).await;
    app.expect_error(
        checkin(&app, &fake.device_token),
        401,
        ErrorCode::Unauthorized,
    )
    .await;
    let real_site = app.enroll(SITE, "T-SAPPORO").await;
    assert_eq!(
        app.checkin(&real_site, "1.0.0", "1.0.0").await.action,
        Action::Download
    );
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().expect("value").to_owned()
}

#[tokio::test]
async fn the_operator_revokes_a_device_from_the_list_of_sites() {
    let app = spawn_app(MORNING).await;
    terminal_campaign(&app, SITES_CSV.to_owned(), 1000, "r1", 10, 60).await;
    let token = app.enroll(SITE, "T1").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .post(app.url("/operator/login"))
        .form(&[("token", onshi_testkit::OPERATOR_TOKEN)])
        .send()
        .await
        .expect("login");
    let cookie = login.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let list = format!("/operator/campaigns/{CAMPAIGN}/sites?need=not_received");
    let page = |path: String| {
        client
            .get(app.url(&path))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
    };
    let html = page(list.clone())
        .await
        .expect("list")
        .text()
        .await
        .expect("html");
    let form = html
        .find("action=\"/operator/devices/")
        .map(|at| &html[at + 26..])
        .and_then(|rest| rest.split('/').next())
        .expect("a revoke form on the device's row")
        .to_owned();
    let csrf = csrf_of(&html);

    // Without the session's CSRF token: refused, nothing revoked.
    let forged = client
        .post(app.url(&format!("/operator/devices/{form}/revoke")))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("csrf", "forged"), ("back", list.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);
    app.expect(checkin(&app, &token), 200).await;

    let revoked = client
        .post(app.url(&format!("/operator/devices/{form}/revoke")))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("lang", "ja"),
            ("back", list.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(revoked.status(), 303);
    assert_eq!(revoked.headers()[reqwest::header::LOCATION], list.as_str());
    app.expect_error(checkin(&app, &token), 401, ErrorCode::Unauthorized)
        .await;
    let html = page(list).await.expect("list").text().await.expect("html");
    assert!(html.contains("登録を取り消しました"), "{html}");
}
