//! A TCP proxy in front of PostgreSQL that a test can take down (every connection cut, new ones
//! closed at once, as a stopped database server) and bring back: how the outage tests take the
//! database away from a running server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct DatabaseProxy {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
    /// Connections being piped now.
    open: Arc<AtomicUsize>,
}

impl DatabaseProxy {
    /// A proxy to `upstream` (`HOST:PORT`) on a fresh loopback port, up.
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let port = listener.local_addr().expect("an address").port();
        let (up, watch) = tokio::sync::watch::channel(true);
        let open = Arc::new(AtomicUsize::new(0));
        let piping = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // dropped: the connection closes at once
                }
                let mut watch = watch.clone();
                let upstream = upstream.clone();
                let open = piping.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = watch.wait_for(|up| !*up) => {}
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { port, up, open }
    }

    /// A proxy in front of the database of `url` (`postgres://user@HOST:PORT/db?…`), and the
    /// same URL through it.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let (head, tail) = url.split_once('@').expect("a user in the test URL");
        let (authority, path) = tail.split_at(tail.find('/').expect("a database in the test URL"));
        let proxy = Self::start(authority.to_owned()).await;
        let through = format!("{head}@127.0.0.1:{}{path}", proxy.port);
        (proxy, through)
    }

    /// Cuts every connection, waits until all are closed, and lets new ones through again.
    pub async fn cut(&self) {
        self.set_up(false);
        while self.open.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.set_up(true);
    }

    /// Takes the database away (`false`: every connection cut, new ones refused) or brings it
    /// back.
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}
