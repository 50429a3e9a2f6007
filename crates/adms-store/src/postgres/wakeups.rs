//! Wake-ups across processes on PostgreSQL: `LISTEN`/`NOTIFY`.
//!
//! Writers announce with `pg_notify` inside their transaction (delivered on commit, dropped on
//! rollback); every process listens on one connection of its own. A notification sent while
//! that connection was down is lost, so after a reconnection the listener reports every device
//! that may be waiting (the polling fallback), then goes back to listening.

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::StoreError;

/// The channel that carries the ids of devices that got commands (`,`-separated).
pub(crate) const COMMANDS_CHANNEL: &str = "adms_commands";

/// A listener on [`COMMANDS_CHANNEL`].
pub(crate) struct CommandListener {
    pool: PgPool,
    listener: PgListener,
}

impl CommandListener {
    pub(crate) async fn start(pool: &PgPool) -> Result<CommandListener, StoreError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(COMMANDS_CHANNEL).await?;
        Ok(CommandListener { pool: pool.clone(), listener })
    }

    /// Waits for the next announcement and returns the devices it names, with any others
    /// already waiting. After a lost connection (reconnected before this returns): every device
    /// with a queued command.
    pub(crate) async fn next(&mut self) -> Result<Vec<i64>, StoreError> {
        let first = match self.listener.try_recv().await? {
            Some(notification) => notification,
            None => {
                tracing::warn!("command wake-up connection was lost; waking every device with queued commands");
                let devices: Vec<i64> =
                    sqlx::query_scalar("SELECT DISTINCT device_id FROM device_commands WHERE state = 'queued'")
                        .fetch_all(&self.pool)
                        .await?;
                return Ok(devices);
            }
        };
        let mut devices: Vec<i64> = parse_devices(first.payload()).collect();
        while let Some(more) = self.listener.next_buffered() {
            devices.extend(parse_devices(more.payload()));
        }
        devices.sort_unstable();
        devices.dedup();
        Ok(devices)
    }
}

fn parse_devices(payload: &str) -> impl Iterator<Item = i64> + '_ {
    payload.split(',').filter_map(|id| id.trim().parse().ok())
}
