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
