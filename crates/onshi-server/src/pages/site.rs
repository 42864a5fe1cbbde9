//! `/site`: a site's own page (institution code + access key → a session for that site only):
//! each device's state in plain words, last contact, and what to do tonight or tomorrow morning
//! — the advice comes from `onshi_core::guidance`, this page only renders it.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use onshi_core::guidance::Advice;
use onshi_core::institution::InstitutionCode;
use onshi_core::lang::Lang;
use onshi_core::silence;
use onshi_core::vendor::DeviceKind;
use serde::Deserialize;

use super::guidance::{
    all_day_since, call_centre, completion_check, fallback, now_sentence, period,
};
use super::session::{
    Current, SITE_COOKIE, Who, clear_cookie, csrf_matches, same_origin, set_cookie,
};
use super::{LangQuery, PageError, href, lang_of, layout, see_other, when};
use crate::services::devices::{SiteDevice, SiteStatus, access_key_matches, site_status};
use crate::services::sign_in;
use crate::state::AppState;

/// `GET /site`: the site's status when logged in, the login form otherwise.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Result<Response, PageError> {
    let lang = q.lang();
    let Some(current) = state
        .site_session(&headers)
        .await
        .map_err(|e| PageError::from_api(e, lang))?
    else {
        return Ok(login_page(lang, None, None, StatusCode::OK));
    };
    let Who::Site(code) = current.who else {
        return Ok(login_page(lang, None, None, StatusCode::OK));
    };
    // A re-issued access key ends the site's sessions, on every replica: the session
    // remembers the key's generation it began under.
    let now_generation = sign_in::current_generation(&state, code)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    if current.generation.as_deref() != Some(now_generation.as_str()) {
        state
            .logout_site(&current)
            .await
            .map_err(|e| PageError::from_api(e, lang))?;
        let mut r = login_page(lang, None, Some(&code.to_string()), StatusCode::OK);
        r.headers_mut()
            .insert(header::SET_COOKIE, clear_cookie(SITE_COOKIE, &headers));
        return Ok(r);
    }
    let status = site_status(&state, code)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let body = render(&state, &status, &current, lang).await?;
    Ok(layout(&status.name, lang, "/site", body))
}

/// The login form; after a wrong key the code typed stays in its field (`code`).
fn login_page(lang: Lang, error: Option<&str>, code: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        h1 { (lang.pick("医療機関・薬局の方: 更新状況の確認", "For sites: your update status")) }
        p { (lang.pick(
            "医療機関コード（10桁）と、運用者から通知されたアクセスキーを入力してください。資格確認端末と顔認証付きカードリーダーごとの更新状況と、今夜・明朝に行っていただきたいことを表示します。",
            "Enter your 10-digit institution code and the access key you were given. You will see each device's update status and what to do tonight or tomorrow morning."
        )) }
        @if let Some(e) = error { p class="flash bad" id="error" { (e) } }
        form method="post" action="/site/login" class="panel grid-form" {
            input type="hidden" name="lang" value=(lang.code());
            label for="code" { (lang.pick("医療機関コード", "Institution code")) }
            input id="code" name="code" inputmode="numeric" maxlength="10" autocomplete="username" required value=[code];
            label for="access_key" { (lang.pick("アクセスキー", "Access key")) }
            (key_field("access_key", lang))
            span {}
            button type="submit" class="primary" id="login" { (lang.pick("確認する", "Show status")) }
        }
        p class="muted" id="link-hint" { (lang.pick(
            "運用者からのお知らせメールにあるログイン用リンクを開くと、アクセスキーを入力せずにログインできます。ログインしたブラウザでは、しばらくの間ログインしたままになります。",
            "The sign-in link in the operator's announcement mail signs you in without the access key. The browser you sign in with stays signed in for a while."
        )) }
        p { a href=(href("/guidance", lang)) { (lang.pick("配信のご案内（日程・手順・コールセンター）", "Guidance (schedule, steps, call centre)")) } }
    };
    let mut r = layout(
        lang.pick("更新状況の確認", "Your update status"),
        lang,
        "/site",
        body,
    );
    *r.status_mut() = status;
    r
}

#[derive(Deserialize)]
pub struct LoginForm {
    code: String,
    access_key: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /site/login`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    state.may_try_login(&headers, client.ip(), crate::logins::Door::Site, lang)?;
    // The code stays in its field (as typed, at most its ten digits): only the key is retyped.
    let typed: String = form.code.trim().chars().take(10).collect();
    let wrong = || {
        login_page(
            lang,
            Some(lang.pick(
                "医療機関コードまたはアクセスキーが正しくありません。",
                "The institution code or the access key is not correct.",
            )),
            Some(&typed),
            StatusCode::UNAUTHORIZED,
        )
    };
    let Ok(code) = InstitutionCode::parse(form.code.trim()) else {
        return Ok(wrong());
    };
    let key = form.access_key.trim().to_owned();
    if key.is_empty() || key.len() > 200 {
        return Ok(wrong());
    }
    if !access_key_matches(&state, code, key)
        .await
        .map_err(|e| PageError::from_api(e, lang))?
    {
        return Ok(wrong());
    }
    let generation = sign_in::current_generation(&state, code)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    signed_in(&state, code, generation, &headers, lang).await
}

/// The answer that starts a site's session (bound to its key's generation) and shows its page.
async fn signed_in(
    state: &AppState,
    code: InstitutionCode,
    generation: String,
    headers: &HeaderMap,
    lang: Lang,
) -> Result<Response, PageError> {
    let id = state
        .login_site(code, generation)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let mut r = see_other("/site", lang);
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(SITE_COOKIE, &id, Who::Site(code), headers),
    );
    Ok(r)
}

/// A masked key field with a button that shows what was typed (the script `pages.js` shows the
/// button and switches the field; without scripts the field stays masked).
pub fn key_field(id: &str, lang: Lang) -> Markup {
    html! {
        span class="key-field" {
            input id=(id) name=(id) type="password" autocomplete="current-password" autocapitalize="off" spellcheck="false" required;
            button type="button" class="show-key" data-show-key=(id) aria-controls=(id) aria-pressed="false" hidden
                data-label-show=(lang.pick("表示", "Show")) data-label-hide=(lang.pick("隠す", "Hide")) {
                (lang.pick("表示", "Show"))
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `GET /site/sign-in?token=…`: the mailed link. It only shows a button: a mail scanner that
/// follows links must not use the one-time link up before staff open it.
pub async fn sign_in_page(Query(q): Query<SignInQuery>) -> Response {
    let lang = lang_of(q.lang.as_deref());
    if !sign_in::well_formed(&q.token) {
        return link_refused(lang);
    }
    let body = html! {
        h1 { (lang.pick("更新状況の確認ページへのログイン", "Sign in to your update status")) }
        p { (lang.pick(
            "下のボタンを押すとログインします。このリンクは1回だけ使えます。ログインしたこのブラウザでは、しばらくの間ログインしたままになります。",
            "Press the button to sign in. This link works once; this browser then stays signed in for a while."
        )) }
        form method="post" action="/site/sign-in" class="panel" {
            input type="hidden" name="token" value=(q.token);
            input type="hidden" name="lang" value=(lang.code());
            button type="submit" class="primary" id="sign-in" { (lang.pick("ログインする", "Sign in")) }
        }
    };
    layout(lang.pick("ログイン", "Sign in"), lang, "/site", body)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /site/sign-in`: uses the link once and starts the site's session on this browser.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    state.may_try_login(&headers, client.ip(), crate::logins::Door::Site, lang)?;
    match sign_in::redeem(&state, &form.token)
        .await
        .map_err(|e| PageError::from_api(e, lang))?
    {
        Some((code, generation)) => signed_in(&state, code, generation, &headers, lang).await,
        None => {
            let mut r = link_refused(lang);
            *r.status_mut() = StatusCode::GONE;
            Ok(r)
        }
    }
}

/// A link that was used, expired, or is not one: the way in with the access key.
fn link_refused(lang: Lang) -> Response {
    login_page(
        lang,
        Some(lang.pick(
            "このログイン用リンクは使用済みか、有効期限が切れています。医療機関コードとアクセスキーでログインしてください。",
            "This sign-in link was already used or has expired. Sign in with your institution code and access key.",
        )),
        None,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /site/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response, PageError> {
    let lang = lang_of(form.lang.as_deref());
    let current = state
        .site_session(&headers)
        .await
        .map_err(|e| PageError::from_api(e, lang))?
        .filter(|c| same_origin(&headers) && csrf_matches(c, &form.csrf))
        .ok_or_else(|| PageError::forbidden(lang))?;
    state
        .logout_site(&current)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let mut r = see_other("/site", lang);
    r.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(SITE_COOKIE, &headers));
    Ok(r.into_response())
}

async fn render(
    state: &AppState,
    status: &SiteStatus,
    current: &Current,
    lang: Lang,
) -> Result<Markup, PageError> {
    let now = state.now();
    let advice = status.advice;
    let schedule = status.campaign.as_ref().map(|(_, c)| c.clone());
    Ok(html! {
        h1 { (status.name) }
        p class="muted" { (lang.pick("医療機関コード: ", "Institution code: ")) (status.code) " ・ " (lang.pick("現在時刻: ", "Now: ")) (when(now, lang)) }
        (advice_box(&advice, lang))
        @if matches!(advice, Advice::CallCentre { .. }) {
            (call_centre(lang, now))
            (fallback(lang))
        }
        h2 { (lang.pick("機器ごとの状況", "Your devices")) }
        @if status.devices.is_empty() {
            p { (lang.pick("登録されている機器はありません。", "No device is enrolled.")) }
        } @else {
            div class="scroll" role="region" tabindex="0" aria-label=(lang.pick("機器ごとの状況", "Your devices")) {
                table id="devices" class="stack" {
                    tr {
                        th { (lang.pick("機器", "Device")) }
                        th { (lang.pick("状況", "Status")) }
                        th { (lang.pick("バージョン（動作中 / インストール済み）", "Version (running / installed)")) }
                        th { (lang.pick("最終通信", "Last contact")) }
                    }
                    @for d in &status.devices {
                        tr data-state=(d.state.map(|s| s.slug()).unwrap_or("none")) data-kind=(d.device.kind.slug()) {
                            td data-label=(lang.pick("機器", "Device")) {
                                (device_name(d.device.kind, d.device.vendor, lang))
                                br; span class="muted" { (d.device.serial) }
                            }
                            td class=[d.restart_required.then_some("bad")] data-label=(lang.pick("状況", "Status")) {
                                @if let Some(s) = d.state {
                                    strong { (lang.pick(s.label_ja(d.device.kind), s.label_en(d.device.kind))) }
                                    br;
                                }
                                @match d.advice {
                                    Some(a) => { span class="device-advice" { (a.text(lang)) } }
                                    None => { (lang.pick("予定されている更新はありません。", "No update is scheduled.")) }
                                }
                                @if let Some((ahead, at)) = d.turn.filter(|_| d.state.is_some_and(onshi_core::offer::wants_download)) {
                                    div class="turn" data-turn=(at) {
                                        (turn_sentence(ahead, at, lang))
                                    }
                                }
                                @if let Some(last) = silent_since(status, d, now) {
                                    div class="silent bad" {
                                        strong { (silence::row_heading(last, lang)) }
                                        ol {
                                            @for check in silence::checks(lang) { li { (check) } }
                                        }
                                    }
                                }
                            }
                            td data-label=(lang.pick("バージョン（動作中 / インストール済み）", "Version (running / installed)")) {
                                (d.device.running.as_ref().map(ToString::to_string).unwrap_or_else(|| "—".into()))
                                " / "
                                (d.device.installed.as_ref().map(ToString::to_string).unwrap_or_else(|| "—".into()))
                            }
                            td data-label=(lang.pick("最終通信", "Last contact")) { (d.device.last_contact.map(|t| when(t, lang)).unwrap_or_else(|| lang.pick("まだありません", "never").to_owned())) }
                        }
                    }
                }
            }
        }
        p {
            (lang.pick("自動再起動の設定: ", "Automatic restart: "))
            @match status.institution.auto_restart {
                Some(t) => { (match lang { Lang::Ja => format!("毎日 {:02}:{:02}", t.hour(), t.minute()), Lang::En => format!("daily at {:02}:{:02}", t.hour(), t.minute()) }) }
                None => { (lang.pick("なし（手動で再起動してください）", "none (restart by hand)")) }
            }
        }
        @if let Some(c) = &schedule {
            h2 { (lang.pick("配信の予定", "Schedule")) }
            @if let Some(p) = period(c, lang) { p { (p) } }
            @if let Some(all_day) = all_day_since(c, now, lang) { p id="all-day" { (all_day) } }
            p id="once" { (lang.pick(
                "上記期間中、1度だけ実施いただければ問題ございません（いずれかの日の夜に電源をオンにしたままにし、翌朝に資格確認端末を再起動）。",
                "Once during the period is enough (keep the devices on through any one night, restart the terminal the next morning).",
            )) }
            p { (now_sentence(c, now, lang)) " " a href=(href("/guidance", lang)) { (lang.pick("詳しいご案内", "Full guidance")) } }
            (completion_check(c, lang, onshi_core::guidance::CheckedFrom::SitePage))
        }
        (on_901(lang))
        form method="post" action="/site/logout" {
            input type="hidden" name="csrf" value=(current.csrf);
            input type="hidden" name="lang" value=(lang.code());
            button type="submit" id="logout" { (lang.pick("ログアウト", "Log out")) }
        }
    })
}

/// The last contact of a device that is silent under its campaign's rule
/// ([`silence::is_silent`], while the campaign is watched), so its row can say so.
fn silent_since(
    status: &SiteStatus,
    d: &SiteDevice,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    let (record, campaign) = status.campaign.as_ref()?;
    let last = d.device.last_contact?;
    let state = d.state?;
    (silence::watched(record.status)
        && d.campaign.as_deref() == Some(record.id.as_str())
        && silence::is_silent(
            d.device.kind,
            state,
            Some(last),
            now,
            campaign.silent_after(),
        ))
    .then_some(last)
}

/// When the device's turn to download is expected tonight (its appointment in the campaign's
/// queue for download slots), in Japan time with the date and weekday.
fn turn_sentence(ahead: u64, at: jiff::Timestamp, lang: Lang) -> String {
    match lang {
        Lang::Ja => format!(
            "ダウンロードの順番待ちです（前に{ahead}台）。順番は {} ごろの見込みです。電源を入れたままにしておいてください。",
            when(at, lang)
        ),
        Lang::En => format!(
            "Waiting for its turn to download ({ahead} ahead). Its turn is expected around {}. Keep it powered on.",
            when(at, lang)
        ),
    }
}

/// 「資格確認端末」 or 「顔認証付きカードリーダー（キヤノン）」.
fn device_name(kind: DeviceKind, vendor: Option<onshi_core::vendor::Vendor>, lang: Lang) -> String {
    let name = lang.pick(kind.name_ja(), kind.name_en());
    match vendor {
        Some(v) => match lang {
            Lang::Ja => format!("{name}（{}）", v.name_ja()),
            Lang::En => format!("{name} ({})", v.name_en()),
        },
        None => name.to_owned(),
    }
}

/// What to do when a card reader shows 901 (the notice: 資格確認端末の再起動後、再度マイナ保険証を
/// ご利用いただくようご案内; 【不具合発生時等の対応について】).
fn on_901(lang: Lang) -> Markup {
    html! {
        section class="panel" id="on-901" {
            h2 { (lang.pick("901 が表示されたら", "If a card reader shows 901")) }
            ol {
                @for step in onshi_core::guidance::on_error_901(lang) {
                    li { (step) }
                }
                li {
                    (onshi_core::guidance::if_error_persists(lang))
                    (lang.pick(onshi_core::callcentre::NAME_JA, "online qualification confirmation call centre"))
                    " "
                    a href={ "tel:" (onshi_core::callcentre::PHONE.replace('-', "")) } { (onshi_core::callcentre::PHONE) }
                    (lang.pick("（通話無料）までご連絡ください。受付時間: ", " (toll-free). Hours: "))
                    (lang.pick(onshi_core::callcentre::HOURS_JA, onshi_core::callcentre::HOURS_EN))
                }
            }
            p id="on-901-fallback" {
                (lang.pick("その間のマイナ保険証による資格確認は、医療機関等向け総合ポータルサイトの記事", "Meanwhile, confirm qualification as the portal article "))
                a href=(onshi_core::callcentre::FALLBACK_URL) rel="noopener" {
                    "「" (onshi_core::callcentre::FALLBACK_TITLE_JA) "」（KB0011769）"
                }
                (lang.pick("に沿ってご対応ください。", " describes."))
            }
        }
    }
}

/// The advice, highlighted by how urgent it is.
pub fn advice_box(advice: &Advice, lang: Lang) -> Markup {
    html! {
        section class={ "advice " (advice.slug()) } id="advice" data-advice=(advice.slug()) {
            h2 { (advice.headline(lang)) }
            p { (advice.text(lang)) }
        }
    }
}
