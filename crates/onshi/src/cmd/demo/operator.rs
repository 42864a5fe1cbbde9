//! The operator API as the demo uses it: the same HTTP calls an operator makes with curl
//! (README's tour), so the demo exercises the real server and not a shortcut into its store.

use anyhow::Context as _;
use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The campaign the demo runs (the preset's id).
pub const CAMPAIGN: &str = "2026-01";

/// An operator's session with the server.
#[derive(Clone)]
pub struct Operator {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Progress of the campaign, as `GET …/progress` answers (the fields the demo reads).
#[derive(Debug, Deserialize)]
pub struct Progress {
    pub all: Counts,
    pub by_device: std::collections::BTreeMap<String, Counts>,
}

/// Device counts by state.
#[derive(Debug, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub states: std::collections::BTreeMap<String, u64>,
    pub restart_required: u64,
}

impl Counts {
    /// The count in `state` (0 if the server left it out).
    pub fn of(&self, state: DeploymentState) -> u64 {
        self.states.get(state.slug()).copied().unwrap_or(0)
    }
}

/// One audit log entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// One device of the campaign with its site and state.
#[derive(Debug, Deserialize)]
pub struct DeviceRow {
    pub institution: DeviceSite,
    pub state: DeploymentState,
}

#[derive(Debug, Deserialize)]
pub struct DeviceSite {
    pub code: String,
}

/// The most audit entries one request returns (the server's cap).
pub const AUDIT_LIMIT: u32 = 10_000;

impl Operator {
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// The same session on a client of its own (for another thread's runtime).
    pub fn detached(&self) -> anyhow::Result<Self> {
        Ok(Self::new(super::http_client()?, &self.base, &self.token))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request and parses the JSON answer; a non-2xx answer is an error with the
    /// server's message.
    async fn call<T: DeserializeOwned>(
        &self,
        what: &str,
        req: RequestBuilder,
    ) -> anyhow::Result<T> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("{what}: no answer"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        anyhow::ensure!(
            status.is_success(),
            "{what}: the server answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).with_context(|| format!("{what}: unexpected answer"))
    }

    /// A request the server answers at once (its public key): how long it takes is how far
    /// behind the server is.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let _: Value = self
            .call(
                "asking for the public key",
                self.http.get(format!("{}/api/v1/public-key", self.base)),
            )
            .await?;
        Ok(())
    }

    /// Imports institutions from CSV; answers how many.
    pub async fn import_institutions(&self, csv: String) -> anyhow::Result<u64> {
        let v: Value = self
            .call(
                "importing institutions",
                self.request(Method::POST, "/api/v1/admin/institutions/import")
                    .header("content-type", "text/csv")
                    .body(csv),
            )
            .await?;
        v["imported"]
            .as_u64()
            .context("importing institutions: no count in the answer")
    }

    /// Uploads a package; answers its SHA-256.
    pub async fn upload(&self, bytes: Vec<u8>) -> anyhow::Result<String> {
        let v: Value = self
            .call(
                "uploading a package",
                self.request(Method::PUT, "/api/v1/admin/artifacts")
                    .body(bytes),
            )
            .await?;
        v["sha256"]
            .as_str()
            .map(str::to_owned)
            .context("uploading a package: no sha256 in the answer")
    }

    /// Creates a signed release from uploaded packages: `(target, sha256)` pairs.
    pub async fn create_release(
        &self,
        id: &str,
        version: &str,
        components: &[(String, String)],
    ) -> anyhow::Result<()> {
        let components: Vec<Value> = components
            .iter()
            .map(|(target, sha)| json!({"target": target, "sha256": sha}))
            .collect();
        let _: Value = self
            .call(
                "creating the release",
                self.request(Method::POST, "/api/v1/admin/releases")
                    .json(&json!({
                        "id": id, "version": version, "components": components,
                    })),
            )
            .await?;
        Ok(())
    }

    /// Creates the campaign from the 2026-01 preset with a throttle, and activates it.
    pub async fn start_campaign(
        &self,
        release: &str,
        max_downloads: u32,
        poll_interval_seconds: u64,
    ) -> anyhow::Result<()> {
        let _: Value = self
            .call(
                "creating the campaign",
                self.request(Method::POST, "/api/v1/admin/campaigns")
                    .json(&json!({
                        "schedule": format!("preset:{CAMPAIGN}"),
                        "release_id": release,
                        "throttle": {
                            "max_concurrent_downloads": max_downloads,
                            "poll_interval_seconds": poll_interval_seconds,
                        },
                    })),
            )
            .await?;
        let _: Value = self
            .call(
                "activating the campaign",
                self.request(
                    Method::POST,
                    &format!("/api/v1/admin/campaigns/{CAMPAIGN}/activate"),
                ),
            )
            .await?;
        Ok(())
    }

    /// A fresh enrolment key for a site's terminal.
    pub async fn enrollment_key(&self, code: &str) -> anyhow::Result<String> {
        let v: Value = self
            .call(
                "creating an enrolment key",
                self.request(
                    Method::POST,
                    &format!("/api/v1/admin/institutions/{code}/enrollment-key"),
                ),
            )
            .await?;
        v["enrollment_key"]
            .as_str()
            .map(str::to_owned)
            .context("creating an enrolment key: no key in the answer")
    }

    /// The campaign's progress.
    pub async fn progress(&self) -> anyhow::Result<Progress> {
        self.call(
            "reading the campaign's progress",
            self.request(
                Method::GET,
                &format!("/api/v1/admin/campaigns/{CAMPAIGN}/progress"),
            ),
        )
        .await
    }

    /// Every device of the campaign with its state.
    pub async fn devices(&self) -> anyhow::Result<Vec<DeviceRow>> {
        self.call(
            "listing the campaign's devices",
            self.request(
                Method::GET,
                &format!(
                    "/api/v1/admin/campaigns/{CAMPAIGN}/devices?limit={}",
                    u32::MAX
                ),
            ),
        )
        .await
    }

    /// How many notice mails were sent (the outbox's summary).
    pub async fn mails_sent(&self) -> anyhow::Result<u64> {
        let v: serde_json::Value = self
            .call(
                "reading the notices summary",
                self.request(Method::GET, "/api/v1/admin/notices/summary"),
            )
            .await?;
        v["sent"]
            .as_u64()
            .context("reading the notices summary: no `sent` count")
    }

    /// The newest `limit` audit entries (at most [`AUDIT_LIMIT`]), newest first.
    pub async fn audit(&self, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        self.call(
            "reading the audit log",
            self.request(
                Method::GET,
                &format!("/api/v1/admin/audit?limit={}", limit.min(AUDIT_LIMIT)),
            ),
        )
        .await
    }
}
