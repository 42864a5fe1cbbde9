//! Appointments instead of polling, over HTTP on a simulated clock: with more terminals waiting
//! than the campaign has download slots, each refused terminal is told when to come back
//! (`come_back_at`, with `poll_after_seconds` saying the same wait), in the order they arrived,
//! and a freed slot goes to the first of them, not to whoever asks first.

use jiff::Timestamp;
use onshi_api::device::CheckinResponse;
use onshi_core::deployment::DeploymentEvent as E;
use onshi_core::offer::{Action, CampaignAction};
use onshi_testkit::{CAMPAIGN, TestApp, spawn_app, terminal_campaign};

const SITE: &str = "0110113719";

async fn checkin(app: &TestApp, token: &str) -> CheckinResponse {
    app.checkin(token, "1.0.0", "1.0.0").await
}

/// The appointment of a refused terminal, checked against `poll_after_seconds`.
fn appointment(v: &CheckinResponse) -> Timestamp {
    assert_eq!(v.action, Action::RetryLater);
    let at = v
        .come_back_at
        .expect("a refused terminal gets an appointment");
    let wait = at.duration_since(v.server_time).as_secs();
    assert!(at > v.server_time, "{at} after {}", v.server_time);
    assert!(
        (wait - v.poll_after_seconds as i64).abs() <= 1,
        "poll_after_seconds {} says the same wait as come_back_at ({wait} s)",
        v.poll_after_seconds
    );
    at
}

#[tokio::test]
async fn terminals_waiting_for_a_slot_get_appointments_in_arrival_order_and_are_served_in_it() {
    let app = spawn_app("2026-01-10T12:00:00+09:00").await;
    let csv = format!(
        "code,name,kind,prefecture,email,auto_restart\n{SITE},テスト病院,hospital,01,a@example.invalid,\n"
    );
    terminal_campaign(&app, csv, 1_000, "r1", 2, 600).await;
    let mut terminals = Vec::new();
    for i in 1..=6 {
        terminals.push(app.enroll(SITE, &format!("TERM-{i}")).await);
    }
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-19T21:00:00+09:00").await;

    // Two slots: the first two download, the other four queue in the order they came.
    for t in &terminals[..2] {
        assert_eq!(checkin(&app, t).await.action, Action::Download);
    }
    let mut appointments = Vec::new();
    for t in &terminals[2..] {
        appointments.push(appointment(&checkin(&app, t).await));
    }
    assert!(
        appointments.is_sorted(),
        "appointments in arrival order: {appointments:?}"
    );
    let close: Timestamp = "2026-01-20T05:00:00+09:00".parse().expect("instant");
    assert!(appointments.iter().all(|a| *a < close), "inside the window");

    // The site's page says when each waiting terminal's turn is expected, in Japan time.
    let page = site_page(&app, "").await;
    assert_eq!(
        page.matches("ダウンロードの順番待ちです").count(),
        4,
        "{page}"
    );
    let first = onshi_core::jst::format(appointments[0], onshi_core::lang::Lang::Ja);
    assert!(
        page.contains(&format!("順番は {first} ごろの見込みです")),
        "{first} in {page}"
    );
    let page = site_page(&app, "?lang=en").await;
    assert!(page.contains("Its turn is expected around"), "{page}");

    // Both downloads complete: two slots are free, reserved for the first two waiting. The
    // last to arrive asks first and is told to wait.
    for t in &terminals[..2] {
        app.report_steps(t, &[E::DownloadStarted, E::DownloadVerified])
            .await;
    }
    let last = appointment(&checkin(&app, &terminals[5]).await);
    assert_eq!(checkin(&app, &terminals[2]).await.action, Action::Download);
    assert_eq!(checkin(&app, &terminals[3]).await.action, Action::Download);
    let fifth = appointment(&checkin(&app, &terminals[4]).await);
    // Both are near the head now, told to come back within seconds.
    let now = app.state.clock.now();
    for at in [fifth, last] {
        assert!(
            at.duration_since(now) <= jiff::SignedDuration::from_secs(5),
            "{at}"
        );
    }
    // The next slot freed is the fifth's, even when the sixth asks first.
    app.report_steps(&terminals[2], &[E::DownloadStarted, E::DownloadVerified])
        .await;
    assert_eq!(
        checkin(&app, &terminals[5]).await.action,
        Action::RetryLater,
        "the fifth is still ahead of the sixth"
    );
    assert_eq!(checkin(&app, &terminals[4]).await.action, Action::Download);
}

/// The site's own page (`/site`), logged in with its access key.
async fn site_page(app: &TestApp, query: &str) -> String {
    let key = app
        .expect(
            app.admin(
                reqwest::Method::POST,
                &format!("/api/v1/admin/institutions/{SITE}/access-key"),
            ),
            200,
        )
        .await["access_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(app.url("/site/login"))
        .form(&[("code", SITE), ("access_key", key.as_str())])
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
    app.client
        .get(app.url(&format!("/site{query}")))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("site page")
        .text()
        .await
        .expect("html")
}
