//! The reception emulator page in headless Chromium: a patient meets Atlus's 901 screen on a
//! terminal that was not restarted; staff see what to do, restart, and the same patient
//! succeeds; assumed screen texts carry their mark, quoted ones none. Screenshots are saved as
//! test artifacts.

use onshi_core::reception::ReceptionEvent as R;
use onshi_testkit::browser::Browser;
use onshi_testkit::spawn_app;

/// The emulator's button for `event`.
fn button(event: R) -> String {
    format!("#btn-{}", event.slug())
}

fn artifact(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_901_then_restart_and_the_patient_succeeds() {
    // A Tuesday morning: the call centre is open.
    let app = spawn_app("2026-01-20T09:30:00+09:00").await;
    let browser = Browser::start().await;
    browser
        .goto(&app.url("/reception?vendor=atlus&terminal=pending-restart"))
        .await;
    assert_eq!(browser.attr("#reader", "data-screen").await, "initial");
    browser
        .assert_accessible_in_both_languages("the reception desk, waiting")
        .await;

    browser.click(&button(R::CardInserted)).await;
    browser
        .assert_accessible_in_both_languages("the reception desk, face authentication")
        .await;
    browser.click(&button(R::FaceVerified)).await;
    browser
        .assert_accessible_in_both_languages("the reception desk, consent")
        .await;
    browser.click(&button(R::ConsentCompleted)).await;
    // ①: the terminal shows its first error dialog; Atlus goes back to its first screen.
    assert_eq!(browser.attr("#terminal-screen", "data-dialog").await, "1");
    assert_eq!(browser.attr("#reader", "data-screen").await, "initial");
    browser
        .assert_accessible_in_both_languages("the reception desk at ①")
        .await;
    browser.click(&button(R::OkPressed)).await;
    assert_eq!(browser.attr("#terminal-screen", "data-dialog").await, "2");
    browser.click(&button(R::OkPressed)).await;
    // ②: error 901 with Atlus's texts, and the guide for staff.
    assert_eq!(browser.attr("#reader", "data-screen").await, "error_901");
    let reader = browser.text("#reader").await;
    assert!(reader.contains("▲ご確認ください▲"), "{reader}");
    assert!(
        reader.contains("マイナンバーカードを取り出し受付窓口までお越しください"),
        "{reader}"
    );
    assert_eq!(
        reader.matches("【901】").count(),
        1,
        "the code as Atlus shows it, no heading added: {reader}"
    );
    let guide = browser.text("#guide").await;
    assert!(
        guide.contains("資格確認端末を再起動してください"),
        "{guide}"
    );
    assert!(guide.contains("0800-080-4583"), "{guide}");
    assert!(guide.contains("KB0011769"), "{guide}");
    assert!(
        browser.text("#callcentre-status").await.contains("受付中"),
        "open on a Tuesday morning"
    );
    assert!(browser.text("#log").await.contains("901"));
    browser
        .assert_accessible_in_both_languages("the reception desk at 901")
        .await;
    artifact("reception-atlus-901.png", &browser.screenshot().await);

    browser.click(&button(R::CardRemoved)).await;
    browser.click(&button(R::TerminalRestarted)).await;
    browser.click(&button(R::CardInserted)).await;
    browser.click(&button(R::FaceVerified)).await;
    browser.click(&button(R::ConsentCompleted)).await;
    assert_eq!(browser.attr("#reader", "data-screen").await, "result");
    assert!(
        browser
            .text("#terminal-screen")
            .await
            .contains("資格確認が完了しました")
    );
    let log = browser.text("#log").await;
    assert!(log.contains("未確認（要再受付）"), "{log}");
    assert!(log.contains("資格確認済み"), "{log}");
    browser
        .assert_accessible_in_both_languages("the reception desk after the restart")
        .await;
    artifact(
        "reception-atlus-after-restart.png",
        &browser.screenshot().await,
    );
}

const MARK_JA: &str = "※通知に文言の記載がないため想定表示です";
const MARK_EN: &str = "not quoted in the notice: an assumed text";

/// A patient on a terminal that was not restarted, up to ①: the first error dialog.
async fn to_first_dialog(browser: &Browser) {
    browser.click(&button(R::CardInserted)).await;
    browser.click(&button(R::FaceVerified)).await;
    browser.click(&button(R::ConsentCompleted)).await;
    assert_eq!(browser.attr("#terminal-screen", "data-dialog").await, "1");
}

/// From ① to ②: two OKs, and the reader shows 901.
async fn to_901(browser: &Browser) {
    browser.click(&button(R::OkPressed)).await;
    browser.click(&button(R::OkPressed)).await;
    assert_eq!(browser.attr("#reader", "data-screen").await, "error_901");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_screens_are_marked_and_a_quoted_901_shows_its_code_once() {
    let app = spawn_app("2026-01-20T09:30:00+09:00").await;
    let browser = Browser::start().await;

    // Panasonic: the notice shows the terminal's dialogs and the 901 screen only as pictures.
    browser
        .goto(&app.url("/reception?vendor=panasonic&terminal=pending-restart"))
        .await;
    to_first_dialog(&browser).await;
    let dialog = browser.text("#terminal-dialog").await;
    assert!(dialog.contains(MARK_JA), "{dialog}");
    assert!(
        !dialog.contains("再起動"),
        "no cause the notice does not give: {dialog}"
    );
    assert_eq!(
        browser.attr("#terminal-screen", "data-source").await,
        "assumed"
    );
    assert!(
        browser
            .text("#reader-behaviour")
            .await
            .contains("完了画面が表示されるが、カードを抜き取っても画面が切り替わらない"),
        "the behaviour in the notice's words"
    );
    to_901(&browser).await;
    let reader = browser.text("#reader").await;
    assert!(reader.contains(MARK_JA), "{reader}");
    assert_eq!(reader.matches("【901】").count(), 1, "{reader}");
    assert_eq!(browser.attr("#reader", "data-source").await, "assumed");
    artifact("reception-panasonic-901.png", &browser.screenshot().await);
    // The same desk in English: the mark in English too.
    let en = browser.url().await.replace("lang=ja", "lang=en");
    browser.goto(&en).await;
    let reader = browser.text("#reader").await;
    assert!(reader.contains(MARK_EN), "{reader}");
    assert!(!reader.contains(MARK_JA), "{reader}");

    // USEN-ALMEX: its 901 text is quoted in the notice, code and all.
    browser
        .goto(&app.url("/reception?vendor=usen-almex&terminal=pending-restart"))
        .await;
    to_first_dialog(&browser).await;
    assert!(browser.text("#terminal-dialog").await.contains(MARK_JA));
    to_901(&browser).await;
    let reader = browser.text("#reader").await;
    assert!(
        reader.contains(
            "職員はオンライン資格確認等システムの障害発生状況を確認してください。【901：オンライン資格確認等システムの障害発生】"
        ),
        "{reader}"
    );
    assert!(!reader.contains(MARK_JA), "quoted, not assumed: {reader}");
    assert_eq!(
        reader.matches("901").count(),
        1,
        "no second 【901】: {reader}"
    );
    assert_eq!(browser.attr("#reader", "data-source").await, "quoted");
    artifact("reception-usen-almex-901.png", &browser.screenshot().await);
}

/// Whether the element matching `css` is inside the window as it is now.
async fn on_screen(browser: &Browser, css: &str) -> bool {
    let js = format!(
        "const r = document.querySelector({css:?}).getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight;"
    );
    browser.script(&js).await == serde_json::Value::Bool(true)
}

/// On a phone, in English, with Canon's reader: each press comes back to the screens with the
/// buttons beside them (not the top of the page); the device screens stay Japanese, marked
/// `lang="ja"`, with an English gloss beneath; the spinner turns unless motion is reduced; the
/// favicon is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_buttons_stay_by_the_screens_and_english_glosses_the_japanese_screens() {
    let app = spawn_app("2026-01-20T09:30:00+09:00").await;
    let browser = Browser::start().await;
    browser.resize(390, 844).await;
    browser
        .goto(&app.url("/reception?vendor=canon&terminal=pending-restart&lang=en"))
        .await;
    assert!(
        browser.url().await.ends_with("#desk"),
        "{}",
        browser.url().await
    );
    for (event, next) in [
        (R::CardInserted, R::FaceVerified),
        (R::FaceVerified, R::ConsentCompleted),
        (R::ConsentCompleted, R::OkPressed),
    ] {
        browser.click(&button(event)).await;
        assert!(browser.url().await.ends_with("#desk"));
        assert!(
            on_screen(&browser, &button(next)).await && on_screen(&browser, "#reader").await,
            "the reader and {next:?}'s button on the screen after {event:?}"
        );
    }
    // ①: Canon's 「しばらくお待ちください」 with a turning spinner, in Japanese on an English page.
    assert_eq!(browser.attr("#reader", "data-screen").await, "please_wait");
    assert_eq!(browser.attr("#reader .screen-text", "lang").await, "ja");
    assert!(
        browser
            .text("#reader .screen-text")
            .await
            .contains("しばらくお待ちください")
    );
    let gloss = browser.text("#reader + .gloss").await;
    assert!(gloss.contains("Please wait a moment."), "{gloss}");
    assert_eq!(browser.attr("#terminal-dialog p", "lang").await, "ja");
    assert!(
        browser
            .text("#terminal-dialog + .gloss")
            .await
            .contains("The qualification has not been confirmed.")
    );
    assert_eq!(
        browser
            .script(
                "return getComputedStyle(document.querySelector('#reader .spinner')).animationName"
            )
            .await,
        "spin"
    );
    assert_eq!(
        browser.attr("#reader .spinner", "role").await,
        "img",
        "named as an image, not a bare span with a label"
    );
    browser
        .assert_accessible_in_both_languages("Canon's desk at ① on a phone")
        .await;
    artifact("reception-canon-phone-en.png", &browser.screenshot().await);
    // The stylesheet stops the spinner for people who asked for less motion.
    let css = reqwest::get(app.url("/reception"))
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        css.contains("@media (prefers-reduced-motion: reduce) { .spinner { animation:none;"),
        "reduced motion respected"
    );
    // A desk that is gone: a page in the page's language, not JSON.
    browser
        .goto(&app.url("/reception/no-such-desk?lang=en"))
        .await;
    let gone = browser.text("#error").await;
    assert!(gone.contains("Open the reception emulator again"), "{gone}");
    browser
        .assert_accessible_in_both_languages("an expired desk")
        .await;
    let icon = reqwest::get(app.url("/favicon.ico"))
        .await
        .expect("favicon");
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/x-icon");
    assert!(
        icon.bytes()
            .await
            .expect("bytes")
            .starts_with(&[0, 0, 1, 0])
    );
}
