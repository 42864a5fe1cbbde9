//! Notices to sites (the notice: 医療機関等向けポータルサイトからのメールで通知, and オンライン請求時の
//! 画面で通知): which notice a site is due at an instant, which are in force for the billing
//! screen, and their text with the site's own status. The server's outbox sends what [`due`]
//! answers, at most once per site and key.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};

use crate::callcentre;
use crate::guidance::{Advice, Moment};
use crate::jst;
use crate::lang::Lang;
use crate::offer::CampaignStatus;
use crate::schedule::{Campaign, Phase};

/// A kind of notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The campaign is announced: when, and what the site does (once per campaign).
    Announcement,
    /// Keep the terminal and readers on tonight: the site has not received the update yet
    /// (at most once a day, on days with a window in the evening).
    KeepPowerOn,
    /// Installed: restart the terminal (each morning after 05:00 while one waits).
    RestartRequired,
    /// The all-day catch-up phase started and the site is not done (once per campaign).
    CatchUp,
    /// A terminal has stopped checking in: check its power, network and distribution
    /// application (once a day while it stays silent; the rule is [`crate::silence`]).
    Silent,
}

impl NoticeKind {
    pub const ALL: [Self; 5] = [
        Self::Announcement,
        Self::KeepPowerOn,
        Self::RestartRequired,
        Self::CatchUp,
        Self::Silent,
    ];

    /// `announcement`, `keep_power_on`, `restart_required`, `catch_up`, `silent`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Announcement => "announcement",
            Self::KeepPowerOn => "keep_power_on",
            Self::RestartRequired => "restart_required",
            Self::CatchUp => "catch_up",
            Self::Silent => "silent",
        }
    }

    /// Parses a slug.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.slug() == s)
    }
}

/// Where a site's devices stand in a campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SiteFacts {
    pub terminals: u32,
    pub readers: u32,
    /// Devices that have not received the update yet (waiting, a paused download, failed).
    pub not_received: u32,
    /// Terminals installed and waiting for a restart.
    pub restart_required: u32,
    pub applied: u32,
}

impl SiteFacts {
    pub fn devices(&self) -> u32 {
        self.terminals + self.readers
    }

    pub fn done(&self) -> bool {
        self.applied >= self.devices()
    }
}

/// A notice due now, with the key that makes it unique for the site ("once", or the JST date
/// for the daily kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub kind: NoticeKind,
    pub key: String,
}

/// The "once" key.
pub const ONCE: &str = "once";
/// The restart-required mail goes out from 05:00, when the night window has closed.
const MORNING: Time = Time::constant(5, 0, 0, 0);
/// The keep-power-on reminder goes out from noon on a day whose evening opens a window.
const REMINDER: Time = Time::constant(12, 0, 0, 0);
/// A site with an automatic restart is told only if the terminal still waits this long after
/// its restart time.
const AUTO_RESTART_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The notices a site is due at `now`. The caller sends each (kind, key) at most once.
pub fn due(
    now: Timestamp,
    schedule: &Campaign,
    campaign: CampaignStatus,
    facts: &SiteFacts,
    auto_restart: Option<Time>,
) -> Vec<Due> {
    if campaign != CampaignStatus::Active || facts.devices() == 0 {
        return Vec::new();
    }
    let local = jst::civil(now);
    let today = local.date().to_string();
    let status = schedule.status(now);
    let mut out = vec![Due {
        kind: NoticeKind::Announcement,
        key: ONCE.into(),
    }];
    if facts.restart_required > 0
        && local.time() >= MORNING
        && local.time() < Time::constant(20, 0, 0, 0)
    {
        let after = match auto_restart {
            None => MORNING,
            Some(at) => at
                .max(MORNING)
                .checked_add(AUTO_RESTART_GRACE)
                .unwrap_or(Time::MAX),
        };
        if local.time() >= after {
            out.push(Due {
                kind: NoticeKind::RestartRequired,
                key: today.clone(),
            });
        }
    }
    let window_tonight = !status.distributing
        && matches!(status.phase, Phase::Before | Phase::Between)
        && status
            .next_opening
            .is_some_and(|t| jst::civil(t).date() == local.date());
    if facts.not_received > 0 && window_tonight && local.time() >= REMINDER {
        out.push(Due {
            kind: NoticeKind::KeepPowerOn,
            key: today,
        });
    }
    // A site whose devices are all installed and only wait for a restart gets the restart mail
    // alone: telling it the update is "not complete, keep the power on" would contradict it.
    if status.phase == Phase::CatchUp && facts.not_received > 0 {
        out.push(Due {
            kind: NoticeKind::CatchUp,
            key: ONCE.into(),
        });
    }
    out
}

/// The notices in force for a site now, for the billing screen (オンライン請求の画面): what it
/// should see when it logs in, regardless of what was mailed.
pub fn in_force(
    now: Timestamp,
    schedule: &Campaign,
    campaign: CampaignStatus,
    facts: &SiteFacts,
) -> Vec<NoticeKind> {
    if campaign != CampaignStatus::Active
        || facts.devices() == 0
        || facts.done()
        || !schedule.billing_open(now)
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    if facts.restart_required > 0 {
        out.push(NoticeKind::RestartRequired);
    }
    if facts.not_received > 0 {
        out.push(match schedule.status(now).phase {
            Phase::CatchUp => NoticeKind::CatchUp,
            _ => NoticeKind::KeepPowerOn,
        });
    }
    if out.is_empty() {
        out.push(NoticeKind::Announcement);
    }
    out
}

/// The advice a mailed notice of `kind` carries at `now` (a mail knows the site's counts, not
/// each install instant): the restart mail goes out only once the morning after the night has
/// come and an automatic restart had its chance ([`due`]), so it says restart now; the others
/// say what the schedule asks of a device still waiting. The billing screen, which reads the
/// site's devices, passes the site's own advice instead.
pub fn advice_for(
    kind: NoticeKind,
    schedule: &Campaign,
    now: Timestamp,
    auto_restart: Option<Time>,
) -> Advice {
    use crate::deployment::DeploymentState;
    use crate::guidance::{DeviceFacts, device_advice};
    use crate::vendor::DeviceKind;
    match kind {
        NoticeKind::RestartRequired => Advice::RestartNow,
        NoticeKind::Announcement
        | NoticeKind::KeepPowerOn
        | NoticeKind::CatchUp
        | NoticeKind::Silent => {
            let waiting = DeviceFacts {
                kind: DeviceKind::Terminal,
                state: DeploymentState::Waiting,
                installed_at: None,
            };
            device_advice(
                &waiting,
                &Moment::of(schedule, CampaignStatus::Active, now),
                auto_restart,
            )
        }
    }
}

/// A notice's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    pub subject: String,
    /// What the site is asked to do, without the greeting and footer (the billing screen's text).
    pub lead: String,
    /// The whole mail body.
    pub body: String,
}

/// The site a notice is addressed to.
#[derive(Debug, Clone, Copy)]
pub struct Addressee<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub auto_restart: Option<Time>,
}

/// The campaign's dates in one line: `2026年1月19日(月)～1月30日(金) 各日20:00～翌5:00（1月25日(日)を除く）`
/// — the one way mails, the billing screen and the pages write the distribution period.
pub fn schedule_line(schedule: &Campaign, lang: Lang) -> String {
    let windows = schedule.windows();
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return String::new();
    };
    let first = schedule.civil(first.opens).date();
    let last = schedule.civil(last.opens).date();
    let hours = schedule.night_hours();
    let excluded = schedule.excluded();
    match lang {
        Lang::Ja => {
            let mut s = format!("{}～{}", jst::format_date_ja(first), short_date_ja(last));
            if let Some((opens, closes)) = hours {
                let next = if closes <= opens { "翌" } else { "" };
                s.push_str(&format!(" 各日{}～{next}{}", hm(opens), hm_short(closes)));
            }
            if !excluded.is_empty() {
                let list: Vec<String> = excluded.iter().map(|d| short_date_ja(*d)).collect();
                s.push_str(&format!("（{}を除く）", list.join("、")));
            }
            s
        }
        Lang::En => {
            let mut s = format!(
                "{} to {}",
                jst::format_date_en(first),
                jst::format_date_en(last)
            );
            if let Some((opens, closes)) = hours {
                let next = if closes <= opens {
                    " the next morning"
                } else {
                    ""
                };
                s.push_str(&format!(", {}–{}{next}", hm(opens), hm(closes)));
            }
            if !excluded.is_empty() {
                let list: Vec<String> = excluded.iter().map(|d| jst::format_date_en(*d)).collect();
                s.push_str(&format!(", except {}", list.join(", ")));
            }
            s
        }
    }
}

fn short_date_ja(d: Date) -> String {
    format!(
        "{}月{}日({})",
        d.month(),
        d.day(),
        jst::weekday_ja(d.weekday())
    )
}

fn hm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn hm_short(t: Time) -> String {
    format!("{}:{:02}", t.hour(), t.minute())
}

/// How sites are told (the notice: 医療機関等向けポータルサイトからのメールで通知、1月にオンライン請求
/// 時の画面で通知), with the campaign's billing period.
pub fn channels_line(schedule: &Campaign, lang: Lang) -> String {
    let period = schedule.billing_period().map(|(from, until)| {
        let same_month = from.year() == until.year()
            && from.month() == until.month()
            && from.day() == 1
            && until.tomorrow().is_ok_and(|d| d.day() == 1);
        match (lang, same_month) {
            (Lang::Ja, true) => format!("{}月", from.month()),
            (Lang::Ja, false) => format!(
                "{}～{}",
                jst::format_date_ja(from),
                jst::format_date_ja(until)
            ),
            (Lang::En, true) => from.strftime("%B %Y").to_string(),
            (Lang::En, false) => format!(
                "{} to {}",
                jst::format_date_en(from),
                jst::format_date_en(until)
            ),
        }
    });
    match (lang, period) {
        (Lang::Ja, Some(p)) => {
            format!("医療機関等向けポータルサイトからのメール、および{p}のオンライン請求時の画面")
        }
        (Lang::Ja, None) => {
            "医療機関等向けポータルサイトからのメール、およびオンライン請求時の画面".into()
        }
        (Lang::En, Some(p)) => format!(
            "e-mail from the portal for medical institutions, and the online-billing screen ({p})"
        ),
        (Lang::En, None) => {
            "e-mail from the portal for medical institutions, and the online-billing screen".into()
        }
    }
}

/// The site's status in one line.
pub fn facts_line(facts: &SiteFacts, lang: Lang) -> String {
    match lang {
        Lang::Ja => format!(
            "資格確認端末 {}台・顔認証付きカードリーダー {}台：適用済み {}台／再起動待ち {}台／未受信 {}台",
            facts.terminals,
            facts.readers,
            facts.applied,
            facts.restart_required,
            facts.not_received
        ),
        Lang::En => format!(
            "{} terminal(s), {} card reader(s): applied {}, waiting for a restart {}, not yet received {}",
            facts.terminals,
            facts.readers,
            facts.applied,
            facts.restart_required,
            facts.not_received
        ),
    }
}

/// The section an announcement mail ends with: the one-time link that signs the site's staff
/// in to the site page without the access key, valid until `until` (the server makes the link
/// when it sends the mail and keeps only its hash).
pub fn sign_in_text(lang: Lang, url: &str, until: Timestamp) -> String {
    match lang {
        Lang::Ja => format!(
            "■更新状況の確認ページへのログイン\n\
             次のリンクを開くと、アクセスキーを入力せずに貴施設の更新状況の確認ページにログインできます。リンクは1回だけ、{}まで使えます。ログインしたブラウザでは、その後もしばらくログインしたままになります。このメールを施設外の方に転送しないでください。\n{url}\n",
            jst::format_ja(until)
        ),
        Lang::En => format!(
            "Sign in to your update status\n\
             The link below signs you in to your site's update status page without the access key. It works once, until {}; the browser you sign in with then stays signed in for a while. Do not forward this mail outside your site.\n{url}\n",
            jst::format_en(until)
        ),
    }
}

/// The letter for a notice: subject and body, with the site's own status at `now`.
///
/// `advice` is what the site should do now, from `onshi_core::guidance` (a mail passes
/// [`advice_for`]): the restart and catch-up notices say it in the same words as the site page
/// and the terminal's agent.
pub fn compose(
    kind: NoticeKind,
    lang: Lang,
    to: Addressee<'_>,
    facts: &SiteFacts,
    schedule: &Campaign,
    now: Timestamp,
    advice: Advice,
) -> Letter {
    match lang {
        Lang::Ja => compose_ja(kind, to, facts, schedule, now, advice),
        Lang::En => compose_en(kind, to, facts, schedule, now, advice),
    }
}

fn compose_ja(
    kind: NoticeKind,
    to: Addressee<'_>,
    facts: &SiteFacts,
    schedule: &Campaign,
    now: Timestamp,
    advice: Advice,
) -> Letter {
    let auto_line = match (to.auto_restart, advice) {
        (Some(at), Advice::RestartNow) => format!(
            "\n自動再起動（毎日{}）の設定がありますが、更新はまだ適用されていません。",
            hm(at)
        ),
        _ => String::new(),
    };
    let (subject, main) = match kind {
        NoticeKind::Announcement => (
            "【オンライン資格確認】アプリケーション更新の配信と再起動のお願い".to_owned(),
            format!(
                "オンライン資格確認等システムのメンテナンスに伴い、資格確認端末と顔認証付きカードリーダーへ更新アプリケーションを配信します。\n\n\
                 ■配信期間\n{}\n{}\n\n\
                 ■お願いしたいこと（期間中、1度だけで問題ありません）\n\
                 1. 期間中のいずれかの日の20時～翌日5時に、資格確認端末・顔認証付きカードリーダーの電源をオンにしたままにしてください。\n\
                 2. 翌日朝（5時以降）に資格確認端末を再起動してください。\n\u{3000}※日々の診療等の開始前に自動で再起動されるよう設定している場合、手動での再起動は不要です。\n\n\
                 インストール後に再起動しないまま患者さんがオンライン資格確認を行うと、資格確認端末でエラーが表示され、資格確認ができません。その場合は資格確認端末を再起動してから、もう一度患者さんに資格確認を行っていただいてください。",
                schedule_line(schedule, crate::lang::Lang::Ja),
                catch_up_line_ja(schedule),
            ),
        ),
        NoticeKind::KeepPowerOn => (
            "【オンライン資格確認】今夜、資格確認端末と顔認証付きカードリーダーの電源をオンにしたままにしてください".to_owned(),
            format!(
                "貴施設の資格確認端末・顔認証付きカードリーダーには、更新アプリケーションがまだ届いていません。\n\n{}\n\n■配信期間\n{}",
                advice.text(Lang::Ja),
                schedule_line(schedule, crate::lang::Lang::Ja),
            ),
        ),
        NoticeKind::RestartRequired => (
            format!("【オンライン資格確認】{}", advice.headline(Lang::Ja)),
            format!("{}{auto_line}", advice.text(Lang::Ja)),
        ),
        NoticeKind::CatchUp => (
            "【オンライン資格確認】更新が完了していません（終日配信中）".to_owned(),
            format!(
                "貴施設では、アプリケーションのバージョンアップがまだ完了していません（{}から終日配信しています）。{}",
                schedule
                    .catch_up_date()
                    .map_or_else(String::new, jst::format_date_ja),
                advice.text(Lang::Ja),
            ),
        ),
        NoticeKind::Silent => (
            "【オンライン資格確認】資格確認端末からの通信が途絶えています".to_owned(),
            format!(
                "貴施設の資格確認端末の配信アプリケーションから、{}時間以上サーバーへの通信がありません。通信が戻るまで、更新の配信も、インストールや再起動の状況の確認もできません。\n\n\
                 ■ご確認いただきたいこと\n\
                 1. {}\n\
                 2. {}\n\
                 3. {}\n\n\
                 確認しても通信が戻らない場合は、オンライン資格確認等コールセンター（{}、通話無料）へご連絡ください。",
                schedule.silent_after().as_hours(),
                crate::silence::checks(Lang::Ja)[0],
                crate::silence::checks(Lang::Ja)[1],
                crate::silence::checks(Lang::Ja)[2],
                callcentre::PHONE,
            ),
        ),
    };
    let body = format!(
        "{} 御中（医療機関コード {}）\n\n{main}\n\n\
         ■貴施設の現在の状況（{}時点）\n{}\n\n\
         ■インストール完了の確認\n{}\n\n\
         ■お問い合わせ\n{} {}（通話無料）\n月曜日～金曜日（祝日を除く）8:00～18:00／土曜日（祝日を除く）8:00～16:00\n\n\
         再起動してもエラーが解消しない間のマイナ保険証による資格確認は、次の記事に沿ってご対応ください（医療機関等向け総合ポータルサイト）：\n\
         {}\n{}\n",
        to.name,
        to.code,
        jst::format_ja(now),
        facts_line(facts, crate::lang::Lang::Ja),
        crate::guidance::completion_check_text(
            schedule.completion_check(),
            Lang::Ja,
            crate::guidance::CheckedFrom::Mail,
        ),
        callcentre::NAME_JA,
        callcentre::PHONE,
        callcentre::FALLBACK_TITLE_JA,
        callcentre::FALLBACK_URL,
    );
    Letter {
        subject,
        lead: main,
        body,
    }
}

fn catch_up_line_ja(schedule: &Campaign) -> String {
    match schedule.catch_up_date() {
        Some(d) => format!(
            "期間中に完了しなかった場合、{}以降は終日配信します。",
            jst::format_date_ja(d)
        ),
        None => String::new(),
    }
}

fn compose_en(
    kind: NoticeKind,
    to: Addressee<'_>,
    facts: &SiteFacts,
    schedule: &Campaign,
    now: Timestamp,
    advice: Advice,
) -> Letter {
    let (subject, main) = match kind {
        NoticeKind::Announcement => (
            "[Online qualification] Application update: distribution and restart".to_owned(),
            format!(
                "An application update is distributed to qualification terminals and card readers: {}.\n\
                 Once during this period, keep the terminal and card readers switched on from 20:00 to 05:00, \
                 then restart the terminal the next morning (after 05:00). Sites whose terminal restarts \
                 automatically every day need not restart it by hand.",
                schedule_line(schedule, Lang::En)
            ),
        ),
        NoticeKind::KeepPowerOn => (
            "[Online qualification] Keep the terminal and card readers switched on tonight"
                .to_owned(),
            format!(
                "The update has not reached your site yet. {}",
                advice.text(Lang::En)
            ),
        ),
        NoticeKind::RestartRequired => (
            format!("[Online qualification] {}", advice.headline(Lang::En)),
            advice.text(Lang::En),
        ),
        NoticeKind::CatchUp => (
            "[Online qualification] Update not complete (distributed all day now)".to_owned(),
            format!(
                "The update is not complete at your site. {}",
                advice.text(Lang::En)
            ),
        ),
        NoticeKind::Silent => (
            "[Online qualification] Your qualification terminal has stopped contacting the server"
                .to_owned(),
            format!(
                "The distribution application on your qualification terminal has not contacted the server \
                 for {} hours or more: until it does, the update cannot be delivered and whether it was \
                 installed or the terminal restarted cannot be seen. Please check that:\n\
                 1. {};\n\
                 2. {};\n\
                 3. {}.\n\
                 If it still does not reconnect, call the call centre at {} (free).",
                schedule.silent_after().as_hours(),
                crate::silence::checks(Lang::En)[0],
                crate::silence::checks(Lang::En)[1],
                crate::silence::checks(Lang::En)[2],
                callcentre::PHONE,
            ),
        ),
    };
    let body = format!(
        "To {} (institution code {})\n\n{main}\n\nYour site at {}: {}\n\n{}\n\nCall centre: {} (free), Mon–Fri 8:00–18:00, Sat 8:00–16:00 (except holidays).\n\
         While the error persists after a restart, confirm qualification as this portal article describes (in Japanese: 「{}」):\n{}\n",
        to.name,
        to.code,
        jst::format_en(now),
        facts_line(facts, Lang::En),
        crate::guidance::completion_check_text(
            schedule.completion_check(),
            Lang::En,
            crate::guidance::CheckedFrom::Mail,
        ),
        callcentre::PHONE,
        callcentre::FALLBACK_TITLE_JA,
        callcentre::FALLBACK_URL,
    );
    Letter {
        subject,
        lead: main,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn campaign() -> Campaign {
        Campaign::preset("2026-01").expect("preset")
    }

    fn facts(not_received: u32, restart_required: u32, applied: u32) -> SiteFacts {
        SiteFacts {
            terminals: 1,
            readers: 1,
            not_received,
            restart_required,
            applied,
        }
    }

    fn kinds(d: &[Due]) -> Vec<(NoticeKind, &str)> {
        d.iter().map(|d| (d.kind, d.key.as_str())).collect()
    }

    #[test]
    fn an_active_campaign_announces_once_and_reminds_waiting_sites_on_window_days() {
        let c = campaign();
        let d = due(
            t("2026-01-19T10:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &facts(2, 0, 0),
            None,
        );
        assert_eq!(kinds(&d), vec![(NoticeKind::Announcement, ONCE)]);
        let d = due(
            t("2026-01-19T12:30:00+09:00"),
            &c,
            CampaignStatus::Active,
            &facts(2, 0, 0),
            None,
        );
        assert_eq!(
            kinds(&d),
            vec![
                (NoticeKind::Announcement, ONCE),
                (NoticeKind::KeepPowerOn, "2026-01-19")
            ]
        );
        // The 25th has no window: no reminder that day.
        let d = due(
            t("2026-01-25T13:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &facts(2, 0, 0),
            None,
        );
        assert_eq!(kinds(&d), vec![(NoticeKind::Announcement, ONCE)]);
        // A paused or draft campaign sends nothing.
        assert!(
            due(
                t("2026-01-19T12:30:00+09:00"),
                &c,
                CampaignStatus::Paused,
                &facts(2, 0, 0),
                None
            )
            .is_empty()
        );
    }

    #[test]
    fn restart_required_goes_out_from_five_and_after_the_automatic_restart_had_its_chance() {
        let c = campaign();
        let f = facts(0, 1, 1);
        let at4 = due(
            t("2026-01-20T04:59:00+09:00"),
            &c,
            CampaignStatus::Active,
            &f,
            None,
        );
        assert!(!at4.iter().any(|d| d.kind == NoticeKind::RestartRequired));
        let at5 = due(
            t("2026-01-20T05:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &f,
            None,
        );
        assert!(at5.contains(&Due {
            kind: NoticeKind::RestartRequired,
            key: "2026-01-20".into()
        }));
        let auto = Some(Time::constant(7, 0, 0, 0));
        let at7 = due(
            t("2026-01-20T07:30:00+09:00"),
            &c,
            CampaignStatus::Active,
            &f,
            auto,
        );
        assert!(!at7.iter().any(|d| d.kind == NoticeKind::RestartRequired));
        let at8 = due(
            t("2026-01-20T08:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &f,
            auto,
        );
        assert!(at8.iter().any(|d| d.kind == NoticeKind::RestartRequired));
    }

    #[test]
    fn the_catch_up_notice_goes_to_sites_not_done_once() {
        let c = campaign();
        let d = due(
            t("2026-01-31T09:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &facts(2, 0, 0),
            None,
        );
        assert!(d.contains(&Due {
            kind: NoticeKind::CatchUp,
            key: ONCE.into()
        }));
        let done = due(
            t("2026-01-31T09:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &facts(0, 0, 2),
            None,
        );
        assert!(!done.iter().any(|d| d.kind == NoticeKind::CatchUp));
    }

    #[test]
    fn the_billing_screen_shows_what_is_in_force() {
        let c = campaign();
        let now = t("2026-01-20T10:00:00+09:00");
        assert_eq!(
            in_force(now, &c, CampaignStatus::Active, &facts(1, 1, 0)),
            vec![NoticeKind::RestartRequired, NoticeKind::KeepPowerOn]
        );
        assert!(in_force(now, &c, CampaignStatus::Active, &facts(0, 0, 2)).is_empty());
        assert_eq!(
            in_force(
                t("2026-01-31T10:00:00+09:00"),
                &c,
                CampaignStatus::Active,
                &facts(1, 0, 1)
            ),
            vec![NoticeKind::CatchUp]
        );
    }

    #[test]
    fn the_billing_screen_shows_notices_only_in_the_campaign_billing_period() {
        let c = campaign();
        for outside in ["2025-12-31T10:00:00+09:00", "2026-02-01T10:00:00+09:00"] {
            assert!(
                in_force(t(outside), &c, CampaignStatus::Active, &facts(1, 1, 0)).is_empty(),
                "{outside}"
            );
        }
        assert_eq!(
            channels_line(&c, Lang::Ja),
            "医療機関等向けポータルサイトからのメール、および1月のオンライン請求時の画面"
        );
    }

    #[test]
    fn a_window_inside_one_day_is_not_written_as_ending_the_next_morning() {
        let day = Campaign::parse(
            "id = \"day\"\ntitle = \"t\"\ntimezone = \"Asia/Tokyo\"\n\
             [nights]\nfirst = 2026-03-02\nlast = 2026-03-06\nopens = \"09:00\"\ncloses = \"17:00\"\n",
        )
        .expect("a daytime campaign");
        assert_eq!(
            schedule_line(&day, Lang::Ja),
            "2026年3月2日(月)～3月6日(金) 各日09:00～17:00"
        );
        assert_eq!(
            schedule_line(&day, Lang::En),
            format!(
                "{} to {}, 09:00–17:00",
                jst::format_date_en("2026-03-02".parse().expect("date")),
                jst::format_date_en("2026-03-06".parse().expect("date"))
            )
        );
        assert!(schedule_line(&campaign(), Lang::En).contains("20:00–05:00 the next morning"));
    }

    #[test]
    fn the_letters_carry_the_notice_dates_and_the_site_status() {
        let c = campaign();
        assert_eq!(
            schedule_line(&c, Lang::Ja),
            "2026年1月19日(月)～1月30日(金) 各日20:00～翌5:00（1月25日(日)を除く）"
        );
        let to = Addressee {
            code: "0110113719",
            name: "テスト診療所",
            auto_restart: None,
        };
        let now = t("2026-01-20T06:00:00+09:00");
        let l = compose(
            NoticeKind::RestartRequired,
            Lang::Ja,
            to,
            &facts(0, 1, 1),
            &c,
            now,
            advice_for(NoticeKind::RestartRequired, &c, now, None),
        );
        assert!(l.body.contains("更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。"), "{}", l.body);
        assert!(l.body.contains("再起動待ち 1台"), "{}", l.body);
        assert!(
            l.body
                .contains("再起動してもエラーが解消しない間のマイナ保険証による資格確認は、")
                && !l.body.contains("その間"),
            "the fallback says which time it is for: {}",
            l.body
        );
        let en = compose(
            NoticeKind::RestartRequired,
            Lang::En,
            to,
            &facts(0, 1, 1),
            &c,
            now,
            advice_for(NoticeKind::RestartRequired, &c, now, None),
        );
        assert!(
            en.body
                .contains("While the error persists after a restart, confirm qualification")
                && !en.body.contains("Meanwhile"),
            "{}",
            en.body
        );
        assert!(
            l.body
                .contains("インストール完了の確認手順は、公式サイトで別途案内されます。")
                && l.body.contains("医療機関・薬局の方のページ（医療機関コードとアクセスキーでログイン）でも、機器ごとの状況を確認できます。")
                && !l.body.contains("onshi-agent status")
                && !l.body.contains("/site"),
            "{}",
            l.body
        );
        assert!(l.body.contains("0800-080-4583"));
        assert!(l.body.contains("2026年1月20日(火) 06:00"));
        let now = t("2026-01-19T10:00:00+09:00");
        let a = compose(
            NoticeKind::Announcement,
            Lang::Ja,
            to,
            &facts(2, 0, 0),
            &c,
            now,
            advice_for(NoticeKind::Announcement, &c, now, None),
        );
        assert!(
            a.body.contains("2026年1月31日(土)以降は終日配信"),
            "{}",
            a.body
        );
        assert!(a.body.contains("KB0011769"));
        assert!(
            a.body
                .contains("マイナ保険証での受付が出来ない場合の資格確認方法・レセプト請求方法"),
            "the fallback article under its full title: {}",
            a.body
        );
    }

    #[test]
    fn a_site_whose_devices_are_all_installed_gets_the_restart_mail_and_no_catch_up_mail() {
        let c = campaign();
        let d = due(
            t("2026-01-31T10:00:00+09:00"),
            &c,
            CampaignStatus::Active,
            &facts(0, 1, 1),
            None,
        );
        assert!(d.iter().any(|d| d.kind == NoticeKind::RestartRequired));
        assert!(!d.iter().any(|d| d.kind == NoticeKind::CatchUp), "{d:?}");
        assert_eq!(
            in_force(
                t("2026-01-31T10:00:00+09:00"),
                &c,
                CampaignStatus::Active,
                &facts(0, 1, 1)
            ),
            vec![NoticeKind::RestartRequired]
        );
    }
}
