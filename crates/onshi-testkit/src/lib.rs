//! Test support for onshi's crates: a dev-dependency only, never a dependency of a binary.
//!
//! One way to do each thing a test needs: start the server in-process on SQLite or PostgreSQL
//! ([`server`], chosen by `ONSHI_TEST_DATABASE`) or the `onshi serve` binary ([`serve`]); enrol a
//! device and report as an agent would ([`TestApp::enroll`], [`TestApp::report`]); run the real
//! agent binary ([`agent`]); wait for something observable with a deadline ([`wait`]); a real
//! SMTP listener, plain or a TLS relay with a test CA ([`smtp`]), and the text of what it
//! received ([`mail`]); a database that goes away ([`proxy`]); the server's own spans
//! ([`trace`]); headless Chromium ([`browser`]).

pub mod agent;
pub mod browser;
pub mod keys;
pub mod logins;
pub mod mail;
pub mod proxy;
pub mod serve;
pub mod server;
pub mod smtp;
pub mod tamper;
pub mod trace;
pub mod wait;

pub use onshi_store::testing::{TestSchema, test_url};
pub use server::{
    Api, CAMPAIGN, OPERATOR_TOKEN, TestApp, spawn_app, spawn_app_with_accel_redirect,
    spawn_app_with_limits, spawn_app_with_relay, spawn_app_with_smtp, spawn_configured, spawn_full,
    spawn_on, spawn_replicas, spawn_with_url, terminal_campaign, test_database, test_schema,
};
pub use wait::{wait_for, wait_until, wait_until_within};
