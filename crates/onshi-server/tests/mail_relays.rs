//! Notice mails through a relay as mail providers run them: TLS from the first byte (`smtps://`)
//! or STARTTLS required (`smtp://…?tls=required`), a certificate from the operator's own CA
//! (`--smtp-ca`), and `AUTH PLAIN` with credentials in the URL or given apart. The relay is a
//! real TLS listener on loopback with a test CA made for the test (`onshi_testkit::smtp`).

use onshi_api::admin::Mail;
use onshi_core::notice::NoticeKind;
use onshi_core::offer::CampaignAction;
use onshi_server::notices::Relay;
use onshi_testkit::smtp::{Security, TlsRelay, tls_relay};
use onshi_testkit::{CAMPAIGN, TestApp, spawn_app_with_relay, terminal_campaign, wait_until};
use reqwest::Method;

const CODE: &str = "0110113719";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
";
const USER: &str = "onshi-notices";
/// Characters a URL must percent-encode, so lettre's own decoding is exercised.
const PASSWORD: &str = "p@ss:w/ord ワード";

/// A server sending through `relay`, one site's terminal enrolled, the campaign activated at
/// 10:00 on the first day: its announcement is due at once.
async fn activated(relay: Relay) -> TestApp {
    let app = spawn_app_with_relay("2026-01-19T10:00:00+09:00", relay).await;
    terminal_campaign(&app, SITES_CSV.to_owned(), 1000, "r1", 10, 600).await;
    app.enroll(CODE, "T-1").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app
}

/// The announcement arrives over TLS, after the relay accepted `USER`.
async fn announcement_arrives_encrypted_and_authenticated(relay: &TlsRelay) {
    wait_until("the announcement through the relay", async || {
        relay.inbox.of_kind(NoticeKind::Announcement) == 1
    })
    .await;
    let deliveries = relay.inbox.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let mail = &deliveries[0];
    assert!(mail.tls, "the mail was given in clear text");
    assert_eq!(mail.user.as_deref(), Some(USER));
    assert!(
        mail.data.contains("To: sapporo@example.invalid"),
        "{}",
        mail.data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtps_with_credentials_in_the_url_and_the_operators_ca_delivers() {
    let relay = tls_relay(Security::Implicit, USER, PASSWORD).await;
    let url = relay.url.replacen(
        "smtps://",
        &format!("smtps://{USER}:{}@", percent_encode(PASSWORD)),
        1,
    );
    let _app = activated(Relay {
        ca: Some(relay.ca_file.clone()),
        ..Relay::new(url)
    })
    .await;
    announcement_arrives_encrypted_and_authenticated(&relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_required_with_credentials_given_apart_delivers() {
    let relay = tls_relay(Security::StartTls, USER, PASSWORD).await;
    let _app = activated(Relay {
        url: relay.url.clone(),
        user: Some(USER.to_owned()),
        password: Some(PASSWORD.to_owned()),
        ca: Some(relay.ca_file.clone()),
    })
    .await;
    announcement_arrives_encrypted_and_authenticated(&relay).await;
}

/// The relay's certificate is checked: without `--smtp-ca` the built-in roots do not know the
/// test CA, and a wrong password is refused by the relay; either way nothing is delivered, the
/// outbox keeps the mail with why it failed, and the password appears in no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_certificate_or_a_wrong_password_delivers_nothing_and_says_why() {
    let relay = tls_relay(Security::Implicit, USER, PASSWORD).await;
    let untrusted = activated(Relay {
        url: relay.url.clone(),
        user: Some(USER.to_owned()),
        password: Some(PASSWORD.to_owned()),
        ca: None,
    })
    .await;
    let error = failed_attempt(&untrusted).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    let wrong = "not-the-password";
    let refused = activated(Relay {
        url: relay.url.clone(),
        user: Some(USER.to_owned()),
        password: Some(wrong.to_owned()),
        ca: Some(relay.ca_file.clone()),
    })
    .await;
    let error = failed_attempt(&refused).await;
    assert!(error.contains("535"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    assert!(relay.inbox.deliveries().is_empty());
}

/// Waits until the announcement's delivery failed once, and answers the outbox's reason.
async fn failed_attempt(app: &TestApp) -> String {
    wait_until("a failed delivery in the outbox", async || {
        app.notices_summary().await.retrying == 1
    })
    .await;
    let mails: Vec<Mail> = app
        .expect_as(app.admin(Method::GET, "/api/v1/admin/notices"), 200)
        .await;
    let mail = mails
        .iter()
        .find(|m| m.kind == NoticeKind::Announcement)
        .expect("the announcement");
    assert_eq!(mail.sent_at, None);
    // And the operator's dashboard counts it.
    let metrics = app
        .admin(Method::GET, "/metrics")
        .send()
        .await
        .expect("scraped")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(|l| l == "onshi_mails_failed_total 1"),
        "{metrics}"
    );
    mail.last_error.clone().expect("the failure's reason")
}

/// Percent-encodes every byte but unreserved ASCII (RFC 3986), as a URL's userinfo needs.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
