-- Device presence, for device.online / device.offline events, and a roster revision for
-- user.updated event ids.
--
-- presence: 'online', 'offline', or 'unknown' (devices stored before this migration, until the
-- presence check first looks at them). It changes only by a conditional UPDATE in the same
-- transaction as its event, so with several replicas exactly one of them emits each transition.
ALTER TABLE devices ADD COLUMN presence TEXT NOT NULL DEFAULT 'unknown'
    CHECK (presence IN ('online', 'offline', 'unknown'));
-- When presence last changed (Unix µs); for an offline device, when it was marked offline.
ALTER TABLE devices ADD COLUMN presence_changed_at INTEGER;

-- How many times the stored fields of this user changed after enrolment. Part of the
-- user.updated event id, so a user changed back to an earlier state and then forward again
-- gets a new event instead of colliding with the first one.
ALTER TABLE device_users ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
