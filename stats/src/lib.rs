//! The stats service as a library: [`State`] is its [`Service`], which
//! `main.rs` and the tests start in a [`common::host::Host`].
//!
//! Routes (see `router()`): `POST /log` (public), and the internal
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
//! - this file: [`State`] and what the host needs of it.

pub mod config;
pub mod domain;
mod handlers;
pub mod store;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::db::DbError;
use common::host::{Service, Wiring};
use common::messages::{Message, StatsEvent};
use common::time::now_ms;
use common::Router;
use sqlx::migrate::Migrator;

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

/// How often retention runs (also once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

impl Service for State {
    type Config = StatsConfig;
    type StartError = DbError;
    const NAME: &'static str = config::NAME;
    const MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

    /// Starts the event writer: the writer stores every accepted event
    /// before the host's stop returns.
    async fn build(config: StatsConfig, wiring: Wiring<'_>) -> Result<State, DbError> {
        let store = Store { db: wiring.db };
        writer::zero_counters();
        let (ingest, writer) = writer::channel(
            store.clone(),
            config.queue_capacity,
            config.batch_size,
            config.flush_interval,
        );
        wiring.jobs.spawn(|stop| writer.run(stop));
        Ok(State {
            keys: config.base.token_keys(3600),
            store,
            ingest,
            config,
        })
    }

    fn router() -> Router<State> {
        Router::new()
            .post(StatsEvent::PATH, handlers::log_event)
            .get(StatsEvent::PATH, handlers::list)
            .get("/log/summary", handlers::summary)
    }

    /// Retention: at start and every hour.
    async fn jobs(state: &Arc<State>, jobs: &mut Tasks) {
        let state = state.clone();
        jobs.prune_now_and_every(
            RETENTION_EVERY,
            "events older than the retention period",
            move || {
                let state = state.clone();
                async move { state.apply_retention().await }
            },
        );
    }
}

impl State {
    /// Deletes events older than the retention period; returns how many.
    pub async fn apply_retention(&self) -> Result<u64, sqlx::Error> {
        let before = now_ms() - self.config.retention.as_millis() as i64;
        self.store.delete_before(before).await
    }
}
