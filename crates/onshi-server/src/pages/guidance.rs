//! `/guidance`: the public guidance page — the schedule in Japan time with weekdays, the steps of
//! the notice, what the errors look like (with the reception emulator), the call centre with
//! "open now / opens at …" from the holiday calendar, and the fallback procedure (KB0011769).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use maud::{Markup, html};
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::offer::CampaignStatus;
use onshi_core::schedule::{Campaign, Phase};
use onshi_core::vendor::Vendor;
use onshi_core::{callcentre, guidance, notice};
use onshi_store::CampaignRecord;

use super::reception::FALLBACK_URL;
use super::{LangQuery, PageError, href, layout, when};
use crate::error::ApiResult;
use crate::state::AppState;

/// The campaign people should be told about: the newest active one, else the newest paused one.
pub async fn running_campaign(
    state: &AppState,
) -> ApiResult<Option<(CampaignRecord, Arc<Campaign>)>> {
    let records = state.db(|s| s.campaigns()).await?;
    let pick = [CampaignStatus::Active, CampaignStatus::Paused]
        .iter()
        .find_map(|want| records.iter().rev().find(|r| r.status == *want).cloned());
    match pick {
        Some(r) => {
            let schedule = state.schedule(&r)?;
            Ok(Some((r, schedule)))
        }
        None => Ok(None),
    }
}

/// `GET /guidance`.
pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<LangQuery>,
) -> Result<Response, PageError> {
    let lang = q.lang();
    let schedule = match running_campaign(&state)
        .await
        .map_err(|e| PageError::from_api(e, lang))?
    {
        Some((_, s)) => s,
        None => Arc::new(
            Campaign::preset("2026-01")
                .map_err(|e| PageError::from_api(crate::error::ApiError::internal(e), lang))?,
        ),
    };
    let now = state.now();
    let body = render(&schedule, lang, now);
    Ok(layout(
        lang.pick("配信のご案内", "Guidance"),
        lang,
        "/guidance",
        body,
    ))
}

/// `20:00`.
fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn date(d: Date, lang: Lang) -> String {
    match lang {
        Lang::Ja => jst::format_date_ja(d),
        Lang::En => jst::format_date_en(d),
    }
}

/// The schedule in one sentence, the same line the mails and the billing screen write
/// ([`notice::schedule_line`]): 「2026年1月19日(月)～1月30日(金) 各日20:00～翌5:00（1月25日(日)を除く）」.
pub fn period(c: &Campaign, lang: Lang) -> Option<String> {
    Some(notice::schedule_line(c, lang)).filter(|line| !line.is_empty())
}

/// From the campaign's catch-up date on (the notice: 1月31日（土）以降、終日配信): that
/// distribution now runs all day, from that date; `None` before it or without one.
pub fn all_day_since(c: &Campaign, now: Timestamp, lang: Lang) -> Option<String> {
    let from = c.catch_up_from().filter(|from| now >= *from)?;
    let day = date(jst::civil(from).date(), lang);
    Some(match lang {
        Lang::Ja => format!("{day}以降は終日配信されています。"),
        Lang::En => format!("Since {day}, the update is distributed all day."),
    })
}

/// Where distribution stands now, in one sentence.
pub fn now_sentence(c: &Campaign, now: Timestamp, lang: Lang) -> String {
    let s = c.status(now);
    match (s.phase, lang) {
        (Phase::Night, Lang::Ja) => format!(
            "現在、夜間配信中です（{}まで）。",
            when(s.closes_at.unwrap_or(now), lang)
        ),
        (Phase::Night, Lang::En) => format!(
            "Distributing now, until {}.",
            when(s.closes_at.unwrap_or(now), lang)
        ),
        (Phase::CatchUp, Lang::Ja) => "現在、終日配信中です。".to_owned(),
        (Phase::CatchUp, Lang::En) => "Distributing all day now (catch-up).".to_owned(),
        (Phase::After, Lang::Ja) => "配信は終了しました。".to_owned(),
        (Phase::After, Lang::En) => "Distribution has ended.".to_owned(),
        (Phase::Before | Phase::Between, _) => match (s.next_opening, lang) {
            (Some(next), Lang::Ja) => format!(
                "現在は配信時間外です。次の配信開始は{}です。",
                when(next, lang)
            ),
            (Some(next), Lang::En) => format!(
                "Not distributing now. Next distribution starts {}.",
                when(next, lang)
            ),
            (None, _) => lang
                .pick("配信は終了しました。", "Distribution has ended.")
                .to_owned(),
        },
    }
}

/// The schedule as a table: every night with its window, the excluded nights, the catch-up.
pub fn schedule_table(c: &Campaign, now: Timestamp, lang: Lang) -> Markup {
    enum Row {
        Night(Date, Timestamp, Timestamp),
        Excluded(Date),
    }
    let mut rows: Vec<Row> = c
        .windows()
        .iter()
        .map(|w| Row::Night(w.night, w.opens, w.closes))
        .chain(c.excluded().iter().map(|d| Row::Excluded(*d)))
        .collect();
    rows.sort_by_key(|r| match r {
        Row::Night(d, ..) | Row::Excluded(d) => *d,
    });
    let next = c.next_opening(now);
    html! {
        div class="scroll" role="region" tabindex="0" aria-label=(lang.pick("配信日程の表", "The schedule")) {
            table id="schedule" {
                tr {
                    th { (lang.pick("配信日", "Night of")) }
                    th { (lang.pick("配信時間（日本時間）", "Window (Japan time)")) }
                    th { (lang.pick("状況", "Status")) }
                }
                @for r in &rows {
                    @match r {
                        Row::Night(d, opens, closes) => {
                            @let open_now = *opens <= now && now < *closes;
                            tr class=[open_now.then_some("now")] {
                                td { (date(*d, lang)) }
                                td { (when(*opens, lang)) " ～ " (when(*closes, lang)) }
                                td {
                                    @if open_now { strong class="ok" { (lang.pick("配信中", "open now")) } }
                                    @else if next == Some(*opens) { strong { (lang.pick("次の配信", "next")) } }
                                    @else if *closes <= now { span class="muted" { (lang.pick("終了", "past")) } }
                                }
                            }
                        }
                        Row::Excluded(d) => {
                            tr class="excluded" {
                                td { (date(*d, lang)) }
                                td { strong { (lang.pick("配信なし", "no distribution")) } }
                                td {}
                            }
                        }
                    }
                }
                @if let Some(from) = c.catch_up_from() {
                    tr class="catch-up" {
                        td { (date(jst::civil(from).date(), lang)) (lang.pick(" 以降", " onwards")) }
                        td { (lang.pick("終日配信（更新が完了していない機器）", "all day, for every device not yet updated")) }
                        td { @if now >= from { strong class="ok" { (lang.pick("配信中", "open now")) } } }
                    }
                }
            }
        }
    }
}

/// The call centre: number, hours, and whether it is open now.
pub fn call_centre(lang: Lang, now: Timestamp) -> Markup {
    let status = match lang {
        Lang::Ja => callcentre::status_text_ja(now),
        Lang::En => callcentre::status_text_en(now),
    };
    let open = callcentre::is_open(now);
    html! {
        div class="panel" id="callcentre" {
            h2 { (lang.pick(callcentre::NAME_JA, "Online qualification confirmation call centre")) }
            p {
                a href={ "tel:" (callcentre::PHONE.replace('-', "")) } { strong style="font-size:1.3rem" { (callcentre::PHONE) } }
                " " (lang.pick("（通話無料）", "(toll-free)"))
            }
            p { (lang.pick("受付時間: ", "Hours: ")) (lang.pick(callcentre::HOURS_JA, callcentre::HOURS_EN)) }
            p id="callcentre-status" class=(if open { "ok" } else { "bad" }) { (status) }
        }
    }
}

/// Where this page comes from: the notice (日医発第1576号, forwarding the ministry's 事務連絡),
/// and the other ways sites are told.
fn source(c: &Campaign, lang: Lang) -> Markup {
    html! {
        p id="source" class="muted" {
            (lang.pick(
                "このご案内は、日本医師会「オンライン資格確認等システムのメンテナンスに伴う資格確認端末の再起動等の案内について（周知）」（日医発第1576号（情シ）（保険）、令和7年12月25日）と、それが周知する厚生労働省保険局医療介護連携政策課の事務連絡（令和7年12月24日）に基づいています。",
                "This guidance follows the Japan Medical Association's notice 日医発第1576号 (25 December 2025), which forwards the Ministry of Health, Labour and Welfare's 事務連絡 of 24 December 2025 on restarting the qualification confirmation terminal after the system's maintenance.",
            ))
            " "
            span id="channels" { (match lang {
                Lang::Ja => format!("本件は、{}でも通知されます。", notice::channels_line(c, lang)),
                Lang::En => format!("Sites are also told by {}.", notice::channels_line(c, lang)),
            }) }
        }
    }
}

/// How to check that the update installed: the official site once the campaign names it, and
/// onshi's own check: the device table on `/site` itself, a link to it elsewhere.
pub fn completion_check(c: &Campaign, lang: Lang, from: guidance::CheckedFrom) -> Markup {
    html! {
        p id="completion-check" {
            (guidance::completion_check_text(c.completion_check(), lang, from))
            @if let Some(check) = c.completion_check() {
                " " a href=(check.url) rel="noopener" { (lang.pick("公式の確認手順", "Official procedure")) }
            }
            @if from != guidance::CheckedFrom::SitePage {
                " " a href=(href("/site", lang)) { (lang.pick("医療機関・薬局の方のページ", "Your site's page")) }
            }
        }
    }
}

/// The fallback procedure while the card cannot be used.
pub fn fallback(lang: Lang) -> Markup {
    html! {
        p id="fallback" {
            (lang.pick(
                "その間のマイナ保険証による資格確認は、医療機関等向け総合ポータルサイトの記事「マイナ保険証での受付が出来ない場合の資格確認方法・レセプト請求方法」に沿ってご対応ください: ",
                "Meanwhile, confirm qualification by the procedure on the portal for medical institutions, \"how to confirm qualification and bill when the My Number insurance card cannot be used\": "
            ))
            a href=(FALLBACK_URL) rel="noopener" { "KB0011769" }
        }
    }
}

/// ① per vendor, in the notice's words.
fn reader_at_consent(v: Vendor, lang: Lang) -> &'static str {
    match (v, lang) {
        (Vendor::Panasonic, Lang::Ja) => {
            "完了画面が表示されるが、カードを抜き取っても画面が切り替わらない"
        }
        (Vendor::Canon, Lang::Ja) => "「しばらくお待ちください」と表示され、画面が切り替わらない",
        (Vendor::UsenAlmex | Vendor::FujitsuJapan, Lang::Ja) => {
            "最後に表示された同意画面上に、読み込み中の円が表示され、画面が切り替わらない"
        }
        (Vendor::Atlus, Lang::Ja) => "最初の画面に戻る",
        (Vendor::Panasonic, Lang::En) => {
            "shows the completion screen, which does not change even after the card is taken out"
        }
        (Vendor::Canon, Lang::En) => {
            "shows 「しばらくお待ちください」 (please wait) and never moves on"
        }
        (Vendor::UsenAlmex | Vendor::FujitsuJapan, Lang::En) => {
            "a loading circle over the last consent screen; never moves on"
        }
        (Vendor::Atlus, Lang::En) => "returns to the first screen",
    }
}

fn render(c: &Campaign, lang: Lang, now: Timestamp) -> Markup {
    let (opens, closes) = c
        .night_hours()
        .map_or(("20:00".to_owned(), "05:00".to_owned()), |(o, cl)| {
            (hhmm(o), hhmm(cl))
        });
    let last_night = c.windows().last().map(|w| w.night);
    html! {
        h1 { (c.title()) }
        (source(c, lang))
        p class="advice" id="now" { strong { (now_sentence(c, now, lang)) } br; span class="muted" { (lang.pick("現在時刻: ", "Now: ")) (when(now, lang)) } }

        h2 { (lang.pick("アプリケーションの配信期間", "When the update is distributed")) }
        @if let Some(p) = period(c, lang) { p id="period" { strong { (p) } } }
        (schedule_table(c, now, lang))

        h2 { (lang.pick("医療機関・薬局にて行っていただきたいこと", "What sites need to do")) }
        p { (lang.pick("上記期間中、1度だけ実施いただければ問題ございません。", "Once during the period is enough.")) }
        ol id="steps" {
            li { (match lang {
                Lang::Ja => format!("上記期間中のいずれかの日の{opens}～翌日{closes}において、資格確認端末・顔認証付きカードリーダーの電源をオンにした状態を維持してください。更新アプリケーションのダウンロードとインストールは自動で行われます。"),
                Lang::En => format!("On any one night of the period, keep the qualification confirmation terminal and the face-authentication card readers powered on from {opens} to {closes} the next morning. The update downloads and installs by itself."),
            }) }
            li { (match lang {
                Lang::Ja => format!("翌日朝（{closes}以降）に資格確認端末を再起動してください。"),
                Lang::En => format!("The next morning (after {closes}), restart the terminal."),
            }) }
        }
        p { (lang.pick(
            "※日々の診療等の開始前に自動で再起動がされるよう設定している場合は手動での再起動は不要です。",
            "If the terminal is set to restart automatically before daily practice, no manual restart is needed."
        )) }
        (completion_check(c, lang, guidance::CheckedFrom::Guidance))
        @if let (Some(last), Some(from)) = (last_night, c.catch_up_from()) {
            h2 { (lang.pick("期間中にバージョンアップが完了しなかった場合", "If the update is not complete by the end of the period")) }
            p id="catch-up" { (match lang {
                Lang::Ja => format!("{}までにバージョンアップが完了しなかった場合、{}以降、終日配信されますので、その中でエラーが表示された場合には資格確認端末の再起動のご対応をお願いいたします。", date(last, lang), date(jst::civil(from).date(), lang)),
                Lang::En => format!("If the update is not complete by {}, it is distributed all day from {} on; if an error appears meanwhile, restart the terminal.", date(last, lang), date(jst::civil(from).date(), lang)),
            }) }
        }

        h2 { (lang.pick("再起動前に資格確認を行うと（エラーの表示）", "What the errors look like if the terminal was not restarted")) }
        p { (lang.pick(
            "更新アプリケーションのインストール後、資格確認端末の再起動を行わなかった場合、患者がオンライン資格確認を行った際に、資格確認端末でエラーが表示され、資格確認ができません。",
            "If the terminal was not restarted after the update was installed, a patient's online qualification confirmation ends in an error on the terminal and qualification is not confirmed."
        )) }
        ol id="errors" {
            li {
                (lang.pick("患者の同意選択が終了したタイミング: 資格確認端末にエラーダイアログが表示されます。顔認証付きカードリーダーはメーカーごとに以下のとおりです。", "When the patient finishes the consent selection: an error dialog on the terminal; the card reader, per vendor:"))
                ul {
                    @for v in Vendor::ALL {
                        li {
                            strong { (lang.pick(v.name_ja(), v.name_en())) } ": " (reader_at_consent(v, lang)) " "
                            a href=(href(&format!("/reception?vendor={}&terminal=pending-restart", v.slug()), lang)) { (lang.pick("画面を再現", "see it")) }
                        }
                    }
                }
            }
            li { (lang.pick(
                "エラーダイアログで「OK」ボタンを押したタイミング: 2回目のエラーダイアログが表示され、これも「OK」を押すと、顔認証付きカードリーダーで901エラー（オンライン資格確認等システムの障害発生）が表示されます。",
                "When staff press OK on that dialog: a second error dialog; after OK on that too, the card reader shows error 901 (a fault of the online qualification confirmation system)."
            )) }
        }
        p class="guide" { strong { (lang.pick(
            "エラー発生時は、患者の資格確認は完了していません。資格確認端末を再起動した後、再度マイナ保険証をご利用いただくようご案内ください。",
            "When the error appears, the patient's qualification has NOT been confirmed. Restart the terminal, then ask the patient to use the card again."
        )) } }
        p { a href=(href("/reception", lang)) id="to-reception" { (lang.pick("受付の再現（エラー画面を確認する）", "Reception emulator (see the error screens)")) } }

        h2 { (lang.pick("それでもエラーが表示される場合", "If the error persists")) }
        p { (lang.pick(
            "上記の対応を行った上で、万一、それでもなおエラーが表示されるという場合には、下記のオンライン資格確認等コールセンターまでご連絡ください。本件についての問い合わせも同じコールセンターで受け付けています。",
            "If the error still appears after the steps above, call the call centre below; it also answers questions about this update."
        )) }
        (call_centre(lang, now))
        (fallback(lang))
    }
}
