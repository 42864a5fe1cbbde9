//! What-if: two scenarios run with the same seed, and the differences between their summaries
//! (throttle 20k against 50k, auto-restart 20 % against 60 %, a morning e-mail or none).

use serde::Serialize;
use serde_json::Value;

use crate::report::Summary;

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// A stable key, e.g. `errors.patients`.
    pub key: &'static str,
    #[serde(skip)]
    pub label_ja: &'static str,
    #[serde(skip)]
    pub label_en: &'static str,
    pub a: Value,
    pub b: Value,
    /// `b - a` for numbers.
    pub change: Option<f64>,
}

/// The differences of two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub seed: u64,
    pub a: Summary,
    pub b: Summary,
    pub rows: Vec<Row>,
}

/// Compares two summaries, figure by figure.
pub fn compare(a: Summary, b: Summary) -> Comparison {
    let num = |key, label_ja, label_en, f: fn(&Summary) -> f64| {
        let (x, y) = (f(&a), f(&b));
        Row {
            key,
            label_ja,
            label_en,
            a: number(x),
            b: number(y),
            change: Some(y - x),
        }
    };
    let text = |key, label_ja, label_en, f: fn(&Summary) -> Option<String>| Row {
        key,
        label_ja,
        label_en,
        a: f(&a).map_or(Value::Null, Value::String),
        b: f(&b).map_or(Value::Null, Value::String),
        change: None,
    };
    let rows = vec![
        num("sites", "施設数", "sites", |s| s.sites as f64),
        num("devices", "機器数", "devices", |s| s.devices as f64),
        num(
            "deadline.share_by_last_night",
            "最終夜までに配信完了した施設の割合 %",
            "share of sites reached by the last night (%)",
            |s| {
                (s.deadline.sites_by_last_night as f64 * 1000.0 / s.sites.max(1) as f64).round()
                    / 10.0
            },
        ),
        num(
            "bandwidth.transferred_tb",
            "総転送量 TB",
            "national egress (TB)",
            |s| s.bandwidth.transferred_tb,
        ),
        num(
            "deadline.sites_by_last_night",
            "最終夜までに配信完了した施設",
            "sites reached by the last night",
            |s| s.deadline.sites_by_last_night as f64,
        ),
        num(
            "deadline.sites_in_catch_up",
            "終日配信で完了した施設",
            "sites reached in the catch-up phase",
            |s| s.deadline.sites_in_catch_up as f64,
        ),
        num(
            "deadline.sites_never",
            "期間内に完了しなかった施設",
            "sites never reached",
            |s| s.deadline.sites_never as f64,
        ),
        num(
            "sites_applied",
            "適用済みの施設（終了時）",
            "sites applied at the end",
            |s| s.sites_applied as f64,
        ),
        num(
            "fault.sites_reached",
            "不具合のある版が届いた施設（再起動済み）",
            "sites reached by the faulty release (restarted onto it)",
            |s| s.fault.sites_reached as f64,
        ),
        num(
            "fault.sites_unhealthy",
            "うち自己診断で異常となった施設",
            "of which failing the self-check",
            |s| s.fault.sites_unhealthy as f64,
        ),
        text(
            "waves.held_at",
            "健全性ゲートで停止した時刻",
            "held by a health gate at",
            |s| s.waves.as_ref().and_then(|w| w.held_at.clone()),
        ),
        num(
            "bandwidth.peak_concurrent_downloads",
            "同時ダウンロード数（最大）",
            "peak concurrent downloads",
            |s| f64::from(s.bandwidth.peak_concurrent_downloads),
        ),
        num(
            "bandwidth.peak_egress_gbps",
            "配信帯域 Gbps（最大）",
            "peak egress (Gbps)",
            |s| s.bandwidth.peak_egress_gbps,
        ),
        num(
            "bandwidth.busiest_hour_gbps",
            "最繁時の平均帯域 Gbps",
            "busiest hour's average egress (Gbps)",
            |s| s.bandwidth.busiest_hour_gbps,
        ),
        num(
            "errors.patients",
            "エラーに遭った患者",
            "patients meeting the error",
            |s| s.errors.patients as f64,
        ),
        num(
            "errors.reader_901",
            "うちカードリーダー901表示",
            "of which 901 on the reader",
            |s| s.errors.reader_901 as f64,
        ),
        num(
            "errors.sites_meeting_errors",
            "エラーが出た施設",
            "sites meeting errors",
            |s| s.errors.sites_meeting_errors as f64,
        ),
        num(
            "errors.busiest_hour_patients",
            "最多時間帯のエラー患者数",
            "patients meeting the error in the busiest hour",
            |s| f64::from(s.errors.busiest_hour_patients),
        ),
        text(
            "errors.busiest_hour",
            "エラー最多の時間帯",
            "busiest hour for errors",
            |s| s.errors.busiest_hour.clone(),
        ),
        num(
            "call_centre.calls",
            "コールセンターへの電話",
            "calls to the call centre",
            |s| s.call_centre.calls as f64,
        ),
        num(
            "call_centre.busiest_hour_calls",
            "最多時間帯の電話数",
            "calls in the busiest hour",
            |s| f64::from(s.call_centre.busiest_hour_calls),
        ),
        text(
            "call_centre.busiest_hour",
            "コールセンター最繁時間帯",
            "call centre's busiest hour",
            |s| s.call_centre.busiest_hour.clone(),
        ),
        num(
            "restart_required.peak_sites",
            "再起動待ちの施設（最大）",
            "sites waiting for a restart (peak)",
            |s| f64::from(s.restart_required.peak_sites),
        ),
        num(
            "restart_required.at_end",
            "再起動待ちの施設（終了時）",
            "sites waiting for a restart at the end",
            |s| f64::from(s.restart_required.at_end),
        ),
    ];
    Comparison {
        seed: a.seed,
        a,
        b,
        rows,
    }
}

/// Whole numbers as JSON integers, others as they are.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Scenario, preset_campaign};

    /// 730 sites; `extra` may set `auto_restart` for every kind.
    fn run(extra: &str, auto_restart: f64) -> Summary {
        let text = format!(
            "{extra}\n[sites.hospital]\ncount = 30\nauto_restart = {auto_restart}\n\
             [sites.clinic]\ncount = 300\nauto_restart = {auto_restart}\n\
             [sites.dental]\ncount = 200\nauto_restart = {auto_restart}\n\
             [sites.pharmacy]\ncount = 200\nauto_restart = {auto_restart}\n"
        );
        let sc = Scenario::parse(&text, preset_campaign).expect("valid scenario");
        crate::run(&sc, 5, &mut |_| {}).summary
    }

    #[test]
    fn a_wider_throttle_raises_the_peak_and_the_same_fleet_is_compared() {
        let c = compare(
            run(
                "[distribution]\nmax_concurrent_downloads = 20\negress_gbps = 0.04",
                0.2,
            ),
            run(
                "[distribution]\nmax_concurrent_downloads = 50\negress_gbps = 0.04",
                0.2,
            ),
        );
        let row = |key: &str| c.rows.iter().find(|r| r.key == key).expect("row");
        assert_eq!(row("devices").change, Some(0.0), "same seed, same fleet");
        assert_eq!(
            row("bandwidth.peak_concurrent_downloads").a,
            Value::from(20)
        );
        assert_eq!(
            row("bandwidth.peak_concurrent_downloads").b,
            Value::from(50)
        );
        // Same egress shared by more slots: each slot is slower, the peak egress the same.
        assert_eq!(row("bandwidth.peak_egress_gbps").change, Some(0.0));
    }

    #[test]
    fn more_auto_restart_means_fewer_patients_meeting_the_error() {
        let c = compare(run("", 0.2), run("", 0.6));
        let patients = c
            .rows
            .iter()
            .find(|r| r.key == "errors.patients")
            .expect("row");
        assert!(patients.change.is_some_and(|d| d < 0.0), "{patients:?}");
        let json = serde_json::to_value(&c).expect("json");
        assert_eq!(json["rows"][0]["key"], "sites");
        assert!(json["a"]["errors"]["patients"].is_u64());
    }
}
