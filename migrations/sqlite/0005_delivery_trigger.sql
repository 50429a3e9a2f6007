-- Why a delivery's next attempt happens: 'scheduled' (the outbox and its retries), 'manual'
-- (resend through the API) or 'replay'; copied onto the attempt row, then back to 'scheduled'
-- for any retries after it.
ALTER TABLE webhook_deliveries ADD COLUMN trigger_kind TEXT NOT NULL DEFAULT 'scheduled';
