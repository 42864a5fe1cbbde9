//! The OpenAPI document is generated from `onshi-api`'s types and the handlers registered in
//! `api_routes` (utoipa). These tests keep the checked-in `openapi.json` equal to it and check
//! what generation alone does not promise: OpenAPI 3.1, the three bearer schemes, a stated
//! security and JSON errors on every operation, every `$ref` resolvable, every path parameter
//! declared, and closed request objects.
//!
//! After changing a wire type or a handler's documentation, regenerate the file with
//! `UPDATE_OPENAPI=1 cargo test -p onshi-server --test openapi` and commit it.

use std::collections::BTreeSet;

use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(&onshi_server::openapi_json()).expect("the generated document is JSON")
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            out.push((method.clone(), path.clone(), op));
        }
    }
    out
}

#[test]
fn the_checked_in_document_is_the_generated_one() {
    let generated = onshi_server::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        std::fs::write(path, &generated).expect("writing openapi.json");
        return;
    }
    assert!(
        generated == onshi_server::OPENAPI,
        "crates/onshi-server/openapi.json is not the generated document: run \
         `UPDATE_OPENAPI=1 cargo test -p onshi-server --test openapi` and commit the file"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_three_bearer_schemes() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let names: BTreeSet<&str> = schemes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["device_token", "institution_access_key", "operator_token"])
    );
    for (name, scheme) in &schemes {
        assert_eq!(scheme["type"], "http", "{name}");
        assert_eq!(scheme["scheme"], "bearer", "{name}");
    }
}

#[test]
fn every_device_institution_and_operator_operation_is_documented() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    // The operations the agent, the billing screen and the operator's scripts rely on.
    for (method, path) in [
        ("get", "/api/v1/trust/root"),
        ("get", "/api/v1/trust/root/{version}"),
        ("post", "/api/v1/enroll"),
        ("post", "/api/v1/readers"),
        ("post", "/api/v1/checkin"),
        ("post", "/api/v1/report"),
        ("get", "/api/v1/releases/{id}/manifest"),
        ("get", "/api/v1/artifacts/{sha256}"),
        ("get", "/api/v1/institutions/{code}/devices"),
        ("get", "/api/v1/institutions/{code}/notices"),
        ("post", "/api/v1/admin/institutions"),
        ("get", "/api/v1/admin/institutions"),
        ("post", "/api/v1/admin/institutions/import"),
        ("put", "/api/v1/admin/artifacts"),
        ("post", "/api/v1/admin/releases"),
        ("post", "/api/v1/admin/trust/root"),
        ("post", "/api/v1/admin/campaigns"),
        ("post", "/api/v1/admin/campaigns/{id}/{action}"),
        ("get", "/api/v1/admin/campaigns/{id}/progress"),
        ("get", "/api/v1/admin/campaigns/{id}/devices"),
        ("get", "/api/v1/admin/audit"),
        ("get", "/api/v1/admin/notices"),
    ] {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not in the document"
        );
    }
}

#[test]
fn every_operation_states_its_security_and_answers_errors_as_json() {
    let doc = document();
    let public = [
        "/api/v1/trust/root",
        "/api/v1/trust/root/{version}",
        "/api/v1/enroll",
        "/api/v1/qualification",
    ];
    for (method, path, op) in operations(&doc) {
        let security = op["security"].as_array();
        if public.contains(&path.as_str()) {
            assert!(
                security.is_none(),
                "{method} {path} should need no credential"
            );
        } else {
            assert!(
                security.is_some_and(|s| s.len() == 1),
                "{method} {path} names no security scheme"
            );
        }
        let responses = op["responses"].as_object().cloned().unwrap_or_default();
        let errors: Vec<_> = responses
            .iter()
            .filter(|(s, _)| s.starts_with(['4', '5']))
            .collect();
        assert!(
            !errors.is_empty(),
            "{method} {path} documents no error answer"
        );
        for (status, r) in errors {
            assert_eq!(
                r["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
    }
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves() {
    let doc = document();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "suspiciously few $refs: {}", all.len());
    for r in all {
        let target = r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(&doc, |v, key| &v[key]));
        assert!(target.is_some_and(|t| !t.is_null()), "{r} does not resolve");
    }
}

#[test]
fn path_parameters_match_the_path_templates() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(in_path, declared, "{method} {path}");
    }
}

#[test]
fn json_request_objects_are_closed() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "EnrollRequest",
        "ReaderRequest",
        "CheckinRequest",
        "ReportRequest",
        "Signed",
        "KeySignature",
        "CampaignInput",
        "Throttle",
        "ClockInput",
        "QueryRequest",
        "InstitutionBatch",
    ] {
        // A schema with variants (oneOf) closes each of them; an array, its items.
        let schema = match &schemas[name]["items"] {
            Value::Null => &schemas[name],
            items => items,
        };
        let variants: Vec<&Value> = match schema["oneOf"].as_array() {
            Some(items) => items.iter().collect(),
            None => vec![schema],
        };
        for v in variants {
            assert_eq!(
                v["additionalProperties"], false,
                "{name} accepts unknown fields in the document but the server refuses them"
            );
        }
    }
}
