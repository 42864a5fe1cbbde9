//! A tampering HTTP proxy between an agent and the real server: the network path (or a
//! malicious mirror) as an attacker would hold it. Every request is forwarded; a test replaces
//! the answers of chosen paths — with recorded older answers (replay, freeze), forged bytes, or
//! an answer that never ends — and the agent must refuse what it is shown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;

/// A change made to an answer's body.
pub type Rewrite = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What the proxy answers instead of the server's answer.
pub enum Tamper {
    /// These bytes, with status 200, whatever the server said.
    Body(Vec<u8>),
    /// The server's answer, changed by the function.
    Map(Rewrite),
    /// 200 with a body that never ends (no length announced).
    Endless,
}

#[derive(Default)]
struct Rules {
    /// By path prefix; the longest matching prefix wins.
    tamper: Vec<(String, Arc<Tamper>)>,
    /// The server's last answer body by path (what a replay sends later).
    recorded: HashMap<String, Vec<u8>>,
}

/// The proxy, listening on a loopback port until dropped (its task ends with the runtime).
pub struct TamperProxy {
    base: String,
    rules: Arc<Mutex<Rules>>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    rules: Arc<Mutex<Rules>>,
}

impl TamperProxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let rules = Arc::new(Mutex::new(Rules::default()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            rules: rules.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, rules }
    }

    /// The proxy's address, as an agent is told to reach "the server".
    pub fn url(&self) -> &str {
        &self.base
    }

    /// From now on, answers of paths starting with `prefix` are tampered with.
    pub fn on(&self, prefix: &str, tamper: Tamper) {
        let mut rules = self.rules.lock().expect("rules");
        rules.tamper.retain(|(p, _)| p != prefix);
        rules.tamper.push((prefix.to_owned(), Arc::new(tamper)));
    }

    /// Forwards everything untouched again.
    pub fn clear(&self) {
        self.rules.lock().expect("rules").tamper.clear();
    }

    /// The server's last answer to a path starting with `prefix` that went through the proxy.
    pub fn recorded(&self, prefix: &str) -> Option<Vec<u8>> {
        let rules = self.rules.lock().expect("rules");
        rules
            .recorded
            .iter()
            .find(|(path, _)| path.starts_with(prefix))
            .map(|(_, body)| body.clone())
    }
}

const HOP_BY_HOP: [HeaderName; 4] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let target = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = axum::body::to_bytes(body, 1 << 26)
        .await
        .unwrap_or_default();
    let mut headers = parts.headers.clone();
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
    let answer = shared
        .http
        .request(parts.method.clone(), &target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = answer else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let code = answer.status();
    let mut headers: HeaderMap = answer.headers().clone();
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    let tamper = {
        let mut rules = shared.rules.lock().expect("rules");
        if code.is_success() {
            rules.recorded.insert(path.clone(), bytes.to_vec());
        }
        rules
            .tamper
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, t)| t.clone())
    };
    let (code, body) = match tamper.as_deref() {
        None => (code, Body::from(bytes)),
        Some(Tamper::Body(b)) => (StatusCode::OK, Body::from(b.clone())),
        Some(Tamper::Map(f)) => (code, Body::from(f(&bytes))),
        Some(Tamper::Endless) => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let endless =
                futures_lite::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            (StatusCode::OK, Body::from_stream(endless))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = code;
    *response.headers_mut() = headers;
    response
}

fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}
