//! Planning notices at national scale (230,000 sites on the first night of a campaign). A
//! [`Round`] walks the active campaigns' sites a page of [`PAGE`] sites at a time, in code order,
//! and the worker runs [`PAGES_PER_TICK`] pages a tick, so check-ins keep the store in between.
//! Each page is three short reads (the page's facts, the mails already planned for it, its silent
//! terminals) and one short transaction (the page's new mails): nothing holds every site, every
//! letter or every planned key at once, and the outbox's unique key (campaign, site, kind, key)
//! is what makes a mail planned once — a round restarted halfway, or run by two replicas,
//! neither loses nor doubles one.
//!
//! Letters are composed here, a page at a time, rather than at delivery: a letter states the
//! site's counts when it became due (what the site was told, and what `/api/v1/.../notices`
//! lists), and the outbox keeps its columns and every replica's delivery code as they are.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;
use onshi_core::institution::InstitutionCode;
use onshi_core::lang::Lang;
use onshi_core::notice::{self, Addressee, Letter, NoticeKind};
use onshi_core::offer::CampaignStatus;
use onshi_core::schedule::Campaign;
use onshi_core::silence::{self, Silence, SilentTerminal};
use onshi_store::{NewMail, SilentDevice, Store, StoreError};
use tracing::Instrument;

use crate::error::ApiResult;
use crate::services::silence::rule;
use crate::state::{AppState, KnownWaves};

/// Sites per page: one page's mails are one short transaction of about a hundred rows, so
/// check-ins waiting for the store behind it wait milliseconds.
pub const PAGE: u32 = 50;
/// Pages planned per planning tick.
pub const PAGES_PER_TICK: usize = 1;
/// How often the planner takes a page: 400 sites a second, 230,000 in under ten minutes. Two
/// thousand a second (200 sites every 100 ms) cost the check-ins of `bench/checkin` two thirds
/// of their rate and a p99 of 56 ms while the first night's mail was planned.
pub const PLAN_TICK: std::time::Duration = std::time::Duration::from_millis(125);

/// What one campaign's pages are planned against, fixed for a round.
#[derive(Clone)]
pub struct Plan {
    pub campaign: String,
    pub status: CampaignStatus,
    pub schedule: Arc<Campaign>,
    /// The silence rule at `at`; `None` while the campaign does not watch for silence.
    pub silence: Option<Silence>,
    pub at: Timestamp,
    /// The campaign's waves, if it has them: a site whose wave is not open yet is in a paused
    /// campaign for its mails too (`onshi_core::waves::status_for`), so it is told nothing
    /// until its wave opens.
    pub waves: Option<KnownWaves>,
}

impl Plan {
    /// The campaign's status for the site `code`.
    fn status_of(&self, code: InstitutionCode) -> CampaignStatus {
        match &self.waves {
            Some(w) => {
                let count = self.schedule.waves().map_or(1, |p| p.count());
                onshi_core::waves::status_for(
                    self.status,
                    Some(&w.progress),
                    w.wave_of(code, count),
                )
            }
            None => self.status,
        }
    }
}

/// One page planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageDone {
    /// The last institution code the page covered; `None`: the campaign has no sites left.
    pub through: Option<InstitutionCode>,
    /// Mails added to the outbox.
    pub planned: u64,
}

/// Plans the mails due at the sites after `after`, at most `limit` institutions: the
/// announcement, reminders and restart mails of [`notice::due`] and the silent-terminal mail of
/// [`silence::due`]. Blocking (run it off the async workers); every store call is bounded by
/// the page.
pub fn plan_page(
    store: &dyn Store,
    plan: &Plan,
    after: Option<InstitutionCode>,
    limit: u32,
) -> Result<PageDone, StoreError> {
    let page = store.site_facts_page(&plan.campaign, after, limit)?;
    let Some(through) = page.through else {
        return Ok(PageDone {
            through: None,
            planned: 0,
        });
    };
    let done = |planned| PageDone {
        through: Some(through),
        planned,
    };
    let sites: Vec<_> = page
        .sites
        .into_iter()
        .filter(|(site, _)| !site.email.trim().is_empty())
        .collect();
    if sites.is_empty() {
        return Ok(done(0));
    }
    // Only this page's keys: a letter already planned is not composed again.
    let planned: HashSet<(InstitutionCode, NoticeKind, String)> = store
        .mail_keys_of_sites(&plan.campaign, after, through)?
        .into_iter()
        .collect();
    let silent: Vec<SilentDevice> = match &plan.silence {
        Some(rule) => store.silent_of_sites(&plan.campaign, rule, after, through)?,
        None => Vec::new(),
    };
    let mut silent_by_site: BTreeMap<InstitutionCode, Vec<SilentTerminal<'_>>> = BTreeMap::new();
    for d in &silent {
        silent_by_site
            .entry(d.institution)
            .or_default()
            .push(SilentTerminal {
                serial: &d.serial,
                last_contact: d.last_contact,
            });
    }

    let (at, schedule) = (plan.at, plan.schedule.as_ref());
    let mut letters: Vec<(InstitutionCode, NoticeKind, String, &str, Letter)> = Vec::new();
    for (site, facts) in &sites {
        let code = site.code.to_string();
        let to = || Addressee {
            code: &code,
            name: &site.name,
            auto_restart: site.auto_restart,
        };
        let status = plan.status_of(site.code);
        for d in notice::due(at, schedule, status, facts, site.auto_restart) {
            if planned.contains(&(site.code, d.kind, d.key.clone())) {
                continue;
            }
            // In Japanese, the portal's language.
            let advice = notice::advice_for(d.kind, schedule, at, site.auto_restart);
            let letter = notice::compose(d.kind, Lang::Ja, to(), facts, schedule, at, advice);
            letters.push((site.code, d.kind, d.key, &site.email, letter));
        }
        // Terminals not heard from: their site is asked, once a day, to check them.
        if let Some(terminals) = silent_by_site.get(&site.code)
            && let Some(d) = silence::due(at, status, terminals.len())
            && !planned.contains(&(site.code, d.kind, d.key.clone()))
        {
            let letter = silence::letter(Lang::Ja, to(), facts, schedule, at, terminals);
            letters.push((site.code, d.kind, d.key, &site.email, letter));
        }
    }
    if letters.is_empty() {
        return Ok(done(0));
    }
    let mails: Vec<NewMail<'_>> = letters
        .iter()
        .map(|(code, kind, key, email, letter)| NewMail {
            campaign: &plan.campaign,
            institution: *code,
            kind: *kind,
            key,
            recipient: email,
            subject: &letter.subject,
            body: &letter.body,
            at,
        })
        .collect();
    Ok(done(store.enqueue_mails(&mails)?))
}

/// One pass over the active campaigns' sites, a page at a time; its `notices_plan` span (field
/// `at`) closes when the pass ends, which is how tests know a round is over.
pub struct Round {
    span: tracing::Span,
    /// The campaigns left, the one being planned first.
    plans: VecDeque<Plan>,
    /// Where the current campaign's next page starts.
    after: Option<InstitutionCode>,
    planned: u64,
}

impl Round {
    /// A round planning what is due at `at`.
    pub async fn start(state: &AppState, at: Timestamp) -> ApiResult<Self> {
        let span = tracing::info_span!("notices_plan", at = %at);
        let campaigns = state.db(|s| s.campaigns()).instrument(span.clone()).await?;
        let mut plans = VecDeque::new();
        for c in campaigns
            .into_iter()
            .filter(|c| c.status == CampaignStatus::Active)
        {
            plans.push_back(Plan {
                schedule: state.schedule(&c)?,
                silence: rule(state, &c, at)?,
                waves: state.waves(&c).await?,
                status: c.status,
                campaign: c.id,
                at,
            });
        }
        Ok(Self {
            span,
            plans,
            after: None,
            planned: 0,
        })
    }

    /// Plans up to `pages` pages, yielding between them; answers whether the round is over.
    pub async fn step(&mut self, state: &AppState, pages: usize) -> ApiResult<bool> {
        for _ in 0..pages {
            let Some(plan) = self.plans.front().cloned() else {
                break;
            };
            let after = self.after;
            let done = state
                .db(move |s| plan_page(s, &plan, after, PAGE))
                .instrument(self.span.clone())
                .await?;
            self.planned += done.planned;
            match done.through {
                Some(through) => self.after = Some(through),
                None => {
                    self.plans.pop_front();
                    self.after = None;
                }
            }
            tokio::task::yield_now().await;
        }
        if self.plans.is_empty() {
            if self.planned > 0 {
                self.span
                    .in_scope(|| tracing::info!(planned = self.planned, "notices planned"));
            }
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests;
