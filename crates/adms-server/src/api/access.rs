//! Who may call a route, and the audit log of what they changed, applied to every API route
//! in one place: the only way to register a route that needs credentials is
//! [`ApiRoutes::scoped`], which takes the [`Scope`] the route requires, writes it into the
//! route's OpenAPI operations (`x-required-scope`), and wraps the route in [`require`]. Routes
//! without credentials (device protocol, logins, docs page) go through [`ApiRoutes::public`],
//! which refuses an operation whose `#[utoipa::path]` does not say `security(())`; and
//! [`super::openapi::finish`] refuses a document with an operation that needs credentials but
//! declares no scope. A handler's [`Authenticated`] is the principal [`require`] left in the
//! request, so a handler on an unscoped route cannot run.
//!
//! [`require`] authenticates (401 as before), refuses a principal without the scope (403, DRF's
//! body), and, for every method but GET/HEAD/OPTIONS, records an audit entry after the answer
//! with its status: the principal, the route template, the last path parameter as the target,
//! and the client address. A failed insert is logged, never answered: the audit log must not
//! take the API down with it.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use adms_store::{NewAuditEntry, now_micros};

use super::ApiError;
use super::auth::{self, Authenticated, Scope};
use super::openapi::operations_mut;
use crate::state::SharedState;

/// The OpenAPI extension naming an operation's scope.
pub const SCOPE_EXTENSION: &str = "x-required-scope";

/// A router being built: every route is either public or scoped.
pub struct ApiRoutes {
    router: OpenApiRouter<SharedState>,
    state: SharedState,
}

impl std::fmt::Debug for ApiRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiRoutes { .. }")
    }
}

impl ApiRoutes {
    pub fn new(router: OpenApiRouter<SharedState>, state: &SharedState) -> ApiRoutes {
        ApiRoutes { router, state: state.clone() }
    }

    /// A `routes!` group needing no credentials; each operation must say `security(())`.
    pub fn public(self, group: UtoipaMethodRouter<SharedState>) -> ApiRoutes {
        ApiRoutes { router: public(self.router, group), state: self.state }
    }

    /// A `routes!` group whose every operation requires `scope`.
    pub fn scoped(self, scope: Scope, mut group: UtoipaMethodRouter<SharedState>) -> ApiRoutes {
        one_path(&group);
        for item in group.1.paths.values_mut() {
            for (_, operation) in operations_mut(item) {
                operation
                    .extensions
                    .get_or_insert_with(Extensions::default)
                    .insert(SCOPE_EXTENSION.to_owned(), scope.as_str().into());
            }
        }
        let layer = axum::middleware::from_fn_with_state(
            self.state.clone(),
            move |State(state): State<SharedState>, request: Request, next: Next| require(scope, state, request, next),
        );
        group.2 = group.2.route_layer(layer);
        ApiRoutes { router: self.router.routes(group), state: self.state }
    }

    pub fn into_router(self) -> OpenApiRouter<SharedState> {
        self.router
    }
}

/// Adds a public `routes!` group (see [`ApiRoutes::public`]) to a router.
pub fn public<S: Send + Sync + Clone + 'static>(
    router: OpenApiRouter<S>,
    group: UtoipaMethodRouter<S>,
) -> OpenApiRouter<S> {
    one_path(&group);
    let mut paths = group.1.paths.clone();
    for (path, item) in paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            let waived =
                matches!(operation.security.as_deref(), Some([only]) if *only == SecurityRequirement::default());
            assert!(waived, "{method} {path}: a public route must say security(()); use ApiRoutes::scoped");
        }
    }
    router.routes(group)
}

/// utoipa-axum routes every handler of a group on every one of its paths, some of them
/// undocumented: one group, one path.
pub(crate) fn one_path<S>(group: &UtoipaMethodRouter<S>) {
    let paths: Vec<&String> = group.1.paths.keys().collect();
    assert_eq!(paths.len(), 1, "one routes! group must serve one path, got {paths:?}");
}

/// Authenticates, checks the scope, runs the route, and audits a state-changing request.
async fn require(scope: Scope, state: SharedState, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let principal = match auth::authenticate(&parts, &state).await {
        Ok(principal) => principal,
        // Unauthenticated requests are not audited: there is no actor, and failed logins are
        // logged (and throttled) by `auth`.
        Err(error) => return error.into_response(),
    };
    let audited = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let entry = if audited { Some(pending_entry(&mut parts, &state, &principal).await) } else { None };
    let response = if principal.scopes.allows(scope) {
        parts.extensions.insert(Authenticated(principal));
        next.run(Request::from_parts(parts, body)).await
    } else {
        tracing::warn!(actor = %principal.name, kind = principal.kind, scope = scope.as_str(), "request refused: scope missing");
        ApiError::Forbidden.into_response()
    };
    if let Some(mut entry) = entry {
        entry.status = Some(response.status().as_u16());
        // Awaited before answering, so a client that reads the log after its change sees it.
        if let Err(error) = state.store.record_audit(&entry).await {
            tracing::warn!(%error, route = %entry.route, actor = %entry.actor, "audit entry not written");
        }
    }
    response
}

/// The entry for this request, without its status.
async fn pending_entry(
    parts: &mut axum::http::request::Parts,
    state: &SharedState,
    principal: &auth::Principal,
) -> NewAuditEntry {
    let route =
        parts.extensions.get::<MatchedPath>().map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
    // The last path parameter names what the route acts on (`{sn}`, `{id}`, `{uid}`); a
    // create's new id is not known here, and reading the answer body for it is not cheap.
    let target = RawPathParams::from_request_parts(parts, state)
        .await
        .ok()
        .and_then(|params| params.iter().last().map(|(_, value)| value.to_owned()));
    NewAuditEntry {
        at: now_micros(),
        actor: principal.name.clone(),
        actor_kind: principal.kind,
        user_id: principal.user_id,
        token_id: principal.token_id,
        method: parts.method.as_str().to_owned(),
        route,
        target,
        status: None,
        address: Some(auth::client_address(&parts.extensions).to_string()),
    }
}
