//! The operator's pages outside one campaign: login and logout (operator token → session
//! cookie), the list of campaigns, uploading a release and creating a campaign, and the
//! campaign controls. Every action calls the same functions as the operator API.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_lite::StreamExt as _;
use maud::html;
use onshi_core::lang::Lang;
use onshi_core::offer::CampaignStatus;
use onshi_core::trust::Signed;
use serde::Deserialize;

use super::session::{
    Current, OPERATOR_COOKIE, Who, clear_cookie, csrf_matches, same_origin, set_cookie,
};
use super::{LangQuery, PageError, href, lang_of, layout, see_other, when};
use crate::error::ApiError;
use crate::secrets::secret_matches;
use crate::services::campaigns::{
    self, CampaignInput, Throttle, change_campaign_status, new_campaign,
};
use crate::services::institutions;
use crate::services::releases::{self, publish_release};
use crate::state::AppState;

/// The operator's session, if the request has one.
pub fn operator_session(state: &AppState, headers: &HeaderMap) -> Option<Current> {
    state
        .session(headers, OPERATOR_COOKIE)
        .filter(|c| c.who == Who::Operator)
}

/// Refuses a form post (anything but `GET` and `HEAD`) to the operator's pages that carries no
/// operator session, 403, before a byte of its body is read: without a session the body is
/// never wanted, so an anonymous client cannot make the server read the forms' bodies. The
/// handlers still check the session's CSRF token once they have the form.
pub async fn require_session(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    use axum::response::IntoResponse as _;
    let reads_nothing = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads_nothing || operator_session(&state, request.headers()).is_some() {
        return next.run(request).await;
    }
    let lang = lang_of(
        request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("lang="))),
    );
    PageError::forbidden(lang).into_response()
}

/// The operator's session for a form post: same origin and the session's CSRF token, or 403.
pub fn operator_post(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    lang: Lang,
) -> Result<Current, PageError> {
    operator_session(state, headers)
        .filter(|c| same_origin(headers) && csrf_matches(c, csrf))
        .ok_or_else(|| PageError::forbidden(lang))
}

/// Where a page without an operator session sends the browser.
pub fn to_login(lang: Lang) -> Response {
    see_other("/operator/login", lang)
}

/// A flash message, if the page has one.
pub fn flash(current: &Current) -> maud::Markup {
    html! {
        @if let Some(f) = &current.flash {
            p class={ "flash " (if f.ok { "ok" } else { "bad" }) } id="flash" { (f.text) }
        }
    }
}

/// `GET /operator/login`.
pub async fn login_page(Query(q): Query<LangQuery>) -> Response {
    login_form(q.lang(), None, StatusCode::OK)
}

fn login_form(lang: Lang, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        h1 { (lang.pick("運用者ログイン", "Operator login")) }
        @if let Some(e) = error { p class="flash bad" id="error" { (e) } }
        form method="post" action="/operator/login" class="panel grid-form" {
            input type="hidden" name="lang" value=(lang.code());
            label for="token" { (lang.pick("運用者トークン", "Operator token")) }
            input id="token" name="token" type="password" autocomplete="current-password" required;
            span {}
            button type="submit" class="primary" id="login" { (lang.pick("ログイン", "Log in")) }
        }
        p class="muted" { (lang.pick(
            "運用者トークンは、サーバーの初回起動時に一度だけ表示されたもの（または ONSHI_OPERATOR_TOKEN）です。",
            "The operator token is the one printed once on the server's first start (or ONSHI_OPERATOR_TOKEN)."
        )) }
    };
    let mut r = layout(
        lang.pick("運用者ログイン", "Operator login"),
        lang,
        "/operator/login",
        body,
    );
    *r.status_mut() = status;
    r
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /operator/login`: the operator token → a session cookie; then the running campaign's
/// dashboard, or the campaign list.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    state.may_try_login(&headers, client.ip(), crate::logins::Door::Operator, lang)?;
    let token = form.token.trim();
    if token.is_empty() || token.len() > 200 || !secret_matches(token, &state.operator_token_hash) {
        return Ok(login_form(
            lang,
            Some(lang.pick(
                "運用者トークンが正しくありません。",
                "The operator token is not correct.",
            )),
            StatusCode::UNAUTHORIZED,
        ));
    }
    let id = state.login(Who::Operator);
    let running = super::guidance::running_campaign(&state)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let to = match running {
        Some((r, _)) => format!("/operator/campaigns/{}", r.id),
        None => "/operator".to_owned(),
    };
    let mut r = see_other(&to, lang);
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(OPERATOR_COOKIE, &id, Who::Operator, &headers),
    );
    Ok(r)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /operator/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    let current = operator_post(&state, &headers, &form.csrf, lang)?;
    state.logout(&current);
    let mut r = see_other("/operator/login", lang);
    r.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(OPERATOR_COOKIE, &headers));
    Ok(r)
}

/// `GET /operator`: every campaign, and the forms to upload a release and create a campaign.
pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Result<Response, PageError> {
    let lang = q.lang();
    let Some(current) = operator_session(&state, &headers) else {
        return Ok(to_login(lang));
    };
    let records = state
        .db(|s| s.campaigns())
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let now = state.now();
    let body = html! {
        h1 { (lang.pick("運用者: キャンペーン", "Operator: campaigns")) }
        (flash(&current))
        p class="muted" { (lang.pick("現在時刻: ", "Now: ")) (when(now, lang)) }
        @if records.is_empty() {
            p { (lang.pick("キャンペーンはまだありません。リリースを登録してから作成してください。", "No campaign yet: upload a release, then create one.")) }
        } @else {
            div class="scroll" role="region" tabindex="0" aria-label=(lang.pick("キャンペーン一覧", "Campaigns")) {
                table id="campaigns" {
                    tr { th { "ID" } th { (lang.pick("状態", "Status")) } th { (lang.pick("リリース", "Release")) } th { (lang.pick("同時ダウンロード上限", "Max concurrent downloads")) } }
                    @for r in &records {
                        tr {
                            td { a href=(href(&format!("/operator/campaigns/{}", r.id), lang)) { (r.id) } }
                            td { (status_label(r.status, lang)) }
                            td { (r.release_id) }
                            td class="num" { (r.max_downloads) }
                        }
                    }
                }
            }
        }
        h2 { (lang.pick("リリースの登録（パッケージのアップロード）", "Upload a release")) }
        form method="post" action="/operator/releases" enctype="multipart/form-data" class="panel grid-form" id="release-form" {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="lang" value=(lang.code());
            label for="release-manifest" { (lang.pick("署名済みマニフェスト（オフラインで onshi release sign）", "Signed manifest (onshi release sign, offline)")) }
            input id="release-manifest" type="file" name="manifest" accept=".json" required;
            label for="release-packages" { (lang.pick("パッケージ（マニフェストに記載のもの）", "Packages (as the manifest lists them)")) }
            input id="release-packages" type="file" name="package" multiple;
            span {}
            button type="submit" class="primary" id="upload" { (lang.pick("アップロードして署名を確認", "Upload and verify signatures")) }
        }
        h2 { (lang.pick("キャンペーンの作成", "Create a campaign")) }
        form method="post" action="/operator/campaigns" class="panel grid-form" id="campaign-form" {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="lang" value=(lang.code());
            label for="campaign-release" { (lang.pick("リリースID", "Release id")) }
            input id="campaign-release" name="release_id" required maxlength="64";
            label for="campaign-schedule" { (lang.pick("日程（preset:2026-01 またはキャンペーンファイルのTOML）", "Schedule (preset:2026-01 or the campaign TOML)")) }
            textarea id="campaign-schedule" name="schedule" rows="3" required { "preset:2026-01" }
            label for="campaign-max" { (lang.pick("同時ダウンロード上限", "Max concurrent downloads")) }
            input id="campaign-max" name="max_concurrent_downloads" type="number" min="1" value="20000" required;
            label for="campaign-poll" { (lang.pick("問い合わせ間隔（秒）", "Poll interval (seconds)")) }
            input id="campaign-poll" name="poll_interval_seconds" type="number" min="5" value="600" required;
            span {}
            button type="submit" id="create-campaign" { (lang.pick("下書きとして作成", "Create as draft")) }
        }
        (logout_form(&current, lang))
    };
    Ok(layout(
        lang.pick("運用者", "Operator"),
        lang,
        "/operator",
        body,
    ))
}

/// The logout button.
pub fn logout_form(current: &Current, lang: Lang) -> maud::Markup {
    html! {
        form method="post" action="/operator/logout" style="margin-top:1.5rem" {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="lang" value=(lang.code());
            button type="submit" id="logout" { (lang.pick("ログアウト", "Log out")) }
        }
    }
}

/// 「配信中」 etc.
pub fn status_label(s: CampaignStatus, lang: Lang) -> &'static str {
    match s {
        CampaignStatus::Draft => lang.pick("下書き", "draft"),
        CampaignStatus::Active => lang.pick("実施中", "active"),
        CampaignStatus::Paused => lang.pick("一時停止中", "paused"),
        CampaignStatus::Closed => lang.pick("終了", "closed"),
    }
}

#[derive(Deserialize)]
pub struct ControlForm {
    action: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /operator/campaigns/{id}/control`: activate, pause, resume or close — the API's code
/// path, with the outcome shown on the dashboard.
pub async fn control(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ControlForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    let current = operator_post(&state, &headers, &form.csrf, lang)?;
    let changed = match campaigns::action(&form.action) {
        Ok(action) => change_campaign_status(&state, id.clone(), action).await,
        Err(e) => Err(e),
    };
    match changed {
        Ok(r) => state.flash(
            &current,
            true,
            format!("{}: {}", r.id, status_label(r.status, lang)),
        ),
        Err(e) => state.flash(&current, false, e.message),
    }
    Ok(see_other(&format!("/operator/campaigns/{id}"), lang))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    release_id: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /operator/campaigns/{id}/rollback`: 切り戻し — the API's code path, with the outcome
/// shown on the dashboard.
pub async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    let current = operator_post(&state, &headers, &form.csrf, lang)?;
    match crate::services::rollback::roll_back(
        &state,
        id.clone(),
        form.release_id.trim().to_owned(),
    )
    .await
    {
        Ok(done) => state.flash(&current, true, done.text(lang)),
        Err(e) => state.flash(&current, false, e.message),
    }
    Ok(see_other(&format!("/operator/campaigns/{id}"), lang))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
    /// The operator's list to return to (`/operator/campaigns/{id}/sites?…`).
    #[serde(default)]
    back: String,
}

/// `POST /operator/devices/{id}/revoke`: the API's revocation — the device's token (and its
/// readers') ends at once — with the outcome shown on the list it was asked from.
pub async fn revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    let current = operator_post(&state, &headers, &form.csrf, lang)?;
    let revoked = match id.parse::<i64>() {
        Ok(id) => institutions::revoke_device(&state, id).await,
        Err(_) => Err(ApiError::not_found(format!("device {id}"))),
    };
    match revoked {
        Ok(ids) if ids.is_empty() => state.flash(
            &current,
            true,
            lang.pick(
                "この機器の登録はすでに取り消されています。",
                "This device was revoked already.",
            ),
        ),
        Ok(ids) => state.flash(
            &current,
            true,
            match lang {
                Lang::Ja => format!("機器 {id} の登録を取り消しました（{} 台）。", ids.len()),
                Lang::En => format!("Device {id} revoked ({} devices).", ids.len()),
            },
        ),
        Err(e) => state.flash(&current, false, e.message),
    }
    // Back only to an operator page of this server, never elsewhere.
    let back =
        if form.back.starts_with("/operator/") && form.back.bytes().all(|b| b.is_ascii_graphic()) {
            form.back.as_str()
        } else {
            "/operator"
        };
    Ok(see_other(back, lang))
}

#[derive(Deserialize)]
pub struct CampaignForm {
    release_id: String,
    schedule: String,
    max_concurrent_downloads: u32,
    poll_interval_seconds: u64,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /operator/campaigns`: a draft campaign targeting every enrolled device.
pub async fn create_campaign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CampaignForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    let current = operator_post(&state, &headers, &form.csrf, lang)?;
    let input = CampaignInput {
        schedule: form.schedule.trim().to_owned(),
        release_id: form.release_id.trim().to_owned(),
        selector: Default::default(),
        throttle: Throttle {
            max_concurrent_downloads: form.max_concurrent_downloads,
            poll_interval_seconds: form.poll_interval_seconds,
        },
    };
    match new_campaign(&state, input).await {
        Ok((record, _)) => {
            state.flash(
                &current,
                true,
                lang.pick(
                    "キャンペーンを作成しました（下書き）。",
                    "Campaign created as a draft.",
                ),
            );
            Ok(see_other(
                &format!("/operator/campaigns/{}", record.id),
                lang,
            ))
        }
        Err(e) => {
            state.flash(&current, false, e.message);
            Ok(see_other("/operator", lang))
        }
    }
}

/// A text field of the upload form is at most this long.
const MAX_FIELD: usize = 4096;

/// `POST /operator/releases`: multipart form with the release's manifest as signed offline
/// (`onshi release sign` writes it) and its packages, each streamed to disk (never buffered) by
/// the API's own upload path; then the release is published as through the API, which checks
/// the signatures against the trusted root. The server signs nothing. The CSRF field must come
/// before any file, so nothing is stored for a forged request.
pub async fn upload_release(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let mut lang = q.lang();
    let Some(current) = operator_session(&state, &headers).filter(|_| same_origin(&headers)) else {
        return Err(PageError::forbidden(lang));
    };
    let mut csrf_ok = false;
    let mut signed: Option<Vec<u8>> = None;
    let result: Result<(), String> = async {
        while let Some(mut field) = multipart.next_field().await.map_err(|e| e.body_text())? {
            let name = field.name().unwrap_or_default().to_owned();
            if field.file_name().is_none() {
                let text = field.text().await.map_err(|e| e.body_text())?;
                if text.len() > MAX_FIELD {
                    return Err(format!("field {name} is too long"));
                }
                match name.as_str() {
                    "csrf" => csrf_ok = csrf_matches(&current, &text),
                    "lang" => lang = lang_of(Some(&text)),
                    _ => {}
                }
                continue;
            }
            if !csrf_ok {
                return Err("csrf".to_owned());
            }
            if name == "manifest" {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| e.body_text())? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_MANIFEST {
                        return Err(format!("the manifest file is over {MAX_MANIFEST} bytes"));
                    }
                }
                signed = Some(bytes);
                continue;
            }
            // A file input left empty is sent as a part with an empty file name and no bytes.
            let mut first = None;
            while let Some(chunk) = field.chunk().await.map_err(|e| e.body_text())? {
                if !chunk.is_empty() {
                    first = Some(chunk);
                    break;
                }
            }
            let Some(first) = first else {
                continue;
            };
            let stream = futures_lite::stream::once(Ok(first)).chain(field);
            releases::store_artifact(&state, stream)
                .await
                .map_err(|e| e.message)?;
        }
        Ok(())
    }
    .await;
    match result {
        Err(e) if e == "csrf" || !csrf_ok => return Err(PageError::forbidden(lang)),
        Err(e) => {
            state.flash(&current, false, e);
            return Ok(see_other("/operator", lang));
        }
        Ok(()) => {}
    }
    let outcome = match signed.map(|b| serde_json::from_slice::<Signed>(&b)) {
        None => Err(lang
            .pick(
                "署名済みマニフェスト（onshi release sign が書くファイル）を選んでください。",
                "Choose the signed manifest (the file `onshi release sign` writes).",
            )
            .to_owned()),
        Some(Err(e)) => Err(format!("manifest: {e}")),
        Some(Ok(signed)) => publish_release(&state, signed).await.map_err(|e| e.message),
    };
    match outcome {
        Ok(m) => state.flash(
            &current,
            true,
            match lang {
                Lang::Ja => format!(
                    "リリース {}（{}）の署名を確認して登録しました。",
                    m.release_id, m.version
                ),
                Lang::En => format!(
                    "Release {} ({}): signatures verified, published.",
                    m.release_id, m.version
                ),
            },
        ),
        Err(e) => state.flash(&current, false, e),
    }
    Ok(see_other("/operator", lang))
}

/// The signed manifest file of the upload form is at most this long.
const MAX_MANIFEST: usize = onshi_api::device::MAX_METADATA_BYTES;
