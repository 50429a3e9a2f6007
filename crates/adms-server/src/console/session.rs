//! Who is using the console: the login (the API's accounts, checked and throttled by the API's
//! own password check, `api::auth::check_password`, so the lock-out is the same one), the
//! session cookie, the CSRF token of every form, and logout.
//!
//! - The session cookie (`adms_console`) holds a random token; the database keeps its SHA-256
//!   digest in `console_sessions`, a table of its own: the API never reads it, and the console
//!   never reads `Authorization`, so neither credential opens the other side. The cookie is
//!   `HttpOnly`, `SameSite=Strict`, `Path=/ui` (browsers do not even send it to `/api/`), lives
//!   `session_ttl_secs` (8 h, as API session tokens), and is `Secure` when the request came
//!   over HTTPS as a reverse proxy reports it (`X-Forwarded-Proto: https` or `Forwarded:
//!   proto=https`). That header is trusted without a list of proxies because it can only add
//!   `Secure`: a client that forges it gets a cookie its own plain-HTTP browser will not send
//!   back, and nobody else's.
//! - The CSRF token is bound to the session: HMAC-SHA256 of a fixed label under the session's
//!   token, so only a page that had the cookie's token can carry it, and it ends with the
//!   session. Every POST carries it as the form field `csrf_token`; without it, 403.
//! - The login form has no session yet: its token is double-submitted (a random value in a
//!   `SameSite=Strict` cookie scoped to `/ui/login` and in the form, compared on POST).
//! - A password change or a disabled account ends the sessions (the store compares the
//!   account's version), like the API's tokens.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use adms_store::{now_micros, sha256};

use super::ConsoleError;
use crate::api::ApiError;
use crate::auth::Scopes;
use crate::state::SharedState;

/// The session cookie.
pub const COOKIE: &str = "adms_console";
/// The login form's double-submitted CSRF value.
pub const LOGIN_COOKIE: &str = "adms_console_login";
/// The form field every POST carries.
const CSRF_FIELD: &str = "csrf_token";
/// Largest console form accepted (a command's JSON is the largest field).
const MAX_FORM_BYTES: usize = 64 * 1024;
/// What the CSRF token is a MAC of.
const CSRF_LABEL: &[u8] = b"adms-bridge console csrf v1";

/// A request with a live console session.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub user_id: i64,
    pub name: String,
    pub role: String,
    pub scopes: Scopes,
    /// The token forms carry (hex).
    pub csrf: String,
    token: String,
}

impl ConsoleUser {
    /// Whether the account's role allows `scope` (actions need `devices:control`).
    pub fn may(&self, scope: crate::auth::Scope) -> Result<(), ConsoleError> {
        if self.scopes.allows(scope) { Ok(()) } else { Err(ConsoleError::Forbidden) }
    }

    /// Whether the session is still live (not logged out, expired or ended by a password
    /// change): what a long answer (the live stream) checks now and then.
    pub async fn is_live(&self, state: &SharedState) -> Result<bool, adms_store::StoreError> {
        Ok(state.store.live_console_session(&sha256(self.token.as_bytes()), now_micros()).await?.is_some())
    }

    fn csrf_matches(&self, submitted: &str) -> bool {
        let Ok(bytes) = hex::decode(submitted) else { return false };
        csrf_mac(&self.token).verify_slice(&bytes).is_ok()
    }
}

fn csrf_mac(token: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(CSRF_LABEL);
    mac
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether a reverse proxy says the browser used HTTPS (see the module docs for why it is
/// trusted).
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().split([';', ',']).any(|part| part.trim() == "proto=https"));
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, on `path`, for `max_age` seconds (0 ends
/// it), Secure over HTTPS.
fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let cookie = cookie::Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where a login may send the browser afterwards: a console path, nothing else (no open
/// redirect to another site, `//host` included).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/ui" || path.starts_with("/ui/") || path.starts_with("/ui?")) && !path.contains('\\') =>
        {
            path.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

impl FromRequestParts<SharedState> for ConsoleUser {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        // A page asked without a session goes to the login page and comes back; anything else
        // (a form post, an htmx fragment) is refused.
        // (An event stream is no page: the browser's `EventSource` would follow a redirect to
        // the login form and fail on its HTML; a 401 ends it plainly.)
        let is_page = parts.method == Method::GET
            && !parts.headers.contains_key("hx-request")
            && !parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/event-stream"));
        let login_required = || ConsoleError::LoginRequired {
            next: is_page.then(|| parts.uri.path_and_query().map_or("/ui/", |p| p.as_str()).to_owned()),
        };
        let Some(token) = cookie(&parts.headers, COOKIE).filter(|t| !t.is_empty()) else {
            return Err(login_required());
        };
        let Some(session) = state.store.live_console_session(&sha256(token.as_bytes()), now_micros()).await? else {
            return Err(login_required());
        };
        let csrf = hex::encode(csrf_mac(&token).finalize().into_bytes());
        Ok(ConsoleUser {
            user_id: session.user_id,
            scopes: Scopes::of_role(&session.role),
            name: session.username,
            role: session.role,
            csrf,
            token,
        })
    }
}

/// A console form post: a live session, the session's CSRF token, then the form's fields as
/// `T` (url-encoded; unknown fields ignored, the token among them).
#[derive(Debug)]
pub struct CsrfForm<T>(pub ConsoleUser, pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<SharedState> for CsrfForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ConsoleError::BadRequest(format!("The form is over {MAX_FORM_BYTES} bytes.")))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let submitted = fields.iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.as_str());
        if !submitted.is_some_and(|token| user.csrf_matches(token)) {
            tracing::warn!(user = %user.name, path = %parts.uri.path(), "console form refused: CSRF token missing or wrong");
            return Err(ConsoleError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
        Ok(CsrfForm(user, form))
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The login page, with a fresh double-submitted CSRF value.
fn login_form(status: StatusCode, headers: &HeaderMap, next: &str, username: &str, error: Option<String>) -> Response {
    let csrf = hex::encode(rand::random::<[u8; 20]>());
    let page = LoginPage { csrf: &csrf, next, username, error };
    let mut response = match super::render(&page) {
        Ok(response) => response,
        Err(error) => return error.into_response(),
    };
    *response.status_mut() = status;
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, "/ui/login", 3600, over_https(headers)));
    response
}

/// `GET /ui/login`.
pub async fn login_page(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Response {
    login_form(StatusCode::OK, &headers, &safe_next(query.next.as_deref()), "", None)
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    next: Option<String>,
}

/// `POST /ui/login`: the API's password check and lock-out, then a session.
pub async fn login(State(state): State<SharedState>, request: Request) -> Result<Response, ConsoleError> {
    let client = crate::api::auth::client_address(request.extensions());
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| ConsoleError::BadRequest("The form is too large.".into()))?;
    let form: LoginForm = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let next = safe_next(form.next.as_deref());
    let double_submitted = cookie(&headers, LOGIN_COOKIE).is_some_and(|expected| {
        !expected.is_empty() && sha256(expected.as_bytes()) == sha256(form.csrf_token.as_bytes())
    });
    if !double_submitted {
        tracing::warn!(%client, "console login refused: CSRF value missing or wrong");
        return Err(ConsoleError::Csrf);
    }
    if form.username.is_empty() || form.password.is_empty() {
        let error = Some("Enter a user name and a password.".to_owned());
        return Ok(login_form(StatusCode::BAD_REQUEST, &headers, &next, &form.username, error));
    }
    let username = form.username.clone();
    let user = match crate::api::auth::check_password(&state, &username, form.password, client).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            let error = Some("Unable to log in with provided credentials.".to_owned());
            return Ok(login_form(StatusCode::UNAUTHORIZED, &headers, &next, &username, error));
        }
        Err(ApiError::Throttled(secs)) => {
            let error = Some(format!("Too many failed logins: try again in {secs} seconds."));
            let mut response = login_form(StatusCode::TOO_MANY_REQUESTS, &headers, &next, &username, error);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return Ok(response);
        }
        Err(ApiError::Store(error)) => return Err(ConsoleError::Store(error)),
        Err(other) => return Err(ConsoleError::Internal(other.to_string())),
    };
    let token = crate::auth::new_token();
    let now = now_micros();
    let ttl = crate::api::auth::ttl_micros(&state);
    state.store.create_console_session(user.id, &sha256(token.as_bytes()), now, now.saturating_add(ttl)).await?;
    tracing::info!(user = %user.username, "console session started");
    let secure = over_https(&headers);
    let mut response = Redirect::to(&next).into_response();
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, set_cookie(COOKIE, &token, "/ui", ttl / 1_000_000, secure));
    cookies.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", "/ui/login", 0, secure));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// `POST /ui/logout`: the session ends in the database, and the cookie in the browser.
pub async fn logout(
    headers: HeaderMap,
    State(state): State<SharedState>,
    form: CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    let CsrfForm(user, NoFields {}) = form;
    state.store.end_console_session(&sha256(user.token.as_bytes()), now_micros()).await?;
    tracing::info!(user = %user.name, "console session ended by logout");
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(COOKIE, "", "/ui", 0, over_https(&headers)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/ui/devices?state=online")), "/ui/devices?state=online");
        assert_eq!(safe_next(Some("/ui")), "/ui");
        for outside in ["//evil.example/ui/", "https://evil.example/", "/api/v1/users", "/uix", "/ui\\evil"] {
            assert_eq!(safe_next(Some(outside)), "/ui/", "{outside}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn https_is_read_from_the_proxy_headers() {
        let mut headers = HeaderMap::new();
        assert!(!over_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=10.0.0.1;proto=https;by=proxy"));
        assert!(over_https(&headers));
        let cookie = set_cookie(COOKIE, "t", "/ui", 60, true);
        let text = cookie.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui", "Max-Age=60"] {
            assert!(text.contains(part), "{text}");
        }
        assert!(!set_cookie(COOKIE, "t", "/ui", 60, false).to_str().unwrap().contains("Secure"));
    }
}
