//! A real SMTP listener on loopback for the notice tests (DESIGN.md §6: no mock object): accepts
//! every mail and keeps it, or, stalling, keeps it and never answers; or, as a real relay,
//! speaks TLS (implicit, or STARTTLS which it then requires) with a certificate from a test CA
//! made for the test, and requires `AUTH PLAIN` with the credentials it was given.

use onshi_core::notice::NoticeKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// One mail as the listener received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The DATA, lines ending in `\n`.
    pub data: String,
    /// Whether the connection was encrypted when the mail was given.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub user: Option<String>,
}

/// A minimal SMTP server: accepts every mail and keeps its DATA.
#[derive(Clone, Default)]
pub struct Inbox(Arc<Mutex<Vec<Delivery>>>);

impl Inbox {
    pub fn mails(&self) -> Vec<String> {
        self.deliveries().into_iter().map(|d| d.data).collect()
    }

    /// Every mail with how it came.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.0.lock().expect("inbox").clone()
    }

    /// How many notice mails of `kind` arrived (by their Message-ID).
    pub fn of_kind(&self, kind: NoticeKind) -> usize {
        let kind = format!("-{}-", kind.slug());
        self.mails()
            .iter()
            .filter(|m| m.contains("Message-ID: <notice-") && m.contains(&kind))
            .count()
    }
}

/// Accepts every mail: keeps its DATA and answers 250.
pub async fn smtp_listener(listener: TcpListener) -> Inbox {
    serve(listener, Policy::default()).await
}

/// [`smtp_listener`] on a fresh loopback port; answers the inbox and the `smtp://HOST:PORT` URL
/// a server sends to.
pub async fn smtp_server() -> (Inbox, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("smtp://{}", listener.local_addr().expect("addr"));
    (smtp_listener(listener).await, url)
}

/// A server that hangs: takes each mail's DATA (kept in the inbox) but never answers it, so no
/// mail is ever accepted; the sender waits until it times out or dies.
pub async fn stalling_smtp_listener(listener: TcpListener) -> Inbox {
    serve(
        listener,
        Policy {
            stall_first: usize::MAX,
            ..Policy::default()
        },
    )
    .await
}

/// Hangs on the first `n` mails (as [`stalling_smtp_listener`]), accepts the rest.
pub async fn smtp_listener_stalling_first(listener: TcpListener, n: usize) -> Inbox {
    serve(
        listener,
        Policy {
            stall_first: n,
            ..Policy::default()
        },
    )
    .await
}

/// Refuses for good (`550 5.1.1`, as a relay does for a mailbox that does not exist) every
/// recipient whose address contains `refused`; accepts the rest. The inbox holds only accepted
/// mails.
pub async fn smtp_listener_refusing(listener: TcpListener, refused: &str) -> Inbox {
    serve(
        listener,
        Policy {
            refuse_rcpt: Some(refused.to_ascii_uppercase()),
            ..Policy::default()
        },
    )
    .await
}

/// How a TLS relay secures its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
    /// Plain text until `STARTTLS`, which must come before `AUTH` and `MAIL`.
    StartTls,
}

/// A relay as a mail provider runs one: TLS with a certificate for `127.0.0.1` signed by a test
/// CA (made anew for each relay), and `AUTH PLAIN` required before a mail.
pub struct TlsRelay {
    pub inbox: Inbox,
    /// `smtps://127.0.0.1:PORT` or `smtp://127.0.0.1:PORT?tls=required`, no credentials.
    pub url: String,
    /// The test CA's certificate (PEM), what `--smtp-ca` names.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts a [`TlsRelay`] that accepts `user` with `password` only.
pub async fn tls_relay(security: Security, user: &str, password: &str) -> TlsRelay {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca_pem, acceptor) = test_ca_and_acceptor();
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("CA written");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = match security {
        Security::Implicit => format!("smtps://{addr}"),
        Security::StartTls => format!("smtp://{addr}?tls=required"),
    };
    let inbox = serve(
        listener,
        Policy {
            tls: Some((acceptor, security)),
            login: Some((user.to_owned(), password.to_owned())),
            ..Policy::default()
        },
    )
    .await;
    TlsRelay {
        inbox,
        url,
        ca_file,
        _dir: dir,
    }
}

/// A CA, and an acceptor whose certificate for `127.0.0.1` it signed: the CA's PEM.
fn test_ca_and_acceptor() -> (String, TlsAcceptor) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "onshi test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("relay key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters");
    leaf.distinguished_name
        .push(DnType::CommonName, "test relay");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("relay certificate");
    let chain = vec![cert.der().clone()];
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .expect("TLS configuration");
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

/// What the listener asks of its clients.
#[derive(Clone, Default)]
struct Policy {
    /// Hang on the first so many mails.
    stall_first: usize,
    tls: Option<(TlsAcceptor, Security)>,
    /// The only credentials accepted; `None`: no `AUTH` offered or needed.
    login: Option<(String, String)>,
    /// A recipient containing this (upper case) is refused with a permanent 550.
    refuse_rcpt: Option<String>,
}

async fn serve(listener: TcpListener, policy: Policy) -> Inbox {
    let inbox = Inbox::default();
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (inbox, policy) = (kept.clone(), policy.clone());
            tokio::spawn(async move { connection(stream, &policy, &inbox).await });
        }
    });
    inbox
}

/// One client, through TLS as the policy says.
async fn connection(stream: TcpStream, policy: &Policy, inbox: &Inbox) {
    match &policy.tls {
        None => {
            session(stream, policy, inbox, false, true).await;
        }
        Some((acceptor, Security::Implicit)) => {
            if let Ok(tls) = acceptor.accept(stream).await {
                session(tls, policy, inbox, true, true).await;
            }
        }
        Some((acceptor, Security::StartTls)) => {
            if let Some(plain) = session(stream, policy, inbox, false, true).await
                && let Ok(tls) = acceptor.accept(plain).await
            {
                // No new greeting after STARTTLS: the client starts with EHLO.
                session(tls, policy, inbox, true, false).await;
            }
        }
    }
}

/// One SMTP conversation; the stream back when the client asked for STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    policy: &Policy,
    inbox: &Inbox,
    tls: bool,
    greet: bool,
) -> Option<S> {
    let mut io = BufReader::new(stream);
    if greet {
        io.get_mut()
            .write_all(b"220 test.invalid ESMTP\r\n")
            .await
            .ok()?;
    }
    let offers_starttls = !tls && policy.tls.is_some();
    let mut user: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut lines = vec!["test.invalid"];
            if offers_starttls {
                lines.push("STARTTLS");
            }
            if policy.login.is_some() && (tls || policy.tls.is_none()) {
                lines.push("AUTH PLAIN");
            }
            let last = lines.len() - 1;
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
                .collect()
        } else if upper == "STARTTLS" && offers_starttls {
            io.get_mut()
                .write_all(b"220 2.0.0 ready to start TLS\r\n")
                .await
                .ok()?;
            return Some(io.into_inner());
        } else if upper.starts_with("AUTH PLAIN") {
            let given = match command.split_whitespace().nth(2) {
                Some(initial) => initial.to_owned(),
                None => {
                    io.get_mut().write_all(b"334 \r\n").await.ok()?;
                    let mut answer = String::new();
                    io.read_line(&mut answer).await.ok()?;
                    answer.trim().to_owned()
                }
            };
            match (plain_credentials(&given), &policy.login) {
                (Some((u, p)), Some((want_u, want_p))) if u == *want_u && p == *want_p => {
                    user = Some(u);
                    "235 2.7.0 authenticated\r\n".to_owned()
                }
                _ => "535 5.7.8 authentication credentials invalid\r\n".to_owned(),
            }
        } else if upper.starts_with("MAIL") && policy.tls.is_some() && !tls {
            "530 5.7.0 must issue a STARTTLS command first\r\n".to_owned()
        } else if upper.starts_with("MAIL") && policy.login.is_some() && user.is_none() {
            "530 5.7.0 authentication required\r\n".to_owned()
        } else if upper.starts_with("RCPT")
            && policy
                .refuse_rcpt
                .as_ref()
                .is_some_and(|refused| upper.contains(refused.as_str()))
        {
            "550 5.1.1 no such mailbox\r\n".to_owned()
        } else if upper.starts_with("DATA") {
            io.get_mut().write_all(b"354 go ahead\r\n").await.ok()?;
            let mut data = String::new();
            let mut l = String::new();
            loop {
                l.clear();
                if io.read_line(&mut l).await.ok()? == 0 {
                    return None;
                }
                let text = l.trim_end_matches(['\r', '\n']);
                if text == "." {
                    break;
                }
                data.push_str(text);
                data.push('\n');
            }
            let nth = {
                let mut kept = inbox.0.lock().expect("inbox");
                kept.push(Delivery {
                    data,
                    tls,
                    user: user.clone(),
                });
                kept.len()
            };
            if nth <= policy.stall_first {
                std::future::pending::<()>().await;
            }
            "250 queued\r\n".to_owned()
        } else if upper.starts_with("QUIT") {
            let _ = io.get_mut().write_all(b"221 bye\r\n").await;
            return None;
        } else {
            "250 ok\r\n".to_owned()
        };
        if io.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return None;
        }
    }
}

/// `AUTH PLAIN`'s answer: base64 of `authzid \0 user \0 password`.
fn plain_credentials(b64: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let _authzid = parts.next()?;
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}
