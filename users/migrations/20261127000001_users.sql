-- Accounts. `email_lower` carries the case-insensitive uniqueness the
-- database enforces; a deleted account is anonymized in place so its email
-- can be registered again and its personal data is gone.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);

CREATE UNIQUE INDEX users_email_lower ON users (email_lower);
