//! The OpenAPI document's skeleton (info, tags, the three bearer schemes). The operations and
//! their schemas are added by the router that registers them (`routes::api`), from
//! `onshi-api`'s types and the handlers' `#[utoipa::path]` attributes, so the document and the
//! routes come from one list. The checked-in `openapi.json` is the result; a test fails when
//! they differ.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "onshi",
        description = "The device API (what each terminal's distribution agent speaks), the \
                       institution API (a site's own devices and the notices for the online \
                       billing screen) and the operator API of the onshi rollout server. Every \
                       error is JSON `{\"code\": …, \"message\": …}` with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerSchemes),
    // The schemas only parameters and the shared error answers name (the operations register
    // the others).
    components(schemas(
        onshi_api::ErrorBody,
        onshi_api::ErrorCode,
        onshi_api::admin::Format,
        onshi_core::deployment::DeploymentState,
        onshi_core::institution::InstitutionCode,
        onshi_core::institution::InstitutionKind,
        onshi_core::lang::Lang,
        onshi_core::offer::CampaignAction,
        onshi_core::release::Sha256,
        onshi_core::vendor::DeviceKind,
        onshi_core::vendor::Vendor,
    )),
    tags(
        (name = "device", description = "資格確認端末の配信アプリケーション: enrolment, check-in, reports, packages"),
        (name = "institution", description = "医療機関・薬局: a site's devices and notices (its access key)"),
        (name = "operator", description = "The operator running the rollout (the operator token)"),
        (name = "qualification", description = "The mock qualification service of the reception emulator"),
    )
)]
struct ApiDoc;

/// The three bearer credentials.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                onshi_api::security::DEVICE,
                "A device's own token, from its enrolment.",
            ),
            (
                onshi_api::security::INSTITUTION,
                "The institution's access key.",
            ),
            (onshi_api::security::OPERATOR, "The operator token."),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}

/// The document's skeleton: info, tags, security schemes; the router adds the operations.
pub fn base() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}
