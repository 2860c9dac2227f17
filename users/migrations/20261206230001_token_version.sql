-- Each account's token version (common/src/token_versions.rs): put into
-- every token issued, bumped when the account is deleted or its password
-- or role changes, which revokes the tokens issued before. Existing
-- accounts start at 0, the version of tokens issued before this column.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
