//! The OpenAPI document, generated from `onshi-api`'s types and the handlers' `#[utoipa::path]`
//! attributes as the router registers them ([`crate::api_routes`]): the document and the
//! routes come from one list, so neither can drift from the other. The checked-in
//! `openapi.json` is this document; a test fails when they differ.

use std::sync::OnceLock;

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
    components(schemas(onshi_api::ErrorCode)),
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
            (onshi_api::security::DEVICE, "A device's own token, from its enrolment."),
            (onshi_api::security::INSTITUTION, "The institution's access key."),
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

/// The whole document, as served at `/api/v1/openapi.json` and checked in as `openapi.json`.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| crate::api_routes().split_for_parts().1)
}

/// The document as pretty JSON with a final newline (the checked-in file's form).
pub fn json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
