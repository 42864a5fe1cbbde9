//! The operator API (`/api/v1/admin/…`, operator token): institutions and their keys, packages
//! and signed releases, campaigns and their controls, progress, device lists, the audit log and
//! (on a simulated clock) the clock.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::civil::Time;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Component, Manifest, Sha256, SignedManifest, Target};
use onshi_core::schedule::Campaign;
use onshi_core::selector::Selector;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use onshi_store::{
    CampaignRecord, DeploymentFilter, DeploymentListing, Institution, InstitutionFilter,
    InstitutionKey, Release,
};
use serde::{Deserialize, Serialize};

use crate::artifacts;
use crate::auth::{Operator, hash_secret, new_secret};
use crate::error::{ApiError, ApiResult};
use crate::history::{self, Sample};
use crate::json::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::targeting;

/// The largest package accepted.
pub const MAX_PACKAGE: u64 = 8 << 30;

const OPERATOR: &str = "operator";

// ---------- institutions ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionInput {
    code: String,
    name: String,
    kind: String,
    #[serde(default)]
    prefecture: Option<PrefectureInput>,
    email: String,
    #[serde(default)]
    auto_restart: Option<String>,
}

/// A prefecture as JSON gives it (number, as responses write it) or CSV (text: number or name).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum PrefectureInput {
    Number(u8),
    Text(String),
}

/// Validates one institution; `line` names the CSV line or array index in errors.
fn parse_institution(input: InstitutionInput, place: &str) -> ApiResult<Institution> {
    let bad = |msg: String| ApiError::bad_request("invalid_institution", format!("{place}: {msg}"));
    let code = InstitutionCode::parse(input.code.trim()).map_err(|e| bad(e.to_string()))?;
    let kind: InstitutionKind = input.kind.trim().parse().map_err(|e| bad(format!("{e}")))?;
    if !kind.matches(code.score_table()) {
        return Err(bad(format!(
            "kind {kind} does not match the 点数表 digit of code {code}"
        )));
    }
    let prefecture = match &input.prefecture {
        Some(PrefectureInput::Number(n)) => Some(n.to_string()),
        Some(PrefectureInput::Text(t)) => Some(t.trim().to_owned()).filter(|t| !t.is_empty()),
        None => None,
    };
    if let Some(p) = prefecture {
        let p: Prefecture = p.parse().map_err(|e| bad(format!("{e}")))?;
        if p != code.prefecture() {
            return Err(bad(format!(
                "prefecture {} does not match code {code} ({})",
                p.name_ja(),
                code.prefecture().name_ja()
            )));
        }
    }
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(bad("name must be 1–200 characters".into()));
    }
    let email = input.email.trim().to_owned();
    let email_ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !email.contains(char::is_whitespace);
    if !email_ok {
        return Err(bad(format!("e-mail {email:?} is not an address")));
    }
    let auto_restart = match input.auto_restart.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(
            Time::strptime("%H:%M", t)
                .map_err(|_| bad(format!("auto_restart {t:?} is not HH:MM")))?,
        ),
    };
    Ok(Institution {
        code,
        name,
        kind,
        prefecture: code.prefecture(),
        email,
        auto_restart,
    })
}

#[derive(Serialize)]
pub struct Imported {
    imported: usize,
}

/// `POST /api/v1/admin/institutions`: create or update institutions (a JSON array).
pub async fn create_institutions(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(inputs): ApiJson<Vec<InstitutionInput>>,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    if inputs.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_institution",
            "the array is empty: send at least one institution",
        ));
    }
    let list = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| parse_institution(input, &format!("item {i}")))
        .collect::<ApiResult<Vec<_>>>()?;
    save_institutions(&state, list).await
}

/// `POST /api/v1/admin/institutions/import`: CSV with the header
/// `code,name,kind,prefecture,email,auto_restart`; all lines or none.
pub async fn import_institutions(
    State(state): State<AppState>,
    _: Operator,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    let body = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request("invalid_csv", format!("the CSV is not UTF-8: {e}")))?;
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    let mut list = Vec::new();
    for (i, row) in reader.deserialize::<InstitutionInput>().enumerate() {
        let place = format!("line {}", i + 2);
        let input =
            row.map_err(|e| ApiError::bad_request("invalid_csv", format!("{place}: {e}")))?;
        list.push(parse_institution(input, &place)?);
    }
    if list.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_csv",
            "no institutions: expected a header code,name,kind,prefecture,email,auto_restart and one line per site",
        ));
    }
    save_institutions(&state, list).await
}

async fn save_institutions(
    state: &AppState,
    list: Vec<Institution>,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    let now = state.now();
    let n = list.len();
    let imported = state.db(move |s| s.upsert_institutions(&list, now)).await?;
    state
        .audit(
            OPERATOR,
            "institutions_upserted",
            "institutions",
            format!("{n}"),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Imported { imported })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    prefecture: Option<String>,
    kind: Option<InstitutionKind>,
    limit: Option<u32>,
    offset: Option<u32>,
}

#[derive(Serialize)]
pub struct InstitutionList {
    total: u64,
    institutions: Vec<Institution>,
}

/// `GET /api/v1/admin/institutions?prefecture=&kind=&limit=&offset=`.
pub async fn list_institutions(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<InstitutionList>> {
    let filter = InstitutionFilter {
        prefecture: parse_prefecture(q.prefecture.as_deref())?,
        kind: q.kind,
        limit: q.limit.unwrap_or(onshi_store::DEFAULT_LIMIT).min(10_000),
        offset: q.offset.unwrap_or(0),
    };
    let (institutions, total) = state.db(move |s| s.institutions(&filter)).await?;
    Ok(Json(InstitutionList {
        total,
        institutions,
    }))
}

fn parse_prefecture(p: Option<&str>) -> ApiResult<Option<Prefecture>> {
    p.map(|p| {
        p.parse()
            .map_err(|e: onshi_core::institution::UnknownPrefecture| {
                ApiError::bad_request("invalid_prefecture", e.to_string())
            })
    })
    .transpose()
}

fn parse_code(code: &str) -> ApiResult<InstitutionCode> {
    InstitutionCode::parse(code)
        .map_err(|e| ApiError::bad_request("invalid_institution_code", e.to_string()))
}

/// `POST /api/v1/admin/institutions/{code}/enrollment-key`: a new key for enrolling the
/// site's terminal (shown once; only its hash is kept).
pub async fn enrollment_key(
    State(state): State<AppState>,
    _: Operator,
    Path(code): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = issue_key(&state, &code, InstitutionKey::Enrollment).await?;
    Ok(Json(serde_json::json!({ "enrollment_key": key })))
}

/// `POST /api/v1/admin/institutions/{code}/access-key`: a new key for the site's staff to read
/// their own devices' status.
pub async fn access_key(
    State(state): State<AppState>,
    _: Operator,
    Path(code): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = issue_key(&state, &code, InstitutionKey::Access).await?;
    Ok(Json(serde_json::json!({ "access_key": key })))
}

async fn issue_key(state: &AppState, code: &str, which: InstitutionKey) -> ApiResult<String> {
    let code = parse_code(code)?;
    let key = new_secret();
    let hash = hash_secret(&key);
    state
        .db(move |s| s.set_institution_key(code, which, &hash))
        .await?;
    let action = match which {
        InstitutionKey::Enrollment => "enrollment_key_issued",
        InstitutionKey::Access => "access_key_issued",
    };
    state.audit(OPERATOR, action, code.to_string(), "").await?;
    Ok(key)
}

// ---------- packages and releases ----------

#[derive(Serialize)]
pub struct Uploaded {
    sha256: Sha256,
    size: u64,
}

/// `PUT /api/v1/admin/artifacts`: the raw package bytes; stored under their SHA-256.
pub async fn upload_artifact(
    State(state): State<AppState>,
    _: Operator,
    body: Body,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let (sha, size) = store_artifact(&state, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(Uploaded { sha256: sha, size })))
}

/// Stores a package (streamed, at most [`MAX_PACKAGE`] bytes), records and audits it: the one
/// way a package enters, from the API or the dashboard's upload form.
pub async fn store_artifact<S, E>(state: &AppState, body: S) -> ApiResult<(Sha256, u64)>
where
    S: futures_lite::Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let (sha, size) = artifacts::store_upload(&state.data_dir, body, MAX_PACKAGE).await?;
    let now = state.now();
    state.db(move |s| s.add_artifact(sha, size, now)).await?;
    state
        .audit(
            OPERATOR,
            "artifact_uploaded",
            sha.hex(),
            format!("{size} bytes"),
        )
        .await?;
    Ok((sha, size))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseInput {
    pub id: String,
    pub version: Version,
    pub components: Vec<ComponentInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentInput {
    pub target: Target,
    pub sha256: Sha256,
}

fn valid_id(id: &str, what: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_id",
            format!("{what} id must be 1–64 characters of letters, digits, '.', '_', '-'"),
        ))
    }
}

/// `POST /api/v1/admin/releases`: builds and signs a release manifest from uploaded packages.
pub async fn create_release(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(input): ApiJson<ReleaseInput>,
) -> ApiResult<(StatusCode, Json<SignedManifest>)> {
    let signed = sign_release(&state, input).await?;
    Ok((StatusCode::CREATED, Json(signed)))
}

/// Checks the packages, signs and stores a release: shared by the API and the dashboard.
pub async fn sign_release(state: &AppState, input: ReleaseInput) -> ApiResult<SignedManifest> {
    valid_id(&input.id, "release")?;
    if input.components.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_release",
            "a release needs at least one component",
        ));
    }
    let mut components = Vec::new();
    for c in input.components {
        if components.iter().any(|x: &Component| x.target == c.target) {
            return Err(ApiError::bad_request(
                "invalid_release",
                format!("target {} is listed twice", c.target),
            ));
        }
        let sha = c.sha256;
        let size = state.db(move |s| s.artifact(sha)).await?.ok_or_else(|| {
            ApiError::bad_request("unknown_artifact", format!("no uploaded package {sha}"))
        })?;
        components.push(Component {
            target: c.target,
            sha256: c.sha256,
            size,
        });
    }
    let manifest = Manifest {
        release_id: input.id.clone(),
        version: input.version,
        created_at: state.now().to_string(),
        components,
    };
    let signed = SignedManifest::sign(&manifest, &state.signing_key);
    let release = Release {
        id: input.id.clone(),
        manifest,
        signed: signed.clone(),
    };
    let now = state.now();
    let id = input.id.clone();
    state
        .db(move |s| {
            if s.release(&id)?.is_some() {
                return Err(onshi_store::StoreError::Conflict(format!(
                    "release {id} already exists"
                )));
            }
            s.insert_release(&release, now)
        })
        .await?;
    state
        .audit(OPERATOR, "release_created", input.id, "signed")
        .await?;
    Ok(signed)
}

/// `GET /api/v1/admin/releases/{id}`.
pub async fn get_release(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<SignedManifest>> {
    let release = state
        .db(move |s| s.release(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("release"))?;
    Ok(Json(release.signed))
}

// ---------- campaigns ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// The campaign TOML (DESIGN.md §4), or `preset:2026-01`.
    pub schedule: String,
    pub release_id: String,
    #[serde(default)]
    pub selector: Selector,
    pub throttle: Throttle,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub max_concurrent_downloads: u32,
    pub poll_interval_seconds: u64,
}

#[derive(Serialize)]
pub struct CampaignView {
    id: String,
    title: String,
    status: CampaignStatus,
    release_id: String,
    selector: Selector,
    throttle: Throttle,
    schedule: onshi_core::schedule::StatusReport,
}

fn view(record: &CampaignRecord, schedule: &Campaign, now: jiff::Timestamp) -> CampaignView {
    CampaignView {
        id: record.id.clone(),
        title: schedule.title().to_owned(),
        status: record.status,
        release_id: record.release_id.clone(),
        selector: record.selector.clone(),
        throttle: Throttle {
            max_concurrent_downloads: record.max_downloads,
            poll_interval_seconds: record.poll_interval.as_secs(),
        },
        schedule: schedule.report(now),
    }
}

/// `POST /api/v1/admin/campaigns`: a draft campaign from a schedule, a release, targets and a
/// throttle.
pub async fn create_campaign(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    let (record, schedule) = new_campaign(&state, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&record, &schedule, state.now())),
    ))
}

/// Validates and stores a draft campaign: shared by the API and the dashboard.
pub async fn new_campaign(
    state: &AppState,
    input: CampaignInput,
) -> ApiResult<(CampaignRecord, Campaign)> {
    let schedule_toml = match input.schedule.strip_prefix("preset:") {
        Some(name) => onshi_core::schedule::preset_text(name)
            .map_err(|e| ApiError::bad_request("invalid_schedule", e.to_string()))?
            .to_owned(),
        None => input.schedule,
    };
    let schedule = Campaign::parse(&schedule_toml)
        .map_err(|e| ApiError::bad_request("invalid_schedule", e.to_string()))?;
    let t = input.throttle;
    if !(1..=1_000_000).contains(&t.max_concurrent_downloads) {
        return Err(ApiError::bad_request(
            "invalid_throttle",
            "max_concurrent_downloads must be 1–1000000",
        ));
    }
    if !(5..=86_400).contains(&t.poll_interval_seconds) {
        return Err(ApiError::bad_request(
            "invalid_throttle",
            "poll_interval_seconds must be 5–86400",
        ));
    }
    let record = CampaignRecord {
        id: schedule.id().to_owned(),
        schedule_toml,
        release_id: input.release_id,
        selector: input.selector,
        max_downloads: t.max_concurrent_downloads,
        poll_interval: std::time::Duration::from_secs(t.poll_interval_seconds),
        status: CampaignStatus::Draft,
    };
    let now = state.now();
    let stored = record.clone();
    state
        .db(move |s| {
            if s.release(&stored.release_id)?.is_none() {
                return Err(onshi_store::StoreError::NotFound(format!(
                    "release {}",
                    stored.release_id
                )));
            }
            s.insert_campaign(&stored, now)
        })
        .await?;
    state
        .audit(OPERATOR, "campaign_created", &record.id, &record.release_id)
        .await?;
    Ok((record, schedule))
}

/// One campaign, or 404.
pub async fn load_campaign(state: &AppState, id: String) -> ApiResult<CampaignRecord> {
    state
        .db(move |s| s.campaign(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))
}

/// `GET /api/v1/admin/campaigns`.
pub async fn list_campaigns(
    State(state): State<AppState>,
    _: Operator,
) -> ApiResult<Json<Vec<CampaignView>>> {
    let now = state.now();
    let records = state.db(|s| s.campaigns()).await?;
    let views = records
        .iter()
        .map(|r| Ok(view(r, &*state.schedule(r)?, now)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(views))
}

/// `GET /api/v1/admin/campaigns/{id}`.
pub async fn get_campaign(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let record = load_campaign(&state, id).await?;
    Ok(Json(view(&record, &*state.schedule(&record)?, state.now())))
}

/// `POST /api/v1/admin/campaigns/{id}/{activate|pause|resume|close}`.
pub async fn control_campaign(
    State(state): State<AppState>,
    _: Operator,
    Path((id, verb)): Path<(String, String)>,
) -> ApiResult<Json<CampaignView>> {
    let record = change_campaign_status(&state, id, &verb).await?;
    Ok(Json(view(&record, &*state.schedule(&record)?, state.now())))
}

/// Activates, pauses, resumes or closes a campaign (activation targets its devices), audited:
/// shared by the API and the dashboard's buttons.
pub async fn change_campaign_status(
    state: &AppState,
    id: String,
    verb: &str,
) -> ApiResult<CampaignRecord> {
    use CampaignStatus::*;
    let mut record = load_campaign(state, id).await?;
    let to = match (verb, record.status) {
        ("activate", Draft) => Active,
        ("pause", Active) => Paused,
        ("resume", Paused) => Active,
        ("close", Draft | Active | Paused) => Closed,
        ("activate" | "pause" | "resume" | "close", from) => {
            return Err(ApiError::conflict(
                "invalid_campaign_transition",
                format!("cannot {verb} a {} campaign", from.slug()),
            ));
        }
        _ => return Err(ApiError::not_found(format!("campaign action {verb}"))),
    };
    let now = state.now();
    let stored = record.clone();
    let added = state
        .db(move |s| {
            let added = if to == Active && stored.status == Draft {
                targeting::target_campaign(s, &stored, now)?
            } else {
                0
            };
            s.set_campaign_status(&stored.id, to, now)?;
            Ok(added)
        })
        .await?;
    // An activated campaign is announced now, not at the next planning round.
    state.notices_nudge.notify_one();
    state
        .audit(
            OPERATOR,
            &format!("campaign_{verb}"),
            &record.id,
            format!(
                "{} -> {} ({added} devices targeted)",
                record.status.slug(),
                to.slug()
            ),
        )
        .await?;
    state.forget_campaign(&record.id);
    tracing::info!(campaign = %record.id, from = record.status.slug(), to = to.slug(), added, "campaign status changed");
    record.status = to;
    if matches!(to, Active | Paused) {
        // The dashboard's chart starts at activation and marks pauses.
        let p = progress_of(state, &record).await?;
        history::lock(&state.history).record(&record.id, Sample::of(now, &p.all));
    }
    Ok(record)
}

#[derive(Serialize, Default, Clone)]
pub struct Counts {
    pub total: u64,
    pub states: BTreeMap<&'static str, u64>,
    /// Terminals installed but not restarted (再起動が必要).
    pub restart_required: u64,
}

impl Counts {
    /// The count in one state.
    pub fn get(&self, state: DeploymentState) -> u64 {
        self.states.get(state.slug()).copied().unwrap_or(0)
    }

    fn add(&mut self, state: DeploymentState, device: DeviceKind, n: u64) {
        self.total += n;
        *self.states.entry(state.slug()).or_default() += n;
        if state.restart_required(device) {
            self.restart_required += n;
        }
    }

    fn zeroed() -> Self {
        let mut c = Self::default();
        for s in DeploymentState::ALL {
            c.states.insert(s.slug(), 0);
        }
        c
    }
}

#[derive(Serialize)]
pub struct Progress {
    pub campaign: String,
    pub at: String,
    pub all: Counts,
    pub by_device: BTreeMap<&'static str, Counts>,
    pub by_prefecture: Vec<PrefectureCounts>,
    pub by_kind: BTreeMap<&'static str, Counts>,
    pub by_vendor: BTreeMap<&'static str, Counts>,
    pub live_downloads: u64,
}

#[derive(Serialize)]
pub struct PrefectureCounts {
    pub prefecture: u8,
    pub name: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
}

/// `GET /api/v1/admin/campaigns/{id}/progress`: counts per state, by device kind, prefecture,
/// institution kind and reader vendor.
pub async fn progress(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Progress>> {
    let record = load_campaign(&state, id).await?;
    Ok(Json(progress_of(&state, &record).await?))
}

/// A campaign's counts now: the one computation behind the API, the dashboard and its chart.
pub async fn progress_of(state: &AppState, record: &CampaignRecord) -> ApiResult<Progress> {
    let now = state.now();
    let cid = record.id.clone();
    let (rows, live) = state
        .db(move |s| Ok((s.progress(&cid)?, s.live_leases(&cid, now)?)))
        .await?;
    let mut all = Counts::zeroed();
    let mut by_device: BTreeMap<&'static str, Counts> =
        [DeviceKind::Terminal, DeviceKind::CardReader]
            .iter()
            .map(|d| (d.slug(), Counts::zeroed()))
            .collect();
    let mut by_pref: BTreeMap<u8, Counts> = Prefecture::all()
        .map(|p| (p.number(), Counts::zeroed()))
        .collect();
    let mut by_kind: BTreeMap<&'static str, Counts> = InstitutionKind::ALL
        .iter()
        .map(|k| (k.slug(), Counts::zeroed()))
        .collect();
    let mut by_vendor: BTreeMap<&'static str, Counts> = Vendor::ALL
        .iter()
        .map(|v| (v.slug(), Counts::zeroed()))
        .collect();
    for r in rows {
        all.add(r.state, r.device, r.count);
        by_device
            .entry(r.device.slug())
            .or_insert_with(Counts::zeroed)
            .add(r.state, r.device, r.count);
        by_pref
            .entry(r.prefecture.number())
            .or_insert_with(Counts::zeroed)
            .add(r.state, r.device, r.count);
        by_kind
            .entry(r.kind.slug())
            .or_insert_with(Counts::zeroed)
            .add(r.state, r.device, r.count);
        if let Some(v) = r.vendor {
            by_vendor
                .entry(v.slug())
                .or_insert_with(Counts::zeroed)
                .add(r.state, r.device, r.count);
        }
    }
    let schedule = state.schedule(record)?;
    Ok(Progress {
        campaign: record.id.clone(),
        at: schedule.rfc3339(now),
        all,
        by_device,
        by_prefecture: by_pref
            .into_iter()
            .filter_map(|(n, counts)| {
                Prefecture::from_number(n).map(|p| PrefectureCounts {
                    prefecture: n,
                    name: p.name_ja(),
                    counts,
                })
            })
            .collect(),
        by_kind,
        by_vendor,
        live_downloads: live,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesQuery {
    state: Option<DeploymentState>,
    device: Option<DeviceKind>,
    prefecture: Option<String>,
    kind: Option<InstitutionKind>,
    vendor: Option<Vendor>,
    limit: Option<u32>,
    offset: Option<u32>,
    format: Option<String>,
}

/// `GET /api/v1/admin/campaigns/{id}/devices?state=installed&device=terminal&format=csv`:
/// e.g. every terminal that still needs a restart.
pub async fn campaign_devices(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DevicesQuery>,
) -> ApiResult<Response> {
    let csv_out = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format {other:?}: expected json or csv"),
            ));
        }
    };
    let filter = DeploymentFilter {
        state: q.state,
        device: q.device,
        prefecture: parse_prefecture(q.prefecture.as_deref())?,
        kind: q.kind,
        vendor: q.vendor,
        limit: q.limit.unwrap_or(if csv_out {
            u32::MAX
        } else {
            onshi_store::DEFAULT_LIMIT
        }),
        offset: q.offset.unwrap_or(0),
    };
    let record = load_campaign(&state, id).await?;
    let cid = record.id.clone();
    let rows = state.db(move |s| s.deployments(&cid, &filter)).await?;
    if !csv_out {
        return Ok(Json(rows).into_response());
    }
    csv_download(&format!("{}-devices.csv", record.id), &rows)
}

/// A campaign's device rows as a CSV download (UTF-8, one header line): the API's
/// `format=csv` and the dashboard's export of the sites needing action.
pub fn csv_download(filename: &str, rows: &[DeploymentListing]) -> ApiResult<Response> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "institution_code",
        "institution_name",
        "prefecture",
        "kind",
        "email",
        "device_id",
        "device_kind",
        "vendor",
        "serial",
        "state",
        "restart_required",
        "installed_version",
        "running_version",
        "last_contact",
        "updated_at",
    ];
    w.write_record(header).map_err(ApiError::internal)?;
    for r in rows {
        let fields = [
            r.institution.code.to_string(),
            r.institution.name.clone(),
            r.institution.prefecture.name_ja().to_owned(),
            r.institution.kind.slug().to_owned(),
            r.institution.email.clone(),
            r.device.id.to_string(),
            r.device.kind.slug().to_owned(),
            r.device
                .vendor
                .map(|v| v.slug().to_owned())
                .unwrap_or_default(),
            r.device.serial.clone(),
            r.state.slug().to_owned(),
            r.state.restart_required(r.device.kind).to_string(),
            r.device
                .installed
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            r.device
                .running
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            r.device
                .last_contact
                .map(|t| t.to_string())
                .unwrap_or_default(),
            r.updated_at.to_string(),
        ];
        w.write_record(fields).map_err(ApiError::internal)?;
    }
    let bytes = w.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/admin/audit?limit=N`: newest first.
pub async fn audit(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<onshi_store::AuditEntry>>> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(state.db(move |s| s.audit_log(limit)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockInput {
    now: String,
}

/// `PUT /api/v1/admin/clock`: moves a simulated clock (tests and demos); refused on real time.
pub async fn set_clock(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(input): ApiJson<ClockInput>,
) -> ApiResult<Json<serde_json::Value>> {
    let to: jiff::Timestamp = input
        .now
        .parse()
        .map_err(|e| ApiError::bad_request("invalid_instant", format!("now: {e}")))?;
    if state.clock.is_simulated() {
        // The chart keeps the counts as they were just before the jump.
        history::sample_running(&state, true).await?;
    }
    state
        .clock
        .set(to)
        .map_err(|e| ApiError::conflict("real_clock", e.to_string()))?;
    state.notices_nudge.notify_one();
    state
        .audit(OPERATOR, "clock_set", "clock", to.to_string())
        .await?;
    Ok(Json(serde_json::json!({ "now": state.now().to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticesQuery {
    institution: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/admin/notices?institution=CODE&limit=N`: the outbox, newest first.
pub async fn notices(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(q): ApiQuery<NoticesQuery>,
) -> ApiResult<Json<Vec<onshi_store::Mail>>> {
    let institution = q
        .institution
        .as_deref()
        .map(InstitutionCode::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_institution_code", e.to_string()))?;
    let limit = q.limit.unwrap_or(onshi_store::DEFAULT_LIMIT);
    Ok(Json(state.db(move |s| s.mails(institution, limit)).await?))
}

/// `GET /api/v1/admin/notices/summary`: mails sent and pending, per kind.
pub async fn notices_summary(
    State(state): State<AppState>,
    _: Operator,
) -> ApiResult<Json<onshi_store::MailSummary>> {
    Ok(Json(state.db(|s| s.mail_summary()).await?))
}
