//! What a site should do now (the notice's 【医療機関にて行っていただきたいこと】): keep the terminal
//! and card readers powered on through one night, restart the terminal the next morning after
//! 5:00 — or nothing when it restarts by itself before practice — and call the call centre when
//! something failed.
//!
//! One decision, [`site_advice`], and its words, [`Advice::text`]: the site page, the e-mail
//! notices and the online-billing screen all say the same thing because they all ask here.

use jiff::Timestamp;
use jiff::civil::{Time, time};
use serde::Serialize;

use crate::callcentre;
use crate::deployment::DeploymentState;
use crate::jst;
use crate::lang::Lang;
use crate::offer::CampaignStatus;
use crate::schedule::{Campaign, Phase};
use crate::vendor::DeviceKind;

#[cfg(test)]
mod tests;

/// What the site's staff should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "advice", rename_all = "snake_case")]
pub enum Advice {
    /// Every device runs the new version: nothing to do.
    Done,
    /// No open campaign covers the site's devices (or none is enrolled).
    NotScheduled,
    /// Keep the terminal and the card readers powered on (電源をオンにした状態を維持). `opens`
    /// is `None` when distribution is running now; `closes` is `None` when it runs all day (the
    /// catch-up phase, 終日配信).
    KeepPoweredOn {
        opens: Option<Timestamp>,
        closes: Option<Timestamp>,
    },
    /// The operator paused distribution: nothing to do for now.
    Paused,
    /// The terminal's update is installed: restart it now, before the next patient.
    RestartNow,
    /// Installed during a night window: restart after it closes (翌朝5時以降), keeping the power
    /// on until then.
    RestartAfter { after: Timestamp },
    /// Installed, and the terminal restarts by itself at `at`, before practice starts: nothing
    /// to do (自動で再起動がされるよう設定している場合は手動での再起動は不要).
    AutoRestart { at: Timestamp },
    /// Call the オンライン資格確認等コールセンター.
    CallCentre { reason: CallReason },
}

/// Why a site should call the call centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallReason {
    /// A device reported that its download or installation failed.
    Failed,
    /// The update is not complete and the campaign has no distribution window left.
    NoWindowLeft,
}

/// What [`site_advice`] needs to know about a site.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// The site's devices in the campaign and their states (devices without an open
    /// deployment are left out).
    pub devices: &'a [(DeviceKind, DeploymentState)],
    /// The campaign those deployments belong to, and whether it runs; `None` when none does.
    pub campaign: Option<(&'a Campaign, CampaignStatus)>,
    /// The daily automatic restart time the site set, if any (Japan time).
    pub auto_restart: Option<Time>,
}

/// When the night window opens if a campaign file gives none: the notice's 20:00.
const DEFAULT_NIGHT_OPENS: Time = time(20, 0, 0, 0);

/// Decides what the site should do at `now`. The most urgent need wins: a failure, then a
/// terminal waiting for its restart (patients meet an error until it restarts), then a device
/// still waiting for the update.
pub fn site_advice(site: &Site<'_>, now: Timestamp) -> Advice {
    use DeploymentState as S;
    let Some((campaign, status)) = site.campaign else {
        return Advice::NotScheduled;
    };
    if site.devices.is_empty() {
        return Advice::NotScheduled;
    }
    if site.devices.iter().any(|(_, s)| *s == S::Failed) {
        return Advice::CallCentre {
            reason: CallReason::Failed,
        };
    }
    let schedule = campaign.status(now);
    let restart_pending = site
        .devices
        .iter()
        .any(|(kind, s)| s.restart_required(*kind));
    if restart_pending {
        let night_opens = campaign
            .night_hours()
            .map_or(DEFAULT_NIGHT_OPENS, |(opens, _)| opens);
        if let Some(auto) = site.auto_restart
            && auto_restart_comes_first(auto, night_opens, now)
        {
            return Advice::AutoRestart {
                at: next_at(auto, now),
            };
        }
        return match (schedule.phase, schedule.closes_at) {
            (Phase::Night, Some(closes)) => Advice::RestartAfter { after: closes },
            _ => Advice::RestartNow,
        };
    }
    let still_receiving = site
        .devices
        .iter()
        .any(|(_, s)| !matches!(s, S::Applied | S::Installed));
    let reader_activating = site
        .devices
        .iter()
        .any(|(kind, s)| *s == S::Installed && !kind.needs_restart_to_apply());
    if !still_receiving && !reader_activating {
        return Advice::Done;
    }
    if status == CampaignStatus::Paused {
        return Advice::Paused;
    }
    if status != CampaignStatus::Active {
        return Advice::NotScheduled;
    }
    match schedule.phase {
        Phase::Night => Advice::KeepPoweredOn {
            opens: None,
            closes: schedule.closes_at,
        },
        Phase::CatchUp => Advice::KeepPoweredOn {
            opens: None,
            closes: None,
        },
        Phase::Before | Phase::Between => match schedule.next_opening {
            Some(opens) => Advice::KeepPoweredOn {
                opens: Some(opens),
                closes: campaign
                    .windows()
                    .iter()
                    .find(|w| w.opens == opens)
                    .map(|w| w.closes),
            },
            None => Advice::CallCentre {
                reason: CallReason::NoWindowLeft,
            },
        },
        Phase::After => Advice::CallCentre {
            reason: CallReason::NoWindowLeft,
        },
    }
}

/// Whether a daily automatic restart at `auto` happens before anyone uses the terminal. A site
/// that restarts automatically "before daily practice" is taken to see patients from that time
/// until the night window opens; outside those hours the automatic restart comes first.
fn auto_restart_comes_first(auto: Time, night_opens: Time, now: Timestamp) -> bool {
    let t = jst::civil(now).time();
    let in_practice = if auto < night_opens {
        auto <= t && t < night_opens
    } else {
        t >= auto || t < night_opens
    };
    !in_practice
}

/// The next instant after `now` at which the Japan-time clock reads `at`.
fn next_at(at: Time, now: Timestamp) -> Timestamp {
    let today = jst::civil(now).date();
    [today, today.tomorrow().unwrap_or(today)]
        .into_iter()
        .filter_map(|d| jst::tz().to_timestamp(d.to_datetime(at)).ok())
        .find(|t| *t > now)
        .unwrap_or(now)
}

impl Advice {
    /// The machine name: `done`, `not_scheduled`, `keep_powered_on`, `paused`, `restart_now`,
    /// `restart_after`, `auto_restart`, `call_centre`.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::NotScheduled => "not_scheduled",
            Self::KeepPoweredOn { .. } => "keep_powered_on",
            Self::Paused => "paused",
            Self::RestartNow => "restart_now",
            Self::RestartAfter { .. } => "restart_after",
            Self::AutoRestart { .. } => "auto_restart",
            Self::CallCentre { .. } => "call_centre",
        }
    }

    /// Whether staff have something to do (a notice is worth sending).
    pub fn action_required(&self) -> bool {
        matches!(
            self,
            Self::KeepPoweredOn { .. }
                | Self::RestartNow
                | Self::RestartAfter { .. }
                | Self::CallCentre { .. }
        )
    }

    /// A short heading: 「資格確認端末を再起動してください」.
    pub fn headline(&self, lang: Lang) -> &'static str {
        let (ja, en) = match self {
            Self::Done => (
                "対応は不要です（更新は適用済みです）",
                "Nothing to do: the update is applied",
            ),
            Self::NotScheduled => (
                "現在、予定されている更新はありません",
                "No update is scheduled for your devices",
            ),
            Self::KeepPoweredOn { .. } => (
                "資格確認端末と顔認証付きカードリーダーの電源をオンにしたままにしてください",
                "Keep the terminal and the card readers powered on",
            ),
            Self::Paused => ("配信は一時停止しています", "Distribution is paused"),
            Self::RestartNow => (
                "資格確認端末を再起動してください",
                "Restart the qualification confirmation terminal",
            ),
            Self::RestartAfter { .. } => (
                "翌朝、資格確認端末を再起動してください",
                "Restart the terminal tomorrow morning",
            ),
            Self::AutoRestart { .. } => (
                "資格確認端末は自動で再起動されます（対応は不要です）",
                "The terminal restarts automatically: nothing to do",
            ),
            Self::CallCentre { .. } => (
                "オンライン資格確認等コールセンターへご連絡ください",
                "Please call the online qualification confirmation call centre",
            ),
        };
        lang.pick(ja, en)
    }

    /// The full advice in plain words, with the real dates and times in Japan time.
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::Ja => self.text_ja(),
            Lang::En => self.text_en(),
        }
    }

    fn text_ja(&self) -> String {
        const INSTALLED: &str = "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。";
        const AUTOMATIC: &str = "更新アプリケーションのダウンロードとインストールは自動で行われます。インストールの完了後、資格確認端末の再起動が必要です（日々の診療等の開始前に自動で再起動がされるよう設定している場合は手動での再起動は不要です）。";
        const POWER: &str =
            "資格確認端末と顔認証付きカードリーダーの電源をオンにしたままにしてください。";
        match *self {
            Self::Done => {
                "資格確認端末と顔認証付きカードリーダーの更新は適用済みです。対応は不要です。"
                    .to_owned()
            }
            Self::NotScheduled => {
                "現在、この医療機関・薬局の機器に予定されている更新はありません。".to_owned()
            }
            Self::KeepPoweredOn {
                opens: None,
                closes: Some(closes),
            } => format!(
                "現在、配信中です（{}まで）。{POWER}{AUTOMATIC}",
                jst::format_ja(closes)
            ),
            Self::KeepPoweredOn {
                opens: None,
                closes: None,
            } => {
                format!("現在、終日配信中です。{POWER}{AUTOMATIC}")
            }
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: Some(closes),
            } => format!(
                "{}から{}までの間、{POWER}{AUTOMATIC}",
                jst::format_ja(opens),
                jst::format_ja(closes)
            ),
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: None,
            } => format!(
                "{}から終日配信されます。その間、{POWER}{AUTOMATIC}",
                jst::format_ja(opens)
            ),
            Self::Paused => {
                "更新アプリケーションの配信は一時停止しています。現在、対応は不要です。".to_owned()
            }
            Self::RestartNow => format!(
                "{INSTALLED}再起動しないまま患者さんがオンライン資格確認を行うと、資格確認端末でエラーが表示され、資格確認ができません。"
            ),
            Self::RestartAfter { after } => format!(
                "{INSTALLED}再起動は配信時間が終わる{}以降（翌朝）に行い、それまでは電源をオンにしたままにしてください。",
                jst::format_ja(after)
            ),
            Self::AutoRestart { at } => format!(
                "更新アプリケーションのインストールが完了しています。資格確認端末は{}に自動で再起動されるよう設定されているため、手動での再起動は不要です。",
                jst::format_ja(at)
            ),
            Self::CallCentre { reason } => {
                let why = match reason {
                    CallReason::Failed => {
                        "更新アプリケーションのダウンロードまたはインストールに失敗しました。"
                    }
                    CallReason::NoWindowLeft => {
                        "配信期間が終了しましたが、更新が完了していません。"
                    }
                };
                format!(
                    "{why}{}（{} 通話無料）までご連絡ください。受付時間: {}",
                    callcentre::NAME_JA,
                    callcentre::PHONE,
                    callcentre::HOURS_JA
                )
            }
        }
    }

    fn text_en(&self) -> String {
        const INSTALLED: &str =
            "The update is installed. Restart the qualification confirmation terminal.";
        const AUTOMATIC: &str = "The update downloads and installs by itself. Once it is installed the terminal must be restarted (not needed if the terminal is set to restart automatically before daily practice).";
        const POWER: &str =
            "keep the terminal and the face-authentication card readers powered on.";
        match *self {
            Self::Done => {
                "The update is applied on the terminal and the card readers. Nothing to do."
                    .to_owned()
            }
            Self::NotScheduled => {
                "No update is scheduled for this site's devices at present.".to_owned()
            }
            Self::KeepPoweredOn {
                opens: None,
                closes: Some(closes),
            } => format!(
                "Distribution is running now (until {}): {POWER} {AUTOMATIC}",
                jst::format_en(closes)
            ),
            Self::KeepPoweredOn {
                opens: None,
                closes: None,
            } => {
                format!("Distribution runs all day now: {POWER} {AUTOMATIC}")
            }
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: Some(closes),
            } => format!(
                "From {} to {}, {POWER} {AUTOMATIC}",
                jst::format_en(opens),
                jst::format_en(closes)
            ),
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: None,
            } => format!(
                "Distribution runs all day from {}: {POWER} {AUTOMATIC}",
                jst::format_en(opens)
            ),
            Self::Paused => {
                "Distribution of the update is paused. Nothing to do for now.".to_owned()
            }
            Self::RestartNow => format!(
                "{INSTALLED} Until it is restarted, a patient's online qualification confirmation ends in an error on the terminal and is not confirmed."
            ),
            Self::RestartAfter { after } => format!(
                "{INSTALLED} Restart it after distribution ends at {} (tomorrow morning) and keep it powered on until then.",
                jst::format_en(after)
            ),
            Self::AutoRestart { at } => format!(
                "The update is installed. The terminal is set to restart automatically at {}, so no manual restart is needed.",
                jst::format_en(at)
            ),
            Self::CallCentre { reason } => {
                let why = match reason {
                    CallReason::Failed => "Downloading or installing the update failed.",
                    CallReason::NoWindowLeft => {
                        "Distribution has ended but the update is not complete."
                    }
                };
                format!(
                    "{why} Please call the online qualification confirmation call centre, {} (toll-free). Hours: {}",
                    callcentre::PHONE,
                    callcentre::HOURS_EN
                )
            }
        }
    }
}

/// One device's state in plain words for staff: 「更新アプリケーションのインストールが完了して
/// います。資格確認端末を再起動してください。」. `None`: the device is in no open campaign.
pub fn device_text(kind: DeviceKind, state: Option<DeploymentState>, lang: Lang) -> &'static str {
    use DeploymentState as S;
    let (ja, en) = match (state, kind) {
        (None, _) => (
            "予定されている更新はありません。",
            "No update is scheduled.",
        ),
        (Some(S::Waiting), _) => (
            "更新アプリケーションはまだ届いていません（配信待ち）。",
            "The update has not been received yet (waiting for distribution).",
        ),
        (Some(S::Downloading), _) => (
            "更新アプリケーションをダウンロードしています。",
            "The update is downloading.",
        ),
        (Some(S::Downloaded), _) => (
            "更新アプリケーションのダウンロードが完了し、インストールを待っています。",
            "The update is downloaded and waiting to install.",
        ),
        (Some(S::Installing), _) => (
            "更新アプリケーションをインストールしています。",
            "The update is installing.",
        ),
        (Some(S::Installed), DeviceKind::Terminal) => (
            "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。",
            "The update is installed. Restart the qualification confirmation terminal.",
        ),
        (Some(S::Installed), DeviceKind::CardReader) => (
            "更新アプリケーションのインストールが完了し、適用を待っています（再起動は不要です）。",
            "The update is installed and being activated (no restart needed).",
        ),
        (Some(S::Applied), _) => (
            "更新が適用されています。対応は不要です。",
            "The update is applied. Nothing to do.",
        ),
        (Some(S::Failed), _) => (
            "更新アプリケーションのダウンロードまたはインストールに失敗しました。",
            "Downloading or installing the update failed.",
        ),
    };
    lang.pick(ja, en)
}
