//! The life of an update on one device, as an explicit state machine (the notice's
//! 【アプリケーションのアップデートの流れ】: download and install inside a window, then restart the
//! terminal). The server checks every reported transition against it; the agent and the simulator
//! drive their devices through it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::vendor::DeviceKind;
use crate::version::Version;

/// Where one device stands with one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Targeted, nothing received yet (配信待ち).
    Waiting,
    /// A download is in progress, or paused with a resumable partial file.
    Downloading,
    /// The package is on the device and verified (SHA-256 and signed manifest).
    Downloaded,
    /// Being installed into the staged slot.
    Installing,
    /// Installed. For a terminal: **restart required** — the running application is still the
    /// old one. A card reader stays here too until its terminal restarts: the notice's update
    /// applies on the terminal and on the card reader by the terminal's restart (DESIGN §3).
    Installed,
    /// The new version is the one running.
    Applied,
    /// Download verification or installation failed; the device keeps running its old version.
    Failed,
}

/// Something that happened on the device, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentEvent {
    /// A download started or resumed (a resumed download may report this again).
    DownloadStarted,
    /// The download stopped before completion (window closed, lease expired, connection lost);
    /// the partial file is kept for a ranged resume.
    DownloadPaused,
    /// The package is complete and verified.
    DownloadVerified,
    /// Installation into the staged slot started (again, after a crash mid-install).
    InstallStarted,
    /// The staged slot is complete and the pointer switched.
    InstallCompleted,
    /// A card reader switched to the new component: its terminal has restarted since the
    /// reader's install (a reader is never restarted by staff; its terminal's restart applies it).
    ReaderActivated,
    /// The device reports the version it is running (a terminal after a restart).
    Running(Version),
    /// Verification or installation failed.
    Failed,
    /// The operator or the agent retries after a failure.
    Retry,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {device} in state {from} cannot take {event}: {why}")]
pub struct TransitionError {
    pub device: DeviceKind,
    pub from: DeploymentState,
    pub event: String,
    pub why: &'static str,
}

impl DeploymentState {
    /// Every state, in the order of the update's life.
    pub const ALL: [Self; 7] = [
        Self::Waiting,
        Self::Downloading,
        Self::Downloaded,
        Self::Installing,
        Self::Installed,
        Self::Applied,
        Self::Failed,
    ];

    /// The state after `event`, for a device of `kind` being updated to `target`; illegal
    /// transitions are errors, never panics.
    pub fn apply(
        self,
        kind: DeviceKind,
        event: &DeploymentEvent,
        target: &Version,
    ) -> Result<Self, TransitionError> {
        use DeploymentEvent as E;
        use DeploymentState as S;
        let refuse = |why| TransitionError {
            device: kind,
            from: self,
            event: event.to_string(),
            why,
        };
        match (self, event) {
            (S::Waiting | S::Downloading, E::DownloadStarted) => Ok(S::Downloading),
            (S::Downloading, E::DownloadPaused) => Ok(S::Waiting),
            (S::Downloading, E::DownloadVerified) => Ok(S::Downloaded),
            (S::Downloaded | S::Installing, E::InstallStarted) => Ok(S::Installing),
            (S::Installing, E::InstallCompleted) => Ok(S::Installed),
            (S::Installed, E::ReaderActivated) => match kind {
                DeviceKind::CardReader => Ok(S::Applied),
                DeviceKind::Terminal => Err(refuse(
                    "a terminal applies the update only when it restarts",
                )),
            },
            (S::Installed | S::Applied, E::Running(running)) => {
                if running >= target {
                    Ok(S::Applied)
                } else if self == S::Applied {
                    Err(refuse("the device went back to an older version"))
                } else {
                    // Still running the old application: restart still required.
                    Ok(S::Installed)
                }
            }
            (S::Waiting | S::Downloading | S::Downloaded | S::Installing, E::Running(running)) => {
                if running >= target {
                    Err(refuse("the new version cannot run before it is installed"))
                } else {
                    Ok(self)
                }
            }
            (S::Downloading | S::Downloaded | S::Installing, E::Failed) => Ok(S::Failed),
            (S::Failed, E::Retry) => Ok(S::Waiting),
            (S::Applied, _) => Err(refuse("the update is already applied")),
            (S::Failed, _) => Err(refuse("a failed update must be retried first")),
            _ => Err(refuse("not a step of the update's life")),
        }
    }

    /// The machine name used in APIs, files and CSV.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Downloading => "downloading",
            Self::Downloaded => "downloaded",
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Applied => "applied",
            Self::Failed => "failed",
        }
    }

    /// Whether staff must restart this device for the update to take effect: a terminal with its
    /// update installed. Counts of "terminals needing a restart" use it. An installed card reader
    /// is not counted here but is not applied either: it waits for its terminal's restart
    /// ([`Self::awaits_terminal_restart`]).
    pub fn restart_required(self, kind: DeviceKind) -> bool {
        self == Self::Installed && kind.needs_restart_to_apply()
    }

    /// Whether the update is installed and waits for the terminal's restart to apply: a
    /// terminal that must restart, or a card reader whose terminal has not restarted since.
    pub fn awaits_terminal_restart(self) -> bool {
        self == Self::Installed
    }

    /// The state in plain Japanese for staff, per device kind.
    pub fn label_ja(self, kind: DeviceKind) -> &'static str {
        match (self, kind) {
            (Self::Waiting, _) => "配信待ち",
            (Self::Downloading, _) => "ダウンロード中",
            (Self::Downloaded, _) => "ダウンロード完了（インストール待ち）",
            (Self::Installing, _) => "インストール中",
            (Self::Installed, DeviceKind::Terminal) => "インストール完了（再起動が必要）",
            (Self::Installed, DeviceKind::CardReader) => {
                "インストール完了（資格確認端末の再起動で適用）"
            }
            (Self::Applied, _) => "適用済み",
            (Self::Failed, _) => "失敗",
        }
    }

    /// The state in plain English, per device kind.
    pub fn label_en(self, kind: DeviceKind) -> &'static str {
        match (self, kind) {
            (Self::Waiting, _) => "waiting",
            (Self::Downloading, _) => "downloading",
            (Self::Downloaded, _) => "downloaded (waiting to install)",
            (Self::Installing, _) => "installing",
            (Self::Installed, DeviceKind::Terminal) => "installed — restart required",
            (Self::Installed, DeviceKind::CardReader) => {
                "installed (applied when the terminal restarts)"
            }
            (Self::Applied, _) => "applied",
            (Self::Failed, _) => "failed",
        }
    }
}

/// Why a string is not a deployment state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown deployment state {0:?}: expected waiting, downloading, downloaded, installing, installed, applied or failed"
)]
pub struct UnknownState(pub String);

impl FromStr for DeploymentState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.slug() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// In words, for logs and the audit trail (the wire names live in `onshi-api`).
impl fmt::Display for DeploymentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DownloadStarted => f.write_str("download started"),
            Self::DownloadPaused => f.write_str("download paused"),
            Self::DownloadVerified => f.write_str("download verified"),
            Self::InstallStarted => f.write_str("install started"),
            Self::InstallCompleted => f.write_str("install completed"),
            Self::ReaderActivated => f.write_str("reader activated"),
            Self::Running(v) => write!(f, "running {v}"),
            Self::Failed => f.write_str("failed"),
            Self::Retry => f.write_str("retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentEvent as E;
    use DeploymentState as S;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("valid version")
    }

    fn run(kind: DeviceKind, events: &[E]) -> Result<S, TransitionError> {
        let target = v("2.0.0");
        events
            .iter()
            .try_fold(S::Waiting, |st, e| st.apply(kind, e, &target))
    }

    const TO_INSTALLED: [E; 4] = [
        E::DownloadStarted,
        E::DownloadVerified,
        E::InstallStarted,
        E::InstallCompleted,
    ];

    #[test]
    fn terminal_stays_restart_required_until_it_runs_the_new_version() {
        let st = run(DeviceKind::Terminal, &TO_INSTALLED).expect("legal");
        assert_eq!(st, S::Installed);
        assert!(st.restart_required(DeviceKind::Terminal));
        let target = v("2.0.0");
        let still = st
            .apply(DeviceKind::Terminal, &E::Running(v("1.9.0")), &target)
            .expect("legal");
        assert_eq!(still, S::Installed, "running the old version: not applied");
        let applied = still
            .apply(DeviceKind::Terminal, &E::Running(v("2.0.0")), &target)
            .expect("legal");
        assert_eq!(applied, S::Applied);
    }

    #[test]
    fn terminal_cannot_apply_without_a_restart() {
        let st = run(DeviceKind::Terminal, &TO_INSTALLED).expect("legal");
        let err = st
            .apply(DeviceKind::Terminal, &E::ReaderActivated, &v("2.0.0"))
            .expect_err("terminals need a restart");
        assert!(err.to_string().contains("restarts"));
    }

    #[test]
    fn card_reader_stays_installed_until_its_terminal_restarts() {
        let st = run(DeviceKind::CardReader, &TO_INSTALLED).expect("legal");
        assert_eq!(st, S::Installed, "installing does not apply a reader");
        assert!(
            !st.restart_required(DeviceKind::CardReader),
            "staff restart the terminal, not the reader"
        );
        assert!(st.awaits_terminal_restart());
        assert!(
            S::Installed
                .label_ja(DeviceKind::CardReader)
                .contains("資格確認端末の再起動で適用")
        );
        assert!(
            !S::Installed
                .label_ja(DeviceKind::CardReader)
                .contains("不要")
        );
        let target = v("2.0.0");
        let still = st
            .apply(DeviceKind::CardReader, &E::Running(v("1.0.0")), &target)
            .expect("legal");
        assert_eq!(still, S::Installed, "the old component still runs");
        let applied = still
            .apply(DeviceKind::CardReader, &E::ReaderActivated, &target)
            .expect("legal");
        assert_eq!(applied, S::Applied);
        assert!(!applied.awaits_terminal_restart());
    }

    #[test]
    fn interrupted_download_returns_to_waiting_and_resumes() {
        let st = run(
            DeviceKind::Terminal,
            &[E::DownloadStarted, E::DownloadPaused, E::DownloadStarted],
        )
        .expect("legal");
        assert_eq!(st, S::Downloading);
    }

    #[test]
    fn a_crash_mid_install_may_start_the_install_again() {
        let st = run(
            DeviceKind::Terminal,
            &[
                E::DownloadStarted,
                E::DownloadVerified,
                E::InstallStarted,
                E::InstallStarted,
            ],
        )
        .expect("legal");
        assert_eq!(st, S::Installing);
    }

    #[test]
    fn failed_update_must_be_retried_from_waiting() {
        let st = run(DeviceKind::Terminal, &[E::DownloadStarted, E::Failed]).expect("legal");
        assert_eq!(st, S::Failed);
        assert!(
            st.apply(DeviceKind::Terminal, &E::DownloadStarted, &v("2.0.0"))
                .is_err()
        );
        assert_eq!(
            st.apply(DeviceKind::Terminal, &E::Retry, &v("2.0.0")),
            Ok(S::Waiting)
        );
    }

    #[test]
    fn skipping_steps_is_refused() {
        assert!(run(DeviceKind::Terminal, &[E::InstallCompleted]).is_err());
        assert!(run(DeviceKind::Terminal, &[E::DownloadVerified]).is_err());
        assert!(
            run(
                DeviceKind::Terminal,
                &[E::DownloadStarted, E::InstallStarted]
            )
            .is_err()
        );
        assert!(
            run(DeviceKind::Terminal, &[E::Running(v("2.0.0"))]).is_err(),
            "cannot run what was never installed"
        );
    }

    #[test]
    fn applied_is_final_and_refuses_a_downgrade() {
        let mut events = TO_INSTALLED.to_vec();
        events.push(E::Running(v("2.0.0")));
        let st = run(DeviceKind::Terminal, &events).expect("legal");
        assert_eq!(st, S::Applied);
        let target = v("2.0.0");
        assert_eq!(
            st.apply(DeviceKind::Terminal, &E::Running(v("2.0.0")), &target),
            Ok(S::Applied)
        );
        assert!(
            st.apply(DeviceKind::Terminal, &E::Running(v("1.0.0")), &target)
                .is_err()
        );
        assert!(
            st.apply(DeviceKind::Terminal, &E::DownloadStarted, &target)
                .is_err()
        );
    }

    #[test]
    fn states_parse_from_their_slugs() {
        for st in S::ALL {
            assert_eq!(st.slug().parse(), Ok(st));
        }
        assert!("done".parse::<S>().is_err());
        assert_eq!(
            S::Installed.label_ja(DeviceKind::Terminal),
            "インストール完了（再起動が必要）"
        );
    }

    fn any_event() -> impl Strategy<Value = E> {
        prop_oneof![
            Just(E::DownloadStarted),
            Just(E::DownloadPaused),
            Just(E::DownloadVerified),
            Just(E::InstallStarted),
            Just(E::InstallCompleted),
            Just(E::ReaderActivated),
            (1u32..4).prop_map(|m| E::Running(v(&format!("{m}.0.0")))),
            Just(E::Failed),
            Just(E::Retry),
        ]
    }

    proptest! {
        #[test]
        fn a_terminal_is_applied_only_after_reporting_the_target_version(
            events in proptest::collection::vec(any_event(), 0..30)
        ) {
            let target = v("2.0.0");
            let mut st = S::Waiting;
            let mut ran_target_after_install = false;
            for e in &events {
                let Ok(next) = st.apply(DeviceKind::Terminal, e, &target) else { continue };
                if next == S::Applied && st != S::Applied {
                    prop_assert_eq!(st, S::Installed);
                    prop_assert!(matches!(e, E::Running(r) if *r >= target));
                    ran_target_after_install = true;
                }
                st = next;
            }
            prop_assert_eq!(st == S::Applied, ran_target_after_install);
        }
    }
}
