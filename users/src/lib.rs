//! The users service as a library: `main.rs` and the tests both build it
//! with [`Users::start`] and serve it on a listener they bound.

pub mod config;
pub mod domain;
mod handlers;
pub mod password;
pub mod ratelimit;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::auth::{Role, TokenKeys};
use common::background::Tasks;
use common::client::HttpClient;
use common::db::{Db, DbError};
use common::outbox::{Auth, Outbox, OutboxOptions, Target};
use common::{App, Router};
use tokio::net::TcpListener;

use crate::config::UsersConfig;
use crate::domain::{Email, Name, Password};
use crate::password::Hasher;
use crate::ratelimit::LoginLimiter;
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
    pub outbox: Outbox,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot bootstrap the admin account: {0}")]
    Admin(String),
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
        let client = HttpClient::new(Duration::from_secs(2), Duration::from_secs(10));
        let targets = HashMap::from([
            (
                "mailer".to_string(),
                Target {
                    base_url: config.mailer_url.clone(),
                    auth: Auth::Bearer(config.base.internal_key.clone()),
                },
            ),
            (
                "stats".to_string(),
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
            store: Store { db },
            outbox: outbox.clone(),
            config,
        });
        if let Some((email, password)) = state.config.admin.clone() {
            let outcome = ensure_admin(&state, &email, &password, false).await?;
            log::info!("admin account {email}: {outcome}");
        }
        let mut background = Tasks::new();
        background.spawn(|stop| outbox.run(stop));
        let pruning = state.clone();
        background.every(Duration::from_secs(60), move || {
            pruning.limiter.prune();
            std::future::ready(())
        });
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

/// Creates the admin account if absent; an existing account with that email
/// becomes an admin (its password is reset only when `reset_password`).
pub async fn ensure_admin(
    state: &State,
    email: &str,
    password: &str,
    reset_password: bool,
) -> Result<&'static str, StartError> {
    let email = Email::parse(email).map_err(|e| StartError::Admin(format!("email {e}")))?;
    let password =
        Password::parse(password).map_err(|e| StartError::Admin(format!("password {e}")))?;
    let admin_err = |e: store::StoreError| StartError::Admin(e.to_string());
    match state
        .store
        .credentials(email.as_str())
        .await
        .map_err(admin_err)?
    {
        Some(existing) => {
            let hash = if reset_password {
                Some(
                    state
                        .hasher
                        .hash(password.expose())
                        .await
                        .map_err(|e| StartError::Admin(e.to_string()))?,
                )
            } else {
                None
            };
            state
                .store
                .update(
                    &existing.user.id,
                    None,
                    None,
                    hash.as_deref(),
                    Some(Role::Admin),
                )
                .await
                .map_err(admin_err)?;
            // A new password or role revokes the old tokens: send it now.
            state.outbox.notify();
            Ok(if existing.user.role == Role::Admin {
                "already present"
            } else {
                "promoted to admin"
            })
        }
        None => {
            let hash = state
                .hasher
                .hash(password.expose())
                .await
                .map_err(|e| StartError::Admin(e.to_string()))?;
            let name = Name::parse("Administrator").expect("a constant name is valid");
            match state
                .store
                .create(email.as_str(), name.as_str(), &hash, Role::Admin, None)
                .await
            {
                Ok(_) => Ok("created"),
                // Another replica created it a moment ago.
                Err(store::StoreError::EmailTaken) => Ok("already present"),
                Err(e) => Err(admin_err(e)),
            }
        }
    }
}

// How the `users` binary drives the service (see `common::cli`).
common::service_binary!(Users, UsersConfig, StartError);
