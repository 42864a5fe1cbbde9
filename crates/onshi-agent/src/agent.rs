//! The agent's loop: check in for each component when the server said to, and do what it says
//! (download, install, wait for the restart), reporting every step. The server decides windows
//! and slots; the agent decides nothing about time except the site's automatic restart, and for
//! that it uses the server's clock, so a device clock that is hours wrong changes nothing.
//!
//! Must never: install a package whose SHA-256 or manifest signature does not verify, install an
//! older version over a newer one, leave a half-installed slot active, or busy-loop.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Time;
use onshi_core::deployment::{DeploymentEvent, DeploymentState};
use onshi_core::offer::Action;
use onshi_core::release::Manifest;
use onshi_core::trust::{Expect, FetchedMeta};
use onshi_core::version::Version;
use rand::Rng;
use tracing::Instrument;

use onshi_api::device::{
    ArtifactInfo as Artifact, CampaignOffer as Offer, CheckinResponse as Checkin, ReportRequest,
    ReportResponse, SelfCheck,
};

use crate::client::{Client, ClientError};
use crate::delta;
use crate::download::{self, DownloadError, Fetched};
use crate::files;
use crate::layout::{
    Component, Credential, DeviceProgress, Identity, LayoutError, SlotInfo, StateDir,
};
use crate::os;
use crate::trust::{self, Trust, TrustFile, TrustFileError};

/// How often a running download checks in, to keep its slot and to stop when the window closes.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// The first wait after a network error; doubled per failure up to [`MAX_BACKOFF`].
pub const BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait after network errors: a server away for days is retried every ten minutes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// The longest a self-check of the applied version may take.
pub const SELF_CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a powered-off card reader is looked at again.
pub const READER_POWER_POLL: Duration = Duration::from_secs(300);

/// A failure of the agent that stops it (network errors never do; they are retried).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Trust(#[from] TrustFileError),
    #[error(transparent)]
    Restart(#[from] os::RestartError),
}

/// How simulated time maps to real waits. On a real terminal: speed 1, no cap.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Simulated seconds per real second (the server's `--clock-speed`).
    pub speed: f64,
    /// The longest real wait between check-ins (tests and demos wake often so that moving the
    /// server's clock is noticed at once).
    pub max_sleep: Duration,
}

impl Pace {
    pub const REAL: Self = Self {
        speed: 1.0,
        max_sleep: Duration::from_secs(24 * 3600),
    };

    /// The real wait for a simulated duration.
    pub fn real(&self, simulated: Duration) -> Duration {
        let speed = if self.speed.is_finite() && self.speed > 0.0 {
            self.speed
        } else {
            1.0
        };
        simulated.div_f64(speed).min(self.max_sleep)
    }
}

/// How the agent runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub pace: Pace,
    /// Download rate limit, bytes per second.
    pub max_rate: Option<u64>,
    /// Draw a progress bar on stderr while downloading (only when stderr is a terminal).
    pub progress_bar: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pace: Pace::REAL,
            max_rate: None,
            progress_bar: false,
        }
    }
}

/// The server's clock as the agent knows it: the last `server_time` plus the real time since,
/// scaled by the pace.
#[derive(Debug, Clone, Copy)]
struct ServerClock {
    seen: Option<(Timestamp, Instant)>,
    speed: f64,
}

impl ServerClock {
    fn observe(&mut self, at: Timestamp) {
        self.seen = Some((at, Instant::now()));
    }

    fn now(&self) -> Option<Timestamp> {
        let (at, when) = self.seen?;
        let elapsed = when.elapsed().mul_f64(self.speed.max(0.0));
        at.checked_add(elapsed).ok()
    }
}

/// One enrolled terminal with its card readers.
pub struct Agent {
    dir: StateDir,
    identity: Identity,
    client: Client,
    /// The newest root reached from the installer's, and the timestamp and snapshot trusted.
    trust: Trust,
    options: Options,
    clock: ServerClock,
    failures: BTreeMap<i64, u32>,
    /// Manifests verified in this run, by release id.
    manifests: BTreeMap<String, Manifest>,
}

/// What one step for one component ended with.
enum Next {
    /// Check in again after this simulated time.
    After(Duration),
    /// Check in again at once (the last step moved the device on).
    Now,
}

impl Agent {
    /// Opens an enrolled state directory; `client` talks to the server in `agent.json`.
    pub fn open(dir: StateDir, client: Client, options: Options) -> Result<Self, AgentError> {
        let identity = dir.load_identity()?;
        let trust = TrustFile::load(dir.root())?;
        dir.clean_leftovers(&identity)?;
        Ok(Self {
            dir,
            identity,
            client,
            trust,
            options,
            clock: ServerClock {
                seen: None,
                speed: options.pace.speed,
            },
            failures: BTreeMap::new(),
            manifests: BTreeMap::new(),
        })
    }

    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The terminal has just been switched on: its application starts with the installed
    /// version (a power cycle is a restart).
    pub fn boot(&self) -> Result<Version, AgentError> {
        let installed = self.dir.installed(&Component::Terminal)?;
        self.dir.set_running(&installed)?;
        tracing::info!(version = %installed, "terminal started");
        Ok(installed)
    }

    /// Runs until `stop` completes. Stopping at any point is safe: a download resumes, an
    /// install is redone or already complete.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<(), AgentError> {
        tokio::pin!(stop);
        let mut due: BTreeMap<Component, Instant> = self
            .dir
            .components(&self.identity)
            .into_iter()
            .map(|c| (c, Instant::now()))
            .collect();
        loop {
            let Some((component, at)) = due
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(c, at)| (c.clone(), *at))
            else {
                return Ok(());
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep_until(at.into()) => {}
            }
            let restarts = self.dir.running().ok();
            let next = tokio::select! {
                () = &mut stop => return Ok(()),
                next = self.step(&component) => next,
            };
            // The automatic restart applies the readers' installed components: look at them now.
            if component == Component::Terminal && self.dir.running().ok() != restarts {
                for reader in self.readers() {
                    due.insert(reader, Instant::now());
                }
            }
            // A fault of the device itself (a full disk, an unreadable file) must not stop the
            // service: the installed version keeps running and the step is tried again later.
            let next = next.unwrap_or_else(|e| {
                tracing::error!(error = %e, "step failed on this device; the installed version keeps running; retrying later");
                Next::After(MAX_BACKOFF)
            });
            let wait = match next {
                Next::Now => Duration::ZERO,
                Next::After(d) => self.options.pace.real(d),
            };
            due.insert(component, Instant::now() + wait);
        }
    }

    /// Restarts the terminal: runs the configured restart command, or restarts the emulated
    /// terminal application (which then runs the installed version), and tells the server.
    pub async fn restart(&mut self) -> Result<Version, AgentError> {
        let installed = self.restart_terminal().await?;
        // Tell the server now rather than at the next poll; the restart also applies the
        // readers' installed components.
        self.step(&Component::Terminal).await?;
        for reader in self.readers() {
            self.step(&reader).await?;
        }
        Ok(installed)
    }

    fn readers(&self) -> Vec<Component> {
        self.dir
            .components(&self.identity)
            .into_iter()
            .filter(|c| matches!(c, Component::Reader { .. }))
            .collect()
    }

    async fn restart_terminal(&self) -> Result<Version, AgentError> {
        let installed = self.dir.installed(&Component::Terminal)?;
        // A real OS restart ends this process (and `run --boot` follows); an emulation
        // command, or none, returns.
        os::restart_terminal(self.identity.restart_command.as_deref()).await?;
        self.dir.set_running(&installed)?;
        tracing::info!(version = %installed, "terminal restarted");
        Ok(installed)
    }

    /// One check-in and what follows, for every component once (used by `restart` and tests).
    pub async fn sync_once(&mut self) -> Result<(), AgentError> {
        for component in self.dir.components(&self.identity) {
            let mut rounds = 0;
            while let Next::Now = self.step(&component).await? {
                rounds += 1;
                if rounds > 8 {
                    break;
                }
            }
        }
        Ok(())
    }

    fn credential(&self, component: &Component) -> &Credential {
        match component {
            Component::Terminal => &self.identity.terminal,
            Component::Reader { serial, .. } => self
                .identity
                .readers
                .iter()
                .find(|r| &r.credential.serial == serial)
                .map_or(&self.identity.terminal, |r| &r.credential),
        }
    }

    /// The versions to check in with: a reader runs what it has installed once its terminal has
    /// restarted onto it (`StateDir::reader_running`).
    fn versions(&self, component: &Component) -> Result<(Version, Version), AgentError> {
        let installed = self.dir.installed(component)?;
        let running = match component {
            Component::Terminal => self.dir.running()?,
            Component::Reader { .. } => self.dir.reader_running(component)?,
        };
        Ok((installed, running))
    }

    async fn step(&mut self, component: &Component) -> Result<Next, AgentError> {
        let cred = self.credential(component).clone();
        let span = tracing::info_span!("device", id = cred.device_id, serial = %cred.serial);
        self.step_in_span(component, cred).instrument(span).await
    }

    async fn step_in_span(
        &mut self,
        component: &Component,
        cred: Credential,
    ) -> Result<Next, AgentError> {
        if matches!(component, Component::Reader { .. }) && !self.dir.reader_powered(component) {
            tracing::debug!("card reader is powered off; nothing to push");
            return Ok(Next::After(READER_POWER_POLL));
        }
        let (installed, running) = self.versions(component)?;
        let checkin = match self.client.checkin(&cred.token, &installed, &running).await {
            Ok(c) => c,
            Err(e) => return Ok(Next::After(self.network_failure(&cred, &e)?)),
        };
        self.failures.remove(&cred.device_id);
        self.clock.observe(checkin.server_time);
        if let Err(e) = self.remember(&cred, &checkin) {
            tracing::warn!(error = %e, "could not record the check-in in state.json");
        }
        let poll = match checkin.come_back_at {
            // An appointment in the queue for a download slot: kept, never asked earlier.
            Some(at) => onshi_core::appointment::agent_wait(
                at,
                checkin.server_time,
                rand::thread_rng().r#gen(),
            )
            .max(Duration::from_secs(1)),
            None => Duration::from_secs(checkin.poll_after_seconds.max(1)),
        };
        let Some(offer) = checkin.campaign.clone() else {
            return Ok(Next::After(poll));
        };
        match checkin.action {
            Action::Download => self.download(component, &cred, &offer, poll).await,
            Action::Install => self.install(component, &cred, &offer).await,
            Action::RestartRequired => self.await_restart(&cred, &offer, running, poll).await,
            Action::None | Action::RetryLater => {
                self.settle(component, &cred, &offer, &installed, &running)
                    .await?;
                Ok(Next::After(poll))
            }
        }
    }

    /// Steps that need no slot and no window: a download the server still thinks is running is
    /// paused; a reader with its component installed activates it once its terminal has
    /// restarted onto the new version (on a later start of the agent too).
    async fn settle(
        &mut self,
        component: &Component,
        cred: &Credential,
        offer: &Offer,
        installed: &Version,
        running: &Version,
    ) -> Result<(), AgentError> {
        match (offer.state, component) {
            (DeploymentState::Downloading, _) => {
                let bytes = self
                    .manifests
                    .get(&offer.release_id)
                    .and_then(|m| m.component(component.target()))
                    .map(|c| download::partial_len(&self.dir, c.sha256));
                self.send(cred, offer, DeploymentEvent::DownloadPaused, |r| {
                    r.with_bytes(bytes)
                })
                .await;
            }
            (DeploymentState::Installed, Component::Reader { .. })
                if installed >= &offer.version && running >= &offer.version =>
            {
                tracing::info!(version = %offer.version, "the terminal restarted; card reader activated the new component");
                self.send(cred, offer, DeploymentEvent::ReaderActivated, |r| r)
                    .await;
            }
            (DeploymentState::Installed, Component::Terminal) if running >= &offer.version => {
                let check = self.self_check(running).await;
                self.send(
                    cred,
                    offer,
                    DeploymentEvent::Running(running.clone()),
                    |r| r.with_self_check(check),
                )
                .await;
            }
            _ => {}
        }
        Ok(())
    }

    /// Installed, restart required: report the restart once it happened; restart at the site's
    /// automatic restart time if it set one; otherwise leave it to the staff.
    async fn await_restart(
        &mut self,
        cred: &Credential,
        offer: &Offer,
        running: Version,
        poll: Duration,
    ) -> Result<Next, AgentError> {
        if running >= offer.version {
            let check = self.self_check(&running).await;
            self.send(
                cred,
                offer,
                DeploymentEvent::Running(running.clone()),
                |r| r.with_self_check(check),
            )
            .await;
            return Ok(Next::After(poll));
        }
        let Some(at) = self.auto_restart() else {
            tracing::info!(version = %offer.version, "installed; restart required (no automatic restart set)");
            return Ok(Next::After(poll));
        };
        let installed = self.dir.installed(&Component::Terminal)?;
        let installed_at = self
            .dir
            .slot_info(&Component::Terminal, &installed)
            .and_then(|i| i.installed_at)
            .or_else(|| self.clock.now())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let due = onshi_core::auto_restart::next_restart(installed_at, at);
        let now = self.clock.now().unwrap_or(installed_at);
        if now >= due {
            tracing::info!(at = %due, "automatic restart time reached; restarting the terminal");
            let running = self.restart_terminal().await?;
            // A restart onto the new version is checked; one that came back without it is
            // reported as it is (the server's gates count it).
            let check = if running >= offer.version {
                self.self_check(&running).await
            } else {
                None
            };
            self.send(
                cred,
                offer,
                DeploymentEvent::Running(running.clone()),
                |r| r.with_self_check(check),
            )
            .await;
            return Ok(Next::After(poll));
        }
        let until = Duration::try_from(due.duration_since(now)).unwrap_or(poll);
        Ok(Next::After(until.min(poll)))
    }

    /// Runs the configured self-check of the version the terminal now runs; `None` when none
    /// is configured. A check that cannot start, fails or outlasts [`SELF_CHECK_TIMEOUT`] is a
    /// failed check.
    async fn self_check(&self, version: &Version) -> Option<SelfCheck> {
        let argv = self
            .identity
            .self_check_command
            .as_ref()
            .filter(|a| !a.is_empty())?;
        let run = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("ONSHI_VERSION", version.to_string())
            .kill_on_drop(true)
            .status();
        let verdict = match tokio::time::timeout(SELF_CHECK_TIMEOUT, run).await {
            Ok(Ok(status)) if status.success() => SelfCheck::Passed,
            Ok(Ok(status)) => {
                tracing::warn!(%version, %status, "the self-check of the new version failed");
                SelfCheck::Failed
            }
            Ok(Err(e)) => {
                tracing::warn!(%version, error = %e, "the self-check could not run");
                SelfCheck::Failed
            }
            Err(_) => {
                tracing::warn!(%version, "the self-check did not finish in time");
                SelfCheck::Failed
            }
        };
        Some(verdict)
    }

    fn auto_restart(&self) -> Option<Time> {
        self.identity
            .auto_restart
            .as_deref()
            .and_then(|s| Time::strptime("%H:%M", s).ok())
    }

    /// The offered release's manifest, trusted only through TUF's client workflow: the time
    /// fixed first (5.1: the server's time as this agent last heard it); newer roots (5.3);
    /// the timestamp (5.4: signed, fresh, not older than the trusted one); the snapshot it
    /// names by version, hash and length (5.5: signed, fresh, withdrawing no release the trusted
    /// one listed); the release's manifest by the hash and length the snapshot lists (5.6: a
    /// threshold of the targets keys, fresh, for this release, not older than what is
    /// installed). The package itself is checked against it before install (5.7).
    async fn trusted_manifest(
        &mut self,
        component: &Component,
        cred: &Credential,
        offer: &Offer,
    ) -> Result<Result<Manifest, String>, AgentError> {
        if let Some(m) = self.manifests.get(&offer.release_id) {
            // Verified for another component of this site: the rollback rule is per component.
            let installed = self.dir.installed(component)?;
            if m.version < installed {
                return Ok(Err(format!(
                    "metadata refused: manifest version {} is older than the installed {installed}: rollback refused",
                    m.version
                )));
            }
            return Ok(Ok(m.clone()));
        }
        let Some(now) = self.clock.now() else {
            return Ok(Err("no server time yet to check metadata expiry".into()));
        };
        let root = match trust::follow(&self.client, Some(&cred.token), self.trust.root()).await {
            Ok(root) => root,
            Err(trust::FollowError::Fetch(e)) => {
                return Ok(Err(format!("root metadata not available: {e}")));
            }
            Err(e) => {
                tracing::error!(error = %e, "new root refused; nothing will be installed");
                return Ok(Err(format!("metadata refused: {e}")));
            }
        };
        self.trust.update_root(root, self.dir.root())?;
        let timestamp = match self.client.timestamp(&cred.token).await {
            Ok(t) => t,
            Err(e) => return Ok(Err(format!("timestamp not available: {e}"))),
        };
        // The snapshot is fetched by the version the timestamp names; a timestamp that does not
        // verify is refused below before anything it says is used.
        let named = match self.trust.root().update_timestamp(
            &timestamp,
            self.trust.trusted().timestamp.as_ref(),
            now,
        ) {
            Ok(t) => t.snapshot.version,
            Err(e) => return Ok(Err(self.refused(&offer.release_id, &e))),
        };
        let snapshot = match self.client.snapshot(&cred.token, named).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(format!("snapshot not available: {e}"))),
        };
        let manifest = match self.client.manifest(&cred.token, &offer.release_id).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(format!("manifest not available: {e}"))),
        };
        let installed = self.dir.installed(component)?;
        let expect = Expect {
            release_id: &offer.release_id,
            installed: Some(&installed),
            now,
        };
        let fetched = FetchedMeta {
            timestamp: &timestamp,
            snapshot: &snapshot,
            manifest: &manifest,
        };
        match self
            .trust
            .root()
            .verify_release(&fetched, self.trust.trusted(), &expect)
        {
            Ok(v) => {
                self.trust
                    .accept(&timestamp, &snapshot, &v, self.dir.root())?;
                self.manifests
                    .insert(offer.release_id.clone(), v.manifest.clone());
                Ok(Ok(v.manifest))
            }
            Err(e) => Ok(Err(self.refused(&offer.release_id, &e))),
        }
    }

    fn refused(&self, release: &str, e: &onshi_core::trust::TrustError) -> String {
        tracing::error!(release, error = %e, "metadata refused; nothing will be installed from it");
        format!("metadata refused: {e}")
    }

    /// The trusted root's version (after any rotation followed).
    pub fn root_version(&self) -> u64 {
        self.trust.root().version()
    }

    async fn download(
        &mut self,
        component: &Component,
        cred: &Credential,
        offer: &Offer,
        poll: Duration,
    ) -> Result<Next, AgentError> {
        let Some(artifact) = offer.artifact.clone() else {
            return Ok(Next::After(poll));
        };
        let manifest = match self.trusted_manifest(component, cred, offer).await? {
            Ok(m) => m,
            Err(why) => return self.refuse(cred, offer, &why, poll).await,
        };
        let listed = manifest
            .component(component.target())
            .is_some_and(|c| c.sha256 == artifact.sha256 && c.size == artifact.size);
        if !listed || manifest.version != offer.version {
            let why = format!(
                "package {} is not the {} package of the signed manifest {}",
                artifact.sha256,
                component.target(),
                manifest.release_id
            );
            return self.refuse(cred, offer, &why, poll).await;
        }
        if offer.state == DeploymentState::Failed {
            self.send(cred, offer, DeploymentEvent::Retry, |r| r).await;
        }
        // A delta when one is offered and the installed package is its base; else the package,
        // with the reason a delta was passed over reported with the download's start.
        let (plan, fallback) = match self
            .delta_plan(component, &manifest, offer, &artifact)
            .await?
        {
            Ok(plan) => (Some(plan), None),
            Err(why) => (None, why),
        };
        let wanted = plan.as_ref().map_or_else(
            || artifact.clone(),
            |p| Artifact {
                sha256: p.delta.sha256,
                size: p.delta.size,
                url: p.url.clone(),
            },
        );
        let progress = download::Progress::default();
        let bar = self.progress_bar(wanted.size, &progress);
        // The download start is reported once the server has accepted the request (inside a
        // window, with a slot), not when the agent decides to ask: on a slow link, or a fast
        // simulated clock, the window can close in between, and the server's record must not
        // show a download starting that the server in fact refused.
        let (outcome, started) = {
            let fetch = download::fetch(
                &self.client,
                &cred.token,
                &self.dir,
                &wanted,
                &progress,
                self.options.max_rate,
            );
            let heartbeat = heartbeat(
                &self.client,
                &cred.token,
                self.versions(component)?,
                self.options.pace,
            );
            tokio::pin!(fetch, heartbeat);
            let mut started = false;
            let outcome = loop {
                tokio::select! {
                    r = &mut fetch => break Some(r),
                    () = progress.accepted(), if !started => {
                        started = true;
                        let have = Some(progress.resumed_from());
                        self.send(cred, offer, DeploymentEvent::DownloadStarted, |r| with_why(r.with_bytes(have), &fallback)).await;
                    }
                    answer = &mut heartbeat => {
                        if let Some(c) = answer {
                            self.clock.observe(c.server_time);
                            if let Err(e) = self.remember(cred, &c) {
                                tracing::warn!(error = %e, "could not record the check-in in state.json");
                            }
                        }
                        break None;
                    }
                }
            };
            (outcome, started)
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        // A package already complete on disk needs no request; a failure before any request is
        // still a download that failed. Either way the state machine wants a start first.
        let finished = matches!(outcome, Some(Ok(_) | Err(DownloadError::Io { .. })));
        if finished && !started {
            self.send(cred, offer, DeploymentEvent::DownloadStarted, |r| {
                with_why(r.with_bytes(Some(progress.resumed_from())), &fallback)
            })
            .await;
        }
        if let (Some(plan), Some(Ok(Fetched::Verified))) = (&plan, &outcome) {
            return self.patch(cred, offer, plan, &artifact).await;
        }
        if let (Some(plan), Some(Ok(Fetched::Mismatch { got }))) = (&plan, &outcome) {
            let why = format!(
                "delta refused: SHA-256 mismatch: expected {}, got {got}; the full package is downloaded instead",
                plan.delta.sha256
            );
            return self.refuse_delta(cred, offer, plan, why).await;
        }
        match outcome {
            None => {
                tracing::info!(
                    bytes = progress.bytes(),
                    "distribution stopped (window closed or slot lost); download paused"
                );
                if started {
                    self.send(cred, offer, DeploymentEvent::DownloadPaused, |r| {
                        r.with_bytes(Some(progress.bytes()))
                    })
                    .await;
                }
                Ok(Next::After(poll))
            }
            Some(Ok(Fetched::Verified)) => {
                tracing::info!(sha = %artifact.sha256, size = artifact.size, resumed_from = progress.resumed_from(), "package downloaded and verified");
                self.send(cred, offer, DeploymentEvent::DownloadVerified, |r| {
                    r.with_bytes(Some(artifact.size))
                })
                .await;
                Ok(Next::Now)
            }
            Some(Ok(fetched @ (Fetched::Mismatch { .. } | Fetched::Overlong))) => {
                let why = match fetched {
                    Fetched::Mismatch { got } => format!(
                        "SHA-256 mismatch: expected {}, got {got}; deleted, downloading again",
                        artifact.sha256
                    ),
                    _ => format!(
                        "the package is longer than its signed length of {} bytes; deleted, \
                         downloading again",
                        artifact.size
                    ),
                };
                tracing::warn!("{why}");
                self.send(cred, offer, DeploymentEvent::Failed, |r| {
                    r.with_bytes(Some(0)).with_detail(why.clone())
                })
                .await;
                Ok(Next::Now)
            }
            Some(Err(DownloadError::Io { path, source })) => {
                let why = format!(
                    "download failed: {}: {}",
                    path.display(),
                    files::explain(&source)
                );
                tracing::error!("{why}; the installed version keeps running");
                self.send(cred, offer, DeploymentEvent::Failed, |r| {
                    r.with_bytes(Some(progress.bytes()))
                        .with_detail(why.clone())
                })
                .await;
                Ok(Next::After(MAX_BACKOFF))
            }
            Some(Err(e)) => {
                if started {
                    tracing::warn!(error = %e, bytes = progress.bytes(), "download interrupted; it will resume");
                    self.send(cred, offer, DeploymentEvent::DownloadPaused, |r| {
                        r.with_bytes(Some(progress.bytes()))
                    })
                    .await;
                } else {
                    tracing::info!(error = %e, "download not started; checking in again");
                }
                let wait = match &e {
                    DownloadError::Client(c) if c.is_unreachable() => {
                        self.network_failure(cred, c)?
                    }
                    _ => poll,
                };
                Ok(Next::After(wait))
            }
        }
    }

    /// Whether to fetch the offered delta: it must be the signed manifest's delta for this
    /// component from the installed version, not refused before, and the installed package
    /// must be its base (hash and length). `Err` carries why not, when there was an offer.
    async fn delta_plan(
        &self,
        component: &Component,
        manifest: &Manifest,
        offer: &Offer,
        artifact: &Artifact,
    ) -> Result<Result<DeltaPlan, Option<String>>, AgentError> {
        let Some(offered) = &offer.delta else {
            return Ok(Err(None));
        };
        if self.dir.complete(artifact.sha256).is_file() {
            return Ok(Err(None));
        }
        let refused = self.dir.load_progress()?.deltas_refused;
        if refused.contains(&offered.sha256) {
            return Ok(Err(None));
        }
        let installed = self.dir.installed(component)?;
        let Some(delta) = manifest
            .delta_for(component.target(), &installed)
            .filter(|d| d.sha256 == offered.sha256 && d.size == offered.size)
            .cloned()
        else {
            return Ok(Err(Some(format!(
                "full package: delta {} is not the signed manifest's delta from the installed {installed}",
                offered.sha256
            ))));
        };
        let base = self.dir.slot_package(component, &installed);
        let slot_sha = self
            .dir
            .slot_info(component, &installed)
            .and_then(|i| i.sha256);
        let found = match slot_sha {
            Some(sha) if sha == delta.base_sha256 && base.is_file() => {
                let path = base.clone();
                tokio::task::spawn_blocking(move || delta::hash_file(&path))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            _ => None,
        };
        if found != Some((delta.base_sha256, delta.base_size)) {
            let what = match found {
                Some((sha, size)) => format!("is {sha} ({size} bytes)"),
                None => "is missing".to_owned(),
            };
            let why = format!(
                "full package: the installed {installed} package {what}, the delta's base is {} ({} bytes)",
                delta.base_sha256, delta.base_size
            );
            tracing::warn!("{why}");
            return Ok(Err(Some(why)));
        }
        Ok(Ok(DeltaPlan {
            delta,
            url: offered.url.clone(),
            base,
        }))
    }

    /// Rebuilds the package from a downloaded delta (bounded memory, off the async workers),
    /// verified against the signed package's hash and length before it takes the package's
    /// place; any failure refuses the delta, and the full package is fetched instead.
    async fn patch(
        &mut self,
        cred: &Credential,
        offer: &Offer,
        plan: &DeltaPlan,
        package: &Artifact,
    ) -> Result<Next, AgentError> {
        let (base, file) = (plan.base.clone(), self.dir.complete(plan.delta.sha256));
        let (out, complete) = (
            self.dir.patching(package.sha256),
            self.dir.complete(package.sha256),
        );
        let expect = delta::Expect {
            base_sha256: plan.delta.base_sha256,
            base_size: plan.delta.base_size,
            result_sha256: package.sha256,
            result_size: package.size,
        };
        let (delta_file, downloads) = (file.clone(), self.dir.downloads());
        let applied = tokio::task::spawn_blocking(move || -> Result<(), String> {
            delta::apply(&base, &delta_file, &out, &expect).map_err(|e| e.to_string())?;
            std::fs::rename(&out, &complete)
                .and_then(|()| files::sync_dir(&downloads))
                .map_err(|e| format!("{}: {}", complete.display(), files::explain(&e)))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = applied {
            let why = format!("delta refused: {e}; the full package is downloaded instead");
            return self.refuse_delta(cred, offer, plan, why).await;
        }
        let _ = std::fs::remove_file(&file);
        tracing::info!(sha = %package.sha256, size = package.size, delta = plan.delta.size, "package rebuilt from the delta and verified");
        self.send(cred, offer, DeploymentEvent::DownloadVerified, |r| {
            r.with_bytes(Some(package.size))
                .with_detail(format!("rebuilt from a delta of {} bytes", plan.delta.size))
        })
        .await;
        Ok(Next::Now)
    }

    /// A delta that did not rebuild the package: deleted, remembered (never tried again for
    /// this release) and reported as a failed download; the next attempt fetches the package.
    async fn refuse_delta(
        &mut self,
        cred: &Credential,
        offer: &Offer,
        plan: &DeltaPlan,
        why: String,
    ) -> Result<Next, AgentError> {
        tracing::warn!("{why}");
        let _ = std::fs::remove_file(self.dir.complete(plan.delta.sha256));
        {
            let _lock = self.dir.lock()?;
            let mut progress = self.dir.load_progress()?;
            if !progress.deltas_refused.contains(&plan.delta.sha256) {
                progress.deltas_refused.push(plan.delta.sha256);
            }
            self.dir.save_progress(&progress)?;
        }
        self.send(cred, offer, DeploymentEvent::Failed, |r| {
            r.with_bytes(Some(0)).with_detail(why.clone())
        })
        .await;
        Ok(Next::Now)
    }

    /// A manifest or package the agent will not install: reported once as failed.
    async fn refuse(
        &mut self,
        cred: &Credential,
        offer: &Offer,
        why: &str,
        poll: Duration,
    ) -> Result<Next, AgentError> {
        let key = format!("{}:{}", offer.release_id, why);
        {
            let _lock = self.dir.lock()?;
            if self.dir.load_progress()?.refused.contains(&key) {
                return Ok(Next::After(poll));
            }
        }
        // "failed" is a step of a download: a refusal before any byte is a download that failed.
        if offer.state == DeploymentState::Waiting {
            self.send(cred, offer, DeploymentEvent::DownloadStarted, |r| {
                r.with_bytes(Some(0))
            })
            .await;
        }
        if offer.state != DeploymentState::Failed {
            self.send(cred, offer, DeploymentEvent::Failed, |r| {
                r.with_detail(why.to_string())
            })
            .await;
        }
        // Recorded once reported: an agent stopped in between reports it again (a repeated
        // `failed` is refused by the state machine), never not at all.
        let _lock = self.dir.lock()?;
        let mut progress = self.dir.load_progress()?;
        progress.refused.push(key);
        self.dir.save_progress(&progress)?;
        Ok(Next::After(poll))
    }

    async fn install(
        &mut self,
        component: &Component,
        cred: &Credential,
        offer: &Offer,
    ) -> Result<Next, AgentError> {
        let manifest = match self.trusted_manifest(component, cred, offer).await? {
            Ok(m) => m,
            Err(why) => return self.refuse(cred, offer, &why, MAX_BACKOFF).await,
        };
        let Some(package) = manifest.component(component.target()).cloned() else {
            let why = format!("the signed manifest has no {} package", component.target());
            return self.refuse(cred, offer, &why, MAX_BACKOFF).await;
        };
        let already = self.dir.slot(component, &manifest.version).is_dir();
        let file = self.dir.complete(package.sha256);
        if !already && !file.is_file() {
            let why = "the verified package is missing on the device; downloading it again";
            tracing::warn!("{why}");
            self.send(cred, offer, DeploymentEvent::Failed, |r| {
                r.with_bytes(Some(0)).with_detail(why.to_string())
            })
            .await;
            return Ok(Next::Now);
        }
        self.send(cred, offer, DeploymentEvent::InstallStarted, |r| r)
            .await;
        let info = SlotInfo {
            version: manifest.version.clone(),
            sha256: Some(package.sha256),
            installed_at: self.clock.now(),
        };
        let installed = self
            .dir
            .write_slot(component, &info, Some(&file))
            .and_then(|_| self.dir.switch(component, &manifest.version));
        if let Err(e) = installed {
            let why = format!(
                "install failed: {}",
                e.io().map_or_else(|| e.to_string(), files::explain)
            );
            tracing::error!("{why}; the previous version stays installed and running");
            self.send(cred, offer, DeploymentEvent::Failed, |r| {
                r.with_detail(why.clone())
            })
            .await;
            return Ok(Next::After(MAX_BACKOFF));
        }
        self.forget_package(component, &manifest, &file)?;
        tracing::info!(version = %manifest.version, "installed into its slot; pointer switched");
        self.send(cred, offer, DeploymentEvent::InstallCompleted, |r| r)
            .await;
        if let Component::Reader { .. } = component {
            // A reader's component is applied by its terminal's restart (DESIGN §3): at once only
            // for a reader that catches up after its terminal already restarted onto this
            // version; otherwise it waits installed, and `settle` activates it after the restart.
            if self.dir.reader_running(component)? >= manifest.version {
                self.send(cred, offer, DeploymentEvent::ReaderActivated, |r| r)
                    .await;
                tracing::info!(version = %manifest.version, "card reader activated the new component");
            } else {
                tracing::info!(version = %manifest.version, "card reader installed; applied when the terminal restarts");
            }
        }
        Ok(Next::Now)
    }

    /// Deletes a downloaded package once no component of this site still needs it.
    fn forget_package(
        &self,
        installed: &Component,
        manifest: &Manifest,
        file: &Path,
    ) -> Result<(), AgentError> {
        let still_needed = self
            .dir
            .components(&self.identity)
            .into_iter()
            .filter(|c| c != installed && c.target() == installed.target())
            .any(|c| self.dir.installed(&c).is_ok_and(|v| v < manifest.version));
        if !still_needed {
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }

    /// Keeps what the server said, for `status` and for the next report's `seq`.
    fn remember(&self, cred: &Credential, checkin: &Checkin) -> Result<(), AgentError> {
        let _lock = self.dir.lock()?;
        let mut progress = self.dir.load_progress()?;
        let d: &mut DeviceProgress = progress.devices.entry(cred.device_id).or_default();
        d.last_contact = Some(checkin.server_time);
        d.action = Some(checkin.action);
        d.next_window = checkin.next_window;
        d.last_error = None;
        match &checkin.campaign {
            Some(offer) => {
                d.seq = d.seq.max(offer.seq);
                d.campaign = Some(offer.id.clone());
                d.server_state = Some(offer.state);
                d.target = Some(offer.version.clone());
                d.phase = Some(offer.phase);
                d.completion_check = offer.completion_check.clone();
                d.night_hours = offer.night_hours.map(|h| (h.opens, h.closes));
            }
            None => {
                d.campaign = None;
                d.server_state = None;
                d.target = None;
                d.phase = None;
                d.completion_check = None;
                d.night_hours = None;
            }
        }
        self.dir.save_progress(&progress)?;
        Ok(())
    }

    /// Sends a report with the next `seq`, retrying briefly if the server is not reached (a
    /// repeat of the same `seq` is harmless). A report that still fails is left to the next
    /// check-in, which starts again from the server's state.
    async fn send(
        &self,
        cred: &Credential,
        offer: &Offer,
        event: DeploymentEvent,
        with: impl FnOnce(ReportRequest) -> ReportRequest,
    ) -> Option<ReportResponse> {
        let seq = match self.next_seq(cred) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot record the report sequence; not reporting");
                return None;
            }
        };
        let report = with(ReportRequest::new(&offer.id, seq, &event));
        let event = report.event;
        for attempt in 0..3u32 {
            match self.client.report(&cred.token, &report).await {
                Ok(answer) => {
                    tracing::info!(event = ?event, seq, state = %answer.state, applied = answer.applied, "reported");
                    let _ = self.note_state(cred, answer.state);
                    return Some(answer);
                }
                Err(e) if e.is_unreachable() && attempt < 2 => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(event = ?event, seq, error = %e, "report not accepted; the next check-in resynchronises");
                    return None;
                }
            }
        }
        None
    }

    fn next_seq(&self, cred: &Credential) -> Result<i64, LayoutError> {
        let _lock = self.dir.lock()?;
        let mut progress = self.dir.load_progress()?;
        let d = progress.devices.entry(cred.device_id).or_default();
        d.seq += 1;
        let seq = d.seq;
        if let Err(e) = self.dir.save_progress(&progress) {
            // Still report (a full disk must not silence the agent): should this seq be used
            // again after a restart, the server answers it as stale and tells the agent its
            // last accepted seq at the next check-in.
            tracing::warn!(error = %e, seq, "could not record the report sequence");
        }
        Ok(seq)
    }

    fn note_state(&self, cred: &Credential, state: DeploymentState) -> Result<(), LayoutError> {
        let _lock = self.dir.lock()?;
        let mut progress = self.dir.load_progress()?;
        progress
            .devices
            .entry(cred.device_id)
            .or_default()
            .server_state = Some(state);
        self.dir.save_progress(&progress)
    }

    /// Records a failed exchange and answers how long to wait: exponential with jitter.
    fn network_failure(
        &mut self,
        cred: &Credential,
        e: &ClientError,
    ) -> Result<Duration, AgentError> {
        let n = self.failures.entry(cred.device_id).or_insert(0);
        *n = n.saturating_add(1);
        let base = BACKOFF
            .saturating_mul(1u32 << (*n - 1).min(10))
            .min(MAX_BACKOFF);
        let wait = base.mul_f64(0.5 + rand::thread_rng().r#gen::<f64>() * 0.5);
        tracing::warn!(error = %e, failures = *n, wait_s = wait.as_secs_f64(), "server not reached; the installed version keeps running");
        let _lock = self.dir.lock()?;
        let mut progress = self.dir.load_progress()?;
        progress
            .devices
            .entry(cred.device_id)
            .or_default()
            .last_error = Some(e.to_string());
        self.dir.save_progress(&progress)?;
        Ok(wait)
    }

    fn progress_bar(
        &self,
        size: u64,
        progress: &download::Progress,
    ) -> Option<indicatif::ProgressBar> {
        if !self.options.progress_bar {
            return None;
        }
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} 残り {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message("ダウンロード中");
        let (b, p) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            while !b.is_finished() {
                b.set_position(p.bytes());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Some(bar)
    }
}

/// Checks in every [`HEARTBEAT`] while a download runs; completes (stopping the download) when
/// the server no longer says "download" — the window closed, the campaign paused or the slot
/// was lost. Network errors during a download are left to the download itself.
async fn heartbeat(
    client: &Client,
    token: &str,
    (installed, running): (Version, Version),
    pace: Pace,
) -> Option<Checkin> {
    loop {
        tokio::time::sleep(pace.real(HEARTBEAT)).await;
        match client.checkin(token, &installed, &running).await {
            Ok(c) if c.action == Action::Download => continue,
            Ok(c) => return Some(c),
            Err(e) => tracing::debug!(error = %e, "heartbeat check-in failed"),
        }
    }
}

/// A delta the agent will fetch instead of the package, and the installed package it applies to.
struct DeltaPlan {
    delta: onshi_core::release::Delta,
    url: String,
    base: PathBuf,
}

/// A report with the reason a delta was passed over, if there was one.
fn with_why(r: ReportRequest, why: &Option<String>) -> ReportRequest {
    match why {
        Some(w) => r.with_detail(w.clone()),
        None => r,
    }
}
