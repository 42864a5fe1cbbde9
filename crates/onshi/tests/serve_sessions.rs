//! The operator's session against a flood of site logins, on the real `onshi serve` binary
//! (issue 15: "the operator's session survives 10,000 site logins"). The login rates are raised
//! (`--logins-per-client`, `--logins-per-second`, as for many sites behind one carrier address)
//! so that every one of the 10,000 logins really starts a session: sessions are kept per
//! principal, so a site logging in again and again ends only its own oldest sessions, never the
//! operator's nor another site's. At the default rates the same flood is refused after 20
//! (`tests/sessions.rs` in onshi-server). On SQLite, and with `ONSHI_TEST_DATABASE=postgres` on
//! a fresh PostgreSQL schema.

use onshi_testkit::logins::{
    TWO_SITES, access_key, no_redirects, opens, operator_login, site_login,
};
use onshi_testkit::serve::Serve;
use onshi_testkit::{TestSchema, test_database};

const SITE: &str = "0110113719";
const OTHER_SITE: &str = "2714206386";
const MORNING: &str = "2026-01-13T10:00:00+09:00";
const LOGINS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_session_survives_10000_site_logins() {
    let schema =
        test_database().map(|url| TestSchema::create_in(&url).unwrap_or_else(|e| panic!("{e}")));
    let data = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start_with(
        env!("CARGO_BIN_EXE_onshi"),
        data.path(),
        schema.as_ref(),
        MORNING,
        None,
        &[
            "--logins-per-client",
            "1000000",
            "--logins-per-second",
            "100000",
        ],
    );
    let api = serve.api();
    api.import_institutions(TWO_SITES).await;
    let client = no_redirects();
    let operator = operator_login(&api, &client).await;
    let other = site_login(
        &api,
        &client,
        OTHER_SITE,
        &access_key(&api, OTHER_SITE).await,
    )
    .await;
    let key = access_key(&api, SITE).await;

    // Every login is answered with a new session (`site_login` asserts it): none refused.
    let first = site_login(&api, &client, SITE, &key).await;
    let mut last = first.clone();
    for _ in 1..LOGINS {
        last = site_login(&api, &client, SITE, &key).await;
    }

    assert!(opens(&api, &client, "/operator", &operator).await);
    assert!(opens(&api, &client, "/site", &other).await);
    // The flooding site's own oldest sessions were the ones ended.
    assert!(opens(&api, &client, "/site", &last).await);
    assert!(!opens(&api, &client, "/site", &first).await);
}
