//! Persistence of onshi behind one trait, [`Store`]. SQLite (embedded, the default) is
//! implemented in [`sqlite`]; PostgreSQL, which several server replicas share, in
//! [`postgres`]. Both apply the one list of migrations in `migrations/` (see `migrations.rs`)
//! and pass the one test suite (`suite.rs`).
//!
//! Must never: decide anything about the campaign (that is `onshi-core`), or hold state that is
//! not in the database except the buffered "last contact" times, which are not state reports
//! (the caches of device identities and open deployments only mirror the database).
//! Every write that the server acknowledges is committed before the call returns.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Time;
pub use onshi_core::appointment::Turn;
use onshi_core::appointment::Window;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::notice::{NoticeKind, SiteFacts};
use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Manifest, Sha256};
use onshi_core::selector::Selector;
use onshi_core::silence::Silence;
use onshi_core::trust::Signed;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use onshi_core::waves::{WaveHealth, WaveProgress};
use serde::Serialize;

mod contacts;
mod migrations;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(test)]
mod suite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod time;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use time::{db_time, parse_db_time};

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL error other than a lost connection (see [`StoreError::Unavailable`]).
    #[error("database error: {0}")]
    Postgres(tokio_postgres::Error),
    /// The database cannot be reached now (connection refused or lost, server shutting down,
    /// pool exhausted): nothing was acknowledged, and the same call may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The store cannot be set up as asked (e.g. a malformed database URL).
    #[error("{0}")]
    Config(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// An enrolment the rules refuse ([`EnrolRules`]).
    #[error("{0}")]
    EnrolRefused(#[from] EnrolRefusal),
}

/// What an enrolment must respect, so that one leaked enrolment key cannot take over an enrolled
/// device or fill a campaign's download slots with fake ones (issue 15).
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrolRules<'a> {
    /// The hash of the enrolment key presented: it must still be the site's, unexpired at the
    /// enrolment's instant and have a use left; the enrolment takes one use. `None` for a card
    /// reader, which its terminal enrols with its own token.
    pub key_hash: Option<&'a str>,
    /// At most this many devices of the kind, not revoked: terminals of the site, or card
    /// readers of the terminal. `0`: no cap.
    pub cap: u32,
    /// At most this many devices of the kind at the whole site, not revoked, whoever their
    /// parent: card readers, whose terminals each have their own `cap`, so that a site's
    /// readers (which hold download slots too) stay bounded. `0`: no cap.
    pub site_cap: u32,
}

/// Why an enrolment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnrolRefusal {
    /// The serial is enrolled (and not revoked): only the operator, by revoking that device,
    /// lets it be enrolled again.
    #[error("this serial is already enrolled; the operator must revoke that device first")]
    SerialTaken,
    /// The site (or the terminal) already has as many devices of the kind as it may have.
    #[error("the device limit is reached")]
    Full,
    /// The key is not the site's current one, has expired or has been used up.
    #[error("the enrolment key is wrong, expired or used up")]
    Key,
}

/// Result of a store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A site (医療機関・薬局).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Institution {
    pub code: InstitutionCode,
    pub name: String,
    pub kind: InstitutionKind,
    pub prefecture: Prefecture,
    pub email: String,
    /// The daily automatic restart time the site set, if any (日々の診療等の開始前に自動で再起動).
    #[serde(serialize_with = "time::ser_opt_hhmm")]
    pub auto_restart: Option<Time>,
    /// The site's phone number as the operator's list gives it, if any: whom the operator
    /// calls when a terminal still needs a restart in the morning.
    pub phone: Option<String>,
}

/// A one-time sign-in link to store ([`Store::create_sign_in_link`]).
#[derive(Debug, Clone)]
pub struct NewSignInLink<'a> {
    pub institution: InstitutionCode,
    /// The SHA-256 (hex) of the link's token; the token itself is never stored.
    pub token_hash: &'a str,
    /// The site's access-key generation the link belongs to.
    pub generation: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A site's page session to store ([`Store::create_site_session`]).
#[derive(Debug, Clone)]
pub struct NewSiteSession<'a> {
    /// The SHA-256 (hex) of the session id; the id itself is only in the browser's cookie.
    pub id_hash: &'a str,
    pub institution: InstitutionCode,
    /// The site's access-key generation when the session began.
    pub generation: &'a str,
    pub csrf: &'a str,
    pub at: Timestamp,
    /// How many sessions of this site are kept at most.
    pub keep: u32,
}

/// When sessions lapse: unused since before `idle_since`, or begun before `created_since`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle_since: Timestamp,
    pub created_since: Timestamp,
}

/// A live site session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSession {
    pub institution: InstitutionCode,
    pub generation: String,
    pub csrf: String,
}

/// Which secret of an institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstitutionKey {
    /// Lets a terminal enrol.
    Enrollment,
    /// Lets staff read their own devices' status.
    Access,
}

/// Filters for listing institutions.
#[derive(Debug, Clone)]
pub struct InstitutionFilter {
    pub prefecture: Option<Prefecture>,
    pub kind: Option<InstitutionKind>,
    pub limit: u32,
    pub offset: u32,
}

/// The default page: the first 1,000.
pub const DEFAULT_LIMIT: u32 = 1000;

impl Default for InstitutionFilter {
    fn default() -> Self {
        Self {
            prefecture: None,
            kind: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: i64,
    pub institution: InstitutionCode,
    pub kind: DeviceKind,
    pub vendor: Option<Vendor>,
    pub serial: String,
    pub parent: Option<i64>,
    pub installed: Option<Version>,
    pub running: Option<Version>,
    #[serde(serialize_with = "time::ser_opt_ts")]
    pub last_contact: Option<Timestamp>,
}

/// A device to enrol.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub institution: InstitutionCode,
    pub kind: DeviceKind,
    pub vendor: Option<Vendor>,
    pub serial: String,
    pub parent: Option<i64>,
    pub token_hash: String,
}

/// A release as published: its manifest, and the manifest as signed offline (the `releases`
/// table's `manifest` column holds the signed text, `signature` the JSON list of signatures).
#[derive(Debug, Clone)]
pub struct Release {
    pub id: String,
    pub manifest: Manifest,
    pub signed: Signed,
}

/// A device asking for a download slot ([`Store::take_turn`]).
#[derive(Debug, Clone, Copy)]
pub struct TurnAsk<'a> {
    pub campaign: &'a str,
    pub device: i64,
    pub now: Timestamp,
    /// When a slot taken or renewed now lapses.
    pub expires: Timestamp,
    /// The campaign's throttle (`max_downloads`).
    pub max: u32,
    /// The window the queue belongs to.
    pub window: Window,
    /// A uniform random number in [0, 1) for the appointment's jitter.
    pub jitter: f64,
}

/// A campaign as stored: the schedule text, the release, the targets and the throttle.
#[derive(Debug, Clone)]
pub struct CampaignRecord {
    pub id: String,
    pub schedule_toml: String,
    pub release_id: String,
    pub selector: Selector,
    pub max_downloads: u32,
    pub poll_interval: Duration,
    pub status: CampaignStatus,
}

/// One device's progress in one campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub campaign_id: String,
    pub device_id: i64,
    pub state: DeploymentState,
    pub bytes: u64,
    pub last_seq: i64,
    pub updated_at: Timestamp,
}

/// A state report to record: move `device`'s deployment in `campaign` from `from` to `to` if
/// `seq` is newer than the last report seen.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub campaign: &'a str,
    pub device: i64,
    pub seq: i64,
    pub from: DeploymentState,
    pub to: DeploymentState,
    pub bytes: u64,
    pub at: Timestamp,
}

/// The outcome of recording a state report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The report was applied.
    Applied(Deployment),
    /// The report's sequence number was already seen: nothing changed (idempotent repeat or a
    /// late, out-of-order report).
    Stale(Deployment),
}

/// One group of the progress counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressRow {
    pub state: DeploymentState,
    pub device: DeviceKind,
    pub prefecture: Prefecture,
    pub kind: InstitutionKind,
    pub vendor: Option<Vendor>,
    pub count: u64,
}

/// A device of a campaign with its site, for lists and CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentListing {
    pub institution: Institution,
    pub device: Device,
    pub state: DeploymentState,
    pub bytes: u64,
    #[serde(serialize_with = "time::ser_ts")]
    pub updated_at: Timestamp,
}

/// Filters for listing a campaign's devices.
#[derive(Debug, Clone)]
pub struct DeploymentFilter {
    pub state: Option<DeploymentState>,
    pub device: Option<DeviceKind>,
    pub prefecture: Option<Prefecture>,
    pub kind: Option<InstitutionKind>,
    pub vendor: Option<Vendor>,
    /// Only the devices silent by this rule (`onshi_core::silence`), computed by the caller.
    pub silent: Option<Silence>,
    pub limit: u32,
    pub offset: u32,
}

impl Default for DeploymentFilter {
    fn default() -> Self {
        Self {
            state: None,
            device: None,
            prefecture: None,
            kind: None,
            vendor: None,
            silent: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    #[serde(serialize_with = "time::ser_ts")]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// One page of sites' facts ([`Store::site_facts_page`]).
#[derive(Debug, Clone, Default)]
pub struct SiteFactsPage {
    /// The sites of the page with devices in the campaign, in code order.
    pub sites: Vec<(Institution, SiteFacts)>,
    /// The last institution code the page covered (pass it as the next `after`); `None` when
    /// no institution is left.
    pub through: Option<InstitutionCode>,
}

/// A silent device as the silent mail names it ([`Store::silent_of_sites`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentDevice {
    pub institution: InstitutionCode,
    pub serial: String,
    pub last_contact: Timestamp,
}

/// A notice mail to plan into the outbox.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub campaign: &'a str,
    pub institution: InstitutionCode,
    pub kind: NoticeKind,
    /// "once" or the Japan date: with (campaign, institution, kind) it makes the mail unique.
    pub key: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub at: Timestamp,
}

/// A mail in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    #[serde(serialize_with = "time::ser_ts")]
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    #[serde(serialize_with = "time::ser_ts")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "time::ser_opt_ts")]
    pub sent_at: Option<Timestamp>,
}

/// How many mails were sent and wait, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MailSummary {
    pub sent: u64,
    pub pending: u64,
    /// Pending mails that failed at least once.
    pub retrying: u64,
    /// Mails given up: never sent, never tried again (neither sent nor pending).
    pub gave_up: u64,
    pub by_kind: std::collections::BTreeMap<NoticeKind, MailCount>,
}

impl MailSummary {
    /// Adds `n` mails of `kind`, sent or not, tried or not, given up or not.
    pub fn add(&mut self, kind: NoticeKind, sent: bool, tried: bool, gave_up: bool, n: i64) {
        let n = u64::try_from(n).unwrap_or(0);
        if gave_up && !sent {
            self.gave_up += n;
            return;
        }
        let c = self.by_kind.entry(kind).or_default();
        if sent {
            c.sent += n;
            self.sent += n;
        } else {
            c.pending += n;
            self.pending += n;
            if tried {
                self.retrying += n;
            }
        }
    }
}

/// Sent and pending mails of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MailCount {
    pub sent: u64,
    pub pending: u64,
}

/// What a terminal's restart told the server ([`Store::record_restart`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartNote {
    /// The self-check of the new version passed.
    Healthy,
    /// The self-check of the new version failed.
    Unhealthy,
    /// The terminal restarted after the install without the new version running.
    OldVersion,
}

/// A change of a campaign's waves ([`Store::change_waves`]): from `expected` to `next`, and
/// with it, all in one transaction, the campaign's status, an audit line and a mail to the
/// operator.
#[derive(Debug, Clone, Copy)]
pub struct WaveChange<'a> {
    pub campaign: &'a str,
    pub expected: &'a WaveProgress,
    pub next: &'a WaveProgress,
    /// The campaign's status moves from the first to the second (else nothing changes).
    pub status: Option<(CampaignStatus, CampaignStatus)>,
    pub audit: Option<&'a AuditEntry>,
    pub mail: Option<&'a NewOperatorMail<'a>>,
    /// A rollback campaign to create in the same transaction (切り戻し,
    /// `onshi_core::waves::rollback`): stored as given (its status `active`), with a deployment
    /// for each of its devices and for nobody else.
    pub rollback: Option<NewRollback<'a>>,
    pub at: Timestamp,
}

/// The campaign that rolls a bad one back, and the devices it is offered to.
#[derive(Debug, Clone, Copy)]
pub struct NewRollback<'a> {
    pub campaign: &'a CampaignRecord,
    pub devices: &'a [i64],
}

/// A mail to the operator to plan (unique per campaign and key).
#[derive(Debug, Clone, Copy)]
pub struct NewOperatorMail<'a> {
    pub key: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

/// A mail to the operator in its outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorMail {
    pub id: i64,
    pub campaign: String,
    pub key: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    #[serde(serialize_with = "time::ser_opt_ts")]
    pub sent_at: Option<Timestamp>,
}

/// Everything the server persists. Calls are blocking; the server runs them off the async
/// workers.
pub trait Store: Send + Sync + 'static {
    /// Whether [`Store::device_by_token`] and [`Store::open_deployments_of`] answer from memory
    /// (after a first look-up), so the server may call them on an async worker instead of
    /// handing them to the blocking pool. SQLite, the one writer of its file, always; PostgreSQL
    /// while its replica is told of other replicas' writes (LISTEN/NOTIFY). A miss may still
    /// query, without stalling the async worker. ([`Store::record_contact`] only buffers.)
    fn reads_from_memory(&self) -> bool {
        false
    }

    /// The device of a token hash if this store has it in memory, without touching the
    /// database: what an async worker may ask ([`Store::reads_from_memory`]). `None` means
    /// "not in memory" (unknown, or not looked up yet): ask [`Store::device_by_token`] off the
    /// async workers.
    fn remembered_device(&self, _token_hash: &str) -> Option<Device> {
        None
    }

    /// A server setting (e.g. the operator token's hash).
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Sets a server setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Sets a setting only if it has none yet; returns the value that is stored now (so
    /// replicas starting together agree on the first one written).
    fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<String>;

    /// Creates or updates institutions (by code) in one transaction; returns how many.
    fn upsert_institutions(&self, institutions: &[Institution], at: Timestamp) -> Result<usize>;
    /// One institution.
    fn institution(&self, code: InstitutionCode) -> Result<Option<Institution>>;
    /// Institutions matching the filter, by code, and the total count matching.
    fn institutions(&self, filter: &InstitutionFilter) -> Result<(Vec<Institution>, u64)>;
    /// Stores the hash of an institution's enrollment or access key.
    fn set_institution_key(
        &self,
        code: InstitutionCode,
        which: InstitutionKey,
        hash: &str,
    ) -> Result<()>;
    /// The stored hash of an institution's key.
    fn institution_key(
        &self,
        code: InstitutionCode,
        which: InstitutionKey,
    ) -> Result<Option<String>>;

    /// Stores a one-time sign-in link for a site's staff (the announcement mail carries it):
    /// the SHA-256 of its token, the site's access-key generation when it was made (the hash
    /// of its access key, or empty when it has none) and its expiry. Links that expired more
    /// than a day ago are deleted on the way.
    fn create_sign_in_link(&self, link: &NewSignInLink<'_>) -> Result<()>;
    /// Uses a sign-in link, once: the link with this token hash, unused and unexpired at `at`,
    /// is marked used in the same statement, so two requests racing with one link (even on two
    /// replicas) sign in once. Returns the site and the generation stored with the link, or
    /// `None` (unknown, used or expired).
    fn redeem_sign_in_link(
        &self,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<Option<(InstitutionCode, String)>>;

    /// Starts a site's page session: deletes every session that expired under `limits`, stores
    /// this one, and keeps only the site's `keep` most recently used sessions (a site logging
    /// in again and again ends only its own oldest).
    fn create_site_session(&self, s: &NewSiteSession<'_>, limits: &SessionLimits) -> Result<()>;
    /// The live session with this id hash (used since `limits.idle_since`, begun since
    /// `limits.created_since`), marked used at `at` by the same statement; `None` otherwise.
    fn resume_site_session(
        &self,
        id_hash: &str,
        limits: &SessionLimits,
        at: Timestamp,
    ) -> Result<Option<SiteSession>>;
    /// Ends one site session (logout).
    fn end_site_session(&self, id_hash: &str) -> Result<()>;
    /// Ends every session of a site (its access key was re-issued); returns how many.
    fn end_site_sessions_of(&self, code: InstitutionCode) -> Result<u64>;

    /// Stores an enrolment key's hash with its expiry and number of uses (a new key replaces
    /// the old one).
    fn set_enrollment_key(
        &self,
        code: InstitutionCode,
        hash: &str,
        expires: Timestamp,
        uses: u32,
    ) -> Result<()>;
    /// Enrols a device within `rules`, in one transaction: the key's use, the cap and the
    /// serial are checked and the device stored together, or nothing changes and the refusal is
    /// [`StoreError::EnrolRefused`]. A serial already enrolled is refused unless that device was
    /// revoked: then it is enrolled again with its old id and the new token.
    fn enrol_device(
        &self,
        device: &NewDevice,
        rules: &EnrolRules<'_>,
        at: Timestamp,
    ) -> Result<Device>;
    /// Revokes a device and, for a terminal, its card readers: their tokens end at once (on
    /// every replica), their download slots are freed and their serials may be enrolled again.
    /// Answers the ids revoked now (none if the device was revoked already); `NotFound` if there
    /// is no such device.
    fn revoke_device(&self, id: i64, at: Timestamp) -> Result<Vec<i64>>;
    /// The device whose token hashes to `token_hash`: who it is (id, site, kind, vendor, serial,
    /// parent). Versions and last contact are left empty; read them with [`Store::device`].
    fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>>;
    /// [`Store::device_by_token`] and that device's [`Store::open_deployments_of`] in one call:
    /// what a check-in needs, in one round trip to a shared database.
    fn device_and_open_deployments(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Device, Vec<Deployment>)>> {
        let Some(device) = self.device_by_token(token_hash)? else {
            return Ok(None);
        };
        let open = self.open_deployments_of(device.id)?;
        Ok(Some((device, open)))
    }
    /// One device.
    fn device(&self, id: i64) -> Result<Option<Device>>;
    /// The devices of one institution.
    fn devices_of(&self, code: InstitutionCode) -> Result<Vec<Device>>;
    /// Every device with its site, for targeting.
    fn all_devices(&self) -> Result<Vec<(Device, Institution)>>;
    /// Records a check-in: last contact (to the minute) and the versions the device reported.
    /// May be buffered (it is not a state report); [`Store::flush`] writes it.
    fn record_contact(
        &self,
        id: i64,
        installed: Option<&Version>,
        running: Option<&Version>,
        at: Timestamp,
    ) -> Result<()>;
    /// Writes buffered contacts.
    fn flush(&self) -> Result<()>;
    /// Writes at most `max` buffered contacts (the background flusher's steady pace, so that a
    /// burst of first contacts never takes a core away from check-ins); returns how many are
    /// still buffered.
    fn flush_some(&self, max: usize) -> Result<usize> {
        let _ = max;
        self.flush()?;
        Ok(0)
    }

    /// Records an artifact stored under DATA.
    fn add_artifact(&self, sha256: Sha256, size: u64, at: Timestamp) -> Result<()>;
    /// An artifact's size, if known.
    fn artifact(&self, sha256: Sha256) -> Result<Option<u64>>;

    /// Stores a release.
    fn insert_release(&self, release: &Release, at: Timestamp) -> Result<()>;
    /// One release.
    fn release(&self, id: &str) -> Result<Option<Release>>;
    /// Every published release's id and signed manifest text (what the snapshot lists).
    fn release_manifests(&self) -> Result<Vec<(String, String)>>;
    /// How many releases are published (releases are never changed or deleted, so the count
    /// names the set).
    fn release_count(&self) -> Result<u64>;

    /// Stores a new campaign; an existing id is a conflict.
    fn insert_campaign(&self, campaign: &CampaignRecord, at: Timestamp) -> Result<()>;
    /// One campaign.
    fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>>;
    /// Every campaign.
    fn campaigns(&self) -> Result<Vec<CampaignRecord>>;
    /// Changes a campaign's status.
    fn set_campaign_status(&self, id: &str, status: CampaignStatus, at: Timestamp) -> Result<()>;

    /// Adds `waiting` deployments for devices that have none in the campaign; returns how many.
    fn ensure_deployments(&self, campaign: &str, devices: &[i64], at: Timestamp) -> Result<usize>;
    /// The deployments of a device in campaigns that are not closed, newest campaign first.
    fn open_deployments_of(&self, device: i64) -> Result<Vec<Deployment>>;
    /// [`Store::open_deployments_of`] read from the database itself: a PostgreSQL replica's
    /// cache may lag another replica's write by one notice. The default is for a store whose
    /// cache is never behind (SQLite: the only writer of its file).
    fn open_deployments_fresh(&self, device: i64) -> Result<Vec<Deployment>> {
        self.open_deployments_of(device)
    }
    /// Applies a state report if `seq` is newer than the last one seen and the state is still
    /// `from` (compare-and-set); the caller has checked the transition with the core rules.
    fn apply_report(&self, report: &Report<'_>) -> Result<ReportOutcome> {
        self.apply_report_logged(report, None)
    }
    /// [`Store::apply_report`], and, when the report applies, `audit` appended to the audit log
    /// in the same transaction: a state change and its audit line are committed together or not
    /// at all (a report retried after a lost answer is `Stale` and is not logged twice).
    fn apply_report_logged(
        &self,
        report: &Report<'_>,
        audit: Option<&AuditEntry>,
    ) -> Result<ReportOutcome>;

    /// Takes or renews a download slot; `false` when `max` other devices hold live slots.
    fn acquire_lease(
        &self,
        campaign: &str,
        device: i64,
        now: Timestamp,
        expires: Timestamp,
        max: u32,
    ) -> Result<bool>;
    /// Takes or renews a download slot, or gives the device its place and appointment in the
    /// campaign's queue for its window (`onshi_core::appointment`): a free slot goes to the first
    /// waiting devices, so a device asking while others wait ahead of it waits too. The default
    /// keeps no queue: a refused device comes back in about two minutes, as before appointments.
    fn take_turn(&self, ask: &TurnAsk<'_>) -> Result<Turn> {
        if self.acquire_lease(ask.campaign, ask.device, ask.now, ask.expires, ask.max)? {
            return Ok(Turn::Slot);
        }
        let retry = Duration::from_secs(120).mul_f64(0.8 + 0.4 * ask.jitter.clamp(0.0, 1.0));
        let at = ask.now.checked_add(retry).unwrap_or(ask.now);
        Ok(Turn::Wait {
            position: 0,
            at: ask.window.keep_inside(at, ask.jitter),
        })
    }
    /// [`Store::take_turn`] answered from memory when it needs no write: the device holds no
    /// slot and every slot is held, so it is told its place and appointment. `None` when the
    /// database must be asked (the store keeps no such state, or a slot would be taken or
    /// renewed).
    fn turn_in_memory(&self, ask: &TurnAsk<'_>) -> Result<Option<Turn>> {
        let _ = ask;
        Ok(None)
    }
    /// The device's place in the campaign's queue (how many wait ahead of it) and its
    /// appointment, if it waits for a slot now.
    fn queue_place(&self, campaign: &str, device: i64) -> Result<Option<(u64, Timestamp)>> {
        let _ = (campaign, device);
        Ok(None)
    }
    /// How many devices wait in the campaign's queue for a slot (places that lapsed but were
    /// not yet noticed included); 0 for a store that keeps no queue.
    fn queue_length(&self, campaign: &str) -> Result<u64> {
        let _ = campaign;
        Ok(0)
    }
    /// Whether the database answers now: one round trip (the server's `/readyz`).
    fn ping(&self) -> Result<()>;
    /// Whether the device holds a live slot.
    fn has_lease(&self, campaign: &str, device: i64, now: Timestamp) -> Result<bool>;
    /// Gives a slot back.
    fn release_lease(&self, campaign: &str, device: i64) -> Result<()>;
    /// How many live slots a campaign has.
    fn live_leases(&self, campaign: &str, now: Timestamp) -> Result<u64>;

    /// Counts of a campaign's deployments by state, device kind, prefecture, kind and vendor.
    fn progress(&self, campaign: &str) -> Result<Vec<ProgressRow>>;
    /// A campaign's devices matching the filter.
    fn deployments(
        &self,
        campaign: &str,
        filter: &DeploymentFilter,
    ) -> Result<Vec<DeploymentListing>>;

    /// Where each targeted site's devices stand in a campaign (sites with no device in it are
    /// left out).
    fn site_facts(&self, campaign: &str) -> Result<Vec<(Institution, SiteFacts)>>;
    /// One site's facts in a campaign.
    fn site_facts_of(&self, campaign: &str, code: InstitutionCode) -> Result<SiteFacts>;

    /// Plans a mail unless one with the same (campaign, institution, kind, key) exists; answers
    /// whether it was added.
    fn enqueue_mail(&self, mail: &NewMail<'_>) -> Result<bool>;
    /// The (institution, kind, key) of every mail planned for a campaign.
    fn mail_keys(&self, campaign: &str) -> Result<Vec<(InstitutionCode, NoticeKind, String)>>;

    // The notices worker's planning at national scale: one bounded page of sites per call, so
    // no call holds the store for long and nothing holds every site at once.

    /// [`Store::site_facts`] for the next at most `limit` institutions after `after` (by code),
    /// and where the page after it starts.
    fn site_facts_page(
        &self,
        campaign: &str,
        after: Option<InstitutionCode>,
        limit: u32,
    ) -> Result<SiteFactsPage>;
    /// The (institution, kind, key) of the mails planned for a campaign's sites whose code is
    /// after `after` and at most `through`.
    fn mail_keys_of_sites(
        &self,
        campaign: &str,
        after: Option<InstitutionCode>,
        through: InstitutionCode,
    ) -> Result<Vec<(InstitutionCode, NoticeKind, String)>>;
    /// [`Store::enqueue_mail`] for several mails in one transaction; answers how many were
    /// added (a mail whose key exists is left out).
    fn enqueue_mails(&self, mails: &[NewMail<'_>]) -> Result<u64>;
    /// The campaign's devices silent by `rule` at the sites whose code is after `after` and at
    /// most `through`, in code order (the contact buffer is flushed first).
    fn silent_of_sites(
        &self,
        campaign: &str,
        rule: &Silence,
        after: Option<InstitutionCode>,
        through: InstitutionCode,
    ) -> Result<Vec<SilentDevice>>;
    /// Claims up to `limit` unsent mails due at `now`, oldest first, by moving their next
    /// attempt to `claim_until` (a worker that dies mid-send leaves them to be retried then).
    fn claim_mails(&self, now: Timestamp, claim_until: Timestamp, limit: u32) -> Result<Vec<Mail>>;
    /// Marks a mail sent.
    fn mail_sent(&self, id: i64, at: Timestamp) -> Result<()>;
    /// Records a failed attempt; the mail is retried at `retry_at`.
    fn mail_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<()>;
    /// Records a last failed attempt: the mail can never be sent (a permanent refusal, or too
    /// many attempts) and no claim takes it again; [`MailSummary::gave_up`] counts it.
    fn mail_given_up(&self, id: i64, error: &str, at: Timestamp) -> Result<()>;
    /// Counts of sent and pending mails.
    fn mail_summary(&self) -> Result<MailSummary>;
    /// The newest mails, optionally of one site, newest first.
    fn mails(&self, institution: Option<InstitutionCode>, limit: u32) -> Result<Vec<Mail>>;

    // Waves and health gates (onshi_core::waves).

    /// Stores each site's wave and the campaign's first wave progress, in one transaction
    /// (at activation). A campaign that has a progress already keeps it and its sites.
    fn start_waves(
        &self,
        campaign: &str,
        sites: &[(InstitutionCode, u16)],
        progress: &WaveProgress,
        at: Timestamp,
    ) -> Result<()>;
    /// Every assigned site's wave in a campaign.
    fn wave_sites(&self, campaign: &str) -> Result<Vec<(InstitutionCode, u16)>>;
    /// How far a campaign's waves are; `None` for a campaign without waves.
    fn wave_progress(&self, campaign: &str) -> Result<Option<WaveProgress>>;
    /// Replaces the campaign's wave progress if it is still `expected` (compare-and-set), and
    /// with it changes the status, appends the audit line and plans the operator's mail, all in
    /// one transaction; `false` (and nothing changed) when another call changed it first or the
    /// campaign's status was not the expected one.
    fn change_waves(&self, change: &WaveChange<'_>) -> Result<bool>;
    /// The campaign's devices past `waiting`, each with its site's wave (sites not assigned
    /// count in wave `last`) and its state, in device order: what a rollback chooses from.
    fn wave_devices(&self, campaign: &str, last: u16) -> Result<Vec<(i64, u16, DeploymentState)>>;
    /// Each wave's counts (sites not assigned count in wave `last`); a terminal that restarted
    /// without the new version at or before `overdue_before` counts as overdue.
    fn wave_health(
        &self,
        campaign: &str,
        last: u16,
        overdue_before: Timestamp,
    ) -> Result<Vec<WaveHealth>>;
    /// Records what a terminal's restart told: its self-check, or that it restarted without the
    /// new version (the first such restart is kept).
    fn record_restart(
        &self,
        campaign: &str,
        device: i64,
        note: RestartNote,
        at: Timestamp,
    ) -> Result<()>;
    /// Claims up to `limit` unsent operator mails due at `now` (as [`Store::claim_mails`]).
    fn claim_operator_mails(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OperatorMail>>;
    /// Marks an operator mail sent.
    fn operator_mail_sent(&self, id: i64, at: Timestamp) -> Result<()>;
    /// Records a failed attempt; the mail is retried at `retry_at`.
    fn operator_mail_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<()>;
    /// Records a last failed attempt of an operator mail (as [`Store::mail_given_up`]).
    fn operator_mail_given_up(&self, id: i64, error: &str, at: Timestamp) -> Result<()>;
    /// A campaign's operator mails, oldest first.
    fn operator_mails(&self, campaign: &str) -> Result<Vec<OperatorMail>>;

    /// Appends to the audit log.
    fn audit(&self, entry: &AuditEntry) -> Result<()>;
    /// The newest audit entries, newest first.
    fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>>;
}
