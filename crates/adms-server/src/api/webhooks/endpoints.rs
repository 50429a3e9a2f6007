//! `/api/v1/webhooks/endpoints`: create, list, change, pause, delete, rotate the secret, and
//! replay punches to one endpoint.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use adms_store::events::rfc3339_micros;
use adms_store::webhook_queries::ReplayOutcome;
use adms_store::webhooks::EndpointSettings;
use adms_webhooks::AddressPolicy;

use super::views::{CreatedEndpoint, DataList, EndpointView, ReplayAnswer, RotatedSecret};
use super::{EventType, EventTypes};
use crate::api::auth::Authenticated;
use crate::api::request::rules::{boolean, integer_between, max_chars, required, string, string_or_null};
use crate::api::request::{Field, JsonObject};
use crate::api::transactions::parse_filter_time;
use crate::api::{ApiError, openapi};
use crate::state::SharedState;

use crate::services::webhooks::{
    self as service, DEFAULT_GRACE_SECS, DEFAULT_TIMEOUT_MS, MAX_DESCRIPTION_CHARS, ReplayBounds, valid_url,
};

/// The endpoint creation body; only `url` is required. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[garde(context(AddressPolicy))]
pub struct EndpointCreate {
    /// `http` or `https`, at most 2048 characters (after normalisation); an IP literal the
    /// address policy refuses is a 400.
    #[schema(value_type = String, max_length = 2048, format = "uri", required = true)]
    #[garde(custom(required), custom(string), custom(endpoint_url))]
    #[serde(default)]
    url: Field<String>,
    #[schema(value_type = String, max_length = 500, required = false)]
    #[garde(custom(string), custom(max_chars(MAX_DESCRIPTION_CHARS)))]
    #[serde(default)]
    description: Field<String>,
    /// The types to receive; absent or `null`: every type.
    #[schema(value_type = Option<Vec<EventType>>, min_items = 1)]
    #[garde(dive(()))]
    #[serde(default)]
    event_types: Field<EventTypes>,
    /// Default 15000.
    #[schema(value_type = i64, minimum = 1000, maximum = 30000, required = false)]
    #[garde(custom(integer_between(1_000..=30_000)))]
    #[serde(default)]
    timeout_ms: Field<i64>,
    /// Events per request, default 1.
    #[schema(value_type = i64, minimum = 1, maximum = 500, required = false)]
    #[garde(custom(integer_between(1..=500)))]
    #[serde(default)]
    batch_max: Field<i64>,
    /// Per-device `seq` order, default false.
    #[schema(value_type = bool, required = false)]
    #[garde(custom(boolean))]
    #[serde(default)]
    ordered: Field<bool>,
}

/// The endpoint change body: any creation field, and `paused`. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[garde(context(AddressPolicy))]
pub struct EndpointUpdate {
    #[schema(value_type = String, max_length = 2048, format = "uri", required = false)]
    #[garde(custom(string), custom(endpoint_url))]
    #[serde(default)]
    url: Field<String>,
    /// `null` clears it.
    #[schema(value_type = Option<String>, max_length = 500)]
    #[garde(custom(string_or_null), custom(max_chars(MAX_DESCRIPTION_CHARS)))]
    #[serde(default)]
    description: Field<String>,
    /// `null`: every type.
    #[schema(value_type = Option<Vec<EventType>>, min_items = 1)]
    #[garde(dive(()))]
    #[serde(default)]
    event_types: Field<EventTypes>,
    #[schema(value_type = i64, minimum = 1000, maximum = 30000, required = false)]
    #[garde(custom(integer_between(1_000..=30_000)))]
    #[serde(default)]
    timeout_ms: Field<i64>,
    #[schema(value_type = i64, minimum = 1, maximum = 500, required = false)]
    #[garde(custom(integer_between(1..=500)))]
    #[serde(default)]
    batch_max: Field<i64>,
    #[schema(value_type = bool, required = false)]
    #[garde(custom(boolean))]
    #[serde(default)]
    ordered: Field<bool>,
    /// `true` stops attempts (deliveries keep accumulating); `false` resumes and makes waiting
    /// deliveries due at once.
    #[schema(value_type = bool, required = false)]
    #[garde(custom(boolean))]
    #[serde(default)]
    paused: Field<bool>,
}

impl EndpointUpdate {
    /// Whether any endpoint setting (anything but `paused`) was sent.
    fn changes_settings(&self) -> bool {
        !(self.url.is_absent()
            && self.description.is_absent()
            && self.event_types.is_absent()
            && self.timeout_ms.is_absent()
            && self.batch_max.is_absent()
            && self.ordered.is_absent())
    }

    /// The names of the fields sent, for the log line.
    fn sent_fields(&self) -> Vec<&'static str> {
        [
            ("url", self.url.is_absent()),
            ("description", self.description.is_absent()),
            ("event_types", self.event_types.is_absent()),
            ("timeout_ms", self.timeout_ms.is_absent()),
            ("batch_max", self.batch_max.is_absent()),
            ("ordered", self.ordered.is_absent()),
            ("paused", self.paused.is_absent()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| (!absent).then_some(name))
        .collect()
    }
}

/// The secret rotation body.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the previous secret stays valid, default 86400 (a day), at most 7 days.
    #[schema(value_type = i64, minimum = 0, maximum = 604800, required = false)]
    #[garde(custom(integer_between(0..=7 * 86_400)))]
    #[serde(default)]
    grace_secs: Field<i64>,
}

/// The replay body: every bound optional and inclusive.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// A known device.
    #[schema(value_type = String, required = false)]
    #[garde(custom(string))]
    #[serde(default)]
    device_sn: Field<String>,
    /// Per-device numbers, so they need `device_sn`.
    #[schema(value_type = i64, minimum = 0, required = false)]
    #[garde(custom(integer_between(0..=i64::MAX)))]
    #[serde(default)]
    from_seq: Field<i64>,
    #[schema(value_type = i64, minimum = 0, required = false)]
    #[garde(custom(integer_between(0..=i64::MAX)))]
    #[serde(default)]
    to_seq: Field<i64>,
    /// Device-local punch time `YYYY-MM-DD HH:MM:SS`, or a bare `YYYY-MM-DD` (the whole day).
    #[schema(value_type = String, required = false, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?$")]
    #[garde(custom(string), custom(replay_time))]
    #[serde(default)]
    from_time: Field<String>,
    #[schema(value_type = String, required = false, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?$")]
    #[garde(custom(string), custom(replay_time))]
    #[serde(default)]
    to_time: Field<String>,
}

fn endpoint_url(field: &Field<String>, policy: &AddressPolicy) -> garde::Result {
    match field.given() {
        Some(raw) => valid_url(raw, policy).map(drop).map_err(garde::Error::new),
        None => Ok(()),
    }
}

/// A replay bound: exactly a date or a date and time. An RFC 3339 instant (`…Z`, `…+05:30`)
/// would otherwise be silently read as device-local time.
pub(crate) fn local_time(text: &str, end_of_day: bool) -> Option<String> {
    matches!(text.trim().len(), 10 | 19).then(|| parse_filter_time(text, end_of_day)).flatten().map(|t| t.to_string())
}

fn replay_time<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field.given() {
        Some(text) if local_time(text, false).is_none() => {
            Err(garde::Error::new("Enter a valid date/time: device-local YYYY-MM-DD HH:MM:SS or YYYY-MM-DD."))
        }
        _ => Ok(()),
    }
}

/// The normalised URL of a body whose rules passed.
fn validated_url(raw: &str, policy: &AddressPolicy) -> Result<String, ApiError> {
    valid_url(raw, policy).map_err(|e| ApiError::Internal(format!("validated URL refused: {e}")))
}

/// Create a webhook endpoint.
///
/// The answer is the only time the signing `secret` is shown. The endpoint receives the events
/// created after it exists; earlier punches reach it by a replay.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints",
    tag = openapi::tag::WEBHOOKS,
    request_body = EndpointCreate,
    responses(
        (status = 201, description = "Created, with its secret.", body = CreatedEndpoint),
        (status = 400, description = "Invalid or unknown fields, or invalid JSON.", body = openapi::ValidationErrors),
    )
)]
pub async fn create_endpoint(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let request = JsonObject::<EndpointCreate>::parse(&body)?;
    let policy = &state.webhooks.address_policy;
    request.errors_with(policy).finish()?;
    let body = request.body;
    let url = validated_url(body.url.given().map_or("", String::as_str), policy)?;
    let event_types = body.event_types.given().map(EventTypes::stored);
    let settings = EndpointSettings {
        url: &url,
        description: body.description.given().map_or("", String::as_str),
        event_types: event_types.as_deref(),
        timeout_ms: body.timeout_ms.given().copied().unwrap_or(DEFAULT_TIMEOUT_MS),
        batch_max: body.batch_max.given().copied().unwrap_or(1),
        ordered: body.ordered.given().copied().unwrap_or(false),
    };
    let (endpoint, secret) = service::create_endpoint(&state, &settings, "api").await?;
    let uid = &endpoint.uid;
    tracing::info!(endpoint = %uid, url = %endpoint.url, by = %who.name, "webhook endpoint created");
    Ok((StatusCode::CREATED, Json(CreatedEndpoint { endpoint: endpoint.into(), secret })))
}

/// List webhook endpoints, oldest first (never a secret).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints",
    tag = openapi::tag::WEBHOOKS,
    responses((status = 200, description = "Every endpoint.", body = DataList<EndpointView>))
)]
pub async fn list_endpoints(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<DataList<EndpointView>>, ApiError> {
    let endpoints = state.store.list_endpoints().await?;
    Ok(Json(DataList { data: endpoints.into_iter().map(EndpointView::from).collect() }))
}

/// Get one webhook endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints/{uid}",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointView),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn get_endpoint(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(uid): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(endpoint.into()))
}

/// Change, pause or resume a webhook endpoint.
///
/// Any of the creation fields, and `paused`.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/endpoints/{uid}",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body(content = Option<EndpointUpdate>, description = "An empty body changes nothing."),
    responses(
        (status = 200, description = "The endpoint as changed.", body = EndpointView),
        (status = 400, description = "Invalid or unknown fields, or invalid JSON.", body = openapi::ValidationErrors),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn update_endpoint(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Json<EndpointView>, ApiError> {
    let current = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    let request = JsonObject::<EndpointUpdate>::parse(&body)?;
    let policy = &state.webhooks.address_policy;
    request.errors_with(policy).finish()?;
    let change = request.body;

    if change.changes_settings() {
        let url = match change.url.given() {
            Some(raw) => validated_url(raw, policy)?,
            None => current.url.clone(),
        };
        let event_types = match &change.event_types {
            Field::Given(types) => Some(types.stored()),
            Field::Null => None,
            Field::Absent | Field::Invalid(_) => current.event_types.clone(),
        };
        let settings = EndpointSettings {
            url: &url,
            // `null` clears the description.
            description: match &change.description {
                Field::Given(d) => d,
                Field::Null => "",
                Field::Absent | Field::Invalid(_) => &current.description,
            },
            event_types: event_types.as_deref(),
            timeout_ms: change.timeout_ms.given().copied().unwrap_or(current.timeout_ms),
            batch_max: change.batch_max.given().copied().unwrap_or(current.batch_max),
            ordered: change.ordered.given().copied().unwrap_or(current.ordered),
        };
        if !state.store.update_endpoint(&uid, &settings).await? {
            return Err(ApiError::NotFound);
        }
    }
    if let Some(&paused) = change.paused.given() {
        crate::services::webhooks::set_paused(&state, &uid, current.paused_reason.as_deref(), paused).await?;
    }
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(endpoint = %uid, by = %who.name, fields = ?change.sent_fields(), "webhook endpoint changed");
    Ok(Json(endpoint.into()))
}

/// Delete a webhook endpoint.
///
/// Waiting deliveries are cancelled; the history stays listable.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/endpoints/{uid}",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn delete_endpoint(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_endpoint(&uid).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(endpoint = %uid, by = %who.name, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an endpoint's signing secret.
///
/// Until the grace period ends, requests carry signatures with both the old and the new secret.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints/{uid}/rotate-secret",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body(content = Option<RotateSecretRequest>, description = "An empty body keeps the default grace period."),
    responses(
        (status = 200, description = "The new secret, shown this once.", body = RotatedSecret),
        (status = 400, description = "Invalid `grace_secs`, unknown fields or invalid JSON.", body = openapi::ValidationErrors),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Json<RotatedSecret>, ApiError> {
    let request = JsonObject::<RotateSecretRequest>::parse(&body)?;
    if state.store.endpoint_by_uid(&uid).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    request.errors().finish()?;
    let grace_secs = request.body.grace_secs.given().copied().unwrap_or(DEFAULT_GRACE_SECS);
    // Secrets are checked against the dispatcher's clock.
    let (secret, valid_until) = service::rotate_secret(&state, &uid, grace_secs).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(endpoint = %uid, by = %who.name, grace_secs, "webhook secret rotated");
    Ok(Json(RotatedSecret { secret, previous_secrets_valid_until: rfc3339_micros(valid_until) }))
}

/// Replay punches to one endpoint.
///
/// Every punch in the range is queued to this endpoint only, due now; punches stored before
/// any endpoint existed get their event now, with the same id and body the live path would
/// have produced. At most 100,000 punches per call. Times are device-local `YYYY-MM-DD
/// HH:MM:SS` (a bare date is the whole day), bounds inclusive.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints/{uid}/replay",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body(content = Option<ReplayRequest>, description = "An empty body replays every punch."),
    responses(
        (status = 202, description = "Queued.", body = ReplayAnswer),
        (status = 400, description = "An invalid range, an endpoint without `attendance.punch`, or too many punches.", body = openapi::ValidationErrors),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn replay(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ReplayAnswer>), ApiError> {
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    let request = JsonObject::<ReplayRequest>::parse(&body)?;
    let mut errors = request.errors();
    let range = request.body;
    let bounds = ReplayBounds {
        device_sn: range.device_sn.given().cloned(),
        from_seq: range.from_seq.given().copied(),
        to_seq: range.to_seq.given().copied(),
        from_local_time: range.from_time.given().and_then(|t| local_time(t, false)),
        to_local_time: range.to_time.given().and_then(|t| local_time(t, true)),
    };
    let (device_id, refusals) = service::check_replay(&state, &endpoint, &bounds).await?;
    for (field, why) in refusals {
        errors.add(field, why);
    }
    errors.finish()?;
    match service::replay(&state, &uid, device_id, &bounds).await? {
        ReplayOutcome::NotFound => Err(ApiError::NotFound),
        ReplayOutcome::TooMany(count) => {
            Err(ApiError::BadRequest(json!({ "non_field_errors": [service::too_many_to_replay(count)] })))
        }
        ReplayOutcome::Replayed { events, events_created } => {
            tracing::info!(endpoint = %uid, by = %who.name, events, events_created, "punches replayed to webhook endpoint");
            Ok((StatusCode::ACCEPTED, Json(ReplayAnswer { replayed: events, events_created })))
        }
    }
}

#[cfg(test)]
mod tests {
    use adms_store::events::event_type;
    use serde_json::Value;

    use super::*;
    use crate::services::webhooks::{MAX_URL_CHARS, new_endpoint_uid, receives_punches};

    #[test]
    fn urls_are_checked_for_scheme_length_and_literal_addresses() {
        let strict = AddressPolicy::default();
        let on_site = AddressPolicy { allow_private: true, ..AddressPolicy::default() };
        let listed = AddressPolicy {
            allow_list: vec!["127.0.0.1/32".parse().unwrap()],
            own_listeners: vec!["0.0.0.0:8081".parse().unwrap()],
            ..on_site.clone()
        };
        assert_eq!(valid_url("https://erp.example.com/hooks", &strict).as_deref(), Ok("https://erp.example.com/hooks"));
        assert_eq!(valid_url("http://erp.example.com", &strict).as_deref(), Ok("http://erp.example.com/"));
        assert!(valid_url("ftp://erp.example.com/", &strict).unwrap_err().contains("http and https"));
        assert!(valid_url("not a url", &strict).unwrap_err().contains("valid URL"));
        assert!(valid_url("http://127.0.0.1:9000/", &strict).unwrap_err().contains("127.0.0.1"));
        // Loopback opens only through the allow list, and never at the bridge's own port.
        assert!(valid_url("http://127.0.0.1:9000/", &on_site).unwrap_err().contains("127.0.0.1"));
        assert!(valid_url("http://localhost:9000/", &on_site).unwrap_err().contains("127.0.0.1"));
        assert!(valid_url("http://10.1.2.3/", &on_site).is_ok());
        assert!(valid_url("http://127.0.0.1:9000/", &listed).is_ok());
        assert!(valid_url("http://localhost:9000/", &listed).is_ok());
        assert!(valid_url("http://127.0.0.1:8081/", &listed).unwrap_err().contains("own listening address"));
        assert!(valid_url("http://169.254.169.254/", &on_site).unwrap_err().contains("169.254.169.254"));
        let long = format!("https://erp.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(valid_url(&long, &strict).unwrap_err().contains("2048"));
    }

    #[test]
    fn endpoint_uids_are_ep_and_24_lowercase_alphanumerics() {
        let uid = new_endpoint_uid();
        assert_eq!(uid.len(), 27);
        let suffix = uid.strip_prefix("ep_").unwrap();
        assert!(suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{uid}");
        assert_ne!(uid, new_endpoint_uid());
    }

    fn errors_of(body: Value) -> Value {
        let request = JsonObject::<EndpointCreate>::parse(body.to_string().as_bytes()).unwrap();
        match request.errors_with(&AddressPolicy::default()).finish() {
            Ok(()) => Value::Null,
            Err(ApiError::BadRequest(errors)) => errors,
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn every_failing_field_is_reported_at_once_in_drf_words() {
        assert_eq!(
            errors_of(json!({"description": null, "timeout_ms": "5", "batch_max": 0, "ordered": 1, "colour": "red",
                "event_types": ["punch", 7, "attendance.punch"]})),
            json!({
                "url": ["This field is required."],
                "description": ["This field may not be null."],
                "timeout_ms": ["A valid integer is required."],
                "batch_max": ["Ensure this value is between 1 and 500."],
                "ordered": ["Must be a valid boolean."],
                "colour": ["Unknown field."],
                "event_types": [
                    format!("\"punch\" is not a valid choice (one of: {}).", event_type::ALL.join(", ")),
                    "Every item must be a string.",
                ],
            })
        );
        assert_eq!(errors_of(json!({"url": null})), json!({"url": ["This field may not be null."]}));
        assert_eq!(
            errors_of(json!({"url": "https://erp.example.com/", "event_types": []})),
            json!({
                "event_types": ["This list may not be empty; omit it or send null for every type."]
            })
        );
        assert_eq!(errors_of(json!({"url": "https://erp.example.com/", "event_types": null})), Value::Null);
    }

    #[test]
    fn event_type_filters() {
        let types: EventTypes =
            serde_json::from_value(json!(["attendance.punch", "device.offline", "attendance.punch"])).unwrap();
        assert_eq!(types.stored(), r#"["attendance.punch","device.offline"]"#);
        assert!(receives_punches(None));
        assert!(receives_punches(Some(r#"["device.online","attendance.punch"]"#)));
        assert!(!receives_punches(Some(r#"["device.online"]"#)));
    }
}
