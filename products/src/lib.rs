//! The products service as a library: `main.rs` and the tests both build it
//! with [`Products::start`] and serve it on a listener they bound; the
//! launcher and `products seed` load the demo catalog with [`seed()`].
//!
//! Routes (see [`router`]): `POST /product/`, `GET|PUT|DELETE
//! /product/{id}`, `GET /products/`.
//!
//! # Layout
//!
//! - [`config`]: the service's settings (HTTP caching, read cache).
//! - `handlers`: one async fn per endpoint, plus ETag / `If-None-Match`.
//! - [`domain`]: product fields checked into typed values; the `Product`
//!   clients see.
//! - [`cache`]: the in-process cache of rendered reads.
//! - [`store`]: all SQL.
//! - [`mod@seed`]: the bundled demo catalog and `products seed`.
//! - this file: [`State`], [`router`], [`Products::start`].

pub mod cache;
pub mod config;
pub mod domain;
mod handlers;
pub mod listing;
pub mod seed;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use common::auth::TokenKeys;
use common::db::{Db, DbError};
use common::token_versions::{self, TokenVersions};
use common::{App, Router};
use http::HeaderValue;
use tokio::net::TcpListener;

use crate::cache::ReadCache;
use crate::config::ProductsConfig;
use crate::store::Store;

pub use crate::seed::{seed, SeedError};

pub struct State {
    pub config: ProductsConfig,
    pub store: Store,
    pub keys: TokenKeys,
    /// Revoked tokens, as users announces them.
    pub versions: TokenVersions,
    pub cache: ReadCache,
    /// `Cache-Control` of catalog reads, built once from the settings.
    cache_control: HeaderValue,
}

pub fn router() -> Router<State> {
    Router::new()
        .post("/product/", handlers::create)
        .get("/product/{id}", handlers::get)
        .put("/product/{id}", handlers::update)
        .delete("/product/{id}", handlers::delete)
        .get("/products/", handlers::list)
        .get("/products/categories", handlers::categories)
        .post(token_versions::PATH, handlers::token_version)
}

/// A started products service: database connected and migrated.
pub struct Products {
    pub state: Arc<State>,
}

impl Products {
    /// Connects and migrates the database.
    pub async fn start(config: ProductsConfig) -> Result<Products, DbError> {
        let db = Db::connect(
            &config.base.database_url,
            config.base.database_max_connections,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let cache_control = HeaderValue::from_str(&format!(
            "public, max-age={}",
            config.cache_max_age.as_secs()
        ))
        .expect("digits make a valid header value");
        let state = Arc::new(State {
            // This service only verifies tokens, so their lifetime is moot.
            keys: config.base.token_keys(0),
            versions: TokenVersions::new(db.clone()),
            store: Store::new(db),
            cache: ReadCache::new(config.read_cache_ttl, config.read_cache_max_bytes),
            cache_control,
            config,
        });
        Ok(Products { state })
    }

    pub fn app(&self) -> App<State> {
        App::new(config::NAME, self.state.clone(), router())
            .body_limit(self.state.config.base.body_limit)
            .readiness(|s: Arc<State>| async move { s.store.db.ping().await })
    }

    /// Serves until `shutdown`, then closes the database pool.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.state.config.base.server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.state.store.db.pool.close().await;
    }
}

// How the `products` binary drives the service (see `common::cli`).
common::service_binary!(Products, ProductsConfig, DbError);
