-- Personal data and credentials sealed at rest (see src/sealed.rs). Sealed values carry a fresh
-- nonce each time, so what must stay comparable gets a keyed digest beside it.

-- A card number belongs to one employee: unique over its keyed digest, no longer over the
-- (sealed) number. Filled for existing rows when the server first seals them.
ALTER TABLE employees ADD COLUMN card_index BLOB;
DROP INDEX employees_card;
CREATE UNIQUE INDEX employees_card ON employees (card_index) WHERE card_index IS NOT NULL AND deleted_at IS NULL;

-- The PIN a user or template command is about, in the clear: the roster finds a PIN's queued
-- changes by it, and `params` is sealed.
ALTER TABLE device_commands ADD COLUMN pin TEXT;
UPDATE device_commands SET pin = json_extract(params, '$.pin') WHERE json_valid(params);
CREATE INDEX device_commands_pin ON device_commands (pin, device_id) WHERE pin IS NOT NULL;
