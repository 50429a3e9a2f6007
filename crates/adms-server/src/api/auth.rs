//! Authentication as ZKBio Time clients expect it.
//!
//! - `POST /api-token-auth/` gives a session token (40 hex, valid `session_ttl_secs`, several per
//!   user, stored as a SHA-256 digest); `POST /jwt-api-token-auth/` gives an HS256 JWT with `exp`.
//!   Both accept JSON, form-encoded and multipart bodies.
//! - Every API route accepts `Authorization: Token|Bearer|JWT|Basic ...`, scheme in any case.
//!   Integration keys created with `adms-bridge token create` work as `Token`/`Bearer`.
//! - Wrong credentials: 400 with DRF's `non_field_errors` on login, 401 on data routes.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use adms_store::{Store, StoreError, TokenKind, now_micros, sha256};

use super::{ApiError, openapi};
use crate::app::SharedState;

/// Largest login body accepted.
const MAX_LOGIN_BODY: usize = 64 * 1024;
/// How long a verified Basic credential is remembered (argon2 is deliberately slow).
const BASIC_CACHE_MICROS: i64 = 5 * 60 * 1_000_000;

/// Who made an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Option<i64>,
    pub name: String,
}

/// Extractor: the request carries valid credentials.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// Keys and caches for authentication.
pub struct AuthState {
    encoding: EncodingKey,
    decoding: DecodingKey,
    basic_cache: Mutex<HashMap<Vec<u8>, (Principal, i64)>>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthState { .. }")
    }
}

impl AuthState {
    /// Loads the JWT signing key shared by every replica (created on first start).
    pub async fn load(store: &Store) -> Result<AuthState, StoreError> {
        let key = store.shared_secret("jwt_hs256_key", || rand::random::<[u8; 32]>().to_vec()).await?;
        Ok(AuthState {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            basic_cache: Mutex::new(HashMap::new()),
        })
    }
}

/// Hashes a password for storage (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A new random token (40 hex characters, the shape ZKBio Time clients store).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

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

/// Checks a username and password; `None` when they do not match an account.
async fn check_password(
    store: &Store,
    username: &str,
    password: String,
) -> Result<Option<adms_store::ApiUser>, ApiError> {
    let Some(user) = store.user_by_name(username).await? else {
        return Ok(None);
    };
    let hash = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(ok.then_some(user))
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
    )
)]
pub async fn token_login(State(state): State<SharedState>, request: Request) -> Result<Json<Value>, ApiError> {
    let (username, password) = read_credentials(request).await?;
    let user = check_password(&state.store, &username, password).await?.ok_or_else(bad_login)?;
    let token = new_token();
    let expires = now_micros().saturating_add(ttl_micros(&state));
    state
        .store
        .create_token(TokenKind::Session, Some(user.id), "login", &sha256(token.as_bytes()), Some(expires))
        .await?;
    tracing::info!(user = %user.username, "session token issued");
    Ok(Json(json!({ "token": token })))
}

fn ttl_micros(state: &SharedState) -> i64 {
    i64::try_from(state.config.session_ttl_secs).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
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
    )
)]
pub async fn jwt_login(State(state): State<SharedState>, request: Request) -> Result<Json<Value>, ApiError> {
    let (username, password) = read_credentials(request).await?;
    let user = check_password(&state.store, &username, password).await?.ok_or_else(bad_login)?;
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
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &state.auth.encoding)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(user = %user.username, "JWT issued");
    Ok(Json(json!({ "token": token })))
}

fn verify_jwt(state: &SharedState, token: &str) -> Result<Principal, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    match jsonwebtoken::decode::<Claims>(token, &state.auth.decoding, &validation) {
        Ok(data) => Ok(Principal { user_id: Some(data.claims.user_id), name: data.claims.username }),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            Err(ApiError::Unauthorized("Signature has expired."))
        }
        Err(_) => Err(ApiError::Unauthorized("Error decoding signature.")),
    }
}

async fn verify_token(state: &SharedState, token: &str) -> Result<Principal, ApiError> {
    if token.matches('.').count() == 2 {
        return verify_jwt(state, token);
    }
    let row = state.store.live_token(&sha256(token.as_bytes()), now_micros()).await?;
    match row {
        Some(t) if t.kind == "session" => {
            let name = match t.user_id {
                Some(id) => state.store.user_by_id(id).await?.map_or_else(|| "unknown".into(), |u| u.username),
                None => "unknown".into(),
            };
            Ok(Principal { user_id: t.user_id, name })
        }
        Some(t) => Ok(Principal { user_id: None, name: t.name }),
        None => Err(ApiError::Unauthorized("Invalid token.")),
    }
}

async fn verify_basic(state: &SharedState, encoded: &str) -> Result<Principal, ApiError> {
    let cache_key = sha256(format!("basic:{encoded}").as_bytes());
    let now = now_micros();
    if let Some((principal, until)) = state.auth.basic_cache.lock().unwrap_or_else(|p| p.into_inner()).get(&cache_key)
        && *until > now
    {
        return Ok(principal.clone());
    }
    let invalid = || ApiError::Unauthorized("Invalid username/password.");
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
    let user = check_password(&state.store, username, password.to_owned()).await?.ok_or_else(invalid)?;
    let principal = Principal { user_id: Some(user.id), name: user.username };
    let mut cache = state.auth.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() > 10_000 {
        cache.retain(|_, (_, until)| *until > now);
    }
    cache.insert(cache_key, (principal.clone(), now + BASIC_CACHE_MICROS));
    Ok(principal)
}

impl FromRequestParts<SharedState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let not_provided = ApiError::Unauthorized("Authentication credentials were not provided.");
        let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Err(not_provided);
        };
        let (scheme, credentials) = value
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthorized("Invalid token header. No credentials provided."))?;
        let credentials = credentials.trim();
        let principal = match scheme.to_ascii_lowercase().as_str() {
            "token" | "bearer" => verify_token(state, credentials).await?,
            "jwt" => verify_jwt(state, credentials)?,
            "basic" => verify_basic(state, credentials).await?,
            _ => return Err(not_provided),
        };
        Ok(Authenticated(principal))
    }
}
