//! TLS to PostgreSQL through rustls, with libpq's `sslmode` words: `disable`, `prefer` and
//! `require` (encrypted, the server's certificate not checked, as libpq does without a root
//! certificate), `verify-ca` (signed by the CA in `sslrootcert`) and `verify-full` (that, and
//! issued for the host name in the URL).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Result, StoreError};

/// What the URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsWish {
    pub(crate) mode: SslMode,
    /// `verify-ca` or `verify-full`: the certificate must chain to `root`.
    pub(crate) verify: Option<Verify>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verify {
    pub(crate) root: String,
    /// `verify-full`: the certificate must name the host.
    pub(crate) host: bool,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (URL or key-value form), since the driver
/// knows only `disable`, `prefer` and `require`; answers the rest of the URL and the wish.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsWish)> {
    let (rest, pairs) = if let Some((base, query)) = url.split_once('?') {
        let mut keep = Vec::new();
        let mut pairs = Vec::new();
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some((k @ ("sslmode" | "sslrootcert"), v)) => pairs.push((k, v.to_owned())),
                _ => keep.push(kv),
            }
        }
        let rest = if keep.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", keep.join("&"))
        };
        (rest, pairs)
    } else if url.contains("://") {
        (url.to_owned(), Vec::new())
    } else {
        let mut keep = Vec::new();
        let mut pairs = Vec::new();
        for kv in url.split_whitespace() {
            match kv.split_once('=') {
                Some((k @ ("sslmode" | "sslrootcert"), v)) => pairs.push((k, v.to_owned())),
                _ => keep.push(kv),
            }
        }
        (keep.join(" "), pairs)
    };
    let get = |key: &str| pairs.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v);
    let root = get("sslrootcert").map(|r| r.replace("%2F", "/").replace("%2f", "/"));
    let verify = |host: bool| {
        root.clone()
            .map(|root| Verify { root, host })
            .ok_or_else(|| StoreError::Config("sslmode verify-ca and verify-full need sslrootcert=FILE (the CA's certificate, PEM)".to_owned()))
    };
    let wish = match get("sslmode").map(String::as_str) {
        None | Some("prefer") => TlsWish {
            mode: SslMode::Prefer,
            verify: None,
        },
        Some("disable") => TlsWish {
            mode: SslMode::Disable,
            verify: None,
        },
        Some("require") => TlsWish {
            mode: SslMode::Require,
            verify: None,
        },
        Some("verify-ca") => TlsWish {
            mode: SslMode::Require,
            verify: Some(verify(false)?),
        },
        Some("verify-full") => TlsWish {
            mode: SslMode::Require,
            verify: Some(verify(true)?),
        },
        Some(other) => {
            return Err(StoreError::Config(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    Ok((rest, wish))
}

/// The connector for `wish`.
pub(crate) fn connector(wish: &TlsWish) -> Result<MakeRustlsConnect> {
    // ring, the provider reqwest's rustls uses too: one crypto library in the build.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?;
    let config = match &wish.verify {
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        Some(v) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&v.root)
                .map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", v.root)))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", v.root)))?;
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", v.root)))?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| StoreError::Config(format!("TLS: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if v.host {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `require`: the session is encrypted and its handshake signed by the certificate's key, but
/// who issued the certificate is not checked (libpq's meaning without a root certificate).
#[derive(Debug)]
struct NoCheck(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name in it is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_words_are_taken_out_of_both_url_forms() {
        let (rest, wish) =
            split_url("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&x=1")
                .expect("a valid URL");
        assert_eq!(rest, "postgres://u@h/db?x=1");
        assert_eq!(wish.mode, SslMode::Require);
        assert_eq!(
            wish.verify,
            Some(Verify {
                root: "/ca.pem".to_owned(),
                host: true
            })
        );
        let (rest, wish) = split_url("host=h user=u sslmode=require").expect("a valid URL");
        assert_eq!(rest, "host=h user=u");
        assert_eq!((wish.mode, wish.verify), (SslMode::Require, None));
        assert_eq!(
            split_url("postgres://u@h/db").expect("a valid URL").1.mode,
            SslMode::Prefer
        );
        assert!(split_url("postgres://u@h/db?sslmode=verify-ca").is_err());
        assert!(split_url("postgres://u@h/db?sslmode=bogus").is_err());
    }

    /// The local test database's certificate (Debian's self-signed "snakeoil", for `localhost`).
    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

    /// Whether the session of a pooled connection made for `url` is encrypted; `None` when the
    /// test database has TLS off (then these tests say so and do nothing).
    fn encrypted(url: &str) -> Option<std::result::Result<bool, String>> {
        let base = crate::testing::test_url();
        let (_, wish) = split_url(url).expect("a valid URL");
        let plain = super::super::pool::Driver::new(
            base.parse().expect("the test URL"),
            connector(&TlsWish {
                mode: SslMode::Disable,
                verify: None,
            })
            .expect("a connector"),
            1,
            std::time::Duration::from_secs(3),
        )
        .expect("a driver");
        let ssl_on = plain
            .conn("test")
            .and_then(|mut c| Ok(c.query_one("SHOW ssl", &[])?.try_get::<_, String>(0)?));
        match ssl_on.as_deref() {
            Ok("on") => {}
            Ok(_) => {
                eprintln!("SKIPPED: the test database has ssl off");
                return None;
            }
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL not reachable ({e})");
                return None;
            }
        }
        let (rest, _) = split_url(url).expect("a valid URL");
        let mut config: tokio_postgres::Config = rest.parse().expect("a valid URL");
        config.ssl_mode(wish.mode);
        let driver = super::super::pool::Driver::new(
            config,
            connector(&wish).expect("a connector"),
            1,
            std::time::Duration::from_secs(3),
        )
        .expect("a driver");
        Some(
            driver
                .conn("test")
                .and_then(|mut c| {
                    Ok(c.query_one(
                        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                        &[],
                    )?
                    .try_get::<_, bool>(0)?)
                })
                .map_err(|e| e.to_string()),
        )
    }

    fn with(params: &str) -> String {
        let base = crate::testing::test_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{params}")
    }

    #[test]
    fn sslmode_require_encrypts_the_session_and_disable_does_not() {
        let Some(required) = encrypted(&with("sslmode=require")) else {
            return;
        };
        assert_eq!(required, Ok(true));
        assert_eq!(encrypted(&with("sslmode=disable")), Some(Ok(false)));
    }

    #[test]
    fn verify_full_checks_the_certificate_and_the_host_name() {
        if !std::path::Path::new(SNAKEOIL).exists() {
            eprintln!("SKIPPED: no {SNAKEOIL}");
            return;
        }
        let by_ip = with(&format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"));
        let Some(wrong_name) = encrypted(&by_ip) else {
            return;
        };
        // The certificate names `localhost`, not 127.0.0.1.
        assert!(wrong_name.is_err(), "{wrong_name:?}");
        let by_name = by_ip.replacen("127.0.0.1", "localhost", 1);
        assert_eq!(encrypted(&by_name), Some(Ok(true)));
        // verify-ca checks the chain only.
        let ca = with(&format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"));
        assert_eq!(encrypted(&ca), Some(Ok(true)));
    }
}
