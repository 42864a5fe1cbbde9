//! What the server answers a device at check-in: the rules that gate the update to the
//! campaign's windows, hand out download slots, and spread the next polls so that 200,000 sites
//! do not all arrive at 20:00:00.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::deployment::DeploymentState;
use crate::schedule::Status;
use crate::vendor::DeviceKind;

/// What the device should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do; poll again later.
    None,
    /// Download (or resume) the package; a download slot is held for the device.
    Download,
    /// All download slots are taken; try again shortly.
    RetryLater,
    /// Install the downloaded package into the staged slot.
    Install,
    /// Installed; the terminal must restart for the update to take effect (再起動が必要).
    RestartRequired,
}

impl Action {
    /// Every answer, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::None,
        Self::Download,
        Self::RetryLater,
        Self::Install,
        Self::RestartRequired,
    ];

    /// The answer's word on the wire (what serde writes), for labels outside JSON.
    pub fn slug(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Download => "download",
            Self::RetryLater => "retry_later",
            Self::Install => "install",
            Self::RestartRequired => "restart_required",
        }
    }
}

/// Whether the campaign is running, as the operator set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Created, not yet started.
    Draft,
    /// Distributing inside its schedule.
    Active,
    /// Stopped by the operator for now; devices keep what they have.
    Paused,
    /// Finished; nothing more is offered.
    Closed,
}

impl CampaignStatus {
    /// `draft`, `active`, `paused`, `closed`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Closed => "closed",
        }
    }

    /// Parses a slug.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Active, Self::Paused, Self::Closed]
            .into_iter()
            .find(|c| c.slug() == s)
    }
}

/// What the operator can do to a campaign (the dashboard's buttons, the admin API's verbs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    /// Start a draft: its devices are targeted and distribution follows the schedule.
    Activate,
    /// Stop offering for now; devices keep what they have.
    Pause,
    /// Offer again after a pause.
    Resume,
    /// End the campaign for good, from any state but closed.
    Close,
    /// Open the next wave now (段階配信, [`crate::waves`]), whatever its gate says; the
    /// campaign's status does not change.
    Widen,
}

impl CampaignAction {
    /// Every action, in the order the dashboard shows them.
    pub const ALL: [Self; 5] = [
        Self::Activate,
        Self::Pause,
        Self::Resume,
        Self::Widen,
        Self::Close,
    ];

    /// `activate`, `pause`, `resume`, `widen`, `close`: the verb in the API's path.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Close => "close",
            Self::Widen => "widen",
        }
    }

    /// Parses a verb.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.slug() == s)
    }
}

impl std::fmt::Display for CampaignAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

/// An action the campaign's current status does not allow (e.g. resuming an active campaign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a {} campaign", from.slug())]
pub struct InvalidTransition {
    pub from: CampaignStatus,
    pub action: CampaignAction,
}

impl CampaignStatus {
    /// The campaign's life: draft → active ⇄ paused, and closed from any of them. Closed is
    /// final; widening (the next wave) leaves an active or paused campaign as it is; every
    /// other pair is refused.
    pub fn apply(self, action: CampaignAction) -> Result<Self, InvalidTransition> {
        use CampaignAction as A;
        use CampaignStatus as S;
        match (action, self) {
            (A::Activate, S::Draft) => Ok(S::Active),
            (A::Pause, S::Active) => Ok(S::Paused),
            (A::Resume, S::Paused) => Ok(S::Active),
            (A::Close, S::Draft | S::Active | S::Paused) => Ok(S::Closed),
            (A::Widen, S::Active | S::Paused) => Ok(self),
            (action, from) => Err(InvalidTransition { from, action }),
        }
    }
}

/// Why a device may not download its package now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDownload {
    /// The campaign is not active, or its schedule is not distributing now (outside the
    /// night windows and the catch-up period).
    Closed,
    /// The device has nothing to download: it already has the package, or installed it.
    NotNeeded,
    /// The device holds no download slot (the campaign's throttle).
    NoSlot,
}

/// Whether a device in `state` may download now, short of the download slot: the campaign is
/// active, its schedule is distributing, and the device still needs the package. The server
/// asks this before it tries to take a slot.
pub fn download_open(
    campaign: CampaignStatus,
    distributing: bool,
    state: DeploymentState,
) -> Result<(), NoDownload> {
    if campaign != CampaignStatus::Active || !distributing {
        Err(NoDownload::Closed)
    } else if !wants_download(state) {
        Err(NoDownload::NotNeeded)
    } else {
        Ok(())
    }
}

/// May this device download its package now? [`download_open`], and it holds a download slot.
/// The one rule behind the check-in's `download` and the artifact download itself.
pub fn may_download(
    campaign: CampaignStatus,
    distributing: bool,
    state: DeploymentState,
    slot_held: bool,
) -> Result<(), NoDownload> {
    download_open(campaign, distributing, state)?;
    if slot_held {
        Ok(())
    } else {
        Err(NoDownload::NoSlot)
    }
}

/// The longest a device is told to wait before its next check-in, so that a change the
/// operator makes (pause, resume) reaches every device within this time.
pub const MAX_POLL: Duration = Duration::from_secs(6 * 3600);

/// How widely first check-ins after a window opens are spread.
pub const OPENING_SPREAD: Duration = Duration::from_secs(30 * 60);

/// The inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    pub now: Timestamp,
    pub campaign: CampaignStatus,
    pub schedule: Status,
    pub device: DeviceKind,
    pub state: DeploymentState,
    /// Whether the device holds (or has just been given) a download slot.
    pub has_slot: bool,
    /// The campaign's base poll interval.
    pub poll_interval: Duration,
    /// A uniform random number in [0, 1) for jitter.
    pub jitter: f64,
}

/// The decision: what to do and when to poll next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub poll_after: Duration,
    /// When distribution opens next, if it is closed now.
    pub next_window: Option<Timestamp>,
}

/// Whether a device in `state` would need a download slot if the window is open: the server
/// asks this before trying to take a slot.
pub fn wants_download(state: DeploymentState) -> bool {
    matches!(
        state,
        DeploymentState::Waiting | DeploymentState::Downloading | DeploymentState::Failed
    )
}

/// Decides what a device is told at check-in.
pub fn decide(s: &Situation) -> Decision {
    let jittered = |base: Duration| base.mul_f64(0.8 + 0.4 * s.jitter.clamp(0.0, 1.0));
    let steady = jittered(s.poll_interval).min(MAX_POLL);
    let none = |poll_after| Decision {
        action: Action::None,
        poll_after,
        next_window: None,
    };
    match s.state {
        DeploymentState::Applied => return none(MAX_POLL),
        DeploymentState::Installed if s.device.needs_restart_to_apply() => {
            return Decision {
                action: Action::RestartRequired,
                poll_after: steady,
                next_window: None,
            };
        }
        _ => {}
    }
    if s.campaign != CampaignStatus::Active {
        return none(jittered(s.poll_interval.max(Duration::from_secs(1800))).min(MAX_POLL));
    }
    if !s.schedule.distributing {
        let next = s.schedule.next_opening;
        let poll_after = match next {
            Some(open) => {
                let wait = open.duration_since(s.now);
                let wait = Duration::try_from(wait.max(SignedDuration::ZERO)).unwrap_or(MAX_POLL);
                // Arrive spread over the first half hour of the window, never before it.
                (wait + OPENING_SPREAD.mul_f64(s.jitter.clamp(0.0, 1.0)))
                    .min(MAX_POLL)
                    .max(Duration::from_secs(1))
            }
            None => MAX_POLL,
        };
        return Decision {
            action: Action::None,
            poll_after,
            next_window: next,
        };
    }
    let action = match s.state {
        DeploymentState::Downloaded | DeploymentState::Installing => Action::Install,
        DeploymentState::Installed => Action::None, // a card reader waiting for its terminal's restart
        _ if may_download(s.campaign, s.schedule.distributing, s.state, s.has_slot).is_ok() => {
            Action::Download
        }
        _ => Action::RetryLater,
    };
    let poll_after = match action {
        // Retry soon, spread so that freed slots are taken evenly.
        Action::RetryLater => jittered(s.poll_interval.min(Duration::from_secs(120))),
        Action::Download | Action::Install => jittered(Duration::from_secs(30)),
        _ => steady,
    };
    Decision {
        action,
        poll_after,
        next_window: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_actions_slug_is_its_word_on_the_wire() {
        for a in super::Action::ALL {
            assert_eq!(
                serde_json::to_value(a).expect("serialises"),
                serde_json::json!(a.slug())
            );
        }
    }

    use super::*;
    use crate::schedule::Campaign;

    fn situation(at: &str, state: DeploymentState, has_slot: bool) -> Situation {
        let now: Timestamp = at.parse().expect("instant");
        let campaign = Campaign::preset("2026-01").expect("preset");
        Situation {
            now,
            campaign: CampaignStatus::Active,
            schedule: campaign.status(now),
            device: DeviceKind::Terminal,
            state,
            has_slot,
            poll_interval: Duration::from_secs(600),
            jitter: 0.5,
        }
    }

    #[test]
    fn nothing_is_offered_before_the_first_night_and_the_poll_waits_for_it() {
        let d = decide(&situation(
            "2026-01-19T19:00:00+09:00",
            DeploymentState::Waiting,
            true,
        ));
        assert_eq!(d.action, Action::None);
        assert_eq!(
            d.next_window,
            Some("2026-01-19T20:00:00+09:00".parse().expect("instant"))
        );
        assert!(d.poll_after >= Duration::from_secs(3600));
        assert!(d.poll_after <= Duration::from_secs(3600) + OPENING_SPREAD);
    }

    #[test]
    fn inside_a_night_a_device_with_a_slot_downloads_and_one_without_retries() {
        let d = decide(&situation(
            "2026-01-19T21:00:00+09:00",
            DeploymentState::Waiting,
            true,
        ));
        assert_eq!(d.action, Action::Download);
        let d = decide(&situation(
            "2026-01-19T21:00:00+09:00",
            DeploymentState::Waiting,
            false,
        ));
        assert_eq!(d.action, Action::RetryLater);
        assert!(d.poll_after <= Duration::from_secs(144));
    }

    #[test]
    fn an_installed_terminal_is_told_to_restart_even_outside_windows() {
        let d = decide(&situation(
            "2026-01-20T09:00:00+09:00",
            DeploymentState::Installed,
            false,
        ));
        assert_eq!(d.action, Action::RestartRequired);
    }

    #[test]
    fn a_downloaded_package_is_installed_only_inside_a_window() {
        let d = decide(&situation(
            "2026-01-20T04:00:00+09:00",
            DeploymentState::Downloaded,
            false,
        ));
        assert_eq!(d.action, Action::Install);
        let d = decide(&situation(
            "2026-01-20T06:00:00+09:00",
            DeploymentState::Downloaded,
            false,
        ));
        assert_eq!(d.action, Action::None);
    }

    #[test]
    fn a_paused_campaign_offers_nothing() {
        let mut s = situation("2026-01-19T21:00:00+09:00", DeploymentState::Waiting, true);
        s.campaign = CampaignStatus::Paused;
        assert_eq!(decide(&s).action, Action::None);
    }

    #[test]
    fn a_draft_is_activated_an_active_campaign_paused_and_a_paused_one_resumed() {
        use CampaignAction as A;
        use CampaignStatus as S;
        assert_eq!(S::Draft.apply(A::Activate), Ok(S::Active));
        assert_eq!(S::Active.apply(A::Pause), Ok(S::Paused));
        assert_eq!(S::Paused.apply(A::Resume), Ok(S::Active));
    }

    #[test]
    fn any_campaign_but_a_closed_one_can_be_closed() {
        use CampaignStatus as S;
        for from in [S::Draft, S::Active, S::Paused] {
            assert_eq!(from.apply(CampaignAction::Close), Ok(S::Closed), "{from:?}");
        }
    }

    #[test]
    fn every_other_transition_is_refused_and_says_why() {
        use CampaignAction as A;
        use CampaignStatus as S;
        let allowed = [
            (S::Draft, A::Activate),
            (S::Active, A::Pause),
            (S::Paused, A::Resume),
            (S::Draft, A::Close),
            (S::Active, A::Close),
            (S::Paused, A::Close),
            (S::Active, A::Widen),
            (S::Paused, A::Widen),
        ];
        for from in [S::Draft, S::Active, S::Paused, S::Closed] {
            for action in CampaignAction::ALL {
                if allowed.contains(&(from, action)) {
                    continue;
                }
                assert_eq!(
                    from.apply(action),
                    Err(InvalidTransition { from, action }),
                    "{action} from {from:?}"
                );
            }
        }
        let refused = S::Active.apply(A::Resume).expect_err("refused");
        assert_eq!(refused.to_string(), "cannot resume a active campaign");
        assert_eq!(
            S::Closed
                .apply(A::Activate)
                .expect_err("refused")
                .to_string(),
            "cannot activate a closed campaign"
        );
    }

    #[test]
    fn campaign_actions_are_named_by_their_verbs() {
        for a in CampaignAction::ALL {
            assert_eq!(CampaignAction::parse(a.slug()), Some(a));
        }
        assert_eq!(CampaignAction::parse("delete"), None);
    }

    #[test]
    fn a_device_downloads_only_in_an_active_distributing_campaign_with_a_slot() {
        use DeploymentState as D;
        let active = CampaignStatus::Active;
        for state in [D::Waiting, D::Downloading, D::Failed] {
            assert_eq!(may_download(active, true, state, true), Ok(()), "{state}");
            assert_eq!(
                may_download(active, true, state, false),
                Err(NoDownload::NoSlot),
                "{state}"
            );
        }
    }

    #[test]
    fn nothing_is_downloaded_outside_the_windows_or_unless_the_campaign_is_active() {
        use CampaignStatus as S;
        let waiting = DeploymentState::Waiting;
        assert_eq!(
            may_download(S::Active, false, waiting, true),
            Err(NoDownload::Closed)
        );
        for campaign in [S::Draft, S::Paused, S::Closed] {
            assert_eq!(
                may_download(campaign, true, waiting, true),
                Err(NoDownload::Closed),
                "{campaign:?}"
            );
        }
    }

    #[test]
    fn a_device_that_has_its_package_downloads_nothing_even_with_a_slot() {
        use DeploymentState as D;
        for state in [D::Downloaded, D::Installing, D::Installed, D::Applied] {
            assert_eq!(
                may_download(CampaignStatus::Active, true, state, true),
                Err(NoDownload::NotNeeded),
                "{state}"
            );
        }
    }

    #[test]
    fn the_slot_is_asked_for_only_when_the_download_is_otherwise_open() {
        use DeploymentState as D;
        assert_eq!(
            download_open(CampaignStatus::Active, true, D::Waiting),
            Ok(())
        );
        assert_eq!(
            download_open(CampaignStatus::Paused, true, D::Waiting),
            Err(NoDownload::Closed)
        );
        assert_eq!(
            download_open(CampaignStatus::Active, true, D::Installed),
            Err(NoDownload::NotNeeded)
        );
    }

    #[test]
    fn jitter_spreads_polls_between_80_and_120_percent() {
        let mut lo = situation(
            "2026-01-20T09:00:00+09:00",
            DeploymentState::Installed,
            false,
        );
        lo.jitter = 0.0;
        let mut hi = lo;
        hi.jitter = 0.999_999;
        assert_eq!(decide(&lo).poll_after, Duration::from_secs(480));
        assert!(decide(&hi).poll_after > Duration::from_secs(719));
        assert!(decide(&hi).poll_after <= Duration::from_secs(720));
    }
}
