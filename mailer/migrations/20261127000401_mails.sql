-- The mail queue. A row is written before the request is answered, so an
-- accepted mail survives any restart; the sender leases due rows with a
-- conditional UPDATE of `locked_until` so replicas never send one twice at
-- once. `idempotency_key` (scoped, see store.rs) makes a repeated request
-- return the first mail instead of queueing another.
CREATE TABLE mails (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT NOT NULL,
    recipient TEXT NOT NULL,
    recipient_lower TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT,
    request_id TEXT
);

-- The per-recipient limit counts recent rows of one recipient.
CREATE INDEX mails_recipient_created ON mails (recipient_lower, created_at);

-- The sender looks only at queued rows that are due.
CREATE INDEX mails_due ON mails (next_attempt_at) WHERE status = 'queued';

-- Pruning deletes finished rows by age.
CREATE INDEX mails_created ON mails (created_at);
