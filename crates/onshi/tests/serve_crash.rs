//! The real `onshi serve` binary killed with SIGKILL during a burst of state reports: every
//! report it answered 2xx is still there after a restart (DESIGN.md §7). On SQLite, and with
//! `ONSHI_TEST_DATABASE=postgres` on a fresh PostgreSQL schema (`.ci/run` runs both). And one
//! killed while its notices worker is sending: the mails it had claimed go out once, through the
//! next server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onshi_core::deployment::{DeploymentEvent as E, DeploymentState as S};
use onshi_core::notice::NoticeKind;
use onshi_core::offer::CampaignAction;
use onshi_testkit::serve::Serve;
use onshi_testkit::smtp::{self, Inbox};
use onshi_testkit::{
    Api, CAMPAIGN, TestSchema, terminal_campaign, test_database, wait_for, wait_until,
};

const SITES: usize = 40;
/// Inside the first night's window.
const NIGHT: &str = "2026-01-19T21:00:00+09:00";
const EVENTS: [(E, S); 4] = [
    (E::DownloadStarted, S::Downloading),
    (E::DownloadVerified, S::Downloaded),
    (E::InstallStarted, S::Installing),
    (E::InstallCompleted, S::Installed),
];

/// The PostgreSQL schema `ONSHI_TEST_DATABASE` asks for, if any (else SQLite in DATA).
fn test_schema() -> Option<TestSchema> {
    test_database().map(|url| TestSchema::create_in(&url).unwrap_or_else(|e| panic!("{e}")))
}

/// `onshi serve` on `data` (and `schema`), its clock at `clock`, mails to `smtp` if given.
fn serve(
    data: &std::path::Path,
    schema: Option<&TestSchema>,
    clock: &str,
    smtp: Option<&str>,
) -> Serve {
    Serve::start(env!("CARGO_BIN_EXE_onshi"), data, schema, clock, smtp)
}

fn code(i: usize) -> String {
    // Valid 医療機関コード: Tokyo (13), 医科, district 01, number i, check digit.
    let p = onshi_core::institution::Prefecture::from_number(13).expect("Tokyo");
    onshi_core::institution::InstitutionCode::from_parts(
        p,
        onshi_core::institution::ScoreTable::Medical,
        1,
        u16::try_from(i).expect("small"),
    )
    .expect("valid parts")
    .to_string()
}

/// On `api`'s server: `sites` clinics (each with an e-mail address) with one enrolled terminal
/// each, a release and the 2026-01 campaign, activated. Returns the device tokens.
async fn rollout(api: &Api, sites: usize) -> Vec<String> {
    let csv: String = std::iter::once("code,name,kind,prefecture,email,auto_restart\n".to_owned())
        .chain((0..sites).map(|i| {
            format!(
                "{},クラッシュ試験 {i},clinic,13,s{i}@example.invalid,\n",
                code(i)
            )
        }))
        .collect();
    terminal_campaign(api, csv, 1000, "r1", 1000, 60).await;
    let mut tokens = Vec::new();
    for i in 0..sites {
        tokens.push(api.enroll(&code(i), &format!("T{i}")).await);
    }
    api.expect(api.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_answered_2xx_survives_sigkill() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let mut server = serve(data.path(), schema.as_ref(), NIGHT, None);
    let api = server.api();

    let tokens = rollout(&api, SITES).await;

    // The burst: every device reports its four steps as fast as it can; each task remembers the
    // last step the server acknowledged. Kill the server once some reports are through.
    let acked: Arc<Vec<AtomicUsize>> = Arc::new((0..SITES).map(|_| AtomicUsize::new(0)).collect());
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (api, token) = (api.clone(), token.clone());
        let (acked, answered) = (acked.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            for (seq, (event, _)) in (1..).zip(EVENTS) {
                let r = api.report(&token, seq, &event).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        acked[i].store(seq as usize, Ordering::SeqCst);
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    while answered.load(Ordering::SeqCst) < SITES {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged: usize = acked.iter().map(|a| a.load(Ordering::SeqCst)).sum();
    assert!(
        acknowledged >= SITES,
        "the burst was under way when the server died"
    );
    assert!(
        acknowledged < SITES * EVENTS.len(),
        "the kill came mid-burst"
    );

    let server = serve(data.path(), schema.as_ref(), NIGHT, None);
    let api = server.api();
    let list = api.listing().await;
    // The number of steps a state stands for: waiting 0, then each of EVENTS.
    let order = |s: S| {
        std::iter::once(S::Waiting)
            .chain(EVENTS.map(|(_, state)| state))
            .position(|x| x == s)
    };
    for row in list {
        let serial = &row.device.serial;
        let i: usize = serial[1..].parse().expect("index");
        let stored = order(row.state).expect("a state of the burst");
        let last_ack = acked[i].load(Ordering::SeqCst);
        assert!(
            stored >= last_ack,
            "device {i}: acknowledged step {last_ack} lost (stored {stored})"
        );
    }
}

/// The Message-IDs of `mails`, sorted.
fn message_ids(mails: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = mails
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Message-ID:")))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

/// A loopback SMTP relay (answering, or `stalling`) and `onshi serve` sending to it, its clock
/// at `time` Japan time on 2026-01-19.
async fn serve_with_relay(
    data: &tempfile::TempDir,
    schema: Option<&TestSchema>,
    time: &str,
    answering: bool,
) -> (Inbox, Serve) {
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay_url = format!("smtp://{}", relay.local_addr().expect("addr"));
    let inbox = if answering {
        smtp::smtp_listener(relay).await
    } else {
        smtp::stalling_smtp_listener(relay).await
    };
    let clock = format!("2026-01-19T{time}:00+09:00");
    (inbox, serve(data.path(), schema, &clock, Some(&relay_url)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_claimed_by_a_killed_server_go_out_once_through_the_next_one() {
    const MAIL_SITES: usize = 3;
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();

    // The first server's SMTP relay takes each mail's DATA and never answers: the server dies
    // with its claimed mails mid-send. 09:00, before noon: only the announcements are due.
    let (stalled, mut first) = serve_with_relay(&data, schema.as_ref(), "09:00", false).await;
    rollout(&first.api(), MAIL_SITES).await;
    wait_for("every announcement reached the stalled relay", || {
        stalled.of_kind(NoticeKind::Announcement) == MAIL_SITES
    })
    .await;
    first.kill();

    // The next server (a restart, or another replica on PostgreSQL), its clock past the
    // 10-minute claim, sends them to a relay that answers.
    let (inbox, next) = serve_with_relay(&data, schema.as_ref(), "09:11", true).await;
    let api = next.api();
    wait_for("every announcement was delivered", || {
        inbox.of_kind(NoticeKind::Announcement) == MAIL_SITES
    })
    .await;
    // Every mail is marked sent and none waits: the outbox has nothing a later round could
    // send again (the first server, which held the claims, is gone).
    wait_until("every mail marked sent, none pending", async || {
        let s = api.notices_summary().await;
        s.sent == MAIL_SITES as u64 && s.pending == 0
    })
    .await;
    let delivered = inbox.mails();
    assert_eq!(delivered.len(), MAIL_SITES, "a mail was delivered twice");
    // The same messages the first server had started to send (same Message-IDs), once each.
    assert_eq!(message_ids(&delivered), message_ids(&stalled.mails()));
}
