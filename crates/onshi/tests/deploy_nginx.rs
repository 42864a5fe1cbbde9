//! `deploy/nginx.conf` as shipped (ports and paths replaced, a self-signed certificate made by
//! the test) in front of two real `onshi serve` replicas on one PostgreSQL schema started with
//! `--accel-redirect /_onshi/artifacts/`: the whole API works through its TLS port, every
//! download of an artifact is authorised by a replica (the replicas' logs show each one) and its
//! bytes are sent by nginx, ranges and `If-Range` included; a request refused by onshi gets no
//! bytes, and nginx's internal location is not reachable by a client. A login over TLS gets a
//! `Secure` cookie (nginx's `X-Forwarded-Proto`), one over the loopback plain-HTTP port does
//! not; bodies over a location's limit are refused by nginx before any replica sees them.
//!
//! Needs nginx and PostgreSQL: outside CI the test is skipped when either is missing; in CI
//! (`CI=true`) it fails instead, because `.ci/run` installs and starts both.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use onshi_api::admin::control_path;
use onshi_api::device::{CheckinRequest, CheckinResponse, EnrollRequest, Enrolled};
use onshi_core::offer::{Action, CampaignAction};
use onshi_testkit::{CAMPAIGN, TestSchema};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "deploy-test-operator-token-0123456789";
const SITE: &str = "0110113719";
const NIGHT: &str = "2026-01-19T21:00:00+09:00";

/// Kills the child when dropped, so a failing test leaves no server behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "nginx is missing; .ci/run installs it"
        );
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
    }
    found
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// A replica on `port`, logging each artifact it serves to `log`.
fn replica(port: u16, data: &Path, database: &str, log: &Path) -> Killed {
    // The key ceremony's share of a replica: DATA/keys/timestamp.key and root.json.
    let root = onshi_testkit::keys::TestKeys::install(data);
    let mut child = Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--trust-root")
        .arg(root)
        .args([
            "--clock",
            "2026-01-19T12:00:00+09:00",
            "--database",
            database,
        ])
        .arg("--data")
        .arg(data)
        .args(["--accel-redirect", "/_onshi/artifacts/"])
        .env("ONSHI_OPERATOR_TOKEN", TOKEN)
        .env("RUST_LOG", "warn,onshi_server::routes::device=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("onshi serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("onshi serve: listening on "));
    assert!(
        listening,
        "replica on {port} did not start: see {}",
        log.display()
    );
    Killed(child)
}

/// A self-signed certificate for 127.0.0.1 in `dir` (`cert.pem`, `key.pem`); its PEM.
fn certificate(dir: &Path) -> String {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &pem).expect("cert written");
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).expect("key written");
    pem
}

/// deploy/nginx.conf with its ports and paths pointed at this test's: `tls` for its
/// `listen 443 ssl`, `listen` for its loopback plain-HTTP port.
fn nginx_conf(dir: &Path, tls: u16, listen: u16, replicas: [u16; 2]) -> String {
    let shipped = include_str!("../../../deploy/nginx.conf");
    let d = dir.display();
    let mut conf = shipped.to_owned();
    for (from, to) in [
        ("listen 443 ssl", format!("listen 127.0.0.1:{tls} ssl")),
        (
            "listen 127.0.0.1:8080",
            format!("listen 127.0.0.1:{listen}"),
        ),
        ("/etc/onshi/tls/fullchain.pem", format!("{d}/cert.pem")),
        ("/etc/onshi/tls/privkey.pem", format!("{d}/key.pem")),
        (
            "server 127.0.0.1:8081",
            format!("server 127.0.0.1:{}", replicas[0]),
        ),
        (
            "server 127.0.0.1:8082",
            format!("server 127.0.0.1:{}", replicas[1]),
        ),
        ("/var/cache/onshi-tmp", format!("{d}/cache-tmp")),
        ("/var/lib/onshi/artifacts/", format!("{d}/data/artifacts/")),
        ("/run/onshi-nginx.pid", format!("{d}/nginx.pid")),
        ("/var/log/onshi-nginx/error.log", format!("{d}/error.log")),
    ] {
        assert!(
            conf.contains(from),
            "deploy/nginx.conf no longer has {from:?}"
        );
        conf = conf.replace(from, &to);
    }
    // In the foreground, one process (so the test can stop it, and it needs no other user).
    format!("daemon off;\nmaster_process off;\n{conf}")
}

async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

async fn call(req: reqwest::RequestBuilder, status: u16) -> Value {
    let r = req.send().await.expect("request");
    let got = r.status().as_u16();
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// How many artifact downloads a replica's log shows.
fn served(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .expect("replica log")
        .matches("serving artifact")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_sends_the_artifacts_onshi_authorises() {
    let Some(nginx) = nginx() else { return };
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    for sub in ["cache-tmp", "data"] {
        std::fs::create_dir_all(dir.join(sub)).expect("directory");
    }
    let ports = [free_port(), free_port()];
    let logs = [dir.join("replica-1.log"), dir.join("replica-2.log")];
    let _replicas = [
        replica(ports[0], &dir.join("data"), &schema.url, &logs[0]),
        replica(ports[1], &dir.join("data"), &schema.url, &logs[1]),
    ];
    let (tls, listen) = (free_port(), free_port());
    let cert_pem = certificate(dir);
    std::fs::write(dir.join("nginx.conf"), nginx_conf(dir, tls, listen, ports)).expect("conf");
    let _nginx = Killed(
        Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts"),
    );
    wait_listening(listen).await;
    wait_listening(tls).await;

    // Everything below goes through nginx's TLS port, as devices and the operator do.
    let client = Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem certificate"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = format!("https://127.0.0.1:{tls}");
    let plain_root = format!("http://127.0.0.1:{listen}");
    let base = format!("{root}/api/v1");
    // The operator's page login: over TLS the cookie is Secure (nginx says `https`), over the
    // loopback plain port it is not.
    for (at, secure) in [(&root, true), (&plain_root, false)] {
        let login = client
            .post(format!("{at}/operator/login"))
            .form(&[("token", TOKEN)])
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), StatusCode::SEE_OTHER, "{at}");
        let cookie = login.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(cookie.contains("; Secure"), secure, "{at}: {cookie}");
    }
    // Bodies over a location's limit: refused by nginx, unread by any replica (16 KiB for the
    // open and device routes, 64 KiB for the operator's forms).
    for (path, size) in [
        ("/api/v1/enroll", 20 << 10),
        ("/site/login", 20 << 10),
        ("/operator/campaigns", 100 << 10),
    ] {
        let r = client
            .post(format!("{root}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; size])
            .send()
            .await
            .expect("an answer");
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        // nginx's own HTML page, not onshi's JSON `body_too_large`.
        let text = r.text().await.expect("body");
        assert!(
            text.contains("413 Request Entity Too Large"),
            "{path}: {text}"
        );
    }
    // What a load balancer and Prometheus ask, through nginx.
    assert_eq!(
        call(client.get(format!("{root}/readyz")), 200).await,
        "ready\n"
    );
    assert_eq!(
        call(client.get(format!("{root}/healthz")), 200).await,
        "ok\n"
    );
    call(client.get(format!("{root}/metrics")), 401).await;
    let metrics = call(
        client.get(format!("{root}/metrics")).bearer_auth(TOKEN),
        200,
    )
    .await;
    assert!(
        metrics
            .as_str()
            .is_some_and(|t| t.contains("onshi_checkins_total")),
        "{metrics}"
    );
    let admin = |m: Method, p: &str| client.request(m, format!("{base}{p}")).bearer_auth(TOKEN);
    let csv = format!(
        "code,name,kind,prefecture,email,auto_restart\n{SITE},テスト診療所,clinic,1,it@example.invalid,\n"
    );
    call(
        admin(Method::POST, "/admin/institutions/import").body(csv),
        201,
    )
    .await;
    let package: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sha = call(
        admin(Method::PUT, "/admin/artifacts").body(package.clone()),
        201,
    )
    .await["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned();
    let signed = onshi_testkit::keys::sign_release(
        "r1",
        "2.0.0",
        &[(
            onshi_core::release::Target::Terminal,
            sha.parse().expect("sha"),
            package.len() as u64,
        )],
    );
    call(admin(Method::POST, "/admin/releases").json(&signed), 201).await;
    call(
        admin(Method::POST, "/admin/campaigns").json(&json!({
            "schedule": "preset:2026-01", "release_id": "r1",
            "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60}
        })),
        201,
    )
    .await;
    let key = call(
        admin(
            Method::POST,
            // Two terminals with one key.
            &format!("/admin/institutions/{SITE}/enrollment-key?uses=2"),
        ),
        200,
    )
    .await["enrollment_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let mut tokens = Vec::new();
    for serial in ["T1", "T2"] {
        let request = EnrollRequest {
            institution_code: SITE.to_owned(),
            enrollment_key: key.clone(),
            serial: serial.to_owned(),
        };
        let v = call(client.post(format!("{base}/enroll")).json(&request), 201).await;
        let enrolled: Enrolled = serde_json::from_value(v).expect("an enrolment answer");
        tokens.push(enrolled.device_token);
    }
    call(
        client
            .post(format!(
                "{root}{}",
                control_path(CAMPAIGN, CampaignAction::Activate)
            ))
            .bearer_auth(TOKEN),
        200,
    )
    .await;
    for port in ports {
        call(
            client
                .put(format!("http://127.0.0.1:{port}/api/v1/admin/clock"))
                .bearer_auth(TOKEN)
                .json(&json!({ "now": NIGHT })),
            200,
        )
        .await;
    }

    // Two devices download the package through nginx; a third request carries no token.
    let url = format!("{base}/artifacts/{sha}");
    for token in &tokens {
        let offer: CheckinResponse = serde_json::from_value(
            call(
                client
                    .post(format!("{base}/checkin"))
                    .bearer_auth(token)
                    .json(&CheckinRequest::default()),
                200,
            )
            .await,
        )
        .expect("a check-in answer");
        assert_eq!(offer.action, Action::Download, "{offer:?}");
        let r = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["etag"], format!("\"{sha}\"").as_str());
        assert_eq!(h["cache-control"], "max-age=31536000, immutable");
        assert!(h.get("x-accel-redirect").is_none(), "{h:?}");
        assert_eq!(r.bytes().await.expect("body"), package);
    }
    // A resumed download (a range with the agent's If-Range) is sent by nginx too.
    let r = client
        .get(&url)
        .bearer_auth(&tokens[0])
        .header("range", "bytes=100000-")
        .header("if-range", format!("\"{sha}\""))
        .send()
        .await
        .expect("ranged download");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.expect("body"), package[100_000..]);
    // Refused by onshi: no bytes. The internal location from outside: 404.
    call(client.get(&url), 401).await;
    call(client.get(&url).bearer_auth("not-a-token"), 401).await;
    let internal = format!("{root}/_onshi/artifacts/{}/{sha}", &sha[..2]);
    let r = client.get(&internal).send().await.expect("internal");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let by_replica = [served(&logs[0]), served(&logs[1])];
    assert_eq!(
        by_replica.iter().sum::<usize>(),
        3,
        "the replicas authorised the artifact {by_replica:?} times; every download asks one"
    );
}
