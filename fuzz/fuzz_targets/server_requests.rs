//! Every route that takes a body or a header from outside, on a real `onshi serve` (SQLite, a
//! simulated clock in the first night's window, one site with an enrolled terminal, a signed
//! release and an active campaign), over a kept-alive loopback connection: whatever the bytes,
//! the answer is never a 5xx and the connection is never dropped without one.
//!
//! The first byte picks the route (and its credential: none, the device's token, the
//! operator's, the operator's page session with its CSRF token put first in the form); the rest
//! is the body — for the artifact download, the `Range` header; for the campaign controls, the
//! action in the path; for the lists, the query string.
#![no_main]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use onshi_testkit::{OPERATOR_TOKEN, TestApp, spawn_app, terminal_campaign};

const CODE: &str = "0110113719";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所,clinic,北海道,site@example.invalid,
";
const PACKAGE: usize = 4096;

struct Server {
    _runtime: tokio::runtime::Runtime,
    _app: TestApp,
    addr: SocketAddr,
    device: String,
    package: String,
    /// The operator's page session: `Cookie` header value and the CSRF token of its forms.
    session: (String, String),
    conn: Mutex<Option<BufReader<TcpStream>>>,
}

/// Logs in on the operator's page at `addr`; answers the cookie and the CSRF token of its forms.
fn operator_session(addr: SocketAddr) -> (String, String) {
    let exchange = |request: String| {
        let mut stream = TcpStream::connect(addr).expect("the server accepts");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let form = format!("token={OPERATOR_TOKEN}");
    let login = exchange(format!(
        "POST /operator/login HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    ));
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = exchange(format!(
        "GET /operator HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\ncookie: {cookie}\r\n\r\n"
    ));
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_owned();
    (cookie, csrf)
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let (app, device, package) = runtime.block_on(async {
            let app = spawn_app("2026-01-19T21:00:00+09:00").await;
            terminal_campaign(&app, SITES_CSV.to_owned(), PACKAGE, "r1", 10, 600).await;
            let device = app.enroll(CODE, "fuzz-terminal").await;
            app.expect(
                app.control(
                    onshi_testkit::CAMPAIGN,
                    onshi_core::offer::CampaignAction::Activate,
                ),
                200,
            )
            .await;
            let package = onshi_core::release::Sha256::of(&vec![7u8; PACKAGE]).to_string();
            (app, device, package)
        });
        let session = operator_session(app.addr);
        Server {
            addr: app.addr,
            _runtime: runtime,
            _app: app,
            device,
            package,
            session,
            conn: Mutex::new(None),
        }
    })
}

/// Percent-encodes bytes for a path segment.
fn segment(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (*b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-encodes bytes for a query string, keeping its `=` and `&`.
fn query(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'=' | b'&' => {
                (*b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one request and answers the status, reading the whole answer so the connection can
/// carry the next.
fn send(s: &Server, head: &str, body: &[u8]) -> u16 {
    let mut guard = s.conn.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0..2 {
        let conn = guard.get_or_insert_with(|| {
            BufReader::new(TcpStream::connect(s.addr).expect("the server accepts"))
        });
        let mut request = head.as_bytes().to_vec();
        request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        if conn.get_mut().write_all(&request).is_ok()
            && let Some(status) = read_answer(conn)
        {
            return status;
        }
        // The server closed a connection it had kept (idle timeout): once more on a new one.
        *guard = None;
        assert_eq!(
            attempt, 0,
            "the server dropped the connection without an answer: {head}"
        );
    }
    unreachable!()
}

/// Reads one HTTP/1.1 answer; `None` if the connection ended first.
fn read_answer(conn: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    conn.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        conn.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value == "close",
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).ok().filter(|&n| n > 0)?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        let mut rest = vec![0; n];
        conn.read_exact(&mut rest).ok()?;
    }
    if close {
        // The answer came; the next request needs a new connection.
        let _ = conn.get_mut().shutdown(std::net::Shutdown::Both);
        return Some(status);
    }
    Some(status)
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let s = server();
    let device = format!("authorization: Bearer {}\r\n", s.device);
    let operator = format!("authorization: Bearer {OPERATOR_TOKEN}\r\n");
    let json = "content-type: application/json\r\n";
    let form = "content-type: application/x-www-form-urlencoded\r\n";
    let (cookie, csrf) = &s.session;
    let session = format!("cookie: {cookie}\r\n");
    // An operator form: the session's CSRF token first, so the fuzzed fields reach the handler.
    let with_csrf = |body: &[u8]| {
        let mut form = format!("csrf={csrf}&").into_bytes();
        form.extend_from_slice(body);
        form
    };
    let form_post = |path: &str, body: &[u8]| {
        let head = format!("POST {path} HTTP/1.1\r\nhost: fuzz\r\n{form}{session}");
        let status = send(s, &head, &with_csrf(body));
        assert!(
            status < 500,
            "{status} for POST {path} with {:?}",
            String::from_utf8_lossy(body)
        );
    };
    let (method, path, headers): (&str, String, String) = match route % 26 {
        0 => ("POST", "/api/v1/enroll".into(), json.into()),
        1 => ("POST", "/api/v1/checkin".into(), format!("{json}{device}")),
        2 => ("POST", "/api/v1/report".into(), format!("{json}{device}")),
        3 => ("POST", "/api/v1/readers".into(), format!("{json}{device}")),
        4 => ("POST", "/api/v1/qualification".into(), json.into()),
        5 => (
            "POST",
            "/api/v1/admin/institutions".into(),
            format!("{json}{operator}"),
        ),
        6 => (
            "POST",
            "/api/v1/admin/institutions/import".into(),
            format!("content-type: text/csv\r\n{operator}"),
        ),
        7 => (
            "POST",
            "/api/v1/admin/campaigns".into(),
            format!("{json}{operator}"),
        ),
        8 => (
            "POST",
            "/api/v1/admin/releases".into(),
            format!("{json}{operator}"),
        ),
        9 => (
            "POST",
            "/api/v1/admin/trust/root".into(),
            format!("{json}{operator}"),
        ),
        10 => (
            "PUT",
            "/api/v1/admin/clock".into(),
            format!("{json}{operator}"),
        ),
        11 => ("POST", "/site/login".into(), form.into()),
        12 => ("POST", "/operator/login".into(), form.into()),
        13 => ("POST", "/reception/fuzz/event".into(), form.into()),
        14 => {
            // The body is the Range header's value, if it can be one.
            let Ok(range) = std::str::from_utf8(body) else {
                return;
            };
            if range.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return;
            }
            let head = format!(
                "GET /api/v1/artifacts/{} HTTP/1.1\r\nhost: fuzz\r\n{device}range: {range}\r\n",
                s.package
            );
            let status = send(s, &head, b"");
            assert!(status < 500, "{status} for Range {range:?}");
            return;
        }
        16 => return form_post("/operator/campaigns", body),
        17 => return form_post("/operator/campaigns/2026-01/control", body),
        18 => return form_post("/operator/campaigns/2026-01/rollback", body),
        19 => return form_post("/operator/logout", body),
        20 => ("POST", "/site/sign-in".into(), form.into()),
        21 => ("POST", "/reception/fuzz/setup".into(), form.into()),
        22 => (
            "POST",
            "/api/v1/admin/campaigns/2026-01/rollback".into(),
            format!("{json}{operator}"),
        ),
        23 => (
            "PUT",
            "/api/v1/admin/artifacts".into(),
            format!("content-type: application/octet-stream\r\n{operator}"),
        ),
        24 => (
            "POST",
            "/operator/releases".into(),
            format!("content-type: multipart/form-data; boundary=fuzz\r\n{session}"),
        ),
        25 => {
            // The body is a query string of one of the lists.
            let Some((&which, q)) = body.split_first() else {
                return;
            };
            let (path, credential) = match which % 4 {
                0 => ("/api/v1/admin/campaigns/2026-01/devices", operator.as_str()),
                1 => ("/api/v1/admin/audit", operator.as_str()),
                2 => ("/operator/campaigns/2026-01/sites", session.as_str()),
                _ => ("/operator/campaigns/2026-01/sites.csv", session.as_str()),
            };
            let head = format!(
                "GET {path}?{} HTTP/1.1\r\nhost: fuzz\r\n{credential}",
                query(q)
            );
            let status = send(s, &head, b"");
            assert!(
                status < 500,
                "{status} for {path}?{:?}",
                String::from_utf8_lossy(q)
            );
            return;
        }
        _ => {
            let head = format!(
                "POST /api/v1/admin/campaigns/2026-01/{} HTTP/1.1\r\nhost: fuzz\r\n{operator}",
                segment(body)
            );
            let status = send(s, &head, b"");
            assert!(status < 500, "{status} for action {body:?}");
            return;
        }
    };
    let head = format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\n{headers}");
    let status = send(s, &head, body);
    assert!(
        status < 500,
        "{status} for {method} {path} with {:?}",
        String::from_utf8_lossy(body)
    );
});
