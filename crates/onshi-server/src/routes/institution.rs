//! The institution API (institution access key, read-only): each of the site's own devices,
//! whether the update is installed or applied and whether a restart is needed — the notice's
//! 「インストールが完了したかどうか」 check.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::InstitutionCode;
use onshi_store::{Device, Institution, InstitutionKey};
use serde::Serialize;

use crate::auth::{bearer, secret_matches};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Serialize)]
pub struct SiteDevice {
    #[serde(flatten)]
    pub device: Device,
    pub campaign: Option<String>,
    pub state: Option<DeploymentState>,
    pub restart_required: bool,
    pub label_ja: Option<&'static str>,
}

#[derive(Serialize)]
pub struct SiteStatus {
    pub code: InstitutionCode,
    pub name: String,
    pub devices: Vec<SiteDevice>,
    /// The site as stored (for its auto-restart time); not part of the API answer.
    #[serde(skip)]
    pub institution: Institution,
}

/// Checks the institution's access key against the path's code.
async fn authorise(state: &AppState, headers: &HeaderMap, code: InstitutionCode) -> ApiResult<()> {
    let key = bearer(headers)?.to_owned();
    if access_key_matches(state, code, key).await? {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong institution access key"))
    }
}

/// Whether `key` is the institution's access key (the API's bearer and the site page's login).
pub async fn access_key_matches(
    state: &AppState,
    code: InstitutionCode,
    key: String,
) -> ApiResult<bool> {
    let stored = state
        .db(move |s| s.institution_key(code, InstitutionKey::Access))
        .await?;
    Ok(stored.is_some_and(|h| secret_matches(&key, &h)))
}

/// `GET /api/v1/institutions/{code}/devices`.
pub async fn devices(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<SiteStatus>> {
    let code = InstitutionCode::parse(&code)
        .map_err(|e| ApiError::bad_request("invalid_institution_code", e.to_string()))?;
    authorise(&state, &headers, code).await?;
    Ok(Json(site_status(&state, code).await?))
}

/// Each of a site's devices with its open deployment: the API answer and the site page's data.
pub async fn site_status(state: &AppState, code: InstitutionCode) -> ApiResult<SiteStatus> {
    let (institution, rows) = state
        .db(move |s| {
            let inst = s.institution(code)?;
            let mut rows = Vec::new();
            for d in s.devices_of(code)? {
                let dep = s.open_deployments_of(d.id)?.into_iter().next();
                rows.push((d, dep));
            }
            Ok((inst, rows))
        })
        .await?;
    let institution = institution.ok_or_else(|| ApiError::not_found("institution"))?;
    Ok(SiteStatus {
        code,
        name: institution.name.clone(),
        institution,
        devices: rows
            .into_iter()
            .map(|(device, dep)| SiteDevice {
                restart_required: dep
                    .as_ref()
                    .is_some_and(|d| d.state.restart_required(device.kind)),
                label_ja: dep.as_ref().map(|d| d.state.label_ja(device.kind)),
                campaign: dep.as_ref().map(|d| d.campaign_id.clone()),
                state: dep.map(|d| d.state),
                device,
            })
            .collect(),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticesQuery {
    lang: Option<onshi_core::lang::Lang>,
}

/// One notice in force for a site, as the billing screen shows it.
#[derive(Serialize)]
pub struct BillingNotice {
    campaign: String,
    kind: onshi_core::notice::NoticeKind,
    title: String,
    message: String,
}

#[derive(Serialize)]
pub struct BillingNotices {
    code: InstitutionCode,
    name: String,
    generated_at: String,
    notices: Vec<BillingNotice>,
}

/// `GET /api/v1/institutions/{code}/notices?lang=ja|en`: the notices in force for the site now,
/// for the billing system's screen (オンライン請求時の画面で通知), with the site's own status.
pub async fn notices(
    State(state): State<AppState>,
    Path(code): Path<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<NoticesQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<BillingNotices>> {
    use onshi_core::notice;
    use onshi_core::offer::CampaignStatus;
    let code = InstitutionCode::parse(&code)
        .map_err(|e| ApiError::bad_request("invalid_institution_code", e.to_string()))?;
    authorise(&state, &headers, code).await?;
    let lang = q.lang.unwrap_or_default();
    let now = state.now();
    let (institution, campaigns) = state
        .db(move |s| {
            let inst = s.institution(code)?;
            let mut out = Vec::new();
            for c in s.campaigns()? {
                if matches!(c.status, CampaignStatus::Draft | CampaignStatus::Closed) {
                    continue;
                }
                let facts = s.site_facts_of(&c.id, code)?;
                out.push((c, facts));
            }
            Ok((inst, out))
        })
        .await?;
    let institution = institution.ok_or_else(|| ApiError::not_found("institution"))?;
    let code_text = code.to_string();
    let mut notices = Vec::new();
    for (c, facts) in campaigns {
        let schedule = state.schedule(&c)?;
        for kind in notice::in_force(now, &schedule, c.status, &facts) {
            let to = notice::Addressee {
                code: &code_text,
                name: &institution.name,
                auto_restart: institution.auto_restart,
            };
            let letter = notice::compose(kind, lang, to, &facts, &schedule, now);
            notices.push(BillingNotice {
                campaign: c.id.clone(),
                kind,
                title: letter.subject,
                message: letter.lead,
            });
        }
    }
    Ok(Json(BillingNotices {
        code,
        name: institution.name,
        generated_at: now.to_string(),
        notices,
    }))
}
