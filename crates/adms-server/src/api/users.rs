//! `/api/v1/users`: API accounts and their roles (admin scope only).
//!
//! Passwords are argon2-hashed on the blocking pool (as `hash_password` is slow by design).
//! A new password or a disable ends the account's sessions and JWTs (the store moves its
//! `token_version` on and revokes its sessions in the same transaction); a change that would
//! leave no enabled admin answers 409.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use adms_store::events::rfc3339_micros;
use adms_store::{ApiUser, LAST_ADMIN, ROLES, StoreError, UserChange};

use super::auth::{Authenticated, hash_password};
use super::pagination::{Envelope, ListRequest, PageParams};
use super::request::rules::{drf_boolean, fail};
use super::request::{Bool, DrfBody, Field, FieldErrors, printable};
use super::{ApiError, openapi, parse_id};
use crate::state::SharedState;

/// Longest user name (Django's `username` limit).
const MAX_USERNAME: usize = 150;
/// Password length bounds: long enough to resist guessing, short enough that hashing stays cheap.
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

/// An API account as the API shows it (never its hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    pub disabled: bool,
    /// RFC 3339 UTC, when disabled.
    pub disabled_at: Option<String>,
    /// Made by `ADMS_ADMIN_USER` at start (its password follows the configuration).
    pub bootstrap: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<ApiUser> for UserView {
    fn from(u: ApiUser) -> UserView {
        UserView {
            id: u.id,
            username: u.username,
            role: u.role,
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at.map(rfc3339_micros),
            bootstrap: u.bootstrap,
            created_at: rfc3339_micros(u.created_at),
        }
    }
}

/// `{username, password, role}` for a new account.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct NewUser {
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 150, required = true)]
    #[garde(custom(username_rule))]
    username: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, min_length = 8, max_length = 1024, required = true)]
    #[garde(custom(required_given), custom(password_rule))]
    password: Field<String>,
    /// `admin`, `operator` or `viewer`.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    #[garde(custom(required_given), custom(role_rule))]
    role: Field<String>,
}

/// `{role?, password?, disabled?}`: what to change.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct UserPatch {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[garde(custom(role_rule))]
    role: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 8, max_length = 1024)]
    #[garde(custom(password_rule))]
    password: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    #[garde(custom(drf_boolean))]
    disabled: Field<Bool>,
}

/// Given, and not `null` (which these bodies read as not given).
fn required_given<T, C>(field: &Field<T>, _: &C) -> garde::Result {
    if matches!(field, Field::Absent | Field::Null) { fail("This field is required.") } else { Ok(()) }
}

/// The name as stored: trimmed.
fn username(field: &Field<String>) -> Option<&str> {
    field.given().map(|name| name.trim())
}

fn username_rule<C>(field: &Field<String>, _: &C) -> garde::Result {
    match username(field) {
        None => fail("This field is required."),
        Some(name) if name.is_empty() || name.chars().count() > MAX_USERNAME || !printable(name) => {
            fail(format!("1 to {MAX_USERNAME} printable characters."))
        }
        Some(_) => Ok(()),
    }
}

fn role_rule<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(role) if ROLES.contains(&role.as_str()) => Ok(()),
        Field::Given(role) => fail(format!("\"{role}\" is not a valid choice.")),
        Field::Invalid(_) => fail("\"\" is not a valid choice."),
    }
}

/// A password exactly as given (never trimmed: spaces are part of it).
fn password_rule<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(p) if (MIN_PASSWORD..=MAX_PASSWORD).contains(&p.chars().count()) => Ok(()),
        Field::Given(_) => fail(format!("Between {MIN_PASSWORD} and {MAX_PASSWORD} characters.")),
        Field::Invalid(_) => fail("Not a valid string."),
    }
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)
}

fn conflict(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict(_) => ApiError::Conflict(LAST_ADMIN),
        other => ApiError::Store(other),
    }
}

/// List API accounts.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = openapi::tag::USERS,
    params(PageParams),
    responses(
        (status = 200, description = "One page of accounts, by id.", body = Envelope<UserView>),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<UserView>>, ApiError> {
    let _params = &list.params;
    // A handful of accounts: paged in memory.
    let users = state.store.list_users().await?;
    let count = i64::try_from(users.len()).unwrap_or(i64::MAX);
    let window = list.store_page();
    let data = users
        .into_iter()
        .skip(usize::try_from(window.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(window.limit).unwrap_or(usize::MAX))
        .map(UserView::from)
        .collect();
    Ok(Json(list.envelope(count, data)?))
}

/// Create an API account.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = openapi::tag::USERS,
    request_body = NewUser,
    responses(
        (status = 201, description = "The account.", body = UserView),
        (status = 400, description = "A field is missing or invalid, or the name is taken.", body = openapi::ValidationErrors),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    FieldErrors::of(&body, &()).finish()?;
    let (Some(username), Field::Given(password), Field::Given(role)) =
        (username(&body.username), body.password, body.role)
    else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let hashed = hash(password).await?;
    let user =
        state.store.create_user(username, &hashed, &role).await?.ok_or_else(|| {
            ApiError::BadRequest(json!({ "username": ["A user with that username already exists."] }))
        })?;
    tracing::info!(user = %user.username, role = %user.role, by = %who.name, "API account created");
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Get one API account.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = openapi::tag::USERS,
    params(("id" = i64, Path, description = "The account id.")),
    responses(
        (status = 200, description = "The account.", body = UserView),
        (status = 404, description = "No such account.", body = openapi::Detail),
    )
)]
pub async fn detail(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.store.user_by_id(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(user.into()))
}

/// Change an API account's role, password or disabled state.
///
/// A new password or `disabled: true` ends the account's sessions and JWTs.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = openapi::tag::USERS,
    params(("id" = i64, Path, description = "The account id.")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The account as changed.", body = UserView),
        (status = 400, description = "A field is invalid.", body = openapi::ValidationErrors),
        (status = 404, description = "No such account.", body = openapi::Detail),
        (status = 409, description = "No enabled admin would remain.", body = openapi::Detail),
    )
)]
pub async fn update(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    DrfBody(body): DrfBody<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let id = parse_id(&id)?;
    FieldErrors::of(&body, &()).finish()?;
    let (role, password) = (body.role.given().cloned(), body.password.given().cloned());
    let disabled = body.disabled.given().map(|Bool(disabled)| *disabled);
    let password_hash = match password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let change = UserChange { role, password_hash, disabled };
    let user = state.store.update_user(id, &change).await.map_err(conflict)?.ok_or(ApiError::NotFound)?;
    // This replica sees the change at once; others within the account cache's lifetime.
    state.auth.forget_user(id);
    tracing::info!(user = %user.username, role = %user.role, disabled = user.disabled_at.is_some(), by = %who.name, "API account changed");
    Ok(Json(user.into()))
}

/// Delete an API account (and its session tokens).
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    tag = openapi::tag::USERS,
    params(("id" = i64, Path, description = "The account id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such account.", body = openapi::Detail),
        (status = 409, description = "It is the last enabled admin.", body = openapi::Detail),
    )
)]
pub async fn delete(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    if !state.store.delete_user(id).await.map_err(conflict)? {
        return Err(ApiError::NotFound);
    }
    state.auth.forget_user(id);
    tracing::info!(user_id = id, by = %who.name, "API account deleted");
    Ok(StatusCode::NO_CONTENT)
}
