//! Which devices take part in a campaign: the campaign's selector (onshi-core) applied to the
//! enrolled devices, restricted to devices the release has a package for. Runs when a campaign is
//! activated and whenever a device enrols into a running campaign.

use std::collections::HashMap;

use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Manifest, Target};
use onshi_core::schedule::Campaign;
use onshi_core::selector::{DeviceFacts, Selector};
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_store::{CampaignRecord, Device, Institution, Store, StoreError};

use crate::error::ApiResult;
use crate::state::AppState;

/// The ids of the devices among `devices` that `selector` and the release target.
pub fn targeted(
    selector: &Selector,
    manifest: &Manifest,
    devices: &[(Device, Institution)],
) -> Vec<i64> {
    let mut site_vendors: HashMap<_, Vec<Vendor>> = HashMap::new();
    for (d, _) in devices {
        if let (DeviceKind::CardReader, Some(v)) = (d.kind, d.vendor) {
            site_vendors.entry(d.institution).or_default().push(v);
        }
    }
    devices
        .iter()
        .filter(|(d, i)| {
            let has_package = Target::for_device(d.kind, d.vendor)
                .is_some_and(|t| manifest.component(t).is_some());
            has_package
                && selector.matches(&DeviceFacts {
                    code: i.code,
                    kind: i.kind,
                    device: d.kind,
                    vendor: d.vendor,
                    site_vendors: site_vendors
                        .get(&d.institution)
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                })
        })
        .map(|(d, _)| d.id)
        .collect()
}

/// Adds every targeted device of the campaign (used at activation). Returns how many were new.
pub fn target_campaign(
    store: &dyn Store,
    record: &CampaignRecord,
    now: jiff::Timestamp,
) -> Result<usize, StoreError> {
    let release = store
        .release(&record.release_id)?
        .ok_or_else(|| StoreError::NotFound(format!("release {}", record.release_id)))?;
    let devices = store.all_devices()?;
    let ids = targeted(&record.selector, &release.manifest, &devices);
    store.ensure_deployments(&record.id, &ids, now)
}

/// Adds a newly enrolled device (and its site's other devices, whose targeting may depend on
/// the new reader's vendor) to every running campaign that targets them, but a rollback
/// campaign (a device enrolled later never had the bad release).
pub async fn target_new_device(state: &AppState, device: &Device) -> ApiResult<()> {
    let code = device.institution;
    let now = state.now();
    state
        .db(move |s| {
            let Some(institution) = s.institution(code)? else {
                return Ok(());
            };
            let site: Vec<(Device, Institution)> = s
                .devices_of(code)?
                .into_iter()
                .map(|d| (d, institution.clone()))
                .collect();
            for record in s.campaigns()? {
                if !matches!(
                    record.status,
                    CampaignStatus::Active | CampaignStatus::Paused
                ) {
                    continue;
                }
                // A rollback campaign goes only to the devices that had the bad release.
                if Campaign::parse(&record.schedule_toml).is_ok_and(|c| c.rollback_of().is_some()) {
                    continue;
                }
                let Some(release) = s.release(&record.release_id)? else {
                    continue;
                };
                let ids = targeted(&record.selector, &release.manifest, &site);
                s.ensure_deployments(&record.id, &ids, now)?;
            }
            Ok(())
        })
        .await
}
