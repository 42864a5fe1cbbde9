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
        "職員はオンライン資格確認等システムの障害発生状況を確認してください",
        "【901】",
        "マイナンバーカードを取り出し受付窓口までお越しください",
    ] {
        assert!(text.lines().any(|l| l == line), "{text}");
    }
    assert_eq!(last["reader"]["source"], "quoted");
}

const MARK: &str = "※通知に文言の記載がないため想定表示です";

fn pending_restart_json(vendor: &str) -> Vec<serde_json::Value> {
    let out = reception(&[
        "--vendor",
        vendor,
        "--terminal",
        "pending-restart",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["steps"].as_array().expect("steps").clone()
}

fn pending_restart_human(vendor: &str) -> String {
    let out = reception(&["--vendor", vendor, "--terminal", "pending-restart"]);
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn panasonic_pending_restart_names_each_screens_source_and_marks_the_assumed_ones() {
    let steps = pending_restart_json("panasonic");
    for step in &steps {
        assert!(
            step["reader"]["source"] == "assumed",
            "no Panasonic wording is quoted in the notice: {step}"
        );
        match step["terminal"]["dialog"].as_str() {
            Some("error") => assert_eq!(step["terminal"]["source"], "assumed", "{step}"),
            _ => assert!(step["terminal"].get("source").is_none(), "{step}"),
        }
    }
    let at_consent = &steps[2];
    assert_eq!(at_consent["reader"]["screen"], "completion_frozen");
    assert_eq!(
        at_consent["reader"]["behaviour"],
        "完了画面が表示されるが、カードを抜き取っても画面が切り替わらない",
        "the behaviour is the notice's"
    );
    let dialog = at_consent["terminal"]["text"]
        .as_str()
        .expect("dialog text");
    assert!(
        !dialog.contains("再起動"),
        "no cause the notice does not give: {dialog}"
    );
    let last = &steps.last().expect("a last step")["reader"];
    assert_eq!(
        (&last["screen"], &last["code"]),
        (&"error_901".into(), &"901".into())
    );
    assert_eq!(
        last["text"].as_str().map(|t| t.matches("901").count()),
        Some(1)
    );

    let human = pending_restart_human("panasonic");
    let marked = |prefix: &str| {
        let lines: Vec<&str> = human
            .lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .collect();
        !lines.is_empty() && lines.iter().all(|l| l.ends_with(MARK))
    };
    assert!(marked("カードリーダー: [error_901]"), "{human}");
    assert!(marked("資格確認端末: エラーダイアログ"), "{human}");
    assert!(
        human.contains("資格確認端末: エラーダイアログ（1回目）"),
        "{human}"
    );
}

#[test]
fn usen_almex_901_is_quoted_unmarked_and_shows_its_code_once() {
    let notice = "職員はオンライン資格確認等システムの障害発生状況を確認してください。【901：オンライン資格確認等システムの障害発生】";
    let steps = pending_restart_json("usen-almex");
    let last = &steps.last().expect("a last step")["reader"];
    assert_eq!(last["screen"], "error_901");
    assert_eq!(last["source"], "quoted");
    assert_eq!(last["text"], notice, "exactly as the notice writes it");
    assert_eq!(
        steps[2]["reader"]["source"], "assumed",
        "the last consent screen's wording"
    );

    let human = pending_restart_human("usen-almex");
    let screens: Vec<&str> = human
        .lines()
        .filter_map(|l| l.split_once("カードリーダー: [error_901] ").map(|(_, s)| s))
        .collect();
    assert!(!screens.is_empty(), "{human}");
    for s in screens {
        assert_eq!(
            s,
            format!("{notice}（画面が切り替わらない）"),
            "no mark, one code"
        );
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
    assert!(text.contains("エラー【901】"), "{text}");
    assert!(text.contains(MARK), "Canon's 901 is only a picture: {text}");
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
