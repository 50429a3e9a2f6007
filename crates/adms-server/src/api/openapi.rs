//! The OpenAPI 3.1 document of every route the server serves, built from the route table
//! itself and served at `GET /api/openapi.json`.
//!
//! Coverage by construction: `device::routes`, `api::routes` and `app::router` register each
//! route through utoipa-axum's `routes!`, which takes the path and the methods from the
//! handler's `#[utoipa::path]` attribute and adds the same operation to the document. A
//! handler without the attribute cannot be registered that way, so the router and the document
//! cannot drift apart (no route is added with a plain `.route()`; the fallbacks are not routes). [`super::access::one_path`] refuses a `routes!` group that mixes
//! paths (utoipa-axum would route every handler of the group on every one of its paths, some of
//! them undocumented). The const-generic org-unit handlers (`org_units::list::<DEPARTMENT>`)
//! cannot carry the attribute (the macro names a type after the function, so one function
//! cannot describe three resources), so `org_units` wraps them in thin non-generic handlers.
//!
//! [`finish`] then applies what the attributes cannot express once for all operations:
//! ZKBio Time paths get their trailing slash (the canonical form clients use; both forms are
//! routed), operation ids are derived from method and path (handler names repeat across
//! modules), unauthenticated operations get `security: []`, optional request bodies lose the
//! `null` utoipa allows for them, the shared 401 and 503 answers are added, a request body
//! offered in several encodings lists `application/json` alone (the others are named in its
//! description: generators then make one body type, and one that works), and the `webhooks`
//! section describes every webhook body ([`super::webhooks::payloads`]). [`render_documents`]
//! then has [`super::openapi_polish`] give every `oneOf`/`anyOf` alternative a `title`
//! (generated types get names) and turn rustdoc links in descriptions into plain text.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    Response as OpenApiResponse, ResponseBuilder,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use super::ApiError;
use super::access::SCOPE_EXTENSION;
use super::auth::Authenticated;
use crate::state::{Documents, SharedState};

/// Operation tags, in the order the document lists them.
pub mod tag {
    pub const DEVICE: &str = "device protocol";
    pub const AUTH: &str = "ZKBio Time auth";
    pub const TRANSACTIONS: &str = "transactions";
    pub const TERMINALS: &str = "terminals";
    pub const PERSONNEL: &str = "personnel";
    pub const DEVICES: &str = "devices";
    pub const COMMANDS: &str = "commands";
    pub const ACCESS: &str = "access control";
    pub const WEBHOOKS: &str = "webhooks";
    pub const USERS: &str = "users and audit";
    pub const METRICS: &str = "metrics";
    pub const DOCS: &str = "docs";
    pub const TESTING: &str = "testing";
}

const TAGS: [(&str, &str); 13] = [
    (
        tag::DEVICE,
        "The ZKTeco ADMS / iClock push protocol the terminals speak: handshake, uploads, command polls and results. \
         Plain text, no authentication; every request names the device with `SN`.",
    ),
    (tag::AUTH, "ZKBio Time logins: a session token or a JWT for the `Authorization` header."),
    (tag::TRANSACTIONS, "Punches in ZKBio Time 9.x's transaction shape."),
    (tag::TERMINALS, "Devices in ZKBio Time 9.x's terminal shape, and the terminal actions that queue commands."),
    (tag::PERSONNEL, "The roster (employees, departments, areas, positions, resignations) in ZKBio Time 9.x's shapes."),
    (tag::DEVICES, "Native device settings and approval, rejected lines, and the per-device punch cursor."),
    (tag::COMMANDS, "The per-device command queue."),
    (
        tag::ACCESS,
        "Access control: doors of the access controllers, time segments, holidays, access levels and their \
         members, provisioned onto the controllers through the command queue; door control and re-sync.",
    ),
    (tag::WEBHOOKS, "Webhook endpoints, events, deliveries, replay and backlog."),
    (tag::USERS, "API accounts and their roles, and the audit log of changes (admin scope)."),
    (tag::METRICS, "Prometheus metrics."),
    (tag::DOCS, "The ZKBio Time docs page and this document."),
    (tag::TESTING, "Only present when the server runs with `test_clock`."),
];

/// Security scheme names in `components.securitySchemes`.
pub mod scheme {
    pub const TOKEN: &str = "token";
    pub const JWT: &str = "jwt";
    pub const BEARER: &str = "bearer";
    pub const BASIC: &str = "basic";
}

const DESCRIPTION: &str = "\
adms-bridge: the server ZKTeco terminals push to (ADMS / iClock), with a ZKBio Time 9.x-compatible REST API \
and a native `/api/v1/` API.

**Paths.** ZKBio Time paths are listed with their trailing slash, as ZKBio Time clients call them. Before routing, \
the server drops trailing slashes and a `.aspx` suffix, collapses doubled slashes, and lower-cases device paths \
(`/iclock/…` outside `/iclock/api/`), so `/iclock/api/transactions` and `/iclock/api/transactions/`, or \
`/iClock/cdata.aspx` and `/iclock/cdata`, reach the same operation.

**Authentication.** Every route outside the device protocol, the login routes and the `/api/docs/` page needs an \
`Authorization` header: `Token <key>` (a session token from `/api-token-auth/` or an integration key), \
`Bearer <key or JWT>`, `JWT <jwt>` (from `/jwt-api-token-auth/`) or `Basic <base64 user:password>`; the scheme \
name is case-insensitive. Without valid credentials the answer is 401 `{\"detail\": ...}`.

**Scopes.** Each such operation requires one scope, named by its `x-required-scope`: `read`, `roster:write`, \
`devices:control`, `webhooks:admin` or `admin` (which includes every other). A user has its role's scopes (`admin`: \
all; `operator`: all but `admin`; `viewer`: `read`); an integration key has those given at its creation. Without \
the scope the answer is 403 `{\"detail\": \"You do not have permission to perform this action.\"}`. Every request \
that is not a GET is written to the audit log (`/api/v1/audit-log`).

**Errors** are Django REST Framework's: 400 `{\"<field>\": [\"<message>\", ...]}`, 404 `{\"detail\": \"Not found.\"}`; \
storage trouble answers 503 and the request can be retried. Unknown paths answer 404 \
`{\"detail\": \"Not found.\"}` (every write, everything under an API prefix, every client that is not a browser); \
only a browser's GET of another path gets ZKBio Time's \"Page not found\" page.";

/// Adds a `routes!` group that needs no credentials to a router (routes that need them go
/// through [`super::access::ApiRoutes::scoped`]): see [`super::access::public`].
pub trait DocumentedRoutes<S> {
    fn public(self, group: UtoipaMethodRouter<S>) -> Self;
}

impl<S: Send + Sync + Clone + 'static> DocumentedRoutes<S> for OpenApiRouter<S> {
    fn public(self, group: UtoipaMethodRouter<S>) -> Self {
        super::access::public(self, group)
    }
}

/// The document's fixed parts: info, tags, security schemes, and the default requirement
/// (any one of the schemes) that unauthenticated operations override.
pub fn base_document() -> OpenApi {
    let api_key = |format: &str, meaning: &str| {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization".to_owned(),
            format!("`Authorization: {format}` {meaning}"),
        )))
    };
    let components = ComponentsBuilder::new()
        .security_scheme(
            scheme::TOKEN,
            api_key(
                "Token <key>",
                "with a session token from `/api-token-auth/` or an integration key (`adms-bridge token create`).",
            ),
        )
        .security_scheme(scheme::JWT, api_key("JWT <jwt>", "with a JWT from `/jwt-api-token-auth/`."))
        .security_scheme(
            scheme::BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token, an integration key or a JWT."))
                    .build(),
            ),
        )
        .security_scheme(
            scheme::BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("An API account's user name and password."))
                    .build(),
            ),
        )
        .build();
    let requirements = [scheme::TOKEN, scheme::JWT, scheme::BEARER, scheme::BASIC]
        .map(|name| SecurityRequirement::new(name, Vec::<String>::new()));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("adms-bridge")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .license(Some(utoipa::openapi::LicenseBuilder::new().name("Apache-2.0").build())),
        )
        .tags(Some(TAGS.map(|(name, description)| TagBuilder::new().name(name).description(Some(description)).build())))
        .components(Some(components))
        .security(Some(requirements))
        .build()
}

/// Whether a router path is a ZKBio Time path, listed with a trailing slash.
fn is_zkbio_time_path(path: &str) -> bool {
    ["/api-token-auth", "/jwt-api-token-auth", "/api/docs"].contains(&path)
        || path.starts_with("/iclock/api/")
        || path.starts_with("/personnel/api/")
}

/// The path as the document lists it: a ZKBio Time path with its trailing slash; a catch-all
/// `{*rest}` as the plain template `{rest}` (OpenAPI has no catch-all syntax).
pub fn canonical_path(router_path: &str) -> String {
    let path = router_path.replace("{*", "{");
    if is_zkbio_time_path(&path) { format!("{path}/") } else { path }
}

/// `get /iclock/api/terminals/{id}/` → `get_iclock_api_terminals_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            segment
                .chars()
                .filter(|c| !matches!(c, '{' | '}'))
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

pub(crate) fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

fn json_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(Detail::name()))).build())
}

/// `schema` without its `null` alternative. utoipa marks a request body optional when its
/// content is an `Option`, but also lets it be `null`; an optional body is absent or empty,
/// never the JSON `null`, which the handlers refuse.
fn not_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    let is_null = |item: &RefOr<Schema>| matches!(item, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null));
    match schema {
        RefOr::T(Schema::OneOf(mut one_of)) if one_of.items.iter().any(is_null) => {
            one_of.items.retain(|item| !is_null(item));
            match one_of.items.len() {
                1 => one_of.items.remove(0),
                _ => RefOr::T(Schema::OneOf(one_of)),
            }
        }
        RefOr::T(Schema::Object(mut object)) => {
            if let SchemaType::Array(types) = &mut object.schema_type {
                types.retain(|t| *t != Type::Null);
                if let [only] = types.as_slice() {
                    object.schema_type = SchemaType::Type(only.clone());
                }
            }
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

/// Applies the rules every operation follows (see the module docs).
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let unauthorized: RefOr<OpenApiResponse> = json_response("Missing or invalid credentials.")
        .header(header::WWW_AUTHENTICATE.as_str(), HeaderBuilder::new().description(Some("`Token`")).build())
        .build()
        .into();
    let throttled: RefOr<OpenApiResponse> = throttled_response().into();
    let forbidden: RefOr<OpenApiResponse> =
        json_response("The credentials lack the operation's scope (`x-required-scope`).").build().into();
    let unavailable: RefOr<OpenApiResponse> =
        json_response("Storage unavailable; the request can be retried.").build().into();
    let paths = std::mem::take(&mut doc.paths.paths);
    for (router_path, mut item) in paths {
        let path = canonical_path(&router_path);
        for (method, operation) in operations_mut(&mut item) {
            operation.operation_id = Some(operation_id(method, &path));
            if let Some(RefOr::T(body)) = &mut operation.request_body {
                json_body_only(body);
            }
            if let Some(RefOr::T(body)) = &mut operation.request_body
                && body.required != Some(Required::True)
            {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content {
                        content.schema = content.schema.take().map(not_null);
                    }
                }
            }
            match operation.security.as_deref() {
                // `security(())` in an attribute: no credentials needed.
                Some([only]) if *only == SecurityRequirement::default() => operation.security = Some(Vec::new()),
                Some(_) => {}
                None => {
                    // A route needing credentials is registered with its scope (`access`); one
                    // without is a programming error, found when the router is built.
                    let scoped = operation.extensions.as_ref().is_some_and(|e| e.contains_key(SCOPE_EXTENSION));
                    assert!(scoped, "{method} {path}: needs credentials but declares no scope");
                    operation.responses.responses.entry("401".into()).or_insert_with(|| unauthorized.clone());
                    operation.responses.responses.entry("403".into()).or_insert_with(|| forbidden.clone());
                    // Basic credentials are checked, and throttled, like a login.
                    operation.responses.responses.entry("429".into()).or_insert_with(|| throttled.clone());
                }
            }
            // Only the static docs page answers without reading the store (credentials, devices).
            if path != "/api/docs/" {
                operation.responses.responses.entry("503".into()).or_insert_with(|| unavailable.clone());
            }
        }
        doc.paths.paths.insert(path, item);
    }
    add_webhooks(&mut doc);
    doc
}

/// The encodings a body may come in besides JSON.
const OTHER_ENCODINGS: [&str; 2] = ["application/x-www-form-urlencoded", "multipart/form-data"];

/// A body the handlers read as JSON, form or multipart alike (the same fields) is documented as
/// `application/json` alone, the other encodings named in its description. (Listed as three
/// content types of one schema, client generators make one body type that every encoding's
/// branch matches, and send the last, a multipart body with a made-up boundary.)
fn json_body_only(body: &mut utoipa::openapi::request_body::RequestBody) {
    if !body.content.contains_key("application/json") {
        return;
    }
    let others: Vec<String> = body.content.keys().filter(|k| OTHER_ENCODINGS.contains(&k.as_str())).cloned().collect();
    if others.is_empty() {
        return;
    }
    body.content.retain(|k, _| k == "application/json");
    let also = others.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" or ");
    let note = format!("Also accepted as {also}, with the same fields.");
    body.description = Some(match body.description.take() {
        Some(description) if !description.is_empty() => format!("{description} {note}"),
        _ => note,
    });
}

/// The `webhooks` section (OpenAPI 3.1): one entry per event type and one for batches, each a
/// `POST` the bridge sends to an endpoint, with the body's schema and the Standard Webhooks
/// headers; the schemas go into the components.
fn add_webhooks(doc: &mut OpenApi) {
    use super::webhooks::payloads;
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    let header = |name: &str, description: &str, kind: Type| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(utoipa::openapi::schema::Object::with_type(kind)))
            .build()
    };
    let headers = [
        header("webhook-id", "The event's `id` (a batch's `id`): the same on every attempt.", Type::String),
        header("webhook-timestamp", "Unix seconds of this attempt.", Type::Integer),
        header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">`, keyed with the base64-decoded part \
             of the endpoint's `whsec_` secret; during a secret rotation two signatures, space-separated (Standard Webhooks).",
            Type::String,
        ),
    ];
    let entry = |summary: &str, description: &str, schema: &str, id: &str| {
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build())
            .build();
        let mut operation = OperationBuilder::new()
            .summary(Some(summary))
            .description(Some(description))
            .operation_id(Some(id))
            .tag(tag::WEBHOOKS)
            .request_body(Some(body))
            .response(
                "200",
                ResponseBuilder::new().description("Any 2xx answer acknowledges the body; anything else is retried."),
            );
        for parameter in headers.clone() {
            operation = operation.parameter(parameter);
        }
        let mut operation = operation.build();
        // Receivers check signatures; the API's credentials play no part.
        operation.security = Some(Vec::new());
        PathItem::new(utoipa::openapi::HttpMethod::Post, operation)
    };
    let mut webhooks = utoipa::openapi::path::Paths::new();
    for (event_type, schema, summary) in payloads::EVENTS {
        let description = format!(
            "Sent to every endpoint whose `event_types` include `{event_type}` (or that has none), one event per \
             request; an endpoint with `batch_max` > 1 receives it inside a `batch` instead."
        );
        let id = format!("webhook_{}", event_type.replace('.', "_"));
        webhooks.paths.insert(event_type.to_owned(), entry(summary, &description, schema, &id));
    }
    webhooks.paths.insert(
        "batch".to_owned(),
        entry(
            "Several events in one request",
            "What an endpoint with `batch_max` > 1 receives, even for a single event: the events' own bodies in `data`.",
            "WebhookBatch",
            "webhook_batch",
        ),
    );
    doc.webhooks = Some(webhooks);
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in payloads::schemas() {
        components.schemas.insert(name, schema);
    }
}

/// 429: too many failed logins from this client (or every password check busy).
pub fn throttled_response() -> OpenApiResponse {
    json_response("Too many failed logins for this user from this address, or from this address; or every password check busy. Retry after `Retry-After` seconds.")
        .header(
            header::RETRY_AFTER.as_str(),
            HeaderBuilder::new().schema(Some(utoipa::openapi::schema::Object::with_type(Type::Integer))).description(Some("Seconds.")).build(),
        )
        .build()
}

/// The two documents the documentation routes serve, rendered from `doc` once, when the router
/// is built.
pub fn render_documents(doc: &OpenApi) -> Documents {
    // utoipa's own types always serialise (string keys, no non-finite numbers).
    let json =
        doc.to_json().map_or_else(|e| format!("{{\"error\": \"{e}\"}}"), |json| super::openapi_polish::polish(&json));
    Documents { openapi_json: json.into(), docs_page: docs_page(doc).into() }
}

/// The `/api/docs/` page: the ZKBio Time-compatible operations of `doc`, so the page cannot
/// list a route the server lacks or miss one it adds.
fn docs_page(doc: &OpenApi) -> String {
    let mut page = String::from(concat!(
        "<!DOCTYPE html><html><head><title>BioTime 9.5 API DOCS</title></head><body>",
        "<h1>BioTime 9.5 API DOCS</h1>",
        "<p>Served by adms-bridge ",
        env!("CARGO_PKG_VERSION"),
        ", a ZKBio Time-compatible subset. Paths work with or without the trailing slash; every route but the ",
        "logins needs <code>Authorization: Token &lt;token&gt;</code> (or <code>JWT</code>, <code>Bearer</code>, ",
        "<code>Basic</code>).</p>",
        "<p>The OpenAPI 3.1 document of every route, including the device protocol and the native ",
        "<code>/api/v1/</code> API: <a href=\"/api/openapi.json\">/api/openapi.json</a> (same authentication).</p><ul>",
    ));
    for (path, item) in &doc.paths.paths {
        if !is_zkbio_time_path(path.trim_end_matches('/')) || path == "/api/docs/" {
            continue;
        }
        let mut item = item.clone();
        for (method, operation) in operations_mut(&mut item) {
            let summary = operation.summary.as_deref().unwrap_or_default();
            page.push_str(&format!(
                "<li><code>{} {}</code>: {}</li>",
                method.to_ascii_uppercase(),
                html_escape(path),
                html_escape(summary)
            ));
        }
    }
    page.push_str("</ul></body></html>");
    page
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The OpenAPI document of this server.
///
/// Authenticated like the rest of the API: the document lists the management routes, which
/// only API users need to see. (Only `/api/docs/` is public, because ZKBio Time clients probe
/// it before logging in.)
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = tag::DOCS,
    responses((status = 200, description = "This document (OpenAPI 3.1, JSON).", content_type = "application/json"))
)]
pub async fn openapi_json(State(state): State<SharedState>, _who: Authenticated) -> Result<Response, ApiError> {
    let json = documents(&state)?.openapi_json.as_ref().to_owned();
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The rendered documents; set by [`crate::app::router`] before it serves anything.
pub fn documents(state: &SharedState) -> Result<&Documents, ApiError> {
    state.documents.get().ok_or_else(|| ApiError::Internal("documents not rendered".into()))
}

// ---------------------------------------------------------------------------------------------
// Schemas of answers the handlers build with `json!`, and parameter sets shared by several
// operations. They exist for the document only.

/// `{"detail": "..."}`: DRF's message body (401, 404, 409, and the actions' `"Success."`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Detail {
    pub detail: String,
}

/// DRF's validation errors: each offending field (or `non_field_errors`, `detail`) with its
/// messages; nested objects for list items (`{"terminals": {"0": ["Invalid pk ..."]}}`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object, example = json!({"emp_code": ["This field is required."]}))]
pub struct ValidationErrors(pub serde_json::Map<String, serde_json::Value>);

/// `{"token": "..."}`: the login answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// A 40-hex session token (`/api-token-auth/`) or an HS256 JWT (`/jwt-api-token-auth/`).
    pub token: String,
}

/// Every query parameter a device request may carry; only `SN` is required.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "what `adms_protocol::query::DeviceQuery` reads, without a copy: a test checks the names")]
pub struct DeviceParams {
    /// The device's serial number: 1 to 64 printable ASCII characters, no spaces (parameter
    /// names are matched case-insensitively: `SN`, `sn`).
    #[param(rename = "SN", min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    sn: String,
}

/// The query parameters of an upload (`POST /iclock/cdata` and `/iclock/edata`), beside `SN`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "what `adms_protocol::query::DeviceQuery` reads, without a copy: a test checks the names")]
pub struct UploadParams {
    /// `ATTLOG`, `OPERLOG`, `BIODATA`, `ATTPHOTO`, `OPTIONS`, `rtlog`, `tabledata`, …; other
    /// tables are stored raw.
    table: Option<String>,
    /// The device's upload stamp, echoed in the next handshake.
    #[param(rename = "Stamp")]
    stamp: Option<String>,
    /// The operation log stamp (older firmware).
    #[param(rename = "OpStamp")]
    op_stamp: Option<String>,
    /// With `table=tabledata`: the table's name.
    tablename: Option<String>,
}

#[cfg(test)]
mod tests {
    use adms_protocol::query::DeviceQuery;
    use utoipa::IntoParams as _;
    use utoipa::openapi::path::ParameterIn;

    /// The device parameters the document lists are read by the zero-copy parser the device
    /// routes use (it stays free of the document's types): every documented name sets a field.
    #[test]
    fn documented_device_parameters_are_the_ones_the_parser_reads() {
        let documented = [
            super::DeviceParams::into_params(|| Some(ParameterIn::Query)),
            super::UploadParams::into_params(|| Some(ParameterIn::Query)),
        ];
        for parameter in documented.iter().flatten() {
            let query = format!("{}=x", parameter.name);
            assert_ne!(
                DeviceQuery::parse(&query),
                DeviceQuery::default(),
                "{} is documented but not read",
                parameter.name
            );
        }
        assert_eq!(documented.iter().flatten().count(), 5);
    }
}
