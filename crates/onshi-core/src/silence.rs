//! Silent terminals: a 資格確認端末 whose 配信アプリケーション has stopped reaching the server
//! (in 2024 the portal had to ask sites by mail, KB0011809, to check such terminals). The update
//! cannot reach a terminal that never checks in, so during a campaign the operator sees them
//! and their sites are asked, once a day, to check the power, the network and the application.
//!
//! The one rule, [`Silence`]: a terminal targeted by an active campaign, not yet done with it,
//! whose last contact is older than the campaign's `silent_after` (see
//! [`crate::schedule::Campaign::silent_after`]). A device that never checked in is not silent:
//! the agent checks in as soon as it has enrolled, so silence means it stopped.

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};

use crate::deployment::DeploymentState;
use crate::jst;
use crate::lang::Lang;
use crate::notice::{self, Addressee, Due, Letter, NoticeKind, SiteFacts};
use crate::offer::CampaignStatus;
use crate::schedule::Campaign;
use crate::vendor::DeviceKind;

/// How long without a check-in makes a terminal silent, unless the campaign file sets
/// `silent_after_hours`. Three days: a clinic closed from Saturday noon to Monday morning (or
/// over a long weekend) switches its terminal off for well over a day, and is not silent.
pub const DEFAULT_AFTER: SignedDuration = SignedDuration::from_hours(72);

/// The silent mail goes out from this Japan time of day: by then a terminal switched on for the
/// morning has had its chance to check in, and staff are at the desk to read the mail.
pub const MAIL_FROM: Time = Time::constant(10, 0, 0, 0);

/// Which devices are silent at one instant: the rule, as a filter a store can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// Terminals only: card readers reach the server through their terminal's agent.
    pub device: DeviceKind,
    /// Silent if the last contact is strictly before this instant.
    pub contact_before: Timestamp,
    /// A device in this state is done with the campaign, silent or not.
    pub done: DeploymentState,
}

impl Silence {
    /// The rule at `now` for a campaign whose terminals may go `after` without a check-in.
    pub fn at(now: Timestamp, after: SignedDuration) -> Self {
        Self {
            device: DeviceKind::Terminal,
            contact_before: now.checked_sub(after).unwrap_or(Timestamp::MIN),
            done: DeploymentState::Applied,
        }
    }

    /// Whether a device of `kind`, in `state`, last heard from at `last_contact`, is silent.
    pub fn covers(
        &self,
        kind: DeviceKind,
        state: DeploymentState,
        last_contact: Option<Timestamp>,
    ) -> bool {
        kind == self.device
            && state != self.done
            && last_contact.is_some_and(|t| t < self.contact_before)
    }
}

/// Whether a device is silent at `now` (see [`Silence`]).
pub fn is_silent(
    kind: DeviceKind,
    state: DeploymentState,
    last_contact: Option<Timestamp>,
    now: Timestamp,
    after: SignedDuration,
) -> bool {
    Silence::at(now, after).covers(kind, state, last_contact)
}

/// Whether a campaign in `status` watches for silent terminals: only while it is active.
pub fn watched(status: CampaignStatus) -> bool {
    status == CampaignStatus::Active
}

/// The silent mail a site with `silent` silent terminals is due at `now`: one a Japan day, from
/// [`MAIL_FROM`], keyed by the Japan date. The caller sends each key at most once.
pub fn due(now: Timestamp, campaign: CampaignStatus, silent: usize) -> Option<Due> {
    let local = jst::civil(now);
    (watched(campaign) && silent > 0 && local.time() >= MAIL_FROM).then(|| Due {
        kind: NoticeKind::Silent,
        key: local.date().to_string(),
    })
}

/// What staff check on a silent terminal, in order: the silent mail lists them and the site
/// page's row says them, in the same words.
pub fn checks(lang: Lang) -> [&'static str; 3] {
    match lang {
        Lang::Ja => [
            "資格確認端末の電源が入っていること",
            "資格確認端末がネットワーク（インターネット回線・院内のLAN）に接続されていること",
            "配信アプリケーションが起動していること（資格確認端末を再起動すると起動します）",
        ],
        Lang::En => [
            "the terminal is switched on",
            "it is connected to the network (the internet line and the clinic's LAN)",
            "the distribution application is running (restarting the terminal starts it)",
        ],
    }
}

/// A silent terminal's line on the site page, before [`checks`]: 「通信が途絶えています（最終通信
/// …）」.
pub fn row_heading(last_contact: Timestamp, lang: Lang) -> String {
    match lang {
        Lang::Ja => format!(
            "通信が途絶えています（最終通信 {}）。次の点をご確認ください。",
            jst::format_ja(last_contact)
        ),
        Lang::En => format!(
            "Not heard from (last contact {}). Please check that:",
            jst::format_en(last_contact)
        ),
    }
}

/// One silent terminal, as its site's letter names it.
#[derive(Debug, Clone, Copy)]
pub struct SilentTerminal<'a> {
    pub serial: &'a str,
    pub last_contact: Timestamp,
}

/// The silent letter ([`notice::compose`] of [`NoticeKind::Silent`]) with the site's silent
/// terminals listed after what to check.
pub fn letter(
    lang: Lang,
    to: Addressee<'_>,
    facts: &SiteFacts,
    schedule: &Campaign,
    now: Timestamp,
    terminals: &[SilentTerminal<'_>],
) -> Letter {
    let advice = notice::advice_for(NoticeKind::Silent, schedule, now, to.auto_restart);
    let mut letter = notice::compose(NoticeKind::Silent, lang, to, facts, schedule, now, advice);
    if terminals.is_empty() {
        return letter;
    }
    let mut list = match lang {
        Lang::Ja => "■通信が途絶えている資格確認端末".to_owned(),
        Lang::En => "Terminals not heard from:".to_owned(),
    };
    for t in terminals {
        list.push('\n');
        list.push_str(&match lang {
            Lang::Ja => format!(
                "・{}（最終通信 {}）",
                t.serial,
                jst::format_ja(t.last_contact)
            ),
            Lang::En => format!(
                "- {} (last contact {})",
                t.serial,
                jst::format_en(t.last_contact)
            ),
        });
    }
    let lead = format!("{}\n\n{list}", letter.lead);
    letter.body = letter.body.replacen(&letter.lead, &lead, 1);
    letter.lead = lead;
    letter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    const DAY: SignedDuration = SignedDuration::from_hours(24);

    #[test]
    fn a_terminal_is_silent_once_its_last_contact_is_older_than_the_setting() {
        let last = Some(t("2026-01-19T20:30:00+09:00"));
        let terminal = DeviceKind::Terminal;
        let waiting = DeploymentState::Waiting;
        let silent = |now| is_silent(terminal, waiting, last, t(now), DAY);
        assert!(
            !silent("2026-01-20T20:30:00+09:00"),
            "exactly a day: not yet"
        );
        assert!(silent("2026-01-20T20:30:00.001+09:00"));
        assert!(silent("2026-01-23T10:00:00+09:00"));
        // With the default, a weekend switched off is not silence.
        let friday = Some(t("2026-01-23T18:00:00+09:00"));
        let monday = t("2026-01-26T08:00:00+09:00");
        assert!(!is_silent(terminal, waiting, friday, monday, DEFAULT_AFTER));
    }

    #[test]
    fn readers_devices_done_and_devices_never_heard_from_are_not_silent() {
        let now = t("2026-01-23T10:00:00+09:00");
        let old = Some(t("2026-01-19T20:30:00+09:00"));
        for state in DeploymentState::ALL {
            assert_eq!(
                is_silent(DeviceKind::Terminal, state, old, now, DAY),
                state != DeploymentState::Applied,
                "{state:?}"
            );
            assert!(!is_silent(DeviceKind::CardReader, state, old, now, DAY));
        }
        assert!(!is_silent(
            DeviceKind::Terminal,
            DeploymentState::Waiting,
            None,
            now,
            DAY
        ));
    }

    #[test]
    fn the_silent_mail_is_due_once_a_japan_day_from_ten_while_the_campaign_is_active() {
        let at = |s| due(t(s), CampaignStatus::Active, 1);
        assert_eq!(at("2026-01-21T09:59:00+09:00"), None);
        assert_eq!(
            at("2026-01-21T10:00:00+09:00"),
            Some(Due {
                kind: NoticeKind::Silent,
                key: "2026-01-21".into()
            })
        );
        // 23:30 UTC is 08:30 the next morning in Japan: before ten.
        assert_eq!(at("2026-01-21T23:30:00Z"), None);
        assert_eq!(
            at("2026-01-22T23:59:00+09:00").map(|d| d.key),
            Some("2026-01-22".into())
        );
        assert_eq!(
            due(t("2026-01-21T11:00:00+09:00"), CampaignStatus::Active, 0),
            None
        );
        for paused in [
            CampaignStatus::Draft,
            CampaignStatus::Paused,
            CampaignStatus::Closed,
        ] {
            assert_eq!(due(t("2026-01-21T11:00:00+09:00"), paused, 2), None);
        }
    }

    #[test]
    fn the_letter_says_what_to_check_and_names_the_terminal() {
        let c = Campaign::preset("2026-01").expect("preset");
        let to = Addressee {
            code: "0110113719",
            name: "テスト診療所",
            auto_restart: None,
        };
        let facts = SiteFacts {
            terminals: 1,
            readers: 1,
            not_received: 2,
            restart_required: 0,
            applied: 0,
        };
        let now = t("2026-01-23T10:00:00+09:00");
        let terminals = [SilentTerminal {
            serial: "T-1",
            last_contact: t("2026-01-19T20:30:00+09:00"),
        }];
        let ja = letter(Lang::Ja, to, &facts, &c, now, &terminals);
        assert!(ja.subject.contains("通信"), "{}", ja.subject);
        for words in [
            "72時間以上",
            "電源",
            "ネットワーク",
            "配信アプリケーションが起動",
            "0800-080-4583",
            "T-1（最終通信 2026年1月19日(月) 20:30）",
            "テスト診療所 御中",
        ] {
            assert!(ja.body.contains(words), "{words}: {}", ja.body);
        }
        assert!(ja.lead.contains("T-1"), "{}", ja.lead);
        let en = letter(Lang::En, to, &facts, &c, now, &terminals);
        for words in [
            "72 hours",
            "switched on",
            "network",
            "running",
            "0800-080-4583",
            "T-1",
        ] {
            assert!(en.body.contains(words), "{words}: {}", en.body);
        }
    }
}
