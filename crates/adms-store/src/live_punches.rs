//! Following punches as they are stored, for the console's live page: [`PunchFollower`] hands
//! out, batch by batch, every punch committed since it started, on both engines and across
//! replicas (it reads the shared database, not this process's writer).
//!
//! Why a cursor on `id` alone is not enough, and what it does instead: on PostgreSQL a punch's
//! id is taken from the sequence when the row is inserted, but the transaction commits later,
//! and several punch writers (threads, replicas) commit side by side, so a reader can see id 8
//! committed while id 7 is still in flight; "everything after the last id seen" would then skip
//! 7 for ever. (`received_at` has the same problem: it is set before the commit too.) On SQLite
//! ids are handed out under the one writer in commit order, so this never happens there, but
//! the same follower serves both. The follower therefore remembers the **holes**: every id below
//! its high-water mark that it has not seen, for [`LATE_COMMIT_WINDOW`] after it first noticed
//! the hole, and asks for them again on every batch. A hole is either a transaction still in
//! flight (it fills, and the punch is handed out then) or an id that will never exist (a rolled
//! back insert, a sequence value an `ON CONFLICT` consumed), which expires. Each batch costs a
//! range read of the primary key past the mark, a lookup of the remembered holes by key, and one
//! read of the rows found; nothing re-reads a trailing window of rows already sent.
//!
//! What can still be left out, and says so: a punch committed more than
//! [`LATE_COMMIT_WINDOW`] after its id was taken (a writer transaction open that long has
//! failed long before: statement timeouts and the device's own request timeout are far
//! shorter), and punches arriving faster than the page can show, which are **counted**, never
//! silently dropped ([`LiveBatch::not_shown`]): more than [`SCAN_LIMIT`] new ids in one batch
//! make the follower jump to the newest id and count what it jumped over, and more than
//! [`ROWS_PER_BATCH`] matching rows are cut to the newest.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::FromRow;

use crate::{Store, StoreError};

/// How long an id below the high-water mark is waited for.
pub const LATE_COMMIT_WINDOW: Duration = Duration::from_secs(30);
/// New ids one batch reads at most (at four batches a second, 20,000 punches/s); past it the
/// follower jumps to the newest punch and counts the rest as not shown.
pub const SCAN_LIMIT: i64 = 5_000;
/// Rows one batch hands out at most: a page keeps about as many.
pub const ROWS_PER_BATCH: usize = 500;
/// Holes remembered at most; past it the oldest are given up (and counted).
pub const MAX_HOLES: usize = 10_000;

/// A punch as the live page shows it.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct LivePunch {
    pub id: i64,
    pub sn: String,
    pub alias: String,
    pub pin: String,
    /// The roster's name for the PIN, else the name the device reported.
    pub name: Option<String>,
    /// Device-local time, as the device wrote it.
    pub local_time: String,
    pub state: String,
    pub verify: i64,
    pub received_at: i64,
}

/// Which punches a follower hands out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveFilter {
    /// Only this device's, by serial number.
    pub device_sn: Option<String>,
    /// Only this PIN's.
    pub pin: Option<String>,
}

/// What one batch found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveBatch {
    /// The punches, oldest id first (a late commit comes in the batch that found it).
    pub punches: Vec<LivePunch>,
    /// Punches stored but not handed out because they came too fast (see the module docs);
    /// with a filter, an upper bound (the punches jumped over were not read to filter them).
    pub not_shown: u64,
    /// The high-water mark after this batch: a follower resumed after it (the SSE
    /// `Last-Event-ID`) misses nothing committed in order.
    pub after_id: i64,
}

/// A cursor over stored punches that skips none committed out of id order (module docs).
#[derive(Debug)]
pub struct PunchFollower {
    filter: LiveFilter,
    /// Every id at or below it was handed out, is in `holes`, or was given up on.
    after_id: i64,
    /// Ids below `after_id` not seen yet, oldest first, with when they were first missed.
    holes: VecDeque<(i64, Instant)>,
}

impl PunchFollower {
    /// A follower of the punches stored from now on.
    pub async fn from_now(store: &Store, filter: LiveFilter) -> Result<PunchFollower, StoreError> {
        let after_id = store.newest_punch_id().await?;
        Ok(PunchFollower::after(after_id, filter))
    }

    /// A follower of the punches with ids above `after_id` (a stream resumed where it ended).
    pub fn after(after_id: i64, filter: LiveFilter) -> PunchFollower {
        PunchFollower { filter, after_id, holes: VecDeque::new() }
    }

    /// The high-water mark.
    pub fn after_id(&self) -> i64 {
        self.after_id
    }

    /// Holes waited for now (for tests and logs).
    pub fn holes(&self) -> usize {
        self.holes.len()
    }

    /// The punches committed since the previous batch (module docs), `now` being the clock
    /// holes expire on.
    pub async fn next_batch(&mut self, store: &Store, now: Instant) -> Result<LiveBatch, StoreError> {
        let mut not_shown = 0u64;
        while self.holes.front().is_some_and(|(_, since)| now.saturating_duration_since(*since) > LATE_COMMIT_WINDOW) {
            self.holes.pop_front();
        }
        // Holes that filled since: late commits.
        let mut found = Vec::new();
        if !self.holes.is_empty() {
            let asked: Vec<i64> = self.holes.iter().map(|(id, _)| *id).collect();
            let filled = store.punch_ids_among(&asked).await?;
            if !filled.is_empty() {
                self.holes.retain(|(id, _)| filled.binary_search(id).is_err());
                found.extend(filled);
            }
        }
        let fresh = store.punch_ids_after(self.after_id, SCAN_LIMIT + 1).await?;
        if fresh.len() as i64 > SCAN_LIMIT {
            // Faster than a page can follow: start again at the newest punch, counting the ids
            // jumped over (holes among them included: an upper bound).
            let newest = store.newest_punch_id().await?;
            not_shown += u64::try_from(newest - self.after_id).unwrap_or(0);
            self.after_id = newest;
        } else {
            let mut expected = self.after_id + 1;
            for &id in &fresh {
                for hole in expected..id {
                    self.holes.push_back((hole, now));
                }
                expected = id + 1;
            }
            if let Some(&last) = fresh.last() {
                self.after_id = last;
            }
            found.extend(fresh);
            while self.holes.len() > MAX_HOLES {
                self.holes.pop_front();
                not_shown += 1;
            }
        }
        found.sort_unstable();
        let mut punches = if found.is_empty() { Vec::new() } else { store.live_punches(&found, &self.filter).await? };
        if punches.len() > ROWS_PER_BATCH {
            let cut = punches.len() - ROWS_PER_BATCH;
            not_shown += cut as u64;
            punches.drain(..cut);
        }
        Ok(LiveBatch { punches, not_shown, after_id: self.after_id })
    }
}

impl Store {
    /// The largest punch id (0 without punches).
    pub async fn newest_punch_id(&self) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM punches")
                .fetch_one(db.pool())
                .await?
                .unwrap_or(0))
        })
    }

    /// The ids of committed punches above `after_id`, ascending, at most `limit` (the primary
    /// key's range).
    pub async fn punch_ids_after(&self, after_id: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT id FROM punches WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after_id)
                .bind(limit)
                .fetch_all(db.pool())
                .await?)
        })
    }

    /// Which of `ids` are committed punches, ascending.
    pub async fn punch_ids_among(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_db!(self, |db| {
            Ok(sqlx::query_scalar(concat!("SELECT id FROM punches WHERE ", in_list!("id", "$1"), " ORDER BY id"))
                .bind(dialect::list_param(ids))
                .fetch_all(db.pool())
                .await?)
        })
    }

    /// The punches among `ids` that `filter` takes, with their device and name, ascending.
    pub async fn live_punches(&self, ids: &[i64], filter: &LiveFilter) -> Result<Vec<LivePunch>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_db!(self, |db| {
            Ok(sqlx::query_as(concat!(
                "SELECT p.id, d.sn, d.alias, p.pin, \
                        COALESCE(NULLIF(TRIM(e.first_name || ' ' || e.last_name), ''), u.name) AS name, \
                        p.local_time, p.state, p.verify, p.received_at \
                 FROM punches AS p JOIN devices AS d ON d.id = p.device_id \
                 LEFT JOIN employees AS e ON e.emp_code = p.pin \
                 LEFT JOIN device_users AS u ON u.device_id = p.device_id AND u.pin = p.pin \
                 WHERE ",
                in_list!("p.id", "$1"),
                " AND ($2 IS NULL OR d.sn = $2) AND ($3 IS NULL OR p.pin = $3) ORDER BY p.id"
            ))
            .bind(dialect::list_param(ids))
            .bind(filter.device_sn.as_deref())
            .bind(filter.pin.as_deref())
            .fetch_all(db.pool())
            .await?)
        })
    }
}
