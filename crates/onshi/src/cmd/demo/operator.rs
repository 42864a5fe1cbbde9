//! The operator API as the demo uses it: the same HTTP calls an operator makes with curl
//! (README's tour), so the demo exercises the real server and not a shortcut into its store.

use anyhow::Context as _;
use jiff::Timestamp;
use onshi_api::admin::{
    self, CampaignInput, CampaignView, DeploymentListing, EnrollmentKey, Imported, MailSummary,
    Progress, Throttle, Uploaded,
};
use onshi_core::offer::CampaignAction;
use onshi_core::release::Sha256;
use onshi_core::trust::Signed;
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;

/// The campaign the demo runs (the preset's id).
pub const CAMPAIGN: &str = "2026-01";

/// An operator's session with the server.
#[derive(Clone)]
pub struct Operator {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// One audit log entry, as the demo compares them (the instant parsed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub action: String,
    pub subject: String,
    pub detail: String,
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

    /// A request the server answers at once (its newest root): how long it takes is how far
    /// behind the server is.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let _: Signed = self
            .call(
                "asking for the trusted root",
                self.http.get(format!("{}/api/v1/trust/root", self.base)),
            )
            .await?;
        Ok(())
    }

    /// Imports institutions from CSV; answers how many.
    pub async fn import_institutions(&self, csv: String) -> anyhow::Result<u64> {
        let answer: Imported = self
            .call(
                "importing institutions",
                self.request(Method::POST, "/api/v1/admin/institutions/import")
                    .header("content-type", "text/csv")
                    .body(csv),
            )
            .await?;
        Ok(answer.imported as u64)
    }

    /// Uploads a package; answers its SHA-256.
    pub async fn upload(&self, bytes: Vec<u8>) -> anyhow::Result<Sha256> {
        let answer: Uploaded = self
            .call(
                "uploading a package",
                self.request(Method::PUT, "/api/v1/admin/artifacts")
                    .body(bytes),
            )
            .await?;
        Ok(answer.sha256)
    }

    /// Publishes a release whose manifest was signed offline (its packages uploaded first).
    pub async fn publish_release(&self, signed: &Signed) -> anyhow::Result<()> {
        let _: serde_json::Value = self
            .call(
                "publishing the release",
                self.request(Method::POST, "/api/v1/admin/releases")
                    .json(signed),
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
        let campaign = CampaignInput {
            schedule: format!("preset:{CAMPAIGN}"),
            release_id: release.to_owned(),
            selector: Default::default(),
            throttle: Throttle {
                max_concurrent_downloads: max_downloads,
                poll_interval_seconds,
            },
        };
        let _: CampaignView = self
            .call(
                "creating the campaign",
                self.request(Method::POST, "/api/v1/admin/campaigns")
                    .json(&campaign),
            )
            .await?;
        let _: CampaignView = self
            .call(
                "activating the campaign",
                self.request(
                    Method::POST,
                    &admin::control_path(CAMPAIGN, CampaignAction::Activate),
                ),
            )
            .await?;
        Ok(())
    }

    /// A fresh enrolment key for a site's terminal.
    pub async fn enrollment_key(&self, code: &str) -> anyhow::Result<String> {
        let answer: EnrollmentKey = self
            .call(
                "creating an enrolment key",
                self.request(
                    Method::POST,
                    &format!("/api/v1/admin/institutions/{code}/enrollment-key"),
                ),
            )
            .await?;
        Ok(answer.enrollment_key)
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
    pub async fn devices(&self) -> anyhow::Result<Vec<DeploymentListing>> {
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
        let summary: MailSummary = self
            .call(
                "reading the notices summary",
                self.request(Method::GET, "/api/v1/admin/notices/summary"),
            )
            .await?;
        Ok(summary.sent)
    }

    /// The newest `limit` audit entries (at most [`AUDIT_LIMIT`]), newest first.
    pub async fn audit(&self, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        let entries: Vec<admin::AuditEntry> = self
            .call(
                "reading the audit log",
                self.request(
                    Method::GET,
                    &format!("/api/v1/admin/audit?limit={}", limit.min(AUDIT_LIMIT)),
                ),
            )
            .await?;
        entries
            .into_iter()
            .map(|e| {
                Ok(AuditEntry {
                    at: e
                        .at
                        .parse()
                        .with_context(|| format!("audit entry at {:?}", e.at))?,
                    action: e.action,
                    subject: e.subject,
                    detail: e.detail,
                })
            })
            .collect()
    }
}
