-- The operator console at 10,000 devices and 10 million punches (issue 18): see
-- `sqlite/0021_console_indexes.sql`. PostgreSQL already finds a device's punches through
-- `punches_device_seq`, but counting the ones received today read every punch of the device
-- from the heap; `(device_id, received_at)` answers the count from the index and the newest
-- punches by walking it backwards.
--
-- Expand only (see README.md): an index; a previous release ignores it.
CREATE INDEX punches_device_received_at ON punches (device_id, received_at);
