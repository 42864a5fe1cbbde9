//! A campaign's progress: counts per deployment state, by device kind, prefecture, institution
//! kind and reader vendor — the one computation behind the progress API, the dashboard and
//! its chart — and the sampler that records them over time for the chart.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
pub use onshi_api::admin::{Counts, PrefectureCounts, Progress};
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionKind, Prefecture};
use onshi_core::offer::CampaignStatus;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_store::CampaignRecord;

use crate::error::ApiResult;
use crate::history::{Sample, due, lock};
use crate::state::AppState;

/// How often (real time) the sampler looks at the clock: a simulated clock running fast gets a
/// sample at every look.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// These counts as a sample of the chart at `at`.
pub fn sample(counts: &Counts, at: Timestamp) -> Sample {
    Sample {
        at,
        states: DeploymentState::ALL.map(|s| counts.get(s)),
        restart_required: counts.restart_required,
    }
}

/// A campaign's counts now: the one computation behind the API, the dashboard and its chart.
pub async fn progress_of(state: &AppState, record: &CampaignRecord) -> ApiResult<Progress> {
    let now = state.now();
    let cid = record.id.clone();
    let (rows, live) = state
        .db(move |s| Ok((s.progress(&cid)?, s.live_leases(&cid, now)?)))
        .await?;
    let mut all = Counts::zeroed();
    let mut by_device: BTreeMap<DeviceKind, Counts> =
        [DeviceKind::Terminal, DeviceKind::CardReader]
            .into_iter()
            .map(|d| (d, Counts::zeroed()))
            .collect();
    let mut by_pref: BTreeMap<u8, Counts> = Prefecture::all()
        .map(|p| (p.number(), Counts::zeroed()))
        .collect();
    let mut by_kind: BTreeMap<InstitutionKind, Counts> = InstitutionKind::ALL
        .into_iter()
        .map(|k| (k, Counts::zeroed()))
        .collect();
    let mut by_vendor: BTreeMap<Vendor, Counts> = Vendor::ALL
        .into_iter()
        .map(|v| (v, Counts::zeroed()))
        .collect();
    for r in rows {
        all.add(r.state, r.device, r.count);
        by_device
            .entry(r.device)
            .or_insert_with(Counts::zeroed)
            .add(r.state, r.device, r.count);
        by_pref
            .entry(r.prefecture.number())
            .or_insert_with(Counts::zeroed)
            .add(r.state, r.device, r.count);
        by_kind
            .entry(r.kind)
            .or_insert_with(Counts::zeroed)
            .add(r.state, r.device, r.count);
        if let Some(v) = r.vendor {
            by_vendor
                .entry(v)
                .or_insert_with(Counts::zeroed)
                .add(r.state, r.device, r.count);
        }
    }
    let schedule = state.schedule(record)?;
    let silent = super::silence::all_silent(state, record, now).await?.len();
    Ok(Progress {
        campaign: record.id.clone(),
        at: schedule.rfc3339(now),
        all,
        by_device,
        by_prefecture: by_pref
            .into_iter()
            .filter_map(|(n, counts)| {
                Prefecture::from_number(n).map(|p| PrefectureCounts {
                    prefecture: p,
                    name: p.name_ja().to_owned(),
                    counts,
                })
            })
            .collect(),
        by_kind,
        by_vendor,
        live_downloads: live,
        silent_terminals: u64::try_from(silent).unwrap_or(u64::MAX),
    })
}

/// Samples every active or paused campaign whenever the server's clock has moved on enough.
pub fn spawn_sampler(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LOOK_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = sample_running(&state, false).await {
                tracing::warn!(error = %e.message, "sampling campaign progress failed");
            }
        }
    });
}

/// Samples every active or paused campaign: when due, or at once with `force` (before the
/// operator moves a simulated clock, so a jump does not skip what happened before it).
pub async fn sample_running(state: &AppState, force: bool) -> ApiResult<()> {
    let records = state.db(|s| s.campaigns()).await?;
    for record in records {
        if !matches!(
            record.status,
            CampaignStatus::Active | CampaignStatus::Paused
        ) {
            continue;
        }
        let now = state.now();
        if !force && !due(lock(&state.history).last(&record.id), now) {
            continue;
        }
        let progress = progress_of(state, &record).await?;
        lock(&state.history).record(&record.id, sample(&progress.all, now));
    }
    Ok(())
}
