//! The operator console (issue 18): server-rendered HTML pages at `/ui/` for the people who run
//! the bridge, with htmx (vendored, `assets/console/`) for the few parts that refresh
//! themselves. A leaf of the module layers: it uses the state, the services (commands and the
//! device settings go the one way the API's go) and `api::auth`'s password check (the same
//! lock-out), and nothing uses it but the router.
//!
//! - [`session`]: the login, the session cookie (its own table: neither an API token nor an
//!   API credential), the CSRF token of every form, logout.
//! - [`pages`]: the overview, the device list (keyset-paged, filters in the URL), the device
//!   page, the rejected lines.
//! - [`people`]: the roster, read-only, with the terminals that hold each person.
//! - [`live`]: live punches, a server-sent event stream the page's own script follows.
//! - [`keys`]: integration keys, created (shown once), listed, revoked; admin only.
//! - [`webhooks`]: the backlog per endpoint, the delivery log, a delivery's attempts, resend.
//! - [`endpoints`]: webhook endpoints created, shown (with their backlog), their secret
//!   rotated (shown once), a range of punches replayed, deleted after a confirmation.
//! - [`actions`]: every change is a POST form with the CSRF token, answered with a redirect
//!   (post/redirect/get), through `services/`.
//! - [`assets`]: the static files, embedded, cached for a year.
//!
//! Every answer carries a Content-Security-Policy without inline scripts or styles, no
//! framing, and no referrer beyond the origin ([`security_headers`]); templates escape every
//! value (askama's HTML escaping), so what a device or an API client wrote shows as text.

mod actions;
pub mod assets;
mod endpoints;
mod keys;
mod live;
mod pages;
mod people;
mod session;
mod webhooks;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::SharedState;

pub use session::{COOKIE, LOGIN_COOKIE};

/// The console's routes, under `/ui` (the router drops trailing slashes before routing, so
/// `/ui/` arrives as `/ui`).
pub fn routes() -> Router<SharedState> {
    let pages = Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/devices", get(pages::devices))
        .route("/ui/devices/{sn}", get(pages::device))
        .route("/ui/devices/{sn}/commands", get(pages::device_commands).post(actions::send_command))
        .route("/ui/devices/{sn}/approve", post(actions::approve))
        .route("/ui/devices/{sn}/reject", post(actions::reject))
        .route("/ui/devices/{sn}/alias", post(actions::rename))
        .route("/ui/devices/{sn}/area", post(actions::set_area))
        .route("/ui/devices/{sn}/action", post(actions::terminal_action))
        .route("/ui/commands/{id}/cancel", post(actions::cancel_command))
        .route("/ui/rejected-lines", get(pages::rejected_lines))
        .route("/ui/live", get(live::live))
        .route("/ui/live/stream", get(live::stream))
        .route("/ui/people", get(people::people))
        .route("/ui/keys", get(keys::keys).post(keys::create))
        .route("/ui/keys/{id}/revoke", post(keys::revoke))
        .route("/ui/webhooks", get(webhooks::webhooks))
        .route("/ui/webhooks/deliveries/{id}", get(webhooks::delivery))
        .route("/ui/webhooks/deliveries/{id}/resend", post(webhooks::resend))
        .route("/ui/webhooks/endpoints", post(endpoints::create))
        .route("/ui/webhooks/endpoints/{uid}", get(endpoints::endpoint))
        .route("/ui/webhooks/endpoints/{uid}/rotate-secret", post(endpoints::rotate_secret))
        .route("/ui/webhooks/endpoints/{uid}/delete", get(endpoints::confirm_delete).post(endpoints::delete))
        .route("/ui/webhooks/endpoints/{uid}/replay", post(endpoints::replay))
        .route("/ui/webhooks/endpoints/{uid}/pause", post(webhooks::pause))
        .route("/ui/webhooks/endpoints/{uid}/resume", post(webhooks::resume))
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::map_response(security_headers));
    // Static files: long-lived, their names carry their version.
    let assets = Router::new()
        .route("/ui/static/{name}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers));
    pages.merge(assets)
}

/// The policy of every console answer: scripts, styles and images from the console's own
/// origin only, no inline script or style (so an injected tag does nothing), forms only to
/// itself, never framed (clickjacking), no `<base>` rewriting.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show live state and carry the CSRF token: never cached, never stored.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What a console request can fail with, answered as a page (never the API's JSON).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: pages send the browser to the login page, other requests get 401.
    #[error("not logged in")]
    LoginRequired { next: Option<String> },
    /// A form without the session's CSRF token.
    #[error("CSRF token missing or wrong")]
    Csrf,
    /// The account's role lacks the scope the action needs.
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// Input the page explains (a malformed form).
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("storage: {0}")]
    Store(#[from] adms_store::StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A whole page with a title and one sentence.
fn message(status: StatusCode, title: &str, message: &str) -> Response {
    match (MessagePage { title, message }).render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "console page not rendered");
            (status, title.to_owned()).into_response()
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::LoginRequired { next: Some(next) } => {
                let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/ui/login?{query}")).into_response()
            }
            ConsoleError::LoginRequired { next: None } => {
                message(StatusCode::UNAUTHORIZED, "Logged out", "Your session ended: log in again.")
            }
            ConsoleError::Csrf => message(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form was not sent from this console's page (its CSRF token is missing or wrong). Reload the page and try again.",
            ),
            ConsoleError::Forbidden => message(StatusCode::FORBIDDEN, "Not allowed", "Your role may not do this."),
            ConsoleError::NotFound => message(StatusCode::NOT_FOUND, "Not found", "There is nothing at this address."),
            ConsoleError::BadRequest(why) => message(StatusCode::BAD_REQUEST, "Not understood", &why),
            ConsoleError::Store(error) if error.kind() == adms_store::ErrorKind::NotFound => {
                message(StatusCode::NOT_FOUND, "Not found", "There is nothing at this address.")
            }
            ConsoleError::Store(error) if error.kind() == adms_store::ErrorKind::Unavailable => {
                tracing::error!(%error, "console storage error");
                message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; retry later.")
            }
            ConsoleError::Store(error) => {
                tracing::info!(%error, "console request refused by the store");
                message(StatusCode::CONFLICT, "Refused", "The change conflicts with the stored data.")
            }
            ConsoleError::Internal(error) => {
                tracing::error!(%error, "console internal error");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "A server error occurred.")
            }
        }
    }
}

/// Renders a template as a 200 page.
fn render(template: &impl Template) -> Result<Response, ConsoleError> {
    let html = template.render().map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(axum::response::Html(html).into_response())
}

/// Console paths that are no page: 404 once logged in (a path says nothing to a stranger).
async fn not_found(_user: session::ConsoleUser) -> ConsoleError {
    ConsoleError::NotFound
}
