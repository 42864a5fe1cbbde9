//! `/reception`: the reception desk emulator page. The card reader (styled per vendor) and the
//! terminal side by side, buttons for the patient and for staff, and — when the 901 screen
//! shows — what staff do next: restart, retry, the call centre (open now?) and the fallback
//! procedure (KB0011769). Each screen shows its text as the model gives it, an assumed one
//! marked as such on the screen.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use onshi_core::callcentre;
use onshi_core::institution::InstitutionCode;
use onshi_core::lang::Lang;
use onshi_core::reception::{Reception, ReceptionEvent, Source, TerminalState};
use onshi_core::vendor::{DeviceKind, Vendor};
use serde::Deserialize;

use super::{LangQuery, PageError, layout};
use crate::desks::Desk;
use crate::services::devices::access_key_matches;
use crate::services::qualification::{self, CARD_EXPIRED_CERTIFICATE, CARD_NO_QUALIFICATION};
use crate::state::AppState;

/// The portal article for confirming qualification when the My Number card cannot be used.
pub const FALLBACK_URL: &str =
    "https://iryohokenjyoho.service-now.com/csm?id=kb_article_view&sysparm_article=KB0011769#B";

#[derive(Deserialize, Default)]
pub struct NewDesk {
    vendor: Option<String>,
    terminal: Option<String>,
    lang: Option<String>,
}

/// `GET /reception`: a new desk (vendor and terminal state from the query, default Canon and a
/// pending restart), then its page.
pub async fn start(State(state): State<AppState>, Query(q): Query<NewDesk>) -> Response {
    let vendor = q
        .vendor
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Vendor::Canon);
    let terminal = q
        .terminal
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(TerminalState::PendingRestart);
    let id = state
        .desks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(Reception::new(vendor, terminal), None);
    let lang = LangQuery { lang: q.lang }.lang();
    Redirect::to(&desk_url(&id, lang)).into_response()
}

/// Where a desk's page is, scrolled to its screens and buttons (a press on a phone comes back
/// to the screens, not to the top of the page).
fn desk_url(id: &str, lang: Lang) -> String {
    format!("/reception/{id}?lang={}#desk", lang.code())
}

/// A desk that is gone (the server restarted, or a thousand newer desks pushed it out).
fn expired(lang: Lang) -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        lang.pick(
            "この受付の再現は終了しています（サーバーの再起動などで消えました）。上の「受付の再現」から開き直してください。",
            "This emulated desk has ended (for example, the server restarted). Open the reception emulator again from the menu above.",
        ),
        lang,
    )
}

fn desk_of(state: &AppState, id: &str, lang: Lang) -> Result<Desk, PageError> {
    state
        .desks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map
        .get(id)
        .cloned()
        .ok_or_else(|| expired(lang))
}

/// `GET /reception/{id}`.
pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Result<Response, PageError> {
    let lang = q.lang();
    let desk = desk_of(&state, &id, lang)?;
    Ok(desk_page(&state, &desk, &id, lang, None, StatusCode::OK))
}

/// The desk's page, with a problem to show above the screens (`error`) and its status.
fn desk_page(
    state: &AppState,
    desk: &Desk,
    id: &str,
    lang: Lang,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let body = render(desk, id, lang, state.now(), error);
    let mut r = layout(
        lang.pick("受付の再現", "Reception emulator"),
        lang,
        &format!("/reception/{id}"),
        body,
    );
    *r.status_mut() = status;
    r
}

#[derive(Deserialize)]
pub struct EventForm {
    event: String,
    #[serde(default)]
    card: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /reception/{id}/event`: a button was pressed. A press the desk cannot take now (the
/// page in another tab moved on) shows the desk as it is, with what happened, in the page's
/// language.
pub async fn event(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<EventForm>,
) -> Result<Response, PageError> {
    let lang = LangQuery {
        lang: form.lang.clone(),
    }
    .lang();
    let Ok(event) = form.event.parse::<ReceptionEvent>() else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            lang.pick(
                "この操作はありません。ページを開き直してください。",
                "There is no such action. Reload the page.",
            ),
            lang,
        ));
    };
    let refused = {
        let mut desks = state.desks.lock().unwrap_or_else(|e| e.into_inner());
        let d = desks.map.get_mut(&id).ok_or_else(|| expired(lang))?;
        if let Some(card) = form.card.filter(|c| !c.is_empty() && c.len() <= 64) {
            d.card = card;
        }
        let card = d.card.clone();
        let was_failing = d.desk.failed() && !d.recorded;
        if event == ReceptionEvent::TerminalRestarted && was_failing {
            d.log.record(&d.desk);
            d.recorded = true;
        }
        if event == ReceptionEvent::CardInserted {
            d.recorded = false;
        }
        match d.desk.apply(event, || qualification::outcome(&card)) {
            Ok(()) => {
                if d.desk.attempt_over() && !d.recorded {
                    d.log.record(&d.desk);
                    d.recorded = true;
                }
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "reception step refused");
                Some(d.clone())
            }
        }
    };
    match refused {
        None => Ok(Redirect::to(&desk_url(&id, lang)).into_response()),
        Some(desk) => {
            let why = match lang {
                Lang::Ja => format!(
                    "「{}」は、今の画面ではできません。別のタブやウィンドウで操作が進んだ可能性があります。いまの画面の状態を表示しています。",
                    event_label(event, lang)
                ),
                Lang::En => format!(
                    "\"{}\" is not possible on the current screens; the desk may have moved on in another tab or window. The screens as they are now are shown.",
                    event_label(event, lang)
                ),
            };
            Ok(desk_page(
                &state,
                &desk,
                &id,
                lang,
                Some(&why),
                StatusCode::CONFLICT,
            ))
        }
    }
}

#[derive(Deserialize)]
pub struct SetupForm {
    vendor: String,
    terminal: String,
    #[serde(default)]
    institution_code: Option<String>,
    #[serde(default)]
    access_key: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /reception/{id}/setup`: choose the vendor and the terminal state — by hand, or from a
/// real enrolled terminal (its site's code and access key), which also takes the vendor of the
/// site's card reader. A problem is shown on the desk's page, in its language.
pub async fn setup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<SetupForm>,
) -> Result<Response, PageError> {
    let lang = LangQuery {
        lang: form.lang.clone(),
    }
    .lang();
    let current = desk_of(&state, &id, lang)?;
    let problem = |status: StatusCode, ja: &str, en: &str| -> Result<Response, PageError> {
        Ok(desk_page(
            &state,
            &current,
            &id,
            lang,
            Some(lang.pick(ja, en)),
            status,
        ))
    };
    let (Ok(mut vendor), Ok(mut terminal)) = (
        form.vendor.parse::<Vendor>(),
        form.terminal.parse::<TerminalState>(),
    ) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "カードリーダーのメーカーか資格確認端末の状態が選ばれていません。",
            "Choose the card reader's vendor and the terminal's state.",
        );
    };
    let mut linked = None;
    if let Some(code) = form
        .institution_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let Ok(code) = InstitutionCode::parse(code) else {
            return problem(
                StatusCode::BAD_REQUEST,
                "医療機関コードは10桁の数字で入力してください（最後の1桁は検証番号です）。",
                "Enter the institution code as 10 digits (the last one is a check digit).",
            );
        };
        let key = form.access_key.unwrap_or_default();
        if !access_key_matches(&state, code, key)
            .await
            .map_err(|e| PageError::from_api(e, lang))?
        {
            return problem(
                StatusCode::UNAUTHORIZED,
                "医療機関コードまたはアクセスキーが正しくありません。",
                "The institution code or the access key is not correct.",
            );
        }
        let devices = state
            .db(move |s| s.devices_of(code))
            .await
            .map_err(|e| PageError::from_api(e, lang))?;
        let Some(t) = devices.iter().find(|d| d.kind == DeviceKind::Terminal) else {
            return problem(
                StatusCode::NOT_FOUND,
                "この医療機関には、登録された資格確認端末がありません。",
                "This site has no enrolled terminal.",
            );
        };
        if let (Some(running), Some(installed)) = (&t.running, &t.installed) {
            terminal = TerminalState::from_versions(running, installed);
        }
        // The site's own card reader decides the screens, not the dropdown.
        if let Some(v) = devices
            .iter()
            .filter(|d| d.kind == DeviceKind::CardReader)
            .find_map(|d| d.vendor)
        {
            vendor = v;
        }
        linked = Some(code);
    }
    {
        let mut desks = state.desks.lock().unwrap_or_else(|e| e.into_inner());
        let d = desks.map.get_mut(&id).ok_or_else(|| expired(lang))?;
        d.desk = Reception::new(vendor, terminal);
        d.recorded = false;
        d.linked = linked;
    }
    Ok(Redirect::to(&desk_url(&id, lang)).into_response())
}

fn event_label(e: ReceptionEvent, lang: Lang) -> &'static str {
    use ReceptionEvent as E;
    match (e, lang) {
        (E::CardInserted, Lang::Ja) => "カードを置く（患者）",
        (E::FaceVerified, Lang::Ja) => "顔認証する（患者）",
        (E::PinVerified, Lang::Ja) => "暗証番号で確認（患者）",
        (E::ConsentCompleted, Lang::Ja) => "同意選択を終える（患者）",
        (E::OkPressed, Lang::Ja) => "「OK」を押す（職員）",
        (E::CardRemoved, Lang::Ja) => "カードを取り出す（患者）",
        (E::TerminalRestarted, Lang::Ja) => "資格確認端末を再起動（職員）",
        (E::CardInserted, Lang::En) => "Insert card (patient)",
        (E::FaceVerified, Lang::En) => "Verify face (patient)",
        (E::PinVerified, Lang::En) => "Enter PIN (patient)",
        (E::ConsentCompleted, Lang::En) => "Finish consent (patient)",
        (E::OkPressed, Lang::En) => "Press OK (staff)",
        (E::CardRemoved, Lang::En) => "Remove card (patient)",
        (E::TerminalRestarted, Lang::En) => "Restart terminal (staff)",
    }
}

fn terminal_label(t: TerminalState, lang: Lang) -> &'static str {
    match lang {
        Lang::Ja => t.label_ja(),
        Lang::En => match t {
            TerminalState::UpToDate => "up to date (restarted)",
            TerminalState::PendingRestart => "update installed, not restarted",
        },
    }
}

fn render(d: &Desk, id: &str, lang: Lang, now: jiff::Timestamp, error: Option<&str>) -> Markup {
    let desk = &d.desk;
    let reader = desk.reader_screen();
    let terminal = desk.terminal_screen();
    let vendor = desk.vendor();
    let vendor_name = match lang {
        Lang::Ja => vendor.name_ja(),
        Lang::En => vendor.name_en(),
    };
    html! {
        h1 { (lang.pick("受付の再現（資格確認端末と顔認証付きカードリーダー）", "Reception emulator (terminal and face-authentication card reader)")) }
        form method="post" action={ "/reception/" (id) "/setup" } class="panel" {
            input type="hidden" name="lang" value=(lang.code());
            label { (lang.pick("カードリーダー", "Card reader")) " "
                select name="vendor" id="vendor" {
                    @for v in Vendor::ALL {
                        option value=(v.slug()) selected[v == vendor] { (match lang { Lang::Ja => v.name_ja(), Lang::En => v.name_en() }) }
                    }
                }
            }
            label { (lang.pick("資格確認端末", "Terminal")) " "
                select name="terminal" id="terminal" {
                    option value="pending-restart" selected[desk.terminal_state() == TerminalState::PendingRestart] { (lang.pick("更新インストール済み・再起動前", "update installed, not restarted")) }
                    option value="up-to-date" selected[desk.terminal_state() == TerminalState::UpToDate] { (lang.pick("最新（再起動済み）", "up to date (restarted)")) }
                }
            }
            details {
                summary { (lang.pick("実際の端末の状態を使う（医療機関コードとアクセスキー）", "Use a real enrolled terminal's state (institution code and access key)")) }
                label { (lang.pick("医療機関コード", "Institution code")) " " input name="institution_code" inputmode="numeric" maxlength="10"; }
                label { (lang.pick("アクセスキー", "Access key")) " " input name="access_key" type="password"; }
            }
            button type="submit" id="setup" { (lang.pick("この設定で始める", "Start with these settings")) }
            @if let Some(code) = d.linked {
                p id="linked" { (lang.pick("連携中の医療機関: ", "Linked site: ")) (code) " ・ " (lang.pick("カードリーダー: ", "Card reader: ")) (vendor_name) }
            }
        }
        @if let Some(e) = error { p class="flash bad" id="error" role="alert" { (e) } }
        div id="desk" {
        div class="panels" {
            section class="panel" {
                h2 { (lang.pick("顔認証付きカードリーダー", "Face-authentication card reader")) " — " (vendor_name) }
                // The text as the reader shows it: a 901 screen's code is in it, never added here.
                div class={ "screen reader " (vendor.slug()) " " (reader.screen) } id="reader" data-screen=(reader.screen) data-source=(reader.source.slug()) {
                    // What the reader shows is Japanese in every page language.
                    span lang="ja" class="screen-text" { (reader.text) }
                    @if reader.screen == "consent_loading" || reader.screen == "please_wait" {
                        span class="spinner" role="img" aria-label=(lang.pick("読み込み中", "loading")) {}
                    }
                    (mark(reader.source, lang))
                }
                @if lang == Lang::En { (gloss(&reader.text)) }
                @if reader.stuck { p class="stuck" { (lang.pick("※ 画面が切り替わりません", "The screen does not change")) } }
                @if let Some(words) = reader.behaviour {
                    p class="behaviour" id="reader-behaviour" { (lang.pick("通知の記載: ", "The notice says: ")) (quoted(words)) }
                }
            }
            section class="panel" {
                h2 { (lang.pick("資格確認端末", "Qualification confirmation terminal")) " — " (terminal_label(desk.terminal_state(), lang)) }
                div class="screen terminal" id="terminal-screen" data-dialog=(terminal.count.map(|c| c.to_string()).unwrap_or_default()) data-source=(terminal.source.map(Source::slug).unwrap_or_default()) {
                    @if let (Some(count), Some(text)) = (terminal.count, terminal.text) {
                        div class="dialog" id="terminal-dialog" {
                            strong lang="ja" { "エラー (" (count) ")" }
                            p lang="ja" { (text) }
                            @if let Some(source) = terminal.source { (mark(source, lang)) }
                        }
                        @if lang == Lang::En {
                            p class="gloss" { span class="muted" { "English: " } "Error (" (count) "): " (onshi_core::reception::gloss_en(text)) }
                        }
                    } @else if desk.confirmed() {
                        p class="ok" lang="ja" { "資格確認が完了しました。" }
                        @if lang == Lang::En { p class="gloss" { "Qualification confirmed." } }
                    } @else {
                        p lang="ja" { "オンライン資格確認　受付待ち" }
                        @if lang == Lang::En { p class="gloss" { "Online qualification confirmation — waiting for a patient" } }
                    }
                }
            }
        }
        form method="post" action={ "/reception/" (id) "/event" } class="desk-buttons" {
            input type="hidden" name="lang" value=(lang.code());
            @if desk.possible().contains(&ReceptionEvent::CardInserted) {
                label { (lang.pick("カード", "Card")) " "
                    select name="card" id="card" {
                        option value=(d.card) { (lang.pick("テスト用カード", "Test card")) }
                        option value=(CARD_NO_QUALIFICATION) { (lang.pick("資格情報のないカード", "Card without qualification")) }
                        option value=(CARD_EXPIRED_CERTIFICATE) { (lang.pick("電子証明書の期限切れ", "Expired certificate")) }
                    }
                }
            }
            div class="buttons" {
                @for e in desk.possible() {
                    button type="submit" name="event" value=(e.slug()) id={ "btn-" (e.slug()) }
                        class=[match e { ReceptionEvent::TerminalRestarted => Some("danger"), ReceptionEvent::OkPressed => Some("primary"), _ => None }] {
                        (event_label(e, lang))
                    }
                }
            }
        }
        }
        @if desk.shows_901() || desk.failed() && !desk.confirmed() && desk.terminal_state() == TerminalState::PendingRestart {
            (guide(lang, now))
        }
        h2 { (lang.pick("受付の記録", "Reception log")) }
        @if d.log.attempts.is_empty() {
            p { (lang.pick("まだ記録はありません。", "No attempts yet.")) }
        } @else {
            table id="log" {
                tr { th { "#" } th { (lang.pick("端末", "Terminal")) } th { (lang.pick("結果", "Result")) } th { (lang.pick("エラー", "Error")) } }
                @for a in &d.log.attempts {
                    tr {
                        td { (a.number) }
                        td { (terminal_label(a.terminal, lang)) }
                        td { @if a.confirmed { span class="ok" { (lang.pick("資格確認済み", "confirmed")) } } @else { span class="bad" { (lang.pick("未確認（要再受付）", "not confirmed — retry")) } } }
                        td { (a.error.unwrap_or("—")) }
                    }
                }
            }
        }
    }
}

/// A screen's English gloss, beneath it on an English page (the screen itself stays Japanese).
fn gloss(text: &str) -> Markup {
    html! {
        p class="gloss" { span class="muted" { "English: " } (onshi_core::reception::gloss_en(text)) }
    }
}

/// The mark beside an assumed screen text, on the screen itself; nothing beside a quoted one.
fn mark(source: Source, lang: Lang) -> Markup {
    html! {
        @if let Some(mark) = source.mark(lang) {
            span class="assumed" { (mark) }
        }
    }
}

/// What staff do when the error appears (the notice's 【不具合発生時等の対応について】).
fn guide(lang: Lang, now: jiff::Timestamp) -> Markup {
    let status = match lang {
        Lang::Ja => callcentre::status_text_ja(now),
        Lang::En => callcentre::status_text_en(now),
    };
    html! {
        div class="guide" id="guide" {
            strong { (lang.pick("職員の方へ：このエラーが表示されたら", "For staff: when this error appears")) }
            ol {
                @for step in onshi_core::guidance::on_error_901(lang) {
                    li { (step) }
                }
                li {
                    (onshi_core::guidance::if_error_persists(lang))
                    (callcentre::NAME_JA) " " strong { (callcentre::PHONE) } (lang.pick("（通話無料）へ。", " (toll-free)."))
                    br;
                    (lang.pick("受付時間: ", "Hours: ")) (lang.pick(callcentre::HOURS_JA, callcentre::HOURS_EN))
                    br;
                    span id="callcentre-status" { (status) }
                }
                li {
                    (lang.pick("その間の資格確認は「マイナ保険証での受付が出来ない場合の資格確認方法・レセプト請求方法」（KB0011769）に沿って行ってください: ", "Meanwhile, confirm qualification by the fallback procedure (KB0011769): "))
                    a href=(FALLBACK_URL) rel="noopener" { "KB0011769" }
                }
            }
        }
    }
}

/// The notice's words in 「」, a quotation inside them in 『』 as Japanese nests quotes (Canon's
/// behaviour is itself 「しばらくお待ちください」と表示され…).
fn quoted(words: &str) -> String {
    format!("「{}」", words.replace('「', "『").replace('」', "』"))
}

#[cfg(test)]
mod quote_tests {
    #[test]
    fn a_quotation_inside_the_notices_words_nests_in_double_brackets() {
        assert_eq!(
            super::quoted("「しばらくお待ちください」と表示され、画面が切り替わらない"),
            "「『しばらくお待ちください』と表示され、画面が切り替わらない」"
        );
        assert_eq!(super::quoted("最初の画面に戻る"), "「最初の画面に戻る」");
    }
}
