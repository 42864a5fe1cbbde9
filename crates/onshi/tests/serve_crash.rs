//! The real `onshi serve` binary killed with SIGKILL during a burst of state reports: every
//! report it answered 2xx is still there after a restart (DESIGN.md §7). On SQLite, and with
//! `ONSHI_TEST_DATABASE=postgres` on a fresh PostgreSQL schema (`.ci/run` runs both). And one
//! killed while its notices worker is sending: the mails it had claimed go out once, through the
//! next server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onshi_store::testing::TestSchema;
use tokio::net::TcpListener;

#[path = "../../onshi-server/tests/common/smtp.rs"]
mod smtp;
use reqwest::Client;
use serde_json::{Value, json};

const TOKEN: &str = "crash-test-operator-token-0123";
const SITES: usize = 40;
/// Inside the first night's window.
const NIGHT: &str = "2026-01-19T21:00:00+09:00";
const EVENTS: [(&str, &str); 4] = [
    ("download_started", "downloading"),
    ("download_verified", "downloaded"),
    ("install_started", "installing"),
    ("install_completed", "installed"),
];

/// The PostgreSQL schema `ONSHI_TEST_DATABASE` asks for, if any (else SQLite in DATA).
fn test_schema() -> Option<TestSchema> {
    let url = match std::env::var("ONSHI_TEST_DATABASE").ok()?.as_str() {
        "" | "sqlite" => return None,
        "postgres" => onshi_store::testing::test_url(),
        url => url.to_owned(),
    };
    Some(TestSchema::create_in(&url).unwrap_or_else(|e| panic!("{e}")))
}

/// Starts `onshi serve` on a random loopback port with its clock at `clock` (running at real
/// speed) and, if given, mails going to `smtp`; returns the child and its base URL.
fn serve(
    data: &Path,
    schema: Option<&TestSchema>,
    clock: &str,
    smtp: Option<&str>,
) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_onshi"));
    command.arg("serve");
    if let Some(schema) = schema {
        command.arg("--database").arg(&schema.url);
    }
    if let Some(smtp) = smtp {
        command.arg("--smtp").arg(smtp);
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--clock", clock])
        .arg("--data")
        .arg(data)
        .env("ONSHI_OPERATOR_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("onshi serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("utf-8 line");
        if let Some(url) = line.strip_prefix("onshi serve: listening on ") {
            break url.trim().to_owned();
        }
    };
    (child, url)
}

async fn call(client: &Client, req: reqwest::RequestBuilder, status: u16) -> Value {
    let _ = client;
    let r = req.send().await.expect("request");
    assert_eq!(r.status().as_u16(), status);
    r.json().await.expect("json")
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

/// On the server at `url`: `sites` clinics (each with an e-mail address) with one enrolled
/// terminal each, a release and the 2026-01 campaign, activated. Returns the device tokens.
async fn rollout(client: &Client, url: &str, sites: usize) -> Vec<String> {
    let admin =
        |m: reqwest::Method, p: &str| client.request(m, format!("{url}{p}")).bearer_auth(TOKEN);
    let csv: String = std::iter::once("code,name,kind,prefecture,email,auto_restart\n".to_owned())
        .chain((0..sites).map(|i| {
            format!(
                "{},クラッシュ試験 {i},clinic,13,s{i}@example.invalid,\n",
                code(i)
            )
        }))
        .collect();
    call(
        client,
        admin(reqwest::Method::POST, "/api/v1/admin/institutions/import").body(csv),
        201,
    )
    .await;
    let sha = call(
        client,
        admin(reqwest::Method::PUT, "/api/v1/admin/artifacts").body(vec![7u8; 1000]),
        201,
    )
    .await["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    call(
        client,
        admin(reqwest::Method::POST, "/api/v1/admin/releases").json(&json!({
            "id": "r1", "version": "2.0.0", "components": [{"target": "terminal", "sha256": sha}]
        })),
        201,
    )
    .await;
    call(
        client,
        admin(reqwest::Method::POST, "/api/v1/admin/campaigns").json(&json!({
            "schedule": "preset:2026-01", "release_id": "r1",
            "throttle": {"max_concurrent_downloads": 1000, "poll_interval_seconds": 60}
        })),
        201,
    )
    .await;
    let mut tokens = Vec::new();
    for i in 0..sites {
        let key = call(
            client,
            admin(
                reqwest::Method::POST,
                &format!("/api/v1/admin/institutions/{}/enrollment-key", code(i)),
            ),
            200,
        )
        .await["enrollment_key"]
            .as_str()
            .expect("key")
            .to_owned();
        let v = call(
            client,
            client.post(format!("{url}/api/v1/enroll")).json(&json!({
                "institution_code": code(i), "enrollment_key": key, "serial": format!("T{i}")
            })),
            201,
        )
        .await;
        tokens.push(v["device_token"].as_str().expect("token").to_owned());
    }
    call(
        client,
        admin(
            reqwest::Method::POST,
            "/api/v1/admin/campaigns/2026-01/activate",
        ),
        200,
    )
    .await;

    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_answered_2xx_survive_sigkill() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let (mut child, url) = serve(data.path(), schema.as_ref(), NIGHT, None);
    let client = Client::new();

    let tokens = rollout(&client, &url, SITES).await;

    // The burst: every device reports its four steps as fast as it can; each task remembers the
    // last step the server acknowledged. Kill the server once some reports are through.
    let acked: Arc<Vec<AtomicUsize>> = Arc::new((0..SITES).map(|_| AtomicUsize::new(0)).collect());
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        let (acked, answered) = (acked.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            for (seq, (event, _)) in EVENTS.iter().enumerate() {
                let r = client
                    .post(format!("{url}/api/v1/report"))
                    .bearer_auth(&token)
                    .json(&json!({"campaign_id": "2026-01", "seq": seq + 1, "event": event}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        acked[i].store(seq + 1, Ordering::SeqCst);
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
    child.kill().expect("SIGKILL");
    let _ = child.wait();
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

    let (mut child, url) = serve(data.path(), schema.as_ref(), NIGHT, None);
    let list = call(
        &client,
        client
            .get(format!("{url}/api/v1/admin/campaigns/2026-01/devices"))
            .bearer_auth(TOKEN),
        200,
    )
    .await;
    let order = |s: &str| {
        [
            "waiting",
            "downloading",
            "downloaded",
            "installing",
            "installed",
        ]
        .iter()
        .position(|x| *x == s)
    };
    for row in list.as_array().expect("list") {
        let serial = row["device"]["serial"].as_str().expect("serial");
        let i: usize = serial[1..].parse().expect("index");
        let stored = order(row["state"].as_str().expect("state")).expect("known state");
        let last_ack = acked[i].load(Ordering::SeqCst);
        assert!(
            stored >= last_ack,
            "device {i}: acknowledged step {last_ack} lost (stored {stored})"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits up to 30 s for `cond`.
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
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
) -> (smtp::Inbox, Child, String) {
    let relay = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let relay_url = format!("smtp://{}", relay.local_addr().expect("addr"));
    let inbox = if answering {
        smtp::smtp_listener(relay).await
    } else {
        smtp::stalling_smtp_listener(relay).await
    };
    let clock = format!("2026-01-19T{time}:00+09:00");
    let (child, url) = serve(data.path(), schema, &clock, Some(&relay_url));
    (inbox, child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_claimed_by_a_killed_server_go_out_once_through_the_next_one() {
    const MAIL_SITES: usize = 3;
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let client = Client::new();

    // The first server's SMTP relay takes each mail's DATA and never answers: the server dies
    // with its claimed mails mid-send. 09:00, before noon: only the announcements are due.
    let (stalled, mut child, url) = serve_with_relay(&data, schema.as_ref(), "09:00", false).await;
    rollout(&client, &url, MAIL_SITES).await;
    wait_for("every announcement reached the stalled relay", || {
        stalled.of_kind("announcement") == MAIL_SITES
    })
    .await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    // The next server (a restart, or another replica on PostgreSQL), its clock past the
    // 10-minute claim, sends them to a relay that answers.
    let (inbox, mut child, url) = serve_with_relay(&data, schema.as_ref(), "09:11", true).await;
    wait_for("every announcement was delivered", || {
        inbox.of_kind("announcement") == MAIL_SITES
    })
    .await;
    // The worker ticks every 100 ms: many more rounds, and nothing is sent again.
    let summary = client
        .get(format!("{url}/api/v1/admin/notices/summary"))
        .bearer_auth(TOKEN);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = call(&client, summary.try_clone().expect("clonable"), 200).await;
        if s["sent"] == MAIL_SITES {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not marked sent: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = inbox.mails();
    assert_eq!(delivered.len(), MAIL_SITES, "a mail was delivered twice");
    // The same messages the first server had started to send (same Message-IDs), once each.
    assert_eq!(message_ids(&delivered), message_ids(&stalled.mails()));
    let _ = child.kill();
    let _ = child.wait();
}
