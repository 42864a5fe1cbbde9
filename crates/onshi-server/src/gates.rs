//! The gates worker (段階配信の健全性ゲート): judges every active campaign's wave gates — at once
//! when a report that may cross one arrived (a failure, a restart, a self-check), and every few
//! seconds otherwise (a restart without the new version becomes overdue, a soak time ends, a
//! gate another replica's reports crossed). Each replica runs one; the store's compare-and-set
//! makes the first to act the only one (one hold, one audit line, one mail).
//!
//! Cost: a round reads each active campaign with waves' counts per wave from the store's tally
//! (a few rows per campaign, kept by triggers as deployments change; the only rows it reads
//! from `deployments` are the terminals restarted without the new version), so it does not
//! grow with the fleet; rounds are at least [`DEBOUNCE`] apart however many reports arrive.

use std::time::Duration;

use onshi_core::offer::CampaignStatus;

use crate::services::waves;
use crate::state::AppState;

/// How long the worker waits for a nudge before it judges anyway (real time).
const EVERY: Duration = Duration::from_secs(2);
/// The least real time between two rounds.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Starts the worker.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = state.gates_nudge.notified() => {}
                () = tokio::time::sleep(EVERY) => {}
            }
            if let Err(e) = round(&state).await {
                tracing::error!(error = %e.message, "judging the wave gates failed");
            }
            tokio::time::sleep(DEBOUNCE).await;
        }
    });
}

/// Judges every active campaign once.
pub async fn round(state: &AppState) -> crate::error::ApiResult<()> {
    let campaigns = state.db(|s| s.campaigns()).await?;
    for record in campaigns
        .iter()
        .filter(|c| c.status == CampaignStatus::Active)
    {
        waves::judge(state, record).await?;
    }
    Ok(())
}
