//! What only PostgreSQL needs: its side of the paths whose concurrency design is per engine.

pub(crate) mod access_log;
pub(crate) mod activity;
pub(crate) mod bulk;
pub(crate) mod outbox;
pub(crate) mod punch_writer;
pub(crate) mod statistics;
pub(crate) mod wakeups;
