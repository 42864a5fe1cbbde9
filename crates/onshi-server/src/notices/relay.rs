//! The SMTP relay notice mails go through, from lettre's own connection URL
//! (`AsyncSmtpTransport::from_url`): `smtps://HOST[:465]` (implicit TLS),
//! `smtp://HOST[:587]?tls=required` (STARTTLS, refused if the relay does not offer it), or plain
//! `smtp://HOST[:25]` to an MTA on this machine. Credentials are `USER:PASSWORD@` in the URL
//! (percent-encoded) or given apart (`--smtp-user`, `ONSHI_SMTP_PASSWORD`); the password never
//! reaches a log or an error message ([`Relay::redacted`]). The relay's certificate is checked
//! against the Mozilla roots built in, or only against `--smtp-ca FILE`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use url::Url;

/// How long connecting to the relay may take (each send has its own deadline besides).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where notice mails go, as the operator configured it.
#[derive(Clone, Default)]
pub struct Relay {
    /// lettre's connection URL (may hold a password: see [`Relay::redacted`]).
    pub url: String,
    /// A user name given apart from the URL (`--smtp-user`), with [`Relay::password`].
    pub user: Option<String>,
    /// Its password (`ONSHI_SMTP_PASSWORD`).
    pub password: Option<String>,
    /// PEM certificates of the CAs to trust for the relay instead of the built-in roots
    /// (`--smtp-ca`): a relay with a certificate from an internal CA.
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("url", &self.redacted())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca", &self.ca)
            .finish()
    }
}

/// Why a relay cannot be used; every message names the URL with its password hidden.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("--smtp {url}: {why}")]
    Url { url: String, why: String },
    #[error(
        "--smtp {url}: plain SMTP to {host}, which is not this machine; ask for TLS: \
         smtps://{host}:465, or smtp://{host}:587?tls=required for STARTTLS"
    )]
    PlainRemote { url: String, host: String },
    #[error(
        "--smtp {url}: tls=opportunistic sends in clear text when STARTTLS fails; use \
         tls=required"
    )]
    Opportunistic { url: String },
    #[error(
        "--smtp {url}: credentials would go in clear text; ask for TLS (smtps:// or ?tls=required)"
    )]
    CredentialsInClear { url: String },
    #[error("--smtp-user needs its password in ONSHI_SMTP_PASSWORD")]
    NoPassword,
    #[error("--smtp {url}: the URL holds credentials and --smtp-user gives others; give them once")]
    TwoCredentials { url: String },
    #[error("--smtp-ca is given but --smtp {url} asks for no TLS")]
    CaWithoutTls { url: String },
    #[error("--smtp-ca {path}: {why}")]
    Ca { path: String, why: String },
}

/// How the URL asks the connection to be secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    Implicit,
}

impl Relay {
    /// A relay at `url` with nothing given apart from it.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The URL with its password replaced by `***` (what logs and errors show).
    pub fn redacted(&self) -> String {
        match Url::parse(&self.url) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                u.to_string()
            }
            // Not a URL: show nothing of it after the scheme, in case it holds a secret.
            Err(_) => match self.url.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://…"),
                None => "(not a URL)".to_owned(),
            },
        }
    }

    /// `host:port` of the relay (lettre's default ports: 465 for `smtps`, 587 for STARTTLS,
    /// 25 for plain), for messages.
    pub fn host_port(&self) -> String {
        let Ok(u) = Url::parse(&self.url) else {
            return self.redacted();
        };
        let starttls = u.query_pairs().any(|(k, _)| k == "tls");
        let port = u.port().unwrap_or(match u.scheme() {
            "smtps" => 465,
            _ if starttls => 587,
            _ => 25,
        });
        format!("{}:{port}", u.host_str().unwrap_or_default())
    }

    /// The transport: lettre reads the URL (host, port and its default, TLS, credentials, the
    /// EHLO name); this adds the rules above, the credentials given apart and the CA.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, RelayError> {
        let url = self.redacted();
        let bad = |why: String| RelayError::Url {
            url: url.clone(),
            why,
        };
        let parsed = Url::parse(&self.url).map_err(|e| bad(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("no host".to_owned()))?
            .to_owned();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let security = match (parsed.scheme(), tls.as_deref()) {
            ("smtps", _) => Security::Implicit,
            ("smtp", Some("required")) => Security::StartTls,
            ("smtp", Some("opportunistic")) => return Err(RelayError::Opportunistic { url }),
            ("smtp", None) => Security::Plain,
            (scheme, _) => {
                return Err(bad(format!(
                    "{scheme}:// with tls={tls:?}: expected smtps://, smtp://…?tls=required or \
                     plain smtp:// to this machine"
                )));
            }
        };
        let in_url = parsed.password().is_some() || !parsed.username().is_empty();
        if in_url && self.user.is_some() {
            return Err(RelayError::TwoCredentials { url });
        }
        let credentials = in_url || self.user.is_some();
        if security == Security::Plain {
            if !is_this_machine(&host) {
                return Err(RelayError::PlainRemote { url, host });
            }
            if credentials {
                return Err(RelayError::CredentialsInClear { url });
            }
            if self.ca.is_some() {
                return Err(RelayError::CaWithoutTls { url });
            }
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url)
            .map_err(|e| bad(e.to_string()))?;
        if let Some(user) = &self.user {
            let password = self.password.clone().ok_or(RelayError::NoPassword)?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        if let Some(path) = &self.ca {
            let ca_error = |why: String| RelayError::Ca {
                path: path.display().to_string(),
                why,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
            let params = TlsParameters::builder(host)
                .certificate_store(CertificateStore::None)
                .add_root_certificate(cert)
                .build()
                .map_err(|e| ca_error(e.to_string()))?;
            builder = builder.tls(match security {
                Security::Implicit => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        Ok(builder.timeout(Some(CONNECT_TIMEOUT)).build())
    }
}

/// Loopback, by address or as `localhost`: the one place plain SMTP stays on this machine.
fn is_this_machine(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(relay: Relay) -> String {
        match relay.transport() {
            Ok(_) => panic!("{relay:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tls_relays_and_plain_smtp_on_this_machine_are_accepted() {
        for url in [
            "smtps://mail.example.jp",
            "smtps://user:p%40ss@mail.example.jp:465",
            "smtp://mail.example.jp:587?tls=required",
            "smtp://127.0.0.1:2525",
            "smtp://localhost",
            "smtp://[::1]:25",
        ] {
            assert!(Relay::new(url).transport().is_ok(), "{url}");
        }
        let apart = Relay {
            user: Some("onshi".into()),
            password: Some("secret".into()),
            ..Relay::new("smtp://mail.example.jp:587?tls=required")
        };
        assert!(apart.transport().is_ok());
    }

    #[test]
    fn plain_text_beyond_this_machine_is_refused_with_what_to_ask_for() {
        let e = refused(Relay::new("smtp://mail.example.jp"));
        assert!(e.contains("smtps://mail.example.jp:465"), "{e}");
        assert!(e.contains("?tls=required"), "{e}");
        assert!(
            refused(Relay::new("smtp://mail.example.jp?tls=opportunistic"))
                .contains("tls=required")
        );
        let e = refused(Relay::new("smtp://u:hunter2@127.0.0.1:25"));
        assert!(e.contains("clear text"), "{e}");
        assert!(refused(Relay::new("http://mail.example.jp")).contains("expected smtps://"));
        let no_password = Relay {
            user: Some("onshi".into()),
            ..Relay::new("smtps://mail.example.jp")
        };
        assert!(refused(no_password).contains("ONSHI_SMTP_PASSWORD"));
    }

    #[test]
    fn the_password_never_shows() {
        let relay = Relay {
            password: Some("hunter2".into()),
            user: Some("onshi".into()),
            ..Relay::new("smtps://admin:hunter2@mail.example.jp:465")
        };
        assert_eq!(relay.redacted(), "smtps://admin:***@mail.example.jp:465");
        assert!(!format!("{relay:?}").contains("hunter2"));
        let e = refused(relay);
        assert!(!e.contains("hunter2"), "{e}");
        let e = refused(Relay::new("smtp://admin:hunter2@mail.example.jp"));
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(
            Relay::new("smtps://mail.example.jp").host_port(),
            "mail.example.jp:465"
        );
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_named() {
        let missing = Relay {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Relay::new("smtps://mail.example.jp")
        };
        assert!(refused(missing).contains("/nonexistent/ca.pem"));
        let plain = Relay {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Relay::new("smtp://127.0.0.1")
        };
        assert!(refused(plain).contains("no TLS"));
    }
}
