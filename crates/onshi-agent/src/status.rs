//! `onshi-agent status`: the site's own answer to "インストールが完了したかどうか", read from
//! the state directory alone (it works with the server unreachable): per component, the
//! installed and running versions, whether a restart is required, the last contact, and what to
//! do now.

use std::fmt::Write as _;

use jiff::Timestamp;
use onshi_core::callcentre;
use onshi_core::deployment::DeploymentState;
use onshi_core::jst;
use onshi_core::lang::Lang;
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
    /// The installed version is newer than the running one: the terminal must restart.
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
    pub advice: Advice,
    /// The advice in the requested language.
    pub advice_text: String,
}

/// What the site should do about one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// The update is applied; nothing to do.
    Done,
    /// Installed; restart the terminal.
    Restart,
    /// Installed; the site's automatic restart will apply it.
    RestartAutomatically,
    /// Keep the terminal and readers on through the next night window.
    KeepPowerOn,
    /// Receiving or installing now; do not switch off.
    Receiving,
    /// The card reader is off; switch it on.
    PowerOnReader,
    /// The update failed; it is retried, the call centre helps if it persists.
    Failed,
    /// The agent has not reached the server yet.
    NotContacted,
    /// No update is planned.
    NoUpdate,
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
                Component::Reader { .. } => installed.clone(),
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
                advice: Advice::NoUpdate,
                advice_text: String::new(),
            };
            s.advice = advise(&s, identity.auto_restart.is_some());
            s.advice_text = advice_text(s.advice, &s, identity.auto_restart.as_deref(), lang);
            components.push(s);
        }
        Ok(Self {
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
                    yes_no(c.restart_required).to_owned(),
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
        out
    }
}

fn advise(s: &ComponentStatus, auto_restart: bool) -> Advice {
    let applied = s.target.as_ref().is_some_and(|t| &s.running >= t)
        || s.server_state == Some(DeploymentState::Applied);
    if applied {
        return Advice::Done;
    }
    if s.restart_required {
        return if auto_restart {
            Advice::RestartAutomatically
        } else {
            Advice::Restart
        };
    }
    if !s.powered {
        return Advice::PowerOnReader;
    }
    if s.server_state == Some(DeploymentState::Failed) {
        return Advice::Failed;
    }
    if s.last_contact.is_none() {
        return Advice::NotContacted;
    }
    if s.campaign.is_none() {
        return Advice::NoUpdate;
    }
    if s.next_window.is_some() {
        Advice::KeepPowerOn
    } else {
        Advice::Receiving
    }
}

fn advice_text(
    advice: Advice,
    s: &ComponentStatus,
    auto_restart: Option<&str>,
    lang: Lang,
) -> String {
    match (advice, lang) {
        (Advice::Done, Lang::Ja) => "更新は適用済みです。対応は不要です。".into(),
        (Advice::Done, Lang::En) => "The update is applied. Nothing to do.".into(),
        (Advice::Restart, Lang::Ja) => {
            "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。".into()
        }
        (Advice::Restart, Lang::En) => {
            "The update is installed. Restart the qualification terminal.".into()
        }
        (Advice::RestartAutomatically, Lang::Ja) => format!(
            "更新アプリケーションのインストールが完了しています。設定された自動再起動(毎日{})で適用されます(5:00以降)。",
            auto_restart.unwrap_or("-")
        ),
        (Advice::RestartAutomatically, Lang::En) => format!(
            "The update is installed. The terminal's automatic restart (daily at {}, after 05:00) applies it.",
            auto_restart.unwrap_or("-")
        ),
        (Advice::KeepPowerOn, Lang::Ja) => format!(
            "次の配信は{}からです。20:00から翌5:00まで、資格確認端末とカードリーダーの電源を入れたままにしてください。",
            s.next_window.map_or_else(String::new, jst::format_ja)
        ),
        (Advice::KeepPowerOn, Lang::En) => format!(
            "Distribution opens next at {}. Keep the terminal and card readers switched on from 20:00 to 05:00.",
            s.next_window.map_or_else(String::new, jst::format_en)
        ),
        (Advice::Receiving, Lang::Ja) => {
            "更新を受信・インストールしています。資格確認端末とカードリーダーの電源を切らないでください。".into()
        }
        (Advice::Receiving, Lang::En) => {
            "The update is being received and installed. Keep the terminal and card readers switched on.".into()
        }
        (Advice::PowerOnReader, Lang::Ja) => {
            "カードリーダーの電源が切れています。電源を入れ、20:00から翌5:00までは入れたままにしてください。".into()
        }
        (Advice::PowerOnReader, Lang::En) => {
            "The card reader is switched off. Switch it on and leave it on from 20:00 to 05:00.".into()
        }
        (Advice::Failed, Lang::Ja) => format!(
            "更新に失敗しました。次の配信時間帯に自動で再試行します。解消しない場合は{}({})にお問い合わせください。",
            callcentre::NAME_JA,
            callcentre::PHONE
        ),
        (Advice::Failed, Lang::En) => format!(
            "The update failed. It is retried in the next window; if it persists, call the Online Qualification Confirmation call centre ({}).",
            callcentre::PHONE
        ),
        (Advice::NotContacted, Lang::Ja) => {
            "まだ配信サーバーと通信していません。ネットワーク接続を確認してください。".into()
        }
        (Advice::NotContacted, Lang::En) => {
            "The agent has not reached the distribution server yet. Check the network connection.".into()
        }
        (Advice::NoUpdate, Lang::Ja) => "予定されている更新はありません。".into(),
        (Advice::NoUpdate, Lang::En) => "No update is planned.".into(),
    }
}
