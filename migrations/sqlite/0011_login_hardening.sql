-- Tokens end with the account state they were issued under.
--
-- token_version: carried by every JWT (claim `ver`); bumped when the password changes or the
-- account is disabled, which refuses every JWT issued before. Session tokens are revoked in the
-- same transaction (they are rows, so they can be).
-- disabled_at: a disabled account cannot log in and none of its tokens is accepted.
-- bootstrap: the account was created by ADMS_ADMIN_USER at start. When that name changes, the
-- previous bootstrap account is disabled, so a rename does not leave the old name usable.
ALTER TABLE api_users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_users ADD COLUMN disabled_at INTEGER;
ALTER TABLE api_users ADD COLUMN bootstrap INTEGER NOT NULL DEFAULT 0;

-- Until now the bootstrap was the only way an account came to exist.
UPDATE api_users SET bootstrap = 1;
