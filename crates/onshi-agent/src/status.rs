//! `onshi-agent status`: the site's own answer to "インストールが完了したかどうか", read from
//! the state directory alone (it works with the server unreachable): per component, the
//! installed and running versions, whether a restart is required, the last contact, and what to
//! do now. What to do comes from `onshi_core::guidance::device_advice` — the same function the
//! site page, the institution API and the notices ask — fed with what the agent knows: the
//! install instant of its slot, the phase and next window the server told it at the last
//! check-in (whose server time stands for "now": the device's clock is never trusted), and the
//! site's automatic restart time.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::Time;
use onshi_core::deployment::DeploymentState;
use onshi_core::guidance::{self, DeviceFacts, Moment};
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Phase;
use onshi_core::vendor::DeviceKind;
use onshi_core::version::Version;
use serde::Serialize;

use crate::layout::{Component, Credential, LayoutError, StateDir};

/// The status of the whole site.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub institution: String,
    pub server: String,
    /// The daily automatic restart time, `HH:MM`, if set.
    pub auto_restart: Option<String>,
    pub components: Vec<ComponentStatus>,
    /// How to check that the update installed: the official site once the server named it,
    /// else that it will be announced, with this command beside it.
    pub completion_check: String,
}

/// One component's status.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    /// `terminal` or `card_reader`.
    pub component: &'static str,
    pub vendor: Option<&'static str>,
    pub serial: String,
    pub device_id: i64,
    pub installed: Version,
    pub running: Version,
    /// The installed version is newer than the running one: the terminal must restart (for a
    /// card reader: its installed component waits for the terminal's restart).
    pub restart_required: bool,
    /// For a card reader: whether it is powered on.
    pub powered: bool,
    pub last_contact: Option<Timestamp>,
    pub campaign: Option<String>,
    /// The version the campaign distributes.
    pub target: Option<Version>,
    pub server_state: Option<DeploymentState>,
    pub next_window: Option<Timestamp>,
    pub last_error: Option<String>,
    /// When this component's installed version finished installing (server time).
    pub installed_at: Option<Timestamp>,
    /// What to do: the slug of `onshi_core::guidance::Advice` (`restart_now`, `restart_after`,
    /// `auto_restart`, `keep_powered_on`, `call_centre`, `done`, `not_scheduled`, …), or what only
    /// the agent can see: `not_contacted` (never reached the server), `power_on_reader` (a
    /// reader switched off).
    pub advice: &'static str,
    /// The advice in the requested language.
    pub advice_text: String,
}

impl Status {
    /// Reads the status from the state directory.
    pub fn read(dir: &StateDir, lang: Lang) -> Result<Self, LayoutError> {
        let identity = dir.load_identity()?;
        let progress = {
            let _lock = dir.lock()?;
            dir.load_progress()?
        };
        let running_terminal = dir.running()?;
        let mut components = Vec::new();
        for component in dir.components(&identity) {
            let (cred, vendor): (&Credential, _) = match &component {
                Component::Terminal => (&identity.terminal, None),
                Component::Reader { vendor, serial } => (
                    identity
                        .readers
                        .iter()
                        .find(|r| &r.credential.serial == serial)
                        .map_or(&identity.terminal, |r| &r.credential),
                    Some(*vendor),
                ),
            };
            let installed = dir.installed(&component)?;
            let running = match component {
                Component::Terminal => running_terminal.clone(),
                Component::Reader { .. } => dir.reader_running(&component)?,
            };
            let powered = match component {
                Component::Terminal => true,
                Component::Reader { .. } => dir.reader_powered(&component),
            };
            let d = progress
                .devices
                .get(&cred.device_id)
                .cloned()
                .unwrap_or_default();
            let mut s = ComponentStatus {
                component: match component {
                    Component::Terminal => "terminal",
                    Component::Reader { .. } => "card_reader",
                },
                vendor: vendor.map(|v| v.slug()),
                serial: cred.serial.clone(),
                device_id: cred.device_id,
                restart_required: installed > running,
                installed,
                running,
                powered,
                last_contact: d.last_contact,
                campaign: d.campaign,
                target: d.target,
                server_state: d.server_state,
                next_window: d.next_window,
                last_error: d.last_error,
                installed_at: None,
                advice: "",
                advice_text: String::new(),
            };
            s.installed_at = dir
                .slot_info(&component, &s.installed)
                .and_then(|i| i.installed_at);
            let auto = identity
                .auto_restart
                .as_deref()
                .and_then(|t| Time::strptime("%H:%M", t).ok());
            (s.advice, s.advice_text) = advise(&s, d.phase, d.night_hours, auto, lang);
            components.push(s);
        }
        let check = progress
            .devices
            .values()
            .find_map(|d| d.completion_check.clone());
        Ok(Self {
            completion_check: guidance::completion_check_text(
                check.as_ref(),
                lang,
                guidance::CheckedFrom::Agent,
            ),
            institution: identity.institution,
            server: identity.server,
            auto_restart: identity.auto_restart,
            components,
        })
    }

    /// The status as lines for people.
    pub fn render(&self, lang: Lang) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {}",
            lang.pick("医療機関コード", "Institution code"),
            self.institution
        );
        for c in &self.components {
            let title = match (c.component, c.vendor) {
                ("terminal", _) => lang
                    .pick("資格確認端末", "Qualification terminal")
                    .to_owned(),
                (_, Some(v)) => {
                    let name = v
                        .parse::<onshi_core::vendor::Vendor>()
                        .map(|v| match lang {
                            Lang::Ja => v.name_ja(),
                            Lang::En => v.name_en(),
                        })
                        .unwrap_or(v);
                    format!(
                        "{} ({name})",
                        lang.pick(
                            "顔認証付きカードリーダー",
                            "Face-authentication card reader"
                        )
                    )
                }
                _ => c.component.to_owned(),
            };
            let _ = writeln!(
                out,
                "\n{title}  {} {}",
                lang.pick("シリアル", "serial"),
                c.serial
            );
            let yes_no = |b: bool| {
                if b {
                    lang.pick("必要", "yes")
                } else {
                    lang.pick("不要", "no")
                }
            };
            let rows: Vec<(&str, String)> = vec![
                (
                    lang.pick("インストール済み", "Installed"),
                    c.installed.to_string(),
                ),
                (lang.pick("実行中", "Running"), c.running.to_string()),
                (
                    lang.pick("再起動", "Restart required"),
                    if c.component == "terminal" {
                        yes_no(c.restart_required).to_owned()
                    } else {
                        // A reader is never restarted by staff, yet never "no restart needed":
                        // its terminal's restart applies it.
                        lang.pick(
                            "資格確認端末の再起動で適用",
                            "applied when the terminal restarts",
                        )
                        .to_owned()
                    },
                ),
                (
                    lang.pick("最終通信", "Last contact"),
                    c.last_contact.map_or_else(
                        || lang.pick("なし", "never").to_owned(),
                        |t| jst::format(t, lang),
                    ),
                ),
                (
                    lang.pick("配信中の版", "Distributed version"),
                    c.target
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                ),
                (lang.pick("対応", "What to do"), c.advice_text.clone()),
            ];
            for (k, v) in rows {
                let _ = writeln!(out, "  {}: {v}", k);
            }
            if !c.powered {
                let _ = writeln!(out, "  {}", lang.pick("電源: 切", "Power: off"));
            }
            if let Some(e) = &c.last_error {
                let _ = writeln!(out, "  {}: {e}", lang.pick("最後のエラー", "Last error"));
            }
        }
        let _ = writeln!(out, "\n{}", self.completion_check);
        out
    }
}

/// The component's advice: its state as the agent sees it (a terminal whose installed version
/// is newer than the running one is installed; one running the distributed version is
/// applied), asked of `onshi_core::guidance`.
fn advise(
    s: &ComponentStatus,
    phase: Option<Phase>,
    night_hours: Option<(Time, Time)>,
    auto_restart: Option<Time>,
    lang: Lang,
) -> (&'static str, String) {
    let kind = match s.component {
        "terminal" => DeviceKind::Terminal,
        _ => DeviceKind::CardReader,
    };
    let applied = s.target.as_ref().is_some_and(|t| &s.running >= t)
        || s.server_state == Some(DeploymentState::Applied);
    let state = if applied {
        Some(DeploymentState::Applied)
    } else if s.restart_required {
        Some(DeploymentState::Installed)
    } else {
        s.server_state
    };
    if !s.powered && !applied {
        let off = lang.pick(
            "顔認証付きカードリーダーの電源が切れています。電源を入れ、資格確認端末とともに配信時間帯は電源をオンにしたままにしてください。",
            "The card reader is switched off. Switch it on and keep it on with the terminal through the distribution window.",
        );
        return ("power_on_reader", off.to_owned());
    }
    let Some(now) = s.last_contact else {
        return (
            "not_contacted",
            lang.pick(
                "まだ配信サーバーと通信していません。ネットワーク接続を確認してください。",
                "The agent has not reached the distribution server yet. Check the network connection.",
            )
            .to_owned(),
        );
    };
    let Some(state) = state.filter(|_| s.campaign.is_some() || applied) else {
        let a = guidance::Advice::NotScheduled;
        return (a.slug(), a.text(lang));
    };
    let phase = phase.unwrap_or(if s.next_window.is_some() {
        Phase::Between
    } else {
        Phase::Night
    });
    let device = DeviceFacts {
        kind,
        state,
        installed_at: s
            .installed_at
            .filter(|_| state == DeploymentState::Installed),
    };
    let advice = guidance::device_advice(
        &device,
        &Moment::told(now, phase, s.next_window, night_hours),
        auto_restart,
    );
    (advice.slug(), advice.text(lang))
}
