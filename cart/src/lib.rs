//! The cart service as a library: `main.rs` and the tests both build it
//! with [`Cart::start`] and serve it on a listener they bound.
//!
//! Carts live in this service's database; products' names and prices are
//! read from the products service (one batch read per cart, `GET
//! /products/?ids=…`); checkout turns a cart into an order
//! with an invoice at the payment provider ([`checkout`]); orders become
//! paid by the provider's signed webhook or by reconciliation with the
//! provider ([`reconciliation`]); emails and stats events go out through
//! the outbox.
//!
//! Routes (see [`router`]): `/user/{uid}/cart/…`, `/user/{uid}/orders/…`
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
//! - [`checkout`]: cart → order with an invoice, crash-safe, and the
//!   recovery of interrupted checkouts.
//! - [`reconciliation`]: marking orders paid (webhook, reconciliation on
//!   read, background sweep) and the confirmation messages.
//! - [`store`]: all SQL, with the outbox messages of each change.
//! - this file: [`State`], [`router`], [`Cart::start`] and its background
//!   tasks.

pub mod checkout;
pub mod clients;
pub mod config;
pub mod domain;
mod handlers;
pub mod reconciliation;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::client::HttpClient;
use common::db::{Db, DbError};
use common::idempotency::Idempotency;
use common::messages::target;
use common::outbox::{Auth, Outbox, Target, DELIVERY_TIMEOUT};
use common::time::now_ms;
use common::token_versions::{self, TokenVersions};
use common::{App, Router};
use tokio::net::TcpListener;

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

/// A started cart service: its state plus its background tasks.
pub struct Cart {
    pub state: Arc<State>,
    background: Tasks,
}

pub fn router() -> Router<State> {
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

/// Webhook event ids are kept this long: far beyond the provider's retries.
const KEEP_EVENTS: Duration = Duration::from_secs(30 * 24 * 3600);

impl Cart {
    /// Connects and migrates the database and starts the background tasks:
    /// the outbox deliverer, the payment sweep (reconciliation and checkout
    /// recovery), and the pruning of idempotency keys and webhook events.
    pub async fn start(config: CartConfig) -> Result<Cart, DbError> {
        let db = Db::connect(
            &config.base.database_url,
            config.base.database_max_connections,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let targets = HashMap::from([
            (
                target::MAILER.to_string(),
                Target {
                    base_url: config.mailer_url.clone(),
                    auth: Auth::Bearer(config.base.internal_key.clone()),
                },
            ),
            (
                target::STATS.to_string(),
                Target {
                    base_url: config.stats_url.clone(),
                    auth: Auth::None,
                },
            ),
        ]);
        // One connection pool for every call out: products, payments and
        // the outbox's deliveries to the mailer and stats.
        let http = HttpClient::new(config.upstream_connect_timeout, config.upstream_timeout);
        let outbox = Outbox::new(
            db.clone(),
            http.with_timeout(DELIVERY_TIMEOUT),
            targets,
            config.outbox.clone(),
        );
        zero_counters();
        let state = Arc::new(State {
            // This service only verifies tokens, so their lifetime is moot.
            keys: config.base.token_keys(0),
            versions: TokenVersions::new(db.clone()),
            products: ProductsClient::new(http.clone(), &config.products_url),
            payments: PaymentsClient::new(http, &config.payments_url, &config.payments_key),
            idempotency: Idempotency::new(db.clone(), config.idempotency.clone()),
            store: Store { db },
            outbox: outbox.clone(),
            config,
        });
        let mut background = Tasks::new();
        background.spawn(|stop| outbox.run(stop));
        let idempotency = state.idempotency.clone();
        background.spawn(|stop| idempotency.run_pruner(stop));
        let sweeping = state.clone();
        background.spawn(move |stop| async move {
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
        background.every(Duration::from_secs(3600), move || {
            let state = pruning.clone();
            async move {
                let before = now_ms() - KEEP_EVENTS.as_millis() as i64;
                match state.store.prune_events(before).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("forgot {n} webhook events older than 30 days"),
                    Err(e) => log::warn!("cannot prune webhook events: {e}"),
                }
            }
        });
        Ok(Cart { state, background })
    }

    /// Ready when the database answers. Products and payments are not part
    /// of readiness: with them down the cart still serves what it can
    /// (orders, deletes) and answers the rest `503`, whereas a failing
    /// readiness would take it out of rotation entirely.
    pub fn app(&self) -> App<State> {
        App::new(config::NAME, self.state.clone(), router())
            .body_limit(self.state.config.base.body_limit)
            .readiness(|s: Arc<State>| async move { s.store.db.ping().await })
    }

    /// Serves until `shutdown`, then stops the background tasks (a sweep
    /// or delivery under way finishes first) and closes the pool.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.state.config.base.server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.background.shutdown().await;
        self.state.store.db.pool.close().await;
    }
}

// How the `cart` binary drives the service (see `common::cli`).
common::service_binary!(
    Cart,
    CartConfig,
    DbError,
    describe = |s| format!(
        "products at {}, payments at {}",
        s.state.config.products_url, s.state.config.payments_url
    )
);

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
