//! One module per route group.

pub mod admin;
pub mod device;
pub mod institution;
pub mod operations;
pub mod qualification;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::MAX_BODY;
use crate::limits::{self, Limits};
use crate::state::AppState;

/// The JSON APIs under `/api/v1`, each handler registered with its `#[utoipa::path]`: the
/// routes and the OpenAPI document come from this one list. The device API, the institution API
/// and the mock qualification service take small bodies (refused over
/// [`limits::SMALL_BODY`] before they are read) and answer within the request deadline; the
/// operator API, whose credential is checked before its body is read, takes up to
/// [`MAX_BODY`] within [`Limits::operator_deadline`].
pub fn api(limits: &Limits) -> OpenApiRouter<AppState> {
    // Package uploads are streamed to disk with their own size limit (MAX_PACKAGE per package).
    let uploads = OpenApiRouter::new()
        .routes(routes!(admin::upload_artifact))
        .layer(DefaultBodyLimit::disable());
    // Registered in this order, which is the document's order of paths.
    let device = OpenApiRouter::new()
        .routes(routes!(device::newest_root))
        .routes(routes!(device::root))
        .routes(routes!(device::enroll))
        .routes(routes!(device::enroll_reader))
        .routes(routes!(device::checkin))
        .routes(routes!(device::report))
        .routes(routes!(device::manifest))
        .routes(routes!(device::timestamp))
        .routes(routes!(device::snapshot))
        .routes(routes!(device::artifact))
        .routes(routes!(institution::devices))
        .routes(routes!(institution::notices));
    let admin = OpenApiRouter::new()
        .routes(routes!(
            admin::create_institutions,
            admin::list_institutions
        ))
        .routes(routes!(admin::import_institutions))
        .routes(routes!(admin::enrollment_key))
        .routes(routes!(admin::access_key))
        .routes(routes!(admin::revoke_device))
        .routes(routes!(admin::create_release))
        .routes(routes!(admin::get_release))
        .routes(routes!(admin::publish_root))
        .routes(routes!(admin::create_campaign, admin::list_campaigns))
        .routes(routes!(admin::get_campaign))
        .routes(routes!(admin::progress))
        .routes(routes!(admin::waves))
        .routes(routes!(admin::rollback_campaign))
        .routes(routes!(admin::campaign_devices))
        .routes(routes!(admin::control_campaign))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::notices))
        .routes(routes!(admin::notices_summary))
        .routes(routes!(admin::set_clock))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(Limits::body(MAX_BODY))
        .layer(limits.operator_deadline());
    let mock = OpenApiRouter::new().routes(routes!(qualification::query));
    let small = |group: OpenApiRouter<AppState>| {
        group
            .layer(DefaultBodyLimit::max(limits::SMALL_BODY))
            .layer(Limits::body(limits::SMALL_BODY))
            .layer(limits.request_deadline())
    };
    OpenApiRouter::with_openapi(crate::openapi::base())
        .merge(small(device))
        .merge(admin)
        .merge(small(mock))
        .merge(uploads)
}
