//! `/operator/campaigns/{id}/sites`: the sites needing action — terminals that need a restart,
//! devices that have not received the update yet, failures, terminals not heard from
//! (`services::silence`) — filterable by prefecture,
//! institution kind, reader vendor and device — one row per site (its phone number, what to tell
//! it from `onshi_core::guidance`, its devices in the list), a page of sites at a time, with a
//! CSV export of the whole filtered list for Excel (`/sites.csv`, `services::sites`).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionKind, Prefecture};
use onshi_core::lang::Lang;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_store::DeploymentFilter;
use serde::Deserialize;

use super::operator::{operator_session, to_login};
use super::{PageError, href, lang_of, layout, when};
use crate::attachment;
use crate::error::ApiError;
use crate::services::campaigns::load_campaign;
use crate::services::devices::{EXPORT_READ_LIMIT, campaign_device_rows, within_export};
use crate::services::silence::silent_terminals;
use crate::services::sites::{SiteRow, per_site, sites_csv};
use crate::state::AppState;

/// Rows per page.
const PAGE: u32 = 100;

/// What a site needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A terminal installed but not restarted.
    Restart,
    /// Nothing received yet (waiting).
    NotReceived,
    /// Download or installation failed.
    Failed,
    /// A terminal that has stopped checking in (silent, `onshi_core::silence`).
    Silent,
}

impl Need {
    const ALL: [Need; 4] = [Need::Restart, Need::NotReceived, Need::Failed, Need::Silent];

    fn slug(self) -> &'static str {
        match self {
            Need::Restart => "restart",
            Need::NotReceived => "not_received",
            Need::Failed => "failed",
            Need::Silent => "silent",
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match self {
            Need::Restart => lang.pick(
                "再起動が必要（資格確認端末）",
                "restart required (terminals)",
            ),
            Need::NotReceived => lang.pick("まだ届いていない（配信待ち）", "not yet received"),
            Need::Failed => lang.pick("失敗", "failed"),
            Need::Silent => lang.pick(
                "通信が途絶えている（資格確認端末）",
                "not heard from (terminals)",
            ),
        }
    }

    /// The one state of this need; a silent terminal may be in any state but applied.
    fn state(self) -> Option<DeploymentState> {
        match self {
            Need::Restart => Some(DeploymentState::Installed),
            Need::NotReceived => Some(DeploymentState::Waiting),
            Need::Failed => Some(DeploymentState::Failed),
            Need::Silent => None,
        }
    }

    /// Needs of terminals only.
    fn terminals_only(self) -> bool {
        matches!(self, Need::Restart | Need::Silent)
    }
}

#[derive(Deserialize, Default)]
pub struct ActionQuery {
    need: Option<String>,
    prefecture: Option<String>,
    kind: Option<String>,
    vendor: Option<String>,
    device: Option<String>,
    page: Option<u32>,
    lang: Option<String>,
}

/// The parsed filters; an unknown or empty value means "any".
struct Filters {
    need: Need,
    prefecture: Option<Prefecture>,
    kind: Option<InstitutionKind>,
    vendor: Option<Vendor>,
    device: Option<DeviceKind>,
    page: u32,
}

impl Filters {
    fn of(q: &ActionQuery) -> Self {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let need = Need::ALL
            .into_iter()
            .find(|n| q.need.as_deref() == Some(n.slug()))
            .unwrap_or(Need::Restart);
        Self {
            need,
            prefecture: some(&q.prefecture).and_then(|p| p.parse().ok()),
            kind: some(&q.kind).and_then(|k| k.parse().ok()),
            vendor: some(&q.vendor).and_then(|v| v.parse().ok()),
            // A restart and silence are a terminal's needs only.
            device: if need.terminals_only() {
                Some(DeviceKind::Terminal)
            } else {
                some(&q.device).and_then(|d| d.parse().ok())
            },
            page: q.page.unwrap_or(0),
        }
    }

    fn store_filter(&self, limit: u32, offset: u32) -> DeploymentFilter {
        DeploymentFilter {
            state: self.need.state(),
            device: self.device,
            prefecture: self.prefecture,
            kind: self.kind,
            vendor: self.vendor,
            silent: None,
            limit,
            offset,
        }
    }

    /// The query string of these filters (without `page` and `lang`).
    fn query(&self) -> String {
        let mut q = format!("need={}", self.need.slug());
        if let Some(p) = self.prefecture {
            q += &format!("&prefecture={}", p.number());
        }
        if let Some(k) = self.kind {
            q += &format!("&kind={}", k.slug());
        }
        if let Some(v) = self.vendor {
            q += &format!("&vendor={}", v.slug());
        }
        if let (Some(d), false) = (self.device, self.need.terminals_only()) {
            q += &format!("&device={}", d.slug());
        }
        q
    }
}

/// `GET /operator/campaigns/{id}/sites`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ActionQuery>,
) -> Result<Response, PageError> {
    let lang = lang_of(q.lang.as_deref());
    let Some(current) = operator_session(&state, &headers) else {
        return Ok(to_login(lang));
    };
    let f = Filters::of(&q);
    let record = load_campaign(&state, id)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let rows = match f.need {
        Need::Silent => {
            silent_terminals(&state, &record, f.store_filter(EXPORT_READ_LIMIT, 0)).await
        }
        _ => campaign_device_rows(&state, &record, f.store_filter(EXPORT_READ_LIMIT, 0)).await,
    }
    .and_then(within_export)
    .map_err(|e| PageError::from_api(e, lang))?;
    let devices_total = rows.len();
    // Each site once, in code order, then the page: the operator calls sites, not devices.
    let sites = per_site(&state, &record, rows)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let total = u64::try_from(sites.len()).unwrap_or(u64::MAX);
    let start = usize::try_from(f.page.saturating_mul(PAGE)).unwrap_or(usize::MAX);
    let shown: Vec<&SiteRow> = sites
        .iter()
        .skip(start)
        .take(usize::try_from(PAGE).unwrap_or(usize::MAX))
        .collect();
    let base = format!("/operator/campaigns/{}/sites", record.id);
    let query = f.query();
    let now = state.now();
    let pages = total.div_ceil(u64::from(PAGE)).max(1);
    let body = html! {
        h1 { (lang.pick("対応が必要な施設", "Sites needing action")) }
        p {
            a href=(href(&format!("/operator/campaigns/{}", record.id), lang)) { "← " (lang.pick("ダッシュボード", "Dashboard")) " (" (record.id) ")" }
        }
        form method="get" action=(base) class="panel" id="filters" {
            @if lang == Lang::En { input type="hidden" name="lang" value="en"; }
            label { (lang.pick("対応", "Need")) " "
                select name="need" id="need" {
                    @for n in Need::ALL { option value=(n.slug()) selected[n == f.need] { (n.label(lang)) } }
                }
            }
            label { (lang.pick("都道府県", "Prefecture")) " "
                select name="prefecture" id="prefecture" {
                    option value="" { (lang.pick("すべて", "all")) }
                    @for p in Prefecture::all() { option value=(p.number()) selected[Some(p) == f.prefecture] { (lang.pick(p.name_ja(), p.name_en())) } }
                }
            }
            label { (lang.pick("種別", "Kind")) " "
                select name="kind" id="kind" {
                    option value="" { (lang.pick("すべて", "all")) }
                    @for k in InstitutionKind::ALL { option value=(k.slug()) selected[Some(k) == f.kind] { (lang.pick(k.name_ja(), k.name_en())) } }
                }
            }
            label { (lang.pick("メーカー", "Vendor")) " "
                select name="vendor" id="vendor" {
                    option value="" { (lang.pick("すべて", "all")) }
                    @for v in Vendor::ALL { option value=(v.slug()) selected[Some(v) == f.vendor] { (lang.pick(v.name_ja(), v.name_en())) } }
                }
            }
            label { (lang.pick("機器", "Device")) " "
                select name="device" id="device" {
                    option value="" { (lang.pick("すべて", "all")) }
                    @for d in [DeviceKind::Terminal, DeviceKind::CardReader] { option value=(d.slug()) selected[Some(d) == f.device] { (lang.pick(d.name_ja(), d.name_en())) } }
                }
            }
            button type="submit" id="filter" { (lang.pick("絞り込む", "Filter")) }
        }
        p {
            strong id="total" data-total=(total) data-devices=(devices_total) { (total) } (lang.pick(" 施設", " sites"))
            (match lang {
                Lang::Ja => format!("（機器 {devices_total}台）"),
                Lang::En => format!(" ({devices_total} devices)"),
            })
            " ・ "
            a id="csv" href=(href(&format!("{base}.csv?{query}"), lang)) { (lang.pick("CSVでダウンロード（全件・Excel用）", "Download CSV (all rows, for Excel)")) }
        }
        div class="scroll" role="region" tabindex="0" aria-label=(lang.pick("対応が必要な施設の一覧", "Sites needing action")) {
            table id="sites" class="stack" {
                tr {
                    th { (lang.pick("医療機関", "Site")) }
                    th { (lang.pick("連絡先", "Contact")) }
                    th { (lang.pick("伝えること", "What to tell the site")) }
                    th { (lang.pick("機器", "Devices")) }
                }
                @for site in &shown {
                    @let i = &site.institution;
                    tr data-code=(i.code) {
                        td data-label=(lang.pick("医療機関", "Site")) {
                            strong class="site-name" { (i.name) } br;
                            span class="muted" { (i.code) " ・ " (lang.pick(i.prefecture.name_ja(), i.prefecture.name_en())) " ・ " (lang.pick(i.kind.name_ja(), i.kind.name_en())) }
                        }
                        td data-label=(lang.pick("連絡先", "Contact")) class="contact" {
                            @if let Some(phone) = &i.phone {
                                a class="phone" href={ "tel:" (phone.replace(['-', ' ', '(', ')'], "")) } { (phone) } br;
                            } @else {
                                span class="muted" { (lang.pick("電話番号の登録なし", "no phone number")) } br;
                            }
                            a href={ "mailto:" (i.email) } { (i.email) }
                        }
                        td data-label=(lang.pick("伝えること", "What to tell the site")) class="tell" data-advice=(site.advice.slug()) {
                            strong { (site.advice.headline(lang)) } br;
                            (site.advice.text(lang))
                            // A terminal not heard from: what to check, in its mail's words.
                            @if f.need == Need::Silent {
                                ol class="checks" {
                                    @for check in onshi_core::silence::checks(lang) { li { (check) } }
                                }
                            }
                        }
                        td data-label=(lang.pick("機器", "Devices")) {
                            ul class="devices" {
                                @for r in &site.devices {
                                    li {
                                        (lang.pick(r.device.kind.name_ja(), r.device.kind.name_en()))
                                        @if let Some(v) = r.device.vendor { "（" (lang.pick(v.name_ja(), v.name_en())) "）" }
                                        " " span class="muted" { (r.device.serial) } br;
                                        strong { (lang.pick(r.state.label_ja(r.device.kind), r.state.label_en(r.device.kind))) }
                                        " ・ " (lang.pick("最終通信 ", "last contact ")) (r.device.last_contact.map(|t| when(t, lang)).unwrap_or_else(|| "—".into()))
                                        br;
                                        span class="muted" { (lang.pick("状態の更新 ", "state since ")) (when(r.updated_at, lang)) }
                                        " "
                                        // A stolen or replaced device: its token ends at once.
                                        form method="post" action={ "/operator/devices/" (r.device.id) "/revoke" } class="inline" {
                                            input type="hidden" name="csrf" value=(current.csrf);
                                            input type="hidden" name="lang" value=(lang.code());
                                            input type="hidden" name="back" value={ (base) "?" (query) };
                                            button type="submit" class="danger small" id={ "revoke-" (r.device.id) }
                                                onclick=(lang.pick(CONFIRM_REVOKE[0], CONFIRM_REVOKE[1])) {
                                                (lang.pick("登録を取り消す", "Revoke"))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if shown.is_empty() { p { (lang.pick("該当する施設はありません。", "No site matches.")) } }
        p class="buttons" {
            @if f.page > 0 {
                a href=(href(&format!("{base}?{query}&page={}", f.page - 1), lang)) { "← " (lang.pick("前へ", "Previous")) }
            }
            span class="muted" { (f.page + 1) " / " (pages) }
            @if u64::from(f.page + 1) < pages {
                a href=(href(&format!("{base}?{query}&page={}", f.page + 1), lang)) { (lang.pick("次へ", "Next")) " →" }
            }
        }
        @if let Some(f) = &current.flash {
            p class={ "flash " (if f.ok { "ok" } else { "bad" }) } id="flash" { (f.text) }
        }
        p class="muted" { (lang.pick("現在時刻: ", "Now: ")) (when(now, lang)) }
    };
    Ok(layout(
        lang.pick("対応が必要な施設", "Sites needing action"),
        lang,
        &format!("{base}?{query}"),
        body,
    ))
}

/// `GET /operator/campaigns/{id}/sites.csv`: every row of the filtered list, per site (UTF-8
/// with a byte order mark, Japanese headers unless `lang=en`, times in Japan time).
pub async fn csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ActionQuery>,
) -> Result<Response, PageError> {
    let lang = lang_of(q.lang.as_deref());
    if operator_session(&state, &headers).is_none() {
        return Ok(to_login(lang));
    }
    let f = Filters::of(&q);
    let record = load_campaign(&state, id)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let filter = f.store_filter(EXPORT_READ_LIMIT, 0);
    let rows = match f.need {
        Need::Silent => silent_terminals(&state, &record, filter).await,
        _ => campaign_device_rows(&state, &record, filter).await,
    }
    .and_then(within_export)
    .map_err(|e| PageError::from_api(e, lang))?;
    let sites = per_site(&state, &record, rows)
        .await
        .map_err(|e| PageError::from_api(e, lang))?;
    let checks = match f.need {
        Need::Silent => onshi_core::silence::checks(lang).to_vec(),
        _ => Vec::new(),
    };
    // Writing up to the whole fleet's rows is CPU work: off the async workers.
    let bytes = tokio::task::spawn_blocking(move || sites_csv(&sites, &checks, lang))
        .await
        .map_err(|e| ApiError::internal(format!("the CSV export failed: {e}")))
        .and_then(|written| written)
        .map_err(|e| PageError::from_api(e, lang))?;
    Ok(attachment::csv(
        &format!("{}-{}.csv", record.id, f.need.slug()),
        bytes,
    ))
}

/// The confirm before revoking a device, in Japanese and English (the Content Security Policy
/// allows exactly these, by their hashes).
pub const CONFIRM_REVOKE: [&str; 2] = [
    "return confirm('この機器の登録を取り消しますか？ この機器は配信サーバーに接続できなくなります。')",
    "return confirm('Revoke this device? It will no longer reach the distribution server.')",
];
