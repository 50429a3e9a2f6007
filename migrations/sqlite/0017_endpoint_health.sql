-- Each webhook endpoint's health, kept where completions are recorded: failed attempts in a row
-- since its last success, since when it has been failing, and when it last succeeded and failed
-- (times of the dispatcher's clock). An endpoint that answers again after failing for a while
-- has its waiting deliveries made due at once (`complete_deliveries`), and the counters are
-- what the metrics and the backlog report per endpoint.
--
-- Expand only (see README.md): columns with defaults; a previous release ignores them.
ALTER TABLE webhook_endpoints ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN last_success_at BIGINT;
ALTER TABLE webhook_endpoints ADD COLUMN last_failure_at BIGINT;
ALTER TABLE webhook_endpoints ADD COLUMN failing_since BIGINT;
-- An endpoint that has given-up deliveries failed last: its next success re-drives them.
UPDATE webhook_endpoints SET consecutive_failures = 1
WHERE EXISTS (SELECT 1 FROM webhook_deliveries AS d WHERE d.endpoint_id = webhook_endpoints.id AND d.state = 'exhausted');
