//! What the live demo prints: the banner (where to look, the operator token, the data, the
//! clock), a line per simulated hour, and warnings at the end.

use std::net::SocketAddr;
use std::path::Path;

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState as S;
use onshi_core::jst;
use onshi_core::lang::Lang;
use onshi_core::schedule::Campaign;

use super::driver::{SiteOutcome, Tally};
use super::operator::Operator;
use super::summary::DownloadWatch;

/// What the banner shows.
pub struct Banner<'a> {
    pub addr: SocketAddr,
    /// The generated operator token; `None` when it came from `ONSHI_OPERATOR_TOKEN`.
    pub token: Option<&'a str>,
    pub data: &'a Path,
    pub temporary: bool,
    pub sites: u32,
    pub readers: usize,
    pub from: Timestamp,
    pub speed: f64,
    /// Why the default address was not used.
    pub listen_note: Option<&'a str>,
}

/// The banner, in Japanese with English alongside.
pub fn banner(b: &Banner<'_>) {
    if let Some(note) = b.listen_note {
        println!("{note}");
    }
    let token = b
        .token
        .unwrap_or("ONSHI_OPERATOR_TOKEN の値 / the value of ONSHI_OPERATOR_TOKEN");
    let data_note = if b.temporary {
        "（終了時に削除、--keep で残す / deleted at exit unless --keep）"
    } else {
        ""
    };
    let (addr, sites, readers) = (b.addr, b.sites, b.readers);
    println!(
        "onshi demo — オンライン資格確認等システム 更新配信のデモ / rollout demo\n\
         \x20 施設 {sites}、資格確認端末 {sites} 台、顔認証付きカードリーダー {readers} 台 / \
         {sites} sites, {sites} terminals, {readers} card readers\n\
         \x20 ダッシュボード / dashboard:        http://{addr}/\n\
         \x20 受付の再現 / reception desk:        http://{addr}/reception\n\
         \x20 運用者トークン / operator token:   {token}\n\
         \x20 データ / data:                     {}{data_note}\n\
         \x20 模擬時計 / simulated clock:        {} から {}倍速（1 時間 = {:.1} 秒）/ from {}, ×{}\n\
         \x20 Ctrl-C で終了 / Ctrl-C to stop",
        b.data.display(),
        jst::format_ja(b.from),
        b.speed,
        3600.0 / b.speed,
        jst::format_en(b.from),
        b.speed,
    );
}

/// One line of the live view for the simulated hour `at`: the campaign's phase, the devices per state
/// and the patients who met error 901 so far.
pub async fn progress(
    op: &Operator,
    schedule: &Campaign,
    at: Timestamp,
    tally: &Tally,
    lang: Lang,
) {
    let p = match op.progress().await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("progress: {e:#}");
            return;
        }
    };
    let a = &p.all;
    let restart = a.restart_required;
    // Terminals in `installed` need a restart; readers in `installed` wait for their terminal's.
    let readers_waiting = a.get(S::Installed).saturating_sub(restart);
    let busy = a.get(S::Downloading) + a.get(S::Downloaded) + a.get(S::Installing);
    let phase = schedule.status(at).phase;
    match lang {
        Lang::Ja => println!(
            "{} [{}] 配信待ち {} · 取得・インストール中 {} · 再起動が必要 {} (端末の再起動で適用されるカードリーダー {}) · 適用済み {} · 失敗 {} | 901 エラーに出会った患者 {} 人",
            jst::format_ja(at),
            phase.label_ja(),
            a.get(S::Waiting),
            busy,
            restart,
            readers_waiting,
            a.get(S::Applied),
            a.get(S::Failed),
            tally.met_901
        ),
        Lang::En => println!(
            "{} [{}] waiting {} · downloading/installing {} · restart required {} (card readers applied by that restart {}) · applied {} · failed {} | patients who met 901: {}",
            jst::format_en(at),
            phase.slug(),
            a.get(S::Waiting),
            busy,
            restart,
            readers_waiting,
            a.get(S::Applied),
            a.get(S::Failed),
            tally.met_901
        ),
    }
}

/// On stderr: downloads that started outside the windows, an audit log read incompletely,
/// agents that stopped with an error.
pub fn warnings(schedule: &Campaign, watch: &DownloadWatch, outcomes: &[SiteOutcome]) {
    for e in watch.outside.iter().take(5) {
        eprintln!(
            "download started outside the windows: {} {} at {}",
            e.subject,
            e.detail,
            schedule.rfc3339(e.at)
        );
    }
    if !watch.complete {
        eprintln!(
            "warning: the audit log moved faster than it was read; downloads outside the windows may be undercounted"
        );
    }
    for o in outcomes.iter().filter(|o| o.agent_error.is_some()).take(3) {
        eprintln!(
            "agent of site {} stopped: {}",
            o.code,
            o.agent_error.as_deref().unwrap_or_default()
        );
    }
}
