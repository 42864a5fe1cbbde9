//! The pages people look at: the operator logs in and sees the dashboard with the progress API's
//! numbers, a site sees that its terminal needs a restart, anyone reads the guidance — in
//! headless Chromium, with screenshots saved as test artifacts — and, over plain HTTP, what
//! keeps them safe: failed logins, CSRF and cross-site posts refused, cookie flags, the language
//! switch, the CSV export and the release upload form.

use onshi_api::ErrorCode;
use onshi_api::admin::{CampaignView, Progress};
use onshi_core::deployment::{DeploymentEvent as E, DeploymentState};
use onshi_core::offer::{CampaignAction, CampaignStatus};
use onshi_core::release::{Sha256, Target};
use onshi_core::trust::Signed;
use onshi_core::version::Version;
use onshi_testkit::browser::Browser;
use onshi_testkit::keys;
use onshi_testkit::logins::no_redirects;
use onshi_testkit::{CAMPAIGN, OPERATOR_TOKEN, TestApp, spawn_app};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

const SITES_CSV: &str = "code,name,kind,prefecture,email,auto_restart,phone
0110113719,テスト診療所 札幌,clinic,北海道,sapporo@example.invalid,,011-123-4567
2714206386,テスト病院 大阪,hospital,27,osaka@example.invalid,07:30,
1341010005,テスト薬局 東京,pharmacy,13,tokyo@example.invalid,,
1311111114,テスト医院 東京,clinic,13,tokyo2@example.invalid,,03-1234-5678
";

/// Sapporo: installed, restart required. Osaka: waiting. Tokyo pharmacy: applied. Tokyo
/// clinic: failed. All but Osaka (never heard from) last checked in on the first night, so from
/// [`SILENT_AT`] on Sapporo's and the Tokyo clinic's terminals are silent (the applied pharmacy's
/// is done).
const SAPPORO: &str = "0110113719";
/// More than the default 72 hours after the first night's reports (19th 21:00).
const SILENT_AT: &str = "2026-01-23T12:00:00+09:00";

fn artifact(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Four sites in three prefectures, a campaign on the 2026-01 preset, and one night's work:
/// returns the app (clock on Tuesday 2026-01-20 08:30, call centre open) and Sapporo's access
/// key.
async fn campaign_after_first_night() -> (TestApp, String) {
    let app = spawn_app("2026-01-19T12:00:00+09:00").await;
    onshi_testkit::terminal_campaign(&app, SITES_CSV.to_owned(), 10_000, "r2026-01", 100, 60).await;
    let codes = ["0110113719", "2714206386", "1341010005", "1311111114"];
    let mut tokens = Vec::new();
    for code in codes {
        tokens.push(app.enroll(code, &format!("TERM-{code}")).await);
    }
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-19T21:00:00+09:00").await;
    let install = [
        E::DownloadStarted,
        E::DownloadVerified,
        E::InstallStarted,
        E::InstallCompleted,
    ];
    app.report_steps(&tokens[0], &install).await;
    let mut applied = install.to_vec();
    applied.push(E::Running(Version::parse("2.0.0").expect("version")));
    app.report_steps(&tokens[2], &applied).await;
    app.report_steps(&tokens[3], &[E::DownloadStarted, E::Failed])
        .await;
    app.set_clock("2026-01-20T08:30:00+09:00").await;
    let key = app
        .expect(
            app.admin(
                Method::POST,
                &format!("/api/v1/admin/institutions/{SAPPORO}/access-key"),
            ),
            200,
        )
        .await["access_key"]
        .as_str()
        .expect("access key")
        .to_owned();
    (app, key)
}

async fn progress(app: &TestApp) -> Progress {
    app.expect_as(
        app.admin(Method::GET, "/api/v1/admin/campaigns/2026-01/progress"),
        200,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_site_and_guidance_pages_in_chromium() {
    let (app, access_key) = campaign_after_first_night().await;
    let api = progress(&app).await;
    let browser = Browser::start().await;

    // Every page and state is checked with axe-core as it is reached (both languages where a
    // GET shows it again, desktop and phone).
    browser.goto(&app.url("/")).await;
    browser
        .assert_accessible_in_both_languages("the top page")
        .await;
    // The operator: the dashboard is behind the login.
    browser.goto(&app.url("/operator")).await;
    assert!(browser.url().await.ends_with("/operator/login"));
    browser
        .assert_accessible_in_both_languages("the operator's login")
        .await;
    browser.fill("#token", "not-the-operator-token").await;
    browser.click("#login").await;
    assert!(browser.text("#error").await.contains("運用者トークン"));
    browser
        .assert_accessible("the operator's login after a wrong token")
        .await;
    browser.fill("#token", OPERATOR_TOKEN).await;
    browser.click("#login").await;
    assert!(
        browser.url().await.ends_with("/operator/campaigns/2026-01"),
        "login lands on the running campaign"
    );
    assert_eq!(api.all.states.len(), DeploymentState::ALL.len(), "{api:?}");
    for state in DeploymentState::ALL {
        assert_eq!(
            browser.attr(&format!("#count-{state}"), "data-count").await,
            api.all.get(state).to_string(),
            "{state} on the dashboard vs the API"
        );
    }
    assert_eq!(
        browser.attr("#count-total", "data-count").await,
        api.all.total.to_string()
    );
    assert_eq!(
        browser.attr("#count-restart_required", "data-count").await,
        api.all.restart_required.to_string()
    );
    assert_eq!(api.all.restart_required, 1);
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#by-prefecture tr[data-prefecture]').length")
            .await,
        47
    );
    // The 25th is excluded on the calendar; catch-up from the 31st.
    assert!(
        browser
            .attr("#calendar [data-date='2026-01-25']", "class")
            .await
            .contains("excluded")
    );
    assert!(
        browser
            .attr("#calendar [data-date='2026-01-31']", "class")
            .await
            .contains("catch_up")
    );
    assert!(
        browser
            .text("#window")
            .await
            .contains("次の配信開始は2026年1月20日(火) 20:00")
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#chart svg.chart-wide path').length")
            .await,
        5,
        "one area per state group, from activation to now"
    );
    browser
        .assert_accessible_in_both_languages("the dashboard the morning after")
        .await;
    browser.resize(1280, 2600).await;
    artifact("dashboard-desktop.png", &browser.screenshot().await);

    // Sorted by restarts needed, Hokkaido (Sapporo) comes first.
    browser.click("#sort-restart").await;
    assert_eq!(
        browser
            .attr("#by-prefecture tr[data-prefecture]", "data-prefecture")
            .await,
        "1"
    );
    // The list of sites needing a restart.
    browser
        .goto(&app.url("/operator/campaigns/2026-01/sites?need=restart"))
        .await;
    assert_eq!(browser.attr("#total", "data-total").await, "1");
    let listed = browser.text("#sites").await;
    assert!(listed.contains(SAPPORO), "{listed}");
    // Whom to call and what to tell them, in the site page's words.
    assert_eq!(
        browser
            .attr(&format!("#sites tr[data-code='{SAPPORO}'] a.phone"), "href")
            .await,
        "tel:0111234567"
    );
    assert_eq!(
        browser
            .attr(
                &format!("#sites tr[data-code='{SAPPORO}'] .tell"),
                "data-advice"
            )
            .await,
        "restart_now"
    );
    assert!(
        listed.contains("資格確認端末を再起動してください"),
        "{listed}"
    );
    browser
        .assert_accessible_in_both_languages("the sites needing a restart")
        .await;
    browser.resize(1280, 1000).await;
    artifact("sites-needing-restart.png", &browser.screenshot().await);
    // On a phone each site is a card: labels above whole words, the phone number first.
    browser.resize(390, 844).await;
    artifact(
        "sites-needing-restart-phone.png",
        &browser.screenshot().await,
    );
    browser.goto(&app.url("/operator?lang=en")).await;
    assert!(
        browser
            .text("#campaigns")
            .await
            .contains(CampaignStatus::Active.slug())
    );
    browser
        .assert_accessible_in_both_languages("the operator's campaigns")
        .await;
    artifact("operator-home-en.png", &browser.screenshot().await);

    // Every list of sites needing action, in both languages.
    for need in ["not_received", "failed", "silent"] {
        browser
            .goto(&app.url(&format!("/operator/campaigns/2026-01/sites?need={need}")))
            .await;
        browser
            .assert_accessible_in_both_languages(&format!("the sites list: {need}"))
            .await;
    }

    // The site: its terminal needs a restart, in the notice's words.
    browser.goto(&app.url("/site")).await;
    browser
        .assert_accessible_in_both_languages("the site's login")
        .await;
    // A wrong key: the code stays, the key is typed again (and can be shown).
    browser.fill("#code", SAPPORO).await;
    browser.fill("#access_key", "not-the-key").await;
    browser.click("#login").await;
    assert!(browser.text("#error").await.contains("正しくありません"));
    assert_eq!(
        browser
            .script("return document.getElementById('code').value")
            .await,
        SAPPORO
    );
    assert_eq!(
        browser
            .script("return document.getElementById('access_key').value")
            .await,
        ""
    );
    browser
        .assert_accessible("the site's login after a wrong key")
        .await;
    browser.fill("#access_key", &access_key).await;
    browser.click("#login").await;
    assert_eq!(browser.attr("#advice", "data-advice").await, "restart_now");
    let advice = browser.text("#advice").await;
    assert!(
        advice.contains(
            "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。"
        ),
        "{advice}"
    );
    assert_eq!(
        browser
            .attr("#devices tr[data-kind='terminal']", "data-state")
            .await,
        DeploymentState::Installed.slug()
    );
    assert!(
        browser
            .text("#devices")
            .await
            .contains("2026年1月19日(月) 21:00"),
        "last contact in Japan time"
    );
    // The row says what the headline says, in the same words.
    let row = browser
        .text("#devices tr[data-kind='terminal'] .device-advice")
        .await;
    assert!(advice.contains(&row), "row {row:?} vs headline {advice:?}");
    // Once is enough; how to check the install; what to do when 901 appears.
    assert!(
        browser
            .text("#once")
            .await
            .contains("上記期間中、1度だけ実施いただければ問題ございません")
    );
    let check = browser.text("#completion-check").await;
    assert!(
        check.contains("インストール完了の確認手順は、公式サイトで別途案内されます")
            && check.contains("上の「機器ごとの状況」でも確認できます。")
            && !check.contains("onshi-agent status")
            && !check.contains("/site"),
        "{check}"
    );
    let on_901 = browser.text("#on-901").await;
    for words in [
        "901 が表示されたら",
        "資格確認端末を再起動してください",
        "もう一度マイナ保険証をご利用いただくよう",
        "0800-080-4583",
        "マイナ保険証での受付が出来ない場合の資格確認方法・レセプト請求方法",
    ] {
        assert!(on_901.contains(words), "{words}: {on_901}");
    }
    assert!(
        browser
            .attr("#on-901-fallback a", "href")
            .await
            .contains("KB0011769")
    );
    browser
        .assert_accessible_in_both_languages("the site needing a restart")
        .await;
    artifact(
        "site-restart-required-desktop.png",
        &browser.screenshot().await,
    );
    browser.resize(390, 844).await;
    artifact(
        "site-restart-required-phone.png",
        &browser.screenshot().await,
    );

    // The guidance, on a phone and on a desktop.
    browser.goto(&app.url("/guidance")).await;
    browser
        .assert_accessible_in_both_languages("the guidance")
        .await;
    let schedule = browser.text("#schedule").await;
    assert!(
        schedule.contains("2026年1月19日(月) 20:00 ～ 2026年1月20日(火) 05:00"),
        "{schedule}"
    );
    assert!(schedule.contains("2026年1月25日(日)") && schedule.contains("配信なし"));
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#schedule tr').length")
            .await,
        // header, 11 nights, the 25th, catch-up
        14
    );
    assert!(
        browser
            .text("#period")
            .await
            .contains("2026年1月19日(月)～1月30日(金) 各日20:00～翌5:00（1月25日(日)を除く）")
    );
    assert_eq!(
        browser.text("#callcentre-status").await,
        "受付中（本日18:00まで）"
    );
    let check = browser.text("#completion-check").await;
    assert!(
        check.contains("医療機関・薬局の方のページでも、機器ごとの状況を確認できます。")
            && !check.contains("onshi-agent status"),
        "{check}"
    );
    assert!(
        browser
            .attr("#fallback a", "href")
            .await
            .contains("KB0011769")
    );
    let source = browser.text("#source").await;
    assert!(
        source.contains("日医発第1576号")
            && source.contains("令和7年12月25日")
            && source.contains("事務連絡（令和7年12月24日）"),
        "{source}"
    );
    assert!(
        source.contains(
            "本件は、医療機関等向けポータルサイトからのメール、および1月のオンライン請求時の画面でも通知されます。"
        ),
        "{source}"
    );
    artifact("guidance-phone.png", &browser.screenshot().await);
    browser.resize(1280, 2400).await;
    artifact("guidance-desktop.png", &browser.screenshot().await);

    // English on request, with the switch back to Japanese.
    browser.click("#lang-switch").await;
    assert!(browser.url().await.ends_with("/guidance?lang=en"));
    assert_eq!(
        browser.text("#callcentre-status").await,
        "Open (until 18:00 today)"
    );
    assert_eq!(browser.text("#lang-switch").await, "日本語");

    assert!(browser.text("#source").await.contains("日医発第1576号"));

    // Three days on, two terminals have not been heard from: on the dashboard as in the API,
    // and listed by prefecture.
    app.set_clock(SILENT_AT).await;
    let api = progress(&app).await;
    assert_eq!(api.silent_terminals, 2, "{api:?}");
    browser.resize(1280, 2600).await;
    browser.goto(&app.url("/operator/campaigns/2026-01")).await;
    assert_eq!(
        browser.attr("#count-silent", "data-count").await,
        api.silent_terminals.to_string()
    );
    assert!(browser.text("#silent-rule").await.contains("72時間以上"));
    browser
        .assert_accessible_in_both_languages("the dashboard with silent terminals")
        .await;
    browser
        .goto(&app.url("/operator/campaigns/2026-01/sites?need=silent&prefecture=1"))
        .await;
    assert_eq!(browser.attr("#total", "data-total").await, "1");
    let listed = browser.text("#sites").await;
    assert!(listed.contains(SAPPORO), "{listed}");
    assert!(listed.contains("2026年1月19日(月) 21:00"), "{listed}");
    assert!(!listed.contains("1311111114"), "{listed}");
    assert!(
        listed.contains("資格確認端末の電源が入っていること"),
        "what to check, in the silent mail's words: {listed}"
    );
    browser
        .assert_accessible_in_both_languages("the silent terminals in Hokkaido")
        .await;
    browser.resize(1280, 1000).await;
    artifact("sites-silent.png", &browser.screenshot().await);
    browser
        .goto(&app.url("/operator/campaigns/2026-01/sites?need=silent&lang=en"))
        .await;
    assert_eq!(browser.attr("#total", "data-total").await, "2");
    assert!(
        browser
            .text("#need")
            .await
            .contains("not heard from (terminals)")
    );
    artifact("sites-silent-en.png", &browser.screenshot().await);
    // A page that failed: an HTML error page.
    browser
        .goto(&app.url("/operator/campaigns/no-such-campaign"))
        .await;
    assert!(browser.text("#error").await.len() > 3);
    browser
        .assert_accessible_in_both_languages("an error page")
        .await;
}

// ---------- plain HTTP ----------

/// Logs the operator in; returns the session cookie (`name=value`).
async fn operator_cookie(app: &TestApp) -> String {
    let r = no_redirects()
        .post(app.url("/operator/login"))
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let set = r
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .expect("ascii");
    set.split(';').next().expect("name=value").to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..]
        .split('"')
        .next()
        .expect("closing quote")
        .to_owned()
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> String {
    let r = no_redirects()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.expect("html")
}

#[tokio::test]
async fn a_wrong_operator_token_gets_no_session() {
    let app = spawn_app("2026-01-20T09:00:00+09:00").await;
    let r = no_redirects()
        .post(app.url("/operator/login"))
        .form(&[("token", "not-the-token-at-all")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("運用者トークンが正しくありません")
    );
    // Without a session the dashboard sends the browser to the login form.
    let r = no_redirects()
        .get(app.url("/operator"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/operator/login");
    let r = no_redirects()
        .get(app.url("/operator/campaigns/2026-01/sites.csv"))
        .header(COOKIE, "onshi_operator=forged")
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 303, "no CSV without a session");
}

#[tokio::test]
async fn session_cookies_are_http_only_strict_and_secure_behind_https() {
    let app = spawn_app("2026-01-20T09:00:00+09:00").await;
    let r = no_redirects()
        .post(app.url("/operator/login"))
        .form(&[("token", OPERATOR_TOKEN), ("lang", "en")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/operator?lang=en");
    let cookie = r.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(cookie.starts_with("onshi_operator="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let r = no_redirects()
        .post(app.url("/operator/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .expect("login");
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("; Secure")
    );
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_from_another_site_are_refused() {
    let (app, _) = campaign_after_first_night().await;
    let cookie = operator_cookie(&app).await;
    let html = page(&app, "/operator/campaigns/2026-01", &cookie).await;
    let csrf = csrf_of(&html);
    let control = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut req = no_redirects()
            .post(app.url("/operator/campaigns/2026-01/control"))
            .header(COOKIE, cookie.clone())
            .form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let r = control(vec![("action", CampaignAction::Pause.to_string())], None)
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "no token");
    let r = control(
        vec![
            ("action", CampaignAction::Pause.to_string()),
            ("csrf", "forged".into()),
        ],
        None,
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 403, "wrong token");
    let r = control(
        vec![
            ("action", CampaignAction::Pause.to_string()),
            ("csrf", csrf.clone()),
        ],
        Some("https://evil.example"),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 403, "cross-site");
    let campaign: CampaignView = app
        .expect_as(
            app.admin(Method::GET, "/api/v1/admin/campaigns/2026-01"),
            200,
        )
        .await;
    assert_eq!(campaign.status, CampaignStatus::Active, "nothing changed");

    // The real form pauses the campaign through the API's code path.
    let r = control(
        vec![
            ("action", CampaignAction::Pause.to_string()),
            ("csrf", csrf),
        ],
        None,
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 303);
    let v: CampaignView = app
        .expect_as(
            app.admin(Method::GET, "/api/v1/admin/campaigns/2026-01"),
            200,
        )
        .await;
    assert_eq!(v.status, CampaignStatus::Paused);
    let html = page(&app, "/operator/campaigns/2026-01", &cookie).await;
    assert!(html.contains("id=\"flash\""), "the outcome is shown once");
    let audit = app
        .expect(app.admin(Method::GET, "/api/v1/admin/audit?limit=5"), 200)
        .await;
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e["action"] == "campaign_pause")
    );
}

#[tokio::test]
async fn the_language_switch_keeps_the_page() {
    let app = spawn_app("2026-01-25T12:00:00+09:00").await;
    let ja = page(&app, "/guidance", "").await;
    assert!(ja.contains("<html lang=\"ja\">"));
    assert!(ja.contains("配信のご案内"));
    assert!(ja.contains("受付時間外です。次の受付開始は2026年1月26日(月) 08:00です。"));
    assert!(
        ja.contains("href=\"/guidance?lang=en\""),
        "switch to English"
    );
    let en = page(&app, "/guidance?lang=en", "").await;
    assert!(en.contains("<html lang=\"en\">"));
    assert!(en.contains("Closed. Next opening: Mon 26 Jan 2026 08:00 JST."));
    assert!(en.contains("href=\"/guidance\""), "switch back to Japanese");
    let top = page(&app, "/", "").await;
    for link in ["/guidance", "/site", "/operator", "/reception"] {
        assert!(top.contains(&format!("href=\"{link}\"")), "{link}");
    }
}

#[tokio::test]
async fn a_site_logs_in_with_its_access_key_only() {
    let (app, key) = campaign_after_first_night().await;
    let login = |code: &'static str, key: String| {
        no_redirects()
            .post(app.url("/site/login"))
            .form(&[("code", code.to_owned()), ("access_key", key)])
            .send()
    };
    let r = login(SAPPORO, "wrong-key".into()).await.expect("login");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let again = r.text().await.expect("html");
    assert!(
        again.contains(&format!("id=\"code\" name=\"code\" inputmode=\"numeric\" maxlength=\"10\" autocomplete=\"username\" required value=\"{SAPPORO}\"")),
        "a wrong key keeps the code: {again}"
    );
    // The key of one site opens no other site.
    let r = login("2714206386", key.clone()).await.expect("login");
    assert_eq!(r.status(), 401);
    let r = login(SAPPORO, key).await.expect("login");
    assert_eq!(r.status(), 303);
    let set = r.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(
        set.contains(&format!("Max-Age={}", 90 * 24 * 3600)),
        "a site stays signed in on its browser: {set}"
    );
    let cookie = set.split(';').next().expect("cookie").to_owned();
    assert!(cookie.starts_with("onshi_site="));
    let html = page(&app, "/site", &cookie).await;
    assert!(html.contains("data-advice=\"restart_now\""));
    let en = page(&app, "/site?lang=en", &cookie).await;
    assert!(en.contains("If a card reader shows 901"), "{en}");
    assert!(en.contains("Once during the period is enough"), "{en}");
    assert!(html.contains("テスト診療所 札幌"));
    // A site session is not an operator session.
    let r = no_redirects()
        .get(app.url("/operator"))
        .header(COOKIE, cookie.replace("onshi_site", "onshi_operator"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(r.status(), 303);
    // Logging out ends the session on the server, not only in the browser.
    let r = no_redirects()
        .post(app.url("/site/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    let html = page(&app, "/site", &cookie).await;
    assert!(html.contains("id=\"access_key\""), "the login form again");
}

/// Logs Sapporo in over plain HTTP and returns its session cookie.
async fn site_cookie(app: &TestApp, key: &str) -> String {
    onshi_testkit::logins::site_login(app, &no_redirects(), SAPPORO, key).await
}

#[tokio::test]
async fn the_site_page_flags_a_silent_terminal_and_says_distribution_runs_all_day_from_the_catch_up_date()
 {
    let (app, key) = campaign_after_first_night().await;
    let cookie = site_cookie(&app, &key).await;
    let html = page(&app, "/site", &cookie).await;
    assert!(
        !html.contains("通信が途絶えています"),
        "heard from 12 hours ago"
    );
    assert!(
        !html.contains("以降は終日配信されています"),
        "before the catch-up date"
    );

    // More than 72 hours after its last check-in, Sapporo's terminal is silent: its row says
    // so, with what to check, in the silent mail's words.
    app.set_clock(SILENT_AT).await;
    let cookie = site_cookie(&app, &key).await;
    let html = page(&app, "/site", &cookie).await;
    for words in [
        "通信が途絶えています（最終通信 2026年1月19日(月) 21:00）",
        "資格確認端末の電源が入っていること",
        "資格確認端末がネットワーク（インターネット回線・院内のLAN）に接続されていること",
        "配信アプリケーションが起動していること（資格確認端末を再起動すると起動します）",
    ] {
        assert!(html.contains(words), "{words}: {html}");
    }
    let en = page(&app, "/site?lang=en", &cookie).await;
    assert!(
        en.contains("Not heard from (last contact ") && en.contains("the terminal is switched on"),
        "{en}"
    );

    // From the campaign's catch-up date, the schedule says distribution runs all day.
    app.set_clock("2026-01-31T10:00:00+09:00").await;
    let cookie = site_cookie(&app, &key).await;
    let html = page(&app, "/site", &cookie).await;
    assert!(
        html.contains("1月31日(土)以降は終日配信されています。"),
        "{html}"
    );
    let en = page(&app, "/site?lang=en", &cookie).await;
    assert!(en.contains("the update is distributed all day."), "{en}");
}

#[tokio::test]
async fn the_action_list_exports_csv() {
    let (app, _) = campaign_after_first_night().await;
    let cookie = operator_cookie(&app).await;
    let r = no_redirects()
        .get(app.url("/operator/campaigns/2026-01/sites.csv?need=failed"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    let bytes = r.bytes().await.expect("csv");
    assert!(
        bytes.starts_with("\u{feff}".as_bytes()),
        "a byte order mark, so Excel reads UTF-8"
    );
    let body = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
    let lines: Vec<_> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(
        lines[0]
            .starts_with("医療機関コード,名称,都道府県,種別,電話番号,メールアドレス,伝えること,"),
        "{body}"
    );
    assert!(
        lines[1].starts_with(
            "1311111114,テスト医院 東京,東京都,医科診療所,03-1234-5678,tokyo2@example.invalid,"
        ),
        "{body}"
    );
    assert!(
        lines[1].contains("2026年1月19日(月) 21:00") && !lines[1].contains('Z'),
        "times in Japan time: {body}"
    );
    // English on request.
    let r = no_redirects()
        .get(app.url("/operator/campaigns/2026-01/sites.csv?need=failed&lang=en"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("csv");
    let en = String::from_utf8(r.bytes().await.expect("csv")[3..].to_vec()).expect("UTF-8");
    assert!(
        en.starts_with("Institution code,Name,Prefecture,Kind,Phone,E-mail,What to tell the site,"),
        "{en}"
    );
    assert!(en.contains("Mon 19 Jan 2026 21:00"), "{en}");
    // Filters narrow the list: no restart is needed in Tokyo.
    let html = page(
        &app,
        "/operator/campaigns/2026-01/sites?need=restart&prefecture=13",
        &cookie,
    )
    .await;
    assert!(html.contains("data-total=\"0\""));

    // Terminals not heard from, in the CSV too: Sapporo's and the Tokyo clinic's, narrowed to
    // Tokyo by the filter.
    app.set_clock(SILENT_AT).await;
    let csv = |query: &'static str| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let r = no_redirects()
                .get(app.url(&format!("/operator/campaigns/2026-01/sites.csv?{query}")))
                .header(COOKIE, cookie)
                .send()
                .await
                .expect("csv");
            assert_eq!(r.status(), 200);
            let bytes = r.bytes().await.expect("csv");
            String::from_utf8(bytes[3..].to_vec()).expect("UTF-8 after the byte order mark")
        }
    };
    let body = csv("need=silent").await;
    let lines: Vec<_> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(lines[1].starts_with(SAPPORO), "{body}");
    assert!(lines[2].starts_with("1311111114,"), "{body}");
    assert!(
        lines[1].contains("資格確認端末がネットワーク"),
        "what to check, in the CSV too: {body}"
    );
    let tokyo = csv("need=silent&prefecture=13").await;
    assert_eq!(tokyo.lines().count(), 2, "{tokyo}");
    assert!(tokyo.contains("1311111114,テスト医院 東京"), "{tokyo}");
}

#[tokio::test]
async fn the_release_form_uploads_packages_and_publishes_only_a_manifest_signed_offline() {
    let app = spawn_app("2026-01-10T12:00:00+09:00").await;
    let cookie = operator_cookie(&app).await;
    let csrf = csrf_of(&page(&app, "/operator", &cookie).await);
    let boundary = "onshi-test-boundary";
    let package = vec![42u8; 5000];
    let component = [(Target::Terminal, Sha256::of(&package), 5000)];
    let good =
        serde_json::to_vec(&keys::sign_release("r-form", "2.1.0", &component)).expect("json");
    // The same manifest signed by the server's own timestamp key: not a targets key.
    let by_server = serde_json::to_vec(&Signed::sign(
        &keys::manifest("r-forged", "2.1.0", &component),
        &[&keys::key(keys::TIMESTAMP_KEY)],
    ))
    .expect("json");
    let body = |csrf: &str, manifest: &[u8]| {
        let mut b = Vec::new();
        for (name, value) in [("csrf", csrf), ("lang", "ja")] {
            b.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"; filename=\"r.json\"\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(manifest);
        b.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"t.pkg\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(&package);
        b.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n").as_bytes(),
        );
        b
    };
    let post = |b: Vec<u8>| {
        no_redirects()
            .post(app.url("/operator/releases"))
            .header(COOKIE, &cookie)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(b)
            .send()
    };
    let r = post(body("forged", &good)).await.expect("upload");
    assert_eq!(r.status(), 403);
    assert!(
        !app.data.path().join("artifacts").exists()
            && app
                .expect_as::<onshi_api::ErrorBody>(
                    app.admin(Method::GET, "/api/v1/admin/releases/r-form"),
                    404
                )
                .await
                .code
                == ErrorCode::NotFound,
        "a forged form stores nothing"
    );
    // The operator's session alone cannot publish what the targets keys did not sign.
    let r = post(body(&csrf, &by_server)).await.expect("upload");
    assert_eq!(r.status(), 303);
    let html = page(&app, "/operator", &cookie).await;
    assert!(
        html.contains("targets metadata has 0 valid signature(s)"),
        "{}",
        &html[html.find("<main>").unwrap_or(0)..][..600]
    );
    app.expect(
        app.admin(Method::GET, "/api/v1/admin/releases/r-forged"),
        404,
    )
    .await;
    let r = post(body(&csrf, &good)).await.expect("upload");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/operator");
    let html = page(&app, "/operator", &cookie).await;
    assert!(
        html.contains("リリース r-form（2.1.0）の署名を確認して登録しました。"),
        "{}",
        &html[html.find("<main>").unwrap_or(0)..][..600]
    );
    let signed = app
        .expect(app.admin(Method::GET, "/api/v1/admin/releases/r-form"), 200)
        .await;
    let manifest: Value =
        serde_json::from_str(signed["signed"].as_str().expect("manifest")).expect("json");
    assert_eq!(manifest["version"], "2.1.0");
    assert_eq!(
        manifest["components"].as_array().expect("components").len(),
        1,
        "the empty package input is skipped"
    );
}

/// A campaign with two waves whose first wave's gate held it: the first wave holds the named
/// Sapporo clinic and, since each early wave covers every institution kind a later one has, the
/// other three sites; Sapporo's terminal restarted onto 2.0.0 with its self-check failed, the
/// others never started. Returns the app and Sapporo's code.
async fn campaign_held_by_the_first_wave() -> (TestApp, String) {
    use onshi_api::device::{ReportRequest, ReportResponse, SelfCheck};
    let app = spawn_app("2026-01-19T12:00:00+09:00").await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body(SITES_CSV),
        201,
    )
    .await;
    let good = vec![5u8; 4096];
    app.release("r0", "1.0.0", &[(Target::Terminal, good.as_slice())])
        .await;
    let bad = vec![7u8; 4096];
    app.release("r1", "2.0.0", &[(Target::Terminal, bad.as_slice())])
        .await;
    let schedule = format!(
        "{}\n[waves]\nnamed = [\"{SAPPORO}\"]\nsizes = [1]\n[waves.gate]\nmin_restarted = 1\n",
        onshi_core::schedule::PRESET_2026_01
    );
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
            .json(&serde_json::json!({
                "schedule": schedule, "release_id": "r1",
                "throttle": {"max_concurrent_downloads": 10, "poll_interval_seconds": 60}
            })),
        201,
    )
    .await;
    let codes = ["0110113719", "2714206386", "1341010005", "1311111114"];
    let mut tokens = Vec::new();
    for code in codes {
        tokens.push(app.enroll(code, &format!("TERM-{code}")).await);
    }
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    app.set_clock("2026-01-19T21:00:00+09:00").await;
    app.report_steps(
        &tokens[0],
        &[
            E::DownloadStarted,
            E::DownloadVerified,
            E::InstallStarted,
            E::InstallCompleted,
        ],
    )
    .await;
    app.set_clock("2026-01-20T05:40:00+09:00").await;
    let restarted = ReportRequest::new(
        CAMPAIGN,
        5,
        &E::Running(Version::parse("2.0.0").expect("version")),
    )
    .with_self_check(SelfCheck::Failed);
    app.expect_as::<ReportResponse>(app.send_report(&tokens[0], &restarted), 200)
        .await;
    onshi_testkit::wait_until("the gate held the campaign", async || {
        let c: CampaignView = app
            .expect_as(
                app.admin(Method::GET, "/api/v1/admin/campaigns/2026-01"),
                200,
            )
            .await;
        c.status == CampaignStatus::Paused
    })
    .await;
    app.set_clock("2026-01-20T08:30:00+09:00").await;
    (app, SAPPORO.to_owned())
}

/// The dashboard's waves in Chromium, Japanese and English: the waves table with each wave's
/// health against its limits, why the campaign is held, and the operator's rollback through
/// its button (the previous packages signed again under 2.0.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_held_campaigns_waves_and_rolls_it_back_in_chromium() {
    let (app, canary) = campaign_held_by_the_first_wave().await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/operator")).await;
    browser.fill("#token", OPERATOR_TOKEN).await;
    browser.click("#login").await;
    assert!(
        browser.url().await.ends_with("/operator/campaigns/2026-01"),
        "login lands on the held campaign"
    );
    assert_eq!(
        browser.attr("#campaign-status", "data-status").await,
        "paused"
    );
    let held = browser.text("#held").await;
    assert!(
        held.contains("健全性ゲートにより一時停止中")
            && held.contains("第1波")
            && held.contains("再起動後の自己診断で異常: 1台")
            && held.contains("上限 1.0%"),
        "{held}"
    );
    assert!(
        held.contains("切り戻し"),
        "the decisions include roll back: {held}"
    );
    // Two waves: the first (the one canary) open, its self-check reading over the limit; the
    // second not yet open, nothing crossed.
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#waves tbody tr').length")
            .await,
        2
    );
    assert_eq!(browser.attr("#wave-0", "data-open").await, "true");
    assert_eq!(browser.attr("#wave-1", "data-open").await, "false");
    assert_eq!(
        browser
            .script("return Array.from(document.querySelectorAll('#wave-0 td[data-crossed]')).map(td => td.dataset.crossed)")
            .await,
        serde_json::json!(["false", "true", "false"]),
        "failed, unhealthy, not running: only the self-check crossed"
    );
    let wave_0 = browser.text("#wave-0").await;
    assert!(
        wave_0.contains("第1波")
            && wave_0.contains("1 / 1 (100.0%)")
            && wave_0.contains("上限 1.0%"),
        "{wave_0}"
    );
    assert!(browser.text("#wave-1").await.contains("未開始"));
    assert!(browser.text("#rollback").await.contains("切り戻す"));
    browser
        .assert_accessible_in_both_languages("the dashboard of a held campaign")
        .await;
    browser.resize(1280, 1400).await;
    artifact("dashboard-waves-held-ja.png", &browser.screenshot().await);

    browser
        .goto(&app.url("/operator/campaigns/2026-01?lang=en"))
        .await;
    let held = browser.text("#held").await;
    assert!(
        held.contains("Held by a health gate")
            && held.contains("wave 1")
            && held.contains("unhealthy self-check after the restart: 1")
            && held.contains("the limit is 1.0%"),
        "{held}"
    );
    let wave_0 = browser.text("#wave-0").await;
    assert!(
        wave_0.contains("wave 1") && wave_0.contains("open"),
        "{wave_0}"
    );
    assert!(browser.text("#wave-1").await.contains("not yet open"));
    artifact("dashboard-waves-held-en.png", &browser.screenshot().await);

    // The operator rolls back from the dashboard, with the previous packages signed offline
    // again under a higher version.
    let previous: Signed = app
        .expect_as(app.admin(Method::GET, "/api/v1/admin/releases/r0"), 200)
        .await;
    let previous = previous
        .parse::<onshi_core::release::Manifest>(onshi_core::trust::Role::Targets)
        .expect("r0's manifest");
    let components: Vec<(Target, Sha256, u64)> = previous
        .components
        .iter()
        .map(|c| (c.target, c.sha256, c.size))
        .collect();
    app.publish("r0-again", "2.0.1", &components).await;
    browser.goto(&app.url("/operator/campaigns/2026-01")).await;
    browser.fill("#rollback-release", "r0-again").await;
    browser.click("#control-rollback").await;
    assert_eq!(
        browser.attr("#campaign-status", "data-status").await,
        "closed"
    );
    let rolled = browser.text("#rolled-back").await;
    assert!(
        rolled.contains("切り戻し済み") && rolled.contains("r0-again") && rolled.contains("1台"),
        "{rolled}"
    );
    assert_eq!(
        browser.attr("#rolled-back", "data-campaign").await,
        "2026-01-rollback"
    );
    browser
        .assert_accessible_in_both_languages("the dashboard of a rolled-back campaign")
        .await;
    artifact(
        "dashboard-waves-rolled-back-ja.png",
        &browser.screenshot().await,
    );
    let audit = app.audit().await;
    assert!(audit.contains("campaign_rolled_back"), "{audit}");
    let rolled: Vec<onshi_api::admin::DeploymentListing> = app
        .expect_as(
            app.admin(
                Method::GET,
                "/api/v1/admin/campaigns/2026-01-rollback/devices",
            ),
            200,
        )
        .await;
    assert_eq!(
        rolled
            .iter()
            .map(|l| l.institution.code.to_string())
            .collect::<Vec<_>>(),
        vec![canary]
    );
}

/// The announcement mail of the site whose address is `email`, as the SMTP listener got it.
fn announcement_to(inbox: &onshi_testkit::smtp::Inbox, email: &str) -> Option<String> {
    inbox
        .mails()
        .into_iter()
        .find(|m| m.contains(email) && m.contains("-announcement-"))
}

/// A receptionist opens the sign-in link of the announcement mail on a phone: one press signs
/// the site in on that browser; the same link then signs nobody in (in Chromium and over plain
/// HTTP); re-issuing the access key ends the session; the login form's key field can be shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_signs_in_once_through_its_mails_link_in_chromium() {
    let (inbox, smtp) = onshi_testkit::smtp::smtp_server().await;
    let app = onshi_testkit::spawn_app_with_smtp("2026-01-19T12:00:00+09:00", Some(smtp)).await;
    onshi_testkit::terminal_campaign(&app, SITES_CSV.to_owned(), 10_000, "r2026-01", 100, 60).await;
    app.enroll(SAPPORO, "TERM-S").await;
    app.expect(
        app.admin(
            Method::POST,
            &format!("/api/v1/admin/institutions/{SAPPORO}/access-key"),
        ),
        200,
    )
    .await;
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    onshi_testkit::wait_until("Sapporo's announcement", async || {
        announcement_to(&inbox, "sapporo@example.invalid").is_some()
    })
    .await;
    let mail = announcement_to(&inbox, "sapporo@example.invalid").expect("the announcement");
    let text = onshi_testkit::mail::body_text(&mail);
    assert!(
        text.contains("アクセスキーを入力せずに") && text.contains("1回だけ"),
        "{text}"
    );
    let link = onshi_testkit::mail::link_containing(&mail, "/site/sign-in?token=")
        .unwrap_or_else(|| panic!("a sign-in link in {text}"));
    assert!(link.starts_with(&app.url("/site/sign-in?token=")), "{link}");
    let token = link.rsplit('=').next().expect("the token").to_owned();
    assert_eq!(token.len(), 43, "256 random bits: {token}");
    if onshi_testkit::test_database().is_none() {
        // Only the token's hash is stored: the link is in no file of the database.
        for name in ["onshi.db", "onshi.db-wal"] {
            let bytes = std::fs::read(app.data.path().join(name)).unwrap_or_default();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the token in {name}"
            );
        }
    }

    let browser = Browser::start().await;
    browser.resize(390, 844).await;
    browser.goto(&link).await;
    // Opening the link (as a mail scanner would) uses nothing up: the button does.
    browser
        .assert_accessible_in_both_languages("the sign-in link's page")
        .await;
    browser.click("#sign-in").await;
    assert!(
        browser.url().await.ends_with("/site"),
        "{}",
        browser.url().await
    );
    assert!(browser.text("h1").await.contains("テスト診療所 札幌"));
    assert_eq!(
        browser.attr("#advice", "data-advice").await,
        "keep_powered_on"
    );
    artifact(
        "site-signed-in-by-link-phone.png",
        &browser.screenshot().await,
    );
    browser
        .assert_accessible_in_both_languages("the site signed in by its link")
        .await;

    // The same link a second time, from a browser that never signed in: refused.
    browser.forget_cookies().await;
    browser.goto(&link).await;
    browser.click("#sign-in").await;
    let refused = browser.text("#error").await;
    assert!(refused.contains("使用済み"), "{refused}");
    browser.goto(&app.url("/site")).await;
    assert!(
        browser.url().await.ends_with("/site") && browser.text("#login").await.contains("確認する"),
        "no session: the login form"
    );
    browser.goto(&link).await;
    browser.click("#sign-in").await;
    browser.assert_accessible("the used sign-in link").await;
    // The key field shows what was typed on request.
    assert_eq!(browser.attr("#access_key", "type").await, "password");
    browser
        .click_here("button[data-show-key='access_key']")
        .await;
    assert_eq!(browser.attr("#access_key", "type").await, "text");
    assert_eq!(
        browser
            .attr("button[data-show-key='access_key']", "aria-pressed")
            .await,
        "true"
    );
    let r = no_redirects()
        .post(app.url("/site/sign-in"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 410);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(r.text().await.expect("html").contains("使用済み"));
    // A made-up token is refused the same way.
    let r = no_redirects()
        .post(app.url("/site/sign-in"))
        .form(&[("token", "A".repeat(43))])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 410);
}

/// A site's session is bound to its access key: a key re-issued through another replica (only
/// the database changed, this server's sessions untouched) ends it at its next page, with the
/// code kept in the login form.
#[tokio::test]
async fn a_key_reissued_elsewhere_ends_the_sites_long_lived_session() {
    let (app, key) = campaign_after_first_night().await;
    let cookie = site_cookie(&app, &key).await;
    let html = page(&app, "/site", &cookie).await;
    assert!(html.contains("data-advice=\"restart_now\""));
    let store = app.state.store.clone();
    tokio::task::spawn_blocking(move || {
        let code = onshi_core::institution::InstitutionCode::parse(SAPPORO).expect("a code");
        store.set_institution_key(code, onshi_store::InstitutionKey::Access, "another-hash")
    })
    .await
    .expect("the store call")
    .expect("the new key's hash");
    let html = page(&app, "/site", &cookie).await;
    assert!(html.contains("id=\"access_key\""), "the login form again");
    assert!(
        html.contains(&format!("value=\"{SAPPORO}\"")),
        "with the code"
    );
    // And the old key opens nothing now.
    let r = no_redirects()
        .post(app.url("/site/login"))
        .form(&[("code", SAPPORO), ("access_key", key.as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
}

/// Thirty clinics in Tokyo, a campaign activated at 19:30 on the first day, and the first night
/// stepped every half hour to 02:30 with terminals installing as they go; returns the app and
/// the terminals' tokens.
async fn campaign_in_the_first_night() -> (TestApp, Vec<String>) {
    use onshi_core::institution::{InstitutionCode, Prefecture, ScoreTable};
    let tokyo = Prefecture::from_number(13).expect("Tokyo");
    let codes: Vec<String> = (1..=30)
        .map(|n| {
            InstitutionCode::from_parts(tokyo, ScoreTable::Medical, 1, n)
                .expect("a code")
                .to_string()
        })
        .collect();
    let mut csv = String::from("code,name,kind,prefecture,email,auto_restart\n");
    for (i, code) in codes.iter().enumerate() {
        csv += &format!(
            "{code},テスト診療所 {},clinic,13,site{i}@example.invalid,\n",
            i + 1
        );
    }
    let app = spawn_app("2026-01-19T19:30:00+09:00").await;
    onshi_testkit::terminal_campaign(&app, csv, 10_000, "r2026-01", 100, 60).await;
    let mut tokens = Vec::new();
    for code in &codes {
        tokens.push(app.enroll(code, &format!("TERM-{code}")).await);
    }
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    let install = [
        E::DownloadStarted,
        E::DownloadVerified,
        E::InstallStarted,
        E::InstallCompleted,
    ];
    // Two terminals finish every half hour from 20:00 until 24 have; the last six are still
    // waiting at 02:30.
    let mut next = 0;
    let mut at: jiff::Timestamp = "2026-01-19T20:00:00+09:00".parse().expect("an instant");
    let end: jiff::Timestamp = "2026-01-20T02:30:00+09:00".parse().expect("an instant");
    while at <= end {
        app.set_clock(&at.to_string()).await;
        for token in tokens.iter().take(24).skip(next).take(2) {
            app.report_steps(token, &install).await;
        }
        next += 2;
        at += jiff::SignedDuration::from_mins(30);
    }
    // One failed download, one still downloading.
    app.report_steps(&tokens[27], &[E::DownloadStarted, E::Failed])
        .await;
    app.report_steps(&tokens[28], &[E::DownloadStarted]).await;
    (app, tokens)
}

/// The operator watches the first night at 02:30: hours along the chart and a line at now, the
/// axis running to the window's close at 05:00, a view of the devices not yet applied, the
/// counts first on a phone, and the live update, which the operator can switch off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_at_night_in_chromium() {
    let (app, tokens) = campaign_in_the_first_night().await;
    let browser = Browser::start().await;
    browser.resize(1366, 900).await;
    browser.goto(&app.url("/operator")).await;
    browser.fill("#token", OPERATOR_TOKEN).await;
    browser.click("#login").await;
    assert!(browser.url().await.ends_with("/operator/campaigns/2026-01"));
    let labels = browser
        .script("return Array.from(document.querySelectorAll('#chart svg.chart-wide text')).map(t => t.textContent)")
        .await;
    let labels: Vec<String> = serde_json::from_value(labels).expect("labels");
    for label in ["20:00", "22:00", "1/20", "2:00", "5:00", "現在"] {
        assert!(labels.iter().any(|l| l == label), "{label} in {labels:?}");
    }
    assert!(
        browser
            .text("#window")
            .await
            .contains("2026年1月20日(火) 02:30"),
        "now in Japan time"
    );
    browser
        .assert_accessible_in_both_languages("the dashboard at night")
        .await;
    browser.resize(1366, 1500).await;
    artifact("dashboard-night-desktop.png", &browser.screenshot().await);

    // The last few percent: the devices not yet applied, scaled to twice what remains.
    browser.click("#chart-view-remaining").await;
    assert_eq!(browser.attr("#chart", "data-view").await, "remaining");
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#chart svg.chart-wide path').length")
            .await,
        4,
        "every group but the applied"
    );
    browser
        .assert_accessible_in_both_languages("the dashboard's remaining view at night")
        .await;
    artifact(
        "dashboard-night-remaining-desktop.png",
        &browser.screenshot().await,
    );

    // On a phone the counts come first, and the chart is drawn for the narrow screen.
    browser.resize(390, 844).await;
    browser.goto(&app.url("/operator/campaigns/2026-01")).await;
    let first_screen = browser
        .script(
            "return document.getElementById('counts').getBoundingClientRect().top < window.innerHeight",
        )
        .await;
    assert_eq!(first_screen, true, "the counts on the first screen");
    assert_eq!(
        browser
            .script(
                "return getComputedStyle(document.querySelector('#chart svg.chart-narrow')).display"
            )
            .await,
        "block"
    );
    artifact("dashboard-night-phone.png", &browser.screenshot().await);
    browser
        .script("document.getElementById('chart').scrollIntoView()")
        .await;
    artifact(
        "dashboard-night-phone-chart.png",
        &browser.screenshot().await,
    );

    // Live update: on by default; new reports show without a reload once it refreshes.
    assert_eq!(
        browser
            .script("return document.getElementById('live').hidden")
            .await,
        false
    );
    assert!(browser.text("#live-status").await.contains("30秒ごと"));
    app.report_steps(&tokens[29], &[E::DownloadStarted, E::Failed])
        .await;
    let failed = progress(&app).await.all.get(DeploymentState::Failed);
    assert_eq!(failed, 2);
    // Switching it off and on refreshes at once.
    browser.click_here("#live-toggle").await;
    assert!(browser.text("#live-status").await.contains("止めています"));
    browser.click_here("#live-toggle").await;
    let want = failed.to_string();
    onshi_testkit::wait_until("the live update shows the second failure", async || {
        // Read in one script: the live update may swap the element between two calls.
        browser
            .script("return document.getElementById('count-failed').dataset.count")
            .await
            == want.as_str()
    })
    .await;
    // Switched off, it stays off in this browser.
    browser.click_here("#live-toggle").await;
    browser.goto(&app.url("/operator/campaigns/2026-01")).await;
    assert_eq!(
        browser
            .script("return document.getElementById('live-toggle').checked")
            .await,
        false
    );
    assert!(browser.text("#live-status").await.contains("止めています"));
}

/// The checker itself: axe-core finds serious violations planted in a clean page (the
/// issue's spinner label and legend contrast), so a page test that passes was really checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_core_reports_violations_planted_in_a_page() {
    let app = spawn_app("2026-01-20T09:00:00+09:00").await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/guidance")).await;
    assert_eq!(browser.axe().await, Vec::<String>::new());
    browser
        .script(
            "document.querySelector('main').insertAdjacentHTML('beforeend', \
             '<span class=\"spinner\" aria-label=\"loading\"></span>\
              <p style=\"color:#fff;background:#9aa5b1\">legend</p>')",
        )
        .await;
    let found = browser.axe().await;
    assert!(
        found.iter().any(|v| v.contains("aria-prohibited-attr")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("serious color-contrast")),
        "{found:?}"
    );
}

/// A mailed sign-in link expires (14 days), and one mailed before the site's access key was
/// re-issued signs nobody in; a fresh one signs in over plain HTTP with a long-lived cookie.
#[tokio::test]
async fn a_mailed_link_expires_and_a_reissued_key_voids_it() {
    let (inbox, smtp) = onshi_testkit::smtp::smtp_server().await;
    let app = onshi_testkit::spawn_app_with_smtp("2026-01-19T12:00:00+09:00", Some(smtp)).await;
    onshi_testkit::terminal_campaign(&app, SITES_CSV.to_owned(), 10_000, "r2026-01", 100, 60).await;
    let sites = [
        (SAPPORO, "sapporo@example.invalid"),
        ("2714206386", "osaka@example.invalid"),
        ("1341010005", "tokyo@example.invalid"),
    ];
    for (code, _) in sites {
        app.enroll(code, &format!("TERM-{code}")).await;
    }
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    onshi_testkit::wait_until("three announcements", async || {
        sites
            .iter()
            .all(|(_, email)| announcement_to(&inbox, email).is_some())
    })
    .await;
    let token_of = |email: &str| {
        let mail = announcement_to(&inbox, email).expect("the announcement");
        let link = onshi_testkit::mail::link_containing(&mail, "/site/sign-in?token=")
            .expect("a sign-in link");
        link.rsplit('=').next().expect("the token").to_owned()
    };
    let sign_in = |token: String| {
        no_redirects()
            .post(app.url("/site/sign-in"))
            .form(&[("token", token)])
            .send()
    };
    // Tokyo's key is re-issued after its mail went out: the mailed link is void.
    app.expect(
        app.admin(
            Method::POST,
            "/api/v1/admin/institutions/1341010005/access-key",
        ),
        200,
    )
    .await;
    let r = sign_in(token_of("tokyo@example.invalid"))
        .await
        .expect("post");
    assert_eq!(r.status(), 410);
    assert!(r.headers().get(SET_COOKIE).is_none());
    // Sapporo's link on the 2nd: a session that lasts on this browser.
    app.set_clock("2026-02-02T11:00:00+09:00").await;
    let r = sign_in(token_of("sapporo@example.invalid"))
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/site");
    let set = r.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(
        set.starts_with("onshi_site=") && set.contains(&format!("Max-Age={}", 90 * 24 * 3600)),
        "{set}"
    );
    let cookie = set.split(';').next().expect("cookie").to_owned();
    let html = page(&app, "/site", &cookie).await;
    assert!(html.contains("テスト診療所 札幌"), "{html}");
    // Osaka's, fifteen days after it was mailed: expired.
    app.set_clock("2026-02-03T12:00:00+09:00").await;
    let r = sign_in(token_of("osaka@example.invalid"))
        .await
        .expect("post");
    assert_eq!(r.status(), 410);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

/// A site's session is kept in the store, not in one server's memory: a second server on the
/// same database (a restart, or another replica) knows it, and logging out there ends it here.
#[tokio::test]
async fn a_sites_session_is_known_to_a_second_server_on_the_same_database() {
    let (app, key) = campaign_after_first_night().await;
    let cookie = site_cookie(&app, &key).await;
    let other = onshi_testkit::spawn_full(
        "2026-01-20T08:30:00+09:00",
        app.data.clone(),
        app.schema.clone(),
        app.schema.as_ref().map(|s| s.url.clone()),
        None,
    )
    .await;
    let html = page(&other, "/site", &cookie).await;
    assert!(html.contains("data-advice=\"restart_now\""), "{html}");
    let r = no_redirects()
        .post(other.url("/site/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 303);
    let html = page(&app, "/site", &cookie).await;
    assert!(html.contains("id=\"access_key\""), "ended on the first too");
}
