//! What a site should do now (the notice's 【医療機関にて行っていただきたいこと】): keep the terminal
//! and card readers powered on through one night, restart the terminal the next morning after
//! 5:00 — or nothing when it restarts by itself before practice — and call the call centre when
//! something failed.
//!
//! One decision per device, [`device_advice`] (a site's is the most urgent of its devices',
//! [`site_advice`]), and its words, [`Advice::text`]: the site page's headline and rows, the
//! institution API, the e-mail notices, the online-billing screen and `onshi-agent status` all say
//! the same thing because they all ask here (`one_voice.rs` checks it).

use jiff::Timestamp;
use jiff::civil::{Time, time};
use serde::Serialize;

use crate::deployment::DeploymentState;
use crate::jst;
use crate::lang::Lang;
use crate::offer::CampaignStatus;
use crate::schedule::{Campaign, CompletionCheck, Phase};
use crate::vendor::DeviceKind;
use crate::{auto_restart, callcentre};

#[cfg(test)]
mod one_voice;
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
    /// catch-up phase, 終日配信). `auto_restart` is the site's daily automatic restart when it is
    /// known: then the update is applied by it and the text asks for no manual restart.
    KeepPoweredOn {
        opens: Option<Timestamp>,
        closes: Option<Timestamp>,
        #[serde(skip_serializing_if = "Option::is_none")]
        auto_restart: Option<Time>,
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

/// One device as the advice sees it: its kind, its state in the campaign and, once installed,
/// when the install completed (server time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts {
    pub kind: DeviceKind,
    pub state: DeploymentState,
    /// When the update finished installing; `None` when unknown (then taken as "before now").
    pub installed_at: Option<Timestamp>,
}

/// What the asker knows of the campaign at `now`: the server knows the whole [`Campaign`]
/// ([`Moment::of`]); a terminal's agent knows only what its last check-in said
/// ([`Moment::told`]). Both lead to the same advice through [`device_advice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub now: Timestamp,
    pub status: CampaignStatus,
    pub phase: Phase,
    /// When the running night window closes.
    pub closes_at: Option<Timestamp>,
    /// When distribution opens next, if it is closed now.
    pub next_opening: Option<Timestamp>,
    /// When the window opening at `next_opening` closes (`None`: it runs all day).
    pub next_closes: Option<Timestamp>,
    /// The nights' hours (opens, closes) in Japan time: the notice's 20:00 and 05:00.
    pub night_hours: (Time, Time),
}

/// The notice's night: 20時～翌日5時.
pub const NOTICE_NIGHT_HOURS: (Time, Time) = (time(20, 0, 0, 0), time(5, 0, 0, 0));

impl Moment {
    /// The moment as the server sees it, from the campaign's schedule.
    pub fn of(campaign: &Campaign, status: CampaignStatus, now: Timestamp) -> Self {
        let s = campaign.status(now);
        let next_closes = s.next_opening.and_then(|opens| {
            campaign
                .windows()
                .iter()
                .find(|w| w.opens == opens)
                .map(|w| w.closes)
        });
        Self {
            now,
            status,
            phase: s.phase,
            closes_at: s.closes_at,
            next_opening: s.next_opening,
            next_closes,
            night_hours: campaign.night_hours().unwrap_or(NOTICE_NIGHT_HOURS),
        }
    }

    /// The moment as a terminal's agent knows it from its last check-in at `now` (server
    /// time): the phase, the next window and the campaign's night hours the server told it
    /// (the notice's when it did not).
    pub fn told(
        now: Timestamp,
        phase: Phase,
        next_opening: Option<Timestamp>,
        night_hours: Option<(Time, Time)>,
    ) -> Self {
        let hours = night_hours.unwrap_or(NOTICE_NIGHT_HOURS);
        let next_closes = next_opening
            .filter(|t| jst::civil(*t).time() == hours.0)
            .map(|t| next_at(hours.1, t));
        Self {
            now,
            status: CampaignStatus::Active,
            phase,
            closes_at: (phase == Phase::Night).then(|| next_at(hours.1, now)),
            next_opening,
            next_closes,
            night_hours: hours,
        }
    }
}

/// What [`site_advice`] needs to know about a site.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// The site's devices in the campaign and their states (devices without an open
    /// deployment are left out).
    pub devices: &'a [DeviceFacts],
    /// The campaign those deployments belong to, and whether it runs; `None` when none does.
    pub campaign: Option<(&'a Campaign, CampaignStatus)>,
    /// The daily automatic restart time the site set, if any (Japan time).
    pub auto_restart: Option<Time>,
}

/// Decides what the site should do at `now`: the most urgent of its devices' advice
/// ([`device_advice`]). A failure comes first, then a terminal waiting for its restart
/// (patients meet an error until it restarts), then a device still waiting for the update.
pub fn site_advice(site: &Site<'_>, now: Timestamp) -> Advice {
    let Some((campaign, status)) = site.campaign else {
        return Advice::NotScheduled;
    };
    let moment = Moment::of(campaign, status, now);
    site_advice_at(site.devices, &moment, site.auto_restart)
}

/// [`site_advice`] for a moment already worked out.
pub fn site_advice_at(
    devices: &[DeviceFacts],
    moment: &Moment,
    auto_restart: Option<Time>,
) -> Advice {
    devices
        .iter()
        .map(|d| device_advice(d, moment, auto_restart))
        .max_by_key(Advice::urgency)
        .unwrap_or(Advice::NotScheduled)
}

/// What the site should do about one device at `moment.now` (the notice's
/// 【医療機関にて行っていただきたいこと】):
/// - installed: restart the terminal after the window's close (05:00) on the morning after the
///   install; once that morning has come, now; in the all-day catch-up phase, now. A card
///   reader's update is applied by the same terminal restart.
/// - with the site's automatic restart: it is applied then and nothing is needed — unless the
///   automatic restart time has passed, or the install came during practice in the catch-up
///   phase (patients would meet the error until tomorrow).
/// - failed: retried in the next window; call the call centre if it persists.
/// - otherwise: keep the devices powered on through the next window.
pub fn device_advice(device: &DeviceFacts, moment: &Moment, auto_restart: Option<Time>) -> Advice {
    use DeploymentState as S;
    match device.state {
        S::Applied => return Advice::Done,
        S::Failed => {
            return Advice::CallCentre {
                reason: CallReason::Failed,
            };
        }
        S::Installed => return restart_advice(device.installed_at, moment, auto_restart),
        S::Waiting | S::Downloading | S::Downloaded | S::Installing => {}
    }
    match moment.status {
        CampaignStatus::Active => {}
        CampaignStatus::Paused => return Advice::Paused,
        CampaignStatus::Draft | CampaignStatus::Closed => return Advice::NotScheduled,
    }
    match moment.phase {
        Phase::Night => Advice::KeepPoweredOn {
            opens: None,
            closes: moment.closes_at,
            auto_restart,
        },
        Phase::CatchUp => Advice::KeepPoweredOn {
            opens: None,
            closes: None,
            auto_restart,
        },
        Phase::Before | Phase::Between => match moment.next_opening {
            Some(opens) => Advice::KeepPoweredOn {
                opens: Some(opens),
                closes: moment.next_closes,
                auto_restart,
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

/// When to restart a terminal whose update is installed (see [`device_advice`]).
fn restart_advice(
    installed_at: Option<Timestamp>,
    moment: &Moment,
    auto_restart: Option<Time>,
) -> Advice {
    let now = moment.now;
    let installed = installed_at.unwrap_or(now);
    let (night_opens, _) = moment.night_hours;
    if let Some(auto) = auto_restart {
        let at = auto_restart::next_restart(installed, auto);
        let during_practice = in_practice(auto, night_opens, installed);
        if now < at && !(moment.phase == Phase::CatchUp && during_practice) {
            return Advice::AutoRestart { at };
        }
    }
    if moment.phase == Phase::CatchUp {
        return Advice::RestartNow;
    }
    match morning_after(installed, moment.night_hours) {
        Some(morning) if now < morning => Advice::RestartAfter { after: morning },
        _ => Advice::RestartNow,
    }
}

/// The notice's 翌日朝(5時以降) for an install at `installed`: the first close of the night
/// (05:00) after it, if the install happened in the night's hours; `None` otherwise (an install
/// in the daytime can be applied at once).
fn morning_after(installed: Timestamp, (opens, closes): (Time, Time)) -> Option<Timestamp> {
    let t = jst::civil(installed).time();
    let in_night = if closes <= opens {
        t >= opens || t < closes
    } else {
        opens <= t && t < closes
    };
    in_night.then(|| next_at(closes, installed))
}

/// Whether `t` falls in practice hours for a site that restarts automatically at `auto`
/// "before daily practice": from that time until the night window opens.
fn in_practice(auto: Time, night_opens: Time, at: Timestamp) -> bool {
    let t = jst::civil(at).time();
    if auto < night_opens {
        auto <= t && t < night_opens
    } else {
        t >= auto || t < night_opens
    }
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
    /// How urgent the advice is, for picking a site's advice from its devices': a failure,
    /// then a restart now, then a restart later, then keeping the power on.
    pub fn urgency(&self) -> u8 {
        match self {
            Self::Done => 0,
            Self::NotScheduled => 1,
            Self::Paused => 2,
            Self::AutoRestart { .. } => 3,
            Self::KeepPoweredOn { .. } => 4,
            Self::RestartAfter { .. } => 5,
            Self::RestartNow => 6,
            Self::CallCentre {
                reason: CallReason::NoWindowLeft,
            } => 7,
            Self::CallCentre {
                reason: CallReason::Failed,
            } => 8,
        }
    }

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
            Self::CallCentre {
                reason: CallReason::Failed,
            } => (
                "更新に失敗しました（自動で再試行されます。解消しない場合はコールセンターへ）",
                "The update failed (retried automatically; call the call centre if it persists)",
            ),
            Self::CallCentre {
                reason: CallReason::NoWindowLeft,
            } => (
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
                auto_restart,
            } => format!(
                "現在、配信中です（{}まで）。{POWER}{}",
                jst::format_ja(closes),
                restart_after_ja(closes, auto_restart)
            ),
            Self::KeepPoweredOn {
                opens: None,
                closes: None,
                auto_restart: None,
            } => format!(
                "現在、終日配信中です。{POWER}更新アプリケーションのインストール後、またはエラーが表示された場合には、資格確認端末を再起動してください。"
            ),
            Self::KeepPoweredOn {
                opens: None,
                closes: None,
                auto_restart: Some(auto),
            } => format!("現在、終日配信中です。{POWER}{}", all_day_auto_ja(auto)),
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: Some(closes),
                auto_restart,
            } => format!(
                "{}から{}までの間、{POWER}{}",
                jst::format_ja(opens),
                jst::format_ja(closes),
                restart_after_ja(closes, auto_restart)
            ),
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: None,
                auto_restart,
            } => format!(
                "{}から終日配信されます。その間、{POWER}{}",
                jst::format_ja(opens),
                auto_restart.map_or_else(|| AUTOMATIC.to_owned(), all_day_auto_ja)
            ),
            Self::Paused => {
                "更新アプリケーションの配信は一時停止しています。現在、対応は不要です。".to_owned()
            }
            Self::RestartNow => format!(
                "{INSTALLED}再起動しないまま患者さんがオンライン資格確認を行うと、資格確認端末でエラーが表示され、資格確認ができません。"
            ),
            Self::RestartAfter { after } => format!(
                "{INSTALLED}再起動は配信時間が終わる{}以降（翌朝）に行い、それまでは電源をオンにしたままにしてください。ただし、エラー（901）が表示された場合はすぐに再起動してください。",
                jst::format_ja(after)
            ),
            Self::AutoRestart { at } => format!(
                "更新アプリケーションのインストールが完了しています。資格確認端末は{}に自動で再起動され、そのとき更新が適用されます。手動での再起動は不要です。",
                jst::format_ja(at)
            ),
            Self::CallCentre { reason } => {
                let why = match reason {
                    CallReason::Failed => {
                        "更新アプリケーションのダウンロードまたはインストールに失敗しました。次の配信時間帯に自動で再試行されます。解消しない場合は、"
                    }
                    CallReason::NoWindowLeft => {
                        "配信期間が終了しましたが、更新が完了していません。"
                    }
                };
                format!(
                    "{why}{}（{} 通話無料）までご連絡ください。受付時間: {}。その間のマイナ保険証による資格確認は、医療機関等向け総合ポータルサイトの記事「{}」（KB0011769）に沿ってご対応ください。",
                    callcentre::NAME_JA,
                    callcentre::PHONE,
                    callcentre::HOURS_JA,
                    callcentre::FALLBACK_TITLE_JA,
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
                auto_restart,
            } => format!(
                "Distribution is running now (until {}): {POWER} {}",
                jst::format_en(closes),
                restart_after_en(closes, auto_restart)
            ),
            Self::KeepPoweredOn {
                opens: None,
                closes: None,
                auto_restart: None,
            } => format!(
                "Distribution runs all day now: {POWER} Once the update is installed, or when an error appears, restart the terminal."
            ),
            Self::KeepPoweredOn {
                opens: None,
                closes: None,
                auto_restart: Some(auto),
            } => format!(
                "Distribution runs all day now: {POWER} {}",
                all_day_auto_en(auto)
            ),
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: Some(closes),
                auto_restart,
            } => format!(
                "From {} to {}, {POWER} {}",
                jst::format_en(opens),
                jst::format_en(closes),
                restart_after_en(closes, auto_restart)
            ),
            Self::KeepPoweredOn {
                opens: Some(opens),
                closes: None,
                auto_restart,
            } => format!(
                "Distribution runs all day from {}: {POWER} {}",
                jst::format_en(opens),
                auto_restart.map_or_else(|| AUTOMATIC.to_owned(), all_day_auto_en)
            ),
            Self::Paused => {
                "Distribution of the update is paused. Nothing to do for now.".to_owned()
            }
            Self::RestartNow => format!(
                "{INSTALLED} Until it is restarted, a patient's online qualification confirmation ends in an error on the terminal and is not confirmed."
            ),
            Self::RestartAfter { after } => format!(
                "{INSTALLED} Restart it after distribution ends at {} (tomorrow morning) and keep it powered on until then. But if an error (901) appears, restart it at once.",
                jst::format_en(after)
            ),
            Self::AutoRestart { at } => format!(
                "The update is installed. The terminal restarts automatically at {}, which applies the update; no manual restart is needed.",
                jst::format_en(at)
            ),
            Self::CallCentre { reason } => {
                let why = match reason {
                    CallReason::Failed => {
                        "Downloading or installing the update failed. It is retried automatically in the next distribution window. If it persists, please"
                    }
                    CallReason::NoWindowLeft => {
                        "Distribution has ended but the update is not complete. Please"
                    }
                };
                format!(
                    "{why} call the online qualification confirmation call centre, {} (toll-free). Hours: {}. Meanwhile, confirm qualification as the portal article \"{}\" (KB0011769) describes.",
                    callcentre::PHONE,
                    callcentre::HOURS_EN,
                    callcentre::FALLBACK_TITLE_EN,
                )
            }
        }
    }
}

/// The notice's second step for a device still to receive the update in a window closing at
/// `closes`: 翌日朝(5時以降)に資格確認端末を再起動 — or, for a site whose automatic restart time
/// is known, that this restart applies it (the notice's 手動での再起動は不要). The parenthetical
/// about the setting stays only where the setting is unknown.
fn restart_after_ja(closes: Timestamp, auto_restart: Option<Time>) -> String {
    match auto_restart {
        Some(auto) => format!(
            "更新アプリケーションのダウンロードとインストールは自動で行われます。インストールの完了後、{}の自動再起動で更新が適用されますので、ほかに対応は不要です。",
            jst::format_ja(applied_at(closes, auto))
        ),
        None => format!(
            "更新アプリケーションのダウンロードとインストールは自動で行われます。インストールの完了後、{}以降（翌朝）に資格確認端末を再起動してください（日々の診療等の開始前に自動で再起動がされるよう設定している場合は手動での再起動は不要です）。",
            jst::format_ja(closes)
        ),
    }
}

fn restart_after_en(closes: Timestamp, auto_restart: Option<Time>) -> String {
    match auto_restart {
        Some(auto) => format!(
            "The update downloads and installs by itself. Once it is installed, the terminal's automatic restart at {} applies it; nothing else is needed.",
            jst::format_en(applied_at(closes, auto))
        ),
        None => format!(
            "The update downloads and installs by itself. Once it is installed, restart the terminal after {} (the next morning); not needed if the terminal is set to restart automatically before daily practice.",
            jst::format_en(closes)
        ),
    }
}

/// The automatic restart that applies an update installed in the window closing at `closes`:
/// the site's first restart after an install just before the close (never before 05:00).
fn applied_at(closes: Timestamp, auto: Time) -> Timestamp {
    let last_install = closes
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap_or(closes);
    auto_restart::next_restart(last_install, auto)
}

/// All-day distribution for a site whose automatic restart time is known: an install outside
/// practice is applied by that restart; one during practice shows the error until a restart.
fn all_day_auto_ja(auto: Time) -> String {
    format!(
        "更新アプリケーションのダウンロードとインストールは自動で行われ、インストールの完了後、毎日{:02}:{:02}の自動再起動で更新が適用されますので、ほかに対応は不要です。ただし、診療中にエラーが表示された場合は、すぐに資格確認端末を再起動してください。",
        auto.hour(),
        auto.minute()
    )
}

fn all_day_auto_en(auto: Time) -> String {
    format!(
        "The update downloads and installs by itself; once it is installed, the terminal's daily automatic restart at {:02}:{:02} applies it and nothing else is needed. If an error appears during practice, restart the terminal at once.",
        auto.hour(),
        auto.minute()
    )
}

/// Where the completion check is read, which decides how onshi's own check is pointed to: a
/// receptionist is never sent to a path or a shell command; the agent's output, which a vendor
/// reads on the terminal, names its own command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckedFrom {
    /// The site's own page `/site`, whose device table is above the text.
    SitePage,
    /// The public `/guidance`, which links to the site page.
    Guidance,
    /// A mail or the billing screen.
    Mail,
    /// `onshi-agent status` on the terminal.
    Agent,
}

impl CheckedFrom {
    fn own_check(self, lang: Lang) -> &'static str {
        match self {
            Self::SitePage => lang.pick(
                "上の「機器ごとの状況」でも確認できます。",
                "You can also check it under \"Your devices\" above.",
            ),
            Self::Guidance => lang.pick(
                "医療機関・薬局の方のページでも、機器ごとの状況を確認できます。",
                "You can also check each device on your site's page.",
            ),
            Self::Mail => lang.pick(
                "医療機関・薬局の方のページ（医療機関コードとアクセスキーでログイン）でも、機器ごとの状況を確認できます。",
                "You can also check each device on your site's page (log in with your institution code and access key).",
            ),
            Self::Agent => lang.pick(
                "医療機関・薬局の方のページの機器ごとの状況、または資格確認端末で「onshi-agent status」を実行しても確認できます。",
                "You can also check each device on your site's page, or run \"onshi-agent status\" on the terminal.",
            ),
        }
    }
}

/// How staff check that the update installed (the notice: 更新アプリケーションのインストールが
/// 完了したかどうかは、下記サイトの手順をご参照ください): the official site once the campaign
/// names it, else that its procedure will be announced; onshi's own check beside it either way,
/// pointed to as fits where it is read (`from`).
pub fn completion_check_text(
    check: Option<&CompletionCheck>,
    lang: Lang,
    from: CheckedFrom,
) -> String {
    let own = from.own_check(lang);
    match (check, lang) {
        (Some(c), Lang::Ja) => format!(
            "インストール完了の確認手順: {}（{}）。{own}",
            c.procedure, c.url
        ),
        (Some(c), Lang::En) => format!(
            "To check that the update installed: {} ({}). {own}",
            c.procedure, c.url
        ),
        (None, Lang::Ja) => {
            format!("インストール完了の確認手順は、公式サイトで別途案内されます。{own}")
        }
        (None, Lang::En) => format!(
            "The official procedure to check that the update installed will be announced separately. {own}"
        ),
    }
}

/// What staff do when a card reader shows error 901 on a terminal that was not restarted (the
/// notice's ② and 【不具合発生時等の対応について】), in order, before the call centre and the
/// fallback procedure (KB0011769) that every page adds with its links. The site page's card and
/// the reception emulator's guide both say these words.
pub fn on_error_901(lang: Lang) -> [&'static str; 3] {
    match lang {
        Lang::Ja => [
            "患者さんの資格確認は完了していません。",
            "資格確認端末を再起動してください。",
            "再起動後、患者さんにもう一度マイナ保険証をご利用いただくようご案内ください。",
        ],
        Lang::En => [
            "The patient's qualification has NOT been confirmed.",
            "Restart the qualification confirmation terminal.",
            "After the restart, ask the patient to use the card again.",
        ],
    }
}

/// The step after [`on_error_901`]'s: when the error persists, the call centre (its number and
/// hours follow).
pub fn if_error_persists(lang: Lang) -> &'static str {
    lang.pick(
        "それでもエラーが表示される場合は、",
        "If the error persists, call the ",
    )
}
