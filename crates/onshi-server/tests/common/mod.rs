//! The one way tests start the server: the real router on a random loopback port, a temp DATA
//! directory, and a simulated clock the test moves with `PUT /api/v1/admin/clock`.
//!
//! The store is SQLite in DATA, or, when `ONSHI_TEST_DATABASE` is set (`postgres`, or the URL of
//! a PostgreSQL database), a fresh PostgreSQL schema per app: `.ci/run` runs every server test
//! both ways. [`spawn_replicas`] starts several servers on one PostgreSQL schema and one DATA.

#![allow(dead_code)]

pub mod browser;
pub mod smtp;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use onshi_clock::Clock;
use onshi_store::testing::{TestSchema, test_url};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub data: Arc<tempfile::TempDir>,
    /// The PostgreSQL schema the app uses (`None`: SQLite in DATA).
    pub schema: Option<Arc<TestSchema>>,
    pub state: onshi_server::AppState,
}

/// The PostgreSQL database `ONSHI_TEST_DATABASE` asks for, if any.
pub fn test_database() -> Option<String> {
    match std::env::var("ONSHI_TEST_DATABASE").ok()?.as_str() {
        "" | "sqlite" => None,
        "postgres" => Some(test_url()),
        url => Some(url.to_owned()),
    }
}

/// A fresh schema in the PostgreSQL test database.
pub fn test_schema(base_url: &str) -> Arc<TestSchema> {
    Arc::new(TestSchema::create_in(base_url).unwrap_or_else(|e| panic!("{e}")))
}

/// Starts a server whose simulated clock stands at `start` (it runs at real speed from there;
/// tests set it explicitly before every time-dependent step).
pub async fn spawn_app(start: &str) -> TestApp {
    spawn_app_with_smtp(start, None).await
}

/// [`spawn_app`] with notice mails sent to an SMTP server (`smtp://HOST:PORT`).
pub async fn spawn_app_with_smtp(start: &str, smtp: Option<String>) -> TestApp {
    let data = Arc::new(tempfile::tempdir().expect("temp dir"));
    let schema = test_database().map(|url| test_schema(&url));
    let url = schema.as_ref().map(|s| s.url.clone());
    spawn_full(start, data, schema, url, smtp).await
}

/// Starts `n` servers (replicas) sharing one fresh PostgreSQL schema and one DATA directory,
/// as `deploy/README.md` runs them.
pub async fn spawn_replicas(start: &str, n: usize) -> Vec<TestApp> {
    let data = Arc::new(tempfile::tempdir().expect("temp dir"));
    let schema = test_schema(&test_database().unwrap_or_else(test_url));
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(spawn_on(start, data.clone(), Some(schema.clone())).await);
    }
    apps
}

/// Starts a server on `data` and, if given, the PostgreSQL `schema`.
pub async fn spawn_on(
    start: &str,
    data: Arc<tempfile::TempDir>,
    schema: Option<Arc<TestSchema>>,
) -> TestApp {
    let url = schema.as_ref().map(|s| s.url.clone());
    spawn_with_url(start, data, schema, url).await
}

/// Starts a server on `data` that reaches `schema` through `url` (a proxy in front of it, say).
pub async fn spawn_with_url(
    start: &str,
    data: Arc<tempfile::TempDir>,
    schema: Option<Arc<TestSchema>>,
    url: Option<String>,
) -> TestApp {
    spawn_full(start, data, schema, url, None).await
}

/// The one place a test server starts.
pub async fn spawn_full(
    start: &str,
    data: Arc<tempfile::TempDir>,
    schema: Option<Arc<TestSchema>>,
    url: Option<String>,
    smtp: Option<String>,
) -> TestApp {
    let clock = Clock::simulated(start.parse().expect("instant"), 1.0).expect("clock");
    let running = onshi_server::start(onshi_server::Config {
        data_dir: data.path().to_path_buf(),
        database: url,
        listen: "127.0.0.1:0".parse().expect("addr"),
        clock,
        signing_key: None,
        operator_token: Some(OPERATOR_TOKEN.to_owned()),
        qualification_public: false,
        smtp,
        mail_from: None,
    })
    .await
    .expect("server starts");
    let addr = running.addr;
    let state = running.state.clone();
    tokio::spawn(running.wait());
    TestApp {
        addr,
        client: Client::new(),
        data,
        schema,
        state,
    }
}

impl TestApp {
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(OPERATOR_TOKEN)
    }

    pub fn as_device(&self, method: reqwest::Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn set_clock(&self, at: &str) {
        let r = self
            .admin(reqwest::Method::PUT, "/api/v1/admin/clock")
            .json(&json!({ "now": at }))
            .send()
            .await
            .expect("clock request");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    /// Sends, asserts the status, returns the JSON body.
    pub async fn expect(&self, req: RequestBuilder, status: u16) -> Value {
        let r: Response = req.send().await.expect("request");
        let got = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(got, status, "body: {text}");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// On `app`: the institutions of `csv`, one terminal package of `package_len` bytes, release
/// `release` (version 2.0.0) and the 2026-01 campaign as a draft with the given throttle.
pub async fn terminal_campaign(
    app: &TestApp,
    csv: String,
    package_len: usize,
    release: &str,
    max_downloads: u32,
    poll_interval_seconds: u64,
) {
    app.expect(
        app.admin(reqwest::Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body(csv),
        201,
    )
    .await;
    let sha = app
        .expect(
            app.admin(reqwest::Method::PUT, "/api/v1/admin/artifacts")
                .body(vec![7u8; package_len]),
            201,
        )
        .await["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned();
    app.expect(
        app.admin(reqwest::Method::POST, "/api/v1/admin/releases")
            .json(&json!({
                "id": release, "version": "2.0.0",
                "components": [{"target": "terminal", "sha256": sha}]
            })),
        201,
    )
    .await;
    app.expect(
        app.admin(reqwest::Method::POST, "/api/v1/admin/campaigns")
            .json(&json!({
                "schedule": "preset:2026-01", "release_id": release,
                "throttle": {
                    "max_concurrent_downloads": max_downloads,
                    "poll_interval_seconds": poll_interval_seconds,
                }
            })),
        201,
    )
    .await;
}
