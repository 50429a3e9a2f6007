//! The in-memory view of known devices, so a heartbeat poll costs no database round trip.
//!
//! Each entry holds the stored [`Device`] plus activity observed by this process (last request
//! time, peer IP). Activity is written to the database in batches by [`flush_activity`]; the
//! terminals API overlays the in-memory value, so "online" is exact on this replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use adms_store::{Device, DeviceActivity, NewDevice, Store, StoreError};

/// A known device and what this process saw of it.
#[derive(Debug)]
pub struct DeviceEntry {
    device: RwLock<Device>,
    last_seen: AtomicI64,
    flushed: AtomicI64,
    ip: Mutex<String>,
    /// Hash of the last `INFO=` value stored, so unchanged INFO costs no write.
    info_hash: AtomicU64,
    /// Set while the database says the device is offline (see `device::presence`), so its next
    /// request brings it back online without a read on every poll.
    reported_offline: AtomicBool,
    /// When the device's command queue next needs a look; see [`CommandWake`].
    commands: Mutex<CommandWake>,
}

/// Whether a poll must read the command queue, so a poll with nothing queued stays an
/// in-memory answer. `due_at` is when the queue next needs a look (Unix µs; `i64::MAX` when
/// it is empty); `generation` counts enqueues, so the answer of a poll that read the queue
/// before a concurrent enqueue cannot clear the wake-up that enqueue set.
#[derive(Debug, Clone, Copy)]
struct CommandWake {
    generation: u64,
    due_at: i64,
}

impl CommandWake {
    /// A device just loaded: look at its queue on the first poll (commands may have been
    /// queued before this process started, or by another replica).
    const UNKNOWN: CommandWake = CommandWake { generation: 0, due_at: i64::MIN };
}

impl DeviceEntry {
    pub fn snapshot(&self) -> Device {
        self.device.read().map(|d| d.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn id(&self) -> i64 {
        self.device.read().map_or_else(|p| p.into_inner().id, |d| d.id)
    }

    pub fn approval(&self) -> adms_store::Approval {
        self.device.read().map_or_else(|p| p.into_inner().approval, |d| d.approval)
    }

    pub fn update(&self, f: impl FnOnce(&mut Device)) {
        match self.device.write() {
            Ok(mut d) => f(&mut d),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Notes a request from this device at `now` (Unix µs, the server clock the presence check
    /// compares with).
    pub fn touch(&self, ip: &str, now: i64) {
        self.last_seen.fetch_max(now, Ordering::Relaxed);
        let mut current = self.ip.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_str() != ip {
            ip.clone_into(&mut current);
        }
    }

    pub fn last_seen(&self) -> i64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Notes that the database reports this device offline.
    pub fn set_reported_offline(&self) {
        self.reported_offline.store(true, Ordering::Relaxed);
    }

    /// True once after the device was reported offline (the caller then brings it back).
    pub fn take_reported_offline(&self) -> bool {
        self.reported_offline.swap(false, Ordering::Relaxed)
    }

    /// `Some(generation)` when a poll at `now` must read the command queue.
    pub fn commands_due(&self, now: i64) -> Option<u64> {
        let wake = *self.commands.lock().unwrap_or_else(|p| p.into_inner());
        (wake.due_at <= now).then_some(wake.generation)
    }

    /// What a poll that read the queue at `generation` learned: when it next needs a look
    /// (`None`: nothing open). Ignored when commands were enqueued since.
    pub fn commands_taken(&self, generation: u64, next_due_at: Option<i64>) {
        let mut wake = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        if wake.generation == generation {
            wake.due_at = next_due_at.unwrap_or(i64::MAX);
        }
    }

    /// Commands were committed for this device: its next poll reads the queue.
    pub fn commands_enqueued(&self) {
        let mut wake = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        wake.generation = wake.generation.wrapping_add(1);
        wake.due_at = i64::MIN;
    }

    /// True when `info` differs from the last INFO value recorded.
    pub fn info_changed(&self, info: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        info.hash(&mut h);
        let hash = h.finish();
        self.info_hash.swap(hash, Ordering::Relaxed) != hash
    }
}

/// All devices this process has seen, by serial number.
#[derive(Debug, Default)]
pub struct DeviceRegistry {
    by_sn: RwLock<HashMap<String, Arc<DeviceEntry>>>,
}

impl DeviceRegistry {
    /// The entry for `sn`: cached, or loaded from the store; `None` for a serial number never
    /// seen (the caller decides whether and how to [`register`](Self::register) it).
    ///
    /// A cached device that is not approved has its approval read again: an operator may have
    /// approved it from the CLI or on another replica, and that must count from its next
    /// request, not from this process's restart. Unapproved devices are few, and each of their
    /// requests stores what it carries anyway.
    pub async fn load(&self, store: &Store, sn: &str) -> Result<Option<Arc<DeviceEntry>>, StoreError> {
        if let Some(entry) = self.get(sn) {
            if entry.approval() != adms_store::Approval::Approved
                && let Some(stored) = store.device_by_sn(sn).await?
            {
                entry.update(|d| d.approval = stored.approval);
            }
            return Ok(Some(entry));
        }
        Ok(store.device_by_sn(sn).await?.map(|device| self.cache(sn, device)))
    }

    /// Registers a device on first contact (or takes the row another request or replica
    /// registered meanwhile); `true` when this call registered it (a `device.registered` event
    /// may be waiting).
    pub async fn register(&self, store: &Store, new: &NewDevice<'_>) -> Result<(Arc<DeviceEntry>, bool), StoreError> {
        let sn = new.sn;
        if let Some(entry) = self.get(sn) {
            return Ok((entry, false));
        }
        let (device, registered) = match store.device_by_sn(sn).await? {
            Some(d) => (d, false),
            None => {
                let d = store.register_device(new).await?;
                tracing::info!(
                    sn,
                    approval = d.approval.as_str(),
                    ip = new.ip_address,
                    "device registered on first contact"
                );
                (d, true)
            }
        };
        Ok((self.cache(sn, device), registered))
    }

    fn cache(&self, sn: &str, device: Device) -> Arc<DeviceEntry> {
        let entry = Arc::new(DeviceEntry {
            device: RwLock::new(device),
            last_seen: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
            ip: Mutex::new(String::new()),
            info_hash: AtomicU64::new(0),
            reported_offline: AtomicBool::new(false),
            commands: Mutex::new(CommandWake::UNKNOWN),
        });
        let mut map = self.by_sn.write().unwrap_or_else(|p| p.into_inner());
        map.entry(sn.to_owned()).or_insert(entry).clone()
    }

    pub fn get(&self, sn: &str) -> Option<Arc<DeviceEntry>> {
        self.by_sn.read().unwrap_or_else(|p| p.into_inner()).get(sn).cloned()
    }

    /// Wakes the devices (by id) that commands were just committed for. Devices not cached
    /// here read their queue on their first poll anyway.
    pub fn commands_enqueued(&self, device_ids: &[i64]) {
        let map = self.by_sn.read().unwrap_or_else(|p| p.into_inner());
        for entry in map.values().filter(|e| device_ids.contains(&e.id())) {
            entry.commands_enqueued();
        }
    }

    /// Wakes every cached device: each next poll reads its queue once (after the cross-process
    /// wake-ups were lost for a while, commands queued meanwhile elsewhere are found so).
    pub fn wake_all(&self) {
        for entry in self.by_sn.read().unwrap_or_else(|p| p.into_inner()).values() {
            entry.commands_enqueued();
        }
    }

    /// Marks pending the cached devices among `pending` (serial numbers the database holds as
    /// pending) that this process still holds as approved: an approval withdrawn from the CLI or
    /// on another replica counts from the device's next request here. Returns their serial
    /// numbers.
    pub fn withdraw_approvals(&self, pending: &[String]) -> Vec<String> {
        let map = self.by_sn.read().unwrap_or_else(|p| p.into_inner());
        let mut withdrawn = Vec::new();
        for sn in pending {
            if let Some(entry) = map.get(sn)
                && entry.approval() == adms_store::Approval::Approved
            {
                entry.update(|d| d.approval = adms_store::Approval::Pending);
                withdrawn.push(sn.clone());
            }
        }
        withdrawn
    }

    /// How many cached devices made a request at or after `since` (µs).
    pub fn seen_since(&self, since: i64) -> usize {
        self.by_sn.read().unwrap_or_else(|p| p.into_inner()).values().filter(|e| e.last_seen() >= since).count()
    }

    /// Drops a cached device so the next request reloads it (after an operator change).
    pub fn invalidate(&self, sn: &str) {
        self.by_sn.write().unwrap_or_else(|p| p.into_inner()).remove(sn);
    }

    /// Activity not yet written to the database.
    fn pending_activity(&self) -> Vec<(Arc<DeviceEntry>, DeviceActivity)> {
        let map = self.by_sn.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter_map(|e| {
                let seen = e.last_seen();
                (seen > e.flushed.load(Ordering::Relaxed)).then(|| {
                    let ip = e.ip.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    (e.clone(), DeviceActivity { device_id: e.id(), at_micros: seen, ip_address: ip })
                })
            })
            .collect()
    }
}

/// Writes pending activity in one transaction.
pub async fn flush_activity(registry: &DeviceRegistry, store: &Store) -> Result<usize, StoreError> {
    let pending = registry.pending_activity();
    if pending.is_empty() {
        return Ok(0);
    }
    let rows: Vec<DeviceActivity> = pending.iter().map(|(_, a)| a.clone()).collect();
    store.record_activity(&rows).await?;
    for (entry, a) in &pending {
        entry.flushed.fetch_max(a.at_micros, Ordering::Relaxed);
    }
    Ok(rows.len())
}
