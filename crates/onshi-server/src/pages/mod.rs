//! Server-rendered HTML pages (maud): Japanese by default, `?lang=en` for English, no external
//! assets — the CSS is inline and everything is served by onshi itself.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use onshi_core::lang::Lang;
use serde::Deserialize;

pub mod reception;

/// `?lang=ja|en` (anything else falls back to Japanese).
#[derive(Deserialize, Default)]
pub struct LangQuery {
    pub lang: Option<String>,
}

impl LangQuery {
    pub fn lang(&self) -> Lang {
        self.lang
            .as_deref()
            .and_then(|l| l.parse().ok())
            .unwrap_or_default()
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
.spinner { display:inline-block; width:1.4em; height:1.4em; border:4px solid #bbb; border-top-color:#333; border-radius:50%; vertical-align:middle; margin-left:.4em; }
.terminal { border:6px solid #555; background:#eef1f4; }
.dialog { background:#fff; border:2px solid var(--bad); border-radius:6px; padding:.8rem; margin-top:.5rem; }
.stuck { color:var(--muted); font-size:.85rem; }
.buttons { display:flex; flex-wrap:wrap; gap:.5rem; margin:.6rem 0; }
button { font-size:1rem; padding:.5rem .9rem; border-radius:6px; border:1px solid var(--accent); background:#fff; color:var(--accent); cursor:pointer; }
button.primary { background:var(--accent); color:#fff; }
button.danger { border-color:var(--bad); color:var(--bad); }
.guide { background:#fff8e1; border:2px solid #f2b400; border-radius:8px; padding:1rem; margin-top:1rem; }
.guide ol { margin:.3rem 0 .3rem 1.2rem; padding:0; }
table { border-collapse:collapse; width:100%; background:#fff; }
th, td { border:1px solid var(--line); padding:.3rem .5rem; text-align:left; font-size:.95rem; }
.ok { color:var(--ok); font-weight:bold; } .bad { color:var(--bad); font-weight:bold; }
label { margin-right:.6rem; }
select, input { font-size:1rem; padding:.25rem; }
"#;

/// The page frame: title, language switch, inline CSS.
pub fn layout(title: &str, lang: Lang, path: &str, body: Markup) -> Response {
    let other = match lang {
        Lang::Ja => ("en", "English"),
        Lang::En => ("ja", "日本語"),
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — onshi" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    strong { "onshi" }
                    a href={ (path) "?lang=" (other.0) } { (other.1) }
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
