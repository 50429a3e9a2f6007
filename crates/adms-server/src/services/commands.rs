//! Queueing device commands: the one way server code does it. [`enqueue`] commits the commands
//! and then wakes the devices concerned, so that their next poll reads the queue instead of
//! answering `OK` from memory (a command queued without the wake-up would wait until the
//! cross-replica check noticed it, about a second later).

use adms_protocol::{DeviceCommand, LocalDateTime};
use adms_store::{Enqueued, NewCommand, StoreError};
use serde::Deserialize as _;
use serde_json::Value;

use crate::state::AppState;

/// Queues commands (one transaction) and wakes their devices.
pub async fn enqueue(state: &AppState, commands: &[NewCommand]) -> Result<Vec<Enqueued>, StoreError> {
    let enqueued = state.store.enqueue_commands(commands, state.webhooks.clock.now_micros()).await?;
    wake(state, commands);
    Ok(enqueued)
}

/// Marks the devices of `commands` as having queued commands (each device once).
pub fn wake(state: &AppState, commands: &[NewCommand]) {
    let mut device_ids: Vec<i64> = commands.iter().map(|c| c.device_id).collect();
    device_ids.sort_unstable();
    device_ids.dedup();
    state.devices.commands_enqueued(&device_ids);
}

/// When a command queued now expires: `command_ttl_secs` from the dispatcher's clock.
pub fn default_expiry(state: &AppState) -> i64 {
    let ttl = i64::try_from(state.config.commands.ttl_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX / 2);
    state.webhooks.clock.now_micros().saturating_add(ttl)
}

/// A [`DeviceCommand`] that refuses keys it does not know. Its variants refuse unknown fields,
/// but serde lets anything through beside the tag of a variant without fields
/// (`{"type": "reboot", "pin": "1"}`), and a caller who sent a field expects it to mean
/// something. A key is unknown when it is not in the command as read back (`null` is allowed
/// for optional fields, which read back absent).
pub fn strict_command(value: &Value) -> Result<DeviceCommand, String> {
    let command = DeviceCommand::deserialize(value).map_err(|e| e.to_string())?;
    let read_back = serde_json::to_value(&command).map_err(|e| e.to_string())?;
    if let (Some(sent), Some(known)) = (value.as_object(), read_back.as_object())
        && let Some(key) = sent.keys().find(|k| !known.contains_key(*k) && !sent[*k].is_null())
    {
        return Err(format!("unknown field `{key}` for command `{}`", command.kind()));
    }
    Ok(command)
}

/// A command as the API and the console read it: strictly ([`strict_command`]), then checked as
/// the device line it becomes. The error names the field, as `field: message`.
pub fn validate_command(value: &Value) -> Result<DeviceCommand, String> {
    let command = strict_command(value)?;
    match command.encode() {
        Ok(_) => Ok(command),
        Err(e) => Err(format!("{}: {e}", adms_store::commands::command_error_field(&e))),
    }
}

/// The terminal actions the console offers, by name (each as [`action_commands`] queues it).
pub const TERMINAL_ACTIONS: [&str; 9] = [
    "reboot",
    "sync_time",
    "read_info",
    "upload_transaction",
    "upload_all",
    "clear_capture",
    "clear_attendance",
    "clear_all",
    "clear_command",
];

/// The ZKBio Time terminal actions: each queues its commands for every terminal listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerminalAction {
    Reboot,
    UploadTransaction,
    UploadAll,
    ClearCapture,
    ClearAll,
    ClearAttendance,
    SyncTime,
    ReadInfo,
    ClearCommand,
}

impl TerminalAction {
    /// The action of this name (its serde name, which the OpenAPI document lists too).
    pub fn from_name(name: &str) -> Option<TerminalAction> {
        TerminalAction::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name)).ok()
    }

    /// The commands the action queues (`biotime_api.md` §2.3), for a device whose clock reads
    /// `local_now`. `ClearCommand` queues nothing: it cancels.
    pub fn commands(self, local_now: LocalDateTime) -> Vec<DeviceCommand> {
        let since = LocalDateTime { year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
        // The device's log up to a day ahead, so a clock slightly fast loses nothing.
        let until = LocalDateTime { year: local_now.year.saturating_add(1), ..local_now };
        let all_attendance = DeviceCommand::QueryAttlog { start_time: since, end_time: until };
        match self {
            TerminalAction::Reboot => vec![DeviceCommand::Reboot],
            // Re-upload of the attendance log: the device re-sends the punches of the range as
            // ordinary uploads, which de-duplication turns into no new rows for the ones we have.
            TerminalAction::UploadTransaction => vec![all_attendance],
            // Everything: a new handshake (tables whose stamp is 0 are re-uploaded), all users,
            // and the attendance log.
            TerminalAction::UploadAll => {
                vec![DeviceCommand::Check, DeviceCommand::QueryUserinfo { pin: None }, all_attendance]
            }
            TerminalAction::ClearCapture => vec![DeviceCommand::ClearPhoto],
            TerminalAction::ClearAll => vec![DeviceCommand::ClearData],
            // Named as in the ZKBio Time console; not in the REST note, offered for completeness.
            TerminalAction::ClearAttendance => vec![DeviceCommand::ClearLog],
            // Attendance firmware sets its clock from the handshake reply (Date + TimeZone).
            TerminalAction::SyncTime => vec![DeviceCommand::Check],
            TerminalAction::ReadInfo => vec![DeviceCommand::Info],
            TerminalAction::ClearCommand => vec![],
        }
    }
}

/// The commands the terminal action `action` queues; `None` for an action we do not know.
pub fn action_commands(action: &str, local_now: LocalDateTime) -> Option<Vec<DeviceCommand>> {
    TerminalAction::from_name(action).map(|a| a.commands(local_now))
}

#[cfg(test)]
mod terminal_action_tests {
    #[test]
    fn every_action_the_console_offers_is_one_the_api_knows() {
        for name in super::TERMINAL_ACTIONS {
            assert!(super::TerminalAction::from_name(name).is_some(), "{name}");
        }
        assert!(super::TerminalAction::from_name("Reboot").is_none(), "names are exact");
    }
}
