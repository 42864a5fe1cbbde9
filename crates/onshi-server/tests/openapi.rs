//! Keeps `openapi.json` true to the server: it must be OpenAPI 3.1, document exactly the
//! (method, path) pairs the router in `src/lib.rs` registers, resolve every `$ref`, declare every
//! path parameter, and list exactly the error codes the handlers can produce. A route added
//! without documentation, or documentation left behind by a removed route, fails here.

use std::collections::BTreeSet;

use serde_json::Value;

/// The router's source: the routes are read from its text, not from a running server, so the
/// test needs no state and names the exact route that lacks documentation.
const LIB_RS: &str = include_str!("../src/lib.rs");

/// Every file that builds an `ApiError` with its own code, by name (for messages) and text;
/// a new module that does so must be added here.
const ERROR_SOURCES: [(&str, &str); 9] = [
    (
        "src/routes/qualification.rs",
        include_str!("../src/routes/qualification.rs"),
    ),
    (
        "src/pages/reception.rs",
        include_str!("../src/pages/reception.rs"),
    ),
    ("src/error.rs", include_str!("../src/error.rs")),
    ("src/json.rs", include_str!("../src/json.rs")),
    ("src/auth.rs", include_str!("../src/auth.rs")),
    ("src/artifacts.rs", include_str!("../src/artifacts.rs")),
    (
        "src/routes/device.rs",
        include_str!("../src/routes/device.rs"),
    ),
    (
        "src/routes/admin.rs",
        include_str!("../src/routes/admin.rs"),
    ),
    (
        "src/routes/institution.rs",
        include_str!("../src/routes/institution.rs"),
    ),
];

/// The HTTP methods an OpenAPI path item may hold (and axum's `routing::*` helpers).
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(onshi_server::OPENAPI).expect("openapi.json must be valid JSON")
}

// ---------- reading the router's source ----------

/// The text of `s` up to the parenthesis that closes an already opened one; string literals
/// are skipped so a `)` inside a path cannot end it early.
fn until_close(s: &str) -> &str {
    let mut depth = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, ch) in s.char_indices() {
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after {:?}", &s[..s.len().min(80)]);
}

/// The calls at the top level of a method-router expression: `post(a).get(b)` gives
/// `["post", "get"]` (a path such as `routing::get` gives its last segment).
fn top_level_calls(expr: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let mut depth = 0usize;
    let mut ident = String::new();
    for ch in expr.chars() {
        if depth == 0 && (ch.is_ascii_alphanumeric() || ch == '_' || ch == ':') {
            ident.push(ch);
            continue;
        }
        if ch == '(' {
            if depth == 0 && !ident.is_empty() {
                let name = ident.rsplit("::").next().unwrap_or_default();
                calls.push(name.to_owned());
            }
            depth += 1;
        } else if ch == ')' {
            depth = depth.saturating_sub(1);
        }
        if !ch.is_whitespace() {
            ident.clear();
        }
    }
    calls
}

/// Every `(method, path)` a router source registers with `.route("PATH", get(h).post(h2)…)`.
/// Anything this small parser does not understand fails loudly rather than being skipped.
fn registered_routes(source: &str) -> BTreeSet<(String, String)> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for unsupported in [".nest(", ".nest_service(", ".route_service("] {
        assert!(
            !code.contains(unsupported),
            "lib.rs uses `{unsupported}`: teach tests/openapi.rs to read such routes"
        );
    }
    let mut routes = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(".route(") {
        let after = &rest[at + ".route(".len()..];
        let args = until_close(after);
        rest = &after[args.len()..];
        let args = args.trim_start();
        let path_and_more = args
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("route without a literal path: .route({args})"));
        let (path, more) = path_and_more
            .split_once('"')
            .expect("a route path literal must be closed");
        let handlers = more
            .trim_start()
            .strip_prefix(',')
            .unwrap_or_else(|| panic!("route {path} has no method router"));
        let calls = top_level_calls(handlers);
        assert!(!calls.is_empty(), "route {path} registers no method");
        for method in calls {
            assert!(
                METHODS.contains(&method.as_str()),
                "route {path} uses `{method}(…)`: teach tests/openapi.rs to read it"
            );
            routes.insert((method, path.to_owned()));
        }
    }
    routes
}

#[test]
fn the_route_parser_reads_chained_and_multi_line_routes() {
    let source = r#"
        // .route("/commented/out", get(nothing))
        Router::new()
            .route("/a/{id}", get(m::a))
            .route(
                "/b",
                post(m::create).get(m::list),
            )
            .route("/c", axum::routing::put(with_args(1, (2, 3))))
            .route_layer(ignored)
    "#;
    let found = registered_routes(source);
    let expected: BTreeSet<(String, String)> = [
        ("get", "/a/{id}"),
        ("post", "/b"),
        ("get", "/b"),
        ("put", "/c"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn only_lib_rs_registers_routes() {
    for (name, text) in ERROR_SOURCES {
        assert!(
            !text.contains(".route("),
            "{name} registers routes; make tests/openapi.rs read them too"
        );
    }
}

// ---------- the document ----------

/// Every `(method, path)` the document describes.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"]
        .as_object()
        .expect("the document must have a paths object");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item must be an object");
        for key in item.keys() {
            if METHODS.contains(&key.as_str()) {
                routes.insert((key.clone(), path.clone()));
            } else {
                assert!(
                    ["parameters", "summary", "description", "servers"].contains(&key.as_str()),
                    "unexpected key {key:?} in path item {path}"
                );
            }
        }
    }
    routes
}

/// Every operation of the document: `(method, path, path item, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths object") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push((method.to_owned(), path.clone(), item, op));
            }
        }
    }
    ops
}

/// Follows local `$ref`s until a non-reference value.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(target) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {target}"));
        value = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("$ref {target} does not resolve"));
    }
    panic!("$ref chain too long (a cycle?)");
}

/// Fails naming only the differences of two sets.
fn assert_same(documented: &BTreeSet<String>, actual: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = actual.difference(documented).collect();
    let extra: Vec<_> = documented.difference(actual).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}\n  missing from the document: {missing:?}\n  documented but not produced: {extra:?}"
    );
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_document_is_openapi_3_1_with_three_bearer_schemes() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi version string");
    assert!(version.starts_with("3.1."), "openapi is {version}, not 3.1");
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let names: BTreeSet<&str> = schemes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["deviceToken", "institutionAccessKey", "operatorToken"])
    );
    for (name, scheme) in schemes {
        assert_eq!(scheme["type"], "http", "{name}");
        assert_eq!(scheme["scheme"], "bearer", "{name}");
        assert!(
            scheme["description"].is_string(),
            "{name} needs a description"
        );
    }
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let registered = registered_routes(LIB_RS);
    assert!(
        registered.contains(&("get".to_owned(), "/api/v1/admin/institutions".to_owned()))
            && registered.contains(&("post".to_owned(), "/api/v1/admin/institutions".to_owned())),
        "the parser missed a chained route: {registered:?}"
    );
    let documented = documented_routes(&document());
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "openapi.json is out of step with the router in src/lib.rs\n  \
         registered but not documented: {undocumented:?}\n  \
         documented but not registered: {stale:?}"
    );
}

#[test]
fn every_ref_resolves() {
    fn walk(doc: &Value, value: &Value, at: &str, count: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(target) = map.get("$ref") {
                    let target = target.as_str().expect("$ref must be a string");
                    let pointer = target
                        .strip_prefix('#')
                        .unwrap_or_else(|| panic!("{at}: $ref {target} is not local"));
                    assert!(
                        doc.pointer(pointer).is_some(),
                        "{at}: $ref {target} does not resolve"
                    );
                    *count += 1;
                }
                for (key, child) in map {
                    walk(doc, child, &format!("{at}/{key}"), count);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(doc, child, &format!("{at}/{i}"), count);
                }
            }
            _ => {}
        }
    }
    let doc = document();
    let mut count = 0;
    walk(&doc, &doc, "#", &mut count);
    assert!(count > 0, "no $ref at all: the walk is broken");
}

#[test]
fn path_parameters_match_the_path_templates() {
    let doc = document();
    for (method, path, item, op) in operations(&doc) {
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let mut declared = BTreeSet::new();
        for list in [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
        {
            for param in list.as_array().expect("parameters must be an array") {
                let param = resolve(&doc, param);
                if param["in"] == "path" {
                    assert_eq!(
                        param["required"], true,
                        "{method} {path}: path parameters are required"
                    );
                    let name = param["name"].as_str().expect("parameter name");
                    declared.insert(name.to_owned());
                }
            }
        }
        assert_eq!(
            declared, in_template,
            "{method} {path}: path parameters declared vs in the template"
        );
    }
}

#[test]
fn every_operation_states_its_security_and_documents_errors_as_json() {
    let doc = document();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let known_codes = strings(&doc["components"]["schemas"]["ErrorCode"]["enum"]);
    let mut ids = BTreeSet::new();
    for (method, path, _, op) in operations(&doc) {
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        let security = op["security"].as_array().unwrap_or_else(|| {
            panic!("{method} {path}: say who may call it (`security`, `[]` when public)")
        });
        for requirement in security {
            for name in requirement
                .as_object()
                .expect("security requirement")
                .keys()
            {
                assert!(
                    schemes.contains_key(name),
                    "{method} {path}: unknown scheme {name}"
                );
            }
        }
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            // Pages answer a form post with a redirect (post/redirect/get).
            responses.keys().any(|s| s.starts_with('2') || s == "303"),
            "{method} {path}: no success response"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            let codes = strings(&response["x-error-codes"]);
            if status.starts_with('4') || status.starts_with('5') {
                let json = &response["content"]["application/json"]["schema"]["$ref"];
                if !codes.is_empty() || json.is_string() {
                    assert_eq!(
                        json, "#/components/schemas/Error",
                        "{method} {path} {status}: JSON errors use the Error schema"
                    );
                    assert!(
                        !codes.is_empty(),
                        "{method} {path} {status}: list the codes in x-error-codes"
                    );
                }
            }
            for code in &codes {
                assert!(
                    known_codes.contains(code),
                    "{method} {path} {status}: code {code} is not in ErrorCode"
                );
            }
        }
    }
}

/// The `code` of every `ApiError` the sources build: the first argument of `bad_request`,
/// `conflict` and `forbidden`, the second of `new(StatusCode::…, "code", …)` (which also covers
/// `not_found`, `unauthorized` and `internal`, defined that way in `error.rs`), and the match
/// arms that map framework rejections in `error.rs`.
fn error_codes_in_source() -> BTreeSet<String> {
    fn literal_at(s: &str) -> Option<&str> {
        let s = s.trim_start().strip_prefix('"')?;
        s.split_once('"').map(|(lit, _)| lit)
    }
    let mut codes = BTreeSet::new();
    for (name, text) in ERROR_SOURCES {
        let mut add = |code: &str| {
            assert!(
                !code.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}: {code:?} does not look like an error code"
            );
            codes.insert(code.to_owned());
        };
        for call in ["bad_request(", "conflict(", "forbidden("] {
            for (at, _) in text.match_indices(call) {
                if let Some(code) = literal_at(&text[at + call.len()..]) {
                    add(code);
                }
            }
        }
        for (at, _) in text.match_indices("new(") {
            let args = &text[at + "new(".len()..];
            if !args.trim_start().starts_with("StatusCode::") {
                continue;
            }
            let (_, second) = args
                .split_once(',')
                .unwrap_or_else(|| panic!("{name}: new(StatusCode…) without a code"));
            match literal_at(second) {
                Some(code) => add(code),
                // The helpers in error.rs (`bad_request(code, …)`) forward their parameter;
                // their callers are scanned above.
                None if name == "src/error.rs" && second.trim_start().starts_with("code,") => {}
                None => panic!(
                    "{name}: new(StatusCode…, <not a literal code>): the code scan needs a literal"
                ),
            }
        }
        if name == "src/error.rs" {
            for (at, _) in text.match_indices("=> \"") {
                if let Some(code) = literal_at(&text[at + "=>".len()..]) {
                    add(code);
                }
            }
        }
    }
    codes
}

#[test]
fn the_documented_error_codes_are_exactly_those_the_server_produces() {
    let doc = document();
    let in_source = error_codes_in_source();
    assert!(
        in_source.contains("outside_window") && in_source.contains("invalid_json"),
        "the code scan is broken: {in_source:?}"
    );
    let enumerated = strings(&doc["components"]["schemas"]["ErrorCode"]["enum"]);
    assert_same(
        &enumerated,
        &in_source,
        "components.schemas.ErrorCode.enum vs the codes the handlers produce",
    );
    let mut listed = BTreeSet::new();
    for (_, _, _, op) in operations(&doc) {
        for response in op["responses"].as_object().expect("responses").values() {
            listed.extend(strings(&resolve(&doc, response)["x-error-codes"]));
        }
    }
    assert_same(
        &listed,
        &in_source,
        "the codes listed in responses' x-error-codes vs the codes the handlers produce",
    );
}

#[test]
fn json_request_bodies_deny_unknown_fields() {
    /// Every object schema reachable from `schema` must say `additionalProperties: false`,
    /// because the server's request types all deny unknown fields.
    fn check(doc: &Value, schema: &Value, seen: &mut BTreeSet<String>, at: &str) {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            if seen.insert(target.to_owned()) {
                check(doc, resolve(doc, schema), seen, target);
            }
            return;
        }
        if schema["type"] == "object" {
            assert_eq!(
                schema["additionalProperties"], false,
                "{at}: request objects deny unknown fields"
            );
        }
        for key in ["properties"] {
            if let Some(props) = schema.get(key).and_then(Value::as_object) {
                for (name, prop) in props {
                    check(doc, prop, seen, &format!("{at}.{name}"));
                }
            }
        }
        for key in ["items", "then", "else"] {
            if let Some(sub) = schema.get(key) {
                check(doc, sub, seen, at);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            for sub in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check(doc, sub, seen, at);
            }
        }
    }
    let doc = document();
    let mut bodies = 0;
    for (method, path, _, op) in operations(&doc) {
        let Some(body) = op.get("requestBody") else {
            continue;
        };
        let body = resolve(&doc, body);
        if let Some(schema) = body["content"]
            .get("application/json")
            .map(|c| &c["schema"])
        {
            bodies += 1;
            check(
                &doc,
                schema,
                &mut BTreeSet::new(),
                &format!("{method} {path}"),
            );
        }
    }
    assert!(bodies > 0, "no JSON request body found: the walk is broken");
}
