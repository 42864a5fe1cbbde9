//! What the operator's tools see: `/metrics` (Prometheus text) moving through a campaign's
//! first night, `/healthz` and `/readyz`, and `/readyz` failing while PostgreSQL is away and
//! recovering when it is back.

use std::sync::Arc;

use onshi_core::notice::NoticeKind;
use onshi_core::offer::{Action, CampaignAction};
use onshi_testkit::proxy::DatabaseProxy;
use onshi_testkit::smtp::smtp_server;
use onshi_testkit::{
    CAMPAIGN, TestApp, TestSchema, spawn_app, spawn_app_with_smtp, spawn_with_url,
    terminal_campaign, wait_until,
};
use reqwest::Method;

const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
2714206386,テスト病院 大阪,hospital,大阪府,osaka@example.invalid,
";

/// `/metrics` with the operator token: the Prometheus text.
async fn scrape(app: &TestApp) -> String {
    let r = app
        .admin(Method::GET, "/metrics")
        .send()
        .await
        .expect("scraped");
    assert_eq!(r.status(), 200);
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    r.text().await.expect("text")
}

/// `GET path` without a credential.
async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.api
        .client
        .get(app.url(path))
        .send()
        .await
        .expect("sent")
}

/// The value of the sample `series` (name and labels exactly as written), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_a_campaigns_check_ins_slots_queue_and_mails() {
    let (inbox, smtp) = smtp_server().await;
    let app = spawn_app_with_smtp("2026-01-19T10:00:00+09:00", Some(smtp)).await;
    // One download slot for three terminals.
    terminal_campaign(&app, SITES_CSV.to_owned(), 1000, "r1", 1, 600).await;
    let tokens = [
        app.enroll("0110113719", "T-1").await,
        app.enroll("0110113719", "T-2").await,
        app.enroll("2714206386", "T-3").await,
    ];
    assert_eq!(get(&app, "/metrics").await.status(), 401);

    let before = scrape(&app).await;
    assert_eq!(sample(&before, "onshi_checkins_total"), 0.0, "{before}");
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    // The announcement to each of the two sites.
    wait_until("two announcements", async || {
        inbox.of_kind(NoticeKind::Announcement) == 2
    })
    .await;

    // The first night: the first terminal gets the slot, the other two wait in the queue.
    app.set_clock("2026-01-19T20:30:00+09:00").await;
    let mut actions = Vec::new();
    for token in &tokens {
        actions.push(app.checkin(token, "1.0.0", "1.0.0").await.action);
    }
    assert_eq!(
        actions,
        [Action::Download, Action::RetryLater, Action::RetryLater]
    );

    let slot = format!("{{campaign=\"{CAMPAIGN}\"}}");
    let after = scrape(&app).await;
    assert_eq!(sample(&after, "onshi_checkins_total"), 3.0, "{after}");
    assert_eq!(
        sample(&after, "onshi_checkin_answers_total{action=\"download\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "onshi_checkin_answers_total{action=\"retry_later\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(&after, &format!("onshi_download_slots_in_use{slot}")),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, &format!("onshi_download_queue_length{slot}")),
        2.0,
        "{after}"
    );
    // Every mail the relay accepted is counted sent (the row is marked just after), and the
    // outbox drains (the evening's keep-power-on reminders may have joined the announcements).
    wait_until("the mails counted sent", async || {
        let text = scrape(&app).await;
        let sent = sample(&text, "onshi_mails_sent_total");
        sent >= 2.0
            && sent == inbox.mails().len() as f64
            && sample(&text, "onshi_mails_queued") == 0.0
    })
    .await;
    let last = scrape(&app).await;
    assert_eq!(sample(&last, "onshi_mails_failed_total"), 0.0);
    assert!(
        sample(&last, "onshi_store_call_seconds_count")
            > sample(&before, "onshi_store_call_seconds_count"),
        "{last}"
    );

    // Paused: the campaign's gauges are gone, the counters stay.
    app.expect(app.control(CAMPAIGN, CampaignAction::Pause), 200)
        .await;
    let paused = scrape(&app).await;
    assert!(!paused.contains(&slot), "{paused}");
    assert_eq!(sample(&paused, "onshi_checkins_total"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_while_the_store_is_reachable() {
    let app = spawn_app("2026-01-19T10:00:00+09:00").await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&app, path).await.status(), 200, "{path}");
    }
}

/// `/readyz` is what a load balancer asks: 503 while the replica's database is away (so it
/// sends the replica nothing), 200 again once it is back; `/healthz` stays 200 throughout (the
/// process is fine: nothing should restart it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_postgresql_is_away_and_recovers() {
    // Skipped only outside CI without PostgreSQL (CI starts it).
    let Some(schema) = TestSchema::create().map(Arc::new) else {
        return;
    };
    let (proxy, url) = DatabaseProxy::in_front_of(&schema.url).await;
    let data = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_with_url("2026-01-19T12:00:00+09:00", data, Some(schema), Some(url)).await;
    let status = async |path: &str| get(&app, path).await.status().as_u16();
    assert_eq!(status("/readyz").await, 200);

    proxy.set_up(false);
    wait_until("/readyz fails with the database away", async || {
        status("/readyz").await == 503
    })
    .await;
    // /metrics still answers: the counters, and that the store is away.
    let away = scrape(&app).await;
    assert_eq!(sample(&away, "onshi_store_up"), 0.0, "{away}");
    let body: onshi_api::ErrorBody = get(&app, "/readyz")
        .await
        .json()
        .await
        .expect("a JSON error");
    assert_eq!(body.code, onshi_api::ErrorCode::DatabaseUnavailable);
    assert_eq!(status("/healthz").await, 200);

    proxy.set_up(true);
    wait_until("/readyz recovers with the database", async || {
        status("/readyz").await == 200
    })
    .await;
    assert_eq!(sample(&scrape(&app).await, "onshi_store_up"), 1.0);
}

/// The Grafana dashboard in deploy/ asks only for metrics the server has.
#[test]
fn the_grafana_dashboard_asks_for_metrics_the_server_exports() {
    let text = include_str!("../../../deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(text).expect("the dashboard is JSON");
    let metrics = onshi_server::metrics::Metrics::new();
    // A family shows once it has a member: one campaign's gauges.
    metrics.set_shared(
        &[onshi_server::metrics::CampaignGauges {
            campaign: "2026-01".into(),
            slots_in_use: 1,
            queue_length: 1,
        }],
        0,
        0,
    );
    let exported = metrics.render();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("onshi_"))
            {
                asked += 1;
                let family = name.trim_end_matches("_bucket");
                assert!(
                    exported.contains(family),
                    "{:?} asks for {name}, which /metrics does not have",
                    panel["title"]
                );
            }
        }
    }
    assert!(asked >= 10, "{asked}");
}
