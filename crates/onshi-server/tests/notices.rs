//! Notice mails through a real SMTP listener on loopback, the outbox's retry, the daily mail
//! about a silent terminal, and the billing screen's JSON.

use std::time::Duration;

use jiff::Timestamp;
use onshi_api::admin::{Mail, MailSummary, Progress};
use onshi_api::institution::BillingNotices;
use onshi_core::deployment::DeploymentEvent as E;
use onshi_core::notice::NoticeKind;
use onshi_core::offer::{Action, CampaignAction};
use onshi_testkit::smtp::{
    smtp_listener, smtp_listener_refusing, smtp_listener_stalling_first, smtp_server,
};
use onshi_testkit::trace::{self, Spans};
use onshi_testkit::{
    CAMPAIGN, TestApp, spawn_app_with_smtp, terminal_campaign, wait_for, wait_until,
    wait_until_within,
};
use reqwest::Method;
use tokio::net::TcpListener;

const CODE: &str = "0110113719";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
";

/// One clinic, a release, the 2026-01 campaign activated at `now`.
async fn setup(app: &TestApp) {
    terminal_campaign(app, SITES_CSV.to_owned(), 1000, "r1", 10, 600).await;
}

/// A server sending to `smtp` (else to `.eml` files), with one site's terminal enrolled and the
/// campaign activated at 10:00 on the first day (its announcement due).
async fn activated(smtp: Option<String>) -> TestApp {
    let app = spawn_app_with_smtp("2026-01-19T10:00:00+09:00", smtp).await;
    setup(&app).await;
    app.enroll(CODE, "T-1").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app
}

async fn summary(app: &TestApp) -> MailSummary {
    app.notices_summary().await
}

/// Moves the clock to `at` and waits until the notices worker has planned at that time or later
/// (a round ends before the next begins, so the mails of the round before are out too).
async fn planned_at(app: &TestApp, spans: &Spans, at: &str) {
    app.set_clock(at).await;
    let at: Timestamp = at.parse().expect("an instant");
    wait_for(&format!("the notices worker's round at {at}"), || {
        spans.notices_planned_since(at)
    })
    .await;
}

/// Waits until no mail is being sent and none waits in the outbox: nothing is left that could
/// go out again.
async fn outbox_settled(app: &TestApp, spans: &Spans) {
    wait_until("every mail marked sent", async || {
        summary(app).await.pending == 0
    })
    .await;
    wait_for("no send in flight", || spans.open("notice_send") == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restart_required_mail_arrives_once_a_morning_and_the_billing_screen_shows_it() {
    let spans = trace::spans();
    let (inbox, smtp) = smtp_server().await;
    let app = spawn_app_with_smtp("2026-01-19T10:00:00+09:00", Some(smtp)).await;
    setup(&app).await;
    let token = app.enroll(CODE, "T-1").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;

    // Activation: the announcement, once.
    wait_until("the announcement", async || {
        inbox.of_kind(NoticeKind::Announcement) == 1
    })
    .await;

    // The first night: the terminal downloads and installs (reported as the agent would).
    app.set_clock("2026-01-19T20:30:00+09:00").await;
    let offer = app.checkin(&token, "1.0.0", "1.0.0").await;
    assert_eq!(offer.action, Action::Download, "{offer:?}");
    let install = [
        E::DownloadStarted,
        E::DownloadVerified,
        E::InstallStarted,
        E::InstallCompleted,
    ];
    app.report_steps(&token, &install).await;
    // 04:59: still night; the worker's round plans no restart mail.
    planned_at(&app, &spans, "2026-01-20T04:59:00+09:00").await;
    let s = summary(&app).await;
    assert!(
        !s.by_kind.contains_key(&NoticeKind::RestartRequired),
        "{s:?}"
    );
    assert_eq!(inbox.of_kind(NoticeKind::RestartRequired), 0);

    // After 05:00: the restart-required mail, with the site's own status.
    app.set_clock("2026-01-20T06:00:00+09:00").await;
    wait_until("the restart mail", async || {
        inbox.of_kind(NoticeKind::RestartRequired) == 1
    })
    .await;
    let mail = inbox
        .mails()
        .into_iter()
        .find(|m| m.contains("-restart_required-"))
        .expect("mail");
    assert!(mail.contains("To: sapporo@example.invalid"), "{mail}");
    // The SMTP server has it; the outbox marks it sent right after.
    let restart_mail = async || {
        let listed: Vec<Mail> = app
            .expect_as(
                app.admin(
                    Method::GET,
                    &format!("/api/v1/admin/notices?institution={CODE}"),
                ),
                200,
            )
            .await;
        listed
            .into_iter()
            .find(|m| m.kind == NoticeKind::RestartRequired)
            .expect("restart mail listed")
    };
    wait_until("the mail marked sent", async || {
        restart_mail().await.sent_at.is_some()
    })
    .await;
    let restart = restart_mail().await;
    assert_eq!(restart.key, "2026-01-20");
    let body = restart.body.as_str();
    assert!(
        body.contains(
            "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。"
        ),
        "{body}"
    );
    assert!(body.contains("再起動待ち 1台"), "{body}");

    // The next rounds of the same morning plan and send nothing more.
    planned_at(&app, &spans, "2026-01-20T06:30:00+09:00").await;
    planned_at(&app, &spans, "2026-01-20T11:00:00+09:00").await;
    outbox_settled(&app, &spans).await;
    assert_eq!(inbox.of_kind(NoticeKind::RestartRequired), 1);
    assert_eq!(inbox.of_kind(NoticeKind::Announcement), 1);
    let s = summary(&app).await;
    assert_eq!(
        s.by_kind.get(&NoticeKind::RestartRequired).map(|c| c.sent),
        Some(1),
        "{s:?}"
    );
    assert_eq!(s.pending, 0, "{s:?}");

    // The billing screen shows it too, for the site's own access key only.
    let access = app
        .expect(
            app.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{CODE}/access-key"),
            ),
            200,
        )
        .await["access_key"]
        .as_str()
        .expect("access key")
        .to_owned();
    let billing: BillingNotices = app
        .expect_as(
            app.client
                .get(app.url(&format!("/api/v1/institutions/{CODE}/notices")))
                .bearer_auth(&access),
            200,
        )
        .await;
    let notices = &billing.notices;
    assert_eq!(notices[0].kind, NoticeKind::RestartRequired, "{billing:?}");
    assert!(
        notices[0]
            .message
            .contains("資格確認端末を再起動してください"),
        "{billing:?}"
    );
    app.expect(
        app.client
            .get(app.url(&format!("/api/v1/institutions/{CODE}/notices")))
            .bearer_auth("not-the-key"),
        401,
    )
    .await;
    let en = app
        .expect(
            app.client
                .get(app.url(&format!("/api/v1/institutions/{CODE}/notices?lang=en")))
                .bearer_auth(&access),
            200,
        )
        .await;
    assert!(
        en["notices"][0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Restart")),
        "{en}"
    );

    // The next morning, still not restarted: one more, for that day.
    app.set_clock("2026-01-21T06:00:00+09:00").await;
    wait_until("the second morning's mail", async || {
        inbox.of_kind(NoticeKind::RestartRequired) == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_that_could_not_be_sent_is_retried_and_delivered_once_when_smtp_is_back() {
    // A port with nobody listening yet.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let spans = trace::spans();
    let app = activated(Some(format!("smtp://{addr}"))).await;
    wait_until("a failed attempt", async || {
        summary(&app).await.retrying == 1
    })
    .await;
    let listed = app
        .expect(app.admin(Method::GET, "/api/v1/admin/notices"), 200)
        .await;
    let mail = &listed[0];
    assert!(mail["sent_at"].is_null(), "{listed}");
    assert!(
        mail["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("SMTP")),
        "{listed}"
    );

    // The SMTP server comes back; after the back-off the mail goes out, once.
    let listener = TcpListener::bind(addr).await.expect("rebind");
    let inbox = smtp_listener(listener).await;
    app.set_clock("2026-01-19T10:30:00+09:00").await;
    wait_until("the delivery", async || inbox.mails().len() == 1).await;
    outbox_settled(&app, &spans).await;
    assert_eq!(inbox.mails().len(), 1);
    let s = summary(&app).await;
    assert_eq!(s.sent, 1, "{s:?}");
    assert_eq!(s.pending, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_the_relay_refuses_for_good_is_given_up_after_one_attempt_and_shown_to_the_operator()
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("smtp://{}", listener.local_addr().expect("addr"));
    // The site's address does not exist at the relay: 550, a permanent refusal.
    let inbox = smtp_listener_refusing(listener, "sapporo@").await;
    let app = activated(Some(url)).await;
    wait_until("the announcement given up", async || {
        summary(&app).await.gave_up == 1
    })
    .await;
    let s = summary(&app).await;
    assert_eq!((s.sent, s.pending, s.retrying), (0, 0, 0), "{s:?}");
    let listed: Vec<Mail> = app
        .expect_as(app.admin(Method::GET, "/api/v1/admin/notices"), 200)
        .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let announcement = listed[0].id;
    assert_eq!(listed[0].attempts, 1, "one attempt, not retried");
    assert!(listed[0].sent_at.is_none());
    assert!(
        listed[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("550")),
        "{listed:?}"
    );
    // Hours later it is still given up: the later rounds never sent it (the relay would have
    // refused it again, and the attempt would be counted).
    app.set_clock("2026-01-19T14:00:00+09:00").await;
    let spans = trace::spans();
    planned_at(&app, &spans, "2026-01-19T14:10:00+09:00").await;
    let listed: Vec<Mail> = app
        .expect_as(app.admin(Method::GET, "/api/v1/admin/notices"), 200)
        .await;
    // (By 14:10 the day's keep-power-on reminder may have been planned too: look the
    // announcement up by its id.)
    let again = listed.iter().find(|m| m.id == announcement);
    assert_eq!(again.map(|m| m.attempts), Some(1), "{listed:?}");
    assert!(inbox.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_never_answers_costs_one_attempt_and_the_mail_goes_out_on_the_next() {
    // The relay takes the first mail's DATA and never answers it (lettre's own timeout covers
    // only the connection): the worker gives up after its send timeout, 20 s of real time.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let smtp = format!("smtp://{}", listener.local_addr().expect("addr"));
    let relay = smtp_listener_stalling_first(listener, 1).await;
    let app = activated(Some(smtp)).await;
    wait_until_within(
        Duration::from_secs(60),
        "the stalled send to end",
        async || summary(&app).await.retrying == 1,
    )
    .await;
    let listed = app
        .expect(app.admin(Method::GET, "/api/v1/admin/notices"), 200)
        .await;
    assert!(
        listed[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{listed}"
    );

    // After the back-off the worker (not stuck) sends it again, and this time it is accepted.
    app.set_clock("2026-01-19T10:30:00+09:00").await;
    wait_until("the second attempt", async || summary(&app).await.sent == 1).await;
    let seen = relay.mails();
    assert_eq!(seen.len(), 2, "one stalled attempt, one accepted");
    let id = |m: &String| {
        m.lines()
            .find(|l| l.starts_with("Message-ID:"))
            .map(str::to_owned)
    };
    assert_eq!(id(&seen[0]), id(&seen[1]), "the same message both times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_the_mails_are_written_to_the_outbox_directory() {
    let app = activated(None).await;
    let outbox = app.data.path().join("outbox");
    wait_until("an .eml file", async || {
        std::fs::read_dir(&outbox).is_ok_and(|d| d.count() == 1)
    })
    .await;
    let file = std::fs::read_dir(&outbox)
        .expect("outbox")
        .next()
        .expect("one file")
        .expect("entry")
        .path();
    assert!(
        file.to_string_lossy()
            .ends_with(&format!("-announcement-{CODE}.eml"))
    );
    let text = std::fs::read_to_string(&file).expect("eml");
    assert!(text.contains("To: sapporo@example.invalid"), "{text}");
}

/// Two clinics: one whose terminal falls silent, one whose terminal keeps checking in.
const OSAKA: &str = "2714206386";
const TWO_SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,
2714206386,テスト診療所 大阪,clinic,大阪府,osaka@example.invalid,
";

/// The silent terminals the progress API counts.
async fn silent_terminals(app: &TestApp) -> u64 {
    let progress: Progress = app
        .expect_as(
            app.admin(
                Method::GET,
                &format!("/api/v1/admin/campaigns/{CAMPAIGN}/progress"),
            ),
            200,
        )
        .await;
    progress.silent_terminals
}

/// The outbox's silent mails to `code`, oldest first.
async fn silent_mails(app: &TestApp, code: &str) -> Vec<Mail> {
    let listed: Vec<Mail> = app
        .expect_as(
            app.admin(
                Method::GET,
                &format!("/api/v1/admin/notices?institution={code}"),
            ),
            200,
        )
        .await;
    let mut silent: Vec<Mail> = listed
        .into_iter()
        .filter(|m| m.kind == NoticeKind::Silent)
        .collect();
    silent.sort_by(|a, b| a.key.cmp(&b.key));
    silent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_silent_for_three_days_is_counted_and_its_site_mailed_once_a_day_but_one_checking_in_is_not()
 {
    let spans = trace::spans();
    let (inbox, smtp) = smtp_server().await;
    let app = spawn_app_with_smtp("2026-01-19T10:00:00+09:00", Some(smtp)).await;
    terminal_campaign(&app, TWO_SITES_CSV.to_owned(), 1000, "r1", 10, 600).await;
    let quiet = app.enroll(CODE, "T-1").await;
    let busy = app.enroll(OSAKA, "T-2").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;

    // Both terminals check in on the first morning; the one in Sapporo never again.
    app.set_clock("2026-01-19T10:05:00+09:00").await;
    app.checkin(&quiet, "1.0.0", "1.0.0").await;
    app.checkin(&busy, "1.0.0", "1.0.0").await;
    wait_until("both announcements", async || {
        inbox.of_kind(NoticeKind::Announcement) == 2
    })
    .await;

    // Three days later, just before the default 72 hours have passed: nobody is silent.
    app.set_clock("2026-01-22T09:00:00+09:00").await;
    app.checkin(&busy, "1.0.0", "1.0.0").await;
    planned_at(&app, &spans, "2026-01-22T10:04:00+09:00").await;
    assert_eq!(silent_terminals(&app).await, 0);
    assert!(silent_mails(&app, CODE).await.is_empty());

    // 72 hours after its last contact, the Sapporo terminal is silent: counted, and mailed.
    planned_at(&app, &spans, "2026-01-22T10:30:00+09:00").await;
    assert_eq!(silent_terminals(&app).await, 1);
    wait_until("the first silent mail", async || {
        inbox.of_kind(NoticeKind::Silent) == 1
    })
    .await;
    let first = silent_mails(&app, CODE).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].key, "2026-01-22");
    assert_eq!(first[0].recipient, "sapporo@example.invalid");
    let body = first[0].body.as_str();
    for words in [
        "72時間以上サーバーへの通信がありません",
        "資格確認端末の電源が入っていること",
        "ネットワーク",
        "配信アプリケーションが起動していること",
        "0800-080-4583",
        "T-1（最終通信 2026年1月19日(月) 10:05）",
    ] {
        assert!(body.contains(words), "{words}: {body}");
    }

    // Later rounds the same day send nothing more.
    planned_at(&app, &spans, "2026-01-22T15:00:00+09:00").await;
    outbox_settled(&app, &spans).await;
    assert_eq!(inbox.of_kind(NoticeKind::Silent), 1);

    // The next day: nothing before ten, then one more mail, for that day.
    app.set_clock("2026-01-23T09:00:00+09:00").await;
    app.checkin(&busy, "1.0.0", "1.0.0").await;
    planned_at(&app, &spans, "2026-01-23T09:30:00+09:00").await;
    outbox_settled(&app, &spans).await;
    assert_eq!(inbox.of_kind(NoticeKind::Silent), 1);
    planned_at(&app, &spans, "2026-01-23T11:00:00+09:00").await;
    wait_until("the second day's silent mail", async || {
        inbox.of_kind(NoticeKind::Silent) == 2
    })
    .await;
    planned_at(&app, &spans, "2026-01-23T18:00:00+09:00").await;
    outbox_settled(&app, &spans).await;
    assert_eq!(inbox.of_kind(NoticeKind::Silent), 2);
    let keys: Vec<String> = silent_mails(&app, CODE)
        .await
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["2026-01-22", "2026-01-23"]);
    let to_sapporo = inbox
        .mails()
        .iter()
        .filter(|m| m.contains("-silent-") && m.contains("To: sapporo@example.invalid"))
        .count();
    assert_eq!(to_sapporo, 2);

    // The terminal that kept checking in: never silent, never mailed.
    assert!(silent_mails(&app, OSAKA).await.is_empty());
    assert_eq!(silent_terminals(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_screen_of_a_site_with_automatic_restart_says_nothing_is_needed_and_nothing_after_january()
 {
    let app = spawn_app_with_smtp("2026-01-19T10:00:00+09:00", None).await;
    let csv = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,07:30
";
    terminal_campaign(&app, csv.to_owned(), 1000, "r1", 10, 600).await;
    let token = app.enroll(CODE, "T-1").await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-19T20:30:00+09:00").await;
    let offer = app.checkin(&token, "1.0.0", "1.0.0").await;
    assert_eq!(offer.action, Action::Download, "{offer:?}");
    app.report_steps(
        &token,
        &[
            E::DownloadStarted,
            E::DownloadVerified,
            E::InstallStarted,
            E::InstallCompleted,
        ],
    )
    .await;
    let access = app
        .expect(
            app.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{CODE}/access-key"),
            ),
            200,
        )
        .await["access_key"]
        .as_str()
        .expect("access key")
        .to_owned();
    let billing = async || -> BillingNotices {
        app.expect_as(
            app.client
                .get(app.url(&format!("/api/v1/institutions/{CODE}/notices")))
                .bearer_auth(&access),
            200,
        )
        .await
    };

    // The night of the install: the automatic restart at 07:30 applies it; nothing to do.
    app.set_clock("2026-01-20T03:00:00+09:00").await;
    let b = billing().await;
    let restart = b
        .notices
        .iter()
        .find(|n| n.kind == NoticeKind::RestartRequired)
        .expect("the restart notice is in force");
    assert!(
        restart.title.contains("自動で再起動") && !restart.title.contains("再起動してください"),
        "{b:?}"
    );
    assert!(
        restart.message.contains("2026年1月20日(火) 07:30")
            && restart.message.contains("手動での再起動は不要")
            && !restart.message.contains("再起動してください"),
        "{b:?}"
    );

    // Outside the campaign's billing period (January 2026): no notice at all.
    app.set_clock("2026-02-01T10:00:00+09:00").await;
    let b = billing().await;
    assert!(b.notices.is_empty(), "{b:?}");
}
