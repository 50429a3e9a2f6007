use crate::lines::Line;

/// Why a line was not turned into a record. Each reason has a short, stable code that is stored
/// beside the raw line and shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    #[error("fewer fields than the record needs")]
    TooFewFields,
    #[error("the PIN is empty")]
    EmptyPin,
    #[error("a field is longer than the protocol allows")]
    FieldTooLong,
    #[error("a field contains a control character")]
    ControlCharacter,
    #[error("the time is not a valid YYYY-MM-DD hh:mm:ss")]
    BadTime,
    #[error("the punch state is not a number 0-255 or a letter")]
    BadState,
    #[error("the verify mode is not a number")]
    BadVerify,
    #[error("a numeric field is not a number")]
    BadNumber,
    #[error("the line is not valid UTF-8")]
    InvalidUtf8,
    #[error("the record kind is missing")]
    MissingKind,
    #[error("a required key is missing")]
    MissingKey,
    #[error("the line does not start a command result (no ID=)")]
    NotACommandResult,
    #[error("the body ends without a newline in a line shorter than the one before it: probably cut off")]
    TruncatedTail,
    /// Set by the server, not the parsers: the time parsed but lies outside the window the
    /// operator accepts (default 2000-01-01 to a day after the device's now).
    #[error("the time is outside the accepted window")]
    ImplausibleTime,
    /// Set by the server, not the parsers: a PIN, name or code holds a bidirectional control or
    /// a line separator (see `text::is_unsafe_char`).
    #[error("a field contains a bidirectional control or line separator")]
    UnsafeText,
}

impl RejectReason {
    /// A short stable code, stored in the database and used as a metric label.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::TooFewFields => "too_few_fields",
            RejectReason::EmptyPin => "empty_pin",
            RejectReason::FieldTooLong => "field_too_long",
            RejectReason::ControlCharacter => "control_character",
            RejectReason::BadTime => "bad_time",
            RejectReason::BadState => "bad_state",
            RejectReason::BadVerify => "bad_verify",
            RejectReason::BadNumber => "bad_number",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MissingKind => "missing_kind",
            RejectReason::MissingKey => "missing_key",
            RejectReason::NotACommandResult => "not_a_command_result",
            RejectReason::TruncatedTail => "truncated_tail",
            RejectReason::ImplausibleTime => "implausible_time",
            RejectReason::UnsafeText => "unsafe_text",
        }
    }
}

/// A line that could not be parsed: kept whole, with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected<'a> {
    pub line: Line<'a>,
    pub reason: RejectReason,
}
