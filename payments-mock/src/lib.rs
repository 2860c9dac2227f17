//! The payments-mock service as a library: a payment provider's test mode
//! (invoices, card payments with the test cards of docs/api.md, signed
//! `invoice.paid` webhooks through the outbox). `main.rs` and the tests
//! both start [`State`], its [`Service`], in a [`common::host::Host`].
//!
//! Routes (see `router()`): `POST /invoices` (server key),
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
//! - this file: [`State`] and what the host needs of it.

pub mod card;
pub mod config;
pub mod domain;
pub mod faults;
mod handlers;
pub mod store;

use common::db::DbError;
use common::host::{Service, Wiring};
use common::idempotency::Idempotency;
use common::messages::{target, CreateInvoice, Message};
use common::outbox::{Outbox, Targets};
use common::Router;
use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;

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

/// Idempotency keys are scoped to the merchant's key. The scope is a digest
/// of it, so the key itself is never written to the database.
pub fn caller_scope(server_key: &str) -> String {
    format!(
        "server_key:{}",
        hex::encode(&Sha256::digest(server_key.as_bytes())[..16])
    )
}

impl Service for State {
    type Config = PaymentsConfig;
    type StartError = DbError;
    const NAME: &'static str = config::NAME;
    const MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

    /// The signed `invoice.paid` webhooks.
    fn outbox(config: &PaymentsConfig) -> Targets {
        Targets::new(config.outbox.clone()).signed(
            target::WEBHOOK,
            &config.webhook_url,
            &config.webhook_secret,
        )
    }

    async fn build(config: PaymentsConfig, mut wiring: Wiring<'_>) -> Result<State, DbError> {
        common::metrics::zero_counter("payments_invoices_created_total", None);
        common::metrics::zero_counter("payments_attempts_total", Some(("outcome", &["paid"])));
        let callers = config
            .server_keys
            .iter()
            .map(|k| (k.clone(), caller_scope(k)))
            .collect();
        Ok(State {
            idempotency: wiring.idempotency(config.idempotency.clone()),
            store: Store { db: wiring.db },
            outbox: wiring.outbox,
            callers,
            config,
        })
    }

    fn router() -> Router<State> {
        Router::new()
            .post(CreateInvoice::PATH, handlers::create)
            .get("/invoices/{id}", handlers::get)
            .post("/invoices/{id}/pay", handlers::pay)
    }

    fn describe(config: &PaymentsConfig) -> String {
        let mut words = format!("webhooks to {}", config.webhook_url);
        if !config.faults.is_off() {
            words.push_str(&format!(
                "; fault injection on: {}-{} ms added latency, {} of /invoices requests fail with 503",
                config.faults.latency_ms.0, config.faults.latency_ms.1, config.faults.failure_rate
            ));
        }
        words
    }
}
