//! The device API as the agent speaks it: the requests and answers are `onshi-api`'s types,
//! the same ones the server uses, so the two cannot drift apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use onshi_api::device::{
    CheckinRequest, CheckinResponse, EnrollRequest, Enrolled, MAX_METADATA_BYTES, ReaderRequest,
    ReportRequest, ReportResponse,
};
use onshi_api::{ErrorBody, ErrorCode};
use onshi_core::release::Sha256;
use onshi_core::trust::Signed;
use onshi_core::vendor::Vendor;
use onshi_core::version::Version;
use reqwest::StatusCode;

/// A failed exchange with the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: connection refused, cut, timed out. The agent backs off and retries.
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("the server answered {status} {}: {message}", code.map_or("(no code)", ErrorCode::as_str))]
    Api {
        status: u16,
        /// `None` when the answer was not an error body of the API (a proxy's page, say).
        code: Option<ErrorCode>,
        message: String,
    },
    /// The answer is not what the device API promises.
    #[error("unexpected answer from {url}: {why}")]
    Protocol { url: String, why: String },
    /// A server address the agent will not speak to: plain `http://` to another machine, where
    /// anyone on the path could read the token and forge the answers (a `server_time` that
    /// restarts the terminal during reception hours, say).
    #[error(
        "refusing {url}: the server must be https:// (plain http:// only to this machine, \
         127.0.0.1, ::1 or localhost)"
    )]
    Insecure { url: String },
}

impl ClientError {
    /// The server's error code, if it answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether the server was not reached (as opposed to refusing).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// `https://` to any server, `http://` only to this machine (loopback): every other hop is TLS
/// (DESIGN.md §7).
pub fn check_secure(base: &str) -> Result<()> {
    let insecure = || ClientError::Insecure {
        url: base.to_owned(),
    };
    let url = reqwest::Url::parse(base).map_err(|e| ClientError::Protocol {
        url: base.to_owned(),
        why: format!("not a URL: {e}"),
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback { Ok(()) } else { Err(insecure()) }
        }
        _ => Err(insecure()),
    }
}

/// Redirects are followed only where [`check_secure`] would let the agent go itself: a
/// redirect from an `https://` server to `http://` elsewhere (a forged or misconfigured answer)
/// is not followed, so the device token never travels in clear text. At most 5 hops.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if check_secure(attempt.url().as_str()).is_err() {
            attempt.error("a redirect to plain http:// off this machine")
        } else {
            attempt.follow()
        }
    })
}

/// Counts of a client's requests and their latency, for load tests (`onshi simulate --against`).
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    /// Check-ins among the requests.
    pub checkins: AtomicU64,
    /// Requests that got no answer or an error status.
    pub errors: AtomicU64,
    /// Latency histogram: bucket `i` counts answers within `2^i` µs (the last bucket: longer).
    buckets: [AtomicU64; 24],
}

impl Metrics {
    fn record(&self, took: Duration, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = took.as_micros().max(1);
        let i = (128 - micros.leading_zeros() as usize).min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The latency under which `q` (0..=1) of the answers came, to a power of two.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let want = (total as f64 * q.clamp(0.0, 1.0)).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return Duration::from_micros(1u64 << i);
            }
        }
        Duration::ZERO
    }
}

/// One server's device API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    metrics: Option<Arc<Metrics>>,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`). Connections that stall
    /// for a minute are given up, so a cut link is noticed and the download resumed.
    pub fn new(base: &str) -> Result<Self> {
        check_secure(base)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            // The server closes a connection idle for its header timeout (10 s by default): let
            // go of idle connections first, so no request goes out on one it is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .user_agent(concat!("onshi-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy())
            .build()
            .map_err(|e| ClientError::Protocol {
                url: base.to_owned(),
                why: e.to_string(),
            })?;
        Ok(Self::with_http(http, base))
    }

    /// Shares one connection pool between many agents (the demo and the load mode).
    pub fn with_http(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            metrics: None,
        }
    }

    /// Counts every request into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn note(&self, started: Instant, ok: bool) {
        if let Some(m) = &self.metrics {
            m.record(started.elapsed(), ok);
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T> {
        self.send_expecting(req, url, None).await
    }

    /// [`Self::send`], counting `expected` (an answer that is part of the protocol, such as
    /// the 404 that ends the chain of roots) as a success in the metrics.
    async fn send_expecting<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
        expected: Option<StatusCode>,
    ) -> Result<T> {
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .inspect_err(|_| self.note(started, false))
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        self.note(
            started,
            resp.status().is_success() || Some(resp.status()) == expected,
        );
        let status = resp.status();
        let body = read_limited(resp, &url).await?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url,
            why: e.to_string(),
        })
    }

    /// `GET /api/v1/trust/root/{version}`: `None` when the server has no such version (the
    /// chain ends there).
    pub async fn root(&self, token: Option<&str>, version: u64) -> Result<Option<Signed>> {
        let url = self.url(&format!("/api/v1/trust/root/{version}"));
        let mut req = self.http.get(&url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        match self
            .send_expecting(req, url, Some(StatusCode::NOT_FOUND))
            .await
        {
            Ok(root) => Ok(Some(root)),
            Err(ClientError::Api {
                status: 404,
                code: Some(ErrorCode::NotFound),
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/trust/root`: the server's newest root.
    pub async fn newest_root(&self) -> Result<Signed> {
        let url = self.url("/api/v1/trust/root");
        let req = self.http.get(&url);
        self.send(req, url).await
    }

    /// `POST /api/v1/enroll`.
    pub async fn enroll(&self, institution: &str, key: &str, serial: &str) -> Result<Enrolled> {
        let url = self.url("/api/v1/enroll");
        let req = self.http.post(&url).json(&EnrollRequest {
            institution_code: institution.to_owned(),
            enrollment_key: key.to_owned(),
            serial: serial.to_owned(),
        });
        self.send(req, url).await
    }

    /// `POST /api/v1/readers`, as the terminal.
    pub async fn enroll_reader(
        &self,
        terminal_token: &str,
        vendor: Vendor,
        serial: &str,
    ) -> Result<Enrolled> {
        let url = self.url("/api/v1/readers");
        let req = self
            .http
            .post(&url)
            .bearer_auth(terminal_token)
            .json(&ReaderRequest {
                vendor,
                serial: serial.to_owned(),
            });
        self.send(req, url).await
    }

    /// `POST /api/v1/checkin`.
    pub async fn checkin(
        &self,
        token: &str,
        installed: &Version,
        running: &Version,
    ) -> Result<CheckinResponse> {
        let url = self.url("/api/v1/checkin");
        if let Some(m) = &self.metrics {
            m.checkins.fetch_add(1, Ordering::Relaxed);
        }
        let req = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&CheckinRequest {
                installed: Some(installed.clone()),
                running: Some(running.clone()),
            });
        self.send(req, url).await
    }

    /// `POST /api/v1/report`.
    pub async fn report(&self, token: &str, report: &ReportRequest) -> Result<ReportResponse> {
        let url = self.url("/api/v1/report");
        let req = self.http.post(&url).bearer_auth(token).json(report);
        self.send(req, url).await
    }

    /// `GET /api/v1/trust/timestamp`: the server's timestamp (TUF 5.4).
    pub async fn timestamp(&self, token: &str) -> Result<Signed> {
        let url = self.url("/api/v1/trust/timestamp");
        let req = self.http.get(&url).bearer_auth(token);
        self.send(req, url).await
    }

    /// `GET /api/v1/trust/snapshot/{version}`: the snapshot a timestamp named (TUF 5.5).
    pub async fn snapshot(&self, token: &str, version: u64) -> Result<Signed> {
        let url = self.url(&format!("/api/v1/trust/snapshot/{version}"));
        let req = self.http.get(&url).bearer_auth(token);
        self.send(req, url).await
    }

    /// `GET /api/v1/releases/{id}/manifest`: the release's targets metadata (TUF 5.6).
    pub async fn manifest(&self, token: &str, release_id: &str) -> Result<Signed> {
        let url = self.url(&format!("/api/v1/releases/{release_id}/manifest"));
        let req = self.http.get(&url).bearer_auth(token);
        self.send(req, url).await
    }

    /// Starts downloading `path` from byte `offset`. Answers the response once its status is
    /// known: 200 (whole file), 206 (from `offset`), or an error. A 416 at a non-zero offset
    /// means the partial file is already complete, or longer than the package.
    pub async fn download(
        &self,
        token: &str,
        path: &str,
        offset: u64,
        etag: Sha256,
    ) -> Result<reqwest::Response> {
        let url = self.url(path);
        let mut req = self.http.get(&url).bearer_auth(token);
        if offset > 0 {
            req = req
                .header(reqwest::header::RANGE, format!("bytes={offset}-"))
                .header(reqwest::header::IF_RANGE, format!("\"{etag}\""));
        }
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .inspect_err(|_| self.note(started, false))
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        self.note(started, status.is_success());
        if status.is_success() {
            return Ok(resp);
        }
        let body = read_limited(resp, &url).await.unwrap_or_default();
        Err(api_error(status, &body))
    }
}

/// Reads an answer's body, at most [`MAX_METADATA_BYTES`]: a longer one (announced or sent) is
/// refused before it is buffered (TUF's endless-data attack).
async fn read_limited(mut resp: reqwest::Response, url: &str) -> Result<Vec<u8>> {
    let too_long = || ClientError::Protocol {
        url: url.to_owned(),
        why: format!("the answer is longer than {MAX_METADATA_BYTES} bytes; refused"),
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_METADATA_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: url.to_owned(),
            source,
        })?
    {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: Some(e.code),
            message: e.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: None,
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_except_to_this_machine() {
        for ok in [
            "https://onshi.example.jp",
            "https://203.0.113.7:8443/",
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://[::1]:8080/",
            "http://localhost:8080",
        ] {
            assert!(check_secure(ok).is_ok(), "{ok}");
            assert!(Client::new(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://onshi.example.jp",
            "http://203.0.113.7:8080",
            "http://[2001:db8::1]/",
            "http://localhost.example.jp",
            "ftp://127.0.0.1/",
        ] {
            assert!(
                matches!(Client::new(refused), Err(ClientError::Insecure { .. })),
                "{refused}"
            );
        }
        assert!(matches!(
            Client::new("not a url"),
            Err(ClientError::Protocol { .. })
        ));
    }

    #[test]
    fn a_redirect_to_plain_http_elsewhere_is_not_followed() {
        use std::io::{Read as _, Write as _};
        // A server on this machine that sends every request to plain HTTP on another host.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("a request");
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://onshi.example.jp/api/v1/trust/root\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = Client::new(&base).expect("a loopback client");
        let answer = runtime.block_on(client.newest_root());
        server.join().expect("server");
        let err = answer.expect_err("the redirect was followed");
        assert!(
            format!("{err:?}").contains("plain http://"),
            "not refused by the redirect policy: {err:?}"
        );
    }
}
