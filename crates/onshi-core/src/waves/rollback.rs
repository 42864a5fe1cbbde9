//! 切り戻し — rolling a bad release back, the way TUF and Uptane do it: never by offering an
//! older version (every agent refuses to install a manifest older than what it has, and must),
//! but by a new release, signed offline like any other, whose version is higher than the bad
//! one and whose packages are the previous good release's (`onshi release sign
//! --from-release`). The operator's "roll back" on a campaign offers that release, in a campaign
//! of its own with the same windows, only to the devices of the open waves that got the bad
//! release, and closes the bad campaign for everyone else.
//!
//! The rules are here: which release may roll back which ([`check`]), which devices get it
//! ([`holds_release`], [`targets`]), and the rollback campaign's file ([`schedule_text`]). The
//! server applies them to the store; the CLI checks the same [`check_release`] when it signs.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::WaveProgress;
use crate::deployment::DeploymentState;
use crate::jst;
use crate::lang::Lang;
use crate::offer::CampaignStatus;
use crate::release::{Manifest, Target};
use crate::schedule::{Campaign, ScheduleError};
use crate::version::Version;

/// A campaign rolled back: which release replaced the bad one, in which campaign, for how many
/// devices, when. Kept in the bad campaign's [`WaveProgress`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolledBack {
    /// The release offered instead (higher version, the previous good packages).
    pub release_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: Version,
    /// The campaign that offers it (same windows, only the devices that got the bad release).
    pub campaign: String,
    /// How many devices it is offered to.
    pub devices: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}

impl RolledBack {
    /// One line for the dashboard, in Japan time with the weekday.
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::Ja => format!(
                "切り戻し済み（{}）: 配信を受け取った機器 {}台に、前の版と同じ内容のリリース {}（バージョン {}）を同じ配信時間帯で配信します（キャンペーン {}）。ほかの機器への配信は終了しました。",
                jst::format_ja(self.at),
                self.devices,
                self.release_id,
                self.version,
                self.campaign
            ),
            Lang::En => format!(
                "Rolled back ({}): release {} (version {}, the previous packages) is offered in the same windows to the {} devices that received this one (campaign {}). The campaign is closed for every other device.",
                jst::format_en(self.at),
                self.release_id,
                self.version,
                self.devices,
                self.campaign
            ),
        }
    }
}

/// Why a release cannot roll a campaign back. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error(
        "only an active or paused (held) campaign can be rolled back; this one is {}",
        .0.slug()
    )]
    NotRunning(CampaignStatus),
    #[error("this campaign has no waves: roll back is a decision on a campaign with waves")]
    NoWaves,
    #[error("this campaign was rolled back already, by campaign {0}")]
    AlreadyRolledBack(String),
    #[error(
        "release version {rollback} is not higher than the bad release's {bad}: agents refuse to install an older version, so sign the previous packages again under a higher version (onshi release sign --from-release)"
    )]
    NotHigher { bad: Version, rollback: Version },
    #[error(
        "the rollback release has no package for {0}, which the bad release has: its devices would keep the bad one"
    )]
    MissingTarget(Target),
    #[error(
        "the rollback release's package for {0} is the bad release's own: a rollback offers the previous good package"
    )]
    SameContent(Target),
    #[error("the rollback release is the campaign's own release")]
    SameRelease,
    #[error(
        "no device of the open waves has the bad release yet: nothing to roll back; close the campaign instead"
    )]
    NothingToRollBack,
    #[error("the rollback campaign's id {0:?} would be longer than 64 characters")]
    IdTooLong(String),
    #[error("the rollback campaign's file is not valid: {0}")]
    Schedule(#[from] ScheduleError),
}

/// Whether `rollback` can replace the bad release `bad` on its devices: a higher version (so
/// agents install it), a package for every target the bad release has, none of them the bad
/// package. What the server checks at the decision and `onshi release sign --rollback-of` when
/// it signs.
pub fn check_release(bad: &Manifest, rollback: &Manifest) -> Result<(), RollbackError> {
    if rollback.release_id == bad.release_id {
        return Err(RollbackError::SameRelease);
    }
    if rollback.version <= bad.version {
        return Err(RollbackError::NotHigher {
            bad: bad.version.clone(),
            rollback: rollback.version.clone(),
        });
    }
    for c in &bad.components {
        let Some(r) = rollback.component(c.target) else {
            return Err(RollbackError::MissingTarget(c.target));
        };
        if r.sha256 == c.sha256 {
            return Err(RollbackError::SameContent(c.target));
        }
    }
    Ok(())
}

/// Whether the operator may roll this campaign back now with `rollback`: a running campaign
/// (held, paused or active) with waves, not rolled back before, and a release that can replace
/// its own ([`check_release`]).
pub fn check(
    status: CampaignStatus,
    progress: Option<&WaveProgress>,
    bad: &Manifest,
    rollback: &Manifest,
) -> Result<(), RollbackError> {
    if !matches!(status, CampaignStatus::Active | CampaignStatus::Paused) {
        return Err(RollbackError::NotRunning(status));
    }
    let Some(progress) = progress else {
        return Err(RollbackError::NoWaves);
    };
    if let Some(done) = &progress.rolled_back {
        return Err(RollbackError::AlreadyRolledBack(done.campaign.clone()));
    }
    check_release(bad, rollback)
}

/// Whether a device in `state` got the bad release: its package is on the device (downloaded,
/// being installed, installed and waiting for the restart) or running. A download under way
/// stops when the campaign closes, and a failed one left the old version running.
pub fn holds_release(state: DeploymentState) -> bool {
    matches!(
        state,
        DeploymentState::Downloaded
            | DeploymentState::Installing
            | DeploymentState::Installed
            | DeploymentState::Applied
    )
}

/// The devices the rollback release is offered to: of `devices` (id, wave, state in the bad
/// campaign), those of an open wave that hold the bad release, in id order.
pub fn targets(progress: &WaveProgress, devices: &[(i64, u16, DeploymentState)]) -> Vec<i64> {
    let mut ids: Vec<i64> = devices
        .iter()
        .filter(|(_, wave, state)| progress.offers(*wave) && holds_release(*state))
        .map(|(id, _, _)| *id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The id of the campaign that rolls `campaign` back.
pub fn campaign_id(campaign: &str) -> Result<String, RollbackError> {
    let id = format!("{campaign}-rollback");
    if id.len() > 64 {
        return Err(RollbackError::IdTooLong(id));
    }
    Ok(id)
}

/// The rollback campaign's file, from the bad campaign's (`text`): the same windows, catch-up,
/// notices and checks under the id [`campaign_id`], the title marked 切り戻し, no waves (it goes
/// only to devices that already had the bad release) and `rollback_of` naming the bad campaign
/// (so no device enrolled later is added to it). Returns the text and the parsed campaign.
pub fn schedule_text(text: &str) -> Result<(String, Campaign), RollbackError> {
    let bad = Campaign::parse(text)?;
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| ScheduleError::Toml(e.to_string().trim().to_owned()))?;
    let id = campaign_id(bad.id())?;
    table.insert("id".to_owned(), toml::Value::String(id));
    table.insert(
        "title".to_owned(),
        toml::Value::String(format!("{}（切り戻し）", bad.title())),
    );
    table.remove("waves");
    table.insert(
        "rollback_of".to_owned(),
        toml::Value::String(bad.id().to_owned()),
    );
    let out = toml::to_string(&table)
        .map_err(|e| ScheduleError::Toml(e.to_string().trim().to_owned()))?;
    let campaign = Campaign::parse(&out)?;
    Ok((out, campaign))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Component, Sha256};
    use crate::schedule::PRESET_2026_01;
    use crate::trust::Role;
    use crate::vendor::Vendor;

    fn manifest(id: &str, version: &str, parts: &[(Target, &[u8])]) -> Manifest {
        Manifest {
            role: Role::Targets,
            release_id: id.to_owned(),
            version: Version::parse(version).expect("version"),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            expires: "2026-12-31T00:00:00Z".parse().expect("instant"),
            deltas: Vec::new(),
            components: parts
                .iter()
                .map(|(target, bytes)| Component {
                    target: *target,
                    sha256: Sha256::of(bytes),
                    size: bytes.len() as u64,
                })
                .collect(),
        }
    }

    const READER: Target = Target::CardReader(Vendor::Canon);

    fn bad() -> Manifest {
        manifest(
            "r2",
            "2.0.0",
            &[(Target::Terminal, b"bad"), (READER, b"bad reader")],
        )
    }

    fn progress() -> WaveProgress {
        WaveProgress::start("2026-01-19T03:00:00Z".parse().expect("instant"))
    }

    #[test]
    fn the_previous_packages_under_a_higher_version_roll_back() {
        let good = manifest(
            "r3",
            "2.0.1",
            &[(Target::Terminal, b"good"), (READER, b"good reader")],
        );
        assert_eq!(check_release(&bad(), &good), Ok(()));
        assert_eq!(
            check(CampaignStatus::Paused, Some(&progress()), &bad(), &good),
            Ok(())
        );
    }

    #[test]
    fn the_previous_release_itself_is_refused_since_agents_refuse_an_older_version() {
        let previous = manifest(
            "r1",
            "1.0.0",
            &[(Target::Terminal, b"good"), (READER, b"good reader")],
        );
        let e = check_release(&bad(), &previous).expect_err("older");
        assert!(matches!(e, RollbackError::NotHigher { .. }), "{e}");
        assert!(e.to_string().contains("--from-release"), "{e}");
        let same = manifest(
            "r3",
            "2.0.0",
            &[(Target::Terminal, b"good"), (READER, b"good reader")],
        );
        assert!(matches!(
            check_release(&bad(), &same),
            Err(RollbackError::NotHigher { .. })
        ));
    }

    #[test]
    fn a_rollback_covers_every_target_with_a_package_other_than_the_bad_one() {
        let no_reader = manifest("r3", "2.0.1", &[(Target::Terminal, b"good")]);
        assert_eq!(
            check_release(&bad(), &no_reader),
            Err(RollbackError::MissingTarget(READER))
        );
        let same_terminal = manifest(
            "r3",
            "2.0.1",
            &[(Target::Terminal, b"bad"), (READER, b"good reader")],
        );
        assert_eq!(
            check_release(&bad(), &same_terminal),
            Err(RollbackError::SameContent(Target::Terminal))
        );
        assert_eq!(
            check_release(&bad(), &bad()),
            Err(RollbackError::SameRelease)
        );
    }

    #[test]
    fn only_a_running_campaign_with_waves_not_rolled_back_before_can_be_rolled_back() {
        let good = manifest(
            "r3",
            "2.0.1",
            &[(Target::Terminal, b"good"), (READER, b"good reader")],
        );
        for status in [CampaignStatus::Draft, CampaignStatus::Closed] {
            assert_eq!(
                check(status, Some(&progress()), &bad(), &good),
                Err(RollbackError::NotRunning(status))
            );
        }
        assert_eq!(
            check(CampaignStatus::Active, None, &bad(), &good),
            Err(RollbackError::NoWaves)
        );
        let done = progress().rolled_back(RolledBack {
            release_id: "r3".to_owned(),
            version: good.version.clone(),
            campaign: "2026-01-rollback".to_owned(),
            devices: 3,
            at: "2026-01-20T00:00:00Z".parse().expect("instant"),
        });
        assert_eq!(
            check(CampaignStatus::Paused, Some(&done), &bad(), &good),
            Err(RollbackError::AlreadyRolledBack(
                "2026-01-rollback".to_owned()
            ))
        );
    }

    #[test]
    fn only_devices_of_open_waves_that_hold_the_bad_release_are_targeted() {
        use DeploymentState as S;
        let devices = [
            (1, 0, S::Applied),
            (2, 0, S::Installed),
            (3, 0, S::Downloaded),
            (4, 0, S::Installing),
            (5, 0, S::Waiting),
            (6, 0, S::Downloading),
            (7, 0, S::Failed),
            // A closed wave's device cannot hold it; were it so, it is still not offered.
            (8, 1, S::Applied),
        ];
        assert_eq!(targets(&progress(), &devices), vec![1, 2, 3, 4]);
    }

    #[test]
    fn the_rollback_campaign_has_the_same_windows_no_waves_and_names_the_bad_campaign() {
        let text = format!("{PRESET_2026_01}\n[waves]\nsizes = [\"1%\"]\n");
        let bad = Campaign::parse(&text).expect("bad campaign");
        let (out, rollback) = schedule_text(&text).expect("rollback file");
        assert_eq!(rollback.id(), "2026-01-rollback");
        assert_eq!(rollback.rollback_of(), Some("2026-01"));
        assert!(rollback.waves().is_none(), "{out}");
        assert!(rollback.title().ends_with("（切り戻し）"));
        for at in [
            "2026-01-19T20:00:00+09:00",
            "2026-01-25T21:00:00+09:00",
            "2026-01-26T04:59:00+09:00",
            "2026-01-31T12:00:00+09:00",
        ] {
            let at: Timestamp = at.parse().expect("instant");
            assert_eq!(rollback.status(at), bad.status(at), "{at}");
        }
        // A rollback campaign is never a wave plan of its own.
        let both = format!("{out}\n[waves]\nsizes = [1]\n");
        assert_eq!(
            Campaign::parse(&both).map(|_| ()),
            Err(ScheduleError::RollbackWithWaves)
        );
    }
}
