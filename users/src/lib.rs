//! The users service as a library: [`State`] is its [`Service`], which
//! `main.rs` and the tests start in a [`common::host::Host`].
//!
//! Routes (see `router()`): `POST /user/`, `POST /user/login`,
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
//! - this file: [`State`] and what the host needs of it (outbox targets,
//!   the admin bootstrap, background jobs).

pub mod admin;
pub mod config;
pub mod domain;
mod handlers;
pub mod password;
pub mod ratelimit;
pub mod store;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::db::DbError;
use common::host::{Service, Wiring};
use common::messages::target;
use common::outbox::{Outbox, OutboxOptions, Targets};
use common::Router;
use sqlx::migrate::Migrator;

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

impl Service for State {
    type Config = UsersConfig;
    type StartError = StartError;
    const NAME: &'static str = config::NAME;
    const MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

    /// The welcome mail, the registration events, and the token
    /// revocations every verifier must hear of soon.
    fn outbox(config: &UsersConfig) -> Targets {
        let key = &config.base.internal_key;
        let mut targets = Targets::new(OutboxOptions::default())
            .internal(target::MAILER, &config.mailer_url, key)
            .open(target::STATS, &config.stats_url)
            .internal("products", &config.products_url, key)
            .internal("cart", &config.cart_url, key);
        for verifier in store::TOKEN_VERIFIERS {
            targets = targets.max_backoff(verifier, REVOCATION_MAX_BACKOFF);
        }
        targets
    }

    /// Builds the state and bootstraps the admin account, if configured.
    async fn build(config: UsersConfig, wiring: Wiring<'_>) -> Result<State, StartError> {
        let state = State {
            keys: config.base.token_keys(config.token_ttl.as_secs() as i64),
            hasher: Hasher::new(config.hash_concurrency),
            limiter: LoginLimiter::new(
                config.login_attempts_per_email,
                config.login_attempts_per_ip,
            ),
            registrations: PerMinute::new(config.registrations_per_ip),
            store: Store { db: wiring.db },
            outbox: wiring.outbox,
            config,
        };
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
        Ok(state)
    }

    fn router() -> Router<State> {
        Router::new()
            .post("/user/", handlers::register)
            .post("/user/login", handlers::login)
            .get("/user/{id}", handlers::get)
            .put("/user/{id}", handlers::update)
            .delete("/user/{id}", handlers::delete)
    }

    /// Limiter pruning, and the refresh of trusted proxies given by name.
    async fn jobs(state: &Arc<State>, jobs: &mut Tasks) {
        let pruning = state.clone();
        jobs.every(Duration::from_secs(60), move || {
            pruning.limiter.prune();
            pruning.registrations.prune();
            std::future::ready(())
        });
        // A trusted proxy given by name (compose's `balancer`) gets a new
        // address when its container is recreated.
        let peers = state.config.trusted_proxies.clone();
        if !peers.hosts().is_empty() {
            peers.refresh().await;
            jobs.every(common::peers::REFRESH_EVERY, move || {
                let peers = peers.clone();
                async move { peers.refresh().await }
            });
        }
    }
}
