//! Waves and health gates (段階配信): dealing a campaign's sites into waves at activation, the
//! campaign's status as one device sees it (a wave not open yet is paused for its devices),
//! judging the gates (hold the campaign at once, audited and mailed to the operator once, or
//! open the next wave), the operator's decisions (resume after a hold, widen), and the view the
//! API and the dashboard show. Every rule is `onshi_core::waves`'; this applies them to the
//! store.

use std::collections::BTreeMap;

use onshi_core::lang::Lang;
use onshi_core::offer::CampaignStatus;
use onshi_core::schedule::Campaign;
use onshi_core::vendor::DeviceKind;
use onshi_core::waves::{self, SiteProfile, Verdict, WaveHealth, WavePlan, WaveProgress};
use onshi_store::{AuditEntry, CampaignRecord, NewOperatorMail, Store, StoreError, WaveChange};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The audit log's actor for what the gates decide.
pub const GATE: &str = "gate";

/// Deals the campaign's targeted sites into the plan's waves and opens the first (at
/// activation, inside the activation's store call). A campaign without `[waves]` is left alone.
pub fn start(
    store: &dyn Store,
    record: &CampaignRecord,
    schedule: &Campaign,
    now: jiff::Timestamp,
) -> Result<(), StoreError> {
    let Some(plan) = schedule.waves() else {
        return Ok(());
    };
    let open: std::collections::HashSet<i64> = store
        .deployments(
            &record.id,
            &onshi_store::DeploymentFilter {
                limit: u32::MAX,
                ..Default::default()
            },
        )?
        .into_iter()
        .map(|l| l.device.id)
        .collect();
    let mut sites: BTreeMap<_, SiteProfile> = BTreeMap::new();
    for (device, institution) in store.all_devices()? {
        if !open.contains(&device.id) {
            continue;
        }
        let site = sites
            .entry(institution.code)
            .or_insert_with(|| SiteProfile {
                code: institution.code,
                kind: institution.kind,
                vendors: Vec::new(),
            });
        if let (DeviceKind::CardReader, Some(v)) = (device.kind, device.vendor)
            && !site.vendors.contains(&v)
        {
            site.vendors.push(v);
        }
    }
    let profiles: Vec<SiteProfile> = sites.into_values().collect();
    let dealt = waves::assign(plan, &record.id, &profiles);
    let pairs: Vec<_> = profiles.iter().map(|s| s.code).zip(dealt).collect();
    store.start_waves(&record.id, &pairs, &WaveProgress::start(now), now)
}

/// The campaign's status for a device of the site `code`: paused while its wave is not open.
pub async fn status_for(
    state: &AppState,
    record: &CampaignRecord,
    code: onshi_core::institution::InstitutionCode,
) -> ApiResult<CampaignStatus> {
    if record.status != CampaignStatus::Active {
        return Ok(record.status);
    }
    let Some(known) = state.waves(record).await? else {
        return Ok(record.status);
    };
    let count = state.schedule(record)?.waves().map_or(1, WavePlan::count);
    Ok(waves::status_for(
        record.status,
        Some(&known.progress),
        known.wave_of(code, count),
    ))
}

/// The campaign's status as each of its sites sees it, read once for a whole list of sites
/// ([`status_for`] without a look-up per site).
pub struct SiteStatuses {
    status: CampaignStatus,
    known: Option<crate::state::KnownWaves>,
    count: u16,
}

impl SiteStatuses {
    /// The campaign's status for the site `code`: paused while its wave is not open.
    pub fn of(&self, code: onshi_core::institution::InstitutionCode) -> CampaignStatus {
        match &self.known {
            Some(k) => {
                waves::status_for(self.status, Some(&k.progress), k.wave_of(code, self.count))
            }
            None => self.status,
        }
    }
}

/// [`SiteStatuses`] of `record`'s campaign now.
pub async fn site_statuses(state: &AppState, record: &CampaignRecord) -> ApiResult<SiteStatuses> {
    let known = if record.status == CampaignStatus::Active {
        state.waves(record).await?
    } else {
        None
    };
    Ok(SiteStatuses {
        status: record.status,
        known,
        count: state.schedule(record)?.waves().map_or(1, WavePlan::count),
    })
}

/// Each wave's counts now.
async fn health(
    state: &AppState,
    record: &CampaignRecord,
    plan: &WavePlan,
) -> ApiResult<Vec<WaveHealth>> {
    let now = state.now();
    let overdue = now
        .checked_sub(plan.gate().not_running_within)
        .unwrap_or(now);
    let (id, last) = (record.id.clone(), plan.count() - 1);
    state.db(move |s| s.wave_health(&id, last, overdue)).await
}

/// Judges an active campaign's gates now and acts: holds it (paused, audited, the operator
/// mailed once — whichever replica gets there first; the others change nothing) or opens the
/// next wave (audited). Returns the verdict, `None` for a campaign without waves.
pub async fn judge(state: &AppState, record: &CampaignRecord) -> ApiResult<Option<Verdict>> {
    let schedule = state.schedule(record)?;
    let Some(plan) = schedule.waves() else {
        return Ok(None);
    };
    let id = record.id.clone();
    let Some(progress) = state.db(move |s| s.wave_progress(&id)).await? else {
        return Ok(None);
    };
    if record.status != CampaignStatus::Active {
        return Ok(None);
    }
    let health = health(state, record, plan).await?;
    let now = state.now();
    let verdict = waves::judge(plan, &progress, &health, &schedule, now);
    match &verdict {
        Verdict::Hold(hold) => {
            let next = WaveProgress {
                hold: Some(*hold),
                ..progress.clone()
            };
            let (subject, body) = hold.letter(&record.id, schedule.title(), plan.count(), Lang::Ja);
            let key = format!("hold:{}:{}", hold.wave, hold.at);
            let mail = plan.mail_to().map(|to| (to.to_owned(), key, subject, body));
            let audit = AuditEntry {
                at: now,
                actor: GATE.to_owned(),
                action: "campaign_held".to_owned(),
                subject: record.id.clone(),
                detail: hold.reason(Lang::En),
            };
            let id = record.id.clone();
            let changed = state
                .db(move |s| {
                    let mail = mail
                        .as_ref()
                        .map(|(to, key, subject, body)| NewOperatorMail {
                            key,
                            recipient: to,
                            subject,
                            body,
                        });
                    s.change_waves(&WaveChange {
                        campaign: &id,
                        expected: &progress,
                        next: &next,
                        status: Some((CampaignStatus::Active, CampaignStatus::Paused)),
                        audit: Some(&audit),
                        mail: mail.as_ref(),
                        rollback: None,
                        at: now,
                    })
                })
                .await?;
            if changed {
                tracing::warn!(campaign = %record.id, reason = %hold.reason(Lang::En), "a health gate held the campaign");
                state.forget_campaign(&record.id);
            }
        }
        Verdict::Open(wave) => {
            if let Some(next) = progress.widened(plan, now) {
                let audit = AuditEntry {
                    at: now,
                    actor: GATE.to_owned(),
                    action: "wave_opened".to_owned(),
                    subject: record.id.clone(),
                    detail: format!(
                        "{} opened: its gate passed",
                        waves::wave_name(*wave, Lang::En)
                    ),
                };
                let id = record.id.clone();
                let changed = state
                    .db(move |s| {
                        s.change_waves(&WaveChange {
                            campaign: &id,
                            expected: &progress,
                            next: &next,
                            status: None,
                            audit: Some(&audit),
                            mail: None,
                            rollback: None,
                            at: now,
                        })
                    })
                    .await?;
                if changed {
                    tracing::info!(campaign = %record.id, wave = wave + 1, "the next wave opened");
                    state.forget_campaign(&record.id);
                }
            }
        }
        Verdict::Held | Verdict::Wait(_) | Verdict::AllOpen => {}
    }
    Ok(Some(verdict))
}

/// The operator's decision on a campaign's waves, as part of a status change: `resume` after
/// a hold accepts the held wave's breach; `widen` opens the next wave. Returns the progress to
/// write, or `None` when the waves do not change (no waves, or a resume without a hold).
pub async fn decide(
    state: &AppState,
    record: &CampaignRecord,
    action: onshi_core::offer::CampaignAction,
) -> ApiResult<Option<(WaveProgress, WaveProgress)>> {
    use onshi_core::offer::CampaignAction as A;
    let schedule = state.schedule(record)?;
    let Some(plan) = schedule.waves() else {
        return match action {
            A::Widen => Err(ApiError::invalid_campaign_transition(
                "this campaign has no waves to widen",
            )),
            _ => Ok(None),
        };
    };
    let id = record.id.clone();
    let Some(progress) = state.db(move |s| s.wave_progress(&id)).await? else {
        return match action {
            A::Widen => Err(ApiError::invalid_campaign_transition(
                "the campaign's waves start when it is activated",
            )),
            _ => Ok(None),
        };
    };
    match action {
        A::Resume if progress.hold.is_some() => {
            let next = progress.resumed();
            Ok(Some((progress, next)))
        }
        A::Widen => match progress.widened(plan, state.now()) {
            Some(next) => Ok(Some((progress, next))),
            None => Err(ApiError::invalid_campaign_transition(
                "every wave is open already",
            )),
        },
        _ => Ok(None),
    }
}

/// A campaign's waves as the API and the dashboard show them; `None` without waves.
pub async fn view(
    state: &AppState,
    record: &CampaignRecord,
) -> ApiResult<Option<onshi_api::admin::WavesView>> {
    use onshi_api::admin::{WaveView, WavesView};
    let schedule = state.schedule(record)?;
    let Some(plan) = schedule.waves() else {
        return Ok(None);
    };
    let id = record.id.clone();
    let progress = state.db(move |s| s.wave_progress(&id)).await?;
    let health = health(state, record, plan).await?;
    let now = state.now();
    let waiting =
        progress
            .as_ref()
            .and_then(|p| match waves::judge(plan, p, &health, &schedule, now) {
                Verdict::Wait(w) => Some(w),
                _ => None,
            });
    let gate = plan.gate();
    let each = (0..plan.count())
        .map(|w| {
            let h = health
                .iter()
                .find(|h| h.wave == w)
                .copied()
                .unwrap_or(WaveHealth {
                    wave: w,
                    ..WaveHealth::default()
                });
            WaveView {
                wave: w,
                name_ja: waves::wave_name(w, Lang::Ja),
                name_en: waves::wave_name(w, Lang::En),
                open: progress.as_ref().is_some_and(|p| p.offers(w)),
                waived: progress.as_ref().is_some_and(|p| p.waived.contains(&w)),
                health: h,
                readings: h.readings(gate).to_vec(),
            }
        })
        .collect();
    let hold = progress.as_ref().and_then(|p| p.hold);
    let rolled_back = progress.as_ref().and_then(|p| p.rolled_back.clone());
    Ok(Some(WavesView {
        campaign: record.id.clone(),
        waves: plan.count(),
        open: progress.as_ref().map_or(0, |p| p.open),
        opened_at: progress.as_ref().map(|p| p.opened_at.to_string()),
        hold,
        held_because_ja: hold.map(|h| h.reason(Lang::Ja)),
        held_because_en: hold.map(|h| h.reason(Lang::En)),
        waiting,
        waiting_ja: waiting.map(|w| w.text(Lang::Ja)),
        waiting_en: waiting.map(|w| w.text(Lang::En)),
        min_restarted: gate.min_restarted,
        soak_hours: gate.soak.as_hours(),
        not_running_within_minutes: gate.not_running_within.as_mins(),
        mail_to: plan.mail_to().map(str::to_owned),
        rolled_back_ja: rolled_back.as_ref().map(|r| r.text(Lang::Ja)),
        rolled_back_en: rolled_back.as_ref().map(|r| r.text(Lang::En)),
        rolled_back,
        each,
    }))
}

/// Whether the dashboard offers "roll back": the campaign runs (held, paused or active) with
/// waves open and was not rolled back yet. The release is checked when the operator asks.
pub fn can_roll_back(status: CampaignStatus, view: Option<&onshi_api::admin::WavesView>) -> bool {
    matches!(status, CampaignStatus::Active | CampaignStatus::Paused)
        && view.is_some_and(|v| v.open > 0 && v.rolled_back.is_none())
}

/// Whether the dashboard offers "widen": the campaign has waves and one is still closed.
pub fn can_widen(view: Option<&onshi_api::admin::WavesView>) -> bool {
    view.is_some_and(|v| v.open > 0 && v.open < v.waves)
}
