//! Integration keys (API keys): created (the key shown once, only its digest stored), listed,
//! revoked. Admin only, as users and the audit log are on the API. The same rules as `adms-bridge
//! token create`: names unique among the keys in force, no scope means `read`.
//!
//! A creation answers with the page itself (200), not a redirect: the key exists only in that
//! answer (sent `no-store`), and a redirect would lose it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use adms_store::{StoreError, now_micros, sha256};

use super::pages::Layout;
use super::session::{ConsoleUser, CsrfForm, NoFields};
use super::{ConsoleError, render};
use crate::auth::{Scope, Scopes};
use crate::state::SharedState;

/// The longest lifetime a key may be given here: ten years, as the CLI's.
const MAX_DAYS: i64 = 3650;

struct KeyLine {
    id: i64,
    name: String,
    state: &'static str,
    scopes: String,
    created: String,
    last_used: String,
    expires: String,
}

struct Created {
    name: String,
    token: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    layout: Layout,
    nav: &'static str,
    keys: Vec<KeyLine>,
    scopes: Vec<&'static str>,
    created: Option<Created>,
    error: Option<String>,
}

async fn keys_page(
    state: &SharedState,
    user: &ConsoleUser,
    created: Option<Created>,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let zone = &state.display_zone;
    let time = |t: Option<i64>| t.map_or_else(|| "never".to_owned(), |t| zone.format_micros(t));
    let now = now_micros();
    // Keys are a handful per site: the whole list.
    let keys = state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .rev()
        .map(|t| KeyLine {
            id: t.id,
            state: match (t.revoked_at, t.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(at)) if at <= now => "expired",
                _ => "active",
            },
            name: t.name,
            scopes: t.scopes,
            created: zone.format_micros(t.created_at),
            last_used: time(t.last_used_at),
            expires: time(t.expires_at),
        })
        .collect();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut response = render(&KeysPage {
        layout: Layout::of(user),
        nav: "keys",
        keys,
        scopes: Scope::ALL.into_iter().map(Scope::as_str).collect(),
        created,
        error,
    })?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /ui/keys`.
pub async fn keys(State(state): State<SharedState>, user: ConsoleUser) -> Result<Response, ConsoleError> {
    user.may(Scope::Admin)?;
    keys_page(&state, &user, None, None).await
}

/// `POST /ui/keys`. The fields are read as pairs: `scope` repeats.
pub async fn create(
    State(state): State<SharedState>,
    CsrfForm(user, fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::Admin)?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or_default();
    let name = field("name").to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return keys_page(&state, &user, None, Some("A name is 1 to 100 printable characters.".into())).await;
    }
    let mut scopes = Vec::new();
    for (_, word) in fields.iter().filter(|(k, _)| k == "scope") {
        match Scope::parse(word) {
            Some(scope) => scopes.push(scope),
            None => return keys_page(&state, &user, None, Some(format!("Unknown scope \"{word}\"."))).await,
        }
    }
    // Least privilege: a key given no scope may only read.
    if scopes.is_empty() {
        scopes.push(Scope::Read);
    }
    let expires_at = match field("expires_in_days") {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(days) if (1..=MAX_DAYS).contains(&days) => Some(now_micros().saturating_add(days * 86_400_000_000)),
            _ => return keys_page(&state, &user, None, Some(format!("Days: 1 to {MAX_DAYS}, or empty."))).await,
        },
    };
    let token = crate::auth::new_token();
    let scopes = Scopes::of(&scopes).to_list();
    match state.store.create_integration_token(&name, &sha256(token.as_bytes()), &scopes, expires_at).await {
        Ok(id) => {
            tracing::info!(id, key = %name, by = %user.name, scopes = %scopes, "integration key created from the console");
            super::actions::audit(&state, &user, "/ui/keys", &name).await;
            keys_page(&state, &user, Some(Created { name, token }), None).await
        }
        Err(StoreError::Conflict(_)) => {
            let error = format!("A key in force is already named \"{name}\": choose another name, or revoke it first.");
            keys_page(&state, &user, None, Some(error)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /ui/keys/{id}/revoke`.
pub async fn revoke(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::Admin)?;
    // By id only: a name that is a number would otherwise be read as one.
    let id: i64 = id.parse().map_err(|_| ConsoleError::NotFound)?;
    if state.store.revoke_token(&id.to_string()).await? == 0 {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(id, by = %user.name, "integration key revoked from the console");
    super::actions::audit(&state, &user, "/ui/keys/{id}/revoke", &id.to_string()).await;
    Ok(Redirect::to("/ui/keys").into_response())
}
