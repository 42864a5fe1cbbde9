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
