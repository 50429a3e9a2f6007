//! The ERP side: a ZKBio Time-compatible REST API (`/api-token-auth/`, `/iclock/api/...`) and
//! the native `/api/v1/` routes.
//!
//! Shapes, status codes and error bodies follow ZKBio Time / Django REST Framework, because
//! existing integrations parse them literally (see `biotime_api.md` in the reference notes).

pub mod access;
mod access_control;
mod audit;
pub mod auth;
mod biodatas;
mod commands;
pub mod cvsecurity;
mod diagnostics;
mod elevator_levels;
mod native;
pub mod openapi;
pub mod openapi_polish;
mod org_units;
mod pagination;
mod personnel;
mod request;
mod resigns;
mod terminals;
pub use crate::auth::throttle;
mod transactions;
mod users;
mod webhooks;
/// How a replay bound is read (the console's replay form reads it the same way).
pub(crate) use webhooks::endpoints::local_time as replay_local_time;

use adms_store::{ErrorKind, StoreError};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use org_units::{areas, departments, positions};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::SharedState;
use access::ApiRoutes;
use auth::Scope;

/// The ERP side's routes, each documented by its handler's `#[utoipa::path]` (see [`openapi`])
/// and registered with the scope it requires (see [`access`]): reads `read`, roster writes
/// `roster:write`, device and terminal control `devices:control`, webhook changes
/// `webhooks:admin`, users and the audit log `admin`.
pub fn routes(state: &SharedState) -> OpenApiRouter<SharedState> {
    ApiRoutes::new(OpenApiRouter::new(), state)
        .public(routes!(auth::token_login))
        .public(routes!(auth::jwt_login))
        .public(routes!(docs))
        .scoped(Scope::Read, routes!(openapi::openapi_json))
        .scoped(Scope::Read, routes!(transactions::list))
        .scoped(Scope::Read, routes!(transactions::detail))
        .scoped(Scope::Read, routes!(transactions::export))
        .scoped(Scope::Read, routes!(biodatas::list))
        .scoped(Scope::Read, routes!(biodatas::detail))
        .scoped(Scope::Read, routes!(terminals::list))
        .scoped(Scope::DevicesControl, routes!(terminals::create))
        .scoped(Scope::Read, routes!(terminals::detail))
        .scoped(Scope::DevicesControl, routes!(commands::terminal_action))
        .scoped(Scope::DevicesControl, routes!(terminals::update))
        .scoped(Scope::DevicesControl, routes!(terminals::delete))
        .scoped(Scope::Read, routes!(personnel::employees::list))
        .scoped(Scope::RosterWrite, routes!(personnel::employees::create))
        .scoped(Scope::Read, routes!(personnel::employees::detail))
        .scoped(Scope::RosterWrite, routes!(personnel::employees::update))
        .scoped(Scope::RosterWrite, routes!(personnel::employees::delete))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::adjust_resign))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::adjust_regsin))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::adjust_area))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::adjust_department))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::adjust_position))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::adjust_emp_type))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::del_bio_template))
        .scoped(Scope::RosterWrite, routes!(personnel::actions::resync_to_device))
        .scoped(Scope::Read, routes!(departments::list))
        .scoped(Scope::RosterWrite, routes!(departments::create))
        .scoped(Scope::Read, routes!(departments::detail))
        .scoped(Scope::RosterWrite, routes!(departments::update))
        .scoped(Scope::RosterWrite, routes!(departments::delete))
        .scoped(Scope::Read, routes!(areas::list))
        .scoped(Scope::RosterWrite, routes!(areas::create))
        .scoped(Scope::Read, routes!(areas::detail))
        .scoped(Scope::RosterWrite, routes!(areas::update))
        .scoped(Scope::RosterWrite, routes!(areas::delete))
        .scoped(Scope::Read, routes!(positions::list))
        .scoped(Scope::RosterWrite, routes!(positions::create))
        .scoped(Scope::Read, routes!(positions::detail))
        .scoped(Scope::RosterWrite, routes!(positions::update))
        .scoped(Scope::RosterWrite, routes!(positions::delete))
        .scoped(Scope::Read, routes!(resigns::list))
        .scoped(Scope::RosterWrite, routes!(resigns::create))
        .scoped(Scope::Read, routes!(resigns::detail))
        .scoped(Scope::RosterWrite, routes!(resigns::update))
        .scoped(Scope::RosterWrite, routes!(resigns::delete))
        .scoped(Scope::RosterWrite, routes!(resigns::reinstatement))
        .scoped(Scope::DevicesControl, routes!(native::update_device))
        .scoped(Scope::Read, routes!(commands::list_commands))
        .scoped(Scope::DevicesControl, routes!(commands::enqueue_command))
        .scoped(Scope::Read, routes!(commands::get_command))
        .scoped(Scope::DevicesControl, routes!(commands::cancel_command))
        .scoped(Scope::Read, routes!(native::rejected_lines))
        .scoped(Scope::Read, routes!(webhooks::events::device_punches))
        .scoped(Scope::Read, routes!(webhooks::events::device_access_events))
        .scoped(Scope::Read, routes!(webhooks::endpoints::list_endpoints))
        .scoped(Scope::WebhooksAdmin, routes!(webhooks::endpoints::create_endpoint))
        .scoped(Scope::Read, routes!(webhooks::endpoints::get_endpoint))
        .scoped(Scope::WebhooksAdmin, routes!(webhooks::endpoints::update_endpoint))
        .scoped(Scope::WebhooksAdmin, routes!(webhooks::endpoints::delete_endpoint))
        .scoped(Scope::WebhooksAdmin, routes!(webhooks::endpoints::rotate_secret))
        .scoped(Scope::WebhooksAdmin, routes!(webhooks::endpoints::replay))
        .scoped(Scope::Read, routes!(webhooks::events::list_events))
        .scoped(Scope::Read, routes!(webhooks::deliveries::list_deliveries))
        .scoped(Scope::Read, routes!(webhooks::deliveries::delivery_attempts))
        .scoped(Scope::WebhooksAdmin, routes!(webhooks::deliveries::resend_delivery))
        .scoped(Scope::Read, routes!(webhooks::deliveries::backlog))
        .scoped(Scope::Admin, routes!(users::list))
        .scoped(Scope::Admin, routes!(users::create))
        .scoped(Scope::Admin, routes!(users::detail))
        .scoped(Scope::Admin, routes!(users::update))
        .scoped(Scope::Admin, routes!(users::delete))
        .scoped(Scope::Admin, routes!(audit::list))
        .scoped(Scope::Read, routes!(access_control::list_doors))
        .scoped(Scope::Read, routes!(access_control::get_door))
        .scoped(Scope::RosterWrite, routes!(access_control::rename_door))
        .scoped(Scope::DevicesControl, routes!(access_control::control_door))
        .scoped(Scope::Read, routes!(access_control::list_aux_outputs))
        .scoped(Scope::DevicesControl, routes!(access_control::control_aux_output))
        .scoped(Scope::Read, routes!(access_control::list_floors))
        .scoped(Scope::DevicesControl, routes!(access_control::set_floors))
        .scoped(Scope::DevicesControl, routes!(access_control::control_floor))
        .scoped(Scope::Read, routes!(access_control::list_segments))
        .scoped(Scope::RosterWrite, routes!(access_control::create_segment))
        .scoped(Scope::Read, routes!(access_control::get_segment))
        .scoped(Scope::RosterWrite, routes!(access_control::update_segment))
        .scoped(Scope::RosterWrite, routes!(access_control::delete_segment))
        .scoped(Scope::Read, routes!(access_control::list_holidays))
        .scoped(Scope::RosterWrite, routes!(access_control::create_holiday))
        .scoped(Scope::RosterWrite, routes!(access_control::delete_holiday))
        .scoped(Scope::Read, routes!(access_control::list_levels))
        .scoped(Scope::RosterWrite, routes!(access_control::create_level))
        .scoped(Scope::Read, routes!(access_control::get_level))
        .scoped(Scope::RosterWrite, routes!(access_control::update_level))
        .scoped(Scope::RosterWrite, routes!(access_control::delete_level))
        .scoped(Scope::RosterWrite, routes!(access_control::add_level_doors))
        .scoped(Scope::RosterWrite, routes!(access_control::remove_level_door))
        .scoped(Scope::Read, routes!(access_control::list_members))
        .scoped(Scope::RosterWrite, routes!(access_control::put_member))
        .scoped(Scope::RosterWrite, routes!(access_control::remove_member))
        .scoped(Scope::DevicesControl, routes!(access_control::resync_controller))
        .scoped(Scope::Read, routes!(elevator_levels::list_ele_levels))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::create_ele_level))
        .scoped(Scope::Read, routes!(elevator_levels::get_ele_level))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::update_ele_level))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::delete_ele_level))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::add_ele_level_floors))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::remove_ele_level_floor))
        .scoped(Scope::Read, routes!(elevator_levels::list_ele_members))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::put_ele_member))
        .scoped(Scope::RosterWrite, routes!(elevator_levels::remove_ele_member))
        .scoped(Scope::Read, routes!(access_control::list_visits))
        .scoped(Scope::RosterWrite, routes!(access_control::create_visit))
        .scoped(Scope::RosterWrite, routes!(access_control::exit_visit))
        .scoped(Scope::Read, routes!(diagnostics::device_options))
        .scoped(Scope::Admin, routes!(diagnostics::table_counts))
        .scoped(Scope::Admin, routes!(diagnostics::start_capture))
        .into_router()
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
    /// Authenticated, but without the route's scope.
    #[error("forbidden")]
    Forbidden,
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
            // DRF's PermissionDenied, word for word.
            ApiError::Forbidden => {
                (StatusCode::FORBIDDEN, json!({ "detail": "You do not have permission to perform this action." }))
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
            // The store's errors are answered by their kind, here and nowhere else; a route that
            // has a better word for one (a DRF message) maps it before it gets here.
            ApiError::Store(error) => match error.kind() {
                ErrorKind::NotFound => (StatusCode::NOT_FOUND, json!({ "detail": "Not found." })),
                ErrorKind::Conflict => {
                    tracing::info!(%error, "API request conflicts with the stored state");
                    (StatusCode::CONFLICT, json!({ "detail": store_detail(&error, "It conflicts with stored data.") }))
                }
                ErrorKind::Invalid => {
                    tracing::info!(%error, "API request refused by the store");
                    (
                        StatusCode::BAD_REQUEST,
                        json!({ "detail": store_detail(&error, "It breaks a rule of the stored data.") }),
                    )
                }
                ErrorKind::Unavailable => {
                    tracing::error!(%error, "API storage error");
                    (StatusCode::SERVICE_UNAVAILABLE, json!({ "detail": "Storage unavailable, retry later." }))
                }
            },
            ApiError::Internal(error) => {
                tracing::error!(%error, "API internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({ "detail": "A server error occurred." }))
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

/// What a client is told about a store error: the store's own words, but never the database's
/// (they name tables and constraints).
fn store_detail(error: &StoreError, database: &'static str) -> String {
    match error {
        StoreError::Database(_) => database.to_owned(),
        other => other.to_string(),
    }
}

/// Unknown paths. ZKBio Time answers them with 200 and a small HTML page, which made a write to a
/// misspelt path look like success to an integration. Here: JSON 404 `{"detail": "Not found."}`
/// (DRF's) for every method but GET/HEAD, for every path under an API prefix, and for clients
/// that are not browsers; ZKBio Time's page (200, as it answers) only for a browser's GET
/// (`Accept` names `text/html`) of any other path, and a browser's GET of `/` is sent to the
/// operator console (`/ui/`).
pub async fn not_found(method: Method, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    const API_PREFIXES: [&str; 5] = ["/api/", "/api-", "/iclock/api/", "/personnel/api/", "/att/api/"];
    let path = uri.path();
    let under_api = API_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) || path == "/api";
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if (method == Method::GET || method == Method::HEAD) && !under_api && browser {
        // The root is the operator console's door (`/ui/`, outside the API).
        if path == "/" {
            return axum::response::Redirect::to("/ui/").into_response();
        }
        let page = "<!DOCTYPE html><html><head><title>Page not found</title></head><body><h1>Page not found</h1></body></html>";
        return Html(page).into_response();
    }
    ApiError::NotFound.into_response()
}

/// 405 with DRF's body; 404 for a method devices never use on a path only the device
/// catch-all (`/iclock/{*rest}`) matched, which is no route of its own.
pub async fn method_not_allowed(method: Method, matched: Option<axum::extract::MatchedPath>) -> Response {
    if matched.is_some_and(|m| m.as_str() == "/iclock/{*rest}") {
        return ApiError::NotFound.into_response();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: StoreError) -> (StatusCode, serde_json::Value) {
        let response = ApiError::Store(error).into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// Every store error reaches a client by its kind: not every one as 503.
    #[tokio::test]
    async fn store_errors_are_answered_by_their_kind() {
        assert_eq!(answer(StoreError::NotFound).await.0, StatusCode::NOT_FOUND);
        let (status, body) = answer(StoreError::Conflict("only a queued command can be cancelled".into())).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (StatusCode::CONFLICT, Some("conflict: only a queued command can be cancelled"))
        );
        assert_eq!(answer(StoreError::Invalid("no such area".into())).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(answer(StoreError::WriterStopped).await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer(StoreError::Database(sqlx::Error::PoolTimedOut)).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
