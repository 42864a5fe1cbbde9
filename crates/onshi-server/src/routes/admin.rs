//! The operator API (`/api/v1/admin/…`, operator token): institutions and their keys, packages
//! and signed releases, campaigns and their controls, progress, device lists, the audit log and
//! (on a simulated clock) the clock.

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::civil::Time;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Sha256, SignedManifest};
use onshi_core::schedule::Campaign;
use onshi_core::selector::Selector;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_store::{
    CampaignRecord, DeploymentFilter, Institution, InstitutionFilter, InstitutionKey,
};
use serde::{Deserialize, Serialize};

use crate::attachment;
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::services::OPERATOR;
use crate::services::campaigns::{
    self, CampaignInput, Throttle, change_campaign_status, load_campaign, new_campaign,
};
use crate::services::devices::{campaign_device_rows, devices_csv};
use crate::services::institutions;
use crate::services::progress::{self, Progress, progress_of};
use crate::services::releases::{ReleaseInput, sign_release, store_artifact};
use crate::state::AppState;

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
    let imported = institutions::save(state, list).await?;
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
    institutions::issue_key(state, parse_code(code)?, which).await
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

/// `POST /api/v1/admin/releases`: builds and signs a release manifest from uploaded packages.
pub async fn create_release(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(input): ApiJson<ReleaseInput>,
) -> ApiResult<(StatusCode, Json<SignedManifest>)> {
    let signed = sign_release(&state, input).await?;
    Ok((StatusCode::CREATED, Json(signed)))
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
    let action = campaigns::action(&verb)?;
    let record = change_campaign_status(&state, id, action).await?;
    Ok(Json(view(&record, &*state.schedule(&record)?, state.now())))
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
    let rows = campaign_device_rows(&state, &record, filter).await?;
    if !csv_out {
        return Ok(Json(rows).into_response());
    }
    Ok(attachment::csv(
        &format!("{}-devices.csv", record.id),
        devices_csv(&rows)?,
    ))
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
        progress::sample_running(&state, true).await?;
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
