//! `onshi reception` as a script sees it.

use std::process::Command;

use onshi_core::reception::ReceptionEvent;

fn reception(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onshi"))
        .arg("reception")
        .args(args)
        .output()
        .expect("onshi runs")
}

#[test]
fn atlus_pending_restart_ends_in_901_with_the_atlus_texts() {
    let out = reception(&[
        "--vendor",
        "atlus",
        "--terminal",
        "pending-restart",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["vendor"], "atlus");
    assert_eq!(v["terminal"], "pending-restart");
    assert_eq!(v["confirmed"], false);
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps[2]["event"], ReceptionEvent::ConsentCompleted.slug());
    assert_eq!(steps[2]["terminal"]["dialog"], "error");
    assert_eq!(steps[2]["terminal"]["count"], 1);
    assert_eq!(steps[2]["reader"]["screen"], "initial");
    assert_eq!(steps[3]["terminal"]["count"], 2);
    let last = steps.last().expect("a last step");
    assert_eq!(last["reader"]["screen"], "error_901");
    assert_eq!(last["reader"]["code"], "901");
    let text = last["reader"]["text"].as_str().expect("text");
    for line in [
        "エラーコード表示",
        "▲ご確認ください▲",
        "職員はオンライン資格確認等システムの障害発生状況を確認してください【901】",
        "マイナンバーカードを取り出し受付窓口までお越しください",
    ] {
        assert!(text.contains(line), "{text}");
    }
}

#[test]
fn each_vendor_shows_its_screen_at_consent() {
    for (vendor, screen) in [
        ("panasonic", "completion_frozen"),
        ("canon", "please_wait"),
        ("usen-almex", "consent_loading"),
        ("fujitsu-japan", "consent_loading"),
        ("atlus", "initial"),
    ] {
        let out = reception(&[
            "--vendor",
            vendor,
            "--terminal",
            "pending-restart",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let at_consent = v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["event"] == ReceptionEvent::ConsentCompleted.slug())
            .expect("consent step");
        assert_eq!(at_consent["reader"]["screen"], screen, "{vendor}");
    }
}

#[test]
fn up_to_date_confirms_and_the_human_trace_is_japanese() {
    let out = reception(&["--vendor", "canon", "--terminal", "up-to-date", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["confirmed"], true);
    assert_eq!(
        v["steps"]
            .as_array()
            .and_then(|s| s.last())
            .map(|s| &s["reader"]["screen"]),
        Some(&serde_json::json!("result"))
    );
    let out = reception(&["--vendor", "canon", "--terminal", "pending-restart"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("しばらくお待ちください"), "{text}");
    assert!(text.contains("エラー901"), "{text}");
    assert!(text.contains("資格確認は完了していません"), "{text}");
}

#[test]
fn an_unknown_vendor_or_state_exits_2() {
    for args in [
        ["--vendor", "sony", "--terminal", "up-to-date"],
        ["--vendor", "canon", "--terminal", "stale"],
    ] {
        let out = reception(&args);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--vendor") || err.contains("--terminal"),
            "{err}"
        );
    }
}
