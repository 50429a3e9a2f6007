//! The ERP side: a ZKBio Time-compatible REST API (`/api-token-auth/`, `/iclock/api/...`) and
//! the native `/api/v1/` routes.
//!
//! Shapes, status codes and error bodies follow ZKBio Time / Django REST Framework, because
//! existing integrations parse them literally (see `biotime_api.md` in the reference notes).

pub mod auth;
mod body;
mod commands;
mod native;
mod org_units;
mod pagination;
mod personnel;
mod resigns;
mod terminals;
mod transactions;
mod webhooks;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, patch, post};
use org_units::{AREA, DEPARTMENT, POSITION};
use serde_json::json;

use crate::app::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api-token-auth", post(auth::token_login))
        .route("/jwt-api-token-auth", post(auth::jwt_login))
        .route("/api/docs", get(docs))
        .route("/iclock/api/transactions", get(transactions::list))
        .route("/iclock/api/transactions/{id}", get(transactions::detail))
        .route("/iclock/api/transactions/export", get(transactions::export))
        .route("/iclock/api/terminals", get(terminals::list).post(terminals::create))
        .route(
            "/iclock/api/terminals/{id}",
            get(terminals::detail)
                .post(commands::terminal_action)
                .put(terminals::update)
                .patch(terminals::update)
                .delete(terminals::delete),
        )
        .route("/personnel/api/employees", get(personnel::list).post(personnel::create))
        .route(
            "/personnel/api/employees/{id}",
            get(personnel::detail).put(personnel::update).patch(personnel::update).delete(personnel::delete),
        )
        .route("/personnel/api/employees/adjust_resign", post(personnel::adjust_resign))
        // the 8.x documentation's spelling, which real clients call
        .route("/personnel/api/employees/adjust_regsin", post(personnel::adjust_resign))
        .route("/personnel/api/employees/adjust_area", post(personnel::adjust_area))
        .route("/personnel/api/employees/del_bio_template", post(personnel::del_bio_template))
        .route("/personnel/api/employees/resync_to_device", post(personnel::resync_to_device))
        .route("/personnel/api/departments", get(org_units::list::<DEPARTMENT>).post(org_units::create::<DEPARTMENT>))
        .route(
            "/personnel/api/departments/{id}",
            get(org_units::detail::<DEPARTMENT>)
                .put(org_units::update::<DEPARTMENT>)
                .patch(org_units::update::<DEPARTMENT>)
                .delete(org_units::delete::<DEPARTMENT>),
        )
        .route("/personnel/api/areas", get(org_units::list::<AREA>).post(org_units::create::<AREA>))
        .route(
            "/personnel/api/areas/{id}",
            get(org_units::detail::<AREA>)
                .put(org_units::update::<AREA>)
                .patch(org_units::update::<AREA>)
                .delete(org_units::delete::<AREA>),
        )
        .route("/personnel/api/positions", get(org_units::list::<POSITION>).post(org_units::create::<POSITION>))
        .route(
            "/personnel/api/positions/{id}",
            get(org_units::detail::<POSITION>)
                .put(org_units::update::<POSITION>)
                .patch(org_units::update::<POSITION>)
                .delete(org_units::delete::<POSITION>),
        )
        .route("/personnel/api/resigns", get(resigns::list).post(resigns::create))
        .route(
            "/personnel/api/resigns/{id}",
            get(resigns::detail).put(resigns::update).patch(resigns::update).delete(resigns::delete),
        )
        .route("/personnel/api/resigns/reinstatement", post(resigns::reinstatement))
        .route("/api/v1/devices/{sn}", patch(native::update_device))
        .route("/api/v1/devices/{sn}/commands", get(commands::list_commands).post(commands::enqueue_command))
        .route("/api/v1/commands/{id}", get(commands::get_command))
        .route("/api/v1/commands/{id}/cancel", post(commands::cancel_command))
        .route("/api/v1/rejected-lines", get(native::rejected_lines))
        .route("/api/v1/devices/{sn}/punches", get(webhooks::device_punches))
        .route("/api/v1/webhooks/endpoints", get(webhooks::list_endpoints).post(webhooks::create_endpoint))
        .route(
            "/api/v1/webhooks/endpoints/{uid}",
            get(webhooks::get_endpoint).patch(webhooks::update_endpoint).delete(webhooks::delete_endpoint),
        )
        .route("/api/v1/webhooks/endpoints/{uid}/rotate-secret", post(webhooks::rotate_secret))
        .route("/api/v1/webhooks/endpoints/{uid}/replay", post(webhooks::replay))
        .route("/api/v1/webhooks/events", get(webhooks::list_events))
        .route("/api/v1/webhooks/deliveries", get(webhooks::list_deliveries))
        .route("/api/v1/webhooks/deliveries/{id}/attempts", get(webhooks::delivery_attempts))
        .route("/api/v1/webhooks/deliveries/{id}/resend", post(webhooks::resend_delivery))
        .route("/api/v1/webhooks/backlog", get(webhooks::backlog))
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
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({ "detail": "Not found." })),
            ApiError::InvalidPage => (StatusCode::NOT_FOUND, json!({ "detail": "Invalid page." })),
            ApiError::BadRequest(body) => (StatusCode::BAD_REQUEST, body),
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, json!({ "detail": detail })),
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

/// Public API docs page; its title names the emulated version (clients sniff it).
async fn docs(headers: HeaderMap) -> Response {
    let wants_json_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("html") && !a.contains("*/*"));
    if wants_json_only {
        return (
            StatusCode::NOT_ACCEPTABLE,
            axum::Json(json!({ "detail": "Could not satisfy the request Accept header." })),
        )
            .into_response();
    }
    Html(concat!(
        "<!DOCTYPE html><html><head><title>BioTime 9.5 API DOCS</title></head><body>",
        "<h1>BioTime 9.5 API DOCS</h1>",
        "<p>Served by adms-bridge ",
        env!("CARGO_PKG_VERSION"),
        ", a ZKBio Time-compatible subset.</p><ul>",
        "<li>POST /api-token-auth/ and /jwt-api-token-auth/ {username, password}</li>",
        "<li>GET /iclock/api/transactions/ (start_time, end_time, emp_code, terminal_sn, terminal_alias, ",
        "upload_time__gte, upload_time__lte, ordering, page, page_size)</li>",
        "<li>GET /iclock/api/transactions/export/?export_type=csv|txt</li>",
        "<li>GET, PUT, PATCH /iclock/api/terminals/</li>",
        "<li>/personnel/api/employees/ (GET, POST, PUT, PATCH, DELETE; adjust_resign, adjust_area, ",
        "del_bio_template, resync_to_device), /personnel/api/departments/, /personnel/api/areas/, ",
        "/personnel/api/positions/, /personnel/api/resigns/ (reinstatement)</li></ul></body></html>"
    ))
    .into_response()
}
