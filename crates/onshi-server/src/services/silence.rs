//! A campaign's silent terminals (the rule is [`onshi_core::silence`]): the one look-up behind
//! the progress API's count, the dashboard's list and CSV, and the notices worker's daily mail.

use jiff::Timestamp;
use onshi_core::silence::{self, Silence};
use onshi_store::{CampaignRecord, DeploymentFilter, DeploymentListing};

use crate::error::ApiResult;
use crate::state::AppState;

/// The rule for `record` at `now`, or `None` while the campaign does not watch for silence (it
/// is not active).
pub fn rule(
    state: &AppState,
    record: &CampaignRecord,
    now: Timestamp,
) -> ApiResult<Option<Silence>> {
    if !silence::watched(record.status) {
        return Ok(None);
    }
    let schedule = state.schedule(record)?;
    Ok(Some(Silence::at(now, schedule.silent_after())))
}

/// The campaign's terminals silent now, narrowed by `filter` (its `silent` is set here), in
/// institution-code order; none while the campaign does not watch for silence.
pub async fn silent_terminals(
    state: &AppState,
    record: &CampaignRecord,
    filter: DeploymentFilter,
) -> ApiResult<Vec<DeploymentListing>> {
    silent_at(state, record, filter, state.now()).await
}

/// [`silent_terminals`] at `now`.
async fn silent_at(
    state: &AppState,
    record: &CampaignRecord,
    filter: DeploymentFilter,
    now: Timestamp,
) -> ApiResult<Vec<DeploymentListing>> {
    let Some(rule) = rule(state, record, now)? else {
        return Ok(Vec::new());
    };
    let filter = DeploymentFilter {
        silent: Some(rule),
        ..filter
    };
    let cid = record.id.clone();
    state.db(move |s| s.deployments(&cid, &filter)).await
}

/// Every silent terminal of the campaign at `now`.
pub async fn all_silent(
    state: &AppState,
    record: &CampaignRecord,
    now: Timestamp,
) -> ApiResult<Vec<DeploymentListing>> {
    let filter = DeploymentFilter {
        limit: u32::MAX,
        ..DeploymentFilter::default()
    };
    silent_at(state, record, filter, now).await
}
