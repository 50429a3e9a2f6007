//! How a CVSecurity request is read: parameters from the query string, a form-encoded body or
//! a JSON body, as real clients send them (`cvsecurity_api.md` §3.4: the live server reads
//! "body" parameters from the query, some clients post forms, others JSON, some send
//! `application/json` on an empty body); the query wins over the body. Unknown parameters
//! (cache busters such as `_t`) are ignored. The `access_token` (or `acc_token`, the manual's
//! spelling on two endpoints) is checked here, so a handler never runs unauthenticated.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use serde_json::Value;

use adms_store::cvsecurity::CvSecurityClient;
use adms_store::{NewAuditEntry, now_micros, sha256};

use super::envelope::CvError;
use crate::state::SharedState;

/// Largest body read (CVSecurity bodies are small: ids, pins; photos are not served here).
const MAX_BODY: usize = 256 * 1024;
/// Largest page of a transaction list (`-91` beyond it, per the reference).
pub const MAX_TRANSACTION_PAGE: i64 = 1000;
/// Largest page of any other list: the reference sets no bound there, but a page is never
/// unbounded (`-91` beyond it too).
pub const MAX_OTHER_PAGE: i64 = 10_000;

/// Items a comma-separated parameter may list.
pub const MAX_LIST_ITEMS: usize = 1000;

/// The request's parameters, query first, then the body's.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameter's first value, trimmed; an empty value is no value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim()).filter(|value| !value.is_empty())
    }

    /// Whether the parameter was sent at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }

    /// A comma-separated list (`pins`, `levelIds`, `deptCodes`), without empty items; each item
    /// costs a look-up, so a list is at most [`MAX_LIST_ITEMS`] long.
    pub fn list(&self, name: &str) -> Result<Vec<String>, CvError> {
        let items: Vec<String> = self
            .get(name)
            .map(|text| text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        if items.len() > MAX_LIST_ITEMS {
            return Err(CvError::Other(format!("{name} lists more than {MAX_LIST_ITEMS} items")));
        }
        Ok(items)
    }

    /// The page asked for: `pageNo` (from 1) and `pageSize`, both required and positive
    /// (`-92` missing, `-90` not a positive number, `-91` over `max`).
    pub fn page(&self, max: i64) -> Result<PageRequest, CvError> {
        let (Some(no), Some(size)) = (self.get("pageNo"), self.get("pageSize")) else {
            return Err(CvError::PageMissing);
        };
        let (Ok(no), Ok(size)) = (no.parse::<i64>(), size.parse::<i64>()) else {
            return Err(CvError::PageNotPositive);
        };
        if no <= 0 || size <= 0 {
            return Err(CvError::PageNotPositive);
        }
        if size > max {
            return Err(CvError::PageTooLarge(max));
        }
        Ok(PageRequest { page_no: no, page_size: size })
    }

    /// As [`Params::page`] where the reference marks paging optional (`door/list`,
    /// `reader/accList`): without both parameters, the first `max` rows.
    pub fn page_or_all(&self, max: i64) -> Result<PageRequest, CvError> {
        match (self.get("pageNo"), self.get("pageSize")) {
            (None, None) => Ok(PageRequest { page_no: 1, page_size: max }),
            _ => self.page(max),
        }
    }

    fn push_json(&mut self, object: &serde_json::Map<String, Value>) {
        for (key, value) in object {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                // `pins: ["1", "2"]` reads as the comma list the query form sends.
                Value::Array(items) => items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(text) => Some(text.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Null | Value::Object(_) => continue,
            };
            self.0.push((key.clone(), text));
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page_no: i64,
    pub page_size: i64,
}

impl PageRequest {
    pub fn offset(self) -> i64 {
        (self.page_no - 1).saturating_mul(self.page_size)
    }
}

/// An authenticated CVSecurity request: its parameters and its API client.
#[derive(Debug)]
pub struct CvRequest {
    pub params: Params,
    pub client: CvSecurityClient,
    method: Method,
    path: String,
    address: String,
}

impl CvRequest {
    /// Refuses a write by a client that may only read.
    pub fn require_write(&self) -> Result<(), CvError> {
        if self.client.may_write { Ok(()) } else { Err(CvError::ReadOnly) }
    }

    /// Writes the audit entry of a write, after it ran: the client (as `cvsecurity:<name>`;
    /// the audit log's actor kinds predate these clients, so the kind is `integration`), the
    /// path, what it acted on, and 200 for a success or 400 for a refusal (every envelope is
    /// HTTP 200; its code is in the server's log).
    pub async fn audit(&self, state: &SharedState, target: &str, succeeded: bool) {
        let entry = NewAuditEntry {
            at: now_micros(),
            actor: format!("cvsecurity:{}", self.client.name),
            actor_kind: "integration",
            user_id: None,
            token_id: None,
            method: self.method.as_str().to_owned(),
            route: self.path.clone(),
            target: Some(target.to_owned()),
            status: Some(if succeeded { 200 } else { 400 }),
            address: Some(self.address.clone()),
        };
        if let Err(error) = state.store.record_audit(&entry).await {
            tracing::warn!(%error, route = %entry.route, actor = %entry.actor, "audit entry not written");
        }
    }
}

impl FromRequest<SharedState> for CvRequest {
    type Rejection = CvError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let address = crate::api::auth::client_address(request.extensions()).to_string();
        let mut params = Params::default();
        if let Some(query) = request.uri().query() {
            params.0.extend(form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())));
        }
        let json_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        let limit = MAX_BODY.min(state.config.http.max_body_bytes);
        let body = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| CvError::BodyTooLarge(limit))?;
        let body = body.trim_ascii();
        if body.starts_with(b"{") || body.starts_with(b"[") {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| CvError::Other(format!("the JSON body does not parse: {e}")))?;
            // An array body (`addLevel`-style) carries no named parameters.
            if let Value::Object(object) = &value {
                params.push_json(object);
            }
        } else if !body.is_empty() && !json_type {
            params.0.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
        }
        let token = params.get("access_token").or_else(|| params.get("acc_token")).ok_or(CvError::Unauthenticated)?;
        let client =
            state.store.live_cvsecurity_client(&sha256(token.as_bytes())).await?.ok_or(CvError::Unauthenticated)?;
        let now = now_micros();
        if let Err(error) = state.store.touch_cvsecurity_client(client.id, client.last_used_at, now).await {
            // Only bookkeeping: the request goes on.
            tracing::warn!(client = client.id, %error, "the CVSecurity client's last use was not recorded");
        }
        Ok(CvRequest { params, client, method, path, address })
    }
}
