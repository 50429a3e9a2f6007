//! The vocabulary of adms-bridge as types, shared by the store and the server. Pure: no I/O,
//! no clock, no SQL.
//!
//! Every word the database stores in a TEXT column of fixed vocabulary (a command's state, a
//! device's approval, ...) is an enum here, encoded and decoded by `sqlx` as that word
//! (`snake_case`) and by `serde` the same way. A stored word that is not in the vocabulary is a
//! decode error, never a default: a damaged or newer row must not quietly read as, say, an
//! approved device.
//!
//! Each enum also has `as_str` (the stored word, for logs and JSON built by hand) and
//! [`FromStr`](std::str::FromStr) failing with [`UnknownWord`], for words read from elsewhere
//! (query strings, configuration).

pub mod access;

use serde::{Deserialize, Serialize};

/// A word that is not in the vocabulary of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}: {word:?}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
}

/// Declares a vocabulary enum: its variants with their stored words, `as_str`, `FromStr` and
/// `Display`. The `sqlx`/`serde` attributes state the same words, checked by the tests below.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        // `type_name` names the PostgreSQL type: the column stays TEXT there too.
        #[sqlx(type_name = "text")]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $word)]
                #[sqlx(rename = $word)]
                #[cfg_attr(feature = "openapi", schema(rename = $word))]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word stored in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { kind: $kind, word: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// Where a queued device command is (`device_commands.state`).
    CommandState, "command state" {
        /// Waiting for the device's next poll.
        Queued = "queued",
        /// Handed to a poll; waiting for its result.
        Sent = "sent",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Not answered in time, or its device stopped polling.
        Expired = "expired",
        /// Superseded, cancelled by an operator, or its terminal deleted.
        Cancelled = "cancelled",
    }
}

impl CommandState {
    /// Still to be handed out or answered.
    pub const fn is_open(self) -> bool {
        matches!(self, CommandState::Queued | CommandState::Sent)
    }
}

vocabulary! {
    /// Where a webhook delivery is (`webhook_deliveries.state`).
    DeliveryState, "delivery state" {
        /// Due at `next_attempt_at`.
        Pending = "pending",
        /// Claimed by a worker under a lease.
        InFlight = "in_flight",
        Succeeded = "succeeded",
        /// The retry schedule ran out.
        Exhausted = "exhausted",
        Cancelled = "cancelled",
    }
}

vocabulary! {
    /// The type of a webhook event (`webhook_events.event_type`, the body's `type`).
    EventType, "event type" {
        AttendancePunch = "attendance.punch",
        DeviceRegistered = "device.registered",
        DeviceOnline = "device.online",
        DeviceOffline = "device.offline",
        UserEnrolled = "user.enrolled",
        UserUpdated = "user.updated",
        CommandCompleted = "command.completed",
        /// An access controller's real-time event (`rtlog`): granted, denied, door, alarm.
        AccessEvent = "access.event",
    }
}

vocabulary! {
    /// Whether a device's data is released to ERPs (`devices.approval`).
    Approval, "approval" {
        Approved = "approved",
        /// Stored, but held from the API and delivery until an operator approves the device.
        Pending = "pending",
    }
}

vocabulary! {
    /// Whether a device is reporting (`devices.presence`).
    Presence, "presence" {
        Online = "online",
        Offline = "offline",
        /// Stored before presence was tracked, and not looked at since.
        Unknown = "unknown",
    }
}

vocabulary! {
    /// What an API token is (`api_tokens.kind`).
    TokenKind, "token kind" {
        /// Issued by a login, for the account's role.
        Session = "session",
        /// A long-lived key with its own scopes.
        Integration = "integration",
    }
}

/// An instant as Unix microseconds: the unit of every `*_at` column.
///
/// A newtype so that an instant is not confused with a duration, an id or a count; stored as
/// the same INTEGER, serialised as the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This instant plus `micros`, saturating.
    pub const fn add_micros(self, micros: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(micros))
    }
}

impl From<i64> for Timestamp {
    fn from(micros: i64) -> Timestamp {
        Timestamp(micros)
    }
}

impl From<Timestamp> for i64 {
    fn from(t: Timestamp) -> i64 {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str`, `FromStr` and serde agree on every word (the sqlx attributes are generated
    /// from the same literal).
    fn words_agree<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy
            + std::fmt::Debug
            + PartialEq
            + std::str::FromStr<Err = UnknownWord>
            + Serialize
            + for<'a> Deserialize<'a>,
    {
        for &value in all {
            let word = as_str(value);
            assert_eq!(word.parse::<T>(), Ok(value));
            assert_eq!(serde_json::to_string(&value).unwrap(), format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<T>(&format!("\"{word}\"")).unwrap(), value);
        }
        assert!("no such word".parse::<T>().is_err());
        assert!(serde_json::from_str::<T>("\"no such word\"").is_err());
    }

    #[test]
    fn every_vocabulary_round_trips() {
        words_agree(CommandState::ALL, CommandState::as_str);
        words_agree(DeliveryState::ALL, DeliveryState::as_str);
        words_agree(EventType::ALL, EventType::as_str);
        words_agree(Approval::ALL, Approval::as_str);
        words_agree(Presence::ALL, Presence::as_str);
        words_agree(TokenKind::ALL, TokenKind::as_str);
    }

    #[test]
    fn unknown_words_are_errors_not_defaults() {
        let err = "approve".parse::<Approval>().unwrap_err();
        assert_eq!(err, UnknownWord { kind: "approval", word: "approve".into() });
        assert_eq!(err.to_string(), "unknown approval: \"approve\"");
    }

    #[test]
    fn timestamps_serialise_as_their_micros() {
        let t = Timestamp::from_micros(1_764_000_000_000_000);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1764000000000000");
        assert_eq!(t.add_micros(1).as_micros(), 1_764_000_000_000_001);
    }
}
