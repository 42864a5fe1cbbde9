//! The one way tests start the server: the real router on a random loopback port, a temp DATA
//! directory, and a simulated clock the test moves with `PUT /api/v1/admin/clock`.

#![allow(dead_code)]

pub mod browser;

use std::net::SocketAddr;

use onshi_clock::Clock;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub data: tempfile::TempDir,
}

/// Starts a server whose simulated clock stands at `start` (it runs at real speed from there;
/// tests set it explicitly before every time-dependent step).
pub async fn spawn_app(start: &str) -> TestApp {
    spawn_app_with_smtp(start, None).await
}

/// [`spawn_app`] with notice mails sent to an SMTP server (`smtp://HOST:PORT`).
pub async fn spawn_app_with_smtp(start: &str, smtp: Option<String>) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let clock = Clock::simulated(start.parse().expect("instant"), 1.0).expect("clock");
    let running = onshi_server::start(onshi_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        clock,
        signing_key: None,
        operator_token: Some(OPERATOR_TOKEN.to_owned()),
        qualification_public: false,
        smtp,
        mail_from: None,
    })
    .await
    .expect("server starts");
    let addr = running.addr;
    tokio::spawn(running.wait());
    TestApp {
        addr,
        client: Client::new(),
        data,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(OPERATOR_TOKEN)
    }

    pub fn as_device(&self, method: reqwest::Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn set_clock(&self, at: &str) {
        let r = self
            .admin(reqwest::Method::PUT, "/api/v1/admin/clock")
            .json(&json!({ "now": at }))
            .send()
            .await
            .expect("clock request");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    /// Sends, asserts the status, returns the JSON body.
    pub async fn expect(&self, req: RequestBuilder, status: u16) -> Value {
        let r: Response = req.send().await.expect("request");
        let got = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(got, status, "body: {text}");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}
