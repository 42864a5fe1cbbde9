//! The institution API (institution access key, read-only): each of the site's own devices,
//! whether the update is installed or applied and whether a restart is needed — the notice's
//! 「インストールが完了したかどうか」 check.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use onshi_api::ErrorCode;
use onshi_api::institution::{BillingNotice, BillingNotices, NoticesQuery, SiteStatus};
use onshi_core::institution::InstitutionCode;

use crate::auth::bearer;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiPath;
use crate::services::devices::{access_key_matches, site_status};
use crate::state::AppState;
use crate::wire;

/// Checks the institution's access key against the path's code.
async fn authorise(state: &AppState, headers: &HeaderMap, code: InstitutionCode) -> ApiResult<()> {
    let key = bearer(headers)?.to_owned();
    if access_key_matches(state, code, key).await? {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong institution access key"))
    }
}

/// `GET /api/v1/institutions/{code}/devices`.
#[utoipa::path(
    get,
    path = "/api/v1/institutions/{code}/devices",
    tag = "institution",
    security(("institution_access_key" = [])),
    params(("code" = onshi_core::institution::InstitutionCode, Path, description = "the site's 医療機関コード")),
    responses(
        (status = 200, description = "the site's devices", body = onshi_api::institution::SiteStatus),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn devices(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Json<SiteStatus>> {
    let code = InstitutionCode::parse(&code)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInstitutionCode, e.to_string()))?;
    authorise(&state, &headers, code).await?;
    Ok(Json(wire::site_status(&site_status(&state, code).await?)))
}

/// `GET /api/v1/institutions/{code}/notices?lang=ja|en`: the notices in force for the site now,
/// for the billing system's screen (オンライン請求時の画面で通知), with the site's own status.
#[utoipa::path(
    get,
    path = "/api/v1/institutions/{code}/notices",
    tag = "institution",
    security(("institution_access_key" = [])),
    params(("code" = onshi_core::institution::InstitutionCode, Path, description = "the site's 医療機関コード"), onshi_api::institution::NoticesQuery),
    responses(
        (status = 200, description = "the notices in force", body = onshi_api::institution::BillingNotices),
        onshi_api::error::responses::BadRequest,
        onshi_api::error::responses::Unauthorized,
        onshi_api::error::responses::Unavailable,
    ),
)]
pub async fn notices(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<NoticesQuery>,
    headers: HeaderMap,
) -> ApiResult<Json<BillingNotices>> {
    use onshi_core::notice;
    use onshi_core::offer::CampaignStatus;
    let code = InstitutionCode::parse(&code)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInstitutionCode, e.to_string()))?;
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
    // The site's own advice, device by device: the billing screen says what the site page says.
    let site = crate::services::devices::site_status(&state, code).await?;
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
            let own = site
                .campaign
                .as_ref()
                .filter(|(record, _)| record.id == c.id)
                .and_then(|_| {
                    crate::services::devices::advice_where(
                        &site,
                        kind == notice::NoticeKind::RestartRequired,
                    )
                });
            let advice = own.unwrap_or_else(|| {
                notice::advice_for(kind, &schedule, now, institution.auto_restart)
            });
            let letter = notice::compose(kind, lang, to, &facts, &schedule, now, advice);
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
