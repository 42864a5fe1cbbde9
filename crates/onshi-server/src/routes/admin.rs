//! The operator API (`/api/v1/admin/…`, operator token): institutions and their keys, packages
//! and signed releases, campaigns and their controls, progress, device lists, the audit log and
//! (on a simulated clock) the clock.

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::civil::Time;
use onshi_api::ErrorCode;
use onshi_api::admin::{
    AccessKey, AuditEntry, AuditQuery, CampaignView, ClockInput, ClockNow, DevicesQuery,
    EnrollmentKey, EnrollmentKeyQuery, Format, Imported, InstitutionBatch, InstitutionCsvRow,
    InstitutionList, ListQuery, Mail, MailSummary, NoticesQuery, Revoked, Uploaded,
};
use onshi_api::device::MAX_TERMINALS_PER_SITE;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::schedule::Campaign;
use onshi_core::trust::Signed;
use onshi_store::{
    CampaignRecord, DeploymentFilter, Institution, InstitutionFilter, InstitutionKey,
};

use crate::attachment;
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiPath, ApiQuery};
use crate::services::OPERATOR;
use crate::services::campaigns::{
    self, CampaignInput, Throttle, change_campaign_status, load_campaign, new_campaign,
};
use crate::services::devices::{
    EXPORT_READ_LIMIT, campaign_device_rows, devices_csv, within_export,
};
use crate::services::institutions;
use crate::services::metadata;
use crate::services::progress::{self, Progress, progress_of};
use crate::services::releases::{publish_release, store_artifact};
use crate::state::AppState;
use crate::wire;

// ---------- institutions ----------

/// Validates one institution; `line` names the CSV line or array index in errors.
fn parse_institution(input: InstitutionCsvRow, place: &str) -> ApiResult<Institution> {
    let bad = |msg: String| {
        ApiError::bad_request(ErrorCode::InvalidInstitution, format!("{place}: {msg}"))
    };
    let code = InstitutionCode::parse(input.code.trim()).map_err(|e| bad(e.to_string()))?;
    let kind: InstitutionKind = input.kind.trim().parse().map_err(|e| bad(format!("{e}")))?;
    if !kind.matches(code.score_table()) {
        return Err(bad(format!(
            "kind {kind} does not match the 点数表 digit of code {code}"
        )));
    }
    let prefecture = input
        .prefecture
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
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
    if !name.contains(|c: char| !c.is_whitespace() && !c.is_control()) || name.chars().count() > 200
    {
        return Err(bad("name must be 1–200 characters".into()));
    }
    let email = input.email.trim().to_owned();
    let email_ok = email.chars().count() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !email.contains(|c: char| c.is_whitespace() || c.is_control());
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
    let phone = match input.phone.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => {
            let ok = p.chars().count() <= 30
                && p.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '+' | '(' | ')' | '-' | ' '));
            if !ok {
                return Err(bad(format!(
                    "phone {p:?}: up to 30 digits, spaces, hyphens, + and brackets"
                )));
            }
            Some(p.to_owned())
        }
    };
    Ok(Institution {
        code,
        name,
        kind,
        prefecture: code.prefecture(),
        email,
        auto_restart,
        phone,
    })
}

/// `POST /api/v1/admin/institutions`: create or update institutions (a JSON array).
#[utoipa::path(
    post,
    path = "/api/v1/admin/institutions",
    tag = "operator",
    security(("operator_token" = [])),
    request_body = onshi_api::admin::InstitutionBatch,
    responses(
        (status = 201, description = "created or updated", body = onshi_api::admin::Imported),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn create_institutions(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(InstitutionBatch(inputs)): ApiJson<InstitutionBatch>,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    if inputs.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInstitution,
            "the array is empty: send at least one institution",
        ));
    }
    let list = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| parse_institution(input.into(), &format!("item {i}")))
        .collect::<ApiResult<Vec<_>>>()?;
    save_institutions(&state, list).await
}

/// `POST /api/v1/admin/institutions/import`: CSV with the header
/// `code,name,kind,prefecture,email,auto_restart`; all lines or none.
#[utoipa::path(
    post,
    path = "/api/v1/admin/institutions/import",
    tag = "operator",
    security(("operator_token" = [])),
    request_body(content = String, content_type = "text/csv", description = "code,name,kind,prefecture,email,auto_restart with a header line"),
    responses(
        (status = 201, description = "created or updated", body = onshi_api::admin::Imported),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::TooLarge,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn import_institutions(
    State(state): State<AppState>,
    _: Operator,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    let body = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidCsv, format!("the CSV is not UTF-8: {e}"))
    })?;
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    let mut list = Vec::new();
    for (i, row) in reader.deserialize::<InstitutionCsvRow>().enumerate() {
        let place = format!("line {}", i + 2);
        let input =
            row.map_err(|e| ApiError::bad_request(ErrorCode::InvalidCsv, format!("{place}: {e}")))?;
        list.push(parse_institution(input, &place)?);
    }
    if list.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidCsv,
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

/// `GET /api/v1/admin/institutions?prefecture=&kind=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/institutions",
    tag = "operator",
    security(("operator_token" = [])),
    params(onshi_api::admin::ListQuery),
    responses(
        (status = 200, description = "a page of institutions", body = onshi_api::admin::InstitutionList),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
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
        institutions: institutions.iter().map(wire::institution).collect(),
    }))
}

fn parse_prefecture(p: Option<&str>) -> ApiResult<Option<Prefecture>> {
    p.map(|p| {
        p.parse()
            .map_err(|e: onshi_core::institution::UnknownPrefecture| {
                ApiError::bad_request(ErrorCode::InvalidPrefecture, e.to_string())
            })
    })
    .transpose()
}

fn parse_code(code: &str) -> ApiResult<InstitutionCode> {
    InstitutionCode::parse(code)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInstitutionCode, e.to_string()))
}

/// `POST /api/v1/admin/institutions/{code}/enrollment-key`: a new key for enrolling the
/// site's terminals (shown once; only its hash is kept), for `uses` terminals (default 1) until
/// it expires (default 7 days of server time).
#[utoipa::path(
    post,
    path = "/api/v1/admin/institutions/{code}/enrollment-key",
    tag = "operator",
    security(("operator_token" = [])),
    params(
        ("code" = onshi_core::institution::InstitutionCode, Path, description = "the site's 医療機関コード"),
        EnrollmentKeyQuery,
    ),
    responses(
        (status = 200, description = "a new key; the old one stops working", body = onshi_api::admin::EnrollmentKey),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn enrollment_key(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<EnrollmentKeyQuery>,
) -> ApiResult<Json<EnrollmentKey>> {
    let code = parse_code(&code)?;
    let uses = q.uses.unwrap_or(1);
    if !(1..=MAX_TERMINALS_PER_SITE).contains(&uses) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("uses must be 1 to {MAX_TERMINALS_PER_SITE}"),
        ));
    }
    let hours = q.valid_hours.unwrap_or(DEFAULT_KEY_HOURS);
    if !(1..=MAX_KEY_HOURS).contains(&hours) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("valid_hours must be 1 to {MAX_KEY_HOURS}"),
        ));
    }
    let valid = std::time::Duration::from_secs(u64::from(hours) * 3600);
    let (enrollment_key, expires_at) =
        institutions::issue_enrollment_key(&state, code, uses, valid).await?;
    Ok(Json(EnrollmentKey {
        enrollment_key,
        expires_at,
        uses,
    }))
}

/// An enrolment key's life unless the operator asks otherwise: a week.
const DEFAULT_KEY_HOURS: u32 = 7 * 24;
/// The longest life of an enrolment key: 30 days.
const MAX_KEY_HOURS: u32 = 30 * 24;

/// `POST /api/v1/admin/devices/{id}/revoke`: ends a device's token at once (and its card
/// readers', for a terminal), frees its download slots and lets its serial be enrolled again.
#[utoipa::path(
    post,
    path = "/api/v1/admin/devices/{id}/revoke",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = i64, Path, description = "the device's id")),
    responses(
        (status = 200, description = "the devices revoked now", body = onshi_api::admin::Revoked),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn revoke_device(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Revoked>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidId, "a device id is a number"))?;
    let revoked = institutions::revoke_device(&state, id).await?;
    Ok(Json(Revoked { revoked }))
}

/// `POST /api/v1/admin/institutions/{code}/access-key`: a new key for the site's staff to read
/// their own devices' status.
#[utoipa::path(
    post,
    path = "/api/v1/admin/institutions/{code}/access-key",
    tag = "operator",
    security(("operator_token" = [])),
    params(("code" = onshi_core::institution::InstitutionCode, Path, description = "the site's 医療機関コード")),
    responses(
        (status = 200, description = "a new key; the old one stops working", body = onshi_api::admin::AccessKey),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn access_key(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<AccessKey>> {
    let access_key =
        institutions::issue_key(&state, parse_code(&code)?, InstitutionKey::Access).await?;
    Ok(Json(AccessKey { access_key }))
}

// ---------- packages and releases ----------

/// `PUT /api/v1/admin/artifacts`: the raw package bytes; stored under their SHA-256.
#[utoipa::path(
    put,
    path = "/api/v1/admin/artifacts",
    tag = "operator",
    security(("operator_token" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the package bytes (at most 8 GiB)"),
    responses(
        (status = 201, description = "stored under its SHA-256", body = onshi_api::admin::Uploaded),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::TooLarge,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn upload_artifact(
    State(state): State<AppState>,
    _: Operator,
    body: Body,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let (sha, size) = store_artifact(&state, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(Uploaded { sha256: sha, size })))
}

/// `POST /api/v1/admin/releases`: publishes a release whose manifest was signed offline
/// (`onshi release sign`); its packages must be uploaded first. The server signs nothing.
#[utoipa::path(
    post,
    path = "/api/v1/admin/releases",
    tag = "operator",
    security(("operator_token" = [])),
    request_body(content = onshi_core::trust::Signed, description = "the manifest as signed offline by a threshold of the targets keys"),
    responses(
        (status = 201, description = "verified against the trusted root and published", body = onshi_core::release::Manifest),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn create_release(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(signed): ApiJson<Signed>,
) -> ApiResult<(StatusCode, Json<onshi_core::release::Manifest>)> {
    let manifest = publish_release(&state, signed).await?;
    Ok((StatusCode::CREATED, Json(manifest)))
}

/// `POST /api/v1/admin/trust/root`: publishes the next root (a key rotation), signed offline by
/// a threshold of the current root's root keys and of its own (`onshi keys rotate`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/trust/root",
    tag = "operator",
    security(("operator_token" = [])),
    request_body(content = onshi_core::trust::Signed, description = "root metadata, the next version"),
    responses(
        (status = 201, description = "chained and published; agents follow it", body = onshi_api::admin::RootPublished),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn publish_root(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(signed): ApiJson<Signed>,
) -> ApiResult<(StatusCode, Json<onshi_api::admin::RootPublished>)> {
    let version = metadata::publish_root(&state, signed).await?;
    Ok((
        StatusCode::CREATED,
        Json(onshi_api::admin::RootPublished { version }),
    ))
}

/// `GET /api/v1/admin/releases/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/releases/{id}",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "the manifest as signed offline", body = onshi_core::trust::Signed),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn get_release(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Signed>> {
    let release = state
        .db(move |s| s.release(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("release"))?;
    Ok(Json(release.signed))
}

// ---------- campaigns ----------

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
#[utoipa::path(
    post,
    path = "/api/v1/admin/campaigns",
    tag = "operator",
    security(("operator_token" = [])),
    request_body = onshi_api::admin::CampaignInput,
    responses(
        (status = 201, description = "a draft campaign", body = onshi_api::admin::CampaignView),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/admin/campaigns",
    tag = "operator",
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "every campaign", body = Vec<onshi_api::admin::CampaignView>),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/admin/campaigns/{id}",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "the campaign id")),
    responses(
        (status = 200, description = "the campaign", body = onshi_api::admin::CampaignView),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn get_campaign(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CampaignView>> {
    let record = load_campaign(&state, id).await?;
    Ok(Json(view(&record, &*state.schedule(&record)?, state.now())))
}

/// `POST /api/v1/admin/campaigns/{id}/{activate|pause|resume|widen|close}`: `resume` after a
/// health gate's hold accepts the held wave's breach; `widen` opens the next wave.
#[utoipa::path(
    post,
    path = "/api/v1/admin/campaigns/{id}/{action}",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "the campaign id"), ("action" = onshi_core::offer::CampaignAction, Path)),
    responses(
        (status = 200, description = "the campaign after the change", body = onshi_api::admin::CampaignView),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn control_campaign(
    State(state): State<AppState>,
    _: Operator,
    ApiPath((id, verb)): ApiPath<(String, String)>,
) -> ApiResult<Json<CampaignView>> {
    // Parsed here (not by the extractor) so an unknown verb is a 404 like an unknown route.
    let action = campaigns::action(&verb)?;
    let record = change_campaign_status(&state, id, action).await?;
    Ok(Json(view(&record, &*state.schedule(&record)?, state.now())))
}

/// `GET /api/v1/admin/campaigns/{id}/waves`: the campaign's waves, each one's health against
/// its gate's thresholds, and why the campaign is held (404 for a campaign without waves).
#[utoipa::path(
    get,
    path = "/api/v1/admin/campaigns/{id}/waves",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "the campaign id")),
    responses(
        (status = 200, description = "the waves and their health gates", body = onshi_api::admin::WavesView),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn waves(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<onshi_api::admin::WavesView>> {
    let record = load_campaign(&state, id).await?;
    crate::services::waves::view(&state, &record)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("this campaign has no waves"))
}

/// `POST /api/v1/admin/campaigns/{id}/rollback`: 切り戻し. The release (signed offline: a
/// higher version than the campaign's, the previous good packages) is offered, in a campaign of
/// its own with the same windows, only to the devices of the open waves that got the campaign's
/// release; the campaign closes for everyone else. Audited.
#[utoipa::path(
    post,
    path = "/api/v1/admin/campaigns/{id}/rollback",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "the campaign to roll back")),
    request_body = onshi_api::admin::RollbackRequest,
    responses(
        (status = 201, description = "rolled back: the rollback campaign is running", body = onshi_core::waves::RolledBack),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn rollback_campaign(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<onshi_api::admin::RollbackRequest>,
) -> ApiResult<(StatusCode, Json<onshi_core::waves::RolledBack>)> {
    let done = crate::services::rollback::roll_back(&state, id, req.release_id).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// `GET /api/v1/admin/campaigns/{id}/progress`: counts per state, by device kind, prefecture,
/// institution kind and reader vendor.
#[utoipa::path(
    get,
    path = "/api/v1/admin/campaigns/{id}/progress",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "the campaign id")),
    responses(
        (status = 200, description = "counts by state, device, prefecture, kind and vendor", body = onshi_api::admin::Progress),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn progress(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Progress>> {
    let record = load_campaign(&state, id).await?;
    Ok(Json(progress_of(&state, &record).await?))
}

/// `GET /api/v1/admin/campaigns/{id}/devices?state=installed&device=terminal&format=csv`:
/// e.g. every terminal that still needs a restart.
#[utoipa::path(
    get,
    path = "/api/v1/admin/campaigns/{id}/devices",
    tag = "operator",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "the campaign id"), onshi_api::admin::DevicesQuery),
    responses(
        (status = 200, description = "the devices (JSON, or CSV with `format=csv`)", body = Vec<onshi_api::admin::DeploymentListing>),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn campaign_devices(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DevicesQuery>,
) -> ApiResult<Response> {
    let csv_out = q.format == Some(Format::Csv);
    let filter = DeploymentFilter {
        state: q.state,
        device: q.device,
        prefecture: parse_prefecture(q.prefecture.as_deref())?,
        kind: q.kind,
        vendor: q.vendor,
        silent: None,
        limit: match (q.limit, csv_out) {
            (Some(limit), _) => limit.min(EXPORT_READ_LIMIT),
            (None, true) => EXPORT_READ_LIMIT,
            (None, false) => onshi_store::DEFAULT_LIMIT,
        },
        offset: q.offset.unwrap_or(0),
    };
    let record = load_campaign(&state, id).await?;
    let rows = within_export(campaign_device_rows(&state, &record, filter).await?)?;
    if !csv_out {
        let rows: Vec<_> = rows.iter().map(wire::listing).collect();
        return Ok(Json(rows).into_response());
    }
    // Writing up to the whole fleet's rows is CPU work: off the async workers.
    let bytes = tokio::task::spawn_blocking(move || devices_csv(&rows))
        .await
        .map_err(|e| ApiError::internal(format!("the CSV export failed: {e}")))??;
    Ok(attachment::csv(
        &format!("{}-devices.csv", record.id),
        bytes,
    ))
}

/// `GET /api/v1/admin/audit?limit=N`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "operator",
    security(("operator_token" = [])),
    params(onshi_api::admin::AuditQuery),
    responses(
        (status = 200, description = "newest first", body = Vec<onshi_api::admin::AuditEntry>),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn audit(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let entries = state.db(move |s| s.audit_log(limit)).await?;
    Ok(Json(entries.iter().map(wire::audit_entry).collect()))
}

/// `PUT /api/v1/admin/clock`: moves a simulated clock (tests and demos); refused on real time.
#[utoipa::path(
    put,
    path = "/api/v1/admin/clock",
    tag = "operator",
    security(("operator_token" = [])),
    request_body = onshi_api::admin::ClockInput,
    responses(
        (status = 200, description = "the clock now", body = onshi_api::admin::ClockNow),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn set_clock(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(input): ApiJson<ClockInput>,
) -> ApiResult<Json<ClockNow>> {
    let to: jiff::Timestamp = input
        .now
        .parse()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInstant, format!("now: {e}")))?;
    if state.clock.is_simulated() {
        // The chart keeps the counts as they were just before the jump.
        progress::sample_running(&state, true).await?;
    }
    state
        .clock
        .set(to)
        .map_err(|e| ApiError::conflict(ErrorCode::RealClock, e.to_string()))?;
    state.notices_nudge.notify_one();
    state
        .audit(OPERATOR, "clock_set", "clock", to.to_string())
        .await?;
    Ok(Json(ClockNow {
        now: state.now().to_string(),
    }))
}

/// `GET /api/v1/admin/notices?institution=CODE&limit=N`: the outbox, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/notices",
    tag = "operator",
    security(("operator_token" = [])),
    params(onshi_api::admin::NoticesQuery),
    responses(
        (status = 200, description = "the outbox, newest first", body = Vec<onshi_api::admin::Mail>),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn notices(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(q): ApiQuery<NoticesQuery>,
) -> ApiResult<Json<Vec<Mail>>> {
    let institution = q
        .institution
        .as_deref()
        .map(InstitutionCode::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInstitutionCode, e.to_string()))?;
    let limit = q.limit.unwrap_or(onshi_store::DEFAULT_LIMIT);
    let mails = state.db(move |s| s.mails(institution, limit)).await?;
    Ok(Json(mails.iter().map(wire::mail).collect()))
}

/// `GET /api/v1/admin/notices/summary`: mails sent and pending, per kind.
#[utoipa::path(
    get,
    path = "/api/v1/admin/notices/summary",
    tag = "operator",
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "sent and pending mails per kind", body = onshi_api::admin::MailSummary),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn notices_summary(
    State(state): State<AppState>,
    _: Operator,
) -> ApiResult<Json<MailSummary>> {
    let summary = state.db(|s| s.mail_summary()).await?;
    Ok(Json(wire::mail_summary(&summary)))
}
