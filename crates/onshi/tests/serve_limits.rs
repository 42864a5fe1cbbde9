//! The real `onshi serve` binary against hostile clients (issue 15, DESIGN.md §7: "every
//! connection and body has a time and size limit, checked before the body is read"): a
//! half-sent request head and an idle keep-alive connection are closed within the header
//! timeout, a stalled body is answered 408, 60 MiB bodies on the routes open to anyone are
//! refused without being read while the server's memory stays flat, and SIGTERM with stalled
//! clients ends the server within its deadline without losing a last-contact time. On SQLite,
//! and with `ONSHI_TEST_DATABASE=postgres` on a fresh PostgreSQL schema.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use onshi_testkit::serve::Serve;
use onshi_testkit::{TestSchema, test_database};
use reqwest::Method;
use serde_json::{Value, json};

/// A weekday morning outside any campaign: these tests need no window.
const MORNING: &str = "2026-01-13T10:00:00+09:00";
const CODE: &str = "0110113719";

fn test_schema() -> Option<TestSchema> {
    test_database().map(|url| TestSchema::create_in(&url).unwrap_or_else(|e| panic!("{e}")))
}

fn serve(data: &std::path::Path, schema: Option<&TestSchema>, extra: &[&str]) -> Serve {
    Serve::start_with(
        env!("CARGO_BIN_EXE_onshi"),
        data,
        schema,
        MORNING,
        None,
        extra,
    )
}

fn connect(server: &Serve) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
}

/// Reads until the server closes the connection; answers what it sent and when it closed.
fn read_until_closed(stream: &mut TcpStream) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), Instant::now())
}

/// The server's resident memory in bytes.
fn rss(server: &Serve) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn a_half_sent_request_head_and_an_idle_connection_are_closed_within_the_header_timeout() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let server = serve(data.path(), schema.as_ref(), &["--header-timeout", "1"]);

    // Half a head, never finished.
    let mut half = connect(&server);
    let started = Instant::now();
    half.write_all(b"GET /guidance HTTP/1.1\r\nHost: onshi\r\nX-Slow: ")
        .expect("write");
    let (_, closed) = read_until_closed(&mut half);
    let took = closed - started;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}, not after the 1 s header timeout"
    );

    // A whole request answered, then nothing more: the idle connection is closed as well.
    let mut idle = connect(&server);
    let started = Instant::now();
    idle.write_all(b"GET /api/v1/nothing HTTP/1.1\r\nHost: onshi\r\n\r\n")
        .expect("write");
    let (answer, closed) = read_until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let took = closed - started;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "idle connection closed after {took:?}, not after the 1 s header timeout"
    );
}

#[test]
fn a_body_that_stops_arriving_is_answered_408_and_the_connection_closed() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let server = serve(data.path(), schema.as_ref(), &["--body-timeout", "1"]);
    let mut stream = connect(&server);
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/v1/enroll HTTP/1.1\r\nHost: onshi\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"serial\":",
        )
        .expect("write");
    let (answer, closed) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(
        closed - started < Duration::from_secs(5),
        "answered after {:?}",
        closed - started
    );
}

/// The routes anyone may post to, and the device API (a bad token is refused before the body).
const OPEN_ROUTES: [&str; 6] = [
    "/api/v1/enroll",
    "/site/login",
    "/operator/login",
    "/api/v1/qualification",
    "/reception/desk/event",
    "/api/v1/checkin",
];

/// Sends a 60 MiB body to `path`, declared (`Content-Length`) or chunked, and answers the head
/// of the server's answer.
fn post_60_mib(addr: String, path: &str, declared: bool) -> String {
    const SIZE: usize = 60 << 20;
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("write timeout");
    let length = if declared {
        format!("Content-Length: {SIZE}")
    } else {
        "Transfer-Encoding: chunked".to_owned()
    };
    let kind = if path.starts_with("/api/") {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: onshi\r\nContent-Type: {kind}\r\n{length}\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..SIZE / chunk.len() {
            let sent = if declared {
                writer.write_all(&chunk)
            } else {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| writer.write_all(&chunk))
                    .and_then(|()| writer.write_all(b"\r\n"))
            };
            // The server closed the connection without reading: that is the point.
            if sent.is_err() {
                return;
            }
        }
    });
    let (answer, _) = read_until_closed(&mut stream);
    let _ = sender.join();
    answer
}

#[test]
fn sixty_mib_bodies_on_open_routes_are_refused_unread_with_memory_flat_under_12_at_once() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let server = serve(data.path(), schema.as_ref(), &[]);
    // Settle: one small request first, so the baseline has the server's buffers.
    let api = server.api();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        api.expect(api.client.get(api.url("/guidance")), 200).await;
    });
    let before = rss(&server);
    let clients: Vec<_> = (0..12)
        .map(|i| {
            let addr = server.addr().to_owned();
            let path = OPEN_ROUTES[i % OPEN_ROUTES.len()];
            let declared = i % 2 == 0;
            std::thread::spawn(move || (path, declared, post_60_mib(addr, path, declared)))
        })
        .collect();
    let mut peak = before;
    while clients.iter().any(|c| !c.is_finished()) {
        peak = peak.max(rss(&server));
        std::thread::sleep(Duration::from_millis(10));
    }
    for client in clients {
        let (path, declared, answer) = client.join().expect("client");
        let refused = answer.starts_with("HTTP/1.1 413")
            && answer.contains("\"code\":\"body_too_large\"")
            // A bad device token is refused before the body too.
            || path == "/api/v1/checkin" && answer.starts_with("HTTP/1.1 401");
        assert!(refused, "{path} (declared: {declared}): {answer}");
    }
    let grew = peak.saturating_sub(before);
    assert!(
        grew < 32 << 20,
        "the server grew by {} MiB under 12 bodies of 60 MiB",
        grew >> 20
    );
}

#[test]
fn sigterm_with_stalled_clients_exits_within_the_deadline_and_keeps_the_last_contact() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let extra = [
        "--shutdown-deadline",
        "1",
        "--header-timeout",
        "60",
        "--body-timeout",
        "60",
    ];
    let mut server = serve(data.path(), schema.as_ref(), &extra);
    let api = server.api();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (token, access_key) = runtime.block_on(async {
        api.expect(
            api.admin(Method::POST, "/api/v1/admin/institutions/import")
                .header("content-type", "text/csv")
                .body(format!(
                    "code,name,kind,prefecture,email,auto_restart\n{CODE},終了試験,clinic,1,a@example.invalid,\n"
                )),
            201,
        )
        .await;
        let token = api.enroll(CODE, "TERM-1").await;
        let access: Value = api
            .expect(
                api.admin(
                    Method::POST,
                    &format!("/api/v1/admin/institutions/{CODE}/access-key"),
                ),
                200,
            )
            .await;
        // The first check-in's versions are written at once; a later one with the same versions
        // only buffers its contact in memory, as most do, just before the signal.
        api.checkin(&token, "1.0.0", "1.0.0").await;
        api.set_clock("2026-01-13T11:30:00+09:00").await;
        api.checkin(&token, "1.0.0", "1.0.0").await;
        (token, access["access_key"].as_str().expect("key").to_owned())
    });

    // A request whose body stalls and a head that never ends, both in flight at the signal.
    let mut stalled_body = connect(&server);
    stalled_body
        .write_all(
            format!(
                "POST /api/v1/checkin HTTP/1.1\r\nHost: onshi\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .expect("write");
    let mut stalled_head = connect(&server);
    stalled_head
        .write_all(b"GET / HTTP/1.1\r\nHost: onshi\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));

    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(8),
            "the server was still running 8 s after SIGTERM with a 1 s deadline"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit: {status}");
    let (_, _) = read_until_closed(&mut stalled_body);
    let (_, _) = read_until_closed(&mut stalled_head);

    // The next server on the same data knows the last contact.
    let server = serve(data.path(), schema.as_ref(), &[]);
    let api = server.api();
    runtime.block_on(async {
        let site: Value = api
            .expect(
                api.client
                    .get(api.url(&format!("/api/v1/institutions/{CODE}/devices")))
                    .bearer_auth(&access_key),
                200,
            )
            .await;
        let contact = &site["devices"][0]["last_contact"];
        assert!(
            contact
                .as_str()
                .is_some_and(|c| c.starts_with("2026-01-13T02:3")),
            "{}",
            json!(site)
        );
    });
}

#[test]
fn an_operator_token_under_32_characters_is_refused_and_a_generated_one_never_printed() {
    let data = tempfile::tempdir().expect("temp dir");
    // The server's share of the tests' key ceremony, and the root it starts from.
    onshi_testkit::keys::TestKeys::install(data.path());
    let root = data.path().join("root.json");
    onshi_testkit::keys::TestKeys::write_root(&root);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .arg("--trust-root")
        .arg(&root)
        .env("ONSHI_OPERATOR_TOKEN", "only-twenty-six-characters")
        .output()
        .expect("onshi serve runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");

    // Without a token, one is generated into a file only its owner reads, not onto stdout.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_onshi"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .arg("--trust-root")
        .arg(&root)
        .env_remove("ONSHI_OPERATOR_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("onshi serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut printed = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("line");
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("onshi serve: listening on ") {
            break;
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("exited");
    let file = data.path().join("operator-token");
    let token = std::fs::read_to_string(&file).expect("token file");
    let token = token.trim();
    assert!(token.len() >= 32, "{token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let logged = String::from_utf8_lossy(&output.stderr);
    assert!(printed.contains("operator-token"), "{printed}");
    assert!(!printed.contains(token) && !logged.contains(token));
}

/// Reads the head of the server's answer (up to the empty line), without waiting for the
/// connection to close.
fn read_head(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Logs in on the operator's page; answers the session cookie (`name=value`).
fn operator_cookie(server: &Serve, runtime: &tokio::runtime::Runtime) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    runtime.block_on(async {
        let login = client
            .post(format!("{}/operator/login", server.url))
            .form(&[("token", onshi_testkit::OPERATOR_TOKEN)])
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), reqwest::StatusCode::SEE_OTHER);
        let cookie = login.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .expect("ascii");
        cookie.split(';').next().expect("name=value").to_owned()
    })
}

#[test]
fn operator_forms_are_refused_before_their_body_without_a_session_and_have_a_deadline_with_one() {
    let data = tempfile::tempdir().expect("temp dir");
    let schema = test_schema();
    let server = serve(
        data.path(),
        schema.as_ref(),
        &["--request-timeout", "1", "--body-timeout", "30"],
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    // No session: 403 at once, while the promised body has not been sent at all.
    for path in ["/operator/campaigns", "/operator/releases"] {
        let mut stream = connect(&server);
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: onshi\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("write");
        let head = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 403"), "{path}: {head}");
    }

    let cookie = operator_cookie(&server, &runtime);
    // With the session, a form over the forms' 64 KiB is refused unread.
    let mut stream = connect(&server);
    stream
        .write_all(
            format!(
                "POST /operator/campaigns HTTP/1.1\r\nHost: onshi\r\nCookie: {cookie}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 70000\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("write");
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // With the session, a form whose body stalls is answered 408 by the 1 s request deadline,
    // long before the 30 s allowed between two chunks.
    let mut stream = connect(&server);
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST /operator/campaigns HTTP/1.1\r\nHost: onshi\r\nCookie: {cookie}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ncsrf="
            )
            .as_bytes(),
        )
        .expect("write");
    let (answer, closed) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let took = closed - started;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}, not after the 1 s request deadline"
    );

    // The device API's deadline too (the same stall on an open route).
    let mut stream = connect(&server);
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/v1/enroll HTTP/1.1\r\nHost: onshi\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"serial\":",
        )
        .expect("write");
    let (answer, closed) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let took = closed - started;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}, not after the 1 s request deadline"
    );
}
