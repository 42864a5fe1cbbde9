//! The real `onshi serve` binary behind a proxy, and at its connection limit (issue 15): a
//! proxy's `X-Forwarded-Proto` makes the login cookie `Secure` only when onshi trusts the proxy
//! (loopback, or `--trusted-proxy`), a non-loopback peer's is ignored; the mock qualification
//! service refuses the client a trusted proxy names before it reads the body; a connection past
//! `--max-connections` is served only once another closes; a path that does not decode is
//! answered with the JSON error body. `tests/sessions.rs` and `tests/limits` in onshi-server
//! show the same in-process.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use onshi_testkit::OPERATOR_TOKEN;
use onshi_testkit::serve::Serve;

const MORNING: &str = "2026-01-13T10:00:00+09:00";

fn serve(data: &std::path::Path, extra: &[&str]) -> Serve {
    Serve::start_with(
        env!("CARGO_BIN_EXE_onshi"),
        data,
        None,
        MORNING,
        None,
        extra,
    )
}

/// Sends `request` whole on a new connection to `addr` and reads the answer's head. (To one of
/// this machine's own addresses the connection comes from that address.)
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    read_head(&mut stream)
}

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

/// An operator login as a proxy in front would pass it on (`X-Forwarded-Proto: https`).
fn login_via_proxy(addr: SocketAddr) -> String {
    let body = format!("token={OPERATOR_TOKEN}");
    exchange(
        addr,
        &format!(
            "POST /operator/login HTTP/1.1\r\nHost: onshi.example.jp\r\nX-Forwarded-Proto: https\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn set_cookie(head: &str) -> &str {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
}

/// This machine's first address that is not loopback (`hostname -I`), if it has one.
fn own_address() -> Option<IpAddr> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[test]
fn x_forwarded_proto_makes_the_cookie_secure_only_from_a_trusted_proxy() {
    // From loopback (nginx on this machine): believed.
    let data = tempfile::tempdir().expect("temp dir");
    let server = serve(data.path(), &[]);
    let addr: SocketAddr = server.addr().parse().expect("address");
    let head = login_via_proxy(addr);
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    assert!(set_cookie(&head).contains("; Secure"), "{head}");
    drop(server);

    // From a peer that is not loopback: ignored, unless named by --trusted-proxy.
    let Some(own) = own_address() else {
        eprintln!("SKIPPED the non-loopback half: this machine has no other address");
        return;
    };
    for (trusted, secure) in [(false, false), (true, true)] {
        let data = tempfile::tempdir().expect("temp dir");
        let own_text = own.to_string();
        // On every address of this machine, so that it is reached from `own`.
        let mut extra = vec!["--listen", "0.0.0.0:0"];
        if trusted {
            extra.extend(["--trusted-proxy", own_text.as_str()]);
        }
        let server = serve(data.path(), &extra);
        let port: u16 = server
            .addr()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        let head = login_via_proxy(SocketAddr::new(own, port));
        assert!(head.starts_with("HTTP/1.1 303"), "{head}");
        assert_eq!(
            set_cookie(&head).contains("; Secure"),
            secure,
            "trusted: {trusted}: {head}"
        );
    }
}

#[test]
fn the_mock_qualification_service_refuses_a_client_a_proxy_names_before_reading_its_body() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = serve(data.path(), &[]);
    let addr: SocketAddr = server.addr().parse().expect("address");
    // nginx on this machine passes the client's address: not loopback, so refused, and at once
    // (the promised body is never sent).
    let head = exchange(
        addr,
        "POST /api/v1/qualification HTTP/1.1\r\nHost: onshi\r\nX-Real-IP: 203.0.113.9\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    // A client on this machine itself is answered.
    let body = r#"{"card_id":"card-1"}"#;
    let head = exchange(
        addr,
        &format!(
            "POST /api/v1/qualification HTTP/1.1\r\nHost: onshi\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn a_connection_past_the_limit_is_served_only_once_another_closes() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = serve(
        data.path(),
        &["--max-connections", "1", "--header-timeout", "2"],
    );
    let addr: SocketAddr = server.addr().parse().expect("address");
    // The one connection allowed, idle: closed by the header timeout.
    let mut first = TcpStream::connect(addr).expect("connect");
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let opened = Instant::now();
    // A second client asks at once; it waits in the backlog until the first is closed.
    let second = std::thread::spawn(move || {
        let head = exchange(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: onshi\r\nConnection: close\r\n\r\n",
        );
        (head, Instant::now())
    });
    let mut buf = [0u8; 64];
    let closed = loop {
        match first.read(&mut buf) {
            Ok(0) | Err(_) => break Instant::now(),
            Ok(_) => {}
        }
    };
    let (head, answered) = second.join().expect("second client");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        closed - opened >= Duration::from_millis(1900),
        "the idle connection closed after {:?}",
        closed - opened
    );
    // Served after the first closed (a little slack for the two threads' clocks).
    assert!(
        answered + Duration::from_millis(100) >= closed,
        "answered {:?} before the first connection closed",
        closed - answered
    );
}

#[test]
fn a_path_that_does_not_decode_is_answered_with_the_json_error_body() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = serve(data.path(), &[]);
    let addr: SocketAddr = server.addr().parse().expect("address");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
        .write_all(
            format!(
                "GET /api/v1/admin/campaigns/%FF%FE HTTP/1.1\r\nHost: onshi\r\n\
                 Authorization: Bearer {OPERATOR_TOKEN}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"invalid_id\""), "{answer}");
}
