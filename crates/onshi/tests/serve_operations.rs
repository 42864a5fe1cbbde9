//! `onshi serve` as an operator starts it for monitoring and mail: `--metrics-listen` serves
//! `/metrics`, `/healthz` and `/readyz` without a token on its own address, and a relay URL that
//! would send mail in clear text to another host stops the start with what to ask for instead,
//! never echoing the password.

use std::process::Command;

use onshi_testkit::serve::Serve;

const BIN: &str = env!("CARGO_BIN_EXE_onshi");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_and_health_without_a_token() {
    let data = tempfile::tempdir().expect("temp dir");
    let at = format!("127.0.0.1:{}", free_port());
    let server = Serve::start_with(
        BIN,
        data.path(),
        None,
        "2026-01-19T10:00:00+09:00",
        None,
        &["--metrics-listen", &at],
    );
    let client = reqwest::Client::new();
    let get = async |url: String| {
        let r = client.get(url).send().await.expect("sent");
        (r.status().as_u16(), r.text().await.expect("text"))
    };
    let (status, text) = get(format!("http://{at}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE onshi_checkins_total counter"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "onshi_store_up 1"), "{text}");
    assert_eq!(
        get(format!("http://{at}/readyz")).await,
        (200, "ready\n".into())
    );
    assert_eq!(get(format!("http://{at}/healthz")).await.0, 200);
    // On the main address /metrics needs the operator token.
    assert_eq!(get(format!("{}/metrics", server.url)).await.0, 401);
}

#[test]
fn plain_smtp_to_another_host_stops_the_start_and_hides_the_password() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--smtp"])
        .arg("smtp://notices:hunter2@mail.example.jp")
        .arg("--data")
        .arg(data.path())
        .env("ONSHI_OPERATOR_TOKEN", onshi_testkit::OPERATOR_TOKEN)
        .output()
        .expect("onshi runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("smtps://mail.example.jp:465"), "{stderr}");
    assert!(stderr.contains("tls=required"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[test]
fn smtp_options_without_a_relay_are_bad_input() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--smtp-user",
            "notices",
            "--data",
        ])
        .arg(data.path())
        .env_remove("ONSHI_SMTP")
        .output()
        .expect("onshi runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--smtp URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
