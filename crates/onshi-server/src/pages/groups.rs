//! The five groups the operator's pages count devices in: the seven deployment states, with
//! the short-lived ones folded into "in progress". The dashboard's tables and its chart share
//! them.

use onshi_core::deployment::DeploymentState;
use onshi_core::lang::Lang;

use crate::history::Sample;
use crate::services::progress::Counts;

/// The five groups the dashboard shows (the seven states, with the short-lived ones folded
/// into "in progress").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Waiting,
    InProgress,
    RestartRequired,
    Applied,
    Failed,
}

impl Group {
    /// Stacking order of the chart, bottom up.
    pub const CHART: [Group; 5] = [
        Group::Applied,
        Group::RestartRequired,
        Group::InProgress,
        Group::Waiting,
        Group::Failed,
    ];

    fn count(self, get: impl Fn(DeploymentState) -> u64, restart_required: u64) -> u64 {
        use DeploymentState as S;
        match self {
            Group::Waiting => get(S::Waiting),
            // Card readers in `installed` wait for their terminal's restart: not applied, and
            // not terminals to restart (`restart_required` counts terminals only); still in
            // progress.
            Group::InProgress => {
                get(S::Downloading)
                    + get(S::Downloaded)
                    + get(S::Installing)
                    + get(S::Installed).saturating_sub(restart_required)
            }
            Group::RestartRequired => restart_required,
            Group::Applied => get(S::Applied),
            Group::Failed => get(S::Failed),
        }
    }

    pub fn of_counts(self, c: &Counts) -> u64 {
        self.count(|s| c.get(s), c.restart_required)
    }

    pub fn of_sample(self, s: &Sample) -> u64 {
        self.count(|st| s.get(st), s.restart_required)
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Group::Waiting => lang.pick("配信待ち", "waiting"),
            Group::InProgress => {
                lang.pick("ダウンロード・インストール中", "downloading / installing")
            }
            Group::RestartRequired => lang.pick(
                "インストール完了（再起動が必要）",
                "installed — restart required",
            ),
            Group::Applied => lang.pick("適用済み", "applied"),
            Group::Failed => lang.pick("失敗", "failed"),
        }
    }

    pub fn colour(self) -> &'static str {
        match self {
            Group::Waiting => "#9aa5b1",
            Group::InProgress => "#0b5cab",
            Group::RestartRequired => "#d97706",
            Group::Applied => "#1e7a34",
            Group::Failed => "#b3261e",
        }
    }
}
