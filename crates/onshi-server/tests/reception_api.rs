//! The reception emulator without a browser: the mock qualification service, and a desk whose
//! terminal state comes from a real enrolled terminal.

use onshi_api::ErrorCode;
use onshi_api::admin::{AccessKey, EnrollmentKey};
use onshi_api::device::{EnrollRequest, Enrolled, ReaderRequest};
use onshi_api::qualification::{
    CARD_EXPIRED_CERTIFICATE, CARD_NO_QUALIFICATION, QueryRequest, QueryResponse,
};
use onshi_core::vendor::Vendor;
use onshi_testkit::spawn_app;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_mock_qualification_service_answers_fake_patients_and_refusals() {
    let app = spawn_app("2026-01-20T09:00:00+09:00").await;
    let post = |card: &str| {
        app.client
            .post(app.url("/api/v1/qualification"))
            .json(&QueryRequest {
                card_id: card.to_owned(),
            })
    };
    let v: QueryResponse = app.expect_as(post("card-0001"), 200).await;
    let QueryResponse::Confirmed { patient } = v else {
        panic!("not confirmed: {v:?}");
    };
    assert!(patient.name.starts_with("試験"), "{patient:?}");
    assert_eq!(patient.insurer_number.len(), 8, "{patient:?}");
    let v: QueryResponse = app.expect_as(post(CARD_NO_QUALIFICATION), 200).await;
    assert!(matches!(v, QueryResponse::NoQualification { .. }), "{v:?}");
    let v: QueryResponse = app.expect_as(post(CARD_EXPIRED_CERTIFICATE), 200).await;
    assert!(
        matches!(v, QueryResponse::CertificateExpired { .. }),
        "{v:?}"
    );
    app.expect_error(post("../../etc"), 400, ErrorCode::InvalidCardId)
        .await;
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
    let enrollment = app
        .expect_as::<EnrollmentKey>(key("enrollment-key"), 200)
        .await
        .enrollment_key;
    let access = app
        .expect_as::<AccessKey>(key("access-key"), 200)
        .await
        .access_key;
    let request = EnrollRequest {
        institution_code: "0110113719".to_owned(),
        enrollment_key: enrollment,
        serial: "T1".to_owned(),
    };
    let token = app
        .expect_as::<Enrolled>(
            app.client.post(app.url("/api/v1/enroll")).json(&request),
            201,
        )
        .await
        .device_token;
    // The terminal's agent reports: 2.0.0 installed, still running 1.0.0.
    app.checkin(&token, "2.0.0", "1.0.0").await;
    // Its card reader is Fujitsu Japan's.
    app.expect_as::<Enrolled>(
        app.as_device(Method::POST, "/api/v1/readers", &token)
            .json(&ReaderRequest {
                vendor: Vendor::FujitsuJapan,
                serial: "F1".to_owned(),
            }),
        201,
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
    let wrong = wrong.text().await.expect("html");
    assert!(
        wrong.contains("医療機関コードまたはアクセスキーが正しくありません。")
            && !wrong.contains("\"code\""),
        "an HTML page in Japanese, no JSON: {wrong}"
    );
    // A code that is not one: in the page's language, English here, no Japanese field name.
    let bad = app
        .client
        .post(app.url(&setup))
        .form(&[
            ("vendor", "canon"),
            ("terminal", "up-to-date"),
            ("institution_code", "1311111111"),
            ("access_key", "x"),
            ("lang", "en"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(bad.status(), 400);
    let bad = bad.text().await.expect("html");
    assert!(
        bad.contains("Enter the institution code as 10 digits")
            && !bad.contains("医療機関コード must"),
        "{bad}"
    );
    // A second tab pressing a button the desk has moved past: the desk as it is, in HTML.
    let event = format!("{}/event", desk_url.path());
    let late = app
        .client
        .post(app.url(&event))
        .form(&[("event", "ok_pressed")])
        .send()
        .await
        .expect("event");
    assert_eq!(late.status(), 409);
    let late = late.text().await.expect("html");
    assert!(
        late.contains("今の画面ではできません")
            && late.contains("id=\"reader\"")
            && !late.contains("invalid_step"),
        "{late}"
    );
    // An expired desk: an HTML page that says to open the emulator again.
    let gone = app
        .client
        .get(app.url("/reception/no-such-desk"))
        .send()
        .await
        .expect("desk");
    assert_eq!(gone.status(), 404);
    assert!(
        gone.text()
            .await
            .expect("html")
            .contains("開き直してください")
    );
    // The dropdown says Canon; the linked site's reader is Fujitsu Japan's, and it wins.
    let html = app
        .client
        .post(app.url(&setup))
        .form(&[
            ("vendor", "canon"),
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
    assert!(html.contains("カードリーダー: 富士通Japan"), "{html}");
    assert!(
        html.contains("class=\"screen reader fujitsu-japan"),
        "{html}"
    );
}
