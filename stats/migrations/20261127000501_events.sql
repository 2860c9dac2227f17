-- Analytics events. `data` is a JSON object as text (one portable column
-- type). `idempotency_key` is set when a sender (the outbox) identifies a
-- delivery, so a redelivered event is stored once.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    user_id TEXT,
    action TEXT NOT NULL,
    data TEXT,
    idempotency_key TEXT UNIQUE
);

-- Range queries read in (ts, id) order; retention deletes by ts.
CREATE INDEX events_ts_id ON events (ts, id);
