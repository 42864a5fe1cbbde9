//! Accepting and serving HTTP/1.1 connections within [`Limits`]: at most `max_connections` at
//! once (the rest wait in the listen backlog), each request head within `header_timeout` (hyper's
//! header-read timeout, which also closes a keep-alive connection idle that long; a TLS handshake
//! gets as long), and a shutdown that stops accepting, lets the requests in flight finish for at
//! most `shutdown_deadline`, then closes whatever is still open — so a stalled client cannot keep
//! the server from exiting and writing its buffered "last contact" times.
//!
//! Who the client is and how it came: a request from a trusted proxy (loopback always, as nginx
//! on the same machine; more with `--trusted-proxy`) keeps its `X-Forwarded-Proto` and is taken
//! to come from its `X-Real-IP`; anyone else's `X-Forwarded-Proto` is dropped, so a cookie is
//! `Secure` only when a proxy onshi trusts, or onshi's own TLS, says the client used TLS.
//!
//! axum's own `serve` sets no timer on hyper, so no header timeout, and waits for every
//! connection at shutdown however long it stalls; this is the same loop with those limits.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::limits::Limits;

const FORWARDED_PROTO: &str = "x-forwarded-proto";
const REAL_IP: &str = "x-real-ip";

/// How connections are accepted: the limits, TLS if onshi terminates it, the proxies trusted.
#[derive(Clone)]
pub struct Listening {
    pub limits: Limits,
    pub tls: Option<TlsAcceptor>,
    /// Proxies whose `X-Forwarded-Proto` and `X-Real-IP` are believed (loopback always is).
    pub trusted_proxies: Arc<[IpAddr]>,
}

impl Listening {
    fn trusts(&self, peer: IpAddr) -> bool {
        peer.is_loopback() || self.trusted_proxies.contains(&peer)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then shuts down within the deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    how: Listening,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = how.limits;
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // A permit first: at the limit, new connections wait in the backlog, not in memory.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let trusted = how.trusts(peer.ip());
        let tls = how.tls.clone();
        let app = app.clone();
        let closed = closed.clone();
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_one(stream, app, peer, trusted, false, limits, closed).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            serve_one(stream, app, peer, trusted, true, limits, closed).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            of = open,
            deadline_seconds = limits.shutdown_deadline.as_secs_f64(),
            "shutdown deadline passed: closing the connections still open"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// One connection's requests, until it closes or the server shuts down.
async fn serve_one<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    trusted: bool,
    tls: bool,
    limits: Limits,
    mut closed: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut req: axum::http::Request<Incoming>| {
        let headers = req.headers_mut();
        let mut client = peer;
        if trusted {
            if let Some(ip) = headers
                .get(REAL_IP)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
            {
                client = SocketAddr::new(ip, 0);
            }
        } else {
            headers.remove(FORWARDED_PROTO);
        }
        if tls {
            headers.insert(FORWARDED_PROTO, HeaderValue::from_static("https"));
        }
        req.extensions_mut().insert(ConnectInfo(client));
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut connection =
        pin!(builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service)));
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = closed.changed() => {
            // Finish the request in flight, if any, then close.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
