//! Login throttling: what a wrong password may cost the server, and how often one may be tried.
//!
//! - **Bounded hashing.** A password check is argon2 with ~19 MiB of memory. At most
//!   `login_hash_concurrency` checks run at once, each on one of that many dedicated threads; a
//!   login that cannot start one within `login_hash_wait_ms` gets 429. The permit moves into
//!   the check, so a client that hangs up mid-check cannot free its slot before the hash is
//!   done. Dedicated threads rather than the blocking pool: glibc gives each new thread its own
//!   malloc arena and keeps a freed hash buffer there, so checks spread over the blocking
//!   pool's changing threads left ~400 MiB resident after 192 of them even with two at a time;
//!   on the same few threads each buffer is reused by the next check.
//! - **Failures per (username, client address).** After a few failures the pair must wait
//!   before trying again (2 s after the 3rd, 4 s after the 4th, doubling up to 60 s), and after
//!   `login_user_failures` within `login_window_secs` (a window starts at the pair's first
//!   failure) it is locked out until the window ends: refused with 429 **without** a hash, even
//!   with the right password. A success clears the pair.
//! - **Failures per client address** (any username): `login_address_failures` within the
//!   window locks the address out, so one address cannot spray passwords over many names.
//!
//! The lock-out is keyed on the pair and the address, never on the username alone: an attacker
//! at one address cannot lock the account's owner out from another address (which a per-user
//! lock would allow anyone to do). The price is that an attacker with many addresses gets
//! `login_user_failures` guesses per address and window; the bound on concurrent hashes still
//! caps the guessing rate of the whole server. IPv6 clients are keyed by their /64, which one
//! host usually has to itself. Behind a reverse proxy every client has the proxy's address, so
//! the per-address limit applies to all of them together (forwarded headers are not trusted).
//!
//! Attempts in flight count as failures until they are answered, so a burst of concurrent
//! wrong logins for one pair runs at most `login_user_failures` hashes, not one per request.
//! The tables are per process and bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failures of a pair answered without a delay before the next attempt.
const FREE_FAILURES: u32 = 2;
/// Longest delay between two attempts of a pair (before its lock-out).
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Entries per table before old ones are dropped (each is a few dozen bytes).
const MAX_ENTRIES: usize = 50_000;

pub use crate::config::LoginLimits;

/// Why a login was not tried: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after: Duration,
    pub reason: RefusalReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The pair or the address failed too often (delay or lock-out).
    Throttled,
    /// Every password check slot stayed busy.
    Busy,
}

impl Refusal {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// Counters for `/metrics` (registered by [`crate::telemetry::metrics`]).
#[derive(Debug, Default)]
pub struct LoginMetrics {
    /// Password checks run (argon2), the dummy checks for unknown users included.
    pub password_checks: Counter,
    /// Wrong credentials.
    pub failures: Counter,
    /// Attempts refused by the throttle (delay or lock-out), no check run.
    pub throttled: Counter,
    /// Attempts refused because no check slot came free in time.
    pub busy: Counter,
}

/// Failures of one key in the current window.
#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    last_failure: Instant,
    in_flight: u32,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry { window_start: now, failures: 0, last_failure: now, in_flight: 0 }
    }

    /// Forgets the failures of a window that has passed.
    fn roll(&mut self, now: Instant, window: Duration) {
        if self.failures > 0 && now >= self.window_start + window {
            self.failures = 0;
        }
    }

    /// Records a failure; a window starts at the first one.
    fn fail(&mut self, now: Instant, window: Duration) {
        self.roll(now, window);
        if self.failures == 0 {
            self.window_start = now;
        }
        self.failures += 1;
        self.last_failure = now;
    }

    /// When a refused key may try again: the end of its window, or (refused only for attempts
    /// still in flight) in a second.
    fn retry_at(&self, now: Instant, window: Duration) -> Instant {
        if self.failures == 0 { now + Duration::from_secs(1) } else { self.window_start + window }
    }

    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0 && (self.failures == 0 || now >= self.window_start + window)
    }
}

#[derive(Debug, Default)]
struct Tables {
    pairs: HashMap<[u8; 32], Entry>,
    addresses: HashMap<IpAddr, Entry>,
}

/// Throttles logins and bounds concurrent password checks. One per process.
#[derive(Debug)]
pub struct LoginGuard {
    limits: LoginLimits,
    hashes: Arc<Semaphore>,
    pool: HashPool,
    tables: Mutex<Tables>,
    pub metrics: LoginMetrics,
}

/// The password check threads have stopped (one panicked, or the process is ending).
#[derive(Debug, thiserror::Error)]
#[error("the password check threads have stopped")]
pub struct HashPoolStopped;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads running password checks (see the module docs for why not the
/// blocking pool). They end when the pool is dropped.
#[derive(Debug)]
struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    fn start(threads: usize) -> std::io::Result<HashPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new().name(format!("password-check-{i}")).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok(job) = job else { break };
                    // A panicking check loses its answer (the caller gets an error), not the thread.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("password check panicked");
                    }
                }
            })?;
        }
        Ok(HashPool { jobs })
    }
}

/// An admitted attempt: counted as in flight until [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropped without either (storage error, client gone, no check slot),
/// it counts as nothing.
#[derive(Debug)]
pub struct Attempt<'a> {
    guard: &'a LoginGuard,
    pair: [u8; 32],
    address: IpAddr,
    settled: bool,
}

impl LoginGuard {
    /// Starts the `hash_concurrency` password check threads.
    pub fn new(limits: LoginLimits) -> std::io::Result<LoginGuard> {
        Ok(LoginGuard {
            hashes: Arc::new(Semaphore::new(limits.hash_concurrency.max(1))),
            pool: HashPool::start(limits.hash_concurrency)?,
            limits,
            tables: Mutex::new(Tables::default()),
            metrics: LoginMetrics::default(),
        })
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // The tables stay consistent if a holder panicked: every update is a few field writes.
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a login attempt for `username` from `client`, or says when to retry.
    pub fn admit(&self, username: &str, client: IpAddr, now: Instant) -> Result<Attempt<'_>, Refusal> {
        let address = address_key(client);
        let pair = pair_key(username, address);
        let window = self.limits.window;
        let mut tables = self.tables();
        let Tables { pairs, addresses } = &mut *tables;
        let mut pair_entry = pairs.get(&pair).copied().unwrap_or_else(|| Entry::new(now));
        let mut address_entry = addresses.get(&address).copied().unwrap_or_else(|| Entry::new(now));
        pair_entry.roll(now, window);
        address_entry.roll(now, window);
        let refusal = |until: Instant| {
            self.metrics.throttled.inc();
            Refusal { retry_after: until.saturating_duration_since(now), reason: RefusalReason::Throttled }
        };
        if address_entry.failures + address_entry.in_flight >= self.limits.per_address {
            return Err(refusal(address_entry.retry_at(now, window)));
        }
        if pair_entry.failures + pair_entry.in_flight >= self.limits.per_user {
            return Err(refusal(pair_entry.retry_at(now, window)));
        }
        let not_before = pair_entry.last_failure + delay_after(pair_entry.failures);
        if pair_entry.failures > 0 && now < not_before {
            return Err(refusal(not_before));
        }
        pair_entry.in_flight += 1;
        address_entry.in_flight += 1;
        insert_bounded(pairs, pair, pair_entry, now, window);
        insert_bounded(addresses, address, address_entry, now, window);
        Ok(Attempt { guard: self, pair, address, settled: false })
    }

    /// A slot to run one password check in; moves into the blocking task that runs it.
    pub async fn hash_permit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        match tokio::time::timeout(self.limits.hash_wait, Arc::clone(&self.hashes).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (or the semaphore closed, which this code never does).
            _ => {
                self.metrics.busy.inc();
                Err(Refusal { retry_after: Duration::from_secs(1), reason: RefusalReason::Busy })
            }
        }
    }

    /// Ends an attempt; returns whether its failure locked the pair or the address out (one
    /// log line per lock-out rather than one per refused attempt).
    /// Runs `check` on a password check thread, holding `permit` until it is done (even if the
    /// caller stops waiting), and counts it.
    pub async fn run_check(
        &self,
        permit: OwnedSemaphorePermit,
        check: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<bool, HashPoolStopped> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            // The caller may have gone (client hung up): nobody to tell.
            let _ = answer.send(check());
        });
        self.pool.jobs.send(job).map_err(|_| HashPoolStopped)?;
        let matched = answered.await.map_err(|_| HashPoolStopped)?;
        self.metrics.password_checks.inc();
        Ok(matched)
    }

    fn settle(&self, attempt: &Attempt<'_>, failed: bool, now: Instant) -> bool {
        let window = self.limits.window;
        let mut tables = self.tables();
        let mut locked = false;
        if let Some(entry) = tables.pairs.get_mut(&attempt.pair) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if failed {
                entry.fail(now, window);
                locked |= entry.failures == self.limits.per_user;
            } else if entry.in_flight == 0 {
                // A success clears the pair (not the address: one valid account must not
                // reset the count of an address spraying other names).
                tables.pairs.remove(&attempt.pair);
            } else {
                entry.failures = 0;
            }
        }
        if let Some(entry) = tables.addresses.get_mut(&attempt.address) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if failed {
                entry.fail(now, window);
                locked |= entry.failures == self.limits.per_address;
            }
        }
        locked
    }
}

impl Attempt<'_> {
    /// The credentials were right: the pair's failures are forgotten.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.guard.settle(&self, false, Instant::now());
    }

    /// The credentials were wrong. Returns whether this failure locked the pair or the
    /// address out.
    pub fn failed(mut self) -> bool {
        self.settled = true;
        self.guard.metrics.failures.inc();
        self.guard.settle(&self, true, Instant::now())
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut tables = self.guard.tables();
            if let Some(entry) = tables.pairs.get_mut(&self.pair) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
            }
            if let Some(entry) = tables.addresses.get_mut(&self.address) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
            }
        }
    }
}

/// The wait imposed after `failures` failures of a pair.
fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(6);
    Duration::from_secs(1 << doublings).min(MAX_DELAY)
}

/// The address a client is counted under: IPv4 as is (IPv4-mapped IPv6 included), IPv6 by /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// The pair's key: a digest, so a long username costs the table nothing.
fn pair_key(username: &str, address: IpAddr) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(address.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(username.as_bytes());
    hasher.finalize().into()
}

/// Inserts `entry`, first dropping idle entries when the table is full, then (should an
/// attacker with many addresses still fill it) the tenth with the oldest failures. Evicting
/// rather than refusing keeps a full table from locking everyone out.
fn insert_bounded<K: std::hash::Hash + Eq + Copy>(
    table: &mut HashMap<K, Entry>,
    key: K,
    entry: Entry,
    now: Instant,
    window: Duration,
) {
    if table.len() >= MAX_ENTRIES && !table.contains_key(&key) {
        table.retain(|_, e| !e.idle(now, window));
        if table.len() >= MAX_ENTRIES {
            let mut by_age: Vec<(Instant, K)> =
                table.iter().filter(|(_, e)| e.in_flight == 0).map(|(k, e)| (e.last_failure, *k)).collect();
            by_age.sort_unstable_by_key(|(at, _)| *at);
            for (_, k) in by_age.into_iter().take(MAX_ENTRIES / 10) {
                table.remove(&k);
            }
        }
    }
    table.insert(key, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_user: u32, per_address: u32) -> LoginGuard {
        LoginGuard::new(LoginLimits {
            hash_concurrency: 2,
            hash_wait: Duration::from_millis(10),
            window: Duration::from_secs(900),
            per_user,
            per_address,
        })
        .expect("threads")
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn fail_at(g: &LoginGuard, user: &str, ip: IpAddr, now: Instant) {
        let attempt = g.admit(user, ip, now).expect("admitted");
        g.settle(&attempt, true, now);
        std::mem::forget(attempt);
    }

    #[test]
    fn delays_grow_then_the_pair_is_locked_until_the_window_ends() {
        let g = guard(5, 20);
        let t0 = Instant::now();
        fail_at(&g, "admin", A, t0);
        fail_at(&g, "admin", A, t0);
        fail_at(&g, "admin", A, t0);
        // Third failure: 2 s before the next attempt.
        assert_eq!(g.admit("admin", A, t0).unwrap_err().retry_after, Duration::from_secs(2));
        fail_at(&g, "admin", A, t0 + Duration::from_secs(2));
        assert_eq!(g.admit("admin", A, t0 + Duration::from_secs(2)).unwrap_err().retry_after, Duration::from_secs(4));
        fail_at(&g, "admin", A, t0 + Duration::from_secs(6));
        // Fifth failure: locked until 15 minutes after the first, whatever the password.
        let locked = g.admit("admin", A, t0 + Duration::from_secs(100)).unwrap_err();
        assert_eq!(locked.retry_after, Duration::from_secs(800));
        assert_eq!(locked.reason, RefusalReason::Throttled);
        // The same user from another address, and another user from this one, are not affected.
        assert!(g.admit("admin", B, t0 + Duration::from_secs(100)).is_ok());
        assert!(g.admit("other", A, t0 + Duration::from_secs(100)).is_ok());
        // After the window the pair starts afresh.
        assert!(g.admit("admin", A, t0 + Duration::from_secs(900)).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let g = guard(5, 20);
        let now = Instant::now();
        let admitted: Vec<_> = (0..64).filter_map(|_| g.admit("admin", A, now).ok()).collect();
        assert_eq!(admitted.len(), 5);
        // Dropped without an outcome (no check slot, client gone): they count as nothing.
        drop(admitted);
        let again: Vec<_> = (0..64).filter_map(|_| g.admit("admin", A, now).ok()).collect();
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn an_address_spraying_names_is_locked_out() {
        let g = guard(5, 20);
        let now = Instant::now();
        for i in 0..20 {
            fail_at(&g, &format!("user{i}"), A, now);
        }
        assert!(g.admit("admin", A, now).is_err());
        assert!(g.admit("admin", B, now).is_ok());
    }

    #[test]
    fn a_success_clears_the_pair() {
        let g = guard(5, 20);
        let now = Instant::now();
        fail_at(&g, "admin", A, now);
        fail_at(&g, "admin", A, now);
        g.admit("admin", A, now).unwrap().succeeded();
        assert!(g.tables().pairs.is_empty());
        assert_eq!(g.tables().addresses[&A].failures, 2, "the address keeps its count");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), A);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = |ms| Refusal { retry_after: Duration::from_millis(ms), reason: RefusalReason::Busy }.retry_after_secs();
        assert_eq!((r(0), r(1), r(1000), r(1001)), (1, 1, 1, 2));
    }

    #[tokio::test]
    async fn checks_beyond_the_concurrency_wait_then_are_refused() {
        let g = guard(5, 20);
        let first = g.hash_permit().await.unwrap();
        let _second = g.hash_permit().await.unwrap();
        let refused = g.hash_permit().await.unwrap_err();
        assert_eq!(refused.reason, RefusalReason::Busy);
        drop(first);
        let third = g.hash_permit().await.unwrap();
        // The permit is held by the check and returned when it is done.
        assert!(g.run_check(third, || true).await.unwrap());
        assert!(!g.run_check(g.hash_permit().await.unwrap(), || false).await.unwrap());
        assert_eq!(g.metrics.password_checks.get(), 2);
    }
}
