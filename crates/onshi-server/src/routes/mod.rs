//! One module per route group.

pub mod admin;
pub mod device;
pub mod institution;
pub mod qualification;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::MAX_BODY;
use crate::state::AppState;

/// The JSON APIs under `/api/v1`, each handler registered with its `#[utoipa::path]`: the
/// routes and the OpenAPI document come from this one list.
pub fn api() -> OpenApiRouter<AppState> {
    // Package uploads are streamed to disk with their own size limit (MAX_PACKAGE per package).
    let uploads = OpenApiRouter::new()
        .routes(routes!(admin::upload_artifact))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(device::newest_root))
        .routes(routes!(device::root))
        .routes(routes!(device::enroll))
        .routes(routes!(device::enroll_reader))
        .routes(routes!(device::checkin))
        .routes(routes!(device::report))
        .routes(routes!(device::manifest))
        .routes(routes!(device::artifact))
        .routes(routes!(institution::devices))
        .routes(routes!(institution::notices))
        .routes(routes!(
            admin::create_institutions,
            admin::list_institutions
        ))
        .routes(routes!(admin::import_institutions))
        .routes(routes!(admin::enrollment_key))
        .routes(routes!(admin::access_key))
        .routes(routes!(admin::create_release))
        .routes(routes!(admin::get_release))
        .routes(routes!(admin::publish_root))
        .routes(routes!(admin::create_campaign, admin::list_campaigns))
        .routes(routes!(admin::get_campaign))
        .routes(routes!(admin::progress))
        .routes(routes!(admin::campaign_devices))
        .routes(routes!(admin::control_campaign))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::notices))
        .routes(routes!(admin::notices_summary))
        .routes(routes!(admin::set_clock))
        .routes(routes!(qualification::query))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(uploads)
}
