//! The device API (`/api/v1/…`): what the terminal's distribution agent speaks. Enrolment,
//! check-in (the window-gated offer), state reports, the signed manifest and artifact downloads.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::Timestamp;
use onshi_api::ErrorCode;
use onshi_api::device::{
    ArtifactInfo, CampaignOffer, CheckinRequest, CheckinResponse, DeltaInfo, EnrollRequest,
    Enrolled, MAX_DETAIL_CHARS, MAX_READERS_PER_SITE, MAX_READERS_PER_TERMINAL,
    MAX_TERMINALS_PER_SITE, ReaderRequest, ReportRequest, ReportResponse, SelfCheck, Serial,
};
use onshi_core::appointment;
use onshi_core::deployment::{DeploymentEvent, DeploymentState};
use onshi_core::institution::InstitutionCode;
use onshi_core::offer::{self, Action, CampaignStatus, NoDownload, Situation};
use onshi_core::release::{Sha256, Target};
use onshi_core::trust::Signed;
use onshi_core::vendor::DeviceKind;
use onshi_store::{
    AuditEntry, CampaignRecord, Deployment, EnrolRules, InstitutionKey, NewDevice, Report,
    ReportOutcome, RestartNote, Turn, TurnAsk,
};
use rand::Rng;

use crate::auth::{DeviceAuth, hash_secret, new_secret, secret_matches};
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiPath};
use crate::services::metadata;
use crate::services::waves;
use crate::state::AppState;
use crate::{artifacts, targeting};

/// How long a download slot lives without progress.
pub const LEASE_TTL: Duration = Duration::from_secs(120);
/// The least real time a download slot lives: a device's round trip from check-in to download
/// takes real time however fast a simulated clock runs (at 36,000× speed, 120 s is 3 ms).
pub const LEASE_MIN_REAL: Duration = Duration::from_secs(1);
/// The least real time a waiting device's place is kept after its appointment
/// ([`appointment::GRACE`] of server time otherwise): an agent's round trip takes real time,
/// and on a fast simulated clock 30 s of server time is less than one.
pub const GRACE_MIN_REAL: Duration = Duration::from_secs(2);

fn valid_serial(serial: &str) -> ApiResult<String> {
    Serial::parse(serial)
        .map(String::from)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidSerial, e.to_string()))
}

/// `POST /api/v1/enroll`: a terminal enrols with its institution's enrollment key.
#[utoipa::path(
    post,
    path = "/api/v1/enroll",
    tag = "device",
    request_body = onshi_api::device::EnrollRequest,
    responses(
        (status = 201, description = "enrolled", body = onshi_api::device::Enrolled),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn enroll(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let code = InstitutionCode::parse(&req.institution_code)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInstitutionCode, e.to_string()))?;
    let serial = valid_serial(&req.serial)?;
    let stored = state
        .db(move |s| s.institution_key(code, InstitutionKey::Enrollment))
        .await?;
    // One answer for "no such institution", "no key issued", "wrong key" and (from the
    // store) "expired or used up".
    let Some(key_hash) = stored.filter(|h| secret_matches(&req.enrollment_key, h)) else {
        return Err(ApiError::unauthorized(
            "institution code or enrollment key is wrong or expired",
        ));
    };
    let device = NewDevice {
        institution: code,
        kind: DeviceKind::Terminal,
        vendor: None,
        serial,
        parent: None,
        token_hash: String::new(),
    };
    // The key's use is taken with the enrolment, and a site has at most so many terminals.
    enrol(
        &state,
        device,
        Some(key_hash),
        (MAX_TERMINALS_PER_SITE, 0),
        "enroll",
    )
    .await
}

/// `POST /api/v1/readers`: a terminal enrols a card reader attached to it, as its child.
#[utoipa::path(
    post,
    path = "/api/v1/readers",
    tag = "device",
    security(("device_token" = [])),
    request_body = onshi_api::device::ReaderRequest,
    responses(
        (status = 201, description = "the reader is enrolled as the terminal's child", body = onshi_api::device::Enrolled),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Forbidden,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn enroll_reader(
    State(state): State<AppState>,
    DeviceAuth {
        device: terminal, ..
    }: DeviceAuth,
    ApiJson(req): ApiJson<ReaderRequest>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    if terminal.kind != DeviceKind::Terminal {
        return Err(ApiError::forbidden(
            ErrorCode::NotATerminal,
            "only a terminal can enrol card readers",
        ));
    }
    let device = NewDevice {
        institution: terminal.institution,
        kind: DeviceKind::CardReader,
        vendor: Some(req.vendor),
        serial: valid_serial(&req.serial)?,
        parent: Some(terminal.id),
        token_hash: String::new(),
    };
    enrol(
        &state,
        device,
        None,
        (MAX_READERS_PER_TERMINAL, MAX_READERS_PER_SITE),
        "enroll_reader",
    )
    .await
}

/// Enrols a device with a new token: refused if its serial is enrolled (only the operator's
/// revocation frees it), if the site has `cap` devices of its kind (readers: per terminal) or
/// `site_cap` readers in all, or if the enrolment key (`key_hash`) expired or is used up.
async fn enrol(
    state: &AppState,
    mut device: NewDevice,
    key_hash: Option<String>,
    (cap, site_cap): (u32, u32),
    action: &str,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let token = new_secret();
    device.token_hash = hash_secret(&token);
    let now = state.now();
    let (enrolled, site) = state
        .db(move |s| {
            let rules = EnrolRules {
                key_hash: key_hash.as_deref(),
                cap,
                site_cap,
            };
            Ok((
                s.enrol_device(&device, &rules, now)?,
                s.institution(device.institution)?,
            ))
        })
        .await
        .inspect_err(|e| {
            if matches!(e.code, ErrorCode::AlreadyEnrolled | ErrorCode::DeviceLimit) {
                tracing::warn!(code = %e.code, "enrolment refused");
            }
        })?;
    targeting::target_new_device(state, &enrolled).await?;
    state
        .audit(
            format!("device:{}", enrolled.id),
            action,
            enrolled.institution.to_string(),
            format!("{} {}", enrolled.kind, enrolled.serial),
        )
        .await?;
    tracing::info!(device = enrolled.id, institution = %enrolled.institution, kind = %enrolled.kind, "device enrolled");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            device_id: enrolled.id,
            device_token: token,
            auto_restart: site
                .and_then(|s| s.auto_restart)
                .map(|t| t.strftime("%H:%M").to_string()),
        }),
    ))
}

/// The campaign a device is working on: its newest deployment in a campaign that is not a
/// draft and not closed.
async fn current(
    state: &AppState,
    DeviceAuth { device, open }: &DeviceAuth,
) -> ApiResult<Option<(Deployment, Arc<CampaignRecord>)>> {
    // Fetched with the device (a shared database), or inline when the store answers from its
    // cache (SQLite), else on the blocking pool.
    let deployments = match open {
        Some(open) => open.clone(),
        None if state.store.reads_from_memory() => state.store.open_deployments_of(device.id)?,
        None => {
            let id = device.id;
            state.db(move |s| s.open_deployments_of(id)).await?
        }
    };
    for d in deployments {
        if let Some(c) = state.campaign(&d.campaign_id).await?
            && !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Closed)
        {
            return Ok(Some((d, c)));
        }
    }
    Ok(None)
}

/// `POST /api/v1/checkin`: the device says where it stands; the server says what to do.
#[utoipa::path(
    post,
    path = "/api/v1/checkin",
    tag = "device",
    security(("device_token" = [])),
    request_body = onshi_api::device::CheckinRequest,
    responses(
        (status = 200, description = "what to do now", body = onshi_api::device::CheckinResponse),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn checkin(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(req): ApiJson<CheckinRequest>,
) -> ApiResult<Json<CheckinResponse>> {
    let device = &auth.device;
    let now = state.now();
    // Buffered in memory, so cheap enough to do on the async worker.
    state
        .store
        .record_contact(device.id, req.installed.as_ref(), req.running.as_ref(), now)?;
    let jitter: f64 = rand::thread_rng().r#gen();
    let Some((deployment, record)) = current(&state, &auth).await? else {
        state.metrics.checkin(Action::None);
        return Ok(Json(CheckinResponse {
            action: Action::None,
            poll_after_seconds: offer::MAX_POLL.mul_f64(0.8 + 0.2 * jitter).as_secs(),
            server_time: now,
            next_window: None,
            campaign: None,
            come_back_at: None,
        }));
    };
    let schedule = state.schedule(&record)?;
    let status = schedule.status(now);
    // A device whose wave is not open yet sees the campaign paused (onshi_core::waves).
    let campaign_status = waves::status_for(&state, &record, device.institution).await?;
    // A slot is taken only when the device may download but for the slot.
    let wants_slot =
        offer::download_open(campaign_status, status.distributing, deployment.state).is_ok();
    let turn = match appointment::Window::of(&schedule, &status) {
        Some(window) if wants_slot => {
            let grace = state
                .clock
                .span_at_least_real(appointment::GRACE, GRACE_MIN_REAL);
            let window = window.with_grace(grace);
            Some(take_turn(&state, &record, device.id, now, window, jitter).await?)
        }
        _ => None,
    };
    let has_slot = turn == Some(Turn::Slot);
    let mut decision = offer::decide(&Situation {
        now,
        campaign: campaign_status,
        schedule: status,
        device: device.kind,
        state: deployment.state,
        has_slot,
        poll_interval: record.poll_interval,
        jitter,
    });
    let come_back_at = match turn {
        Some(Turn::Wait { at, .. }) if decision.action == Action::RetryLater => {
            // The appointment replaces the two-minute retry; old agents read the same wait.
            let wait = at
                .duration_since(now)
                .as_secs()
                .clamp(1, offer::MAX_POLL.as_secs() as i64);
            decision.poll_after = Duration::from_secs(wait.unsigned_abs());
            Some(at)
        }
        _ => None,
    };
    let release = state.release(&record.release_id).await?;
    let target = Target::for_device(device.kind, device.vendor);
    let artifact = target
        .and_then(|t| release.manifest.component(t))
        .filter(|_| matches!(decision.action, Action::Download | Action::Install))
        .map(|c| ArtifactInfo {
            sha256: c.sha256,
            size: c.size,
            url: ArtifactInfo::url_of(c.sha256),
        });
    // A delta only to a device whose installed version is its base (onshi_core::release).
    let delta = target
        .zip(req.installed.as_ref())
        .and_then(|(t, installed)| release.manifest.delta_for(t, installed))
        .filter(|_| artifact.is_some())
        .map(|d| DeltaInfo {
            sha256: d.sha256,
            size: d.size,
            url: ArtifactInfo::url_of(d.sha256),
            base_version: d.base_version.clone(),
            base_sha256: d.base_sha256,
        });
    state.metrics.checkin(decision.action);
    Ok(Json(CheckinResponse {
        action: decision.action,
        poll_after_seconds: decision.poll_after.as_secs().max(1),
        server_time: now,
        next_window: decision.next_window,
        campaign: Some(CampaignOffer {
            id: record.id.clone(),
            state: deployment.state,
            phase: status.phase,
            release_id: release.id.clone(),
            version: release.manifest.version.clone(),
            seq: deployment.last_seq,
            night_hours: schedule
                .night_hours()
                .map(|(opens, closes)| onshi_api::device::NightHours { opens, closes }),
            completion_check: schedule.completion_check().cloned(),
            artifact,
            delta,
        }),
        come_back_at,
    }))
}

/// Takes or renews the device's download slot, or gives it its appointment in the campaign's
/// queue: answered inline when the store can refuse from memory (SQLite with every slot held:
/// no query, no write), else on the blocking pool.
async fn take_turn(
    state: &AppState,
    record: &CampaignRecord,
    device: i64,
    now: Timestamp,
    window: appointment::Window,
    jitter: f64,
) -> ApiResult<Turn> {
    let expires = lease_expiry(state, now);
    let ask = TurnAsk {
        campaign: &record.id,
        device,
        now,
        expires,
        max: record.max_downloads,
        window,
        jitter,
    };
    if let Some(turn) = state.store.turn_in_memory(&ask)? {
        return Ok(turn);
    }
    let (cid, max) = (record.id.clone(), record.max_downloads);
    state
        .db(move |s| {
            s.take_turn(&TurnAsk {
                campaign: &cid,
                device,
                now,
                expires,
                max,
                window,
                jitter,
            })
        })
        .await
}

/// When a slot taken or renewed at `now` lapses.
fn lease_expiry(state: &AppState, now: Timestamp) -> Timestamp {
    now.checked_add(lease_ttl(state.clock.speed()))
        .unwrap_or(Timestamp::MAX)
}

/// How long a slot lives on a clock running at `speed`: [`LEASE_TTL`] of server time, and never
/// less than [`LEASE_MIN_REAL`] of real time (only a fast simulated clock makes a difference).
fn lease_ttl(speed: f64) -> Duration {
    onshi_clock::at_least_real(LEASE_TTL, LEASE_MIN_REAL, speed)
}

/// `POST /api/v1/report`: a state report, checked against the deployment state machine.
#[utoipa::path(
    post,
    path = "/api/v1/report",
    tag = "device",
    security(("device_token" = [])),
    request_body = onshi_api::device::ReportRequest,
    responses(
        (status = 200, description = "committed (or a repeat that changed nothing)", body = onshi_api::device::ReportResponse),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Conflict,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn report(
    State(state): State<AppState>,
    DeviceAuth { device, .. }: DeviceAuth,
    ApiJson(req): ApiJson<ReportRequest>,
) -> ApiResult<Json<ReportResponse>> {
    if req.seq <= 0 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidSeq,
            "seq must be positive",
        ));
    }
    if req
        .detail
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DETAIL_CHARS)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidDetail,
            "detail must be at most 500 characters",
        ));
    }
    let event = req.event().map_err(|_| {
        ApiError::bad_request(ErrorCode::MissingVersion, "a running report needs version")
    })?;
    let (cid, did) = (req.campaign_id.clone(), device.id);
    let found = state
        .db(move |s| {
            let d = s
                .open_deployments_of(did)?
                .into_iter()
                .find(|d| d.campaign_id == cid);
            let c = match &d {
                Some(d) => s.campaign(&d.campaign_id)?,
                None => None,
            };
            let r = match &c {
                Some(c) => s.release(&c.release_id)?,
                None => None,
            };
            Ok(d.zip(r))
        })
        .await?;
    let Some((deployment, release)) = found else {
        return Err(ApiError::not_found(format!(
            "no open campaign {} for this device",
            req.campaign_id
        )));
    };
    // A replica's cache may lag another replica's write by one notice (a report retried
    // through the other replica right after the first answered): a new report that the cached
    // state cannot take is judged on the database's own row before it is refused.
    let deployment = if req.seq > deployment.last_seq
        && deployment
            .state
            .apply(device.kind, &event, &release.manifest.version)
            .is_err()
    {
        let (cid, did) = (req.campaign_id.clone(), device.id);
        state
            .db(move |s| {
                Ok(s.open_deployments_fresh(did)?
                    .into_iter()
                    .find(|d| d.campaign_id == cid))
            })
            .await?
            .unwrap_or(deployment)
    } else {
        deployment
    };
    let frees_slot = matches!(
        event,
        DeploymentEvent::DownloadVerified
            | DeploymentEvent::DownloadPaused
            | DeploymentEvent::Failed
    );
    if req.seq <= deployment.last_seq {
        // The latest report again (its answer was lost): give the slot back again too, in case
        // the first attempt applied and failed before it could.
        if req.seq == deployment.last_seq && frees_slot {
            let (cid, did) = (req.campaign_id.clone(), device.id);
            state.db(move |s| s.release_lease(&cid, did)).await?;
        }
        return Ok(Json(ReportResponse {
            state: deployment.state,
            applied: false,
        }));
    }
    let target = release.manifest.version.clone();
    let to = deployment
        .state
        .apply(device.kind, &event, &target)
        .map_err(|e| {
            tracing::warn!(device = device.id, campaign = %req.campaign_id, error = %e, "impossible transition refused");
            ApiError::conflict(ErrorCode::InvalidTransition, e.to_string())
        })?;
    let now = state.now();
    let bytes = req.bytes.unwrap_or(deployment.bytes);
    let (cid, did, seq, from) = (
        req.campaign_id.clone(),
        device.id,
        req.seq,
        deployment.state,
    );
    // A state change and its audit line are committed together.
    let audit = (from != to).then(|| AuditEntry {
        at: now,
        actor: format!("device:{did}"),
        action: "state_change".to_owned(),
        subject: format!("{cid}/{did}"),
        detail: {
            let check = match req.self_check {
                Some(SelfCheck::Passed) => " (self-check passed)",
                Some(SelfCheck::Failed) => " (self-check failed)",
                None => "",
            };
            match &req.detail {
                Some(why) => format!("{from} -> {to} ({event}){check}: {why}"),
                None => format!("{from} -> {to} ({event}){check}"),
            }
        },
    });
    let outcome = state
        .db(move |s| {
            s.apply_report_logged(
                &Report {
                    campaign: &cid,
                    device: did,
                    seq,
                    from,
                    to,
                    bytes,
                    at: now,
                },
                audit.as_ref(),
            )
        })
        .await?;
    let current = match outcome {
        ReportOutcome::Stale(d) => {
            return Ok(Json(ReportResponse {
                state: d.state,
                applied: false,
            }));
        }
        ReportOutcome::Applied(d) => d,
    };
    // What a terminal's restart told the gates: its self-check of the new version, or that it
    // came back without it.
    let note = match (&event, device.kind) {
        (DeploymentEvent::Running(v), DeviceKind::Terminal) if *v >= target => {
            req.self_check.map(|c| match c {
                SelfCheck::Passed => RestartNote::Healthy,
                SelfCheck::Failed => RestartNote::Unhealthy,
            })
        }
        (DeploymentEvent::Running(_), DeviceKind::Terminal)
            if from == DeploymentState::Installed =>
        {
            Some(RestartNote::OldVersion)
        }
        _ => None,
    };
    if let Some(note) = note {
        let (cid, did) = (req.campaign_id.clone(), device.id);
        state
            .db(move |s| s.record_restart(&cid, did, note, now))
            .await?;
    }
    if note.is_some() || to == DeploymentState::Failed {
        state.gates_nudge.notify_one();
    }
    // Keep the device's versions in step with what the state machine accepted.
    let (installed, running) = match &event {
        DeploymentEvent::InstallCompleted => (Some(target.clone()), None),
        DeploymentEvent::ReaderActivated => (Some(target.clone()), Some(target.clone())),
        DeploymentEvent::Running(v) => (None, Some(v.clone())),
        _ => (None, None),
    };
    let (cid, did) = (req.campaign_id.clone(), device.id);
    state
        .db(move |s| {
            s.record_contact(did, installed.as_ref(), running.as_ref(), now)?;
            if frees_slot {
                s.release_lease(&cid, did)?;
            }
            Ok(())
        })
        .await?;
    Ok(Json(ReportResponse {
        state: current.state,
        applied: true,
    }))
}

/// `GET /api/v1/releases/{id}/manifest`: the targets metadata of the release the device is
/// offered, as signed offline (TUF 5.6; the snapshot names its hash and length).
#[utoipa::path(
    get,
    path = "/api/v1/releases/{id}/manifest",
    tag = "device",
    security(("device_token" = [])),
    params(("id" = String, Path, description = "the release id")),
    responses(
        (status = 200, description = "the release's manifest as signed offline by a threshold of the targets keys", body = onshi_core::trust::Signed),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn manifest(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiPath(release_id): ApiPath<String>,
) -> ApiResult<Json<Signed>> {
    let Some((_, record)) = current(&state, &auth).await? else {
        return Err(ApiError::not_found("this device has no open campaign"));
    };
    if record.release_id != release_id {
        return Err(ApiError::not_found(format!("release {release_id}")));
    }
    Ok(Json(metadata::release_manifest(&state, &release_id).await?))
}

/// `GET /api/v1/trust/timestamp`: the server's timestamp now (TUF 5.4), signed with its
/// online timestamp key, valid 24 hours, naming the current snapshot's version, hash and length.
#[utoipa::path(
    get,
    path = "/api/v1/trust/timestamp",
    tag = "device",
    security(("device_token" = [])),
    responses(
        (status = 200, description = "the timestamp metadata", body = onshi_core::trust::Signed),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn timestamp(
    State(state): State<AppState>,
    _auth: DeviceAuth,
) -> ApiResult<Json<Signed>> {
    Ok(Json(metadata::timestamp(&state).await?))
}

/// `GET /api/v1/trust/snapshot/{version}`: the snapshot a timestamp named (TUF 5.5, consistent
/// snapshots): every published release's manifest by hash and length. A version from before
/// the last hour, or from before a release was published, is gone (404): start from the
/// timestamp again.
#[utoipa::path(
    get,
    path = "/api/v1/trust/snapshot/{version}",
    tag = "device",
    security(("device_token" = [])),
    params(("version" = u64, Path, description = "the snapshot version the timestamp names")),
    responses(
        (status = 200, description = "the snapshot metadata", body = onshi_core::trust::Signed),
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn snapshot(
    State(state): State<AppState>,
    _auth: DeviceAuth,
    ApiPath(version): ApiPath<String>,
) -> ApiResult<Json<Signed>> {
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::not_found(format!("snapshot version {version:?}")))?;
    Ok(Json(metadata::snapshot(&state, version).await?))
}

/// `GET /api/v1/artifacts/{sha256}`: the device's own package, only inside a window and only
/// with a download slot; `Range` resumes.
#[utoipa::path(
    get,
    path = "/api/v1/artifacts/{sha256}",
    tag = "device",
    security(("device_token" = [])),
    params(("sha256" = onshi_core::release::Sha256, Path, description = "the package's digest")),
    responses(
        (status = 200, description = "the package (`Range` resumes: 206)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the rest of the package from the range", content_type = "application/octet-stream", body = Vec<u8>),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Forbidden,
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::RangeNotSatisfiable,
        onshi_api::error::responses::NoSlot,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn artifact(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiPath(sha): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let device = &auth.device;
    let sha = Sha256::parse(&sha)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidSha256, e.to_string()))?;
    let Some((deployment, record)) = current(&state, &auth).await? else {
        return Err(ApiError::not_found(format!("artifact {sha}")));
    };
    let release = state.release(&record.release_id).await?;
    // The device's own package, or a delta that rebuilds it.
    let target = Target::for_device(device.kind, device.vendor);
    let own = target.is_some_and(|t| release.manifest.serves(t, sha));
    if !own {
        return Err(ApiError::not_found(format!("artifact {sha}")));
    }
    let now = state.now();
    let distributing = state.schedule(&record)?.is_distributing(now);
    let campaign_status = waves::status_for(&state, &record, device.institution).await?;
    // The slot is renewed only when the download is otherwise open (the check-in's rule).
    let slot_held = match offer::download_open(campaign_status, distributing, deployment.state) {
        Ok(()) => {
            let (cid, did) = (record.id.clone(), device.id);
            let expires = lease_expiry(&state, now);
            let max = record.max_downloads;
            state
                .db(move |s| {
                    Ok(s.has_lease(&cid, did, now)?
                        && s.acquire_lease(&cid, did, now, expires, max)?)
                })
                .await?
        }
        Err(_) => false,
    };
    match offer::may_download(campaign_status, distributing, deployment.state, slot_held) {
        Ok(()) => {}
        Err(NoDownload::Closed) => {
            return Err(ApiError::forbidden(
                ErrorCode::OutsideWindow,
                "distribution is closed now; check in for the next window",
            ));
        }
        // A device that has its package is never given a slot, so it holds none.
        Err(NoDownload::NotNeeded | NoDownload::NoSlot) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::NoDownloadSlot,
                "no download slot is held; check in to get one",
            ));
        }
    }
    tracing::debug!(device = device.id, state = %deployment.state, "serving artifact");
    if let Some(prefix) = &state.accel_redirect {
        // Every check above has passed: nginx sends the file. The path is made of the parsed
        // hash only, never of anything else the client sent.
        return artifacts::accel_redirect(&state.data_dir, prefix, sha, &headers).await;
    }
    let response =
        artifacts::serve(&artifacts::path_of(&state.data_dir, sha), sha, &headers).await?;
    // Egress as sent: each chunk is counted as it is handed to the connection, so a resumed
    // range counts what it carries and a download cut off counts what went out.
    let delta = release.manifest.deltas.iter().any(|d| d.sha256 == sha);
    let metrics = state.metrics.clone();
    Ok(response.map(|body| {
        axum::body::Body::from_stream(futures_lite::StreamExt::inspect(
            body.into_data_stream(),
            move |chunk| {
                if let Ok(bytes) = chunk {
                    metrics.artifact_bytes(delta, bytes.len() as u64);
                }
            },
        ))
    }))
}

/// `GET /api/v1/trust/root`: the newest root as signed. Nothing is pinned from it: an agent
/// trusts only what chains to the root its installer carried.
#[utoipa::path(
    get,
    path = "/api/v1/trust/root",
    tag = "device",
    responses(
        (status = 200, description = "the newest root metadata", body = onshi_core::trust::Signed),
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn newest_root(State(state): State<AppState>) -> ApiResult<Json<Signed>> {
    Ok(Json(metadata::newest_root(&state).await?))
}

/// `GET /api/v1/trust/root/{version}`: one root of the chain, for agents to follow rotations.
#[utoipa::path(
    get,
    path = "/api/v1/trust/root/{version}",
    tag = "device",
    params(("version" = u64, Path, description = "the root version, from 1")),
    responses(
        (status = 200, description = "that root metadata", body = onshi_core::trust::Signed),
        onshi_api::error::responses::NotFound,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn root(
    State(state): State<AppState>,
    ApiPath(version): ApiPath<String>,
) -> ApiResult<Json<Signed>> {
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::not_found(format!("root version {version:?}")))?;
    Ok(Json(metadata::root(&state, version).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_slot_lives_two_minutes_and_at_least_a_real_second() {
        assert_eq!(lease_ttl(1.0), LEASE_TTL);
        assert_eq!(lease_ttl(60.0), LEASE_TTL);
        assert_eq!(lease_ttl(600.0), Duration::from_secs(600));
        assert_eq!(lease_ttl(36_000.0), Duration::from_secs(36_000));
        assert_eq!(
            lease_ttl(1e300),
            Duration::MAX,
            "no overflow on absurd speeds"
        );
    }
}
