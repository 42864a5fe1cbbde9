//! The service layer: what the server does, once, for every way of asking. The JSON handlers
//! in `routes/` and the HTML pages in `pages/` extract their input, call a service and shape
//! the answer; the notices worker and the chart's sampler call services too.
//!
//! Must never: import `routes` or `pages`, speak HTTP (no extractors, responses, headers or
//! status codes: failures are [`crate::error::ApiError`] values), or read the wall clock (the
//! time is [`crate::state::AppState::now`], which may be simulated). Rules of the notice are
//! `onshi-core`'s; a service applies them to the store.

pub mod campaigns;
pub mod devices;
pub mod institutions;
pub mod metadata;
pub mod progress;
pub mod qualification;
pub mod releases;
pub mod rollback;
pub mod sign_in;
pub mod silence;
pub mod sites;
pub mod waves;

/// The audit log's actor for everything the operator does (API or dashboard).
pub const OPERATOR: &str = "operator";
