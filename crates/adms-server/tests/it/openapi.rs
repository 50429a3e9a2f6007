//! The OpenAPI document at `/api/openapi.json`: well formed, and true to the running server
//! (every documented operation is routed, answers a documented status, and needs credentials
//! exactly when the document says so).

use std::collections::{BTreeMap, BTreeSet};

use crate::common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Api, Server};
use reqwest::Method;
use serde_json::{Value, json};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One documented (method, path) and its operation object.
struct Operation {
    method: &'static str,
    path: String,
    spec: Value,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.path)
    }

    fn parameters(&self) -> impl Iterator<Item = &Value> {
        self.spec["parameters"].as_array().into_iter().flatten()
    }

    /// A value the parameter accepts: its enum's first value, else `1` (a valid id, page,
    /// serial number or number alike).
    fn dummy(parameter: &Value) -> String {
        let schema = &parameter["schema"];
        match schema["enum"].get(0).or_else(|| schema["oneOf"][0]["enum"].get(0)) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "1".to_owned(),
        }
    }

    /// The path with every template filled, and the required query parameters.
    fn request_target(&self) -> String {
        let mut path = self.path.clone();
        let mut query = Vec::new();
        for parameter in self.parameters() {
            let name = parameter["name"].as_str().unwrap_or_default();
            match parameter["in"].as_str() {
                Some("path") => path = path.replace(&format!("{{{name}}}"), &Self::dummy(parameter)),
                Some("query") if parameter["required"] == json!(true) => {
                    query.push(format!("{name}={}", Self::dummy(parameter)));
                }
                _ => {}
            }
        }
        if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
    }

    /// The documented status codes.
    fn statuses(&self) -> BTreeSet<String> {
        self.spec["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    }

    /// Whether credentials are required: an operation's own `security` replaces the document's;
    /// an empty list, or an empty alternative `{}`, lets a request through without any.
    fn needs_credentials(&self, doc: &Value) -> bool {
        let requirements = self.spec.get("security").unwrap_or(&doc["security"]);
        requirements
            .as_array()
            .is_some_and(|alternatives| !alternatives.is_empty() && !alternatives.iter().any(|r| r == &json!({})))
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(spec) = item.get(method) {
                all.push(Operation { method, path: path.clone(), spec: spec.clone() });
            }
        }
    }
    all
}

async fn fetch_document(server: &Server, authorization: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url("/api/openapi.json"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.expect("GET /api/openapi.json")
}

async fn document(server: &Server, api: &Api) -> Value {
    let response = fetch_document(server, Some(&format!("Token {}", api.token))).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the document is not JSON: {e}"))
}

/// Sends the operation's request; returns the status and the body as text.
async fn call(server: &Server, operation: &Operation, target: &str, authorization: Option<&str>) -> (u16, String) {
    let method = Method::from_bytes(operation.method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, server.url(target));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    if let Some(content) = operation.spec["requestBody"]["content"].as_object() {
        request = if content.contains_key("application/json") {
            request.json(&json!({}))
        } else {
            request.header("Content-Type", "text/plain").body("")
        };
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{}: {e}", operation.label()));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn document_is_openapi_3_1_and_every_operation_has_tag_summary_and_responses() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;

    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    assert!(!doc["info"]["title"].as_str().unwrap_or_default().is_empty());
    let declared_tags: BTreeSet<&str> =
        doc["tags"].as_array().expect("tags").iter().filter_map(|t| t["name"].as_str()).collect();
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    for scheme in ["token", "jwt", "bearer", "basic"] {
        assert!(schemes.contains_key(scheme), "security scheme {scheme}");
    }
    for requirement in doc["security"].as_array().expect("default security") {
        for name in requirement.as_object().unwrap().keys() {
            assert!(schemes.contains_key(name), "default security names {name}");
        }
    }

    let operations = operations(&doc);
    assert!(operations.len() > 80, "{} operations", operations.len());
    let mut operation_ids = BTreeSet::new();
    for operation in &operations {
        let label = operation.label();
        let tags = operation.spec["tags"].as_array().unwrap_or_else(|| panic!("{label}: no tags"));
        assert!(!tags.is_empty(), "{label}: no tags");
        for tag in tags {
            assert!(declared_tags.contains(tag.as_str().unwrap_or_default()), "{label}: undeclared tag {tag}");
        }
        let summary = operation.spec["summary"].as_str().unwrap_or_default();
        assert!(!summary.trim().is_empty(), "{label}: no summary");
        let statuses = operation.statuses();
        assert!(!statuses.is_empty(), "{label}: no responses");
        for status in &statuses {
            assert!(status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)), "{label}: status {status}");
        }
        for response in operation.spec["responses"].as_object().unwrap().values() {
            assert!(response["description"].is_string(), "{label}: a response without description");
        }
        let id = operation.spec["operationId"].as_str().unwrap_or_else(|| panic!("{label}: no operationId"));
        assert!(operation_ids.insert(id.to_owned()), "{label}: operationId {id} used twice");
        // Path templates and path parameters name the same things.
        let templated: BTreeSet<&str> =
            operation.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        let declared: BTreeSet<&str> = operation
            .parameters()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], json!(true), "{label}: path parameter not required");
                p["name"].as_str().unwrap_or_default()
            })
            .collect();
        assert_eq!(templated, declared, "{label}: path parameters");
        // An optional request body may be left out, but is never the JSON `null`.
        if let Some(body) = operation.spec.get("requestBody")
            && body["required"] != json!(true)
        {
            for content in body["content"].as_object().expect("body content").values() {
                let schema = &content["schema"];
                let null_type = schema["type"] == "null"
                    || schema["type"].as_array().is_some_and(|types| types.contains(&json!("null")))
                    || schema["oneOf"].as_array().is_some_and(|items| items.iter().any(|i| i["type"] == "null"));
                assert!(!null_type, "{label}: optional body may be null: {schema}");
            }
        }
        // Operation-level security is either the waiver `[]` or names known schemes.
        if let Some(security) = operation.spec.get("security") {
            for requirement in security.as_array().expect("security list") {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{label}: unknown scheme {name}");
                }
            }
        }
    }
    // Every reference resolves.
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {target}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {target}");
    }
}

/// Every documented operation reaches a handler (not the fallback page, not 405), and what
/// that handler answers to placeholder input is one of the statuses documented for it. ZKBio
/// Time paths also answer the same without their trailing slash.
#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_a_documented_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let token = format!("Token {}", api.token);
    let mut undocumented = Vec::new();
    for operation in operations(&doc) {
        let target = operation.request_target();
        let (status, body) = call(&server, &operation, &target, Some(&token)).await;
        let label = format!("{} ({target})", operation.label());
        assert_ne!(status, 405, "{label}: method not routed: {body}");
        // A routed path answers a method it does not have with 405; one that reached the
        // router's fallback (unrouted) answers 404 to anything.
        // (The device catch-all matches every path under `/iclock/`: nothing to check.)
        if operation.path != "/iclock/{rest}" {
            let trace = reqwest::Client::new().request(Method::TRACE, server.url(&target)).send().await.unwrap();
            assert_ne!(trace.status().as_u16(), 404, "{label}: the path is not routed");
        }
        if !operation.statuses().contains(&status.to_string()) {
            undocumented.push(format!("{label}: {status} {body}"));
        }
        if operation.method == "get" && operation.path.ends_with('/') {
            let (path, query) = target.split_once('?').map_or((target.as_str(), None), |(p, q)| (p, Some(q)));
            let bare = match query {
                Some(q) => format!("{}?{q}", path.trim_end_matches('/')),
                None => path.trim_end_matches('/').to_owned(),
            };
            let (bare_status, _) = call(&server, &operation, &bare, Some(&token)).await;
            assert_eq!(bare_status, status, "{label}: without the trailing slash");
        }
    }
    assert!(undocumented.is_empty(), "statuses the document does not list:\n{}", undocumented.join("\n"));
}

/// An operation the document marks as needing credentials answers 401 without them (with the
/// documented 401); one it marks public does not.
#[tokio::test]
async fn documented_security_is_what_the_server_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let (mut public, mut protected) = (0, 0);
    for operation in operations(&doc) {
        let target = operation.request_target();
        let (status, body) = call(&server, &operation, &target, None).await;
        let label = operation.label();
        if operation.needs_credentials(&doc) {
            protected += 1;
            assert_eq!(status, 401, "{label}: answered without credentials: {body}");
            assert!(operation.statuses().contains("401"), "{label}: 401 not documented");
        } else {
            public += 1;
            assert_ne!(status, 401, "{label}: documented as public but refused: {body}");
            assert!(
                operation.path.starts_with("/iclock/") && !operation.path.starts_with("/iclock/api/")
                    || ["/api-token-auth/", "/jwt-api-token-auth/", "/api/docs/", "/healthz", "/readyz"]
                        .contains(&operation.path.as_str()),
                "{label}: public outside the device protocol, the logins, the docs page and the probes"
            );
        }
    }
    assert!(public > 10 && protected > 50, "{public} public, {protected} protected operations");
}

fn operation_set(doc: &Value) -> BTreeSet<(String, String)> {
    operations(doc).into_iter().map(|o| (o.method.to_owned(), o.path)).collect()
}

/// The router builds the document (`routes!`), so coverage holds by construction; this checks
/// that each group of routes made it in, and that the test clock is there only when enabled.
#[tokio::test]
async fn every_route_group_is_documented_and_the_test_clock_only_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let documented = operation_set(&doc);
    let key_routes = [
        ("post", "/api-token-auth/"),
        ("post", "/jwt-api-token-auth/"),
        ("get", "/api/docs/"),
        ("get", "/api/openapi.json"),
        ("get", "/iclock/api/transactions/"),
        ("get", "/iclock/api/transactions/export/"),
        ("get", "/iclock/api/terminals/{id}/"),
        ("post", "/iclock/api/terminals/{id}/"),
        ("patch", "/iclock/api/terminals/{id}/"),
        ("get", "/personnel/api/employees/"),
        ("post", "/personnel/api/employees/adjust_regsin/"),
        ("delete", "/personnel/api/positions/{id}/"),
        ("put", "/personnel/api/departments/{id}/"),
        ("post", "/personnel/api/resigns/reinstatement/"),
        ("patch", "/api/v1/devices/{sn}"),
        ("post", "/api/v1/devices/{sn}/commands"),
        ("post", "/api/v1/commands/{id}/cancel"),
        ("get", "/api/v1/devices/{sn}/punches"),
        ("get", "/api/v1/rejected-lines"),
        ("post", "/api/v1/webhooks/endpoints/{uid}/replay"),
        ("get", "/api/v1/webhooks/deliveries/{id}/attempts"),
        ("get", "/iclock/cdata"),
        ("post", "/iclock/cdata"),
        ("get", "/iclock/getrequest"),
        ("post", "/iclock/devicecmd"),
        ("post", "/iclock/registry"),
        ("get", "/iclock/rtdata"),
        ("post", "/iclock/querydata"),
        ("get", "/iclock/{rest}"),
        ("get", "/metrics"),
    ];
    for (method, path) in key_routes {
        assert!(documented.contains(&(method.to_owned(), path.to_owned())), "{method} {path} not documented");
    }
    assert!(!doc["paths"].as_object().unwrap().contains_key("/api/v1/test/clock"), "test clock documented");

    let clock_dir = tempfile::tempdir().unwrap();
    let clock_server = Server::in_process(clock_dir.path(), &[("ADMS_TEST_CLOCK", "true")]).await;
    let clock_api = Api::login(&clock_server).await;
    let clock_doc = document(&clock_server, &clock_api).await;
    let added: Vec<_> = operation_set(&clock_doc).difference(&documented).cloned().collect();
    assert_eq!(added, vec![("post".to_owned(), "/api/v1/test/clock".to_owned())]);
    assert!(operation_set(&clock_doc).is_superset(&documented));
    clock_api.advance_clock(1).await;
}

/// The public docs page lists exactly the ZKBio Time operations of the document and links to it.
#[tokio::test]
async fn docs_page_is_generated_from_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let response = reqwest::Client::new().get(server.url("/api/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("<title>BioTime 9.5 API DOCS</title>"));
    assert!(page.contains("href=\"/api/openapi.json\""));
    let listed: BTreeMap<String, usize> = page
        .split("<li><code>")
        .skip(1)
        .filter_map(|item| item.split_once("</code>").map(|(route, _)| route.to_owned()))
        .fold(BTreeMap::new(), |mut seen, route| {
            *seen.entry(route).or_default() += 1;
            seen
        });
    let expected: BTreeSet<String> = operations(&doc)
        .into_iter()
        .filter(|o| {
            o.path.starts_with("/iclock/api/") || o.path.starts_with("/personnel/api/") || o.path.ends_with("-auth/")
        })
        .map(|o| format!("{} {}", o.method.to_ascii_uppercase(), o.path))
        .collect();
    assert!(expected.len() > 40);
    assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(listed.values().all(|n| *n == 1), "a route listed twice: {listed:?}");
}

#[tokio::test]
async fn document_needs_the_api_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let response = fetch_document(&server, None).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"], "Authentication credentials were not provided.");
    let response = fetch_document(&server, Some("Token 0000000000000000000000000000000000000000")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.json::<Value>().await.unwrap()["detail"], "Invalid token.");

    // Every scheme the API takes is accepted for the document too.
    let client = reqwest::Client::new();
    let jwt: Value = client
        .post(server.url("/jwt-api-token-auth/"))
        .json(&json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = jwt["token"].as_str().unwrap();
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"));
    for authorization in [format!("JWT {jwt}"), format!("Bearer {jwt}"), format!("Basic {basic}")] {
        let response = fetch_document(&server, Some(&authorization)).await;
        assert_eq!(response.status(), 200, "{authorization}");
    }
}

/// Operations that need no credentials, hence no scope: the device protocol (terminals
/// authenticate by serial number and trust rules), the two logins and the ZKBio Time docs
/// page. Every other operation declares the scope it requires.
fn is_exempt_from_scopes(operation: &Operation) -> bool {
    let path = operation.path.as_str();
    (path.starts_with("/iclock/") && !path.starts_with("/iclock/api/"))
        || ["/api-token-auth/", "/jwt-api-token-auth/", "/api/docs/", "/healthz", "/readyz"].contains(&path)
}

/// Every operation declares `x-required-scope`, and the server enforces it: a key with every
/// other scope gets 403 (DRF's body), a key with only that scope gets past authorisation.
#[tokio::test]
async fn every_operation_requires_its_declared_scope() {
    const SCOPES: [&str; 5] = ["read", "roster:write", "devices:control", "webhooks:admin", "admin"];
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let mut only = BTreeMap::new();
    let mut all_but = BTreeMap::new();
    for scope in SCOPES {
        only.insert(scope, crate::users_scopes_audit::integration_key(&server, &format!("only {scope}"), &[scope]));
        // `admin` includes every scope, so "all but X" never holds it.
        let others: Vec<&str> = SCOPES.into_iter().filter(|s| *s != scope && *s != "admin").collect();
        all_but
            .insert(scope, crate::users_scopes_audit::integration_key(&server, &format!("all but {scope}"), &others));
    }
    let forbidden = json!({ "detail": "You do not have permission to perform this action." });
    let mut checked = 0;
    for operation in operations(&doc) {
        let label = operation.label();
        let declared = operation.spec.get("x-required-scope").and_then(Value::as_str);
        if is_exempt_from_scopes(&operation) {
            assert_eq!(declared, None, "{label}: exempt, yet declares a scope");
            assert_eq!(operation.spec["security"], json!([]), "{label}: exempt, yet needs credentials");
            continue;
        }
        let scope = declared.unwrap_or_else(|| panic!("{label}: no x-required-scope"));
        assert!(SCOPES.contains(&scope), "{label}: unknown scope {scope}");
        assert!(operation.statuses().contains("403"), "{label}: 403 not documented");
        let target = operation.request_target();
        let (status, body) = call(&server, &operation, &target, Some(&format!("Token {}", all_but[scope]))).await;
        assert_eq!(status, 403, "{label}: without {scope}: {body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap_or_default(), forbidden, "{label}");
        let (status, body) = call(&server, &operation, &target, Some(&format!("Token {}", only[scope]))).await;
        assert!(status != 401 && status != 403, "{label}: with {scope}: {status} {body}");
        checked += 1;
    }
    assert!(checked > 60, "{checked} operations checked");
}

/// Every string of `value` with where it is (a JSON path).
fn strings<'a>(value: &'a Value, path: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(text) => found.push((path, text)),
        Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, format!("{path}/{k}"), found)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| strings(v, format!("{path}/{i}"), found)),
        _ => {}
    }
}

/// Rustdoc link syntax in a text: `` [`item`] ``, `[text](path::item)` (a link whose target is
/// not a web address or an anchor), `[Type::item]`, and Rust paths (`crate::`, `super::`).
fn rustdoc_links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for path in ["crate::", "super::", "self::", "Self::"] {
        if text.contains(path) {
            found.push(path.to_owned());
        }
    }
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let label = &after[..close];
        match after[close + 1..].strip_prefix('(') {
            Some(target) => {
                let target = target.split(')').next().unwrap_or_default();
                if !(target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#')) {
                    found.push(format!("[{label}]({target})"));
                }
            }
            None if label.starts_with('`') && label.ends_with('`') || label.contains("::") => {
                found.push(format!("[{label}]"));
            }
            None => {}
        }
        rest = after;
    }
    found
}

#[test]
fn the_rustdoc_link_check_finds_links_and_spares_json() {
    assert_eq!(rustdoc_links("see [`Foo`] and [`bar`](crate::bar)"), ["crate::", "[`Foo`]", "[`bar`](crate::bar)"]);
    assert_eq!(rustdoc_links("[Store::open] or [text](super::x)"), ["super::", "[Store::open]", "[text](super::x)"]);
    assert!(rustdoc_links("`{\"terminals\": [ids]}`, [\"a\"], [spec](https://example.com), [up](#top)").is_empty());
}

/// What client generators need: one body type per operation (JSON for the API), a title on
/// every `oneOf`/`anyOf` alternative (the names of the generated types), and descriptions
/// without rustdoc links, anywhere in the document.
#[tokio::test]
async fn document_suits_client_generators() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let mut bodies = 0;
    for operation in operations(&doc) {
        let label = operation.label();
        let Some(content) = operation.spec["requestBody"]["content"].as_object() else { continue };
        bodies += 1;
        let types: Vec<&String> = content.keys().collect();
        assert_eq!(types.len(), 1, "{label}: one body type, not {types:?}");
        if !is_exempt_from_scopes(&operation) || operation.path.ends_with("-auth/") {
            assert_eq!(types, ["application/json"], "{label}");
        }
    }
    assert!(bodies > 30, "{bodies} request bodies");
    // The logins say in words what else they accept.
    let login = &doc["paths"]["/api-token-auth/"]["post"]["requestBody"];
    assert!(login["description"].as_str().unwrap_or_default().contains("multipart/form-data"), "{login}");

    let mut untitled = Vec::new();
    let mut titled = 0;
    fn alternatives<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Object(map) => {
                for key in ["oneOf", "anyOf"] {
                    for (i, item) in map.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
                        out.push((format!("{path}/{key}/{i}"), item));
                    }
                }
                map.iter().for_each(|(k, v)| alternatives(v, format!("{path}/{k}"), out));
            }
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, v)| alternatives(v, format!("{path}/{i}"), out));
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    alternatives(&doc, String::new(), &mut all);
    for (path, alternative) in &all {
        match alternative["title"].as_str() {
            Some(title) if !title.is_empty() => titled += 1,
            _ => untitled.push(path.clone()),
        }
    }
    assert!(untitled.is_empty(), "alternatives without a title:\n{}", untitled.join("\n"));
    assert!(titled > 30, "{titled} alternatives");
    let command = &doc["components"]["schemas"]["DeviceCommand"]["oneOf"];
    let titles: Vec<&str> = command.as_array().unwrap().iter().filter_map(|v| v["title"].as_str()).collect();
    assert!(titles.contains(&"UserUpsert") && titles.contains(&"Reboot"), "{titles:?}");
    assert_eq!(titles.iter().collect::<BTreeSet<_>>().len(), titles.len(), "distinct: {titles:?}");

    let mut texts = Vec::new();
    strings(&doc, String::new(), &mut texts);
    let links: Vec<String> = texts
        .iter()
        .flat_map(|(path, text)| rustdoc_links(text).into_iter().map(move |link| format!("{path}: {link}")))
        .collect();
    assert!(links.is_empty(), "rustdoc link syntax in the document:\n{}", links.join("\n"));
}

/// The `webhooks` section: one entry per event type the server emits, and one for batches, each
/// a JSON body whose schema exists and names its event type.
#[tokio::test]
async fn webhooks_section_lists_every_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let webhooks = doc["webhooks"].as_object().expect("a webhooks section");
    let mut expected: BTreeSet<&str> = adms_store::events::event_type::ALL.into_iter().collect();
    expected.insert("batch");
    assert_eq!(webhooks.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected);
    for (name, item) in webhooks {
        let operation = &item["post"];
        assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{name}");
        let schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str();
        let schema_name = schema_ref.and_then(|r| r.strip_prefix("#/components/schemas/")).expect("a schema");
        let schema = &doc["components"]["schemas"][schema_name];
        assert_eq!(schema["properties"]["type"]["enum"], json!([name]), "{name}: {schema}");
        let headers: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header" && p["required"] == json!(true))
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(headers, BTreeSet::from(["webhook-id", "webhook-signature", "webhook-timestamp"]), "{name}");
    }
}

/// Checks `value` against `schema` (the subset of JSON Schema the document uses: `$ref`,
/// `oneOf`, `type`, `enum`, `properties`, `required`, `items`); an object must carry exactly
/// the documented properties (the bodies always carry every key). Returns what does not match.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.strip_prefix("#/components/schemas/").expect("local $ref");
        return check(doc, &doc["components"]["schemas"][name], value, at, errors);
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        let matching = alternatives
            .iter()
            .filter(|a| {
                let mut inner = Vec::new();
                check(doc, a, value, at, &mut inner);
                inner.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: {value} matches {matching} of the alternatives"));
        }
        return;
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} not in {allowed:?}"));
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object()) {
        for key in object.keys().filter(|k| !properties.contains_key(*k)) {
            errors.push(format!("{at}: {key} is not documented"));
        }
        for (key, property) in properties {
            match object.get(key) {
                Some(v) => check(doc, property, v, &format!("{at}.{key}"), errors),
                None => errors.push(format!("{at}: documented {key} is missing")),
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Real deliveries of every event type, and a batch, match the schemas of the `webhooks`
/// section.
#[tokio::test]
async fn delivered_webhook_bodies_match_their_documented_schemas() {
    use common::webhooks::{Receiver, SECRET};
    use common::{Device, Server};
    let receiver = Receiver::start().await;
    let batches = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let server = Server::in_process(
        dir.path(),
        &[
            ("ADMS_WEBHOOK_URL", url.as_str()),
            ("ADMS_WEBHOOK_SECRET", SECRET),
            ("ADMS_TEST_CLOCK", "true"),
            ("ADMS_OFFLINE_AFTER_SECS", "30"),
        ],
    )
    .await;
    let api = Api::login(&server).await;
    let doc = document(&server, &api).await;
    let (status, endpoint) = api
        .post_json(
            "/api/v1/webhooks/endpoints",
            &json!({ "url": format!("{}/batch", batches.base_url()), "event_types": ["attendance.punch"], "batch_max": 10 }),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");

    let dev = Device { server: &server, sn: "SCHEMA001".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(dev.attlog(b"016\t2026-11-20 08:00:00\t0\t1\t7\t0\t0\n").await.text(), "OK: 1");
    let operlog = async |line: &str| {
        let reply = dev.post(&format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", dev.sn), line.as_bytes()).await;
        assert_eq!(reply.text(), "OK: 1");
    };
    operlog(
        "USER PIN=016\tName=Ann\tPri=0\tPasswd=1\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n",
    )
    .await;
    operlog("USER PIN=016\tName=Ann Lee\tPri=14\tPasswd=1\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n")
        .await;
    let (status, queued) =
        api.post_json(&format!("/api/v1/devices/{}/commands", dev.sn), &json!({ "command": { "type": "info" } })).await;
    assert_eq!(status, 201, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    assert!(dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await.text().starts_with(&format!("C:{id}:")));
    let result = format!("ID={id}&Return=0&CMD=INFO\n");
    assert_eq!(dev.post(&format!("/iclock/devicecmd?SN={}", dev.sn), result.as_bytes()).await.text(), "OK");
    let rtlog =
        "time=2026-11-20 08:01:00\tpin=016\tcardno=0\teventaddr=1\tevent=27\tinoutstatus=0\tverifytype=4\tindex=1\n";
    assert_eq!(dev.post(&format!("/iclock/cdata?SN={}&table=rtlog", dev.sn), rtlog.as_bytes()).await.text(), "OK");
    api.advance_clock(60).await;
    receiver.wait_for_n("device.offline", 1).await;
    assert_eq!(dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await.text(), "OK");

    let mut checked = BTreeSet::new();
    for event_type in adms_store::events::event_type::ALL {
        let received = receiver.wait_for_n(event_type, 1).await;
        let body = received[0].json();
        let schema = &doc["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let mut errors = Vec::new();
        check(&doc, schema, &body, event_type, &mut errors);
        assert!(errors.is_empty(), "{event_type}: {body}\n{}", errors.join("\n"));
        checked.insert(event_type);
    }
    let batch = batches.wait_for_n("batch", 1).await[0].json();
    let schema = &doc["webhooks"]["batch"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let mut errors = Vec::new();
    check(&doc, schema, &batch, "batch", &mut errors);
    assert!(errors.is_empty(), "batch: {batch}\n{}", errors.join("\n"));
    assert_eq!(checked.len(), adms_store::events::event_type::ALL.len());
    // The checker can fail: a body with a key the schema lacks, or a wrong type, does not pass.
    let mut wrong = receiver.wait_for_n("attendance.punch", 1).await[0].json();
    wrong["data"]["seq"] = json!("1");
    wrong["data"]["extra"] = json!(1);
    let schema = &doc["webhooks"]["attendance.punch"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let mut errors = Vec::new();
    check(&doc, schema, &wrong, "wrong", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
}
