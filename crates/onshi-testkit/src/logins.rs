//! Logging in on the pages as a browser would, for tests against a server in-process or the
//! binary: a client that shows redirects rather than following them, the session cookie a login
//! sets, a site's access key, and whether a page opens with a cookie or asks to log in.

use reqwest::{Client, Method, Response, StatusCode, header};

use crate::{Api, OPERATOR_TOKEN};

/// Two sites to log in as, Sapporo's clinic and Osaka's hospital (institutions CSV).
pub const TWO_SITES: &str = "code,name,kind,prefecture,email,auto_restart
0110113719,テスト診療所 札幌,clinic,1,sapporo@example.invalid,
2714206386,テスト病院 大阪,hospital,27,osaka@example.invalid,
";

/// A client that answers a redirect as it is (a login's `303 See Other` and its cookie).
pub fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The session cookie (`name=value`) of a login's answer, which must be the redirect to the
/// page (a refused login is not).
pub fn session_cookie(r: &Response) -> String {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "not logged in");
    r.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned()
}

/// Issues `site` a new access key (ending its sessions) and answers it.
pub async fn access_key(api: &Api, site: &str) -> String {
    api.expect(
        api.admin(
            Method::POST,
            &format!("/api/v1/admin/institutions/{site}/access-key"),
        ),
        200,
    )
    .await["access_key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// Logs `site` in with `key`; answers its session cookie.
pub async fn site_login(api: &Api, client: &Client, site: &str, key: &str) -> String {
    let r = client
        .post(api.url("/site/login"))
        .form(&[("code", site), ("access_key", key)])
        .send()
        .await
        .expect("login");
    session_cookie(&r)
}

/// Logs the operator in with the tests' token; answers the session cookie.
pub async fn operator_login(api: &Api, client: &Client) -> String {
    let r = client
        .post(api.url("/operator/login"))
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .expect("login");
    session_cookie(&r)
}

/// Whether the page at `path` opens with `cookie` (else it shows a login form).
pub async fn opens(api: &Api, client: &Client, path: &str, cookie: &str) -> bool {
    let r = client
        .get(api.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("page");
    let ok = r.status() == StatusCode::OK;
    let text = r.text().await.expect("html");
    ok && !text.contains("name=\"access_key\"") && !text.contains("name=\"token\"")
}
