//! Headless Chromium for page tests: Debian's `chromium` driven through its `chromedriver` with
//! fantoccini (a WebDriver client; plain HTTP to chromedriver on loopback), and axe-core (vendored
//! in `vendor/axe-core/`, see its README) run inside the page: [`Browser::assert_accessible`]
//! fails a test on any critical or serious violation, on a desktop and a phone-sized window.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::wait::wait_for;

/// The axe-core release vendored in `vendor/axe-core/`.
pub const AXE_VERSION: &str = "4.14.1";
const AXE: &str = include_str!("../vendor/axe-core/axe.min.js");
/// The desktop window the pages are checked at.
pub const DESKTOP: (u32, u32) = (1366, 900);
/// The phone-sized window the pages are checked at.
pub const PHONE: (u32, u32) = (390, 844);
/// axe-core runs in this test process so far (each page, state, language and size is one).
pub static AXE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs axe-core (injected just before) on the whole document and hands back its critical and
/// serious violations, one line each with the elements at fault.
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
  done(r.violations
    .filter(function (v) { return v.impact === 'critical' || v.impact === 'serious'; })
    .map(function (v) {
      return v.impact + ' ' + v.id + ': ' + v.help + ' — ' + v.nodes.map(function (n) {
        return n.target.join(' ') + ' (' + (n.failureSummary || '').replace(/\s+/g, ' ') + ')';
      }).join('; ');
    }));
}, function (e) { done(['axe failed: ' + e]); });
"#;

/// A chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect(
                "chromedriver is missing: apt-get install chromium chromium-driver (.ci/run does)",
            );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(driver_bin);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so the Chromium it starts ends with it (see `Drop`).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        wait_for("chromedriver to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .unwrap_or_else(|e| panic!("no session: {e}"));
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Clicks the element matching `css` — a form button — and waits for the next page: the
    /// clicked element goes stale, then the new document finishes loading.
    pub async fn click(&self, css: &str) {
        let button = self.find(css).await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        for _ in 0..200 {
            if button
                .tag_name()
                .await
                .is_err_and(|e| e.is_stale_element_reference())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..200 {
            if self.script("return document.readyState").await == "complete" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the page after clicking {css} did not load");
    }

    /// Clicks the element matching `css` when the click changes the page in place (a toggle,
    /// a checkbox): no new document is awaited.
    pub async fn click_here(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Forgets every cookie of the current site (a browser that never signed in).
    pub async fn forget_cookies(&self) {
        self.client
            .delete_all_cookies()
            .await
            .unwrap_or_else(|e| panic!("deleting cookies: {e}"));
    }

    /// Types `text` into the input matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, js: &str) -> Value {
        self.client
            .execute(js, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {js}: {e}"))
    }

    /// Resizes the window (a phone is about 390×844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("current URL: {e}"))
            .to_string()
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// An attribute of the element matching `css` (empty when it has none).
    pub async fn attr(&self, css: &str, name: &str) -> String {
        self.find(css)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("{name} of {css}: {e}"))
            .unwrap_or_default()
    }

    /// axe-core's critical and serious violations on the page as it is now, at the window's
    /// current size.
    pub async fn axe(&self) -> Vec<String> {
        self.client
            .execute(&format!("{AXE}\n;return axe.version;"), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("injecting axe-core: {e}"));
        let found = self
            .client
            .execute_async(RUN_AXE, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("running axe-core: {e}"));
        AXE_RUNS.fetch_add(1, Ordering::Relaxed);
        serde_json::from_value(found).unwrap_or_else(|e| panic!("axe-core's answer: {e}"))
    }

    /// Fails the test on any critical or serious axe-core violation on the page as it is now,
    /// at [`DESKTOP`] and at [`PHONE`] size (the window's size is restored afterwards). `label`
    /// names the page and state in the failure.
    pub async fn assert_accessible(&self, label: &str) {
        let before = self
            .client
            .get_window_size()
            .await
            .unwrap_or_else(|e| panic!("window size: {e}"));
        let mut found = Vec::new();
        for (name, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.resize(w, h).await;
            for v in self.axe().await {
                found.push(format!("{name}: {v}"));
            }
        }
        let (w, h) = (
            u32::try_from(before.0).unwrap_or(DESKTOP.0),
            u32::try_from(before.1).unwrap_or(DESKTOP.1),
        );
        self.resize(w, h).await;
        let url = self.url().await;
        assert!(
            found.is_empty(),
            "axe-core {AXE_VERSION} on {label} ({url}): {} critical or serious violation(s):\n{}",
            found.len(),
            found.join("\n")
        );
        eprintln!(
            "axe-core {AXE_VERSION}: {label} ({url}) has no critical or serious violation (desktop and phone; {} runs so far)",
            AXE_RUNS.load(Ordering::Relaxed)
        );
    }

    /// [`Browser::assert_accessible`] on the current page in Japanese and in English (its URL
    /// with `lang=ja` and `lang=en`), then back at the page as it was. For pages a GET shows
    /// again (a form's answer is checked where it stands, with [`Browser::assert_accessible`]).
    pub async fn assert_accessible_in_both_languages(&self, label: &str) {
        let url = self.url().await;
        for lang in ["ja", "en"] {
            self.goto(&with_lang(&url, lang)).await;
            self.assert_accessible(&format!("{label} [{lang}]")).await;
        }
        self.goto(&url).await;
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"))
    }
}

/// `url` with its `lang` parameter set to `lang` (the fragment kept).
pub fn with_lang(url: &str, lang: &str) -> String {
    let (url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, format!("#{f}")),
        None => (url, String::new()),
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("lang="))
        .collect();
    let lang = format!("lang={lang}");
    pairs.push(&lang);
    format!("{path}?{}{fragment}", pairs.join("&"))
}

impl Drop for Browser {
    /// Ends chromedriver and every Chromium process it started (its process group): a test's
    /// browser must not outlive it, or the renderers left behind load the machine.
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::with_lang;

    #[test]
    fn the_lang_parameter_is_set_and_the_rest_kept() {
        assert_eq!(with_lang("http://h/site", "en"), "http://h/site?lang=en");
        assert_eq!(
            with_lang("http://h/r/1?lang=ja#desk", "en"),
            "http://h/r/1?lang=en#desk"
        );
        assert_eq!(
            with_lang("http://h/s?need=silent&lang=en&page=2", "ja"),
            "http://h/s?need=silent&page=2&lang=ja"
        );
    }
}
