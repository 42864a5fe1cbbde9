//! Server-rendered HTML pages (maud): Japanese by default, `?lang=en` for English, no external
//! assets — the CSS is inline and everything is served by onshi itself.
//!
//! `home` is the top page, `guidance` the public guidance, `site` a site's own page,
//! `operator`, `dashboard` and `actions` the operator's, `reception` the reception emulator; `session`
//! holds the login sessions and their CSRF tokens, `chart` and `calendar` draw in inline SVG
//! and HTML.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use onshi_core::jst;
use onshi_core::lang::Lang;
use serde::Deserialize;

use crate::error::ApiError;

pub mod actions;
pub mod assets;
pub mod calendar;
pub mod chart;
pub mod dashboard;
pub mod groups;
pub mod guidance;
pub mod home;
pub mod operator;
pub mod reception;
pub mod session;
pub mod site;

/// `?lang=ja|en` (anything else falls back to Japanese).
#[derive(Deserialize, Default)]
pub struct LangQuery {
    pub lang: Option<String>,
}

impl LangQuery {
    pub fn lang(&self) -> Lang {
        lang_of(self.lang.as_deref())
    }
}

/// The language a `lang` parameter asks for (Japanese unless it says `en`).
pub fn lang_of(param: Option<&str>) -> Lang {
    param.and_then(|l| l.parse().ok()).unwrap_or_default()
}

/// A link to `path` (which may carry a query) in `lang`: Japanese needs no parameter.
pub fn href(path: &str, lang: Lang) -> String {
    match lang {
        Lang::Ja => path.to_owned(),
        Lang::En => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}lang=en")
        }
    }
}

/// A redirect after a form post (303, so the browser follows with GET).
pub fn see_other(path: &str, lang: Lang) -> Response {
    Redirect::to(&href(path, lang)).into_response()
}

/// An instant for people: `2026年1月19日(月) 20:00` or `Mon 19 Jan 2026 20:00 JST`.
pub fn when(at: Timestamp, lang: Lang) -> String {
    jst::format(at, lang)
}

/// A page that failed: the message in an HTML page with the right status, never JSON.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    pub lang: Lang,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>, lang: Lang) -> Self {
        Self {
            status,
            message: message.into(),
            lang,
        }
    }

    /// A form post without the session's CSRF token, or from another site.
    pub fn forbidden(lang: Lang) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            lang.pick(
                "この操作は受け付けられません。ページを開き直してから、もう一度お試しください。",
                "This request was refused. Reload the page and try again.",
            ),
            lang,
        )
    }

    /// Too many login attempts from this client, or from everyone at once.
    pub fn too_many_logins(lang: Lang) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            lang.pick(
                "ログインの試行が多すぎます。1分ほど待ってから、もう一度お試しください。",
                "Too many login attempts. Wait a minute, then try again.",
            ),
            lang,
        )
    }

    /// Adds the page's language to an API error.
    pub fn from_api(e: ApiError, lang: Lang) -> Self {
        Self::new(e.status, e.message, lang)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let lang = self.lang;
        let body = html! {
            h1 { (lang.pick("エラー", "Error")) }
            p class="flash bad" id="error" { (self.message) }
            p { a href=(href("/", lang)) { (lang.pick("トップページへ", "Back to the top page")) } }
        };
        let mut r = layout(lang.pick("エラー", "Error"), lang, "/", body);
        *r.status_mut() = self.status;
        r
    }
}

const CSS: &str = r#"
:root { --ink:#1b1f24; --muted:#5b6470; --line:#d6dbe1; --accent:#0b5cab; --bad:#b3261e; --ok:#1e7a34; }
* { box-sizing: border-box; }
body { margin:0; font-family: "Hiragino Kaku Gothic ProN","Noto Sans JP","Yu Gothic",Meiryo,sans-serif; color:var(--ink); background:#f5f7f9; line-height:1.6; }
header { background:var(--accent); color:#fff; padding:.6rem 1rem; display:flex; justify-content:space-between; align-items:center; flex-wrap:wrap; gap:.5rem; }
header a { color:#fff; }
main { max-width:1100px; margin:0 auto; padding:1rem; }
h1 { font-size:1.35rem; margin:.2rem 0; }
h2 { font-size:1.1rem; margin:1.2rem 0 .4rem; }
.panels { display:grid; grid-template-columns:repeat(auto-fit,minmax(300px,1fr)); gap:1rem; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:1rem; }
.screen { min-height:170px; border-radius:10px; padding:1rem; font-size:1.05rem; white-space:pre-line; position:relative; }
.reader { border:6px solid #333; background:#fdfdfd; }
.reader.panasonic { border-color:#0041a0; }
.reader.canon { border-color:#cc0000; }
.reader.usen-almex { border-color:#00885a; }
.reader.fujitsu-japan { border-color:#e60012; background:#fffafa; }
.reader.atlus { border-color:#f08300; }
.reader.error_901 { background:#fff3f2; color:var(--bad); font-weight:bold; }
.spinner { display:inline-block; width:1.4em; height:1.4em; border:4px solid #bbb; border-top-color:#333; border-radius:50%; vertical-align:middle; margin-left:.4em; animation:spin 1s linear infinite; }
@keyframes spin { to { transform:rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .spinner { animation:none; border-top-color:#bbb; border-right-color:#333; } }
.gloss { margin:.3rem 0 0; font-size:.9rem; white-space:pre-line; }
@media (max-width:600px) { .desk-buttons { position:sticky; bottom:0; background:#f5f7f9; border-top:1px solid var(--line); padding:.3rem 0; z-index:1; } .screen { min-height:120px; } }
.terminal { border:6px solid #555; background:#eef1f4; }
.dialog { background:#fff; border:2px solid var(--bad); border-radius:6px; padding:.8rem; margin-top:.5rem; }
.stuck { color:var(--muted); font-size:.85rem; }
.assumed { display:block; margin-top:.6rem; color:var(--muted); font-size:.8rem; font-weight:normal; white-space:normal; }
.behaviour { color:var(--muted); font-size:.85rem; }
.buttons { display:flex; flex-wrap:wrap; gap:.5rem; margin:.6rem 0; }
button { font-size:1rem; padding:.5rem .9rem; border-radius:6px; border:1px solid var(--accent); background:#fff; color:var(--accent); cursor:pointer; }
button.primary { background:var(--accent); color:#fff; }
button.danger { border-color:var(--bad); color:var(--bad); }
button.small { font-size:.85rem; padding:.3rem .6rem; }
ul.devices { margin:0; padding-left:1.1rem; } ul.devices li { margin-bottom:.3rem; }
td.contact a.phone { font-weight:bold; font-size:1.05rem; }
table#sites td { vertical-align:top; } table#sites td.tell { min-width:16rem; }
@media (max-width:600px) { table#sites td.tell { min-width:0; } #filters label { display:flex; justify-content:space-between; align-items:center; gap:.5rem; margin:.25rem 0; } }
.guide { background:#fff8e1; border:2px solid #f2b400; border-radius:8px; padding:1rem; margin-top:1rem; }
.guide ol { margin:.3rem 0 .3rem 1.2rem; padding:0; }
table { border-collapse:collapse; width:100%; background:#fff; }
th, td { border:1px solid var(--line); padding:.3rem .5rem; text-align:left; font-size:.95rem; }
.ok { color:var(--ok); font-weight:bold; } .bad { color:var(--bad); font-weight:bold; }
label { margin-right:.6rem; }
select, input, textarea { font-size:1rem; padding:.25rem; }
nav { display:flex; flex-wrap:wrap; gap:.2rem 1rem; }
nav a { text-decoration:none; }
.muted { color:var(--muted); font-size:.9rem; }
.flash { border-radius:6px; padding:.6rem .8rem; margin:.6rem 0; border:1px solid; }
.flash.ok { background:#e8f5ec; border-color:var(--ok); font-weight:normal; }
.flash.bad { background:#fdecea; border-color:var(--bad); font-weight:normal; }
.advice { background:#fff8e1; border:2px solid #f2b400; border-radius:8px; padding:1rem; margin:1rem 0; }
.advice.restart_now, .advice.restart_after, .advice.call_centre { background:#fdecea; border-color:var(--bad); }
.advice.done, .advice.auto_restart { background:#e8f5ec; border-color:var(--ok); }
.advice h2 { margin-top:0; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:.6rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.6rem .8rem; }
.card .n { font-size:1.6rem; font-weight:bold; }
.card.s-installed { border-left:6px solid #d97706; } .card.s-applied { border-left:6px solid var(--ok); }
.card.s-failed, .card.s-silent { border-left:6px solid var(--bad); } .card.s-waiting { border-left:6px solid #9aa5b1; }
.card.s-downloading, .card.s-downloaded, .card.s-installing { border-left:6px solid var(--accent); }
.scroll { overflow-x:auto; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
th a { color:inherit; }
.cal { display:grid; grid-template-columns:repeat(7,1fr); gap:2px; max-width:560px; }
.cal div { background:#fff; border:1px solid var(--line); min-height:3.2rem; padding:.15rem .3rem; font-size:.8rem; }
.cal .head { min-height:auto; background:none; border:none; text-align:center; font-weight:bold; }
.cal .blank { background:none; border:none; }
.cal .night { background:#dbe9fb; } .cal .catch_up { background:#fde9c8; }
.cal .excluded { background:#eee; color:var(--muted); text-decoration:line-through; }
.cal .today { outline:3px solid var(--bad); outline-offset:-3px; }
p.legend span { display:inline-block; padding:0 .4rem; margin-right:.4rem; border:1px solid var(--line); font-size:.8rem; }
figure .legend .key { display:inline-flex; align-items:center; gap:.3rem; margin:.2rem .9rem .2rem 0; font-size:.85rem; }
figure .legend .swatch { display:inline-block; width:.9rem; height:.9rem; border-radius:2px; }
figure .legend .swatch.line { height:.35rem; } figure .legend .swatch.now { width:.2rem; height:1rem; }
#chart svg { background:#fff; border:1px solid var(--line); border-radius:8px; }
#chart .chart-wide { display:block; max-height:340px; } #chart .chart-narrow { display:none; }
.live { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.3rem .6rem; }
.live input[type=checkbox] { width:1.3rem; height:1.3rem; vertical-align:middle; }
.key-field { display:flex; gap:.4rem; align-items:center; } .key-field input { flex:1; min-width:0; }
form.inline { display:inline; }
.grid-form { display:grid; grid-template-columns:max-content 1fr; gap:.4rem .6rem; align-items:center; max-width:640px; }
svg text { font-family:inherit; }
@media (max-width:600px) {
  table.stack, table.stack tbody, table.stack tr, table.stack td { display:block; }
  table.stack tr:first-child { display:none; }
  table.stack tr { border:1px solid var(--line); border-radius:6px; margin-bottom:.6rem; background:#fff; }
  table.stack td { border:none; border-bottom:1px solid var(--line); }
  table.stack td::before { content:attr(data-label); display:block; color:var(--muted); font-size:.8rem; }
}
@media (max-width:600px) { #chart .chart-wide { display:none; } #chart .chart-narrow { display:block; } .cards { grid-template-columns:repeat(2,1fr); } .card .n { font-size:1.3rem; } }
@media (max-width:600px) { main { padding:.5rem; } th, td { font-size:.85rem; padding:.25rem .3rem; } .grid-form { grid-template-columns:1fr; } }
"#;

/// The page frame: title, navigation, language switch, inline CSS. `path` is this page's path
/// (and query, without `lang`), for the language switch.
pub fn layout(title: &str, lang: Lang, path: &str, body: Markup) -> Response {
    let other = match lang {
        Lang::Ja => Lang::En,
        Lang::En => Lang::Ja,
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — onshi" }
                link rel="icon" href="/favicon.ico";
                style { (PreEscaped(CSS)) }
                script src=(assets::SCRIPT_PATH) defer {}
            }
            body {
                header {
                    nav {
                        a href=(href("/", lang)) { strong { "onshi" } }
                        a href=(href("/guidance", lang)) { (lang.pick("配信のご案内", "Guidance")) }
                        a href=(href("/site", lang)) { (lang.pick("医療機関・薬局の方", "For sites")) }
                        a href=(href("/operator", lang)) { (lang.pick("運用者", "Operator")) }
                        a href=(href("/reception", lang)) { (lang.pick("受付の再現", "Reception emulator")) }
                    }
                    a href=(href(path, other)) id="lang-switch" lang=(other.code()) { (other.pick("日本語", "English")) }
                }
                main { (body) }
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}
