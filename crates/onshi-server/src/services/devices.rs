//! A site's devices and a campaign's device rows: the institution API's and the site page's
//! status, the access-key check, and the CSV export of device rows.

use onshi_core::deployment::DeploymentState;
use onshi_core::guidance::{self, Advice, DeviceFacts, Moment};
use onshi_core::institution::InstitutionCode;
use onshi_core::lang::Lang;
use onshi_store::{
    CampaignRecord, DeploymentFilter, DeploymentListing, Device, Institution, InstitutionKey,
};

use crate::error::{ApiError, ApiResult};
use crate::secrets::secret_matches;
use crate::state::AppState;

/// One of a site's devices and where it stands (the API answers it as
/// [`onshi_api::institution::SiteDevice`]).
pub struct SiteDevice {
    pub device: Device,
    pub campaign: Option<String>,
    pub state: Option<DeploymentState>,
    pub restart_required: bool,
    /// When the state last changed (for an installed device: when the install completed).
    pub since: Option<jiff::Timestamp>,
    /// What to do about this device now, from `onshi_core::guidance` (`None`: in no open
    /// campaign).
    pub advice: Option<Advice>,
    /// The state and the advice's headline, as the site page says them, in Japanese.
    pub label_ja: Option<String>,
    /// While the device waits for a download slot: how many wait ahead of it and when its
    /// turn is expected (its appointment in the campaign's queue).
    pub turn: Option<(u64, jiff::Timestamp)>,
}

/// A site's devices (the API answers it as [`onshi_api::institution::SiteStatus`]).
pub struct SiteStatus {
    pub code: InstitutionCode,
    pub name: String,
    pub devices: Vec<SiteDevice>,
    /// The site as stored (for its auto-restart time); not part of the API answer.
    pub institution: Institution,
    /// What the site should do now: the most urgent of its devices' advice (the site page's
    /// headline).
    pub advice: Advice,
    /// The campaign the site's advice is about, with its schedule.
    pub campaign: Option<(
        std::sync::Arc<onshi_store::CampaignRecord>,
        std::sync::Arc<onshi_core::schedule::Campaign>,
    )>,
}

/// Whether `key` is the institution's access key (the API's bearer and the site page's login).
pub async fn access_key_matches(
    state: &AppState,
    code: InstitutionCode,
    key: String,
) -> ApiResult<bool> {
    let stored = state
        .db(move |s| s.institution_key(code, InstitutionKey::Access))
        .await?;
    Ok(stored.is_some_and(|h| secret_matches(&key, &h)))
}

/// Each of a site's devices with its open deployment: the API answer and the site page's data.
pub async fn site_status(state: &AppState, code: InstitutionCode) -> ApiResult<SiteStatus> {
    let (institution, rows) = state
        .db(move |s| {
            let inst = s.institution(code)?;
            let mut rows = Vec::new();
            for d in s.devices_of(code)? {
                let dep = s.open_deployments_of(d.id)?.into_iter().next();
                let turn = match &dep {
                    Some(dep) => s.queue_place(&dep.campaign_id, d.id)?,
                    None => None,
                };
                rows.push((d, dep, turn));
            }
            Ok((inst, rows))
        })
        .await?;
    let institution = institution.ok_or_else(|| ApiError::not_found("institution"))?;
    let campaign_id = rows
        .iter()
        .find_map(|(_, dep, _)| dep.as_ref().map(|d| d.campaign_id.clone()));
    let campaign = match campaign_id {
        Some(id) => match state.campaign(&id).await? {
            Some(record) => {
                let schedule = state.schedule(&record)?;
                Some((record, schedule))
            }
            None => None,
        },
        None => None,
    };
    // A site whose wave is not open yet sees the campaign paused (onshi_core::waves).
    let status = match &campaign {
        Some((record, _)) => Some(super::waves::status_for(state, record, code).await?),
        None => None,
    };
    let moment = campaign
        .as_ref()
        .zip(status)
        .map(|((_, schedule), status)| Moment::of(schedule, status, state.now()));
    let auto_restart = institution.auto_restart;
    let devices: Vec<SiteDevice> =
        rows.into_iter()
            .map(|(device, dep, turn)| {
                let dep = dep.filter(|d| {
                    campaign
                        .as_ref()
                        .is_some_and(|(record, _)| record.id == d.campaign_id)
                });
                let advice = dep.as_ref().zip(moment.as_ref()).map(|(d, m)| {
                    guidance::device_advice(&facts_of(device.kind, d), m, auto_restart)
                });
                SiteDevice {
                    restart_required: dep
                        .as_ref()
                        .is_some_and(|d| d.state.restart_required(device.kind)),
                    label_ja: dep.as_ref().zip(advice).map(|(d, a)| {
                        format!(
                            "{}：{}",
                            d.state.label_ja(device.kind),
                            a.headline(Lang::Ja)
                        )
                    }),
                    since: dep.as_ref().map(|d| d.updated_at),
                    advice,
                    campaign: dep.as_ref().map(|d| d.campaign_id.clone()),
                    state: dep.map(|d| d.state),
                    device,
                    turn,
                }
            })
            .collect();
    let advice = match (&campaign, &moment) {
        (Some(_), Some(m)) => {
            let facts: Vec<DeviceFacts> = devices
                .iter()
                .filter_map(|d| {
                    d.state.map(|state| DeviceFacts {
                        kind: d.device.kind,
                        state,
                        installed_at: d.since,
                    })
                })
                .collect();
            guidance::site_advice_at(&facts, m, auto_restart)
        }
        _ => Advice::NotScheduled,
    };
    Ok(SiteStatus {
        code,
        name: institution.name.clone(),
        institution,
        devices,
        advice,
        campaign,
    })
}

/// A deployment as the advice sees it: an installed device's install instant is when its
/// deployment last changed state (the `installed` report).
fn facts_of(kind: onshi_core::vendor::DeviceKind, d: &onshi_store::Deployment) -> DeviceFacts {
    DeviceFacts {
        kind,
        state: d.state,
        installed_at: (d.state == DeploymentState::Installed).then_some(d.updated_at),
    }
}

/// The advice for the site's devices in one state group: the restart notice speaks for the
/// installed ones, the others for those still waiting (the billing screen's notices).
pub fn advice_where(status: &SiteStatus, installed: bool) -> Option<Advice> {
    status
        .devices
        .iter()
        .filter(|d| {
            d.state
                .is_some_and(|s| (s == DeploymentState::Installed) == installed)
        })
        .filter_map(|d| d.advice)
        .max_by_key(Advice::urgency)
}

/// A campaign's device rows, filtered (e.g. every terminal that still needs a restart).
pub async fn campaign_device_rows(
    state: &AppState,
    record: &CampaignRecord,
    filter: DeploymentFilter,
) -> ApiResult<Vec<DeploymentListing>> {
    let cid = record.id.clone();
    state.db(move |s| s.deployments(&cid, &filter)).await
}

/// The most device rows a list or an export reads at once: the national fleet (≈ 420,000
/// devices) fits; a larger one is refused with a message to filter it ([`within_export`])
/// rather than held in memory and written out whole.
pub const MAX_EXPORT_ROWS: u32 = 500_000;

/// The limit to read an export with: one more than [`MAX_EXPORT_ROWS`], so that
/// [`within_export`] can tell a full export from a cut one.
pub const EXPORT_READ_LIMIT: u32 = MAX_EXPORT_ROWS + 1;

/// Refuses rows read with [`EXPORT_READ_LIMIT`] that were more than [`MAX_EXPORT_ROWS`].
pub fn within_export<T>(rows: Vec<T>) -> ApiResult<Vec<T>> {
    if rows.len() > MAX_EXPORT_ROWS as usize {
        return Err(ApiError::bad_request(
            onshi_api::ErrorCode::InvalidQuery,
            format!(
                "more than {MAX_EXPORT_ROWS} devices match: filter by prefecture, kind or vendor"
            ),
        ));
    }
    Ok(rows)
}

/// A campaign's device rows as CSV (UTF-8, one header line): the API's `format=csv` and the
/// dashboard's export of the sites needing action.
pub fn devices_csv(rows: &[DeploymentListing]) -> ApiResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "institution_code",
        "institution_name",
        "prefecture",
        "kind",
        "email",
        "device_id",
        "device_kind",
        "vendor",
        "serial",
        "state",
        "restart_required",
        "installed_version",
        "running_version",
        "last_contact",
        "updated_at",
    ];
    w.write_record(header).map_err(ApiError::internal)?;
    for r in rows {
        let fields = [
            r.institution.code.to_string(),
            r.institution.name.clone(),
            r.institution.prefecture.name_ja().to_owned(),
            r.institution.kind.slug().to_owned(),
            r.institution.email.clone(),
            r.device.id.to_string(),
            r.device.kind.slug().to_owned(),
            r.device
                .vendor
                .map(|v| v.slug().to_owned())
                .unwrap_or_default(),
            r.device.serial.clone(),
            r.state.slug().to_owned(),
            r.state.restart_required(r.device.kind).to_string(),
            r.device
                .installed
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            r.device
                .running
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            r.device
                .last_contact
                .map(|t| t.to_string())
                .unwrap_or_default(),
            r.updated_at.to_string(),
        ];
        w.write_record(fields).map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_of_the_whole_fleet_is_kept_and_one_past_the_bound_refused() {
        let fleet = vec![(); MAX_EXPORT_ROWS as usize];
        assert_eq!(
            within_export(fleet).map(|r| r.len()).ok(),
            Some(MAX_EXPORT_ROWS as usize)
        );
        let over = vec![(); EXPORT_READ_LIMIT as usize];
        let refused = within_export(over).expect_err("over the bound");
        assert_eq!(refused.code, onshi_api::ErrorCode::InvalidQuery);
    }
}
