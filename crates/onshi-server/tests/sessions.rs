//! Page sessions and page headers against hostile use (issue 15): a site logging in again and
//! again ends only its own oldest sessions, never the operator's; logins are rate-limited per
//! client; re-issuing a site's access
//! key ends that site's sessions at once; every page carries a Content Security Policy that
//! forbids framing, and every answer `nosniff`.

use onshi_testkit::logins::{
    TWO_SITES, access_key, no_redirects, opens, operator_login, site_login,
};
use onshi_testkit::{OPERATOR_TOKEN, TestApp, spawn_app};
use reqwest::{StatusCode, header};

const SITE: &str = "0110113719";
const OTHER_SITE: &str = "2714206386";

async fn setup() -> TestApp {
    let app = spawn_app("2026-01-13T10:00:00+09:00").await;
    app.import_institutions(TWO_SITES).await;
    app
}

#[tokio::test]
async fn a_site_logging_in_again_and_again_never_ends_the_operators_or_another_sites_session() {
    let app = setup().await;
    let client = no_redirects();
    let operator = operator_login(&app, &client).await;
    let other = site_login(
        &app,
        &client,
        OTHER_SITE,
        &access_key(&app, OTHER_SITE).await,
    )
    .await;
    let key = access_key(&app, SITE).await;
    // More logins than one site keeps sessions (10), within the login rate limit of one
    // client (the unit test in `sessions.rs` runs 10,000 logins).
    for _ in 0..15 {
        site_login(&app, &client, SITE, &key).await;
    }
    assert!(opens(&app, &client, "/operator", &operator).await);
    assert!(opens(&app, &client, "/site", &other).await);
}

#[tokio::test]
async fn logins_are_limited_per_client() {
    let app = setup().await;
    let client = no_redirects();
    let mut answers = Vec::new();
    for _ in 0..30 {
        let r = client
            .post(app.url("/operator/login"))
            .form(&[("token", "a-wrong-guess-of-the-operator-token")])
            .send()
            .await
            .expect("login");
        answers.push(r.status());
    }
    assert_eq!(answers[0], StatusCode::UNAUTHORIZED);
    assert_eq!(answers[29], StatusCode::TOO_MANY_REQUESTS, "{answers:?}");
    // Refused before it is checked: even the right token waits.
    let r = client
        .post(app.url("/operator/login"))
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let text = r.text().await.expect("html");
    assert!(text.contains("ログインの試行が多すぎます"), "{text}");
}

#[tokio::test]
async fn re_issuing_a_sites_access_key_ends_its_sessions_at_once() {
    let app = setup().await;
    let client = no_redirects();
    let session = site_login(&app, &client, SITE, &access_key(&app, SITE).await).await;
    let other = site_login(
        &app,
        &client,
        OTHER_SITE,
        &access_key(&app, OTHER_SITE).await,
    )
    .await;
    assert!(opens(&app, &client, "/site", &session).await);

    access_key(&app, SITE).await;

    assert!(!opens(&app, &client, "/site", &session).await);
    assert!(opens(&app, &client, "/site", &other).await);
}

#[tokio::test]
async fn pages_forbid_framing_and_scripts_and_every_answer_is_nosniff() {
    let app = setup().await;
    for path in ["/", "/guidance", "/site", "/operator/login", "/reception"] {
        let r = app.client.get(app.url(path)).send().await.expect("page");
        let headers = r.headers();
        let csp = headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src 'unsafe-inline'"), "{path}: {csp}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    let r = app
        .client
        .get(app.url("/api/v1/public-key"))
        .send()
        .await
        .expect("api");
    assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}
