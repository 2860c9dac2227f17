-- Idempotency keys (see common/src/idempotency.rs): the first response to a
-- key is stored with a hash of its request and replayed for retries.
-- `status_code IS NULL` means the first request is still in flight; `claim`
-- names the request that owns the row, so a request that was taken over
-- after its lock timed out cannot overwrite or delete its successor's row.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    claim TEXT NOT NULL,
    locked_at BIGINT NOT NULL,
    status_code INTEGER,
    content_type TEXT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (scope, idempotency_key)
);

-- The pruner deletes by age.
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
