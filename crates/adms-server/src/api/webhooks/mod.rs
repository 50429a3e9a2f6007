//! The native webhook API under `/api/v1/webhooks/`, and the per-device punch cursor
//! `/api/v1/devices/{sn}/punches` a receiver reconciles gaps with.
//!
//! Token auth on every route; errors are Django REST Framework bodies (`{"field": ["message"]}`
//! for invalid input, `{"detail": "Not found."}` for unknown ids). Times are RFC 3339 UTC.
//! Request bodies are strict JSON objects read into one type per route
//! ([`crate::api::request::JsonObject`]), so a wrong type or an unknown field is a 400 naming
//! the field, never a generic rejection.
//!
//! By resource: [`endpoints`] (settings, secret rotation, replay), [`deliveries`] (the outbox
//! and its attempts), [`events`] (the event log and the punch cursor); [`views`] holds the
//! answer shapes they share.

pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod payloads;
pub mod views;

use serde::Deserialize;
use serde_json::Value;

use adms_store::events::event_type;

use super::request::Field;

/// Webhook event types.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "the schema of the event type words (adms_store::events::event_type)")]
pub enum EventType {
    #[schema(rename = "attendance.punch")]
    AttendancePunch,
    #[schema(rename = "device.registered")]
    DeviceRegistered,
    #[schema(rename = "device.online")]
    DeviceOnline,
    #[schema(rename = "device.offline")]
    DeviceOffline,
    #[schema(rename = "user.enrolled")]
    UserEnrolled,
    #[schema(rename = "user.updated")]
    UserUpdated,
    #[schema(rename = "command.completed")]
    CommandCompleted,
}

/// Delivery states.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "the schema of the delivery state words (adms_model::DeliveryState)")]
pub enum DeliveryState {
    Pending,
    InFlight,
    Succeeded,
    Exhausted,
    Cancelled,
}

const DELIVERY_STATES: [&str; 5] = ["pending", "in_flight", "succeeded", "exhausted", "cancelled"];

/// An `event_types` filter as sent: a list whose items the rules check one by one (each bad
/// item has its own message), kept as sent until then.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventTypes(Vec<Value>);

impl EventTypes {
    /// The filter as stored: the known types, de-duplicated, as a JSON array.
    pub fn stored(&self) -> String {
        let mut types: Vec<&str> = Vec::with_capacity(self.0.len());
        for t in self.0.iter().filter_map(Value::as_str) {
            if !types.contains(&t) {
                types.push(t);
            }
        }
        serde_json::to_string(&types).unwrap_or_else(|_| "[]".into())
    }
}

/// `event_types`: absent, `null` (every type) or a non-empty list of known types. A list reports
/// every bad item, which one `custom` rule (one message) could not.
impl garde::Validate for Field<EventTypes> {
    type Context = ();

    fn validate_into(&self, _: &(), parent: &mut dyn FnMut() -> garde::Path, report: &mut garde::Report) {
        let mut fail = |message: String| report.append(parent(), garde::Error::new(message));
        match self {
            Field::Absent | Field::Null => {}
            Field::Invalid(_) => fail("Expected a list of items.".into()),
            Field::Given(EventTypes(items)) if items.is_empty() => {
                fail("This list may not be empty; omit it or send null for every type.".into());
            }
            Field::Given(EventTypes(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(t) if event_type::ALL.contains(&t) => {}
                        Some(t) => fail(not_a_choice(t, &event_type::ALL)),
                        None => fail("Every item must be a string.".into()),
                    }
                }
            }
        }
    }
}

fn not_a_choice(value: &str, choices: &[&str]) -> String {
    format!("\"{value}\" is not a valid choice (one of: {}).", choices.join(", "))
}
