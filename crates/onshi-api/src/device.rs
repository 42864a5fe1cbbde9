//! The device API: what the terminal's distribution agent (`onshi-agent`) speaks. Enrolment,
//! check-in (the window-gated offer), state reports, the signed manifest and the packages.

use jiff::Timestamp;
use onshi_core::deployment::{DeploymentEvent, DeploymentState};
use onshi_core::institution::InstitutionCode;
use onshi_core::offer::Action;
use onshi_core::release::Sha256;
use onshi_core::schedule::Phase;
use onshi_core::vendor::Vendor;
use onshi_core::version::Version;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::{KnownFormat, RefOr, Schema, SchemaFormat};

/// The longest `detail` of a report, in characters.
pub const MAX_DETAIL_CHARS: usize = 500;

/// At most this many terminals per site are enrolled (a hospital has several; a leaked
/// enrolment key cannot add more, nor more than the key's uses).
pub const MAX_TERMINALS_PER_SITE: u32 = 16;
/// At most this many card readers per terminal are enrolled.
pub const MAX_READERS_PER_TERMINAL: u32 = 4;
/// At most this many card readers per site are enrolled, whichever terminals they hang on: every
/// reader holds a download slot while it downloads, so a leaked enrolment key (up to
/// [`MAX_TERMINALS_PER_SITE`] terminals) cannot add [`MAX_READERS_PER_TERMINAL`] readers to each.
pub const MAX_READERS_PER_SITE: u32 = 16;

/// A device serial: 1–64 characters of letters, digits, `-`, `_`, `.`, `:`, the first a letter or
/// digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", example = "terminal-0110113719")]
pub struct Serial(String);

/// Why a text is not a [`Serial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSerial;

impl std::fmt::Display for BadSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "serial must be 1–64 characters of letters, digits, '-', '_', '.', ':', \
             starting with a letter or digit",
        )
    }
}

impl std::error::Error for BadSerial {}

impl Serial {
    /// Parses a serial.
    pub fn parse(s: &str) -> Result<Self, BadSerial> {
        // Starting with a letter or digit rules out `.` and `..`: the agent keeps a reader's
        // files under `readers/<serial>`.
        let ok = (1..=64).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadSerial)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Serial {
    type Error = BadSerial;
    fn try_from(s: String) -> Result<Self, BadSerial> {
        Self::parse(&s)
    }
}

impl From<Serial> for String {
    fn from(s: Serial) -> String {
        s.0
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `POST /api/v1/enroll`: a terminal enrols itself with its site's enrollment key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Checked by the server (the check digit included) and answered 400
    /// `invalid_institution_code` when wrong.
    #[schema(value_type = InstitutionCode)]
    pub institution_code: String,
    /// The key the operator issued for this institution.
    #[schema(min_length = 1, max_length = 256)]
    pub enrollment_key: String,
    #[schema(value_type = Serial)]
    pub serial: String,
}

/// `POST /api/v1/readers`: a terminal enrols a card reader attached to it, as its child.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReaderRequest {
    pub vendor: Vendor,
    #[schema(value_type = Serial)]
    pub serial: String,
}

/// The answer to an enrolment: the device's own credentials.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    pub device_id: i64,
    /// The device's bearer token; shown once, stored only as a hash.
    pub device_token: String,
    /// The site's daily automatic restart time (HH:MM, Japan time), if it set one; the agent
    /// restarts the terminal then, after 05:00, when an installed update waits for a restart.
    #[serde(default)]
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub auto_restart: Option<String>,
}

/// The largest metadata answer an agent reads (a root, a timestamp, a snapshot, a release's
/// manifest, any JSON answer of
/// the device API): an endless answer is cut off here (TUF's endless-data attack).
pub const MAX_METADATA_BYTES: usize = 1 << 20;

/// `POST /api/v1/checkin`: where the device stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The version installed on the device (for a terminal: in the active slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Version>,
    /// The version the running application started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Version>,
}

/// The server's answer to a check-in: what to do now and when to ask again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckinResponse {
    pub action: Action,
    /// When to check in next, jittered: about 30 s while downloading or installing, until
    /// `come_back_at` after `retry_later`, otherwise the campaign's poll interval; at most 6 h.
    #[schema(minimum = 1, maximum = 21600)]
    pub poll_after_seconds: u64,
    /// The server's clock (UTC). Devices' clocks are never trusted: the server decides.
    #[schema(value_type = String, format = DateTime)]
    pub server_time: Timestamp,
    /// When the next distribution window opens, if not distributing now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_window: Option<Timestamp>,
    /// The campaign the device is in; absent when none is open for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignOffer>,
    /// With `retry_later`: the device's appointment (UTC) from the campaign's queue for its
    /// download slots — first come, first served within the window, always inside a window. The
    /// agent checks in again then (plus a small jitter of its own), not earlier;
    /// `poll_after_seconds` says the same wait for agents that predate appointments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub come_back_at: Option<Timestamp>,
}

/// The campaign a device is in, as the server sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignOffer {
    pub id: String,
    pub state: DeploymentState,
    pub phase: Phase,
    pub release_id: String,
    pub version: Version,
    /// The last report `seq` the server accepted for this device and campaign, so an agent
    /// that lost its own count carries on above it.
    #[serde(default)]
    pub seq: i64,
    /// The campaign's night hours (Japan time), so the agent's advice restarts after the same
    /// close as the site page's; absent for a campaign without nights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_hours: Option<NightHours>,
    /// The official site where staff check that the update installed, once the campaign file
    /// names it (`onshi-agent status` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_check: Option<onshi_core::schedule::CompletionCheck>,
    /// The device's package, with `download` and `install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactInfo>,
    /// With `artifact`, when the release has a delta from the version the device says it has
    /// installed: the smaller download that rebuilds the same package from the installed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaInfo>,
}

/// A delta package offered instead of the full one (`onshi_core::release::Delta`): downloaded
/// like a package (`url`, `Range` resumes), applied to the installed package `base_sha256`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeltaInfo {
    pub sha256: Sha256,
    pub size: u64,
    /// Where to download it (`/api/v1/artifacts/{sha256}`), with the device token.
    pub url: String,
    pub base_version: Version,
    pub base_sha256: Sha256,
}

/// When a campaign's nights open and close, in its time zone (`closes` ≤ `opens`: the next
/// morning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NightHours {
    #[schema(value_type = String, example = "20:00:00")]
    pub opens: jiff::civil::Time,
    #[schema(value_type = String, example = "05:00:00")]
    pub closes: jiff::civil::Time,
}

/// The device's package.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactInfo {
    pub sha256: Sha256,
    pub size: u64,
    /// Where to download it (`/api/v1/artifacts/{sha256}`), with the device token.
    pub url: String,
}

impl ArtifactInfo {
    /// The package's download path.
    pub fn url_of(sha256: Sha256) -> String {
        format!("{}/artifacts/{sha256}", crate::PREFIX)
    }
}

/// What happened on the device: the report's `event`, one per [`DeploymentEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportEvent {
    DownloadStarted,
    DownloadPaused,
    DownloadVerified,
    InstallStarted,
    InstallCompleted,
    ReaderActivated,
    /// With `version`: the version the device now runs.
    Running,
    Failed,
    Retry,
}

/// What the agent's self-check of the applied version said after the restart (reported with
/// `running`; the wave gates count the failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfCheck {
    Passed,
    Failed,
}

/// A `running` report without its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingVersion;

/// `POST /api/v1/report`: a state report, checked against the deployment state machine and
/// committed before the answer. Its schema has one variant for `running` (which needs
/// `version`) and one for every other event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub campaign_id: String,
    /// Increases with every report the agent makes for this campaign. A repeated or older
    /// `seq` changes nothing (answered with `applied: false`), so retries are safe.
    #[serde(deserialize_with = "crate::int::i64")]
    pub seq: i64,
    pub event: ReportEvent,
    /// For `running`: the version the device now runs (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Bytes downloaded so far (at most 2^63 − 1).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt_u64"
    )]
    pub bytes: Option<u64>,
    /// What went wrong, for `failed` (e.g. "SHA-256 mismatch"); kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// With `running` after a restart onto the new version: the self-check's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_check: Option<SelfCheck>,
}

impl utoipa::ToSchema for ReportRequest {}

impl utoipa::PartialSchema for ReportRequest {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ObjectBuilder, OneOfBuilder, SchemaType, Type,
        };
        let variant = |events: Vec<&str>, version_required: bool| {
            let mut o = ObjectBuilder::new()
                .property(
                    "campaign_id",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::String))
                        .pattern(Some(r"^[A-Za-z0-9._-]{1,64}$")),
                )
                .required("campaign_id")
                .property(
                    "seq",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::Integer))
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .minimum(Some(1))
                        .description(Some(
                            "Increases with every report the agent makes for this campaign. A \
                             repeated or older `seq` changes nothing (answered with `applied: \
                             false`), so retries are safe.",
                        )),
                )
                .required("seq")
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::String))
                        .enum_values(Some(events)),
                )
                .required("event")
                .property("version", Version::schema())
                .property(
                    "bytes",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::Integer))
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .minimum(Some(0))
                        .description(Some("Bytes downloaded so far.")),
                )
                .property(
                    "detail",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::String))
                        .max_length(Some(MAX_DETAIL_CHARS))
                        .description(Some(
                            "What went wrong, for `failed` (e.g. \"SHA-256 mismatch\"); kept in \
                             the audit log.",
                        )),
                )
                .property(
                    "self_check",
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::String))
                        .enum_values(Some(["passed", "failed"]))
                        .description(Some(
                            "With `running` after a restart onto the new version: the \
                             self-check's verdict (the wave gates count the failures).",
                        )),
                )
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            if version_required {
                o = o.required("version");
            }
            o
        };
        let all = serde_json::to_value(ReportEvent::schema()).unwrap_or_default();
        let names: Vec<String> = all["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let running = serde_json::to_value(ReportEvent::Running)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let others: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != running)
            .collect();
        OneOfBuilder::new()
            .item(variant(vec![running.as_str()], true))
            .item(variant(others, false))
            .description(Some(
                "A state report, checked against the deployment state machine and committed \
                 before the answer. `running` carries the version the device now runs.",
            ))
            .into()
    }
}

impl ReportRequest {
    /// The report of `event` in `campaign_id`, numbered `seq`.
    pub fn new(campaign_id: &str, seq: i64, event: &DeploymentEvent) -> Self {
        let (event, version) = match event {
            DeploymentEvent::DownloadStarted => (ReportEvent::DownloadStarted, None),
            DeploymentEvent::DownloadPaused => (ReportEvent::DownloadPaused, None),
            DeploymentEvent::DownloadVerified => (ReportEvent::DownloadVerified, None),
            DeploymentEvent::InstallStarted => (ReportEvent::InstallStarted, None),
            DeploymentEvent::InstallCompleted => (ReportEvent::InstallCompleted, None),
            DeploymentEvent::ReaderActivated => (ReportEvent::ReaderActivated, None),
            DeploymentEvent::Running(v) => (ReportEvent::Running, Some(v.clone())),
            DeploymentEvent::Failed => (ReportEvent::Failed, None),
            DeploymentEvent::Retry => (ReportEvent::Retry, None),
        };
        Self {
            campaign_id: campaign_id.to_owned(),
            seq,
            event,
            version,
            bytes: None,
            detail: None,
            self_check: None,
        }
    }

    /// With the self-check's verdict (a `running` report after a restart).
    pub fn with_self_check(mut self, check: impl Into<Option<SelfCheck>>) -> Self {
        self.self_check = check.into();
        self
    }

    /// With the bytes downloaded so far.
    pub fn with_bytes(mut self, bytes: impl Into<Option<u64>>) -> Self {
        self.bytes = bytes.into();
        self
    }

    /// With what went wrong.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The domain event this report stands for.
    pub fn event(&self) -> Result<DeploymentEvent, MissingVersion> {
        Ok(match self.event {
            ReportEvent::DownloadStarted => DeploymentEvent::DownloadStarted,
            ReportEvent::DownloadPaused => DeploymentEvent::DownloadPaused,
            ReportEvent::DownloadVerified => DeploymentEvent::DownloadVerified,
            ReportEvent::InstallStarted => DeploymentEvent::InstallStarted,
            ReportEvent::InstallCompleted => DeploymentEvent::InstallCompleted,
            ReportEvent::ReaderActivated => DeploymentEvent::ReaderActivated,
            ReportEvent::Running => {
                DeploymentEvent::Running(self.version.clone().ok_or(MissingVersion)?)
            }
            ReportEvent::Failed => DeploymentEvent::Failed,
            ReportEvent::Retry => DeploymentEvent::Retry,
        })
    }
}

/// The answer to a report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportResponse {
    pub state: DeploymentState,
    /// `false` when the report was a repeat or arrived late and changed nothing.
    pub applied: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deployment_event_survives_the_wire() {
        let v = Version::parse("2.0.0").unwrap_or_else(|e| panic!("{e}"));
        for event in [
            DeploymentEvent::DownloadStarted,
            DeploymentEvent::DownloadPaused,
            DeploymentEvent::DownloadVerified,
            DeploymentEvent::InstallStarted,
            DeploymentEvent::InstallCompleted,
            DeploymentEvent::ReaderActivated,
            DeploymentEvent::Running(v),
            DeploymentEvent::Failed,
            DeploymentEvent::Retry,
        ] {
            let json = serde_json::to_string(&ReportRequest::new("2026-01", 3, &event))
                .unwrap_or_default();
            let back: ReportRequest =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back.event(), Ok(event), "{json}");
        }
    }

    #[test]
    fn a_running_report_without_a_version_is_refused() {
        let r: ReportRequest =
            serde_json::from_str(r#"{"campaign_id":"c","seq":1,"event":"running"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.event(), Err(MissingVersion));
    }

    #[test]
    fn a_serial_outside_its_alphabet_is_refused() {
        assert!(Serial::parse("terminal-0110113719").is_ok());
        assert!(Serial::parse("").is_err());
        assert!(Serial::parse("a b").is_err());
        assert!(Serial::parse(&"x".repeat(65)).is_err());
        // Not a path of its own under the agent's `readers/`.
        assert!(Serial::parse(".").is_err());
        assert!(Serial::parse("..").is_err());
        assert!(Serial::parse(".hidden").is_err());
        assert!(Serial::parse("C1.2").is_ok());
    }
}
