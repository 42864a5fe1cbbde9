//! The reception emulator without a browser: the mock qualification service, and a desk whose
//! terminal state comes from a real enrolled terminal.

use onshi_testkit::spawn_app;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_mock_qualification_service_answers_fake_patients_and_refusals() {
    let app = spawn_app("2026-01-20T09:00:00+09:00").await;
    let post = |card: &str| {
        app.client
            .post(app.url("/api/v1/qualification"))
            .json(&json!({ "card_id": card }))
    };
    let v = app.expect(post("card-0001"), 200).await;
    assert_eq!(v["status"], "confirmed");
    assert!(
        v["patient"]["name"]
            .as_str()
            .expect("name")
            .starts_with("試験")
    );
    assert_eq!(
        v["patient"]["insurer_number"].as_str().map(str::len),
        Some(8)
    );
    assert_eq!(
        app.expect(post("test-no-qualification"), 200).await["status"],
        "no_qualification"
    );
    assert_eq!(
        app.expect(post("test-expired-certificate"), 200).await["status"],
        "certificate_expired"
    );
    assert_eq!(
        app.expect(post("../../etc"), 400).await["code"],
        "invalid_card_id"
    );
}

#[tokio::test]
async fn a_desk_takes_its_terminal_state_from_a_real_terminal() {
    let app = spawn_app("2026-01-19T21:00:00+09:00").await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/institutions")
            .json(&json!([{
                "code": "0110113719", "name": "テスト診療所", "kind": "clinic",
                "email": "a@example.invalid"
            }])),
        201,
    )
    .await;
    let key = |kind: &'static str| {
        app.admin(
            Method::POST,
            &format!("/api/v1/admin/institutions/0110113719/{kind}"),
        )
    };
    let enrollment = app.expect(key("enrollment-key"), 200).await["enrollment_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let access = app.expect(key("access-key"), 200).await["access_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let token = app
        .expect(
            app.client.post(app.url("/api/v1/enroll")).json(&json!({
                "institution_code": "0110113719", "enrollment_key": enrollment, "serial": "T1"
            })),
            201,
        )
        .await["device_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // The terminal's agent reports: 2.0.0 installed, still running 1.0.0.
    app.expect(
        app.as_device(Method::POST, "/api/v1/checkin", &token)
            .json(&json!({"installed": "2.0.0", "running": "1.0.0"})),
        200,
    )
    .await;

    let page = app
        .client
        .get(app.url("/reception?vendor=canon&terminal=up-to-date"))
        .send()
        .await
        .expect("desk");
    let desk_url = page.url().clone();
    assert!(desk_url.path().starts_with("/reception/"));
    let setup = format!("{}/setup", desk_url.path());
    let wrong = app
        .client
        .post(app.url(&setup))
        .form(&[
            ("vendor", "canon"),
            ("terminal", "up-to-date"),
            ("institution_code", "0110113719"),
            ("access_key", "wrong"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(wrong.status(), 401);
    let html = app
        .client
        .post(app.url(&setup))
        .form(&[
            ("vendor", "fujitsu-japan"),
            ("terminal", "up-to-date"),
            ("institution_code", "0110113719"),
            ("access_key", access.as_str()),
        ])
        .send()
        .await
        .expect("setup")
        .text()
        .await
        .expect("page");
    assert!(html.contains("連携中の医療機関: 0110113719"), "{html}");
    assert!(
        html.contains("資格確認端末 — 更新インストール済み・再起動前"),
        "the real terminal has a restart pending"
    );
    assert!(html.contains("富士通Japan"));
}
