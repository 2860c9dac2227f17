-- Token versions (see common/src/token_versions.rs): for each account users
-- has revoked tokens of, the lowest token version still accepted, and
-- whether the account is deleted. Kept by every service that verifies user
-- tokens, in its own database; an account without a row is at version 0.
CREATE TABLE IF NOT EXISTS token_versions (
    user_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    deleted_at BIGINT,
    updated_at BIGINT NOT NULL
);
