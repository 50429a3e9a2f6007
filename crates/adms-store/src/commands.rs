//! The persistent command queue: what the server asks each device to do, and what came of it.
//!
//! # Life of a command
//!
//! `queued` → `sent` → `succeeded` | `failed` (with the `Return=` code and its meaning) |
//! `expired`; a queued command can also be `cancelled` (by an operator, or superseded, below).
//!
//! 1. [`Store::enqueue_commands`] validates and encodes each [`DeviceCommand`] (a value that
//!    would inject a field or a line is refused with [`StoreError::InvalidCommand`]) and stores
//!    the exact text, its JSON form and its `expires_at`, all in one transaction. With a
//!    `dedupe_key`, a command whose key is already queued for the device is not added again
//!    when its text is the same ([`EnqueueOutcome::AlreadyQueued`]); when the text differs
//!    (the desired state changed before the device polled), the queued one is cancelled as
//!    superseded and the new one goes to the end of the queue ([`EnqueueOutcome::Superseded`]),
//!    so the device receives the latest desire, once, in the order desires were made.
//! 2. [`Store::take_due_commands`] runs in one transaction per poll: it expires what is due to
//!    expire, then hands out the device's queued commands in id order, plus sent ones that
//!    went unanswered for `resend_after`, up to a count and a byte budget (at least one command
//!    even when it alone is bigger) and never past a `REBOOT`. They become `sent` before the
//!    reply leaves, so a lost reply is only a re-send later. A command handed out
//!    `max_sends` times without an answer expires.
//! 3. [`Store::store_command_results`] (the `/iclock/devicecmd` body) matches each result by
//!    id to **this device's** command: a result for a sent (or expired: the device answered
//!    late) command completes it; duplicates, unknown ids, other devices' ids and never-sent
//!    commands change nothing and are recorded with that outcome in `command_results`.
//! 4. Each command that ends `succeeded`, `failed` or `expired` inserts a `command.completed`
//!    webhook event in the same transaction (while an endpoint exists; the id is derived from
//!    the command and its final state).
//!
//! # For other store code (the roster)
//!
//! `enqueue_commands_in(&mut conn, &[NewCommand], now)` does step 1 inside the caller's
//! transaction, so a roster change and its commands commit together. After the commit, the
//! server must wake the devices concerned (`DeviceRegistry::commands_enqueued`) so their next
//! poll looks at the queue instead of answering `OK` from memory.

use adms_model::CommandState;
use adms_protocol::DeviceCommand;
use adms_protocol::command::{CommandError, return_code_meaning, return_code_succeeded};
use serde::Serialize;

use crate::backend::Db;
use crate::device_events::NewEvent;
use crate::events::{EventDevice, event_body, event_id, event_type, rfc3339_micros};
use crate::postgres::wakeups::CommandListener;
use crate::{Page, Store, StoreError, sealed};
use adms_vault::Sealer;

/// A command to queue.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub device_id: i64,
    pub command: DeviceCommand,
    /// While a command with this key is queued for the device, the same command is not queued
    /// again (e.g. `user:016`).
    pub dedupe_key: Option<String>,
    /// Who asked (`api:<user>`, `terminals:reboot`, `roster`): shown in the API.
    pub source: String,
    /// Unix µs after which it is no longer delivered (or awaited).
    pub expires_at: i64,
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnqueueOutcome {
    /// A new command was queued.
    Queued,
    /// The same command was queued already under the key: nothing added.
    AlreadyQueued,
    /// A different command was queued under the key: it is cancelled and this one queued.
    Superseded { previous: i64 },
}

/// One enqueued command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The command's id (the `C:<id>:` of the device line).
    pub id: i64,
    pub outcome: EnqueueOutcome,
}

/// How polls hand out commands and when unanswered ones are re-sent or expire.
#[derive(Debug, Clone)]
pub struct CommandPolicy {
    /// Commands per poll at most (PushDemo sends up to 200; the original iclock server 200).
    pub max_per_poll: usize,
    /// Bytes of command lines per poll at most (the original server ~40 KB; newer firmware
    /// ~900 KB); a single bigger command is still sent alone.
    pub max_poll_bytes: usize,
    /// A sent command without an answer after this long is sent again (µs).
    pub resend_after_micros: i64,
    /// Hand-outs without an answer before a command expires.
    pub max_sends: i64,
    /// Zone events name for devices without their own (the server default).
    pub default_time_zone: String,
}

impl Default for CommandPolicy {
    fn default() -> Self {
        CommandPolicy {
            max_per_poll: 50,
            max_poll_bytes: 64 * 1024,
            resend_after_micros: 120_000_000,
            max_sends: 3,
            default_time_zone: "UTC".to_owned(),
        }
    }
}

/// A command handed out by a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCommand {
    pub id: i64,
    /// The command text (without `C:<id>:`).
    pub text: String,
}

/// What a poll takes from the queue.
#[derive(Debug, Clone, Default)]
pub struct TakenCommands {
    pub commands: Vec<DueCommand>,
    /// When the device's queue next needs a look (Unix µs): now when commands are left over,
    /// the earliest re-send or expiry otherwise; `None` when nothing is open.
    pub next_due_at: Option<i64>,
    /// Commands this call completed (expired): their events wait for the dispatcher.
    pub completed: usize,
}

/// A command as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommandRow {
    pub id: i64,
    pub device_id: i64,
    pub sn: String,
    pub kind: String,
    /// The JSON form of the [`DeviceCommand`].
    pub params: String,
    /// The exact text sent.
    pub command: String,
    pub dedupe_key: Option<String>,
    pub source: String,
    pub state: String,
    pub return_code: Option<i64>,
    pub result: Option<String>,
    pub result_payload: Option<Vec<u8>>,
    pub send_count: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub expires_at: i64,
}

/// A result from `/iclock/devicecmd`, as received.
#[derive(Debug, Clone)]
pub struct CommandResultRow {
    pub command_id: String,
    pub return_code: Option<i64>,
    pub cmd: String,
    pub head: Vec<u8>,
    pub payload: Vec<u8>,
}

/// How a posted result was matched (stored in `command_results.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    Applied,
    Duplicate,
    UnknownId,
    OtherDevice,
    NotSent,
}

impl ResultOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultOutcome::Applied => "applied",
            ResultOutcome::Duplicate => "duplicate",
            ResultOutcome::UnknownId => "unknown_id",
            ResultOutcome::OtherDevice => "other_device",
            ResultOutcome::NotSent => "not_sent",
        }
    }
}

/// `command.completed`: a command succeeded, failed or expired.
#[derive(Debug, Clone, Serialize)]
pub struct CommandCompletedData<'a> {
    pub device: EventDevice<'a>,
    pub command_id: i64,
    pub kind: &'a str,
    /// The user it was about, when it was about one.
    pub pin: Option<&'a str>,
    pub dedupe_key: Option<&'a str>,
    /// `succeeded`, `failed` or `expired`.
    pub state: &'a str,
    pub return_code: Option<i64>,
    /// The return code's meaning, or why it expired.
    pub result: &'a str,
    pub send_count: i64,
    pub enqueued_at: String,
    pub sent_at: Option<String>,
    pub completed_at: String,
}

/// The id of a command's `command.completed` event: one per command and final state (a late
/// answer after expiry is a second, different event).
pub fn command_completed_event_id(sn: &str, command_id: i64, state: &str) -> String {
    event_id(&[event_type::COMMAND_COMPLETED, sn, &command_id.to_string(), state])
}

impl Store {
    /// Validates, encodes and queues commands in one transaction; ids in input order.
    pub async fn enqueue_commands(&self, commands: &[NewCommand], now: i64) -> Result<Vec<Enqueued>, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let out = dialect::enqueue_commands_in(&mut tx, self.sealer(), commands, now).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Expires due commands, then hands out the device's due commands (see the module docs).
    /// One transaction.
    pub async fn take_due_commands(
        &self,
        device_id: i64,
        now: i64,
        policy: &CommandPolicy,
    ) -> Result<TakenCommands, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let completed = dialect::expire_in(&mut tx, Some(device_id), now, policy).await?;
            // Locked (PostgreSQL; SQLite's write transaction holds the database): a poll of the
            // same device at another process waits here, then finds these commands sent and
            // skips them, so each command is handed to one poll.
            let rows: Vec<(i64, String, String)> = sqlx::query_as(concat!(
                "SELECT id, command, kind FROM device_commands \
                 WHERE device_id = $1 AND state IN ('queued', 'sent') \
                   AND (state = 'queued' OR sent_at <= $2) \
                 ORDER BY id LIMIT $3",
                for_update!()
            ))
            .bind(device_id)
            .bind(now - policy.resend_after_micros)
            .bind(i64::try_from(policy.max_per_poll.max(1)).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            let mut commands = Vec::new();
            let mut bytes = 0usize;
            for (id, text, kind) in rows {
                let text = self.sealer().open(sealed::COMMAND_WIRE.kind, &id.to_string(), &text)?;
                // `C:` + id + `:` + text + LF
                let line_len = text.len() + id.to_string().len() + 4;
                if !commands.is_empty() && bytes + line_len > policy.max_poll_bytes {
                    break;
                }
                bytes += line_len;
                commands.push(DueCommand { id, text });
                if kind == "reboot" {
                    break;
                }
            }
            if !commands.is_empty() {
                let ids = dialect::list_param(&commands.iter().map(|c| c.id).collect::<Vec<_>>());
                sqlx::query(concat!(
                    "UPDATE device_commands SET state = 'sent', sent_at = $1, send_count = send_count + 1 WHERE ",
                    in_list!("id", "$2")
                ))
                .bind(now)
                .bind(ids)
                .execute(&mut *tx)
                .await?;
            }
            let (next_resend, next_expiry): (Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT MIN(CASE state WHEN 'queued' THEN $2 ELSE sent_at + $3 END), MIN(expires_at) \
                 FROM device_commands WHERE device_id = $1 AND state IN ('queued', 'sent')",
            )
            .bind(device_id)
            .bind(now)
            .bind(policy.resend_after_micros)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            let next_due_at = match (next_resend, next_expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Ok(TakenCommands { commands, next_due_at, completed })
        })
    }

    /// Expires every device's commands that are past `expires_at`, or unanswered after
    /// `max_sends` hand-outs (the background sweep, for devices that stopped polling).
    /// Returns how many expired.
    pub async fn expire_due_commands(&self, now: i64, policy: &CommandPolicy) -> Result<usize, StoreError> {
        on_db!(self, |db| {
            let due: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM device_commands WHERE state IN ('queued', 'sent') \
                   AND (expires_at <= $1 OR (state = 'sent' AND send_count >= $2 AND sent_at <= $3)) LIMIT 1",
            )
            .bind(now)
            .bind(policy.max_sends)
            .bind(now - policy.resend_after_micros)
            .fetch_optional(db.pool())
            .await?;
            if due.is_none() {
                return Ok(0);
            }
            let mut tx = db.begin().await?;
            let n = dialect::expire_in(&mut tx, None, now, policy).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Cancels a queued command. `NotFound` when there is none with that id, `Conflict` when it
    /// is no longer queued (sent commands may already have run).
    pub async fn cancel_command(&self, id: i64, why: &str, now: i64) -> Result<CommandRow, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let done = sqlx::query(
                "UPDATE device_commands SET state = 'cancelled', completed_at = $1, result = $2 \
                 WHERE id = $3 AND state = 'queued'",
            )
            .bind(now)
            .bind(why)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let row = dialect::command_in(&mut tx, self.sealer(), id).await?.ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "command {id} is {}, only a queued command can be cancelled",
                    row.state
                )));
            }
            Ok(row)
        })
    }

    /// Cancels every queued command of a device; returns how many.
    pub async fn cancel_queued_commands(&self, device_id: i64, why: &str, now: i64) -> Result<u64, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query(
                "UPDATE device_commands SET state = 'cancelled', completed_at = $1, result = $2 \
                 WHERE device_id = $3 AND state = 'queued'",
            )
            .bind(now)
            .bind(why)
            .bind(device_id)
            .execute(db.pool())
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// The devices that got queued commands with an id above `after_id` (by anyone: this
    /// process or another replica), and the highest such id. Ids ascend in commit order
    /// because SQLite has one writer at a time.
    pub async fn commands_queued_after(&self, after_id: i64) -> Result<(Vec<i64>, i64), StoreError> {
        on_db!(self, |db| {
            // The newest id over every state, so the next look starts after commands that were
            // handed out (or cancelled) before this one saw them.
            let rows: Vec<(i64, i64, bool)> = sqlx::query_as(
                "SELECT device_id, MAX(id), MAX(CASE WHEN state = 'queued' THEN id END) IS NOT NULL FROM device_commands WHERE id > $1 GROUP BY device_id",
            )
            .bind(after_id)
            .fetch_all(db.pool())
            .await?;
            let newest = rows.iter().map(|(_, id, _)| *id).max().unwrap_or(after_id);
            Ok((rows.into_iter().filter(|(_, _, queued)| *queued).map(|(device, _, _)| device).collect(), newest))
        })
    }

    /// The highest command id so far (0 when none).
    pub async fn newest_command_id(&self) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM device_commands").fetch_one(db.pool()).await?)
        })
    }

    /// Starts watching for commands queued by any process on this database (this one
    /// included), so their devices can be woken (see [`CommandWatch`]).
    pub async fn watch_queued_commands(&self) -> Result<CommandWatch, StoreError> {
        match self.db() {
            Db::Sqlite(_) => {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let newest = self.newest_command_id().await?;
                Ok(CommandWatch(Watch::HighWater { store: self.clone(), newest, tick }))
            }
            Db::Postgres(db) => Ok(CommandWatch(Watch::Listen(CommandListener::start(db.pool()).await?))),
        }
    }

    /// One command.
    pub async fn command(&self, id: i64) -> Result<Option<CommandRow>, StoreError> {
        on_db!(self, |db| {
            let mut conn = db.pool().acquire().await?;
            dialect::command_in(&mut conn, self.sealer(), id).await
        })
    }

    /// A device's commands, newest first, optionally in one state; with the total count.
    pub async fn list_commands(
        &self,
        device_id: i64,
        state: Option<&str>,
        page: Page,
    ) -> Result<(i64, Vec<CommandRow>), StoreError> {
        on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM device_commands WHERE device_id = $1 AND ($2 IS NULL OR state = $2)",
            )
            .bind(device_id)
            .bind(state)
            .fetch_one(db.pool())
            .await?;
            let mut rows: Vec<CommandRow> = sqlx::query_as(
                "SELECT c.id, c.device_id, d.sn, c.kind, c.params, c.command, c.dedupe_key, c.source, c.state, \
                        c.return_code, c.result, c.result_payload, c.send_count, c.created_at, c.sent_at, \
                        c.completed_at, c.expires_at \
                 FROM device_commands AS c JOIN devices AS d ON d.id = c.device_id \
                 WHERE c.device_id = $1 AND ($2 IS NULL OR c.state = $2) ORDER BY c.id DESC LIMIT $3 OFFSET $4",
            )
            .bind(device_id)
            .bind(state)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(db.pool())
            .await?;
            for row in &mut rows {
                row.open(self.sealer())?;
            }
            Ok((count, rows))
        })
    }

    /// Stores the results of one devicecmd body and applies them to their commands, in one
    /// transaction (see the module docs). Returns the outcome of each result, in order.
    pub async fn store_command_results(
        &self,
        device_id: i64,
        results: &[CommandResultRow],
        rejected: &[crate::RejectedLine],
        facts: &crate::DeviceFacts,
        received_at: i64,
        policy: &CommandPolicy,
    ) -> Result<Vec<ResultOutcome>, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::store_facts_in(&mut tx, device_id, facts).await?;
            let mut outcomes = Vec::with_capacity(results.len());
            for r in results {
                let outcome = dialect::apply_result_in(&mut tx, device_id, r, received_at, policy).await?;
                sqlx::query(
                    "INSERT INTO command_results (device_id, command_id, return_code, cmd, head, payload, received_at, outcome) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (device_id, command_id, head) DO UPDATE SET seen_count = command_results.seen_count + 1",
                )
                .bind(device_id)
                .bind(&r.command_id)
                .bind(r.return_code)
                .bind(&r.cmd)
                .bind(&r.head)
                .bind(&r.payload)
                .bind(received_at)
                .bind(outcome.as_str())
                .execute(&mut *tx)
                .await?;
                outcomes.push(outcome);
            }
            for r in rejected {
                dialect::insert_rejected(&mut tx, self.sealer(), device_id, r, received_at).await?;
            }
            tx.commit().await?;
            Ok(outcomes)
        })
    }
}

dual! {
    /// [`Store::enqueue_commands`] inside the caller's transaction. The de-duplication check
    /// and the insert are atomic: on SQLite the transaction is a write transaction (`BEGIN
    /// IMMEDIATE`); on PostgreSQL the device row is locked first, so two processes queueing the
    /// same key for one device take turns (the partial unique index `device_commands_dedupe`
    /// would otherwise fail the second). Every device that got a command is announced to the
    /// other processes when the transaction commits (`dialect::announce_commands`).
    pub(crate) async fn enqueue_commands_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        commands: &[NewCommand],
        now: i64,
    ) -> Result<Vec<Enqueued>, StoreError> {
        // The devices whose de-duplicated commands are checked, locked first and in id order (as
        // every transaction that locks several device rows takes them: no cycle of waits).
        let mut deduped: Vec<i64> = commands.iter().filter(|c| c.dedupe_key.is_some()).map(|c| c.device_id).collect();
        deduped.sort_unstable();
        deduped.dedup();
        if !deduped.is_empty() {
            sqlx::query(concat!(
                "SELECT id FROM devices WHERE ",
                in_list!("id", "$1"),
                " ORDER BY id",
                for_no_key_update!()
            ))
            .bind(dialect::list_param(&deduped))
            .execute(&mut *conn)
            .await?;
        }
        let mut out = Vec::with_capacity(commands.len());
        for c in commands {
            let text = c.command.encode().map_err(StoreError::InvalidCommand)?;
            let params = serde_json::to_string(&c.command).unwrap_or_default();
            let mut previous = None;
            if let Some(key) = &c.dedupe_key {
                let queued: Option<(i64, String)> = sqlx::query_as(
                    "SELECT id, command FROM device_commands WHERE device_id = $1 AND dedupe_key = $2 AND state = 'queued'",
                )
                .bind(c.device_id)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some((id, queued_text)) = queued {
                    if sealer.open(sealed::COMMAND_WIRE.kind, &id.to_string(), &queued_text)? == text {
                        out.push(Enqueued { id, outcome: EnqueueOutcome::AlreadyQueued });
                        continue;
                    }
                    previous = Some(id);
                }
            }
            if let Some(old) = previous {
                sqlx::query(
                    "UPDATE device_commands SET state = 'cancelled', completed_at = $1, result = 'superseded' WHERE id = $2",
                )
                .bind(now)
                .bind(old)
                .execute(&mut *conn)
                .await?;
            }
            // Inserted first with empty text: the row's id is part of what seals it.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO device_commands (device_id, command, state, created_at, kind, params, dedupe_key, source, \
                 expires_at, pin) VALUES ($1, '', 'queued', $2, $3, '', $4, $5, $6, $7) RETURNING id",
            )
            .bind(c.device_id)
            .bind(now)
            .bind(c.command.kind())
            .bind(&c.dedupe_key)
            .bind(&c.source)
            .bind(c.expires_at)
            .bind(c.command.pin())
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
                _ => StoreError::Database(e),
            })?;
            let record = id.to_string();
            sqlx::query("UPDATE device_commands SET command = $1, params = $2 WHERE id = $3")
                .bind(sealer.seal(sealed::COMMAND_WIRE.kind, &record, &text))
                .bind(sealer.seal(sealed::COMMAND_PARAMS.kind, &record, &params))
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let outcome = previous.map_or(EnqueueOutcome::Queued, |previous| EnqueueOutcome::Superseded { previous });
            out.push(Enqueued { id, outcome });
        }
        let mut devices: Vec<i64> = commands.iter().map(|c| c.device_id).collect();
        devices.sort_unstable();
        devices.dedup();
        dialect::announce_commands(conn, &devices).await?;
        Ok(out)
    }

    pub(crate) async fn command_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        id: i64,
    ) -> Result<Option<CommandRow>, StoreError> {
        let row: Option<CommandRow> = sqlx::query_as(
            "SELECT c.id, c.device_id, d.sn, c.kind, c.params, c.command, c.dedupe_key, c.source, c.state, \
                    c.return_code, c.result, c.result_payload, c.send_count, c.created_at, c.sent_at, \
                    c.completed_at, c.expires_at \
             FROM device_commands AS c JOIN devices AS d ON d.id = c.device_id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|mut row| row.open(sealer).map(|()| row)).transpose()
    }

    /// Expires one device's (or, with `None`, every device's) due commands, with their events.
    pub(crate) async fn expire_in(
        conn: &mut Conn,
        device_id: Option<i64>,
        now: i64,
        policy: &CommandPolicy,
    ) -> Result<usize, StoreError> {
        let reason_unanswered = format!("no answer after {} sends", policy.max_sends);
        let expired: Vec<i64> = sqlx::query_scalar(
            "UPDATE device_commands SET state = 'expired', completed_at = $1, \
                 result = CASE WHEN expires_at <= $1 THEN \
                     CASE state WHEN 'queued' THEN 'not delivered before it expired' ELSE 'no answer before it expired' END \
                   ELSE $4 END \
             WHERE ($2 IS NULL OR device_id = $2) AND state IN ('queued', 'sent') \
               AND (expires_at <= $1 OR (state = 'sent' AND send_count >= $3 AND sent_at <= $5)) \
             RETURNING id",
        )
        .bind(now)
        .bind(device_id)
        .bind(policy.max_sends)
        .bind(&reason_unanswered)
        .bind(now - policy.resend_after_micros)
        .fetch_all(&mut *conn)
        .await?;
        for id in &expired {
            dialect::insert_completed_event_in(conn, *id, now, policy).await?;
        }
        Ok(expired.len())
    }

    /// Matches one result to this device's command and completes it when it was awaiting one.
    pub(crate) async fn apply_result_in(
        conn: &mut Conn,
        device_id: i64,
        r: &CommandResultRow,
        now: i64,
        policy: &CommandPolicy,
    ) -> Result<ResultOutcome, StoreError> {
        // Our ids are decimal row ids; anything else (`info8487`) was never ours.
        let Some(id) = r.command_id.parse::<i64>().ok().filter(|id| id.to_string() == r.command_id) else {
            return Ok(ResultOutcome::UnknownId);
        };
        let found: Option<(i64, CommandState)> =
            sqlx::query_as("SELECT device_id, state FROM device_commands WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((owner, state)) = found else {
            return Ok(ResultOutcome::UnknownId);
        };
        if owner != device_id {
            return Ok(ResultOutcome::OtherDevice);
        }
        match state {
            CommandState::Sent | CommandState::Expired => {}
            CommandState::Queued | CommandState::Cancelled => return Ok(ResultOutcome::NotSent),
            CommandState::Succeeded | CommandState::Failed => return Ok(ResultOutcome::Duplicate),
        }
        let (new_state, meaning) = match r.return_code {
            Some(code) if return_code_succeeded(code) => (CommandState::Succeeded, return_code_meaning(code)),
            Some(code) => (CommandState::Failed, return_code_meaning(code)),
            None => (CommandState::Failed, "result without a Return= code"),
        };
        let payload = (!r.payload.is_empty()).then_some(&r.payload);
        sqlx::query(
            "UPDATE device_commands SET state = $1, return_code = $2, result = $3, result_payload = $4, completed_at = $5 \
             WHERE id = $6 AND state IN ('sent', 'expired')",
        )
        .bind(new_state)
        .bind(r.return_code)
        .bind(meaning)
        .bind(payload)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        dialect::insert_completed_event_in(conn, id, now, policy).await?;
        Ok(ResultOutcome::Applied)
    }

    /// Inserts the `command.completed` event of a command that just reached a final state.
    pub(crate) async fn insert_completed_event_in(
        conn: &mut Conn,
        id: i64,
        now: i64,
        policy: &CommandPolicy,
    ) -> Result<(), StoreError> {
        let Some(c): Option<CompletedRecord> = sqlx::query_as(
            "SELECT d.sn, d.alias, d.time_zone, c.device_id, c.kind, c.pin, c.dedupe_key, c.state, c.return_code, \
                    c.result, c.send_count, c.created_at, c.sent_at, c.completed_at \
             FROM device_commands AS c JOIN devices AS d ON d.id = c.device_id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(());
        };
        let completed_at = c.completed_at.unwrap_or(now);
        let event_id = command_completed_event_id(&c.sn, id, c.state.as_str());
        let data = CommandCompletedData {
            device: EventDevice {
                sn: &c.sn,
                alias: &c.alias,
                time_zone: c.time_zone.as_deref().unwrap_or(&policy.default_time_zone),
            },
            command_id: id,
            kind: &c.kind,
            pin: c.pin.as_deref(),
            dedupe_key: c.dedupe_key.as_deref(),
            state: c.state.as_str(),
            return_code: c.return_code,
            result: c.result.as_deref().unwrap_or_default(),
            send_count: c.send_count,
            enqueued_at: rfc3339_micros(c.created_at),
            sent_at: c.sent_at.map(rfc3339_micros),
            completed_at: rfc3339_micros(completed_at),
        };
        let body = event_body(&event_id, event_type::COMMAND_COMPLETED, completed_at, &data);
        let event = NewEvent {
            event_id: &event_id,
            event_type: event_type::COMMAND_COMPLETED,
            device_id: c.device_id,
            occurred_at: completed_at,
            created_at: now,
            body: &body,
        };
        dialect::insert_event_in(conn, &event).await?;
        Ok(())
    }
}

impl CommandRow {
    /// Opens the sealed text and parameters as read from the database.
    fn open(&mut self, sealer: Sealer<'_>) -> Result<(), StoreError> {
        let record = self.id.to_string();
        self.command = sealer.open(sealed::COMMAND_WIRE.kind, &record, &self.command)?;
        self.params = sealer.open(sealed::COMMAND_PARAMS.kind, &record, &self.params)?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct CompletedRecord {
    sn: String,
    alias: String,
    time_zone: Option<String>,
    device_id: i64,
    kind: String,
    pin: Option<String>,
    dedupe_key: Option<String>,
    state: CommandState,
    return_code: Option<i64>,
    result: Option<String>,
    send_count: i64,
    created_at: i64,
    sent_at: Option<i64>,
    completed_at: Option<i64>,
}

/// Why an enqueue was refused, for API messages.
pub fn command_error_field(error: &CommandError) -> &'static str {
    match error {
        CommandError::InvalidField { field, .. } => field,
    }
}

/// Devices that got commands queued by any process on the database.
///
/// SQLite: a look every second for command ids above the last seen (its single writer commits
/// ids in ascending order, so none is skipped). PostgreSQL: `LISTEN`, where an id high-water
/// mark would skip a lower id committed later; after a lost connection, every device with a
/// queued command (see `postgres::wakeups`).
pub struct CommandWatch(Watch);

enum Watch {
    HighWater { store: Store, newest: i64, tick: tokio::time::Interval },
    Listen(CommandListener),
}

impl std::fmt::Debug for CommandWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Watch::HighWater { .. } => "CommandWatch(HighWater)",
            Watch::Listen(_) => "CommandWatch(Listen)",
        })
    }
}

impl CommandWatch {
    /// Waits until some devices got commands since the last call, and returns them.
    pub async fn next(&mut self) -> Result<Vec<i64>, StoreError> {
        match &mut self.0 {
            Watch::HighWater { store, newest, tick } => loop {
                tick.tick().await;
                let (devices, id) = store.commands_queued_after(*newest).await?;
                *newest = id;
                if !devices.is_empty() {
                    return Ok(devices);
                }
            },
            Watch::Listen(listener) => listener.next().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_completed_body_shape() {
        let at = 1_795_141_800_000_000;
        let data = CommandCompletedData {
            device: EventDevice { sn: "CKJF0000001", alias: "Gate A", time_zone: "+05:30" },
            command_id: 12,
            kind: "user_upsert",
            pin: Some("016"),
            dedupe_key: Some("user:016"),
            state: "succeeded",
            return_code: Some(0),
            result: "success",
            send_count: 1,
            enqueued_at: rfc3339_micros(at),
            sent_at: Some(rfc3339_micros(at + 7_000_000)),
            completed_at: rfc3339_micros(at + 8_000_000),
        };
        let id = command_completed_event_id("CKJF0000001", 12, "succeeded");
        assert_eq!(id, event_id(&[event_type::COMMAND_COMPLETED, "CKJF0000001", "12", "succeeded"]));
        assert_ne!(id, command_completed_event_id("CKJF0000001", 12, "expired"));
        assert_eq!(
            String::from_utf8(event_body("evt_c", event_type::COMMAND_COMPLETED, at + 8_000_000, &data)).unwrap(),
            r#"{"id":"evt_c","type":"command.completed","timestamp":"2026-11-20T02:30:08Z","api_version":"1","data":{"device":{"sn":"CKJF0000001","alias":"Gate A","time_zone":"+05:30"},"command_id":12,"kind":"user_upsert","pin":"016","dedupe_key":"user:016","state":"succeeded","return_code":0,"result":"success","send_count":1,"enqueued_at":"2026-11-20T02:30:00Z","sent_at":"2026-11-20T02:30:07Z","completed_at":"2026-11-20T02:30:08Z"}}"#
        );
    }
}
