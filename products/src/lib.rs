//! The products service as a library: [`State`] is its [`Service`], which
//! `main.rs` and the tests start in a [`common::host::Host`]; the launcher
//! and `products seed` load the demo catalog with [`seed()`].
//!
//! Routes (see `router()`): `POST /product/`, `GET|PUT|DELETE
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
//! - this file: [`State`] and what the host needs of it.

pub mod cache;
pub mod config;
pub mod domain;
mod handlers;
pub mod listing;
pub mod seed;
pub mod store;

use common::auth::TokenKeys;
use common::db::DbError;
use common::host::{Service, Wiring};
use common::token_versions::{self, TokenVersions};
use common::Router;
use http::HeaderValue;
use sqlx::migrate::Migrator;

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

impl Service for State {
    type Config = ProductsConfig;
    type StartError = DbError;
    const NAME: &'static str = config::NAME;
    const MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

    async fn build(config: ProductsConfig, wiring: Wiring<'_>) -> Result<State, DbError> {
        let cache_control = HeaderValue::from_str(&format!(
            "public, max-age={}",
            config.cache_max_age.as_secs()
        ))
        .expect("digits make a valid header value");
        Ok(State {
            // This service only verifies tokens, so their lifetime is moot.
            keys: config.base.token_keys(0),
            versions: TokenVersions::new(wiring.db.clone()),
            store: Store::new(wiring.db),
            cache: ReadCache::new(config.read_cache_ttl, config.read_cache_max_bytes),
            cache_control,
            config,
        })
    }

    fn router() -> Router<State> {
        Router::new()
            .post("/product/", handlers::create)
            .get("/product/{id}", handlers::get)
            .put("/product/{id}", handlers::update)
            .delete("/product/{id}", handlers::delete)
            .get("/products/", handlers::list)
            .get("/products/categories", handlers::categories)
            .post(token_versions::PATH, handlers::token_version)
    }
}
