//! The transactional outbox: messages to other services are written in the
//! same transaction as the business change that causes them, then a
//! background task POSTs them until the receiver answers 2xx — across
//! restarts and outages of either side. Each message carries its id as
//! `Idempotency-Key` so the receiver can drop a repeat.
//!
//! Several replicas may run deliverers on one database: a message is leased
//! with a conditional UPDATE before it is sent, so only one sends it at a time.
//!
//! Each message keeps the `traceparent` of the span that wrote it; its
//! delivery is a span in that trace (a child of the writer), so the
//! receiver's work joins the trace of the request that caused it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, HttpClient};
use crate::db::Db;
use crate::metrics::backlog::{self, Refresh};
use crate::telemetry::{Attr as KeyValue, Kind};
use crate::time::now_ms;
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _};

/// How long one delivery may take in all: a receiver is given longer than
/// a request handler gives a dependency, as nobody waits on the answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// common's own migrations (the outbox table); run by [`Db::connect`].
pub fn migrations() -> Migrator {
    sqlx::migrate!("./migrations")
}

/// Writes a message in the caller's transaction; returns its id.
pub async fn enqueue(
    conn: &mut AnyConnection,
    target: &str,
    path: &str,
    payload: &serde_json::Value,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbox (id, target, path, payload, request_id, traceparent, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(target)
    .bind(path)
    .bind(payload.to_string())
    .bind(crate::request_id::current())
    .bind(crate::telemetry::current_traceparent())
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

/// How a receiver is authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <key>` (internal credentials).
    Bearer(String),
    /// A `Shop-Signature` header over the body (webhooks).
    Signature(String),
}

/// A named receiver: `target` in [`enqueue`] picks one of these.
#[derive(Clone, Debug)]
pub struct Target {
    pub base_url: String,
    pub auth: Auth,
}

#[derive(Clone, Debug)]
pub struct OutboxOptions {
    pub poll_interval: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub batch: i64,
    /// How long a claimed message is reserved for its sender.
    pub lease: Duration,
    /// Delivered messages are deleted after this long.
    pub keep_delivered: Duration,
    /// How often the backlog gauges (`outbox_pending_messages`,
    /// `outbox_oldest_pending_age_seconds`) are read from the table.
    pub backlog_every: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            poll_interval: Duration::from_millis(500),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            batch: 64,
            // Longer than one delivery can take (the client's request timeout).
            lease: Duration::from_secs(30),
            keep_delivered: Duration::from_secs(7 * 24 * 3600),
            backlog_every: crate::metrics::backlog::REFRESH_EVERY,
        }
    }
}

/// Where a service's outbox delivers and how: the named receivers, the
/// retry options, and per-target caps on the backoff. [`crate::host`]
/// builds the [`Outbox`] from it.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    targets: HashMap<String, Target>,
    options: OutboxOptions,
    max_backoff: Vec<(String, Duration)>,
}

impl Targets {
    /// No receivers: the service sends nothing through an outbox.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(options: OutboxOptions) -> Self {
        Targets {
            options,
            ..Self::default()
        }
    }

    /// A shop service's internal endpoint: the internal key as bearer.
    pub fn internal(self, name: &str, base_url: &str, internal_key: &str) -> Self {
        self.with(name, base_url, Auth::Bearer(internal_key.to_string()))
    }

    /// An endpoint that takes no credentials (stats' `POST /log`).
    pub fn open(self, name: &str, base_url: &str) -> Self {
        self.with(name, base_url, Auth::None)
    }

    /// A webhook receiver: each body signed with `secret`.
    pub fn signed(self, name: &str, base_url: &str, secret: &str) -> Self {
        self.with(name, base_url, Auth::Signature(secret.to_string()))
    }

    /// See [`Outbox::max_backoff_for`].
    pub fn max_backoff(mut self, name: &str, max: Duration) -> Self {
        self.max_backoff.push((name.to_string(), max));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The deliverer for these targets on `db`, sending with `client`.
    pub fn outbox(self, db: Db, client: HttpClient) -> Outbox {
        let mut outbox = Outbox::new(db, client, self.targets, self.options);
        for (name, max) in &self.max_backoff {
            outbox = outbox.max_backoff_for(name, *max);
        }
        outbox
    }

    fn with(mut self, name: &str, base_url: &str, auth: Auth) -> Self {
        let target = Target {
            base_url: base_url.to_string(),
            auth,
        };
        self.targets.insert(name.to_string(), target);
        self
    }
}

/// The background deliverer.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    client: HttpClient,
    targets: Arc<HashMap<String, Target>>,
    wake: Arc<Notify>,
    options: OutboxOptions,
    /// Targets whose retries wait at most this long instead of
    /// `options.max_backoff`.
    max_backoff_of: Arc<HashMap<String, Duration>>,
    backlog: Arc<Refresh>,
}

enum Outcome {
    Delivered,
    Retry(String),
    Rejected(String),
}

struct Pending {
    id: String,
    target: String,
    path: String,
    payload: String,
    request_id: Option<String>,
    traceparent: Option<String>,
    attempts: i64,
}

impl Outbox {
    pub fn new(
        db: Db,
        client: HttpClient,
        targets: HashMap<String, Target>,
        options: OutboxOptions,
    ) -> Self {
        // Before the App that installs the recorder otherwise exists.
        crate::metrics::handle();
        for target in targets.keys() {
            for name in [
                "outbox_delivered_total",
                "outbox_retries_total",
                "outbox_rejected_total",
            ] {
                metrics::counter!(name, "target" => target.clone()).increment(0);
            }
        }
        Outbox {
            db,
            client,
            targets: Arc::new(targets),
            wake: Arc::new(Notify::new()),
            backlog: Arc::new(Refresh::new(options.backlog_every)),
            options,
            max_backoff_of: Arc::default(),
        }
    }

    /// Retries to `target` wait at most `max` (instead of the options'
    /// `max_backoff`): for messages that matter soon after the receiver is
    /// back, such as token revocations, at the cost of more attempts while
    /// it is down.
    pub fn max_backoff_for(mut self, target: &str, max: Duration) -> Self {
        Arc::make_mut(&mut self.max_backoff_of).insert(target.to_string(), max);
        self
    }

    /// Call after committing a transaction that enqueued, so delivery starts
    /// now rather than at the next poll.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Delivers until `cancel`; a database hiccup is logged and retried.
    pub async fn run(self, cancel: CancellationToken) {
        let mut last_cleanup = 0;
        loop {
            if self.backlog.due() {
                self.refresh_backlog().await;
            }
            match self.deliver_due().await {
                // A full batch means more may be waiting: go again at once.
                Ok(n) if n as i64 >= self.options.batch => continue,
                Ok(_) => {}
                Err(e) => log::warn!("outbox: cannot read pending messages: {e}"),
            }
            if now_ms() - last_cleanup > 3_600_000 {
                last_cleanup = now_ms();
                self.cleanup().await;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// Sets the backlog gauges of every target: messages neither delivered
    /// nor rejected, and the age of the oldest (what an alert watches: a
    /// receiver down for long shows as a growing age).
    async fn refresh_backlog(&self) {
        let rows = match sqlx::query(
            "SELECT target, CAST(COUNT(*) AS BIGINT) AS waiting, CAST(MIN(created_at) AS BIGINT) AS oldest \
             FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY target",
        )
        .fetch_all(&self.db.pool)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                log::warn!("outbox: cannot read the backlog: {e}");
                return;
            }
        };
        let mut waiting: HashMap<String, (i64, Option<i64>)> = self
            .targets
            .keys()
            .map(|t| (t.clone(), (0, None)))
            .collect();
        for r in &rows {
            waiting.insert(r.get("target"), (r.get("waiting"), r.get("oldest")));
        }
        for (target, (count, oldest)) in waiting {
            backlog::set(
                "outbox_pending_messages",
                "outbox_oldest_pending_age_seconds",
                &[("target", target)],
                count,
                oldest,
            );
        }
    }

    /// One pass: sends every due message once. Returns how many were tried.
    pub async fn deliver_due(&self) -> Result<usize, sqlx::Error> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT id, target, path, payload, request_id, traceparent, attempts FROM outbox \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 AND locked_until <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(self.options.batch)
        .fetch_all(&self.db.pool)
        .await?;
        let pending: Vec<Pending> = rows
            .iter()
            .map(|r| Pending {
                id: r.get("id"),
                target: r.get("target"),
                path: r.get("path"),
                payload: r.get("payload"),
                request_id: r.get("request_id"),
                traceparent: r.get("traceparent"),
                attempts: r.get::<i64, _>("attempts"),
            })
            .collect();
        let count = pending.len();
        futures::stream::iter(pending)
            .for_each_concurrent(8, |msg| async move {
                if let Err(e) = self.deliver_one(msg).await {
                    log::warn!("outbox: cannot record a delivery attempt: {e}");
                }
            })
            .await;
        Ok(count)
    }

    async fn deliver_one(&self, msg: Pending) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let lease_until = now + self.options.lease.as_millis() as i64;
        let claimed = sqlx::query(
            "UPDATE outbox SET locked_until = $1 WHERE id = $2 AND locked_until <= $3 AND delivered_at IS NULL",
        )
        .bind(lease_until)
        .bind(&msg.id)
        .bind(now)
        .execute(&mut *self.db.writer().await?)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            return Ok(()); // another replica has it
        }
        let outcome = self.send_traced(&msg).await;
        let attempts = msg.attempts + 1;
        let done = now_ms();
        match outcome {
            Outcome::Delivered => {
                log::debug!("outbox: delivered {} to {}{}", msg.id, msg.target, msg.path);
                metrics::counter!("outbox_delivered_total", "target" => msg.target.clone())
                    .increment(1);
                sqlx::query(
                    "UPDATE outbox SET delivered_at = $1, attempts = $2, locked_until = 0, last_error = NULL WHERE id = $3",
                )
                .bind(done)
                .bind(attempts)
                .bind(&msg.id)
                .execute(&mut *self.db.writer().await?)
                .await?;
            }
            Outcome::Retry(error) => {
                let max = self
                    .max_backoff_of
                    .get(&msg.target)
                    .copied()
                    .unwrap_or(self.options.max_backoff);
                let delay = crate::retry::backoff(self.options.base_backoff, max, attempts);
                log::warn!(
                    "outbox: delivery of {} to {}{} failed (attempt {attempts}), retrying in {:?}: {error}",
                    msg.id,
                    msg.target,
                    msg.path,
                    delay
                );
                metrics::counter!("outbox_retries_total", "target" => msg.target.clone())
                    .increment(1);
                sqlx::query(
                    "UPDATE outbox SET attempts = $1, next_attempt_at = $2, locked_until = 0, last_error = $3 WHERE id = $4",
                )
                .bind(attempts)
                .bind(done + delay.as_millis() as i64)
                .bind(&error)
                .bind(&msg.id)
                .execute(&mut *self.db.writer().await?)
                .await?;
            }
            Outcome::Rejected(error) => {
                // The receiver says the message itself is wrong; sending it
                // again cannot help. Kept in the table for an operator.
                log::error!(
                    "outbox: {} to {}{} was rejected and will not be retried: {error}",
                    msg.id,
                    msg.target,
                    msg.path
                );
                metrics::counter!("outbox_rejected_total", "target" => msg.target.clone())
                    .increment(1);
                sqlx::query("UPDATE outbox SET attempts = $1, failed_at = $2, locked_until = 0, last_error = $3 WHERE id = $4")
                    .bind(attempts)
                    .bind(done)
                    .bind(&error)
                    .bind(&msg.id)
                    .execute(&mut *self.db.writer().await?)
                    .await?;
            }
        }
        Ok(())
    }

    /// [`Self::send`] in a span that continues the trace of the request
    /// that wrote the message (when it had one): the HTTP call inside
    /// carries that trace to the receiver.
    async fn send_traced(&self, msg: &Pending) -> Outcome {
        let spec = crate::telemetry::span("outbox.deliver", Kind::Producer, || {
            vec![
                KeyValue::new("outbox.target", msg.target.clone()),
                KeyValue::new("outbox.message_id", msg.id.clone()),
                KeyValue::new("outbox.attempt", msg.attempts + 1),
            ]
        });
        let parent = match &msg.traceparent {
            Some(tp) if crate::telemetry::enabled() => {
                crate::telemetry::context_from_traceparent(tp)
            }
            _ => opentelemetry::Context::new(),
        };
        let Some(cx) = spec.parent(parent).start() else {
            return self.send(msg).await;
        };
        let outcome = self.send(msg).with_context(cx.clone()).await;
        match &outcome {
            Outcome::Delivered => {}
            Outcome::Retry(_) => crate::telemetry::set_error(&cx, "retry"),
            Outcome::Rejected(_) => crate::telemetry::set_error(&cx, "rejected"),
        }
        cx.span().end();
        outcome
    }

    async fn send(&self, msg: &Pending) -> Outcome {
        let Some(target) = self.targets.get(&msg.target) else {
            return Outcome::Retry(format!(
                "no receiver configured for target `{}`",
                msg.target
            ));
        };
        let url = format!("{}{}", target.base_url.trim_end_matches('/'), msg.path);
        let body = msg.payload.clone().into_bytes();
        let mut rb = self
            .client
            .request(reqwest::Method::POST, &url)
            .header("content-type", "application/json")
            .header("idempotency-key", &msg.id);
        if let Some(rid) = &msg.request_id {
            rb = rb.header(crate::request_id::HEADER, rid);
        }
        match &target.auth {
            Auth::None => {}
            Auth::Bearer(key) => rb = rb.bearer_auth(key),
            Auth::Signature(secret) => {
                let header = crate::webhook::sign(secret, now_ms() / 1000, &body);
                rb = rb.header(crate::webhook::HEADER, header);
            }
        }
        match self.client.send(rb.body(body)).await {
            Ok(_) => Outcome::Delivered,
            Err(ClientError::Status { status, body, .. }) if is_permanent(status) => {
                Outcome::Rejected(format!("{status}: {}", truncate(&body, 300)))
            }
            Err(e) => Outcome::Retry(crate::error::chain(&e)),
        }
    }

    async fn cleanup(&self) {
        let cutoff = now_ms() - self.options.keep_delivered.as_millis() as i64;
        let deleted = async {
            sqlx::query("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
                .bind(cutoff)
                .execute(&mut *self.db.writer().await?)
                .await
        };
        if let Err(e) = deleted.await {
            log::warn!("outbox: cleanup failed: {e}");
        }
    }
}

/// Statuses that say "this message is wrong", as opposed to "not now"
/// (5xx, 408, 409 in-progress, 429) or a configuration problem an operator
/// can fix (401, 403, 404).
fn is_permanent(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 415 | 422)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
