-- The command queue (`crate::commands`). `device_commands` exists since 0001 with id, device,
-- wire text, state, created/sent/completed times and the return code; this adds what the
-- queue needs.
--
-- state: 'queued' → 'sent' → 'succeeded' | 'failed' | 'expired'; 'queued' → 'cancelled'.
-- A row's id is the `C:<id>:` the device echoes in its result.

-- The command's JSON type (`user_upsert`, `reboot`, ...) and its typed JSON form; `command`
-- stays the exact text sent.
ALTER TABLE device_commands ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE device_commands ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
-- Caller's de-duplication key: while a command with the same key is queued for the device, an
-- enqueue of the same text adds nothing and one of a different text supersedes it.
ALTER TABLE device_commands ADD COLUMN dedupe_key TEXT;
-- Who queued it (`api:<user>`, `terminals:<action>`, `roster`, ...).
ALTER TABLE device_commands ADD COLUMN source TEXT NOT NULL DEFAULT '';
-- How many polls handed it out; re-sent while unanswered, up to the configured maximum.
ALTER TABLE device_commands ADD COLUMN send_count INTEGER NOT NULL DEFAULT 0;
-- Not delivered or not answered by then: expired (Unix µs).
ALTER TABLE device_commands ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 9223372036854775807;
-- What the result means (the return code's meaning, the expiry or cancel reason).
ALTER TABLE device_commands ADD COLUMN result TEXT;
-- Payload that came with the result (INFO options, Shell output), as received.
ALTER TABLE device_commands ADD COLUMN result_payload BLOB;

CREATE UNIQUE INDEX device_commands_dedupe ON device_commands (device_id, dedupe_key)
    WHERE state = 'queued' AND dedupe_key IS NOT NULL;
-- A poll reads the open commands of one device in id order.
CREATE INDEX device_commands_open ON device_commands (device_id, id) WHERE state IN ('queued', 'sent');
CREATE INDEX device_commands_expiry ON device_commands (expires_at) WHERE state IN ('queued', 'sent');
CREATE INDEX device_commands_by_device ON device_commands (device_id, id);

-- How each posted result was matched: 'applied' (it completed its command), 'duplicate' (the
-- command had completed already), 'unknown_id', 'other_device' (the id belongs to another
-- device's command), 'not_sent' (a command never handed out: cancelled or still queued).
ALTER TABLE command_results ADD COLUMN outcome TEXT NOT NULL DEFAULT 'unknown_id';
-- The same result line posted again counts here instead of adding a row.
ALTER TABLE command_results ADD COLUMN seen_count INTEGER NOT NULL DEFAULT 1;

-- DELETE /iclock/api/terminals/{id}/: the terminal is hidden from the terminals API and its
-- queued commands are cancelled; its punches stay. Its next request brings it back (as ZKBio
-- Time re-adds a terminal that keeps pushing).
ALTER TABLE devices ADD COLUMN deleted_at INTEGER;
