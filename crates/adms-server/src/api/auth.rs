//! Authentication as ZKBio Time clients expect it.
//!
//! - `POST /api-token-auth/` gives a session token (40 hex, valid `session_ttl_secs`, several per
//!   user, stored as a SHA-256 digest); `POST /jwt-api-token-auth/` gives an HS256 JWT with `exp`.
//!   Both accept JSON, form-encoded and multipart bodies.
//! - Every API route accepts `Authorization: Token|Bearer|JWT|Basic ...`, scheme in any case.
//!   Integration keys created with `adms-bridge token create` work as `Token`/`Bearer`.
//! - Wrong credentials: 400 with DRF's `non_field_errors` on login, 401 on data routes. An
//!   unknown (or disabled) user gets the same answer after the same work: the password is
//!   checked against a dummy hash made at start with the same parameters.
//! - Password checks are bounded and failures throttled per (username, client address) and per
//!   address (`throttle`): 429 with DRF's throttle body and `Retry-After`.
//! - Tokens end with the account state they were issued under: a JWT carries the account's
//!   `token_version` (claim `ver`) and is refused once the account is missing, disabled or at
//!   another version; session tokens are revoked by the store when the password changes or the
//!   account is disabled. The account state is cached for at most `USER_CACHE_TTL`. The state-free
//!   core (scopes, `AuthState`, hashing, the throttle) is `crate::auth`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use adms_store::{TokenKind, now_micros, sha256};

pub use crate::auth::throttle::RefusalReason;
pub use crate::auth::{
    AuthSetupError, AuthState, Principal, Scope, Scopes, USER_CACHE_TTL, hash_password, new_token, verify_password,
};
use crate::auth::{BasicEntry, lock};

use super::{ApiError, openapi};
use crate::state::SharedState;

/// Largest login body accepted.
const MAX_LOGIN_BODY: usize = 64 * 1024;
/// How long a verified Basic credential is remembered (argon2 is deliberately slow). A hit is
/// still checked against the account's current state (version, disabled).
const BASIC_CACHE_MICROS: i64 = 5 * 60 * 1_000_000;

/// Extractor: the request carries valid credentials, checked by the scope layer the route was
/// registered with ([`super::access`]), which leaves the principal in the request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    token_type: String,
    user_id: i64,
    username: String,
    email: String,
    exp: i64,
    iat: i64,
    orig_iat: i64,
    jti: String,
    /// The account's `token_version` when issued. JWTs from before versions existed have none,
    /// which reads as 0: valid until the account's first change.
    #[serde(default)]
    ver: i64,
}

/// Login credentials (JSON, form-encoded or multipart); numbers are read as text.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[schema(value_type = String, required = true, min_length = 1)]
    username: Option<Value>,
    #[schema(value_type = String, required = true, min_length = 1)]
    password: Option<Value>,
    /// Stands in for a missing `username` (BioTime Cloud clients); `company` is ignored.
    #[schema(value_type = Option<String>)]
    email: Option<Value>,
}

fn as_text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// Reads `username`/`password` from a JSON, form or multipart body. `email` stands in for a
/// missing `username` (BioTime Cloud clients); `company` is ignored.
async fn read_credentials(request: Request) -> Result<(String, String), ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body: LoginBody = if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::BadRequest(json!({ "detail": e.body_text() })))?;
        let mut body = LoginBody::default();
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field.text().await.unwrap_or_default();
            match name.as_str() {
                "username" => body.username = Some(Value::String(value)),
                "password" => body.password = Some(Value::String(value)),
                "email" => body.email = Some(Value::String(value)),
                _ => {}
            }
        }
        body
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BODY)
            .await
            .map_err(|_| ApiError::BadRequest(json!({ "detail": "Request body too large." })))?;
        let trimmed = bytes.trim_ascii_start();
        if content_type.contains("json") || trimmed.starts_with(b"{") {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") })))?
        } else {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
            let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| Value::String(v.clone()));
            LoginBody { username: get("username"), password: get("password"), email: get("email") }
        }
    };
    let username = as_text(body.username).or_else(|| as_text(body.email));
    let password = as_text(body.password);
    let mut missing = Map::new();
    if username.is_none() {
        missing.insert("username".into(), json!(["This field is required."]));
    }
    if password.is_none() {
        missing.insert("password".into(), json!(["This field is required."]));
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(ApiError::BadRequest(Value::Object(missing))),
    }
}

fn bad_login() -> ApiError {
    ApiError::BadRequest(json!({ "non_field_errors": ["Unable to log in with provided credentials."] }))
}

/// The client's address (from the accept loop); unspecified when the request did not come
/// through it (router tests).
pub(crate) fn client_address(extensions: &axum::http::Extensions) -> IpAddr {
    extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip())
}

/// A username as logged: clipped, and debug-quoted so it cannot forge log lines.
fn loggable(username: &str) -> String {
    let clipped: String = username.chars().take(64).collect();
    format!("{clipped:?}")
}

/// Checks a username and password from `client`; `None` when they do not match a usable
/// account. Throttled (429) before any work when the pair or the address failed too often;
/// unknown and disabled accounts are checked against the dummy hash, so every answer costs one
/// password check.
pub(crate) async fn check_password(
    state: &SharedState,
    username: &str,
    password: String,
    client: IpAddr,
) -> Result<Option<adms_store::ApiUser>, ApiError> {
    let guard = &state.auth.guard;
    let attempt = guard.admit(username, client, Instant::now()).map_err(|refusal| {
        tracing::debug!(username = %loggable(username), %client, "login throttled");
        ApiError::Throttled(refusal.retry_after_secs())
    })?;
    let user = state.store.user_by_name(username).await?.filter(|u| u.disabled_at.is_none());
    let permit = guard.hash_permit().await.map_err(|refusal| {
        debug_assert_eq!(refusal.reason, RefusalReason::Busy);
        tracing::warn!(username = %loggable(username), %client, "login refused: every password check slot busy");
        ApiError::Throttled(refusal.retry_after_secs())
    })?;
    let hash = user.as_ref().map_or_else(|| state.auth.dummy_hash.clone(), |u| u.password_hash.clone());
    let matches = guard
        .run_check(permit, move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match user {
        Some(user) if matches => {
            attempt.succeeded();
            Ok(Some(user))
        }
        _ => {
            let locked = attempt.failed();
            tracing::warn!(username = %loggable(username), %client, "login failed: wrong credentials");
            if locked {
                tracing::warn!(username = %loggable(username), %client, "login locked out for this user and address (or this address) until the window ends");
            }
            Ok(None)
        }
    }
}

/// Log in for a session token.
///
/// The token is valid for `session_ttl_secs` (8 h by default); send it as `Authorization:
/// Token <token>`.
#[utoipa::path(
    post,
    path = "/api-token-auth",
    tag = openapi::tag::AUTH,
    security(()),
    request_body(content(
        (LoginBody = "application/json"),
        (LoginBody = "application/x-www-form-urlencoded"),
        (LoginBody = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The session token.", body = openapi::TokenAnswer),
        (status = 400, description = "A field is missing, or `non_field_errors` when the credentials do not match.", body = openapi::ValidationErrors),
        (status = 429, description = "Too many failed logins for this user from this address, or from this address; or every password check busy. Retry after `Retry-After` seconds.", body = openapi::Detail, headers(("Retry-After" = u64, description = "Seconds."))),
    )
)]
pub async fn token_login(State(state): State<SharedState>, request: Request) -> Result<Json<Value>, ApiError> {
    let client = client_address(request.extensions());
    let (username, password) = read_credentials(request).await?;
    let user = check_password(&state, &username, password, client).await?.ok_or_else(bad_login)?;
    let token = new_token();
    let expires = now_micros().saturating_add(ttl_micros(&state));
    state
        .store
        .create_token(TokenKind::Session, Some(user.id), "login", &sha256(token.as_bytes()), Some(expires))
        .await?;
    tracing::info!(user = %user.username, "session token issued");
    Ok(Json(json!({ "token": token })))
}

pub(crate) fn ttl_micros(state: &SharedState) -> i64 {
    i64::try_from(state.config.login.session_ttl_secs).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
}

/// Log in for a JWT.
///
/// An HS256 JWT with `exp` (`session_ttl_secs` ahead); send it as `Authorization: JWT <token>`
/// or `Bearer <token>`.
#[utoipa::path(
    post,
    path = "/jwt-api-token-auth",
    tag = openapi::tag::AUTH,
    security(()),
    request_body(content(
        (LoginBody = "application/json"),
        (LoginBody = "application/x-www-form-urlencoded"),
        (LoginBody = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The JWT.", body = openapi::TokenAnswer),
        (status = 400, description = "A field is missing, or `non_field_errors` when the credentials do not match.", body = openapi::ValidationErrors),
        (status = 429, description = "Too many failed logins for this user from this address, or from this address; or every password check busy. Retry after `Retry-After` seconds.", body = openapi::Detail, headers(("Retry-After" = u64, description = "Seconds."))),
    )
)]
pub async fn jwt_login(State(state): State<SharedState>, request: Request) -> Result<Json<Value>, ApiError> {
    let client = client_address(request.extensions());
    let (username, password) = read_credentials(request).await?;
    let user = check_password(&state, &username, password, client).await?.ok_or_else(bad_login)?;
    let now = now_micros() / 1_000_000;
    let claims = Claims {
        token_type: "access".into(),
        user_id: user.id,
        username: user.username.clone(),
        email: String::new(),
        exp: now.saturating_add(ttl_micros(&state) / 1_000_000),
        iat: now,
        orig_iat: now,
        jti: hex::encode(rand::random::<[u8; 16]>()),
        ver: user.token_version,
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &state.auth.encoding)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(user = %user.username, "JWT issued");
    Ok(Json(json!({ "token": token })))
}

/// A JWT is valid when signed with the key, not expired, and its account exists, is enabled
/// and is still at the version the JWT carries (a password change or a disable moves it on).
/// Answers as djangorestframework-jwt does.
async fn verify_jwt(state: &SharedState, token: &str) -> Result<Principal, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<Claims>(token, &state.auth.decoding, &validation) {
        Ok(data) => data.claims,
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            return Err(ApiError::Unauthorized("Signature has expired."));
        }
        Err(_) => return Err(ApiError::Unauthorized("Error decoding signature.")),
    };
    match state.auth.live_user(&state.store, claims.user_id).await? {
        None => {
            tracing::warn!(user_id = claims.user_id, "JWT refused: no such account (signed with the server's key)");
            Err(ApiError::Unauthorized("Invalid signature."))
        }
        Some(user) if user.disabled => Err(ApiError::Unauthorized("User account is disabled.")),
        // Issued before the account's password changed: ended like a session token.
        Some(user) if user.token_version != claims.ver => Err(ApiError::Unauthorized("Signature has expired.")),
        Some(user) => Ok(Principal {
            user_id: Some(claims.user_id),
            scopes: Scopes::of_role(&user.role),
            name: user.username,
            token_id: None,
            kind: "jwt",
        }),
    }
}

async fn verify_token(state: &SharedState, token: &str) -> Result<Principal, ApiError> {
    if token.matches('.').count() == 2 {
        return verify_jwt(state, token).await;
    }
    // The store refuses tokens that are revoked, expired, or of a missing or disabled account.
    let now = now_micros();
    let row = state.store.live_token(&sha256(token.as_bytes()), now).await?;
    if let Some(t) = row.as_ref().filter(|t| t.kind == TokenKind::Integration)
        && let Err(error) = state.store.touch_token(t.id, t.last_used_at, now).await
    {
        // Only bookkeeping: the request goes on.
        tracing::warn!(token_id = t.id, %error, "the key's last use was not recorded");
    }
    match row {
        Some(t) if t.kind == TokenKind::Session => {
            let user = match t.user_id {
                Some(id) => state.auth.live_user(&state.store, id).await?,
                None => None,
            };
            match user {
                Some(user) if !user.disabled => Ok(Principal {
                    user_id: t.user_id,
                    scopes: Scopes::of_role(&user.role),
                    name: user.username,
                    token_id: Some(t.id),
                    kind: "session",
                }),
                _ => Err(ApiError::Unauthorized("Invalid token.")),
            }
        }
        Some(t) => Ok(Principal {
            user_id: None,
            name: t.name,
            token_id: Some(t.id),
            kind: "integration",
            scopes: Scopes::parse_list(&t.scopes),
        }),
        None => Err(ApiError::Unauthorized("Invalid token.")),
    }
}

/// Basic credentials: checked (and throttled) as a login, then remembered for
/// `BASIC_CACHE_MICROS` under a digest of the header; a remembered credential still needs its
/// account enabled and at the same version, so a password change ends it here too.
async fn verify_basic(state: &SharedState, encoded: &str, client: IpAddr) -> Result<Principal, ApiError> {
    let cache_key = sha256(format!("basic:{encoded}").as_bytes());
    let now = now_micros();
    let cached = lock(&state.auth.basic_cache).get(&cache_key).filter(|e| e.until > now).cloned();
    if let Some(entry) = cached
        && let Some(id) = entry.principal.user_id
    {
        match state.auth.live_user(&state.store, id).await? {
            Some(user) if !user.disabled && user.token_version == entry.token_version => {
                // The role may have changed since the credential was remembered.
                return Ok(Principal { scopes: Scopes::of_role(&user.role), ..entry.principal });
            }
            _ => {
                lock(&state.auth.basic_cache).remove(&cache_key);
            }
        }
    }
    let invalid = || ApiError::Unauthorized("Invalid username/password.");
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
    let user = check_password(state, username, password.to_owned(), client).await?.ok_or_else(invalid)?;
    let principal = Principal {
        user_id: Some(user.id),
        scopes: Scopes::of_role(&user.role),
        name: user.username,
        token_id: None,
        kind: "basic",
    };
    let mut cache = lock(&state.auth.basic_cache);
    if cache.len() > 10_000 {
        cache.retain(|_, e| e.until > now);
    }
    cache.insert(
        cache_key,
        BasicEntry { principal: principal.clone(), token_version: user.token_version, until: now + BASIC_CACHE_MICROS },
    );
    Ok(principal)
}

impl FromRequestParts<SharedState> for Authenticated {
    type Rejection = ApiError;

    /// The principal the route's scope layer authenticated. A handler on a route registered
    /// without a scope gets none: refused, so a missing declaration fails loudly, not open.
    async fn from_request_parts(parts: &mut Parts, _state: &SharedState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(format!("{} has no scope layer", parts.uri.path())))
    }
}

/// Checks the request's credentials.
pub async fn authenticate(parts: &Parts, state: &SharedState) -> Result<Principal, ApiError> {
    let not_provided = ApiError::Unauthorized("Authentication credentials were not provided.");
    let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(not_provided);
    };
    let (scheme, credentials) =
        value.trim().split_once(' ').ok_or(ApiError::Unauthorized("Invalid token header. No credentials provided."))?;
    let credentials = credentials.trim();
    let principal = match scheme.to_ascii_lowercase().as_str() {
        "token" | "bearer" => verify_token(state, credentials).await?,
        "jwt" => verify_jwt(state, credentials).await?,
        "basic" => verify_basic(state, credentials, client_address(&parts.extensions)).await?,
        _ => return Err(not_provided),
    };
    Ok(principal)
}
