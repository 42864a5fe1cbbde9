//! The one way tests start the server in-process: the real router on a random loopback port, a
//! temp DATA directory, and a simulated clock the test moves with `PUT /api/v1/admin/clock`.
//!
//! The store is SQLite in DATA, or, when `ONSHI_TEST_DATABASE` is set (`postgres`, or the URL of
//! a PostgreSQL database), a fresh PostgreSQL schema per app: `.ci/run` runs the server, CLI and
//! agent tests both ways. [`spawn_replicas`] starts several servers on one schema and one DATA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use onshi_api::admin::{DeploymentListing, EnrollmentKey, MailSummary, Uploaded, control_path};
use onshi_api::device::{
    CheckinRequest, CheckinResponse, EnrollRequest, Enrolled, ReportRequest, ReportResponse,
};
use onshi_api::{ErrorBody, ErrorCode};
use onshi_clock::Clock;
use onshi_core::deployment::{DeploymentEvent, DeploymentState};
use onshi_core::offer::CampaignAction;
use onshi_core::release::{Sha256, Target};
use onshi_core::version::Version;
use onshi_store::testing::{TestSchema, test_url};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::wait::wait_until;

/// The campaign of the 2026-01 preset, which every fixture creates.
pub const CAMPAIGN: &str = "2026-01";

/// The operator token of every test server, in-process or the binary.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789abcdef";

/// A server's HTTP API as a test calls it: the base URL and one client; the operator's requests
/// carry [`OPERATOR_TOKEN`]. The in-process server ([`TestApp`], through `Deref`) and the
/// `onshi serve` binary ([`crate::serve::Serve::api`]) both offer it.
#[derive(Clone)]
pub struct Api {
    /// `http://ADDR`.
    pub base: String,
    pub client: Client,
}

/// A server started in-process, and its [`Api`].
pub struct TestApp {
    pub api: Api,
    pub addr: SocketAddr,
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

/// A new DATA directory, and a fresh PostgreSQL schema and its URL when the tests run on
/// PostgreSQL (`ONSHI_TEST_DATABASE`); else the server's SQLite file in DATA.
fn fresh_database() -> (
    Arc<tempfile::TempDir>,
    Option<Arc<TestSchema>>,
    Option<String>,
) {
    let data = Arc::new(tempfile::tempdir().expect("temp dir"));
    let schema = test_database().map(|url| test_schema(&url));
    let url = schema.as_ref().map(|s| s.url.clone());
    (data, schema, url)
}

/// [`spawn_app`] with notice mails sent to an SMTP server (`smtp://HOST:PORT`).
pub async fn spawn_app_with_smtp(start: &str, smtp: Option<String>) -> TestApp {
    let (data, schema, url) = fresh_database();
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

/// [`spawn_app`] answering authorised downloads with `X-Accel-Redirect: PREFIX…` (as
/// `onshi serve --accel-redirect PREFIX` behind nginx).
pub async fn spawn_app_with_accel_redirect(start: &str, prefix: &str) -> TestApp {
    let (data, schema, url) = fresh_database();
    spawn_configured(start, data, schema, url, None, Some(prefix.to_owned())).await
}

/// [`spawn_configured`] without `--accel-redirect`.
pub async fn spawn_full(
    start: &str,
    data: Arc<tempfile::TempDir>,
    schema: Option<Arc<TestSchema>>,
    url: Option<String>,
    smtp: Option<String>,
) -> TestApp {
    spawn_configured(
        start,
        data,
        schema,
        url,
        smtp.map(onshi_server::notices::Relay::new),
        None,
    )
    .await
}

/// [`spawn_app`] with notice mails sent through `relay` (TLS, credentials, a CA to trust).
pub async fn spawn_app_with_relay(start: &str, relay: onshi_server::notices::Relay) -> TestApp {
    let (data, schema, url) = fresh_database();
    spawn_configured(start, data, schema, url, Some(relay), None).await
}

/// [`spawn_app`] with other limits than the server's defaults (the fuzz target raises the
/// login rates so that its logins reach the form's parser).
pub async fn spawn_app_with_limits(start: &str, limits: onshi_server::Limits) -> TestApp {
    let (data, schema, url) = fresh_database();
    spawn_limited(start, data, schema, url, None, None, limits).await
}

/// [`spawn_limited`] with the server's default limits.
pub async fn spawn_configured(
    start: &str,
    data: Arc<tempfile::TempDir>,
    schema: Option<Arc<TestSchema>>,
    url: Option<String>,
    smtp: Option<onshi_server::notices::Relay>,
    accel_redirect: Option<String>,
) -> TestApp {
    let limits = onshi_server::Limits::default();
    spawn_limited(start, data, schema, url, smtp, accel_redirect, limits).await
}

/// The one place a test server starts.
async fn spawn_limited(
    start: &str,
    data: Arc<tempfile::TempDir>,
    schema: Option<Arc<TestSchema>>,
    url: Option<String>,
    smtp: Option<onshi_server::notices::Relay>,
    accel_redirect: Option<String>,
    limits: onshi_server::Limits,
) -> TestApp {
    let clock = Clock::simulated(start.parse().expect("instant"), 1.0).expect("clock");
    let root = crate::keys::TestKeys::install(data.path());
    let running = onshi_server::start(onshi_server::Config {
        data_dir: data.path().to_path_buf(),
        database: url,
        listen: "127.0.0.1:0".parse().expect("addr"),
        clock,
        timestamp_key: None,
        snapshot_key: None,
        trust_root: Some(root),
        operator_token: Some(OPERATOR_TOKEN.to_owned()),
        qualification_public: false,
        smtp,
        mail_from: None,
        accel_redirect,
        limits,
        tls: None,
        trusted_proxies: Vec::new(),
        metrics_listen: None,
        public_url: None,
    })
    .await
    .expect("server starts");
    let addr = running.addr;
    let state = running.state.clone();
    tokio::spawn(running.wait());
    TestApp {
        api: Api::new(&format!("http://{addr}")),
        addr,
        data,
        schema,
        state,
    }
}

impl TestApp {
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    /// Imports the institutions of `csv` (the operator API's CSV import), which must succeed.
    pub async fn import_institutions(&self, csv: impl Into<String>) {
        self.expect(
            self.admin(Method::POST, "/api/v1/admin/institutions/import")
                .header("content-type", "text/csv")
                .body(csv.into()),
            201,
        )
        .await;
    }

    /// The API of the server at `base` (`http://ADDR`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            // The server closes a connection idle for its header timeout (10 s by default):
            // let go of idle connections first, so no request goes out on one it is closing.
            client: Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("HTTP client"),
        }
    }

    /// The base URL followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the operator's token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(OPERATOR_TOKEN)
    }

    /// A request with a device's token.
    pub fn as_device(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Moves the server's simulated clock to `at` (it runs on from there).
    pub async fn set_clock(&self, at: &str) {
        let r = self
            .admin(Method::PUT, "/api/v1/admin/clock")
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

    /// Sends, asserts the status, and reads the body as the `onshi-api` type `T`.
    pub async fn expect_as<T: DeserializeOwned>(&self, req: RequestBuilder, status: u16) -> T {
        let r: Response = req.send().await.expect("request");
        let got = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(got, status, "body: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not a {}: {e}: {text}", std::any::type_name::<T>()))
    }

    /// Sends, asserts the status and the error `code`, and that the error has a message for
    /// people; answers the error body.
    pub async fn expect_error(
        &self,
        req: RequestBuilder,
        status: u16,
        code: ErrorCode,
    ) -> ErrorBody {
        let body: ErrorBody = self.expect_as(req, status).await;
        assert_eq!(body.code, code, "{body:?}");
        assert!(!body.message.is_empty(), "{body:?}");
        body
    }

    /// The operator's control `action` of `campaign` (`POST …/campaigns/{id}/{action}`).
    pub fn control(&self, campaign: &str, action: CampaignAction) -> RequestBuilder {
        self.admin(Method::POST, &control_path(campaign, action))
    }

    /// Uploads a package; answers its digest and length.
    pub async fn upload(&self, bytes: &[u8]) -> (Sha256, u64) {
        let up: Uploaded = self
            .expect_as(
                self.admin(Method::PUT, "/api/v1/admin/artifacts")
                    .body(bytes.to_vec()),
                201,
            )
            .await;
        (up.sha256, up.size)
    }

    /// Publishes a release of uploaded packages, its manifest signed offline with the tests'
    /// targets key ([`crate::keys::sign_release`]).
    pub async fn publish(&self, id: &str, version: &str, components: &[(Target, Sha256, u64)]) {
        self.expect(
            self.admin(Method::POST, "/api/v1/admin/releases")
                .json(&crate::keys::sign_release(id, version, components)),
            201,
        )
        .await;
    }

    /// Uploads each package and publishes the release, as an operator does after
    /// `onshi release sign`.
    pub async fn release(&self, id: &str, version: &str, packages: &[(Target, &[u8])]) {
        let mut components = Vec::new();
        for (target, bytes) in packages {
            let (sha, size) = self.upload(bytes).await;
            components.push((*target, sha, size));
        }
        self.publish(id, version, &components).await;
    }

    /// A fresh enrolment key of the site `code`.
    pub async fn enrollment_key(&self, code: &str) -> String {
        self.expect_as::<EnrollmentKey>(
            self.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{code}/enrollment-key"),
            ),
            200,
        )
        .await
        .enrollment_key
    }

    /// Enrols a terminal of the site `code` over the device API, as an agent would; answers its
    /// device token.
    pub async fn enroll(&self, code: &str, serial: &str) -> String {
        let key = self.enrollment_key(code).await;
        let request = EnrollRequest {
            institution_code: code.to_owned(),
            enrollment_key: key,
            serial: serial.to_owned(),
        };
        self.expect_as::<Enrolled>(
            self.client.post(self.url("/api/v1/enroll")).json(&request),
            201,
        )
        .await
        .device_token
    }

    /// A check-in of the device `token` that has `installed` and runs `running`, answered 200.
    pub async fn checkin(&self, token: &str, installed: &str, running: &str) -> CheckinResponse {
        let request = CheckinRequest {
            installed: Some(Version::parse(installed).expect("installed version")),
            running: Some(Version::parse(running).expect("running version")),
        };
        self.expect_as(
            self.as_device(Method::POST, "/api/v1/checkin", token)
                .json(&request),
            200,
        )
        .await
    }

    /// The report of `event` in the 2026-01 campaign, numbered `seq`, as an agent sends it;
    /// send it with [`Api::expect_as`] (a [`ReportResponse`]) or `.send()`. A report with bytes
    /// or a detail goes through [`Api::send_report`].
    pub fn report(&self, token: &str, seq: i64, event: &DeploymentEvent) -> RequestBuilder {
        self.send_report(token, &ReportRequest::new(CAMPAIGN, seq, event))
    }

    /// `POST /api/v1/report` of `report` with the device `token`.
    pub fn send_report(&self, token: &str, report: &ReportRequest) -> RequestBuilder {
        self.as_device(Method::POST, "/api/v1/report", token)
            .json(report)
    }

    /// Reports `events` in order with seq 1, 2, …, each answered 200.
    pub async fn report_steps(&self, token: &str, events: &[DeploymentEvent]) {
        for (seq, event) in (1..).zip(events) {
            self.expect_as::<ReportResponse>(self.report(token, seq, event), 200)
                .await;
        }
    }

    /// The campaign's devices (`GET /api/v1/admin/campaigns/2026-01/devices`).
    pub async fn listing(&self) -> Vec<DeploymentListing> {
        self.expect_as(
            self.admin(
                Method::GET,
                &format!("/api/v1/admin/campaigns/{CAMPAIGN}/devices"),
            ),
            200,
        )
        .await
    }

    /// The server's deployment state of every device of the campaign, by device id.
    pub async fn states(&self) -> Vec<(i64, DeploymentState)> {
        self.listing()
            .await
            .into_iter()
            .map(|r| (r.device.id, r.state))
            .collect()
    }

    /// The server's deployment state of `device`.
    pub async fn state_of(&self, device: i64) -> DeploymentState {
        self.states()
            .await
            .into_iter()
            .find(|(id, _)| *id == device)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("device {device} is not in the campaign"))
    }

    /// Waits until `device` reaches `state` on the server.
    pub async fn wait_state(&self, device: i64, state: DeploymentState) {
        wait_until(&format!("device {device} to be {state}"), async || {
            self.state_of(device).await == state
        })
        .await;
    }

    /// The audit log (the last 1,000 entries) as JSON text.
    pub async fn audit(&self) -> String {
        self.expect(
            self.admin(Method::GET, "/api/v1/admin/audit?limit=1000"),
            200,
        )
        .await
        .to_string()
    }

    /// Waits until the audit log mentions `text`.
    pub async fn wait_for_audit(&self, text: &str) {
        wait_until(&format!("the audit log to mention {text:?}"), async || {
            self.audit().await.contains(text)
        })
        .await;
    }

    /// The outbox's counts (`GET /api/v1/admin/notices/summary`): sent, pending, retrying.
    pub async fn notices_summary(&self) -> MailSummary {
        self.expect_as(
            self.admin(Method::GET, "/api/v1/admin/notices/summary"),
            200,
        )
        .await
    }
}

/// On `app`: the institutions of `csv`, one terminal package of `package_len` bytes, release
/// `release` (version 2.0.0) and the 2026-01 campaign as a draft with the given throttle.
pub async fn terminal_campaign(
    app: &Api,
    csv: String,
    package_len: usize,
    release: &str,
    max_downloads: u32,
    poll_interval_seconds: u64,
) {
    app.import_institutions(csv).await;
    let package = vec![7u8; package_len];
    app.release(release, "2.0.0", &[(Target::Terminal, package.as_slice())])
        .await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
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
