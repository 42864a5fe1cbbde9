//! Campaigns: creating a draft, loading one, and changing its status by the state machine of
//! [`CampaignStatus::apply`] (activation targets the campaign's devices).

use onshi_core::offer::{CampaignAction, CampaignStatus};
use onshi_core::schedule::Campaign;
use onshi_store::{CampaignRecord, WaveChange};

use super::OPERATOR;
use super::progress::progress_of;
use super::waves;
use crate::error::{ApiError, ApiResult};
use crate::history;
use crate::state::AppState;
use crate::targeting;

pub use onshi_api::admin::{CampaignInput, Throttle};

/// Validates and stores a draft campaign: shared by the API and the dashboard.
pub async fn new_campaign(
    state: &AppState,
    input: CampaignInput,
) -> ApiResult<(CampaignRecord, Campaign)> {
    let schedule_toml = match input.schedule.strip_prefix("preset:") {
        Some(name) => onshi_core::schedule::preset_text(name)
            .map_err(|e| ApiError::invalid_schedule(e.to_string()))?
            .to_owned(),
        None => input.schedule,
    };
    let schedule =
        Campaign::parse(&schedule_toml).map_err(|e| ApiError::invalid_schedule(e.to_string()))?;
    let t = input.throttle;
    if !(1..=1_000_000).contains(&t.max_concurrent_downloads) {
        return Err(ApiError::invalid_throttle(
            "max_concurrent_downloads must be 1–1000000",
        ));
    }
    if !(5..=86_400).contains(&t.poll_interval_seconds) {
        return Err(ApiError::invalid_throttle(
            "poll_interval_seconds must be 5–86400",
        ));
    }
    let record = CampaignRecord {
        id: schedule.id().to_owned(),
        schedule_toml,
        release_id: input.release_id,
        selector: input.selector,
        max_downloads: t.max_concurrent_downloads,
        poll_interval: std::time::Duration::from_secs(t.poll_interval_seconds),
        status: CampaignStatus::Draft,
    };
    let now = state.now();
    let stored = record.clone();
    state
        .db(move |s| {
            if s.release(&stored.release_id)?.is_none() {
                return Err(onshi_store::StoreError::NotFound(format!(
                    "release {}",
                    stored.release_id
                )));
            }
            s.insert_campaign(&stored, now)
        })
        .await?;
    state
        .audit(OPERATOR, "campaign_created", &record.id, &record.release_id)
        .await?;
    Ok((record, schedule))
}

/// One campaign, or 404.
pub async fn load_campaign(state: &AppState, id: String) -> ApiResult<CampaignRecord> {
    state
        .db(move |s| s.campaign(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))
}

/// The action a verb of the API's path or the dashboard's buttons names, or 404.
pub fn action(verb: &str) -> ApiResult<CampaignAction> {
    CampaignAction::parse(verb)
        .ok_or_else(|| ApiError::not_found(format!("campaign action {verb}")))
}

/// Activates, pauses, resumes or closes a campaign (activation targets its devices), audited:
/// shared by the API and the dashboard's buttons. The transition is onshi-core's
/// [`CampaignStatus::apply`]; a refused one is a 409 `invalid_campaign_transition`.
pub async fn change_campaign_status(
    state: &AppState,
    id: String,
    action: CampaignAction,
) -> ApiResult<CampaignRecord> {
    let mut record = load_campaign(state, id).await?;
    let to = record
        .status
        .apply(action)
        .map_err(|e| ApiError::invalid_campaign_transition(e.to_string()))?;
    // Resuming after a gate's hold accepts the held wave's breach; widening opens a wave.
    let waves_change = waves::decide(state, &record, action).await?;
    let waves_note = waves_change.as_ref().map(|(from, next)| {
        if next.open > from.open {
            format!(
                "; {} opened by the operator",
                onshi_core::waves::wave_name(next.open - 1, onshi_core::lang::Lang::En)
            )
        } else {
            match &from.hold {
                Some(h) => format!("; accepted: {}", h.reason(onshi_core::lang::Lang::En)),
                None => String::new(),
            }
        }
    });
    let schedule = state.schedule(&record)?;
    let now = state.now();
    let stored = record.clone();
    let added = state
        .db(move |s| {
            if let Some((expected, next)) = &waves_change {
                let changed = s.change_waves(&WaveChange {
                    campaign: &stored.id,
                    expected,
                    next,
                    status: None,
                    audit: None,
                    mail: None,
                    rollback: None,
                    at: now,
                })?;
                if !changed {
                    return Err(onshi_store::StoreError::Conflict(
                        "the campaign's waves changed meanwhile; look again and retry".to_owned(),
                    ));
                }
            }
            let added = if to == CampaignStatus::Active && stored.status == CampaignStatus::Draft {
                let added = targeting::target_campaign(s, &stored, now)?;
                waves::start(s, &stored, &schedule, now)?;
                added
            } else {
                0
            };
            if to != stored.status {
                s.set_campaign_status(&stored.id, to, now)?;
            }
            Ok(added)
        })
        .await?;
    // An activated campaign is announced now, not at the next planning round.
    state.notices_nudge.notify_one();
    state
        .audit(
            OPERATOR,
            &format!("campaign_{action}"),
            &record.id,
            format!(
                "{} -> {} ({added} devices targeted{})",
                record.status.slug(),
                to.slug(),
                waves_note.unwrap_or_default()
            ),
        )
        .await?;
    state.forget_campaign(&record.id);
    tracing::info!(campaign = %record.id, from = record.status.slug(), to = to.slug(), added, "campaign status changed");
    record.status = to;
    if matches!(to, CampaignStatus::Active | CampaignStatus::Paused) {
        // The dashboard's chart starts at activation and marks pauses.
        let p = progress_of(state, &record).await?;
        history::lock(&state.history)
            .record(&record.id, crate::services::progress::sample(&p.all, now));
    }
    Ok(record)
}
