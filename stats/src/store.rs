//! All SQL of the stats service: batched inserts that skip redelivered
//! events, range reads, per-action counts and retention.

use common::db::Db;
use common::pagination::PageParams;
use common::time::rfc3339;
use serde::Serialize;
use sqlx::Row;

use crate::domain::{Event, EventView, Range};

/// Rows per INSERT statement: 6 parameters each stays far below both
/// engines' parameter limits, and a full chunk reuses one prepared statement.
const ROWS_PER_STATEMENT: usize = 250;
/// Rows per retention DELETE, so SQLite's write lock is held only briefly.
const DELETE_CHUNK: i64 = 5000;

/// One action's count in a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionCount {
    pub action: String,
    pub count: i64,
}

/// Per-action counts in a range, a page of them.
#[derive(Debug, Clone)]
pub struct Summary {
    pub actions: Vec<ActionCount>,
    /// How many different actions the range holds.
    pub distinct: i64,
    /// How many events the range holds.
    pub events: i64,
}

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

fn insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO events (id, ts, user_id, action, data, idempotency_key) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        let p = r * 6;
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    // A redelivered event (same key) is dropped, also within one batch.
    sql.push_str(" ON CONFLICT (idempotency_key) DO NOTHING");
    sql
}

impl Store {
    /// Writes `events` in one transaction; returns how many were new.
    pub async fn insert_batch(&self, events: &[Event]) -> Result<u64, sqlx::Error> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin_write().await?;
        let mut written = 0;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let sql = insert_sql(chunk.len());
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(&e.id)
                    .bind(e.ts)
                    .bind(e.user_id.as_deref())
                    .bind(&e.action)
                    .bind(e.data.as_deref())
                    .bind(e.idempotency_key.as_deref());
            }
            written += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    /// A page of the events in `range`, oldest first, and the range's total.
    pub async fn list(
        &self,
        range: Range,
        page: PageParams,
    ) -> Result<(Vec<EventView>, i64), sqlx::Error> {
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE ts >= $1 AND ts < $2",
        )
        .bind(range.from)
        .bind(range.to)
        .fetch_one(&self.db.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT id, ts, user_id, action, data FROM events WHERE ts >= $1 AND ts < $2 \
             ORDER BY ts, id LIMIT $3 OFFSET $4",
        )
        .bind(range.from)
        .bind(range.to)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.db.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                let data: Option<String> = r.get("data");
                EventView {
                    id: r.get("id"),
                    ts: rfc3339(r.get::<i64, _>("ts")),
                    user_id: r.get("user_id"),
                    action: r.get("action"),
                    // Only this service writes the column, always valid JSON.
                    data: data
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or(serde_json::Value::Null),
                }
            })
            .collect();
        Ok((items, total))
    }

    /// Counts per action in `range`, most frequent first (ties by name).
    pub async fn summary(&self, range: Range, page: PageParams) -> Result<Summary, sqlx::Error> {
        let totals = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS events, CAST(COUNT(DISTINCT action) AS BIGINT) AS actions \
             FROM events WHERE ts >= $1 AND ts < $2",
        )
        .bind(range.from)
        .bind(range.to)
        .fetch_one(&self.db.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT action, CAST(COUNT(*) AS BIGINT) AS n FROM events WHERE ts >= $1 AND ts < $2 \
             GROUP BY action ORDER BY n DESC, action LIMIT $3 OFFSET $4",
        )
        .bind(range.from)
        .bind(range.to)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(Summary {
            actions: rows
                .iter()
                .map(|r| ActionCount {
                    action: r.get("action"),
                    count: r.get("n"),
                })
                .collect(),
            distinct: totals.get("actions"),
            events: totals.get("events"),
        })
    }

    /// Deletes events with `ts < before`, in chunks; returns how many.
    pub async fn delete_before(&self, before: i64) -> Result<u64, sqlx::Error> {
        let mut deleted = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(DELETE_CHUNK)
            .execute(&mut *self.db.writer().await?)
            .await?
            .rows_affected();
            deleted += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statements_number_their_parameters() {
        assert_eq!(
            insert_sql(2),
            "INSERT INTO events (id, ts, user_id, action, data, idempotency_key) VALUES \
             ($1, $2, $3, $4, $5, $6),($7, $8, $9, $10, $11, $12) ON CONFLICT (idempotency_key) DO NOTHING"
        );
    }
}
