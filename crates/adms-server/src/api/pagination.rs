//! DRF-style paging: `page` (1-based), `page_size` or `limit` (default 10, at most 999,999),
//! and the `{count, next, previous, msg, code, data}` envelope with absolute links built from
//! the request's own host, keeping every query parameter.

use std::convert::Infallible;
use std::ops::RangeInclusive;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use serde::Serialize;

use super::ApiError;
use super::request::FieldErrors;

pub const DEFAULT_PAGE_SIZE: i64 = 10;
pub const MAX_PAGE_SIZE: i64 = 999_999;

/// Query parameters in order, percent- and `+`-decoded, empty keys (`&&`) dropped.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> QueryParams {
        QueryParams(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Last non-empty value of `key` (Django's `QueryDict.get`), trimmed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, v)| k == key && !v.trim().is_empty()).map(|(_, v)| v.trim())
    }

    /// The parameters as a typed set (DRF's reading: each key's last non-empty value, trimmed;
    /// unknown keys ignored), so the type the OpenAPI document lists is the type the route
    /// reads. Query types hold text (`Option<String>`) and each route words its own errors; a
    /// type that does not fit is a 400 naming the parameter, never a panic.
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let mut last = serde_json::Map::new();
        for (key, _) in &self.0 {
            if let Some(value) = self.get(key) {
                last.insert(key.clone(), serde_json::Value::String(value.to_owned()));
            }
        }
        serde_json::from_value(serde_json::Value::Object(last))
            .map_err(|e| ApiError::BadRequest(serde_json::json!({ "non_field_errors": [e.to_string()] })))
    }

    /// `key` as a whole number; a value that is not one is a 400 naming the parameter.
    pub fn int(&self, key: &'static str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(serde_json::json!({ key: ["Enter a whole number."] }))),
        }
    }
}

impl QueryParams {
    /// `key` as an integer within `range`, or `default` when absent; a value that is not one is
    /// reported in `errors` (in DRF's words) and read as `None`.
    pub fn int_within(
        &self,
        key: &str,
        range: &RangeInclusive<i64>,
        default: Option<i64>,
        errors: &mut FieldErrors,
    ) -> Option<i64> {
        let Some(text) = self.get(key) else { return default };
        match text.parse::<i64>() {
            Ok(n) if range.contains(&n) => Some(n),
            Ok(_) => {
                errors.add(key, format!("Ensure this value is between {} and {}.", range.start(), range.end()));
                None
            }
            Err(_) => {
                errors.add(key, "A valid integer is required.");
                None
            }
        }
    }
}

/// A keyset page of the native lists, newest first: `limit` (1 to 500, default 100) and
/// `before` (an id: the rows older than it). A bad value is not answered here: it is left in
/// `errors`, for the route to answer with its own filters' errors in one 400.
#[derive(Debug)]
pub struct KeysetPage {
    pub params: QueryParams,
    pub limit: i64,
    pub before: Option<i64>,
    pub errors: FieldErrors,
}

pub const KEYSET_LIMIT: RangeInclusive<i64> = 1..=500;
pub const DEFAULT_KEYSET_LIMIT: i64 = 100;

impl KeysetPage {
    pub fn from_params(params: QueryParams) -> KeysetPage {
        let mut errors = FieldErrors::default();
        let limit = params.int_within("limit", &KEYSET_LIMIT, Some(DEFAULT_KEYSET_LIMIT), &mut errors);
        let before = params.int_within("before", &(1..=i64::MAX), None, &mut errors);
        KeysetPage { params, limit: limit.unwrap_or(DEFAULT_KEYSET_LIMIT), before, errors }
    }

    /// The `before` of the next page: the last row's id when the page is full, else `None`.
    pub fn next_before<T>(rows: &[T], limit: i64, id: impl Fn(&T) -> i64) -> Option<i64> {
        (rows.len() as i64 == limit).then(|| rows.last().map(id)).flatten()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for KeysetPage {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(KeysetPage::from_params(QueryParams::parse(parts.uri.query())))
    }
}

/// A requested page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub size: i64,
}

/// Paging of the ZKBio Time lists, as read from the query and as the document shows it.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page; a page past the end answers 404 `{"detail": "Invalid page."}`.
    #[param(value_type = Option<i64>, minimum = 1)]
    page: Option<String>,
    /// Records per page: default 10, at most 999,999.
    #[param(value_type = Option<i64>, minimum = 1)]
    page_size: Option<String>,
    /// Same as `page_size`.
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
}

impl PageRequest {
    pub fn from_params(params: &QueryParams) -> Result<PageRequest, ApiError> {
        let q: PageParams = params.read()?;
        let page = match q.page {
            None => 1,
            Some(p) => p.parse::<i64>().ok().filter(|p| *p >= 1).ok_or(ApiError::InvalidPage)?,
        };
        let size = q
            .page_size
            .or(q.limit)
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s >= 1)
            .map_or(DEFAULT_PAGE_SIZE, |s| s.min(MAX_PAGE_SIZE));
        Ok(PageRequest { page, size })
    }

    pub fn store_page(&self) -> adms_store::Page {
        adms_store::Page { offset: (self.page - 1).saturating_mul(self.size), limit: self.size }
    }

    /// A page past the end is DRF's 404 "Invalid page." (page 1 always exists).
    pub fn check(&self, count: i64) -> Result<(), ApiError> {
        if self.page > 1 && (self.page - 1).saturating_mul(self.size) >= count {
            return Err(ApiError::InvalidPage);
        }
        Ok(())
    }
}

/// A ZKBio Time list request: the query (filters and paging), and what the envelope's links
/// are built from (the request's host and path). A bad `page` is answered at once (404
/// "Invalid page."), before the route reads its filters.
#[derive(Debug)]
pub struct ListRequest {
    pub params: QueryParams,
    pub page: PageRequest,
    headers: HeaderMap,
    uri: Uri,
}

impl ListRequest {
    /// The rows of the requested page, as the store counts them.
    pub fn store_page(&self) -> adms_store::Page {
        self.page.store_page()
    }

    /// `data`, one page of `count` matches, in the envelope; a page past the end is a 404.
    pub fn envelope<T: Serialize>(&self, count: i64, data: Vec<T>) -> Result<Envelope<T>, ApiError> {
        self.page.check(count)?;
        Ok(envelope(&self.headers, &self.uri, &self.params, self.page, count, data))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let OriginalUri(uri) = match OriginalUri::from_request_parts(parts, state).await {
            Ok(uri) => uri,
            Err(never) => match never {},
        };
        let params = QueryParams::parse(parts.uri.query());
        let page = PageRequest::from_params(&params)?;
        Ok(ListRequest { params, page, headers: parts.headers.clone(), uri })
    }
}

/// The list envelope of ZKBio Time 9.x.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T: Serialize> {
    /// Matches in all pages.
    pub count: i64,
    /// Absolute URL of the next page, with the same query parameters.
    pub next: Option<String>,
    pub previous: Option<String>,
    /// Always `""`.
    pub msg: &'static str,
    /// Always 0.
    pub code: i32,
    pub data: Vec<T>,
}

fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or(v).trim());
    let scheme = header("x-forwarded-proto").filter(|s| *s == "http" || *s == "https").unwrap_or("http");
    let host = header("x-forwarded-host")
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}{}", uri.path_and_query().map_or("/", |p| p.path()))
}

fn link(base: &str, params: &QueryParams, page: Option<i64>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut placed = false;
    for (k, v) in &params.0 {
        if k == "page" {
            if let (Some(p), false) = (page, placed) {
                query.append_pair("page", &p.to_string());
                placed = true;
            }
            continue;
        }
        query.append_pair(k, v);
    }
    if let (Some(p), false) = (page, placed) {
        query.append_pair("page", &p.to_string());
    }
    let query = query.finish();
    if query.is_empty() { base.to_owned() } else { format!("{base}?{query}") }
}

pub fn envelope<T: Serialize>(
    headers: &HeaderMap,
    uri: &Uri,
    params: &QueryParams,
    page: PageRequest,
    count: i64,
    data: Vec<T>,
) -> Envelope<T> {
    let base = base_url(headers, uri);
    let next = (page.page.saturating_mul(page.size) < count).then(|| link(&base, params, Some(page.page + 1)));
    let previous = (page.page > 1).then(|| link(&base, params, (page.page > 2).then_some(page.page - 1)));
    Envelope { count, next, previous, msg: "", code: 0, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_parameters_and_drop_page_one() {
        let params = QueryParams::parse(Some("start_time=2026-01-01+08:00:00&&page=2&page_size=5"));
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "erp.local:8081".parse().unwrap());
        let uri: Uri = "/iclock/api/transactions/?x".parse().unwrap();
        let page = PageRequest::from_params(&params).unwrap();
        assert_eq!(page, PageRequest { page: 2, size: 5 });
        let e = envelope::<()>(&headers, &uri, &params, page, 11, vec![]);
        assert_eq!(
            e.next.as_deref(),
            Some(
                "http://erp.local:8081/iclock/api/transactions/?start_time=2026-01-01+08%3A00%3A00&page=3&page_size=5"
            )
        );
        assert_eq!(
            e.previous.as_deref(),
            Some("http://erp.local:8081/iclock/api/transactions/?start_time=2026-01-01+08%3A00%3A00&page_size=5")
        );
        let e = envelope::<()>(&headers, &uri, &params, PageRequest { page: 3, size: 5 }, 11, vec![]);
        assert_eq!(e.next, None);
        assert!(PageRequest::from_params(&QueryParams::parse(Some("page=x"))).is_err());
        assert_eq!(PageRequest::from_params(&QueryParams::parse(Some("limit=100000000"))).unwrap().size, MAX_PAGE_SIZE);
    }
}
