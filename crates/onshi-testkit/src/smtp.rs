//! A real SMTP listener on loopback for the notice tests (DESIGN.md §6: no mock object): accepts
//! every mail and keeps it, or, stalling, keeps it and never answers.

use onshi_core::notice::NoticeKind;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A minimal SMTP server: accepts every mail and keeps its DATA.
#[derive(Clone, Default)]
pub struct Inbox(Arc<Mutex<Vec<String>>>);

impl Inbox {
    pub fn mails(&self) -> Vec<String> {
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
    serve(listener, 0).await
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
    serve(listener, usize::MAX).await
}

/// Hangs on the first `n` mails (as [`stalling_smtp_listener`]), accepts the rest.
pub async fn smtp_listener_stalling_first(listener: TcpListener, n: usize) -> Inbox {
    serve(listener, n).await
}

async fn serve(listener: TcpListener, stall_first: usize) -> Inbox {
    let inbox = Inbox::default();
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let inbox = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 test.invalid ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 test.invalid\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        let nth = {
                            let mut kept = inbox.0.lock().expect("inbox");
                            kept.push(data);
                            kept.len()
                        };
                        if nth <= stall_first {
                            std::future::pending::<()>().await;
                        }
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    inbox
}
