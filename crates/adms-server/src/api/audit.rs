//! `GET /api/v1/audit-log`: what was changed, by whom, from where (admin scope only). Entries
//! are written by `access` (API requests) and by the CLI.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::json;

use adms_store::events::rfc3339_micros;
use adms_store::{AuditEntry, AuditFilter};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams};
use super::{ApiError, openapi};
use crate::state::SharedState;

/// One audit entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// RFC 3339 UTC, µs.
    pub at: String,
    /// The user or integration key name, or `cli`.
    pub actor: String,
    /// `session`, `jwt`, `basic`, `integration` or `cli`.
    pub actor_kind: String,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    /// The HTTP method, or `CLI`.
    pub method: String,
    /// The route template (`/api/v1/devices/{sn}/commands`) or the CLI command (`user create`).
    pub route: String,
    /// The id the path names, or the CLI command's argument.
    pub target: Option<String>,
    /// The HTTP status answered (403 for a refused scope); none for the CLI.
    pub status: Option<i64>,
    /// The client address; none for the CLI.
    pub address: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> AuditView {
        AuditView {
            id: e.id,
            at: rfc3339_micros(e.at),
            actor: e.actor,
            actor_kind: e.actor_kind,
            user_id: e.user_id,
            token_id: e.token_id,
            method: e.method,
            route: e.route,
            target: e.target,
            status: e.status,
            address: e.address,
        }
    }
}

/// List audit entries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit-log",
    tag = openapi::tag::USERS,
    params(
        ("user" = Option<String>, Query, description = "Only this actor (user or key name, or `cli`)."),
        ("since" = Option<String>, Query, description = "Only entries at or after this RFC 3339 instant."),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of entries.", body = Envelope<AuditView>),
        (status = 400, description = "`since` is not an RFC 3339 instant.", body = openapi::ValidationErrors),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<AuditView>>, ApiError> {
    let params = &list.params;
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        Some(text) => Some(
            text.parse::<jiff::Timestamp>()
                .map_err(|_| ApiError::BadRequest(json!({ "since": ["Not an RFC 3339 instant."] })))?
                .as_microsecond(),
        ),
        None => None,
    };
    let filter = AuditFilter { actor: params.get("user").filter(|s| !s.is_empty()).map(str::to_owned), since };
    let (count, rows) = state.store.list_audit(&filter, list.store_page()).await?;
    let data = rows.into_iter().map(AuditView::from).collect();
    Ok(Json(list.envelope(count, data)?))
}
