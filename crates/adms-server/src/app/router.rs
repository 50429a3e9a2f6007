//! The router: every route with its OpenAPI document, the middleware around it, the test
//! clock, and the path normalisation in front of routing.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::access::ApiRoutes;
use crate::state::SharedState;

/// Every route of this process's roles with its OpenAPI document: the device protocol (`device`),
/// the API (`api`), `/healthz`, `/readyz` and `/metrics` (every role), and the test clock when it
/// is enabled (undocumented otherwise, because it does not exist). A route of a role this
/// process does not have is not there: the fallback's 404.
fn documented_routes(state: &SharedState) -> (Router<SharedState>, utoipa::openapi::OpenApi) {
    use crate::api::auth::Scope;
    let roles = state.config.role;
    let mut base = OpenApiRouter::with_openapi(crate::api::openapi::base_document());
    if roles.device {
        base = base.merge(crate::device::routes());
    }
    if roles.api {
        base = base.merge(crate::api::routes(state));
    }
    // Prometheus scrapes with a `read` key.
    let mut routes = ApiRoutes::new(base, state)
        .scoped(Scope::Read, routes!(super::metrics::metrics))
        .public(routes!(super::health::healthz))
        .public(routes!(super::health::readyz));
    if state.config.test_clock && roles.api {
        routes = routes.scoped(Scope::Admin, routes!(advance_test_clock));
    }
    let (router, doc) = routes.into_router().split_for_parts();
    (router, crate::api::openapi::finish(doc))
}

/// The router with every route and middleware.
pub fn router(state: SharedState) -> Router {
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs.max(1));
    let (routes, doc) = documented_routes(&state);
    // Built once per state; a second router for the same state documents the same routes.
    let _ = state.documents.set(crate::api::openapi::render_documents(&doc));
    let max_body_bytes = state.config.http.max_body_bytes;
    // The operator console and the CVSecurity-compatible API go with the API (`api` role).
    let routes = if state.config.role.api {
        routes.merge(crate::console::routes()).merge(crate::api::cvsecurity::routes())
    } else {
        routes
    };
    let routes = routes
        .fallback(crate::api::not_found)
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .with_state(state.clone());
    // The middleware wraps the router once, outermost first. (`Router::layer` would wrap every
    // route on its own, each layer in a boxed service of its own that is cloned and whose
    // future is boxed on every request.)
    let middleware = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::metrics::record_http))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            (StatusCode::INTERNAL_SERVER_ERROR, "ERROR: internal error").into_response()
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::map_response(log_refusals))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(max_body_bytes, crate::limits::explain_body_limit))
        // Innermost, so it records what the handlers answered (the refusals of the layers above
        // are not device exchanges worth replaying); does nothing unless capture is on.
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::capture::capture_exchange));
    Router::new().fallback_service(middleware.service(routes))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
struct ClockAdvance {
    advance_secs: u64,
}

/// The dispatcher's clock after a move.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct ClockNow {
    /// RFC 3339 UTC.
    now: String,
}

/// Move the webhook dispatcher's clock forward (tests only).
///
/// Only with `test_clock`, for tests that walk retry schedules of days. Authenticated like
/// every API route.
#[utoipa::path(
    post,
    path = "/api/v1/test/clock",
    tag = crate::api::openapi::tag::TESTING,
    request_body = ClockAdvance,
    responses(
        (status = 200, description = "The clock's new time.", body = ClockNow),
        (status = 400, description = "Malformed JSON."),
        (status = 415, description = "The body is not `application/json`."),
        (status = 422, description = "Not `{\"advance_secs\": <n>}`."),
    )
)]
async fn advance_test_clock(
    axum::extract::State(state): axum::extract::State<SharedState>,
    _who: crate::api::auth::Authenticated,
    axum::Json(body): axum::Json<ClockAdvance>,
) -> axum::Json<ClockNow> {
    state.webhooks.clock.advance(Duration::from_secs(body.advance_secs));
    state.webhooks.wake.notify_one();
    axum::Json(ClockNow { now: adms_store::events::rfc3339_micros(state.webhooks.clock.now_micros()) })
}

/// Refusals produced by middleware (body limit, timeout) get a log line in the request span,
/// so an operator sees which device sends oversized or stalled uploads.
async fn log_refusals(response: axum::response::Response) -> axum::response::Response {
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => tracing::warn!("request body over max_body_bytes refused with 413"),
        StatusCode::REQUEST_TIMEOUT => tracing::warn!("request not completed within request_timeout_secs: 408"),
        _ => {}
    }
    response
}

/// One span per request, carrying the device serial when there is one.
fn request_span(request: &Request) -> tracing::Span {
    let query = request.uri().query().unwrap_or_default();
    let sn = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k.eq_ignore_ascii_case("sn")).map(|(_, v)| v);
    // WARN level so the span (and its SN) is present whenever warnings and errors are logged.
    tracing::warn_span!("request", method = %request.method(), path = %request.uri().path(), sn = sn.as_deref().unwrap_or(""))
}

/// Rewrites the path before routing: doubled slashes collapsed, trailing slash and `.aspx`
/// dropped, device paths lower-cased (`/iclock/cdata.aspx`, `//iclock/cdata/`, `/iClock/cdata`
/// all reach `/iclock/cdata`). The original URI stays available as [`OriginalUri`].
pub fn normalize_path(mut request: Request) -> Request {
    let original = request.uri().clone();
    let path = original.path();
    request.extensions_mut().insert(OriginalUri(original.clone()));
    if is_normal(path) {
        return request;
    }
    let mut normalized = String::with_capacity(path.len());
    let mut previous_slash = false;
    for c in path.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        normalized.push(c);
    }
    while normalized.len() > 1 && normalized.ends_with('/') {
        normalized.pop();
    }
    if normalized.len() > 5 && normalized.as_bytes()[normalized.len() - 5..].eq_ignore_ascii_case(b".aspx") {
        normalized.truncate(normalized.len() - 5);
    }
    let lower = normalized.to_ascii_lowercase();
    if lower.starts_with("/iclock/") && !lower.starts_with("/iclock/api/") {
        normalized = lower;
    }
    if normalized != path {
        let rebuilt = match original.query() {
            Some(q) => format!("{normalized}?{q}"),
            None => normalized,
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The common case, checked without allocating: no `//`, no trailing `/`, no `.aspx`, and a
/// device path already in lower case.
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    let device_path = b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"/iclock/") && !b[8..].starts_with(b"api/");
    let double_slash = path.contains("//");
    let trailing_slash = b.len() > 1 && path.ends_with('/');
    let aspx = b.len() > 5 && b[b.len() - 5..].eq_ignore_ascii_case(b".aspx");
    let upper_case_device_path = device_path && b.iter().any(u8::is_ascii_uppercase);
    !(double_slash || trailing_slash || aspx || upper_case_device_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_variants_normalise() {
        let cases = [
            ("/iclock/cdata.aspx?SN=1", "/iclock/cdata?SN=1"),
            ("//iclock/cdata/?SN=1", "/iclock/cdata?SN=1"),
            ("/iClock/GetRequest.ASPX", "/iclock/getrequest"),
            ("/iclock/api/transactions/", "/iclock/api/transactions"),
            ("/", "/"),
            ("/api-token-auth/", "/api-token-auth"),
            ("/iclock/getrequest?SN=1", "/iclock/getrequest?SN=1"),
            ("/iclock/api/Transactions", "/iclock/api/Transactions"),
            ("/att/api/firstLastReport/", "/att/api/firstLastReport"),
        ];
        for (input, want) in cases {
            let request = Request::builder().uri(input).body(axum::body::Body::empty()).unwrap();
            assert_eq!(normalize_path(request).uri().to_string(), want, "{input}");
        }
    }
}
