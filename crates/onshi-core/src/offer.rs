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
        DeploymentState::Installed => Action::None, // a card reader activating
        _ if s.has_slot => Action::Download,
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
