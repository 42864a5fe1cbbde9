//! The operator API (`/api/v1/admin/…`, the operator token): institutions and their keys,
//! packages, signed releases, campaigns and their controls, progress, devices, audit, notices.

use std::collections::BTreeMap;

use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::notice::NoticeKind;
use onshi_core::offer::{CampaignAction, CampaignStatus};
use onshi_core::release::Sha256;
use onshi_core::schedule::StatusReport;
use onshi_core::selector::Selector;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::{IntoParams, ToSchema};

/// The pattern of release and campaign ids.
pub const ID_PATTERN: &str = r"^[A-Za-z0-9._-]{1,64}$";

/// The pattern of an institution's e-mail address (at most 254 characters).
pub const EMAIL_PATTERN: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]+$";
/// A name must hold at least one character that is neither a space nor a control character.
pub const NAME_PATTERN: &str = r"[^\s\x00-\x1f\x7f-\x9f]";
/// The pattern of a daily automatic restart time, HH:MM (or empty: none).
pub const HHMM_PATTERN: &str = "^(([01][0-9]|2[0-3]):[0-5][0-9])?$";
/// The pattern of a site's phone number: up to 30 digits, spaces, hyphens, `+` and brackets
/// (or empty: none), e.g. `011-123-4567`.
pub const PHONE_PATTERN: &str = r"^[0-9+()\- ]{0,30}$";

/// One institution as the operator sends it as JSON. Its prefecture is the code's; its kind
/// must fit the code's 点数表 digit (1: hospital or clinic, 3: dental, 4: pharmacy), which the
/// schema states as one variant per digit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionInput {
    pub code: String,
    /// 1–200 characters, not only spaces.
    pub name: String,
    pub kind: String,
    /// Where the portal mails go.
    pub email: String,
    /// The daily automatic restart time, HH:MM Japan time (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_restart: Option<String>,
    /// The site's phone number, for the operator's calls (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl utoipa::ToSchema for InstitutionInput {}

impl utoipa::PartialSchema for InstitutionInput {
    fn schema() -> RefOr<Schema> {
        use onshi_core::institution::ScoreTable;
        let variant = |table: ScoreTable| {
            let kinds = InstitutionKind::ALL
                .into_iter()
                .filter(|k| k.matches(table))
                .map(|k| k.slug().to_owned());
            ObjectBuilder::new()
                .property("code", onshi_core::openapi::institution_code(Some(table)))
                .required("code")
                .property(
                    "name",
                    text("1–200 characters, not only spaces.")
                        .min_length(Some(1))
                        .max_length(Some(200))
                        .pattern(Some(NAME_PATTERN)),
                )
                .required("name")
                .property(
                    "kind",
                    text("The kind of site; it must fit the code's 点数表 digit.")
                        .enum_values(Some(kinds)),
                )
                .required("kind")
                .property(
                    "email",
                    text("Where the portal mails go.")
                        .max_length(Some(254))
                        .pattern(Some(EMAIL_PATTERN)),
                )
                .required("email")
                .property(
                    "auto_restart",
                    text("The daily automatic restart time, HH:MM Japan time (empty: none).")
                        .pattern(Some(HHMM_PATTERN)),
                )
                .property(
                    "phone",
                    text("The site's phone number, for the operator's calls (empty: none).")
                        .max_length(Some(30))
                        .pattern(Some(PHONE_PATTERN)),
                )
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(variant(ScoreTable::Medical))
            .item(variant(ScoreTable::Dental))
            .item(variant(ScoreTable::Pharmacy))
            .description(Some(
                "One institution. Its prefecture is the code's; its kind must fit the code's \
                 点数表 digit (1: hospital or clinic, 3: dental, 4: pharmacy).",
            ))
            .into()
    }
}

/// `POST /api/v1/admin/institutions`: one or more institutions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstitutionBatch(pub Vec<InstitutionInput>);

impl utoipa::ToSchema for InstitutionBatch {}

impl utoipa::PartialSchema for InstitutionBatch {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(InstitutionInput::schema())
            .min_items(Some(1))
            .description(Some(
                "Institutions to create or update; all or none are stored.",
            ))
            .into()
    }
}

impl From<InstitutionInput> for InstitutionCsvRow {
    fn from(i: InstitutionInput) -> Self {
        Self {
            code: i.code,
            name: i.name,
            kind: i.kind,
            prefecture: None,
            email: i.email,
            auto_restart: i.auto_restart,
            phone: i.phone,
        }
    }
}

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
}

/// One line of the institution CSV (`code,name,kind,prefecture,email,auto_restart[,phone]`): the JSON
/// fields and a prefecture column (number or name), which must be the code's if filled in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionCsvRow {
    pub code: String,
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub prefecture: Option<String>,
    pub email: String,
    #[serde(default)]
    pub auto_restart: Option<String>,
    /// The site's phone number (a column the list may leave out).
    #[serde(default)]
    pub phone: Option<String>,
}

/// An institution as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Institution {
    pub code: InstitutionCode,
    pub name: String,
    pub kind: InstitutionKind,
    pub prefecture: Prefecture,
    pub email: String,
    /// The daily automatic restart time the site set (HH:MM), if any.
    pub auto_restart: Option<String>,
    /// The site's phone number, if the operator's list gives one.
    pub phone: Option<String>,
}

/// How many institutions were created or updated.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Imported {
    pub imported: usize,
}

/// `GET /api/v1/admin/institutions` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(schema_with = onshi_core::openapi::prefecture_text)]
    pub prefecture: Option<String>,
    pub kind: Option<InstitutionKind>,
    /// At most this many (default 1,000); more than 10,000 counts as 10,000.
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A page of institutions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstitutionList {
    pub total: u64,
    pub institutions: Vec<Institution>,
}

/// A new enrollment key (shown once). It enrols at most `uses` terminals and none after
/// `expires_at`; issuing another ends it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentKey {
    pub enrollment_key: String,
    /// When the key stops working (server time).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// How many terminals it may enrol.
    pub uses: u32,
}

/// `POST /api/v1/admin/institutions/{code}/enrollment-key` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentKeyQuery {
    /// Terminals the key may enrol: 1 (the default) to the site's cap of terminals
    /// (`MAX_TERMINALS_PER_SITE`, 16).
    #[param(minimum = 1, maximum = 16)]
    pub uses: Option<u32>,
    /// Hours until the key expires: 1 to 720 (30 days); default 168 (7 days).
    #[param(minimum = 1, maximum = 720)]
    pub valid_hours: Option<u32>,
}

/// The devices a revocation ended: the device and, for a terminal, its card readers (empty if
/// it was revoked already).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    pub revoked: Vec<i64>,
}

/// A new access key (shown once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessKey {
    pub access_key: String,
}

/// A stored package.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Uploaded {
    pub sha256: Sha256,
    pub size: u64,
}

/// The answer to publishing a root: its version, which agents now follow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RootPublished {
    pub version: u64,
}

/// A campaign to create, as a draft.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// A built-in schedule, `preset:NAME`. The server also takes the text of a campaign file
    /// (TOML, DESIGN.md §4) here; no string schema can say what makes one valid, so the
    /// document lists the presets only (a refused file answers 400 `invalid_schedule`).
    #[schema(schema_with = schedule_schema)]
    pub schedule: String,
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub release_id: String,
    #[serde(default)]
    pub selector: Selector,
    pub throttle: Throttle,
}

fn schedule_schema() -> ObjectBuilder {
    let presets = onshi_core::schedule::PRESETS
        .iter()
        .map(|(name, _)| format!("preset:{name}"));
    text("A built-in schedule (`preset:2026-01`: the notice's nights and catch-up phase).")
        .enum_values(Some(presets))
}

/// How fast a campaign goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Download slots held at once, across every replica.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(deserialize_with = "crate::int::u32")]
    pub max_concurrent_downloads: u32,
    /// How often an idle device checks in.
    #[schema(minimum = 5, maximum = 86400)]
    #[serde(deserialize_with = "crate::int::u64")]
    pub poll_interval_seconds: u64,
}

/// A campaign as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub title: String,
    pub status: CampaignStatus,
    pub release_id: String,
    pub selector: Selector,
    pub throttle: Throttle,
    /// Where the schedule stands now (the `onshi schedule --at` contract).
    pub schedule: StatusReport,
}

/// The path of a campaign control.
pub fn control_path(campaign: &str, action: CampaignAction) -> String {
    format!("{}/admin/campaigns/{campaign}/{action}", crate::PREFIX)
}

/// Device counts: in all, per state, and terminals waiting for their restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub total: u64,
    /// Per deployment state (every state present, zeros included).
    pub states: BTreeMap<DeploymentState, u64>,
    /// Terminals installed but not restarted (再起動が必要).
    pub restart_required: u64,
}

impl Counts {
    /// No device yet, with every state present.
    pub fn zeroed() -> Self {
        Self {
            total: 0,
            states: DeploymentState::ALL.into_iter().map(|s| (s, 0)).collect(),
            restart_required: 0,
        }
    }

    /// The count in one state.
    pub fn get(&self, state: DeploymentState) -> u64 {
        self.states.get(&state).copied().unwrap_or(0)
    }

    /// Adds `n` devices of `device` kind in `state`.
    pub fn add(&mut self, state: DeploymentState, device: DeviceKind, n: u64) {
        self.total += n;
        *self.states.entry(state).or_default() += n;
        if state.restart_required(device) {
            self.restart_required += n;
        }
    }
}

/// One prefecture's counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrefectureCounts {
    pub prefecture: Prefecture,
    pub name: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A campaign's progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub campaign: String,
    #[schema(format = DateTime)]
    pub at: String,
    pub all: Counts,
    pub by_device: BTreeMap<DeviceKind, Counts>,
    pub by_prefecture: Vec<PrefectureCounts>,
    pub by_kind: BTreeMap<InstitutionKind, Counts>,
    pub by_vendor: BTreeMap<Vendor, Counts>,
    /// Download slots held now.
    pub live_downloads: u64,
    /// Terminals whose distribution application has not checked in for the campaign's
    /// `silent_after_hours` and that have not applied the update (0 unless the campaign is
    /// active).
    pub silent_terminals: u64,
}

/// One wave of a campaign: whether it is offered the release, its counts and each gate metric
/// against its limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveView {
    /// 0 for the first wave.
    pub wave: u16,
    /// 第1波 …
    pub name_ja: String,
    /// wave 1 …
    pub name_en: String,
    /// Offered the release now.
    pub open: bool,
    /// The operator resumed after this wave's breach: it holds the campaign no more.
    pub waived: bool,
    pub health: onshi_core::waves::WaveHealth,
    pub readings: Vec<onshi_core::waves::Reading>,
}

/// `GET /api/v1/admin/campaigns/{id}/waves`: a campaign's waves and their health gates.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WavesView {
    pub campaign: String,
    /// How many waves the plan has (the last is every other site).
    pub waves: u16,
    /// How many are open (0 before activation).
    pub open: u16,
    /// When the newest open wave opened.
    #[schema(format = DateTime)]
    pub opened_at: Option<String>,
    /// The gate that holds the campaign (paused), if one does.
    pub hold: Option<onshi_core::waves::Hold>,
    /// Why it is held, in Japanese and in English.
    pub held_because_ja: Option<String>,
    pub held_because_en: Option<String>,
    /// What the newest open wave still waits for before the next opens.
    pub waiting: Option<onshi_core::waves::Waiting>,
    pub waiting_ja: Option<String>,
    pub waiting_en: Option<String>,
    /// Terminals running the new version a wave needs before the next opens.
    pub min_restarted: u32,
    /// The soak time from the first window a wave could use.
    pub soak_hours: i64,
    /// How long after a restart a terminal must run the new version.
    pub not_running_within_minutes: i64,
    /// Who is mailed when a gate holds the campaign.
    pub mail_to: Option<String>,
    /// The operator rolled the campaign back (it is closed; the rollback campaign offers the
    /// previous packages to the devices that got this release), and the same in words.
    pub rolled_back: Option<onshi_core::waves::RolledBack>,
    pub rolled_back_ja: Option<String>,
    pub rolled_back_en: Option<String>,
    pub each: Vec<WaveView>,
}

/// `POST /api/v1/admin/campaigns/{id}/rollback`: roll a campaign back (切り戻し) with a
/// release signed offline whose version is higher than the campaign's and whose packages are
/// the previous good release's (`onshi release sign --from-release`). It is offered, in a
/// campaign of its own with the same windows, only to the devices of the open waves that got
/// the campaign's release; the campaign closes for everyone else.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The rollback release (published).
    pub release_id: String,
}

/// The format of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// `GET /api/v1/admin/campaigns/{id}/devices` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DevicesQuery {
    pub state: Option<DeploymentState>,
    pub device: Option<DeviceKind>,
    #[param(schema_with = onshi_core::openapi::prefecture_text)]
    pub prefecture: Option<String>,
    pub kind: Option<InstitutionKind>,
    pub vendor: Option<Vendor>,
    /// At most this many (default 1,000 as JSON, every one as CSV).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    pub format: Option<Format>,
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: i64,
    pub institution: InstitutionCode,
    pub kind: DeviceKind,
    pub vendor: Option<Vendor>,
    pub serial: String,
    /// The terminal a card reader is attached to.
    pub parent: Option<i64>,
    pub installed: Option<Version>,
    pub running: Option<Version>,
    #[schema(format = DateTime)]
    pub last_contact: Option<String>,
}

/// One device of a campaign, with its site.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentListing {
    pub institution: Institution,
    pub device: Device,
    pub state: DeploymentState,
    pub bytes: u64,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `GET /api/v1/admin/audit` (newest first).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At most this many (default 100); more than 10,000 counts as 10,000.
    pub limit: Option<u32>,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    #[schema(format = DateTime)]
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// `PUT /api/v1/admin/clock`: move a simulated clock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockInput {
    /// An RFC 3339 instant.
    #[schema(format = DateTime)]
    pub now: String,
}

/// The server's clock after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClockNow {
    #[schema(format = DateTime)]
    pub now: String,
}

/// `GET /api/v1/admin/notices` filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoticesQuery {
    #[param(value_type = Option<InstitutionCode>)]
    pub institution: Option<String>,
    /// At most this many (default 1,000).
    pub limit: Option<u32>,
}

/// A notice mail in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Mail {
    pub id: i64,
    pub campaign: String,
    pub institution: InstitutionCode,
    pub kind: NoticeKind,
    pub key: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
}

/// Sent and pending mails of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailCount {
    pub sent: u64,
    pub pending: u64,
}

/// How many mails were sent and wait, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailSummary {
    pub sent: u64,
    pub pending: u64,
    /// Pending mails that failed at least once.
    pub retrying: u64,
    /// Mails given up: the relay refused them for good (a 55x answer: no such mailbox, not
    /// allowed), or they failed every
    /// attempt the server makes; neither sent nor pending, never tried again. The notices list
    /// shows each with its last error.
    #[serde(default)]
    pub gave_up: u64,
    pub by_kind: BTreeMap<NoticeKind, MailCount>,
}
