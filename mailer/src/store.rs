//! All SQL of the mailer: queueing a mail (idempotency and the
//! per-recipient limit in one write transaction), leasing due mail, and
//! recording each attempt's outcome.

use std::time::Duration;

use common::db::{Backend, Db, WriteTransaction};
use common::time::now_ms;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::domain::NewMail;

/// A mail's life: `queued` until an attempt succeeds (`sent`) or the last
/// allowed attempt fails (`failed`).
pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";

/// Internal callers share one idempotency scope (they are one trusted
/// party); the prefix keeps room for per-caller scopes later.
const INTERNAL_SCOPE: &str = "internal:";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the idempotency key was used for a different mail")]
    KeyReused,
    #[error("too many mails to this recipient; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What queueing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new mail with this id.
    Created(String),
    /// The key was seen before for the same request: the first mail's id.
    Replayed(String),
}

/// At most `max` mails per recipient in any `window`.
#[derive(Debug, Clone, Copy)]
pub struct RecipientLimit {
    pub max: i64,
    pub window: Duration,
}

/// A mail waiting to be sent.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: i64,
    /// The `X-Request-Id` of the request that queued it, for the logs.
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the span that queued it: its send joins
    /// that trace.
    pub traceparent: Option<String>,
}

/// A stored mail as operators and tests see it.
#[derive(Debug, Clone)]
pub struct MailRecord {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Queues `mail` unless `key` was seen before, within the recipient's
    /// limit. Everything happens in one write transaction: on SQLite it
    /// holds the write lock; on PostgreSQL an advisory lock per recipient
    /// makes concurrent requests for one recipient count one after another.
    pub async fn enqueue(
        &self,
        mail: &NewMail,
        key: Option<&str>,
        limit: RecipientLimit,
    ) -> Result<Enqueued, StoreError> {
        common::telemetry::db("TRANSACTION", "mails")
            .run(async move {
            let key = key.map(|k| format!("{INTERNAL_SCOPE}{k}"));
            let hash = mail.request_hash();
            let recipient_lower = mail.to.lower();
            let mut tx = self.db.begin_write().await?;
            if let Some(key) = &key {
                if let Some(replay) = replayed(&mut tx, key, &hash).await? {
                    return Ok(replay);
                }
            }
            if self.db.backend == Backend::Postgres {
                // pg_advisory_xact_lock returns `void`, which the Any driver
                // cannot decode; selecting a constant over it sidesteps that.
                sqlx::query(
                    "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS locked",
                )
                .bind(&recipient_lower)
                .execute(&mut *tx)
                .await?;
            }
            let now = now_ms();
            let window = millis(limit.window);
            let since = now - window;
            let count: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM mails WHERE recipient_lower = $1 AND created_at > $2",
            )
            .bind(&recipient_lower)
            .bind(since)
            .fetch_one(&mut *tx)
            .await?;
            if count >= limit.max {
                // Room for one more opens when enough of the counted mails
                // have aged out: the (count - max + 1)-th oldest leaves last.
                let leaving: i64 = sqlx::query_scalar(
                    "SELECT created_at FROM mails WHERE recipient_lower = $1 AND created_at > $2 \
                     ORDER BY created_at LIMIT 1 OFFSET $3",
                )
                .bind(&recipient_lower)
                .bind(since)
                .bind(count - limit.max)
                .fetch_one(&mut *tx)
                .await?;
                let wait = (leaving + window - now).max(0);
                return Err(StoreError::RateLimited {
                    retry_after: Duration::from_millis(wait as u64),
                });
            }
            let id = uuid::Uuid::now_v7().to_string();
            let inserted = sqlx::query(
                "INSERT INTO mails (id, idempotency_key, request_hash, recipient, recipient_lower, subject, body, \
                   status, next_attempt_at, created_at, request_id, traceparent) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&id)
            .bind(key.as_deref())
            .bind(&hash)
            .bind(mail.to.as_str())
            .bind(&recipient_lower)
            .bind(mail.subject.as_str())
            .bind(mail.body.as_str())
            .bind(QUEUED)
            .bind(now)
            .bind(common::request_id::current())
            .bind(common::telemetry::current_traceparent())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                // A concurrent request with the same key committed first.
                let key = key.as_deref().unwrap_or_default();
                return match replayed(&mut tx, key, &hash).await? {
                    Some(replay) => Ok(replay),
                    None => Err(StoreError::Db(sqlx::Error::RowNotFound)),
                };
            }
            tx.commit().await?;
            Ok(Enqueued::Created(id))
            })
            .await
    }

    /// Queued mail that is due and not leased, oldest due first.
    pub async fn due(&self, now: i64, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
        common::telemetry::db("SELECT", "mails")
            .run(async move {
            let rows = sqlx::query(
                "SELECT id, recipient, subject, body, attempts, created_at, request_id, traceparent FROM mails \
                 WHERE status = $1 AND next_attempt_at <= $2 AND locked_until <= $2 \
                 ORDER BY next_attempt_at LIMIT $3",
            )
            .bind(QUEUED)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| Pending {
                    id: r.get("id"),
                    recipient: r.get("recipient"),
                    subject: r.get("subject"),
                    body: r.get("body"),
                    attempts: r.get("attempts"),
                    created_at: r.get("created_at"),
                    request_id: r.get("request_id"),
                    traceparent: r.get("traceparent"),
                })
                .collect())
            })
            .await
    }

    /// Leases a mail until `until`; `false` when another sender has it or
    /// it is no longer queued.
    pub async fn claim(&self, id: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
        common::telemetry::db("UPDATE", "mails")
            .run(async move {
            let claimed = sqlx::query(
                "UPDATE mails SET locked_until = $1 WHERE id = $2 AND status = $3 AND locked_until <= $4",
            )
            .bind(until)
            .bind(id)
            .bind(QUEUED)
            .bind(now)
            .execute(&mut *self.db.writer().await?)
            .await?
            .rows_affected();
            Ok(claimed == 1)
            })
            .await
    }

    pub async fn mark_sent(&self, id: &str, attempts: i64) -> Result<(), sqlx::Error> {
        common::telemetry::db("UPDATE", "mails")
            .run(async move {
            sqlx::query(
                "UPDATE mails SET status = $1, attempts = $2, sent_at = $3, locked_until = 0, last_error = NULL \
                 WHERE id = $4",
            )
            .bind(SENT)
            .bind(attempts)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *self.db.writer().await?)
            .await?;
            Ok(())
            })
            .await
    }

    pub async fn mark_retry(
        &self,
        id: &str,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        common::telemetry::db("UPDATE", "mails")
            .run(async move {
            sqlx::query(
                "UPDATE mails SET attempts = $1, next_attempt_at = $2, locked_until = 0, last_error = $3 \
                 WHERE id = $4",
            )
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(&mut *self.db.writer().await?)
            .await?;
            Ok(())
            })
            .await
    }

    pub async fn mark_failed(
        &self,
        id: &str,
        attempts: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        common::telemetry::db("UPDATE", "mails")
            .run(async move {
            sqlx::query(
                "UPDATE mails SET status = $1, attempts = $2, failed_at = $3, locked_until = 0, last_error = $4 \
                 WHERE id = $5",
            )
            .bind(FAILED)
            .bind(attempts)
            .bind(now_ms())
            .bind(error)
            .bind(id)
            .execute(&mut *self.db.writer().await?)
            .await?;
            Ok(())
            })
            .await
    }

    /// The queue: mails waiting to be sent, and when the oldest was queued.
    pub async fn backlog(&self) -> Result<(i64, Option<i64>), sqlx::Error> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS waiting, CAST(MIN(created_at) AS BIGINT) AS oldest \
             FROM mails WHERE status = $1",
        )
        .bind(QUEUED)
        .fetch_one(&self.db.pool)
        .await?;
        Ok((row.get("waiting"), row.get("oldest")))
    }

    /// Deletes finished mail created before `before`; returns how many.
    pub async fn prune(&self, before: i64) -> Result<u64, sqlx::Error> {
        common::telemetry::db("DELETE", "mails")
            .run(async move {
                let result =
                    sqlx::query("DELETE FROM mails WHERE status <> $1 AND created_at < $2")
                        .bind(QUEUED)
                        .bind(before)
                        .execute(&mut *self.db.writer().await?)
                        .await?;
                Ok(result.rows_affected())
            })
            .await
    }

    /// One mail by id.
    pub async fn get(&self, id: &str) -> Result<Option<MailRecord>, sqlx::Error> {
        common::telemetry::db("SELECT", "mails")
            .run(async move {
            let row = sqlx::query(
                "SELECT id, recipient, subject, status, attempts, last_error FROM mails WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
            Ok(row.as_ref().map(record_from_row))
            })
            .await
    }

    /// Every mail, oldest first (for tests and operators' tools).
    pub async fn all(&self) -> Result<Vec<MailRecord>, sqlx::Error> {
        common::telemetry::db("SELECT", "mails")
            .run(async move {
            let rows = sqlx::query(
                "SELECT id, recipient, subject, status, attempts, last_error FROM mails ORDER BY created_at, id",
            )
            .fetch_all(&self.db.pool)
            .await?;
            Ok(rows.iter().map(record_from_row).collect())
            })
            .await
    }
}

fn record_from_row(r: &AnyRow) -> MailRecord {
    MailRecord {
        id: r.get("id"),
        recipient: r.get("recipient"),
        subject: r.get("subject"),
        status: r.get("status"),
        attempts: r.get("attempts"),
        last_error: r.get("last_error"),
    }
}

/// The earlier mail of `key`, if any: a replay when the request matches,
/// [`StoreError::KeyReused`] when it does not.
async fn replayed(
    tx: &mut WriteTransaction,
    key: &str,
    hash: &str,
) -> Result<Option<Enqueued>, StoreError> {
    let row = sqlx::query("SELECT id, request_hash FROM mails WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        None => Ok(None),
        Some(r) if r.get::<String, _>("request_hash") == hash => {
            Ok(Some(Enqueued::Replayed(r.get("id"))))
        }
        Some(_) => Err(StoreError::KeyReused),
    }
}
