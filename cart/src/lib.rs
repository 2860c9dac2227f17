//! The cart service as a library: [`State`] is its [`Service`], which
//! `main.rs` and the tests start in a [`common::host::Host`].
//!
//! Carts live in this service's database; products' names and prices are
//! read from the products service (one batch read per cart, `GET
//! /products/?ids=…`); checkout turns a cart into an order
//! with an invoice at the payment provider ([`checkout`]); orders become
//! paid by the provider's signed webhook or by reconciliation with the
//! provider ([`reconciliation`]); emails and stats events go out through
//! the outbox.
//!
//! Routes (see `router()`): `/user/{uid}/cart/…`, `/user/{uid}/orders/…`
//! and the internal `POST /internal/payments/webhook`.
//!
//! # Layout
//!
//! - [`config`]: the service's settings (neighbours, secrets, timings).
//! - `handlers`: one async fn per endpoint and the webhook; typed errors
//!   → problem+json.
//! - [`domain`]: ids, quantities, request bodies, and the item, cart and
//!   order views clients get.
//! - [`clients`]: typed clients for products and the payment provider.
//! - [`payment_event`]: the provider's webhook body as a typed event.
//! - [`checkout`]: cart → order with an invoice, crash-safe, and the
//!   recovery of interrupted checkouts.
//! - [`reconciliation`]: marking orders paid (webhook, reconciliation on
//!   read, background sweep) and the confirmation messages.
//! - [`store`]: all SQL, with the outbox messages of each change.
//! - this file: [`State`] and what the host needs of it (outbox targets,
//!   the shared HTTP client, background jobs).

pub mod checkout;
pub mod clients;
pub mod config;
pub mod domain;
mod handlers;
pub mod payment_event;
pub mod reconciliation;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::client::HttpClient;
use common::db::DbError;
use common::host::{Service, Wiring};
use common::idempotency::Idempotency;
use common::messages::target;
use common::outbox::{Outbox, Targets};
use common::time::now_ms;
use common::token_versions::{self, TokenVersions};
use common::Router;
use sqlx::migrate::Migrator;

use crate::clients::{PaymentsClient, ProductsClient};
use crate::config::CartConfig;
use crate::store::Store;

pub struct State {
    pub config: CartConfig,
    pub store: Store,
    pub keys: TokenKeys,
    /// Revoked tokens, as users announces them.
    pub versions: TokenVersions,
    pub products: ProductsClient,
    pub payments: PaymentsClient,
    pub outbox: Outbox,
    pub idempotency: Idempotency,
}

/// Webhook event ids are kept this long: far beyond the provider's retries.
const KEEP_EVENTS: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often webhook events past [`KEEP_EVENTS`] are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Service for State {
    type Config = CartConfig;
    type StartError = DbError;
    const NAME: &'static str = config::NAME;
    const MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

    /// Order confirmations to the mailer, order events to stats.
    fn outbox(config: &CartConfig) -> Targets {
        Targets::new(config.outbox.clone())
            .internal(
                target::MAILER,
                &config.mailer_url,
                &config.base.internal_key,
            )
            .open(target::STATS, &config.stats_url)
    }

    /// One connection pool for every call out: products, payments and the
    /// outbox's deliveries to the mailer and stats.
    fn http_client(config: &CartConfig) -> HttpClient {
        HttpClient::new(config.upstream_connect_timeout, config.upstream_timeout)
    }

    async fn build(config: CartConfig, mut wiring: Wiring<'_>) -> Result<State, DbError> {
        zero_counters();
        Ok(State {
            // This service only verifies tokens, so their lifetime is moot.
            keys: config.base.token_keys(0),
            versions: TokenVersions::new(wiring.db.clone()),
            products: ProductsClient::new(wiring.http.clone(), &config.products_url),
            payments: PaymentsClient::new(
                wiring.http.clone(),
                &config.payments_url,
                &config.payments_key,
            ),
            idempotency: wiring.idempotency(config.idempotency.clone()),
            store: Store { db: wiring.db },
            outbox: wiring.outbox,
            config,
        })
    }

    fn router() -> Router<State> {
        Router::new()
            .post("/user/{uid}/cart/", handlers::add_item)
            .get("/user/{uid}/cart/", handlers::cart)
            .get("/user/{uid}/cart/{id}", handlers::item)
            .put("/user/{uid}/cart/{id}", handlers::update_item)
            .delete("/user/{uid}/cart/{id}", handlers::delete_item)
            .post("/user/{uid}/cart/checkout", handlers::checkout)
            .get("/user/{uid}/orders/", handlers::orders)
            .get("/user/{uid}/orders/{id}", handlers::order)
            .post("/internal/payments/webhook", handlers::payment_webhook)
            .post(token_versions::PATH, handlers::token_version)
    }

    /// The payment sweep (reconciliation and checkout recovery) and the
    /// pruning of old webhook events.
    async fn jobs(state: &Arc<State>, jobs: &mut Tasks) {
        let sweeping = state.clone();
        jobs.spawn(move |stop| async move {
            let interval = sweeping.config.reconcile_interval;
            // Unlike `Tasks::every`, a pass is cut short at shutdown: with a
            // hanging provider it could otherwise hold the stop for long.
            // That is safe, each change being one conditional transaction.
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = reconciliation::sweep(&sweeping) => {}
                }
            }
        });
        let pruning = state.clone();
        jobs.prune_every(
            PRUNE_EVERY,
            "webhook events older than 30 days",
            move || {
                let state = pruning.clone();
                async move {
                    let before = now_ms() - KEEP_EVENTS.as_millis() as i64;
                    state.store.prune_events(before).await
                }
            },
        );
    }

    // No `ready` of its own: products and payments are not part of
    // readiness (the host checks the database). With them down the cart
    // still serves what it can (orders, deletes) and answers the rest
    // `503`, whereas a failing readiness would take it out of rotation.

    fn describe(config: &CartConfig) -> String {
        format!(
            "products at {}, payments at {}",
            config.products_url, config.payments_url
        )
    }
}

/// The order counters, at 0 from the start (see `common::metrics::zero_counter`).
fn zero_counters() {
    use common::metrics::zero_counter;
    zero_counter("cart_orders_created_total", None);
    zero_counter(
        "cart_orders_paid_total",
        Some(("source", &["webhook", "read", "sweep"])),
    );
    // The reasons a started order can be abandoned for (`checkout::give_up`).
    zero_counter(
        "cart_orders_abandoned_total",
        Some((
            "reason",
            &[
                "payments_unavailable",
                "invoice_rejected",
                "invoice_mismatch",
                "cart_changed",
                "cart_empty",
            ],
        )),
    );
}
