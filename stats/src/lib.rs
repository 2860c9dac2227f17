//! The stats service as a library: `main.rs` and the tests both build it
//! with [`Stats::start`] and serve it on a listener they bound.
//!
//! Routes (see [`router`]): `POST /log` (public), and the internal
//! `GET /log` and `GET /log/summary`.
//!
//! # Layout
//!
//! - [`config`]: the service's settings (retention, batching).
//! - `handlers`: one async fn per endpoint.
//! - [`domain`]: actions, user ids, event data and time ranges checked
//!   into typed values.
//! - [`writer`]: the bounded queue and the batching writer task behind
//!   `POST /log`.
//! - [`store`]: all SQL: batched inserts, range reads, counts, retention.
//! - this file: [`State`], [`router`], [`Stats::start`].

pub mod config;
pub mod domain;
mod handlers;
pub mod store;
pub mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::db::{Db, DbError};
use common::messages::{Message, StatsEvent};
use common::time::now_ms;
use common::{App, Router};
use tokio::net::TcpListener;

use crate::config::StatsConfig;
use crate::store::Store;
use crate::writer::Ingest;

pub struct State {
    pub config: StatsConfig,
    pub store: Store,
    /// Verifies user tokens, only to tell them apart (`403`) from unknown
    /// credentials (`401`) on the internal endpoints.
    pub keys: TokenKeys,
    pub ingest: Ingest,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A running stats service's state plus its background tasks.
pub struct Stats {
    pub state: Arc<State>,
    background: Tasks,
}

pub fn router() -> Router<State> {
    Router::new()
        .post(StatsEvent::PATH, handlers::log_event)
        .get(StatsEvent::PATH, handlers::list)
        .get("/log/summary", handlers::summary)
}

/// How often retention runs (also once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

impl Stats {
    /// Connects and migrates the database, and starts the event writer and
    /// the retention task.
    pub async fn start(config: StatsConfig) -> Result<Stats, StartError> {
        let db = Db::connect(
            &config.base.database_url,
            config.base.database_max_connections,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let store = Store { db };
        writer::zero_counters();
        let (ingest, writer) = writer::channel(
            store.clone(),
            config.queue_capacity,
            config.batch_size,
            config.flush_interval,
        );
        let state = Arc::new(State {
            keys: config.base.token_keys(3600),
            store,
            ingest,
            config,
        });
        let mut background = Tasks::new();
        background.spawn(|stop| writer.run(stop));
        let retention = state.clone();
        background.spawn(|stop| async move {
            loop {
                retention.apply_retention().await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RETENTION_EVERY) => {}
                }
            }
        });
        Ok(Stats { state, background })
    }

    pub fn app(&self) -> App<State> {
        App::new(config::NAME, self.state.clone(), router())
            .body_limit(self.state.config.base.body_limit)
            .readiness(|s: Arc<State>| async move { s.store.db.ping().await })
    }

    /// Serves until `shutdown`, then stops the background tasks; the writer
    /// stores every accepted event before this returns.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.state.config.base.server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.background.shutdown().await;
        self.state.store.db.pool.close().await;
    }
}

impl State {
    /// Deletes events older than the retention period.
    pub async fn apply_retention(&self) {
        let before = now_ms() - self.config.retention.as_millis() as i64;
        match self.store.delete_before(before).await {
            Ok(0) => {}
            Ok(n) => log::info!("deleted {n} events older than the retention period"),
            Err(e) => log::warn!("cannot delete old events: {e}"),
        }
    }
}

// How the `stats` binary drives the service (see `common::cli`).
common::service_binary!(Stats, StatsConfig, StartError);
