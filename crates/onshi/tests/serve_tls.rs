//! `onshi serve --tls-cert FILE --tls-key FILE`: the binary speaks HTTPS (rustls), a login over it
//! gets a `Secure` cookie, and a plain-HTTP request to its port is not answered.

use onshi_testkit::OPERATOR_TOKEN;
use onshi_testkit::serve::Serve;
use reqwest::{Client, StatusCode, header};

#[tokio::test]
async fn the_server_speaks_https_and_sets_secure_cookies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).expect("cert written");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("key written");
    let data = dir.path().join("data");
    let server = Serve::start_with(
        env!("CARGO_BIN_EXE_onshi"),
        &data,
        None,
        "2026-01-13T10:00:00+09:00",
        None,
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let client = Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem certificate"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(format!("{}/guidance", server.url))
        .send()
        .await
        .expect("HTTPS answers");
    assert_eq!(page.status(), StatusCode::OK);

    let login = client
        .post(format!("{}/operator/login", server.url))
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");

    let plain = Client::new()
        .get(format!("http://{}/guidance", server.addr()))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
}
