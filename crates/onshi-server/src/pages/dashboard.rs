//! `/operator/campaigns/{id}`: one campaign's dashboard — the schedule as a calendar, the
//! window now or next, counts per state (the progress API's numbers) with their chart over
//! time, breakdowns by prefecture (sortable), institution kind and reader vendor, links to the
//! sites needing action, and the campaign controls.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::InstitutionKind;
use onshi_core::lang::Lang;
use onshi_core::offer::{CampaignAction, CampaignStatus};
use onshi_core::vendor::{DeviceKind, Vendor};
use serde::Deserialize;

use super::groups::Group;
use super::guidance::{now_sentence, period};
use super::operator::{flash, logout_form, operator_session, status_label, to_login};
use super::{PageError, calendar, chart, href, lang_of, layout, when};
use crate::history;
use crate::services::campaigns::load_campaign;
use crate::services::progress::{self, Counts, Progress, progress_of};
use crate::state::AppState;

/// A sortable column of the breakdown tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Code,
    Total,
    Group(Group),
    Rate,
}

const COLUMNS: [(&str, Col); 8] = [
    ("code", Col::Code),
    ("total", Col::Total),
    ("waiting", Col::Group(Group::Waiting)),
    ("progress", Col::Group(Group::InProgress)),
    ("restart", Col::Group(Group::RestartRequired)),
    ("applied", Col::Group(Group::Applied)),
    ("failed", Col::Group(Group::Failed)),
    ("rate", Col::Rate),
];

/// Applied per mille of the total (for sorting and showing a percentage).
fn rate(c: &Counts) -> u64 {
    (c.get(DeploymentState::Applied) * 1000)
        .checked_div(c.total)
        .unwrap_or(0)
}

#[derive(Deserialize, Default)]
pub struct DashboardQuery {
    lang: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    /// The chart's view: `remaining` for the devices not yet applied.
    view: Option<String>,
}

/// `GET /operator/campaigns/{id}`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DashboardQuery>,
) -> Result<Response, PageError> {
    let lang = lang_of(q.lang.as_deref());
    let Some(current) = operator_session(&state, &headers) else {
        return Ok(to_login(lang));
    };
    let record = load_campaign(&state, id)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let schedule = state
        .schedule(&record)
        .map_err(|e| PageError::from_api(e, lang))?;
    let progress = progress_of(&state, &record)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let waves_view = crate::services::waves::view(&state, &record)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let now = state.now();
    let samples = {
        let mut h = history::lock(&state.history);
        // The chart ends at the numbers on this page.
        if record.status != CampaignStatus::Draft {
            h.record(&record.id, progress::sample(&progress.all, now));
        }
        h.samples(&record.id)
    };
    let sort = COLUMNS
        .iter()
        .find(|(k, _)| Some(*k) == q.sort.as_deref())
        .map_or(("code", Col::Code), |c| *c);
    let desc = q.dir.as_deref() == Some("desc");
    let base = format!("/operator/campaigns/{}", record.id);
    let sites = |need: &str| href(&format!("{base}/sites?need={need}"), lang);
    let all = &progress.all;
    let view = chart::View::of(q.view.as_deref());
    let body = html! {
        h1 { (schedule.title()) }
        (live_switch(lang))
        (flash(&current))
        // What the live update swaps: `data-live` blocks, by id (never the forms the operator
        // may be typing into).
        div id="live-top" data-live {
        p {
            "ID " strong { (record.id) } " ・ "
            (lang.pick("状態: ", "Status: ")) strong id="campaign-status" data-status=(record.status.slug()) { (status_label(record.status, lang)) } " ・ "
            (lang.pick("リリース: ", "Release: ")) (record.release_id) " ・ "
            (lang.pick("同時ダウンロード上限: ", "Max concurrent downloads: ")) (record.max_downloads)
            " ・ " a href=(href("/operator", lang)) { (lang.pick("キャンペーン一覧・リリース登録", "All campaigns, releases")) }
        }
        p class="advice" id="window" {
            strong { (now_sentence(&schedule, now, lang)) }
            br;
            span class="muted" { (lang.pick("現在時刻: ", "Now: ")) span id="now" { (when(now, lang)) } }
            @if let Some(p) = period(&schedule, lang) { br; span class="muted" { (p) } }
        }
        h2 { (lang.pick("状態別の台数", "Devices per state")) }
        div class="cards" id="counts" {
            (card("total", lang.pick("対象の機器", "devices targeted"), all.total, None))
            @for s in DeploymentState::ALL {
                (card(s.slug(), state_label(s, lang), all.get(s), None))
            }
            (card("restart_required", lang.pick("再起動が必要な資格確認端末", "terminals needing a restart"), all.restart_required, Some(sites("restart"))))
            (card("live_downloads", lang.pick("ダウンロード中の枠", "download slots in use"), progress.live_downloads, None))
            (card("silent", lang.pick("通信が途絶えている資格確認端末", "terminals not heard from"), progress.silent_terminals, Some(sites("silent"))))
        }
        p class="muted" { (lang.pick(
            "「インストール完了」にはカードリーダーの適用待ちも含みます。再起動が必要なのは資格確認端末だけです。",
            "\"installed\" includes card readers being activated; only terminals need a restart."
        )) }
        p class="muted" id="silent-rule" { (silent_rule(&schedule, lang)) }
        h2 id="over-time" { (lang.pick("推移", "Over time")) }
        p class="buttons" id="chart-views" {
            @for (v, ja, en) in [(chart::View::All, "すべての機器", "All devices"), (chart::View::Remaining, "未適用の機器を拡大", "Zoom in on devices not yet applied")] {
                @if v == view {
                    strong aria-current="true" { (lang.pick(ja, en)) }
                } @else {
                    a id={ "chart-view-" (v.slug()) } href=(href(&format!("{base}?view={}#over-time", v.slug()), lang)) { (lang.pick(ja, en)) }
                }
            }
        }
        (chart::render(&samples, &schedule, now, view, lang))
        }
        (controls(&record.id, record.status, crate::services::waves::can_widen(waves_view.as_ref()), &current.csrf, lang))
        @if let Some(v) = &waves_view {
            (waves_section(v, lang))
            @if crate::services::waves::can_roll_back(record.status, Some(v)) {
                (rollback_form(&record.id, &record.release_id, &current.csrf, lang))
            }
        }

        div id="live-tables" data-live {
        h2 { (lang.pick("対応が必要な施設", "Sites needing action")) }
        ul id="needs" {
            li { a href=(sites("restart")) { (lang.pick("再起動が必要（資格確認端末）", "Restart required (terminals)")) } ": " strong { (all.restart_required) } }
            li { a href=(sites("not_received")) { (lang.pick("まだ届いていない（配信待ち）", "Not yet received (waiting)")) } ": " strong { (all.get(DeploymentState::Waiting)) } }
            li { a href=(sites("failed")) { (lang.pick("失敗", "Failed")) } ": " strong { (all.get(DeploymentState::Failed)) } }
            li { a href=(sites("silent")) { (lang.pick("通信が途絶えている（資格確認端末）", "Not heard from (terminals)")) } ": " strong { (progress.silent_terminals) } }
        }

        h2 id="prefectures" { (lang.pick("都道府県別", "By prefecture")) }
        (prefecture_table(&progress, &base, sort, desc, lang))
        h2 { (lang.pick("施設の種別", "By institution kind")) }
        (simple_table("by-kind", lang.pick("種別", "Kind"), lang.pick("施設の種別の表", "By institution kind"), &kind_rows(&progress, lang), lang))
        h2 { (lang.pick("カードリーダーのメーカー別", "By card reader vendor")) }
        (simple_table("by-vendor", lang.pick("メーカー", "Vendor"), lang.pick("カードリーダーのメーカー別の表", "By card reader vendor"), &vendor_rows(&progress, lang), lang))
        h2 { (lang.pick("配信日程", "Schedule")) }
        (calendar::render(&schedule, now, lang))
        h2 { (lang.pick("機器の種類別", "By device")) }
        (simple_table("by-device", lang.pick("機器", "Device"), lang.pick("機器の種類別の表", "By device"), &device_rows(&progress, lang), lang))
        }
        (logout_form(&current, lang))
    };
    let path = match (q.sort.as_deref(), desc) {
        (Some(s), true) => format!("{base}?sort={s}&dir=desc"),
        (Some(s), false) => format!("{base}?sort={s}"),
        (None, _) => base.clone(),
    };
    Ok(layout(
        lang.pick("運用者ダッシュボード", "Operator dashboard"),
        lang,
        &path,
        body,
    ))
}

/// The live update's switch: hidden until `pages.js` runs (without it the page is read as it
/// was served). The script re-reads the page every `data-every` seconds and swaps the
/// `data-live` blocks; the operator switches it off, and this browser remembers that.
fn live_switch(lang: Lang) -> Markup {
    html! {
        p id="live" class="live" hidden data-every="30"
            data-on=(lang.pick("30秒ごとに自動で更新しています。", "Updating every 30 seconds."))
            data-off=(lang.pick("自動更新は止めています。", "Live update is off."))
            data-updated=(lang.pick("自動更新しました: ", "Updated: "))
            data-ended=(lang.pick("ログインが切れたため自動更新を止めました。ページを開き直してください。", "Live update stopped: the session ended. Reload the page."))
            data-failed=(lang.pick("自動更新に失敗しました。次の回にもう一度試します。", "The update failed; it is tried again next time.")) {
            label {
                input type="checkbox" id="live-toggle";
                " " (lang.pick("自動更新（30秒ごと）", "Live update (every 30 s)"))
            }
            " "
            span id="live-status" class="muted" role="status" {}
        }
    }
}

/// What "not heard from" means for this campaign.
fn silent_rule(schedule: &onshi_core::schedule::Campaign, lang: Lang) -> String {
    let hours = schedule.silent_after().as_hours();
    match lang {
        Lang::Ja => format!(
            "「通信が途絶えている」: 配信アプリケーションから{hours}時間以上通信がなく、まだ適用していない資格確認端末です（キャンペーン実施中のみ）。施設には1日1回、確認のお願いをメールで送ります。"
        ),
        Lang::En => format!(
            "\"Not heard from\": terminals whose distribution application has not checked in for {hours} hours or more and that have not applied the update (while the campaign is active). Their sites are mailed once a day to check."
        ),
    }
}

/// A state's name for counts that mix terminals and readers.
fn state_label(s: DeploymentState, lang: Lang) -> &'static str {
    match s {
        DeploymentState::Installed => lang.pick("インストール完了", "installed"),
        _ => lang.pick(
            s.label_ja(DeviceKind::Terminal),
            s.label_en(DeviceKind::Terminal),
        ),
    }
}

fn card(id: &str, label: &str, n: u64, link: Option<String>) -> Markup {
    html! {
        div class={ "card s-" (id) } {
            div class="muted" { (label) }
            div class="n" id={ "count-" (id) } data-count=(n) {
                @match link { Some(l) => { a href=(l) { (n) } } None => { (n) } }
            }
        }
    }
}

/// The buttons for the transitions the campaign allows now: the core's state machine decides
/// which (`CampaignStatus::apply`), in the order of [`CampaignAction::ALL`].
fn controls(id: &str, status: CampaignStatus, can_widen: bool, csrf: &str, lang: Lang) -> Markup {
    let label = |a: CampaignAction| match a {
        CampaignAction::Activate => (
            "開始する（対象の機器を割り当て）",
            "Activate (target the devices)",
        ),
        CampaignAction::Pause => ("一時停止", "Pause"),
        CampaignAction::Resume => ("再開", "Resume"),
        CampaignAction::Close => ("終了する", "Close"),
        CampaignAction::Widen => ("次の波へ拡大", "Widen to the next wave"),
    };
    let actions: Vec<_> = CampaignAction::ALL
        .into_iter()
        .filter(|a| status.apply(*a).is_ok())
        .filter(|a| *a != CampaignAction::Widen || can_widen)
        .map(|a| (a, label(a).0, label(a).1))
        .collect();
    html! {
        div class="buttons" id="controls" {
            @for (action, ja, en) in actions {
                form method="post" action={ "/operator/campaigns/" (id) "/control" } class="inline" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="lang" value=(lang.code());
                    input type="hidden" name="action" value=(action.slug());
                    button type="submit" id={ "control-" (action.slug()) }
                        class=[match action { CampaignAction::Close => Some("danger"), CampaignAction::Activate | CampaignAction::Resume => Some("primary"), CampaignAction::Pause | CampaignAction::Widen => None }]
                        onclick=[(action == CampaignAction::Close).then_some(lang.pick(CONFIRM_CLOSE[0], CONFIRM_CLOSE[1]))] {
                        (lang.pick(ja, en))
                    }
                }
            }
        }
    }
}

/// 切り戻し: the release that rolls the campaign back, named by the operator (signed offline
/// with a higher version and the previous packages; the server checks it when asked).
fn rollback_form(id: &str, bad_release: &str, csrf: &str, lang: Lang) -> Markup {
    html! {
        form method="post" action={ "/operator/campaigns/" (id) "/rollback" } id="rollback" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="lang" value=(lang.code());
            p class="muted" {
                (match lang {
                    Lang::Ja => format!("切り戻し: リリース {bad_release} を受け取った機器（開いている波の、ダウンロード済み・インストール済み・適用済みの機器）だけに、前の版と同じ内容で新しいバージョンとしてオフライン署名したリリース（onshi release sign --from-release）を同じ配信時間帯で配信し、このキャンペーンはほかの機器について終了します。"),
                    Lang::En => format!("Roll back: offer a release signed offline with the previous packages under a higher version (onshi release sign --from-release), in the same windows, only to the devices that received release {bad_release} (downloaded, installed or applied, in the open waves); this campaign closes for every other device."),
                })
            }
            label for="rollback-release" { (lang.pick("切り戻しに使うリリースID ", "Rollback release id ")) }
            input type="text" name="release_id" id="rollback-release" required maxlength="64" pattern="[A-Za-z0-9._-]+";
            " "
            button type="submit" id="control-rollback" class="danger" { (lang.pick("切り戻す", "Roll back")) }
        }
    }
}

/// The waves and their health gates: why the campaign is held, what the newest wave waits
/// for, and each wave's readings against its limits (the API's `WavesView`).
fn waves_section(v: &onshi_api::admin::WavesView, lang: Lang) -> Markup {
    let (held, waiting) = match lang {
        Lang::Ja => (v.held_because_ja.as_deref(), v.waiting_ja.as_deref()),
        Lang::En => (v.held_because_en.as_deref(), v.waiting_en.as_deref()),
    };
    let rolled_back = match lang {
        Lang::Ja => v.rolled_back_ja.as_deref(),
        Lang::En => v.rolled_back_en.as_deref(),
    };
    html! {
        h2 { (lang.pick("段階配信（波）と健全性ゲート", "Waves and health gates")) }
        @if let (Some(text), Some(r)) = (rolled_back, &v.rolled_back) {
            p class="advice" id="rolled-back" data-campaign=(r.campaign) {
                (text) " "
                a href=(href(&format!("/operator/campaigns/{}", r.campaign), lang)) { (lang.pick("切り戻しの進捗", "The rollback's progress")) }
            }
        }
        @if let Some(why) = held {
            p class="advice" id="held" {
                strong { (lang.pick("健全性ゲートにより一時停止中: ", "Held by a health gate: ")) }
                (why)
                br;
                span class="muted" { (lang.pick("再開（この波の超過を受け入れる）・次の波へ拡大・切り戻し・終了から選んでください。", "Resume (accepting this wave's breach), widen to the next wave, roll back, or close.")) }
            }
        } @else if let Some(w) = waiting {
            p id="waves-waiting" { (w) }
        }
        p class="muted" {
            (lang.pick("次の波を開く条件: ", "The next wave opens after: "))
            (match lang {
                Lang::Ja => format!("新しいバージョンで稼働中の資格確認端末 {}台以上（波の端末数が少なければ全台）、最初の配信時間帯から {} 時間の様子見。再起動後 {} 分以内に新しいバージョンで起動しない端末は異常として数えます。", v.min_restarted, v.soak_hours, v.not_running_within_minutes),
                Lang::En => format!("at least {} terminals running the new version (all of the wave's, if fewer) and {} h of soak from the first window it could use. A terminal not running the new version {} min after its restart counts as failing.", v.min_restarted, v.soak_hours, v.not_running_within_minutes),
            })
        }
        table id="waves" {
            thead { tr {
                th { (lang.pick("波", "Wave")) }
                th { (lang.pick("状態", "State")) }
                th class="num" { (lang.pick("医療機関", "Sites")) }
                th class="num" { (lang.pick("機器", "Devices")) }
                th class="num" { (lang.pick("新版で稼働中の端末", "Terminals on the new version")) }
                @for m in onshi_core::waves::Metric::ALL { th { (m.label(lang)) } }
            } }
            tbody {
                @for w in &v.each {
                    tr id={ "wave-" (w.wave) } data-open=(w.open) {
                        td { (lang.pick(&w.name_ja, &w.name_en)) }
                        td { (match (w.open, w.waived) {
                            (true, true) => lang.pick("配信中（超過を受け入れ済み）", "open (breach accepted)"),
                            (true, false) => lang.pick("配信中", "open"),
                            (false, _) => lang.pick("未開始", "not yet open"),
                        }) }
                        td class="num" { (w.health.sites) }
                        td class="num" { (w.health.devices) }
                        td class="num" { (w.health.applied_terminals) }
                        @for r in &w.readings {
                            td class=[r.crossed.then_some("crossed")] data-crossed=(r.crossed) {
                                (r.count) " / " (r.base) " (" (format!("{:.1}", r.percent())) "%)"
                                br;
                                span class="muted" { (lang.pick("上限 ", "limit ")) (format!("{:.1}", r.limit.max_percent)) "%" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn header_cells(lang: Lang) -> Markup {
    html! {
        th class="num" { (lang.pick("対象", "Total")) }
        @for g in [Group::Waiting, Group::InProgress, Group::RestartRequired, Group::Applied, Group::Failed] {
            th class="num" { (g.label(lang)) }
        }
        th class="num" { (lang.pick("適用率", "Applied")) }
    }
}

fn count_cells(c: &Counts) -> Markup {
    let r = rate(c);
    html! {
        td class="num" { (c.total) }
        @for g in [Group::Waiting, Group::InProgress, Group::RestartRequired, Group::Applied, Group::Failed] {
            td class="num" data-group=(format!("{g:?}")) { (g.of_counts(c)) }
        }
        td class="num" { (r / 10) "." (r % 10) "%" }
    }
}

fn prefecture_table(p: &Progress, base: &str, sort: (&str, Col), desc: bool, lang: Lang) -> Markup {
    let mut rows: Vec<_> = p.by_prefecture.iter().collect();
    rows.sort_by_key(|r| match sort.1 {
        Col::Code => u64::from(r.prefecture.number()),
        Col::Total => r.counts.total,
        Col::Group(g) => g.of_counts(&r.counts),
        Col::Rate => rate(&r.counts),
    });
    if desc {
        rows.reverse();
    }
    let link = |key: &str| {
        // Clicking the sorted column again flips the order; a new column sorts biggest first.
        let dir = if key == sort.0 { !desc } else { key != "code" };
        let q = if dir { "&dir=desc" } else { "" };
        href(&format!("{base}?sort={key}{q}#prefectures"), lang)
    };
    let arrow = |key: &str| {
        if key == sort.0 {
            if desc { " ▼" } else { " ▲" }
        } else {
            ""
        }
    };
    let labels: Vec<(&str, String)> = COLUMNS
        .iter()
        .map(|(k, c)| {
            let label = match c {
                Col::Code => lang.pick("都道府県", "Prefecture").to_owned(),
                Col::Total => lang.pick("対象", "Total").to_owned(),
                Col::Group(g) => g.label(lang).to_owned(),
                Col::Rate => lang.pick("適用率", "Applied").to_owned(),
            };
            (*k, label)
        })
        .collect();
    html! {
        div class="scroll" role="region" tabindex="0" aria-label=(lang.pick("都道府県別の表", "By prefecture")) {
            table id="by-prefecture" data-sort=(sort.0) data-dir=(if desc { "desc" } else { "asc" }) {
                tr {
                    @for (key, label) in &labels {
                        th class=[(*key != "code").then_some("num")] { a href=(link(key)) id={ "sort-" (key) } { (label) (arrow(key)) } }
                    }
                }
                @for r in &rows {
                    tr data-prefecture=(r.prefecture.number()) {
                        td { (r.prefecture.number()) " " (lang.pick(r.prefecture.name_ja(), r.prefecture.name_en())) }
                        (count_cells(&r.counts))
                    }
                }
            }
        }
    }
}

fn kind_rows(p: &Progress, lang: Lang) -> Vec<(String, &Counts)> {
    InstitutionKind::ALL
        .iter()
        .filter_map(|k| {
            p.by_kind
                .get(k)
                .map(|c| (lang.pick(k.name_ja(), k.name_en()).to_owned(), c))
        })
        .collect()
}

fn vendor_rows(p: &Progress, lang: Lang) -> Vec<(String, &Counts)> {
    Vendor::ALL
        .iter()
        .filter_map(|v| {
            p.by_vendor
                .get(v)
                .map(|c| (lang.pick(v.name_ja(), v.name_en()).to_owned(), c))
        })
        .collect()
}

fn device_rows(p: &Progress, lang: Lang) -> Vec<(String, &Counts)> {
    [DeviceKind::Terminal, DeviceKind::CardReader]
        .iter()
        .filter_map(|d| {
            p.by_device
                .get(d)
                .map(|c| (lang.pick(d.name_ja(), d.name_en()).to_owned(), c))
        })
        .collect()
}

/// A breakdown table: `first` heads the column of row names, `label` names the table.
fn simple_table(
    id: &str,
    first: &str,
    label: &str,
    rows: &[(String, &Counts)],
    lang: Lang,
) -> Markup {
    html! {
        div class="scroll" role="region" tabindex="0" aria-label=(label) {
            table id=(id) {
                tr { th { (first) } (header_cells(lang)) }
                @for (label, c) in rows {
                    tr { td { (label) } (count_cells(c)) }
                }
            }
        }
    }
}

/// The pages' one script: the confirm before closing a campaign, in Japanese and English
/// (the Content Security Policy allows exactly these, by their hashes).
pub const CONFIRM_CLOSE: [&str; 2] = [
    "return confirm('キャンペーンを終了しますか？ 元に戻せません。')",
    "return confirm('Close the campaign? This cannot be undone.')",
];
