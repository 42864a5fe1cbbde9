//! 切り戻し — the operator's "roll back" on a campaign with waves (issue 20): a release signed
//! offline with a higher version and the previous good packages is offered, in a campaign of
//! its own with the same windows, only to the devices of the open waves that got the bad
//! release; the bad campaign closes for everyone else. Checked, created, closed and audited in
//! one store transaction (`Store::change_waves`), so two operators or replicas asking at once
//! roll back once. Every rule is `onshi_core::waves::rollback`'s.

use onshi_core::lang::Lang;
use onshi_core::offer::CampaignStatus;
use onshi_core::waves::{self, RollbackError, RolledBack, rollback};
use onshi_store::{AuditEntry, CampaignRecord, NewRollback, StoreError, WaveChange};

use super::OPERATOR;
use super::campaigns::load_campaign;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The answer to a refused rollback, with its stable code.
fn refused(e: RollbackError) -> ApiError {
    use RollbackError as E;
    match e {
        E::NotHigher { .. } | E::MissingTarget(_) | E::SameContent(_) | E::SameRelease => {
            ApiError::invalid_release(e.to_string())
        }
        E::IdTooLong(_) | E::Schedule(_) => ApiError::invalid_schedule(e.to_string()),
        E::NotRunning(_) | E::NoWaves | E::AlreadyRolledBack(_) | E::NothingToRollBack => {
            ApiError::invalid_campaign_transition(e.to_string())
        }
    }
}

/// Rolls campaign `id` back with release `release_id`: shared by the API and the dashboard.
pub async fn roll_back(state: &AppState, id: String, release_id: String) -> ApiResult<RolledBack> {
    let record = load_campaign(state, id).await?;
    let schedule = state.schedule(&record)?;
    let cid = record.id.clone();
    let progress = match schedule.waves() {
        Some(_) => state.db(move |s| s.wave_progress(&cid)).await?,
        None => None,
    };
    let bad = state.release(&record.release_id).await?;
    let good = state.release(&release_id).await?;
    rollback::check(
        record.status,
        progress.as_ref(),
        &bad.manifest,
        &good.manifest,
    )
    .map_err(refused)?;
    let (Some(plan), Some(progress)) = (schedule.waves(), progress) else {
        return Err(refused(RollbackError::NoWaves));
    };
    let (schedule_toml, rollback_schedule) =
        rollback::schedule_text(&record.schedule_toml).map_err(refused)?;
    let (cid, last) = (record.id.clone(), plan.count() - 1);
    let devices = state.db(move |s| s.wave_devices(&cid, last)).await?;
    let targets = rollback::targets(&progress, &devices);
    if targets.is_empty() {
        return Err(refused(RollbackError::NothingToRollBack));
    }
    let now = state.now();
    let done = RolledBack {
        release_id: good.id.clone(),
        version: good.manifest.version.clone(),
        campaign: rollback_schedule.id().to_owned(),
        devices: targets.len() as u64,
        at: now,
    };
    let next = progress.rolled_back(done.clone());
    let new = CampaignRecord {
        id: done.campaign.clone(),
        schedule_toml,
        release_id: good.id.clone(),
        // The deployments made here are its targets: no selector adds a device later.
        selector: record.selector.clone(),
        max_downloads: record.max_downloads,
        poll_interval: record.poll_interval,
        status: CampaignStatus::Active,
    };
    let open_waves: Vec<String> = (0..progress.open)
        .map(|w| waves::wave_name(w, Lang::En))
        .collect();
    let audit = AuditEntry {
        at: now,
        actor: OPERATOR.to_owned(),
        action: "campaign_rolled_back".to_owned(),
        subject: record.id.clone(),
        detail: format!(
            "{} -> closed; release {} (version {}, signed offline) offered in campaign {} to the {} devices of {} that got release {} (version {}); nothing offered to any other device",
            record.status.slug(),
            done.release_id,
            done.version,
            done.campaign,
            done.devices,
            open_waves.join(", "),
            bad.id,
            bad.manifest.version,
        ),
    };
    let from = record.status;
    let bad_id = record.id.clone();
    let changed = state
        .db(move |s| {
            s.change_waves(&WaveChange {
                campaign: &bad_id,
                expected: &progress,
                next: &next,
                status: Some((from, CampaignStatus::Closed)),
                audit: Some(&audit),
                mail: None,
                rollback: Some(NewRollback {
                    campaign: &new,
                    devices: &targets,
                }),
                at: now,
            })
        })
        .await?;
    if !changed {
        return Err(StoreError::Conflict(
            "the campaign's waves or status changed meanwhile; look again and retry".to_owned(),
        )
        .into());
    }
    state.forget_campaign(&record.id);
    state.forget_campaign(&done.campaign);
    // The rollback campaign's sites are told now, not at the next planning round.
    state.notices_nudge.notify_one();
    tracing::warn!(campaign = %record.id, rollback = %done.campaign, release = %done.release_id, devices = done.devices, "campaign rolled back");
    Ok(done)
}
