//! The payments-mock service as a library: a payment provider's test mode
//! (invoices, card payments with the test cards of docs/api.md, signed
//! `invoice.paid` webhooks through the outbox). `main.rs` and the tests
//! both build it with [`Payments::start`] and serve it on a listener they
//! bound.
//!
//! Routes (see [`router`]): `POST /invoices` (server key),
//! `GET /invoices/{id}`, `POST /invoices/{id}/pay`.
//!
//! # Layout
//!
//! - [`config`]: the service's settings (server keys, webhook, knobs).
//! - `handlers`: one async fn per endpoint.
//! - [`domain`]: invoices, their ids, and the checks on a new invoice.
//! - [`card`]: card fields, the Luhn check, brands and the test cards.
//! - [`faults`]: fault injection, added latency and `503`s (off by
//!   default).
//! - [`store`]: all SQL; paying writes the `invoice.paid` webhook into
//!   the outbox in the same transaction.
//! - this file: [`State`], [`router`], [`Payments::start`].

pub mod card;
pub mod config;
pub mod domain;
pub mod faults;
mod handlers;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::background::Tasks;
use common::client::HttpClient;
use common::db::{Db, DbError};
use common::idempotency::Idempotency;
use common::messages::{target, CreateInvoice, Message};
use common::outbox::{Auth, Outbox, Target, DELIVERY_TIMEOUT};
use common::{App, Router};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::config::PaymentsConfig;
use crate::store::Store;

pub struct State {
    pub config: PaymentsConfig,
    pub store: Store,
    pub outbox: Outbox,
    pub idempotency: Idempotency,
    /// Each accepted server key with the idempotency scope of its holder.
    callers: Vec<(String, String)>,
}

/// A running payments-mock's state plus its background tasks.
pub struct Payments {
    pub state: Arc<State>,
    background: Tasks,
}

pub fn router() -> Router<State> {
    Router::new()
        .post(CreateInvoice::PATH, handlers::create)
        .get("/invoices/{id}", handlers::get)
        .post("/invoices/{id}/pay", handlers::pay)
}

/// Idempotency keys are scoped to the merchant's key. The scope is a digest
/// of it, so the key itself is never written to the database.
pub fn caller_scope(server_key: &str) -> String {
    format!(
        "server_key:{}",
        hex::encode(&Sha256::digest(server_key.as_bytes())[..16])
    )
}

impl Payments {
    /// Connects and migrates the database and starts the webhook deliverer
    /// and the pruning of expired idempotency keys.
    pub async fn start(config: PaymentsConfig) -> Result<Payments, DbError> {
        let db = Db::connect(
            &config.base.database_url,
            config.base.database_max_connections,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let client = HttpClient::new(Duration::from_secs(2), DELIVERY_TIMEOUT);
        let targets = HashMap::from([(
            target::WEBHOOK.to_string(),
            Target {
                base_url: config.webhook_url.clone(),
                auth: Auth::Signature(config.webhook_secret.clone()),
            },
        )]);
        let outbox = Outbox::new(db.clone(), client, targets, config.outbox.clone());
        common::metrics::zero_counter("payments_invoices_created_total", None);
        common::metrics::zero_counter("payments_attempts_total", Some(("outcome", &["paid"])));
        let idempotency = Idempotency::new(db.clone(), config.idempotency.clone());
        let callers = config
            .server_keys
            .iter()
            .map(|k| (k.clone(), caller_scope(k)))
            .collect();
        let state = Arc::new(State {
            store: Store { db },
            outbox: outbox.clone(),
            idempotency: idempotency.clone(),
            callers,
            config,
        });
        let mut background = Tasks::new();
        background.spawn(|stop| outbox.run(stop));
        background.spawn(|stop| idempotency.run_pruner(stop));
        Ok(Payments { state, background })
    }

    pub fn app(&self) -> App<State> {
        App::new(config::NAME, self.state.clone(), router())
            .body_limit(self.state.config.base.body_limit)
            .readiness(|s: Arc<State>| async move { s.store.db.ping().await })
    }

    /// Serves until `shutdown`, then stops the background tasks.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.state.config.base.server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.background.shutdown().await;
        self.state.store.db.pool.close().await;
    }
}

// How the `payments-mock` binary drives the service (see `common::cli`).
common::service_binary!(
    Payments,
    PaymentsConfig,
    DbError,
    describe = |s| {
        let config = &s.state.config;
        let mut words = format!("webhooks to {}", config.webhook_url);
        if !config.faults.is_off() {
            words.push_str(&format!(
            "; fault injection on: {}-{} ms added latency, {} of /invoices requests fail with 503",
            config.faults.latency_ms.0, config.faults.latency_ms.1, config.faults.failure_rate
        ));
        }
        words
    }
);
