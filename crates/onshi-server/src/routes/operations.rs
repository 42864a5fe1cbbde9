//! What the people running onshi point their tools at: `/healthz` (the process answers: for a
//! supervisor), `/readyz` (the store answers too: for a load balancer, which sends a replica
//! nothing while its database is away) and `/metrics` (Prometheus), which needs the operator
//! token on the main address and nothing on the operator's own `--metrics-listen` address.
//! Plain text, outside the OpenAPI document.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use onshi_core::offer::CampaignStatus;

use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{CONTENT_TYPE, CampaignGauges};
use crate::state::AppState;

/// How long `/readyz` waits for the store: a load balancer's check must get an answer even
/// while the database hangs.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// The routes on the main address: `/metrics` behind the operator token.
pub fn main_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_for_operator))
}

/// The routes on `--metrics-listen`: an address the operator keeps to the monitoring network.
pub fn metrics_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `GET /healthz`: 200 while the process serves requests.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 once the store answers a round trip within [`READY_WITHIN`]; else 503
/// `database_unavailable`.
async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    match tokio::time::timeout(READY_WITHIN, state.db(|s| s.ping())).await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::unavailable(format!(
            "the database did not answer within {READY_WITHIN:?}"
        ))),
    }
}

async fn metrics_for_operator(_: Operator, state: State<AppState>) -> impl IntoResponse {
    metrics(state).await
}

/// `GET /metrics`: reads the shared gauges from the store, then renders every metric. With the
/// store away it still answers: the counters, the gauges' last values and `onshi_store_up 0`.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let now = state.now();
    let read = state.db(move |s| {
        let mut campaigns = Vec::new();
        for c in s.campaigns()? {
            if c.status == CampaignStatus::Active {
                campaigns.push(CampaignGauges {
                    slots_in_use: s.live_leases(&c.id, now)?,
                    queue_length: s.queue_length(&c.id)?,
                    campaign: c.id,
                });
            }
        }
        let mails = s.mail_summary()?;
        Ok((campaigns, mails.pending, mails.retrying))
    });
    match tokio::time::timeout(READY_WITHIN, read).await {
        Ok(Ok((campaigns, queued, retrying))) => {
            state.metrics.set_shared(&campaigns, queued, retrying);
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e.message, "metrics: the store could not be read");
            state.metrics.store_down();
        }
        Err(_) => {
            tracing::warn!("metrics: the store did not answer in time");
            state.metrics.store_down();
        }
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(),
    )
}
