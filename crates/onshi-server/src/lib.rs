//! The onshi HTTP server: the device API every terminal talks to, artifact downloads, the
//! operator API, the institution API and the HTML pages (guidance, site page, operator
//! dashboard, reception emulator). Start-up lives in [`start`], which the `onshi serve`
//! command and the integration tests both call.
//!
//! Must never: decide a rule of the notice itself (windows, states, offers come from
//! `onshi-core`), read the time except through its [`Clock`], or acknowledge a state report
//! before the store committed it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use onshi_clock::Clock;
use onshi_store::{PostgresStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub mod artifacts;
mod attachment;
pub mod auth;
mod connections;
mod desks;
mod error;
mod gates;
mod headers;
mod history;
mod json;
pub mod limits;
mod logins;
pub mod metrics;
pub mod notices;
pub mod openapi;
mod pages;
mod routes;
mod secrets;
mod services;
mod sessions;
mod state;
mod targeting;
mod tls;
pub mod trust;
mod wire;

pub use error::ApiError;
pub use state::AppState;

/// The OpenAPI document of the three APIs as checked in next to this crate (a test keeps it
/// equal to the generated [`openapi_json`]).
pub const OPENAPI: &str = include_str!("../openapi.json");

pub use json::MAX_BODY;
pub use limits::Limits;
pub use tls::{TlsError, TlsFiles};

/// How the server is started.
#[derive(Debug, Clone)]
pub struct Config {
    /// Packages (`artifacts/`) and the timestamp key; with SQLite also the database `onshi.db`.
    /// Replicas sharing one PostgreSQL database share this directory too (or its artifacts).
    pub data_dir: PathBuf,
    /// A PostgreSQL URL: the database replicas share. `None`: SQLite in `DATA/onshi.db`.
    pub database: Option<String>,
    pub listen: SocketAddr,
    pub clock: Clock,
    /// The online timestamp key (`onshi keys init` writes it); default `DATA/keys/timestamp.key`.
    /// Never created by the server: a missing key, or one the trusted root does not name, stops
    /// it.
    pub timestamp_key: Option<PathBuf>,
    /// The online snapshot key, when the ceremony made one apart from the timestamp key;
    /// default `DATA/keys/snapshot.key` if that file exists, else the timestamp key signs the
    /// snapshot too. Checked against the root like the timestamp key.
    pub snapshot_key: Option<PathBuf>,
    /// The key ceremony's `root.json`: required on the first start (it becomes root version 1
    /// in the database); later it must equal the stored root of its version.
    pub trust_root: Option<PathBuf>,
    /// The operator token to use (from `ONSHI_OPERATOR_TOKEN`); otherwise one is generated on
    /// first start and printed once.
    pub operator_token: Option<String>,
    /// Let the mock qualification service answer non-loopback clients (default: loopback only).
    pub qualification_public: bool,
    /// Where notice mails go: an SMTP relay (TLS and credentials as [`notices::Relay`] says);
    /// absent: `.eml` files in `DATA/outbox/`.
    pub smtp: Option<notices::Relay>,
    /// The notices' sender (default [`notices::DEFAULT_FROM`]).
    pub mail_from: Option<String>,
    /// nginx's internal location for packages (`/_onshi/artifacts/`, say): an authorised
    /// download is answered with `X-Accel-Redirect: PREFIX<ab>/<sha256>` and no body, and nginx
    /// sends the file (see [`artifacts::accel_redirect`]). `None`: onshi streams the file.
    pub accel_redirect: Option<String>,
    /// Time and size limits of connections and requests.
    pub limits: Limits,
    /// Serve HTTPS with this certificate and key (`--tls-cert`, `--tls-key`); `None`: plain
    /// HTTP, for loopback behind a proxy that terminates TLS.
    pub tls: Option<TlsFiles>,
    /// Proxies besides loopback whose `X-Forwarded-Proto` and `X-Real-IP` are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A second address serving `/metrics` without the operator token (and `/healthz`,
    /// `/readyz`), for a monitoring network; `None`: `/metrics` only on `listen`, with the token.
    pub metrics_listen: Option<SocketAddr>,
    /// The address sites reach the pages at (`https://onshi.example.jp`), for the sign-in
    /// links in mails; `None`: this server's own scheme and bound address.
    pub public_url: Option<String>,
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// `https` when onshi terminates TLS, else `http`.
    pub scheme: &'static str,
    /// Set when the server generated a new operator token on this start (print it once).
    pub new_operator_token: Option<String>,
    /// Where that new token was written (`DATA/operator-token`, mode 0600), so that it need
    /// never reach a log.
    pub new_operator_token_file: Option<PathBuf>,
    pub state: AppState,
    /// Where `--metrics-listen` serves, once bound.
    pub metrics_addr: Option<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Waits until the server stops.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server
            .await
            .context("server task")?
            .context("server")?;
        let store = self.state.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await?
            .context("flushing the store")?;
        Ok(())
    }
}

/// The router: the JSON APIs, the OpenAPI document and the HTML pages, each route group with
/// its body limit ([`limits`]): 16 KiB for the device API and every route open without a
/// credential, 64 KiB for the operator's page forms (read only once the operator's session is
/// found), 64 MiB for the operator API, packages streamed with their own limit. A declared
/// length over the limit is refused before the body is read. Every route but the package
/// uploads has a deadline for the whole request; an upload's pauses are limited.
pub fn router(state: AppState, limits: &Limits) -> Router {
    use pages::{actions, dashboard, guidance, home, operator, site};
    let (api, _) = routes::api(limits).split_for_parts();
    // Open to anyone: the logins, the reception emulator.
    let open_pages = Router::new()
        .route("/api/v1/openapi.json", get(serve_openapi))
        .route("/", get(home::page))
        .route("/guidance", get(guidance::page))
        .route("/site", get(site::page))
        .route("/site/login", post(site::login))
        .route("/site/logout", post(site::logout))
        .route("/site/sign-in", get(site::sign_in_page).post(site::sign_in))
        .route(pages::assets::SCRIPT_PATH, get(pages::assets::script))
        .route("/favicon.ico", get(pages::assets::favicon))
        .route(
            "/operator/login",
            get(operator::login_page).post(operator::login),
        )
        .route("/reception", get(pages::reception::start))
        .route("/reception/{id}", get(pages::reception::page))
        .route("/reception/{id}/event", post(pages::reception::event))
        .route("/reception/{id}/setup", post(pages::reception::setup))
        .merge(routes::operations::main_routes())
        .layer(DefaultBodyLimit::max(limits::SMALL_BODY))
        .layer(Limits::body(limits::SMALL_BODY))
        .layer(limits.request_deadline());
    let operator_pages = Router::new()
        .route("/operator/logout", post(operator::logout))
        .route("/operator", get(operator::home))
        .route("/operator/campaigns", post(operator::create_campaign))
        .route("/operator/campaigns/{id}", get(dashboard::page))
        .route("/operator/campaigns/{id}/control", post(operator::control))
        .route(
            "/operator/campaigns/{id}/rollback",
            post(operator::rollback),
        )
        .route("/operator/campaigns/{id}/sites", get(actions::page))
        .route("/operator/campaigns/{id}/sites.csv", get(actions::csv))
        .route(
            "/operator/devices/{id}/revoke",
            post(operator::revoke_device),
        )
        .layer(DefaultBodyLimit::max(limits::FORM_BODY))
        .layer(Limits::body(limits::FORM_BODY))
        .layer(limits.request_deadline())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            operator::require_session,
        ));
    // The dashboard's release upload is a package upload too: no deadline on the whole (the
    // pause between its chunks is limited), but no body read without the operator's session.
    let uploads = Router::new()
        .route("/operator/releases", post(operator::upload_release))
        .layer(DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            operator::require_session,
        ));
    api.merge(open_pages)
        .merge(operator_pages)
        .merge(uploads)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(limits.body_pause())
        .layer(axum::middleware::map_response(limits::errors_as_json))
        .layer(axum::middleware::map_response(headers::secure))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI document as pretty JSON with a final newline: what `/api/v1/openapi.json`
/// serves and `openapi.json` holds.
pub fn openapi_json() -> String {
    let mut text = routes::api(&Limits::default())
        .into_openapi()
        .to_pretty_json()
        .unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json`: the generated document (the same as the checked-in one).
async fn serve_openapi() -> impl axum::response::IntoResponse {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        JSON.get_or_init(openapi_json).as_str(),
    )
}

/// Opens the store, sets up the keys and the operator token, binds and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let transport = match &config.smtp {
        Some(relay) => {
            // Refused before anything starts: a relay it could not send through.
            relay.transport()?;
            notices::Transport::Smtp(relay.clone())
        }
        None => notices::Transport::Files(config.data_dir.join("outbox")),
    };
    let from_text = config.mail_from.as_deref().unwrap_or(notices::DEFAULT_FROM);
    let from: lettre::message::Mailbox = from_text
        .parse()
        .with_context(|| format!("--mail-from {from_text:?} is not a mail address"))?;
    if let Some(prefix) = &config.accel_redirect {
        artifacts::check_accel_prefix(prefix)
            .map_err(|e| anyhow::anyhow!("--accel-redirect {prefix:?}: {e}"))?;
    }
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let key_path = config
        .timestamp_key
        .clone()
        .unwrap_or_else(|| config.data_dir.join("keys").join("timestamp.key"));
    let snapshot_key_path = config.snapshot_key.clone().or_else(|| {
        let default = config.data_dir.join("keys").join("snapshot.key");
        default.exists().then_some(default)
    });
    let root_path = config.trust_root.clone();
    // The store's calls block (and the PostgreSQL client must not run on an async worker).
    let setup = {
        let (data_dir, database, token) = (
            config.data_dir.clone(),
            config.database.clone(),
            config.operator_token.clone(),
        );
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = open_store(&data_dir, database.as_deref())?;
            // The same check on both stores: the chain is in the database, the key a file.
            let keys = trust::OnlineKeyFiles {
                timestamp: &key_path,
                snapshot: snapshot_key_path.as_deref(),
            };
            let trust = trust::TrustState::load(store.as_ref(), root_path.as_deref(), &keys)?;
            let (token_hash, new_token) = operator_token(store.as_ref(), token)?;
            Ok((store, trust, token_hash, new_token))
        })
    };
    let (store, trust, token_hash, new_operator_token) = setup.await??;
    let new_operator_token_file = match &new_operator_token {
        Some(token) => {
            let path = config.data_dir.join("operator-token");
            let _ = std::fs::remove_file(&path);
            write_private(&path, token)?;
            Some(path)
        }
        None => None,
    };
    let state = AppState::new(
        store.clone(),
        config.clock.clone(),
        config.data_dir.clone(),
        trust,
        token_hash,
    )
    .serving(
        config.qualification_public,
        config.accel_redirect.as_deref().map(Arc::from),
    )
    .with_login_rates(config.limits.logins);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match &config.public_url {
        Some(url) => {
            let url = url.trim_end_matches('/');
            anyhow::ensure!(
                url.starts_with("https://") || url.starts_with("http://"),
                "--public-url {url:?}: expected http(s)://HOST[:PORT]"
            );
            url.to_owned()
        }
        None => format!("{scheme}://{addr}"),
    };
    let state = state.with_public_url(public_url);
    let database = config
        .database
        .as_deref()
        .map_or_else(|| "sqlite".to_owned(), onshi_store::postgres::redact);
    let metrics_addr = match config.metrics_listen {
        Some(at) => Some(serve_metrics(at, state.clone()).await?),
        None => None,
    };
    let smtp = config.smtp.as_ref().map_or_else(
        || "DATA/outbox (.eml files)".to_owned(),
        notices::Relay::redacted,
    );
    tracing::info!(%addr, data = %config.data_dir.display(), %database, %smtp, metrics = ?metrics_addr, simulated_clock = config.clock.is_simulated(), "onshi serve listening");
    spawn_flusher(store.clone());
    services::progress::spawn_sampler(state.clone());
    notices::spawn(state.clone(), transport, from)?;
    gates::spawn(state.clone());
    let app = router(state.clone(), &config.limits);
    let how = connections::Listening {
        limits: config.limits,
        tls,
        trusted_proxies: config.trusted_proxies.clone().into(),
    };
    let server = tokio::spawn(connections::serve(listener, app, how, shutdown_signal()));
    Ok(Running {
        addr,
        scheme,
        new_operator_token,
        new_operator_token_file,
        state,
        metrics_addr,
        server,
    })
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `at` (`--metrics-listen`), without a token:
/// plain HTTP for the monitoring network the operator chose. Stops with the process.
async fn serve_metrics(at: SocketAddr, state: AppState) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("binding --metrics-listen {at}"))?;
    let bound = listener.local_addr()?;
    let app = routes::operations::metrics_routes()
        .fallback(error::no_route)
        .layer(axum::middleware::map_response(headers::secure))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

/// Writes buffered "last contact" times at a steady pace: one chunk every 100 ms, so a burst of
/// first contacts (every device at 20:00) drains over a few seconds instead of taking a core
/// away from check-ins all at once.
fn spawn_flusher(store: Arc<dyn Store>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.flush_some(FLUSH_PER_TICK)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "flushing last-contact times failed"),
                Err(e) => tracing::error!(error = %e, "flush task failed"),
            }
        }
    });
}

/// Contacts written per flusher tick (10 ticks a second).
const FLUSH_PER_TICK: usize = 500;

/// Ctrl-C or SIGTERM: what stops `onshi serve` (and the demo, which embeds the server and
/// must stop on the same signal, not find it gone).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The store `Config` asks for: PostgreSQL at `database`, else SQLite in `DATA/onshi.db`.
fn open_store(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match database {
        // The error names the URL (password redacted) and why.
        Some(url) => Arc::new(PostgresStore::open(url)?),
        None => {
            let db = data_dir.join("onshi.db");
            Arc::new(SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?)
        }
    })
}

const OPERATOR_TOKEN_KEY: &str = "operator_token_hash";
/// Writes a new private file (mode 0600) whole or not at all: a temporary file, then a hard link
/// to the final name, which fails if the name exists (two replicas starting together on one DATA).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp-{}", auth::new_secret()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| -> anyhow::Result<()> {
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        writeln!(file, "{text}")?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path).with_context(|| format!("creating {}", path.display()))
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

/// The shortest operator token accepted: the one credential that controls every site's update.
pub const MIN_OPERATOR_TOKEN: usize = 32;

/// The operator token's hash: from `ONSHI_OPERATOR_TOKEN` if given, else the stored one, else a
/// new token (returned so it can be printed once).
fn operator_token(
    store: &dyn Store,
    given: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    if let Some(token) = given {
        anyhow::ensure!(
            token.chars().count() >= MIN_OPERATOR_TOKEN,
            "ONSHI_OPERATOR_TOKEN must be at least {MIN_OPERATOR_TOKEN} characters \
             (a long random secret: `openssl rand -base64 32`, say)"
        );
        let hash = auth::hash_secret(&token);
        store.set_setting(OPERATOR_TOKEN_KEY, &hash)?;
        return Ok((hash, None));
    }
    if let Some(hash) = store.setting(OPERATOR_TOKEN_KEY)? {
        return Ok((hash, None));
    }
    let token = auth::new_secret();
    let hash = auth::hash_secret(&token);
    let stored = store.insert_setting_if_absent(OPERATOR_TOKEN_KEY, &hash)?;
    if stored != hash {
        // Another replica starting at the same time set its token first; it printed it.
        return Ok((stored, None));
    }
    Ok((hash, Some(token)))
}
