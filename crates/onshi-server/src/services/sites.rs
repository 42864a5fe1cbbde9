//! A campaign's device rows gathered per site, for the operator who calls sites: each site once
//! (with its phone number), its listed devices, and what to tell it — the site's advice from
//! `onshi_core::guidance`, the same words its own page and mails use. And the dashboard's CSV of
//! such a list, for Excel as Japanese offices open it: a UTF-8 byte order mark, Japanese
//! headers (English on request), times in Japan time with the weekday.

use std::collections::BTreeMap;

use onshi_core::deployment::DeploymentState;
use onshi_core::guidance::{self, Advice, DeviceFacts, Moment};
use onshi_core::institution::InstitutionCode;
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_store::{CampaignRecord, DeploymentListing, Institution};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One site of a list: who it is, its devices in the list, and what to tell it now.
pub struct SiteRow {
    pub institution: Institution,
    pub devices: Vec<DeploymentListing>,
    pub advice: Advice,
}

/// `rows` (device rows of `record`'s campaign) gathered per site, in code order, each with the
/// advice for those devices at the server's now (a site whose wave is not open is told what a
/// paused campaign tells it, as on its own page).
pub async fn per_site(
    state: &AppState,
    record: &CampaignRecord,
    rows: Vec<DeploymentListing>,
) -> ApiResult<Vec<SiteRow>> {
    let schedule = state.schedule(record)?;
    let statuses = super::waves::site_statuses(state, record).await?;
    let now = state.now();
    let mut sites: BTreeMap<InstitutionCode, Vec<DeploymentListing>> = BTreeMap::new();
    for r in rows {
        sites.entry(r.institution.code).or_default().push(r);
    }
    Ok(sites
        .into_values()
        .filter_map(|devices| {
            let institution = devices.first()?.institution.clone();
            let status = statuses.of(institution.code);
            let moment = Moment::of(&schedule, status, now);
            let facts: Vec<DeviceFacts> = devices
                .iter()
                .map(|d| DeviceFacts {
                    kind: d.device.kind,
                    state: d.state,
                    installed_at: (d.state == DeploymentState::Installed).then_some(d.updated_at),
                })
                .collect();
            let advice = guidance::site_advice_at(&facts, &moment, institution.auto_restart);
            Some(SiteRow {
                institution,
                devices,
                advice,
            })
        })
        .collect())
}

/// The CSV of a per-site list, one line per device (so each device's state and last contact
/// stay), the site's phone number and what to tell it on each (its advice, then `checks`, the
/// list's own things to check, if any): UTF-8 with a byte order mark (Excel reads it as UTF-8
/// only then), headers and words in `lang`, times in Japan time.
pub fn sites_csv<S: AsRef<str>>(sites: &[SiteRow], checks: &[S], lang: Lang) -> ApiResult<Vec<u8>> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let header: [&str; 14] = match lang {
            Lang::Ja => [
                "医療機関コード",
                "名称",
                "都道府県",
                "種別",
                "電話番号",
                "メールアドレス",
                "伝えること",
                "機器",
                "カードリーダーのメーカー",
                "シリアル番号",
                "状態",
                "バージョン（インストール済み）",
                "最終通信（日本時間）",
                "状態の更新（日本時間）",
            ],
            Lang::En => [
                "Institution code",
                "Name",
                "Prefecture",
                "Kind",
                "Phone",
                "E-mail",
                "What to tell the site",
                "Device",
                "Card reader vendor",
                "Serial",
                "State",
                "Installed version",
                "Last contact (Japan time)",
                "State since (Japan time)",
            ],
        };
        w.write_record(header).map_err(ApiError::internal)?;
        for site in sites {
            let i = &site.institution;
            let mut tell = site.advice.text(lang);
            if !checks.is_empty() {
                let joined: Vec<&str> = checks.iter().map(AsRef::as_ref).collect();
                tell += lang.pick(" ご確認ください: ", " Please check: ");
                tell += &joined.join(lang.pick("、", "; "));
            }
            for d in &site.devices {
                let fields = [
                    i.code.to_string(),
                    i.name.clone(),
                    lang.pick(i.prefecture.name_ja(), i.prefecture.name_en())
                        .to_owned(),
                    lang.pick(i.kind.name_ja(), i.kind.name_en()).to_owned(),
                    i.phone.clone().unwrap_or_default(),
                    i.email.clone(),
                    tell.clone(),
                    lang.pick(d.device.kind.name_ja(), d.device.kind.name_en())
                        .to_owned(),
                    d.device
                        .vendor
                        .map(|v| lang.pick(v.name_ja(), v.name_en()).to_owned())
                        .unwrap_or_default(),
                    d.device.serial.clone(),
                    lang.pick(
                        d.state.label_ja(d.device.kind),
                        d.state.label_en(d.device.kind),
                    )
                    .to_owned(),
                    d.device
                        .installed
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    d.device
                        .last_contact
                        .map(|t| jst::format(t, lang))
                        .unwrap_or_default(),
                    jst::format(d.updated_at, lang),
                ];
                w.write_record(fields).map_err(ApiError::internal)?;
            }
        }
        w.flush().map_err(ApiError::internal)?;
    }
    Ok(out)
}
