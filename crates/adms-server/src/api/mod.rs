//! The ERP side: a ZKBio Time-compatible REST API (`/api-token-auth/`, `/iclock/api/...`) and
//! the native `/api/v1/` routes.
//!
//! Shapes, status codes and error bodies follow ZKBio Time / Django REST Framework, because
//! existing integrations parse them literally (see `biotime_api.md` in the reference notes).

pub mod auth;
mod biodatas;
mod body;
mod commands;
mod native;
pub mod openapi;
mod org_units;
mod pagination;
mod personnel;
mod resigns;
mod terminals;
pub mod throttle;
mod transactions;
mod webhooks;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use org_units::{areas, departments, positions};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::SharedState;
use openapi::DocumentedRoutes;

/// The ERP side's routes, each documented by its handler's `#[utoipa::path]` (see [`openapi`]).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .documented(routes!(auth::token_login))
        .documented(routes!(auth::jwt_login))
        .documented(routes!(docs))
        .documented(routes!(openapi::openapi_json))
        .documented(routes!(transactions::list))
        .documented(routes!(transactions::detail))
        .documented(routes!(transactions::export))
        .documented(routes!(biodatas::list))
        .documented(routes!(biodatas::detail))
        .documented(routes!(terminals::list, terminals::create))
        .documented(routes!(terminals::detail, commands::terminal_action, terminals::update, terminals::delete))
        .documented(routes!(personnel::list, personnel::create))
        .documented(routes!(personnel::detail, personnel::update, personnel::delete))
        .documented(routes!(personnel::adjust_resign))
        .documented(routes!(personnel::adjust_regsin))
        .documented(routes!(personnel::adjust_area))
        .documented(routes!(personnel::adjust_department))
        .documented(routes!(personnel::adjust_position))
        .documented(routes!(personnel::adjust_emp_type))
        .documented(routes!(personnel::del_bio_template))
        .documented(routes!(personnel::resync_to_device))
        .documented(routes!(departments::list, departments::create))
        .documented(routes!(departments::detail, departments::update, departments::delete))
        .documented(routes!(areas::list, areas::create))
        .documented(routes!(areas::detail, areas::update, areas::delete))
        .documented(routes!(positions::list, positions::create))
        .documented(routes!(positions::detail, positions::update, positions::delete))
        .documented(routes!(resigns::list, resigns::create))
        .documented(routes!(resigns::detail, resigns::update, resigns::delete))
        .documented(routes!(resigns::reinstatement))
        .documented(routes!(native::update_device))
        .documented(routes!(commands::list_commands, commands::enqueue_command))
        .documented(routes!(commands::get_command))
        .documented(routes!(commands::cancel_command))
        .documented(routes!(native::rejected_lines))
        .documented(routes!(webhooks::device_punches))
        .documented(routes!(webhooks::list_endpoints, webhooks::create_endpoint))
        .documented(routes!(webhooks::get_endpoint, webhooks::update_endpoint, webhooks::delete_endpoint))
        .documented(routes!(webhooks::rotate_secret))
        .documented(routes!(webhooks::replay))
        .documented(routes!(webhooks::list_events))
        .documented(routes!(webhooks::list_deliveries))
        .documented(routes!(webhooks::delivery_attempts))
        .documented(routes!(webhooks::resend_delivery))
        .documented(routes!(webhooks::backlog))
}

/// A numeric id from a path; anything else is an unknown id (404, as ZKBio Time answers).
fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// Errors of the API, answered with Django REST Framework's bodies.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("not found")]
    NotFound,
    #[error("invalid page")]
    InvalidPage,
    #[error("bad request")]
    BadRequest(serde_json::Value),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Login throttled or every password check slot busy: retry after this many seconds.
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// A body over a route's limit (bytes).
    #[error("body over {0} bytes")]
    PayloadTooLarge(usize),
    #[error("storage: {0}")]
    Store(#[from] adms_store::StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized(detail) => {
                let mut response = (StatusCode::UNAUTHORIZED, axum::Json(json!({ "detail": detail }))).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
                return response;
            }
            ApiError::Throttled(secs) => {
                // DRF's throttle answer, word for word.
                let unit = if secs == 1 { "second" } else { "seconds" };
                let body = json!({ "detail": format!("Request was throttled. Expected available in {secs} {unit}.") });
                let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return response;
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({ "detail": "Not found." })),
            ApiError::InvalidPage => (StatusCode::NOT_FOUND, json!({ "detail": "Invalid page." })),
            ApiError::BadRequest(body) => (StatusCode::BAD_REQUEST, body),
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, json!({ "detail": detail })),
            ApiError::PayloadTooLarge(limit) => {
                let body = json!({ "detail": format!("Request body too large (limit {limit} bytes).") });
                let mut response = (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
                // This route's own limit: not to be restated as `max_body_bytes`.
                response.extensions_mut().insert(crate::limits::Explained);
                return response;
            }
            ApiError::Store(error) => {
                tracing::error!(%error, "API storage error");
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "detail": "Storage unavailable, retry later." }))
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "API internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({ "detail": "A server error occurred." }))
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

/// ZKBio Time answers unknown paths with 200 and a small HTML page; clients probe routes that way.
pub fn not_found_page() -> Response {
    Html("<!DOCTYPE html><html><head><title>Page not found</title></head><body><h1>Page not found</h1></body></html>")
        .into_response()
}

/// 405 with DRF's body.
pub async fn method_not_allowed(method: Method) -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(json!({ "detail": format!("Method \"{method}\" not allowed.") })))
        .into_response()
}

/// The ZKBio Time docs page.
///
/// Public: ZKBio Time clients probe it before logging in, and its title names the emulated
/// version ("BioTime 9.5 API DOCS"). It lists the ZKBio Time-compatible operations of the
/// OpenAPI document and links to the whole document. 406 to a client that accepts only JSON,
/// as Django REST Framework answers.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = openapi::tag::DOCS,
    security(()),
    responses(
        (status = 200, description = "The HTML page.", content_type = "text/html", body = String),
        (status = 406, description = "The `Accept` header asks for JSON only.", body = openapi::Detail),
    )
)]
async fn docs(State(state): State<SharedState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let wants_json_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("html") && !a.contains("*/*"));
    if wants_json_only {
        return Ok((
            StatusCode::NOT_ACCEPTABLE,
            axum::Json(json!({ "detail": "Could not satisfy the request Accept header." })),
        )
            .into_response());
    }
    Ok(Html(openapi::documents(&state)?.docs_page.as_ref().to_owned()).into_response())
}
