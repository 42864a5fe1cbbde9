//! Enrolment against the real `onshi serve` binary (issue 15, DESIGN.md §7: "enrolment keys
//! expire and cannot take over an enrolled device; a device can be revoked at once; one site
//! cannot hold more download slots than it has devices"). `tests/enrolment.rs` in onshi-server
//! shows the same rules in-process; here the binary, as deployed, with a key for the most
//! terminals a site may have: the site's caps hold for terminals and for card readers across its
//! terminals, an enrolled serial is not enrolled again, the site's slots never outnumber its
//! live devices, and a revoked terminal is refused at its next request. On SQLite, and with
//! `ONSHI_TEST_DATABASE=postgres` on a fresh PostgreSQL schema.

use onshi_api::ErrorCode;
use onshi_api::admin::{EnrollmentKey, Revoked};
use onshi_api::device::{
    CheckinRequest, EnrollRequest, Enrolled, MAX_READERS_PER_SITE, MAX_READERS_PER_TERMINAL,
    MAX_TERMINALS_PER_SITE, ReaderRequest,
};
use onshi_core::offer::{Action, CampaignAction};
use onshi_core::vendor::Vendor;
use onshi_testkit::serve::Serve;
use onshi_testkit::{Api, CAMPAIGN, TestSchema, terminal_campaign, test_database};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

const SITE: &str = "0110113719";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト病院 札幌,hospital,1,sapporo@example.invalid,
";
/// A weekday morning before the campaign.
const MORNING: &str = "2026-01-13T10:00:00+09:00";
/// Inside the first night's window.
const NIGHT: &str = "2026-01-19T21:00:00+09:00";

fn test_schema() -> Option<TestSchema> {
    test_database().map(|url| TestSchema::create_in(&url).unwrap_or_else(|e| panic!("{e}")))
}

async fn key(api: &Api, uses: u32) -> String {
    api.expect_as::<EnrollmentKey>(
        api.admin(
            Method::POST,
            &format!("/api/v1/admin/institutions/{SITE}/enrollment-key?uses={uses}"),
        ),
        200,
    )
    .await
    .enrollment_key
}

fn enrol(api: &Api, key: &str, serial: &str) -> RequestBuilder {
    api.client
        .post(api.url("/api/v1/enroll"))
        .json(&EnrollRequest {
            institution_code: SITE.to_owned(),
            enrollment_key: key.to_owned(),
            serial: serial.to_owned(),
        })
}

fn reader(api: &Api, terminal: &Enrolled, serial: String) -> RequestBuilder {
    api.as_device(Method::POST, "/api/v1/readers", &terminal.device_token)
        .json(&ReaderRequest {
            vendor: Vendor::Canon,
            serial,
        })
}

fn checkin(api: &Api, token: &str) -> RequestBuilder {
    api.as_device(Method::POST, "/api/v1/checkin", token)
        .json(&CheckinRequest {
            installed: None,
            running: None,
        })
}

async fn live_downloads(api: &Api) -> u64 {
    let progress: Value = api
        .expect(
            api.admin(
                Method::GET,
                &format!("/api/v1/admin/campaigns/{CAMPAIGN}/progress"),
            ),
            200,
        )
        .await;
    progress["live_downloads"]
        .as_u64()
        .unwrap_or_else(|| panic!("{progress}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_key_for_every_terminal_and_their_readers_hold_no_more_slots_than_live_devices() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let server = Serve::start(
        env!("CARGO_BIN_EXE_onshi"),
        data.path(),
        schema.as_ref(),
        MORNING,
        None,
    );
    let api = server.api();
    // Far more slots than the site has devices: only the site's own caps bound it.
    terminal_campaign(&api, SITES_CSV.to_owned(), 1000, "r1", 100, 60).await;

    // A key for the most terminals a site may have (leaked, say) enrols that many.
    let big = key(&api, MAX_TERMINALS_PER_SITE).await;
    let mut terminals = Vec::new();
    for n in 0..MAX_TERMINALS_PER_SITE {
        let t: Enrolled = api
            .expect_as(enrol(&api, &big, &format!("T{n}")), 201)
            .await;
        terminals.push(t);
    }
    // A fresh key neither takes over an enrolled serial nor adds a terminal past the cap.
    let fresh = key(&api, 1).await;
    api.expect_error(enrol(&api, &fresh, "T0"), 409, ErrorCode::AlreadyEnrolled)
        .await;
    api.expect_error(enrol(&api, &fresh, "T-extra"), 409, ErrorCode::DeviceLimit)
        .await;
    // Card readers need no key: the site's cap holds across its terminals, below what every
    // terminal's own cap would allow.
    let mut readers = 0;
    'fill: for terminal in &terminals {
        for n in 0..MAX_READERS_PER_TERMINAL {
            if readers == MAX_READERS_PER_SITE {
                break 'fill;
            }
            api.expect(
                reader(&api, terminal, format!("R-{}-{n}", terminal.device_id)),
                201,
            )
            .await;
            readers += 1;
        }
    }
    let last = terminals.last().expect("terminals");
    api.expect_error(
        reader(&api, last, "R-one-too-many".to_owned()),
        409,
        ErrorCode::DeviceLimit,
    )
    .await;

    // The night: every terminal takes a slot, none more.
    api.expect(api.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    api.set_clock(NIGHT).await;
    for t in &terminals {
        let answer: onshi_api::device::CheckinResponse =
            api.expect_as(checkin(&api, &t.device_token), 200).await;
        assert_eq!(answer.action, Action::Download, "{answer:?}");
        // Asking again holds the same slot, not a second one.
        api.expect(checkin(&api, &t.device_token), 200).await;
    }
    assert_eq!(
        live_downloads(&api).await,
        u64::from(MAX_TERMINALS_PER_SITE)
    );

    // Revoked: refused at its very next request, its slot free at once.
    let revoked: Revoked = api
        .expect_as(
            api.admin(
                Method::POST,
                &format!("/api/v1/admin/devices/{}/revoke", terminals[0].device_id),
            ),
            200,
        )
        .await;
    assert!(revoked.revoked.contains(&terminals[0].device_id));
    api.expect_error(
        checkin(&api, &terminals[0].device_token),
        401,
        ErrorCode::Unauthorized,
    )
    .await;
    assert_eq!(
        live_downloads(&api).await,
        u64::from(MAX_TERMINALS_PER_SITE) - 1
    );
}
