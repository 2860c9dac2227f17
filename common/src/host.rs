//! The one host every shop service runs in. A service supplies only what
//! is its own — its settings, its [`Service`] state, its router, its
//! background jobs, its readiness check — and [`Host`] does the rest the
//! same way for all: connect and migrate the database, build the outbound
//! HTTP client and the outbox, start the background tasks, serve the
//! [`App`], and stop in order (serving first, then the tasks, then the
//! pool).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::background::Tasks;
use crate::base_config::BaseConfig;
use crate::client::HttpClient;
use crate::config::{Config, ConfigError};
use crate::db::{Db, DbError};
use crate::idempotency::{Idempotency, IdempotencyOptions};
use crate::outbox::{Outbox, Targets, DELIVERY_TIMEOUT};
use crate::{App, Router};

/// A service's settings, as the host needs them.
pub trait Settings: Clone + Send + Sync + 'static {
    /// Builds the typed settings from the layered configuration.
    fn from_config(raw: &Config) -> Result<Self, ConfigError>;

    /// The settings every service has.
    fn base(&self) -> &BaseConfig;
}

/// What a service is, as the host sees it. Implemented by the service's
/// `State`: the value every handler gets.
pub trait Service: Send + Sync + Sized + 'static {
    /// The service's settings, common's [`BaseConfig`] among them.
    type Config: Settings;
    /// Why it may fail to start (a database error at least).
    type StartError: std::fmt::Display + From<DbError> + Send;

    /// The name in logs, metrics and the start-up line.
    const NAME: &'static str;

    /// The service's own migrations: `sqlx::migrate!("./migrations")`.
    const MIGRATIONS: Migrator;

    /// Where the outbox delivers; none by default (no deliverer runs).
    fn outbox(_config: &Self::Config) -> Targets {
        Targets::none()
    }

    /// The connection pool for every call out (the outbox's deliveries
    /// use it with [`DELIVERY_TIMEOUT`]).
    fn http_client(_config: &Self::Config) -> HttpClient {
        HttpClient::new(Duration::from_secs(2), DELIVERY_TIMEOUT)
    }

    /// Builds the state from the settings and what the host prepared.
    /// Jobs that need no state (a writer fed by a queue in it) may be
    /// spawned on `wiring.jobs` here.
    fn build(
        config: Self::Config,
        wiring: Wiring<'_>,
    ) -> impl Future<Output = Result<Self, Self::StartError>> + Send;

    /// The service's routes.
    fn router() -> Router<Self>;

    /// Background jobs that need the state (pruning, sweeps). The outbox
    /// deliverer is the host's.
    fn jobs(_state: &Arc<Self>, _jobs: &mut Tasks) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Readiness beyond the database, which the host always checks.
    fn ready(_state: Arc<Self>) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Extra words for the start-up line: where neighbours or mail go.
    fn describe(_config: &Self::Config) -> String {
        String::new()
    }
}

/// What the host prepared for [`Service::build`].
pub struct Wiring<'a> {
    /// Connected and migrated.
    pub db: Db,
    /// From [`Service::http_client`].
    pub http: HttpClient,
    /// Delivers to [`Service::outbox`]'s targets (runs only if there are).
    pub outbox: Outbox,
    /// The service's background tasks, stopped after serving ends.
    pub jobs: &'a mut Tasks,
}

impl Wiring<'_> {
    /// Idempotency keys in this database, with their pruning (at start and
    /// every `prune_interval`) among the background jobs.
    pub fn idempotency(&mut self, options: IdempotencyOptions) -> Idempotency {
        let idempotency = Idempotency::new(self.db.clone(), options);
        let pruning = idempotency.clone();
        let every = idempotency.options().prune_interval;
        self.jobs
            .prune_now_and_every(every, "expired idempotency keys", move || {
                let pruning = pruning.clone();
                async move { pruning.prune().await }
            });
        idempotency
    }
}

/// A started service: its state, database and background tasks.
pub struct Host<S: Service> {
    pub state: Arc<S>,
    pub config: S::Config,
    db: Db,
    jobs: Tasks,
}

impl<S: Service> Host<S> {
    /// Connects and migrates the database, builds the state, and starts
    /// the outbox deliverer and the service's jobs.
    pub async fn start(config: S::Config) -> Result<Host<S>, S::StartError> {
        let base = config.base();
        let db = Db::connect(
            &base.database_url,
            base.database_max_connections,
            S::MIGRATIONS,
        )
        .await?;
        let http = S::http_client(&config);
        let targets = S::outbox(&config);
        let delivers = !targets.is_empty();
        let outbox = targets.outbox(db.clone(), http.with_timeout(DELIVERY_TIMEOUT));
        let mut jobs = Tasks::new();
        let wiring = Wiring {
            db: db.clone(),
            http,
            outbox: outbox.clone(),
            jobs: &mut jobs,
        };
        let state = Arc::new(S::build(config.clone(), wiring).await?);
        if delivers {
            jobs.spawn(|stop| outbox.run(stop));
        }
        S::jobs(&state, &mut jobs).await;
        Ok(Host {
            state,
            config,
            db,
            jobs,
        })
    }

    /// The service's HTTP front: its router, body limit and readiness
    /// (the database, then the service's own check).
    pub fn app(&self) -> App<S> {
        let db = self.db.clone();
        App::new(S::NAME, self.state.clone(), S::router())
            .body_limit(self.config.base().body_limit)
            .readiness(move |state: Arc<S>| {
                let db = db.clone();
                async move {
                    db.ping().await?;
                    S::ready(state).await
                }
            })
    }

    /// Serves until `shutdown`, then stops the background tasks (each
    /// finishes the step under way) and closes the pool.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.config.base().server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.stop().await;
    }

    /// Stops the background tasks and closes the pool, without serving
    /// (a subcommand's end).
    pub async fn stop(self) {
        self.jobs.shutdown().await;
        self.db.pool.close().await;
    }
}
