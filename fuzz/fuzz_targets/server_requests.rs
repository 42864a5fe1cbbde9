//! Every route that takes a body, a header, a path or a query from outside, on a real `onshi
//! serve` (SQLite, a simulated clock in the first night's window, one site with an enrolled
//! terminal, a signed release and an active campaign): whatever the bytes, the answer is never a
//! 5xx.
//!
//! The first byte picks the route (and its credential: none, the device's token, the operator's,
//! the operator's page session with its CSRF token put first in the form); the rest is the body —
//! for the artifact download, the `Range` header; for the campaign controls, the action in the
//! path; for the lists, the query string; for the path routes, a path segment. With
//! `ONSHI_FUZZ_ROUTE=N` every input goes to route N whole, so that libFuzzer's count is that
//! route's (`fuzz/run` runs each route so, a million inputs each).
//!
//! Requests go through the server's whole router — every layer the listener uses: the body
//! limits, the deadlines, the credentials, the CSRF check, the JSON errors — called in-process
//! with the client address a connection would give. With `ONSHI_FUZZ_TCP=1` they go instead
//! over a kept-alive loopback connection to the listening server, checking also that the
//! connection is never dropped without an answer (slower: the fuzzer waits on the socket).
#![no_main]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use onshi_testkit::{OPERATOR_TOKEN, TestApp, spawn_app_with_limits, terminal_campaign};
use tower::ServiceExt as _;

const CODE: &str = "0110113719";
const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所,clinic,北海道,site@example.invalid,
";
const PACKAGE: usize = 4096;
/// How many routes the first byte picks from (`ONSHI_FUZZ_ROUTE` is below it).
const ROUTES: u8 = 28;
/// The route that ends the operator's page session (which is then started again).
const LOGOUT: u8 = 19;

struct Server {
    runtime: tokio::runtime::Runtime,
    _app: TestApp,
    addr: SocketAddr,
    router: axum::Router,
    device: String,
    package: String,
    /// The operator's page session: `Cookie` header value and the CSRF token of its forms.
    session: Mutex<(String, String)>,
    conn: Mutex<Option<BufReader<TcpStream>>>,
    /// `ONSHI_FUZZ_ROUTE`: the one route every input goes to.
    route: Option<u8>,
    /// `ONSHI_FUZZ_TCP`: over the loopback connection rather than in-process.
    tcp: bool,
}

impl Server {
    fn session(&self) -> MutexGuard<'_, (String, String)> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request of the fuzzer: the `host` and `content-length` headers are added when sent.
struct Request {
    method: Method,
    /// Path and query.
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
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
        let route = std::env::var("ONSHI_FUZZ_ROUTE").ok().map(|r| {
            let r: u8 = r.parse().expect("ONSHI_FUZZ_ROUTE: a route number");
            assert!(r < ROUTES, "ONSHI_FUZZ_ROUTE: there are {ROUTES} routes");
            r
        });
        let tcp = std::env::var_os("ONSHI_FUZZ_TCP").is_some_and(|v| v == "1");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        // Logins as fast as the fuzzer tries them, so that they reach the form's parser.
        let limits = onshi_server::Limits {
            logins: onshi_server::limits::LoginRates {
                per_client_per_minute: NonZeroU32::MAX,
                per_door_per_second: NonZeroU32::MAX,
            },
            ..onshi_server::Limits::default()
        };
        let (app, device, package) = runtime.block_on(async {
            let app = spawn_app_with_limits("2026-01-19T21:00:00+09:00", limits).await;
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
        let router = onshi_server::router(app.state.clone(), &limits);
        Server {
            addr: app.addr,
            runtime,
            _app: app,
            router,
            device,
            package,
            session: Mutex::new(session),
            conn: Mutex::new(None),
            route,
            tcp,
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

/// Sends one request and answers the status, reading the whole answer.
fn send(s: &Server, r: &Request) -> u16 {
    if s.tcp {
        send_over_tcp(s, r)
    } else {
        send_in_process(s, r)
    }
}

/// Through the router, as the listener would pass the request on from a loopback client.
fn send_in_process(s: &Server, r: &Request) -> u16 {
    let mut builder = axum::http::Request::builder()
        .method(r.method.clone())
        .uri(&r.target)
        .header("host", "fuzz")
        .header("content-length", r.body.len());
    for (name, value) in &r.headers {
        builder = builder.header(*name, value);
    }
    let mut request = builder
        .body(Body::from(r.body.clone()))
        .expect("the fuzzer built a valid request");
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    request.extensions_mut().insert(ConnectInfo(client));
    s.runtime.block_on(async {
        let answer = s.router.clone().oneshot(request).await.expect("infallible");
        let status = answer.status().as_u16();
        // The whole answer, as a client reads it (a stream may still fail while it is sent).
        let _ = axum::body::to_bytes(answer.into_body(), usize::MAX).await;
        status
    })
}

/// Over the kept-alive loopback connection, reading the whole answer so that the connection can
/// carry the next.
fn send_over_tcp(s: &Server, r: &Request) -> u16 {
    let mut guard = s.conn.lock().unwrap_or_else(|e| e.into_inner());
    let mut head = format!("{} {} HTTP/1.1\r\nhost: fuzz\r\n", r.method, r.target);
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    for attempt in 0..2 {
        let conn = guard.get_or_insert_with(|| {
            BufReader::new(TcpStream::connect(s.addr).expect("the server accepts"))
        });
        let mut request = head.as_bytes().to_vec();
        request.extend_from_slice(format!("content-length: {}\r\n\r\n", r.body.len()).as_bytes());
        request.extend_from_slice(&r.body);
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

/// The request route `route` makes of `body`; `None` if the bytes cannot be one (a `Range`
/// value with control characters, which no HTTP client could send).
fn request(s: &Server, route: u8, body: &[u8]) -> Option<Request> {
    let device = ("authorization", format!("Bearer {}", s.device));
    let operator = ("authorization", format!("Bearer {OPERATOR_TOKEN}"));
    let json = ("content-type", "application/json".to_owned());
    let form = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let (cookie, csrf) = s.session().clone();
    let session = ("cookie", cookie);
    let post = |path: &str, headers: Vec<(&'static str, String)>| Request {
        method: Method::POST,
        target: path.to_owned(),
        headers,
        body: body.to_vec(),
    };
    let get = |target: String, headers: Vec<(&'static str, String)>| Request {
        method: Method::GET,
        target,
        headers,
        body: Vec::new(),
    };
    // An operator form: the session's CSRF token first, so the fuzzed fields reach the handler.
    let form_post = |path: &str| {
        let mut with_csrf = format!("csrf={csrf}&").into_bytes();
        with_csrf.extend_from_slice(body);
        Request {
            method: Method::POST,
            target: path.to_owned(),
            headers: vec![form.clone(), session.clone()],
            body: with_csrf,
        }
    };
    let admin = |path: &str| post(path, vec![json.clone(), operator.clone()]);
    Some(match route {
        0 => post("/api/v1/enroll", vec![json.clone()]),
        1 => post("/api/v1/checkin", vec![json.clone(), device.clone()]),
        2 => post("/api/v1/report", vec![json.clone(), device.clone()]),
        3 => post("/api/v1/readers", vec![json.clone(), device.clone()]),
        4 => post("/api/v1/qualification", vec![json.clone()]),
        5 => admin("/api/v1/admin/institutions"),
        6 => post(
            "/api/v1/admin/institutions/import",
            vec![("content-type", "text/csv".into()), operator.clone()],
        ),
        7 => admin("/api/v1/admin/campaigns"),
        8 => admin("/api/v1/admin/releases"),
        9 => admin("/api/v1/admin/trust/root"),
        10 => Request {
            method: Method::PUT,
            ..admin("/api/v1/admin/clock")
        },
        11 => post("/site/login", vec![form.clone()]),
        12 => post("/operator/login", vec![form.clone()]),
        13 => post("/reception/fuzz/event", vec![form.clone()]),
        14 => {
            // The body is the Range header's value, if it can be one.
            let range = std::str::from_utf8(body).ok()?;
            HeaderValue::from_str(range).ok()?;
            let path = format!("/api/v1/artifacts/{}", s.package);
            get(path, vec![device.clone(), ("range", range.to_owned())])
        }
        15 => Request {
            body: Vec::new(),
            ..post(
                &format!("/api/v1/admin/campaigns/2026-01/{}", segment(body)),
                vec![operator.clone()],
            )
        },
        16 => form_post("/operator/campaigns"),
        17 => form_post("/operator/campaigns/2026-01/control"),
        18 => form_post("/operator/campaigns/2026-01/rollback"),
        LOGOUT => form_post("/operator/logout"),
        20 => post("/site/sign-in", vec![form.clone()]),
        21 => post("/reception/fuzz/setup", vec![form.clone()]),
        22 => admin("/api/v1/admin/campaigns/2026-01/rollback"),
        23 => Request {
            method: Method::PUT,
            ..post(
                "/api/v1/admin/artifacts",
                vec![
                    ("content-type", "application/octet-stream".into()),
                    operator.clone(),
                ],
            )
        },
        24 => post(
            "/operator/releases",
            vec![
                (
                    "content-type",
                    "multipart/form-data; boundary=fuzz".to_owned(),
                ),
                session.clone(),
            ],
        ),
        25 => {
            // The body is a query string of one of the lists.
            let (&which, q) = body.split_first()?;
            let (path, credential) = match which % 4 {
                0 => ("/api/v1/admin/campaigns/2026-01/devices", operator.clone()),
                1 => ("/api/v1/admin/audit", operator.clone()),
                2 => ("/operator/campaigns/2026-01/sites", session.clone()),
                _ => ("/operator/campaigns/2026-01/sites.csv", session.clone()),
            };
            get(format!("{path}?{}", query(q)), vec![credential])
        }
        26 => {
            // The body is a path segment of a device's read.
            let (&which, rest) = body.split_first()?;
            let seg = segment(rest);
            let path = match which % 6 {
                0 => format!("/api/v1/trust/root/{seg}"),
                1 => format!("/api/v1/trust/snapshot/{seg}"),
                2 => format!("/api/v1/releases/{seg}/manifest"),
                3 => format!("/api/v1/artifacts/{seg}"),
                4 => format!("/api/v1/institutions/{seg}/devices"),
                _ => format!("/api/v1/institutions/{seg}/notices"),
            };
            get(path, vec![device.clone()])
        }
        _ => {
            // The body is a path segment (or a query) of the operator's API and pages.
            let (&which, rest) = body.split_first()?;
            let seg = segment(rest);
            let operator = vec![operator.clone()];
            let path = |p: String| Request {
                body: Vec::new(),
                ..post(&p, operator.clone())
            };
            match which % 8 {
                0 => path(format!("/api/v1/admin/institutions/{seg}/access-key")),
                1 => path(format!(
                    "/api/v1/admin/institutions/{CODE}/enrollment-key?{}",
                    query(rest)
                )),
                2 => path(format!("/api/v1/admin/devices/{seg}/revoke")),
                3 => get(format!("/api/v1/admin/releases/{seg}"), operator),
                4 => get(format!("/api/v1/admin/campaigns/{seg}"), operator),
                5 => get(format!("/api/v1/admin/campaigns/{seg}/progress"), operator),
                6 => get(format!("/operator/campaigns/{seg}"), vec![session.clone()]),
                _ => Request {
                    body: format!("csrf={csrf}").into_bytes(),
                    ..form_post(&format!("/operator/devices/{seg}/revoke"))
                },
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = server();
    let (route, body) = match s.route {
        Some(route) => (route, data),
        None => match data.split_first() {
            Some((&first, rest)) => (first % ROUTES, rest),
            None => return,
        },
    };
    let Some(request) = request(s, route, body) else {
        return;
    };
    let status = send(s, &request);
    assert!(
        status < 500,
        "{status} for {} {} with {:?}",
        request.method,
        request.target,
        String::from_utf8_lossy(&request.body)
    );
    if route == LOGOUT && status < 400 {
        // Logged out: a new session for the next operator forms.
        *s.session() = operator_session(s.addr);
    }
});
