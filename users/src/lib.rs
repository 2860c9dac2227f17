//! The users service as a library: `main.rs` and the tests both build it
//! with [`Users::start`] and serve it on a listener they bound.
//!
//! Routes (see [`router`]): `POST /user/`, `POST /user/login`,
//! `GET|PUT|DELETE /user/{id}`.
//!
//! # Layout
//!
//! - [`config`]: the service's settings on top of common's base ones.
//! - `handlers`: one async fn per endpoint; store errors → problem+json.
//! - [`domain`]: `Email`, `Password`, `Name` (parse, don't validate) and
//!   the `User` clients see.
//! - [`password`]: argon2id hashing, off the async threads and bounded.
//! - [`ratelimit`]: login throttling per email and per client address.
//! - [`store`]: all SQL; registration writes the welcome email and the
//!   `user_registered` event into the outbox in the same transaction.
//! - this file: [`State`], [`router`], [`Users::start`] (database, admin
//!   bootstrap, background tasks) and [`ensure_admin`].

pub mod admin;
pub mod config;
pub mod domain;
mod handlers;
pub mod password;
pub mod ratelimit;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::client::HttpClient;
use common::db::{Db, DbError};
use common::messages::target;
use common::outbox::{Auth, Outbox, OutboxOptions, Target, DELIVERY_TIMEOUT};
use common::{App, Router};
use tokio::net::TcpListener;

use crate::admin::{AdminError, IfAdmin};
use crate::config::UsersConfig;
use crate::password::Hasher;
use crate::ratelimit::{LoginLimiter, PerMinute};
use crate::store::Store;

/// Revocations are retried at least this often while a verifier is
/// unreachable, so one that comes back hears of them within about this
/// long (the default cap is minutes).
const REVOCATION_MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct State {
    pub config: UsersConfig,
    pub store: Store,
    pub keys: TokenKeys,
    pub hasher: Hasher,
    pub limiter: LoginLimiter,
    pub registrations: PerMinute<IpAddr>,
    pub outbox: Outbox,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot bootstrap the admin account: {0}")]
    Admin(#[from] AdminError),
}

/// A running users service's state plus its background tasks.
pub struct Users {
    pub state: Arc<State>,
    background: Tasks,
}

pub fn router() -> Router<State> {
    Router::new()
        .post("/user/", handlers::register)
        .post("/user/login", handlers::login)
        .get("/user/{id}", handlers::get)
        .put("/user/{id}", handlers::update)
        .delete("/user/{id}", handlers::delete)
}

impl Users {
    /// Connects and migrates the database, bootstraps the admin, and starts
    /// the outbox deliverer and limiter pruning.
    pub async fn start(config: UsersConfig) -> Result<Users, StartError> {
        let db = Db::connect(
            &config.base.database_url,
            config.base.database_max_connections,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let client = HttpClient::new(Duration::from_secs(2), DELIVERY_TIMEOUT);
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
            (
                "products".to_string(),
                Target {
                    base_url: config.products_url.clone(),
                    auth: Auth::Bearer(config.base.internal_key.clone()),
                },
            ),
            (
                "cart".to_string(),
                Target {
                    base_url: config.cart_url.clone(),
                    auth: Auth::Bearer(config.base.internal_key.clone()),
                },
            ),
        ]);
        let mut outbox = Outbox::new(db.clone(), client, targets, OutboxOptions::default());
        for verifier in store::TOKEN_VERIFIERS {
            outbox = outbox.max_backoff_for(verifier, REVOCATION_MAX_BACKOFF);
        }
        let state = Arc::new(State {
            keys: config.base.token_keys(config.token_ttl.as_secs() as i64),
            hasher: Hasher::new(config.hash_concurrency),
            limiter: LoginLimiter::new(
                config.login_attempts_per_email,
                config.login_attempts_per_ip,
            ),
            registrations: PerMinute::new(config.registrations_per_ip),
            store: Store { db },
            outbox: outbox.clone(),
            config,
        });
        if let Some((email, password)) = state.config.admin.clone() {
            match admin::create(&state, &email, &password, IfAdmin::Keep).await {
                Ok(outcome) => log::info!("admin account {email}: {outcome}"),
                // Serving without the bootstrap admin is safe; promoting
                // someone else's account is not (see `admin`).
                Err(e @ AdminError::NotAdmin { .. }) if !state.config.admin_strict => {
                    log::error!("admin bootstrap refused: {e}; serving without it (admin_strict=true stops instead)")
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut background = Tasks::new();
        background.spawn(|stop| outbox.run(stop));
        let pruning = state.clone();
        background.every(Duration::from_secs(60), move || {
            pruning.limiter.prune();
            pruning.registrations.prune();
            std::future::ready(())
        });
        // A trusted proxy given by name (compose's `balancer`) gets a new
        // address when its container is recreated.
        let peers = state.config.trusted_proxies.clone();
        if !peers.hosts().is_empty() {
            peers.refresh().await;
            background.every(common::peers::REFRESH_EVERY, move || {
                let peers = peers.clone();
                async move { peers.refresh().await }
            });
        }
        Ok(Users { state, background })
    }

    pub fn app(&self) -> App<State> {
        let state = self.state.clone();
        App::new(config::NAME, state, router())
            .body_limit(self.state.config.base.body_limit)
            .readiness(|s: Arc<State>| async move { s.store.db.ping().await })
    }

    /// Serves until `shutdown`, then stops the background tasks.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.state.config.base.server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.stop().await;
    }

    /// Stops the background tasks (a delivery under way is finished and
    /// recorded, not cut off) and closes the pool.
    pub async fn stop(self) {
        self.background.shutdown().await;
        self.state.store.db.pool.close().await;
    }
}

// How the `users` binary drives the service (see `common::cli`).
common::service_binary!(Users, UsersConfig, StartError);
