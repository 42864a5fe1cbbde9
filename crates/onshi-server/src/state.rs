//! What every handler shares: the store, the clock, the data directory, the trust chain and
//! the timestamp key, and a cache of parsed campaign schedules.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use onshi_clock::Clock;
use onshi_core::institution::InstitutionCode;
use onshi_core::schedule::Campaign;
use onshi_core::waves::WaveProgress;
use onshi_store::{AuditEntry, CampaignRecord, Release, Store};

use crate::desks::Desks;
use crate::error::{ApiError, ApiResult};
use crate::history::History;
use crate::logins::Logins;
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::trust::TrustState;

/// Shared application state: one reference count to clone (every request clones it, and a
/// struct of fifteen reference counts and a path cost 6 % of a check-in's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub data_dir: PathBuf,
    /// The chain of roots and the online timestamp key (no key that can sign a release).
    pub trust: Arc<TrustState>,
    pub operator_token_hash: Arc<str>,
    schedules: Arc<RwLock<HashMap<String, Arc<Campaign>>>>,
    releases: Arc<RwLock<HashMap<String, Arc<Release>>>>,
    campaigns: Arc<RwLock<HashMap<String, CachedCampaign>>>,
    waves: Arc<RwLock<HashMap<String, (Instant, KnownWaves)>>>,
    /// The reception emulator's desks.
    pub desks: Arc<Mutex<Desks>>,
    /// Page sessions (operator and sites), in memory.
    pub sessions: Arc<Mutex<Sessions>>,
    /// Login attempts, limited per client and overall.
    pub logins: Arc<Logins>,
    /// Counts per state over time, sampled in memory for the dashboard's chart.
    pub history: Arc<Mutex<History>>,
    /// Whether the mock qualification service answers non-loopback clients.
    pub qualification_public: bool,
    /// nginx's internal location for packages (checked by [`crate::artifacts::check_accel_prefix`]):
    /// when set, an authorised download answers `X-Accel-Redirect` instead of the bytes.
    pub accel_redirect: Option<Arc<str>>,
    /// Wakes the notices worker to plan at once (a campaign was activated, the clock was set).
    pub notices_nudge: Arc<tokio::sync::Notify>,
    /// Wakes the gates worker to judge at once (a report that may cross a gate arrived).
    pub gates_nudge: Arc<tokio::sync::Notify>,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Where sites reach the pages (no trailing slash): the base of mailed sign-in links.
    pub public_url: Arc<str>,
}

/// A campaign's waves as this replica knows them: the progress (refreshed like a campaign
/// record, so a hold another replica wrote is seen within [`CAMPAIGN_TTL`]) and each site's
/// wave (read once: the deal never changes after activation).
#[derive(Clone)]
pub struct KnownWaves {
    pub progress: Arc<WaveProgress>,
    pub sites: Arc<HashMap<InstitutionCode, u16>>,
}

impl KnownWaves {
    /// The wave of a site: its dealt wave, or the last for a site that enrolled later.
    pub fn wave_of(&self, code: InstitutionCode, waves: u16) -> u16 {
        self.sites
            .get(&code)
            .copied()
            .unwrap_or(waves.saturating_sub(1))
    }
}

/// A campaign record and when it was read.
type CachedCampaign = (Instant, Arc<CampaignRecord>);

/// How long a cached campaign record is trusted. Within one server a control action refreshes
/// it at once; the bound matters when several servers share one database.
const CAMPAIGN_TTL: Duration = Duration::from_secs(2);

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        data_dir: PathBuf,
        trust: TrustState,
        operator_token_hash: String,
    ) -> Self {
        Self(Arc::new(Shared {
            store,
            clock,
            data_dir,
            trust: Arc::new(trust),
            operator_token_hash: operator_token_hash.into(),
            schedules: Arc::default(),
            releases: Arc::default(),
            campaigns: Arc::default(),
            waves: Arc::default(),
            desks: Arc::default(),
            sessions: Arc::default(),
            logins: Arc::default(),
            history: Arc::default(),
            qualification_public: false,
            accel_redirect: None,
            notices_nudge: Arc::default(),
            gates_nudge: Arc::default(),
            metrics: Arc::default(),
            public_url: Arc::from(""),
        }))
    }

    /// The state with the mock qualification service open to other hosts or not, and nginx's
    /// internal location for packages (see the fields), set before the state is shared.
    pub fn serving(self, qualification_public: bool, accel_redirect: Option<Arc<str>>) -> Self {
        let mut shared = Arc::try_unwrap(self.0).unwrap_or_else(|arc| (*arc).clone());
        shared.qualification_public = qualification_public;
        shared.accel_redirect = accel_redirect;
        Self(Arc::new(shared))
    }

    /// The state with its logins limited at `rates`, set before the state is shared.
    pub fn with_login_rates(self, rates: crate::limits::LoginRates) -> Self {
        let mut shared = Arc::try_unwrap(self.0).unwrap_or_else(|arc| (*arc).clone());
        shared.logins = Arc::new(Logins::new(rates));
        Self(Arc::new(shared))
    }

    /// The state with the address sites reach the pages at, set before the state is shared.
    pub fn with_public_url(self, url: String) -> Self {
        let mut shared = Arc::try_unwrap(self.0).unwrap_or_else(|arc| (*arc).clone());
        shared.public_url = url.into();
        Self(Arc::new(shared))
    }

    /// The server's current instant (simulated or real).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs blocking store work off the async workers.
    pub async fn db<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, onshi_store::StoreError> + Send + 'static,
    {
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        Ok(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let answer = f(store.as_ref());
            metrics.store_call(started.elapsed());
            answer
        })
        .await??)
    }

    /// The parsed schedule of a stored campaign, parsed once.
    pub fn schedule(&self, record: &CampaignRecord) -> ApiResult<Arc<Campaign>> {
        if let Some(c) = self
            .schedules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&record.id)
        {
            return Ok(c.clone());
        }
        let parsed = Arc::new(Campaign::parse(&record.schedule_toml).map_err(ApiError::internal)?);
        self.schedules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.id.clone(), parsed.clone());
        Ok(parsed)
    }

    /// A release, cached: releases never change once published.
    pub async fn release(&self, id: &str) -> ApiResult<Arc<Release>> {
        if let Some(r) = self
            .releases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(r.clone());
        }
        let key = id.to_owned();
        let release = self
            .db(move |s| s.release(&key))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("release {id}")))?;
        let release = Arc::new(release);
        self.releases
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), release.clone());
        Ok(release)
    }

    /// A campaign record, cached for a moment (the hot check-in path reads it every time).
    /// When the cached copy is older than [`CAMPAIGN_TTL`], the first caller refreshes it in the
    /// background and everyone keeps the cached copy meanwhile, so an expiry never sends a
    /// burst of check-ins to wait on the database together.
    pub async fn campaign(&self, id: &str) -> ApiResult<Option<Arc<CampaignRecord>>> {
        let cached = {
            let mut map = self.campaigns.write().unwrap_or_else(|e| e.into_inner());
            map.get_mut(id).map(|(at, c)| {
                let stale = at.elapsed() >= CAMPAIGN_TTL;
                if stale {
                    // Claim the refresh: later callers see a fresh time stamp.
                    *at = Instant::now();
                }
                (stale, c.clone())
            })
        };
        match cached {
            Some((stale, record)) => {
                if stale {
                    let me = self.clone();
                    let key = id.to_owned();
                    tokio::spawn(async move {
                        if let Err(e) = me.load_campaign(&key).await {
                            tracing::warn!(campaign = %key, error = %e.message, "campaign refresh failed");
                        }
                    });
                }
                Ok(Some(record))
            }
            None => self.load_campaign(id).await,
        }
    }

    async fn load_campaign(&self, id: &str) -> ApiResult<Option<Arc<CampaignRecord>>> {
        let key = id.to_owned();
        let Some(record) = self.db(move |s| s.campaign(&key)).await? else {
            self.forget_campaign(id);
            return Ok(None);
        };
        let record = Arc::new(record);
        self.campaigns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), (Instant::now(), record.clone()));
        Ok(Some(record))
    }

    /// Forgets a cached campaign (and its wave progress) after it changed.
    pub fn forget_campaign(&self, id: &str) {
        self.campaigns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        // The sites' waves never change: keep them, and read the progress again next time.
        let mut waves = self.waves.write().unwrap_or_else(|e| e.into_inner());
        if let Some((at, _)) = waves.get_mut(id) {
            match Instant::now().checked_sub(CAMPAIGN_TTL) {
                Some(stale) => *at = stale,
                None => {
                    waves.remove(id);
                }
            }
        }
    }

    /// A campaign's waves, `None` for a campaign without them (its schedule has no `[waves]`,
    /// or it was never activated). The progress is read again once it is older than
    /// [`CAMPAIGN_TTL`] (by the first caller; the others keep the cached copy meanwhile).
    pub async fn waves(&self, record: &CampaignRecord) -> ApiResult<Option<KnownWaves>> {
        if self.schedule(record)?.waves().is_none() {
            return Ok(None);
        }
        let cached = {
            let mut map = self.waves.write().unwrap_or_else(|e| e.into_inner());
            map.get_mut(&record.id).map(|(at, w)| {
                let stale = at.elapsed() >= CAMPAIGN_TTL;
                if stale {
                    *at = Instant::now();
                }
                (stale, w.clone())
            })
        };
        let sites = match cached {
            Some((false, known)) => return Ok(Some(known)),
            Some((true, known)) => Some(known.sites),
            None => None,
        };
        let id = record.id.clone();
        let need_sites = sites.is_none();
        let (progress, read) = self
            .db(move |s| {
                let progress = s.wave_progress(&id)?;
                let sites = if need_sites && progress.is_some() {
                    s.wave_sites(&id)?
                } else {
                    Vec::new()
                };
                Ok((progress, sites))
            })
            .await?;
        let Some(progress) = progress else {
            return Ok(None);
        };
        let known = KnownWaves {
            progress: Arc::new(progress),
            sites: sites.unwrap_or_else(|| Arc::new(read.into_iter().collect())),
        };
        self.waves
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.id.clone(), (Instant::now(), known.clone()));
        Ok(Some(known))
    }

    /// Appends to the audit log (server time).
    pub async fn audit(
        &self,
        actor: impl Into<String>,
        action: &str,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> ApiResult<()> {
        let entry = AuditEntry {
            at: self.now(),
            actor: actor.into(),
            action: action.to_owned(),
            subject: subject.into(),
            detail: detail.into(),
        };
        self.db(move |s| s.audit(&entry)).await
    }
}
