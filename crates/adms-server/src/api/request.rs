//! Request bodies as types.
//!
//! Each write route reads its body into one `#[derive(Deserialize, ToSchema, garde::Validate)]`
//! struct: the struct that parses the body is the schema in the OpenAPI document, and its
//! `#[garde(...)]` rules, beside each field, produce Django REST Framework's 400 body
//! `{"field": ["message", ...]}` with every failing field at once ([`FieldErrors`]).
//!
//! The clients these routes serve send what DRF accepts, not what serde expects, so every field
//! is a [`Field`]: absent, `null`, a value, or a value of the wrong type (kept, so that the rules
//! can name it in DRF's words rather than serde stopping at the first one). The lenient scalars
//! ([`Text`], [`Int`], [`Bool`], [`IdList`], [`Date`], [`Written`]) read values as DRF's fields
//! do: numbers given as strings, booleans as `"true"`/`1`/`"on"`, id lists as a comma-separated
//! string (form bodies).

use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value, json};

use super::ApiError;

/// Validation errors by field, answered together as one 400 (`{"field": ["message", ...]}`).
#[derive(Debug, Default)]
pub struct FieldErrors(Map<String, Value>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self.0.entry(field.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(messages) = entry {
            messages.push(Value::String(message.into()));
        }
    }

    /// Errors inside a field that is itself an object (`{"command": {"pin": ["..."]}}`).
    pub fn add_within(&mut self, field: &str, inner: &str, message: impl Into<String>) {
        let entry = self.0.entry(field.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(fields) = entry {
            fields.insert(inner.to_owned(), Value::Array(vec![Value::String(message.into())]));
        }
    }

    /// The errors of `body`'s rules, in the order its fields and rules are declared.
    pub fn of<T: garde::Validate>(body: &T, context: &T::Context) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.extend(body.validate_with(context).err());
        errors
    }

    /// Adds a validation report: each error under its top-level field (the rules here report on
    /// the field itself, never inside it).
    pub fn extend(&mut self, report: Option<garde::Report>) {
        for (path, error) in report.iter().flat_map(garde::Report::iter) {
            let path = path.to_string();
            let field = path.split(['.', '[']).next().unwrap_or_default();
            self.add(field, error.message());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was reported, else the 400 answer.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::BadRequest(Value::Object(self.0))) }
    }
}

/// One field of a request body: absent, `null`, a value of `T`, or a value that is not one.
///
/// The tri-state a `PATCH` needs (absent: keep; `null`: clear; a value: set) and, for the rules,
/// the value a client sent that `T` could not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Given(T),
    Invalid(Value),
}

impl<T> Field<T> {
    /// The value, when one of type `T` was given.
    pub fn given(&self) -> Option<&T> {
        match self {
            Field::Given(value) => Some(value),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Field::Null,
            value => match T::deserialize(&value) {
                Ok(read) => Field::Given(read),
                Err(_) => Field::Invalid(value),
            },
        })
    }
}

/// Reads a lenient scalar from any JSON value with `read`, failing (so that the [`Field`] keeps
/// the value as invalid) when it gives nothing.
fn lenient<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    read: impl FnOnce(&Value) -> Option<T>,
) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    read(&value).ok_or_else(|| de::Error::custom("not readable as this field's type"))
}

/// Text as DRF's `CharField` reads it: a string (trimmed), or a number as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer, text).map(Text)
    }
}

/// An integer from a number or a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer, integer).map(Int)
    }
}

/// A boolean as DRF's `BooleanField` reads it (`true`, `1`, `"yes"`, `"on"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer, boolean).map(Bool)
    }
}

/// A list of ids: a JSON array of numbers or numeric strings, one number, or a comma-separated
/// string (form bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList(pub Vec<i64>);

impl<'de> Deserialize<'de> for IdList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer, id_list).map(IdList)
    }
}

/// A `YYYY-MM-DD` date that is a real day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Date(pub String);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer, date).map(Date)
    }
}

/// An integer and the text it was written as (`"05"`, `" 7"` trimmed): DRF's messages about a
/// value it read (`Invalid pk "05" - object does not exist.`) quote what the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub value: i64,
    pub text: String,
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer, |value| Some(Written { value: integer(value)?, text: text(value)? }))
    }
}

/// DRF's message for a primary key that names nothing (`id` as the client wrote it).
pub fn invalid_pk(id: impl std::fmt::Display) -> String {
    format!("Invalid pk \"{id}\" - object does not exist.")
}

/// The text DRF quotes for a value it could not use: a string or a number, else nothing.
pub fn quoted(value: &Value) -> String {
    text(value).unwrap_or_default()
}

/// A write body as DRF parses it (JSON object or form-encoded, see [`read_drf_object`]), read
/// into `T`.
///
/// `T`'s fields are [`Field`]s, so reading never fails on a field's value; the rules report it.
#[derive(Debug)]
pub struct DrfBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for DrfBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let map = read_drf_object(request).await?;
        T::deserialize(Value::Object(map))
            .map(DrfBody)
            .map_err(|e| ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") })))
    }
}

/// A strict JSON object body (the native `/api/v1/` routes): an empty body is `{}`, and a field
/// `T` does not declare is an error of its own ("Unknown field.").
#[derive(Debug)]
pub struct JsonObject<T> {
    pub body: T,
    /// The keys `T` has no field for, in the order sent.
    unknown: Vec<String>,
}

impl<T: DeserializeOwned> JsonObject<T> {
    /// Reads `bytes`. Not an extractor: the routes answer an unknown id (404) before or after a
    /// malformed body (400) as they always have, so each parses where its answer order says.
    pub fn parse(bytes: &[u8]) -> Result<JsonObject<T>, ApiError> {
        let mut object = if bytes.trim_ascii().is_empty() {
            Map::new()
        } else {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") })))?;
            let Value::Object(object) = value else {
                return Err(ApiError::BadRequest(json!({
                    "non_field_errors": ["Invalid data. Expected a dictionary."]
                })));
            };
            object
        };
        let known = struct_fields::<T>();
        let unknown: Vec<String> = object.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in &unknown {
            object.remove(key);
        }
        let body = T::deserialize(Value::Object(object))
            .map_err(|e| ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") })))?;
        Ok(JsonObject { body, unknown })
    }

    /// The unknown fields, then the errors of the body's rules.
    pub fn errors(&self) -> FieldErrors
    where
        T: garde::Validate,
        T::Context: Default,
    {
        self.errors_with(&T::Context::default())
    }

    pub fn errors_with(&self, context: &T::Context) -> FieldErrors
    where
        T: garde::Validate,
    {
        let mut errors = FieldErrors::default();
        for key in &self.unknown {
            errors.add(key, "Unknown field.");
        }
        errors.extend(self.body.validate_with(context).err());
        errors
    }
}

/// The field names serde's derive gives `T`: what it passes to `deserialize_struct`. The body
/// types name their fields once, in the struct, and the unknown-field check reads them here.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // Always an error: the deserializer stops once it has the names.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

// ---------------------------------------------------------------------------------------------
// DRF's wire forms.

/// Largest write body accepted on the personnel routes.
const MAX_WRITE_BODY: usize = 256 * 1024;

/// A write body as DRF parses it, as one JSON object: a JSON object, or form fields (one
/// ZKBio Time client creates employees form-encoded; a field given several times becomes an
/// array). An empty body is an empty object.
async fn read_drf_object(request: Request) -> Result<Map<String, Value>, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = axum::body::to_bytes(request.into_body(), MAX_WRITE_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_WRITE_BODY))?;
    if bytes.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    if content_type.contains("json") || bytes.trim_ascii_start().starts_with(b"{") {
        return match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::BadRequest(
                json!({ "non_field_errors": ["Invalid data. Expected a dictionary, but got a list or value."] }),
            )),
            Err(e) => Err(ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") }))),
        };
    }
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(&bytes) {
        let v = Value::String(v.into_owned());
        match map.get_mut(k.as_ref()) {
            None => {
                map.insert(k.into_owned(), v);
            }
            Some(Value::Array(items)) => items.push(v),
            Some(first) => {
                let first = first.take();
                map.insert(k.into_owned(), Value::Array(vec![first, v]));
            }
        }
    }
    Ok(map)
}

/// Text as DRF's `CharField` reads it: strings, and numbers as their text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer from a number or a numeric string.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean as DRF's `BooleanField` reads it.
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A list of ids: a JSON array of numbers or numeric strings, one number, or a
/// comma-separated string (form bodies).
fn id_list(value: &Value) -> Option<Vec<i64>> {
    match value {
        Value::Array(items) => items.iter().map(integer).collect(),
        Value::Number(_) => integer(value).map(|i| vec![i]),
        Value::String(s) => s.split(',').filter(|p| !p.trim().is_empty()).map(|p| p.trim().parse().ok()).collect(),
        _ => None,
    }
}

/// A `YYYY-MM-DD` date, checked for being a real day.
fn date(value: &Value) -> Option<String> {
    let s = text(value)?;
    let parsed: jiff::civil::Date = s.parse().ok()?;
    (s.len() == 10).then(|| parsed.to_string())
}

/// One of a closed set of names (a query or path value), by the type's own serde names, so the
/// names read and the names the OpenAPI document lists (utoipa reads the same attributes) are one
/// list; `None` when `text` names none of them.
pub fn choice<T: DeserializeOwned>(text: &str) -> Option<T> {
    T::deserialize(de::value::StrDeserializer::<de::value::Error>::new(text)).ok()
}

/// Text that may reach a device or a log line: no control characters (tab, newline) at all.
pub fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Rules shared by the body types, in DRF's words. Each takes the field and the body's context
/// (unused by most), as `#[garde(custom(...))]` calls them.
pub mod rules {
    use std::ops::RangeInclusive;

    use super::Field;

    /// A rule's failure with DRF's `message`.
    pub fn fail(message: impl Into<String>) -> garde::Result {
        Err(garde::Error::new(message.into()))
    }

    /// Present (`null` counts as present: it has its own message).
    pub fn required<T, C>(field: &Field<T>, _: &C) -> garde::Result {
        if field.is_absent() { fail("This field is required.") } else { Ok(()) }
    }

    /// A JSON string: not `null`, not another type.
    pub fn string<C>(field: &Field<String>, _: &C) -> garde::Result {
        match field {
            Field::Null => fail("This field may not be null."),
            Field::Invalid(_) => fail("Not a valid string."),
            Field::Absent | Field::Given(_) => Ok(()),
        }
    }

    /// A JSON string or `null` (which means something of its own to the route: clear, or
    /// leave unchanged).
    pub fn string_or_null<C>(field: &Field<String>, _: &C) -> garde::Result {
        match field {
            Field::Invalid(_) => fail("Not a valid string."),
            _ => Ok(()),
        }
    }

    /// A JSON string of at most `max` characters (`null` is checked by [`string`]).
    pub fn max_chars<C>(max: usize) -> impl FnOnce(&Field<String>, &C) -> garde::Result {
        move |field, _| match field.given() {
            Some(s) if s.chars().count() > max => fail(format!("Ensure this field has no more than {max} characters.")),
            _ => Ok(()),
        }
    }

    /// A JSON integer (not a string, not a float) in `range`.
    pub fn integer_between<C>(range: RangeInclusive<i64>) -> impl FnOnce(&Field<i64>, &C) -> garde::Result {
        move |field, _| match field {
            Field::Absent => Ok(()),
            Field::Given(n) if range.contains(n) => Ok(()),
            Field::Given(_) => fail(format!("Ensure this value is between {} and {}.", range.start(), range.end())),
            Field::Null | Field::Invalid(_) => fail("A valid integer is required."),
        }
    }

    /// A JSON boolean.
    pub fn boolean<C>(field: &Field<bool>, _: &C) -> garde::Result {
        match field {
            Field::Absent | Field::Given(_) => Ok(()),
            Field::Null | Field::Invalid(_) => fail("Must be a valid boolean."),
        }
    }

    /// A DRF boolean where `null` means not given.
    pub fn drf_boolean<C>(field: &Field<super::Bool>, _: &C) -> garde::Result {
        match field {
            Field::Invalid(_) => fail("Must be a valid boolean."),
            _ => Ok(()),
        }
    }

    /// An `employees` list of the ZKBio Time actions: given and not empty.
    pub fn employee_ids<C>(field: &Field<super::IdList>, _: &C) -> garde::Result {
        match field.given() {
            None => fail("This field is required."),
            Some(ids) if ids.0.is_empty() => fail("This list may not be empty."),
            Some(_) => Ok(()),
        }
    }
}
