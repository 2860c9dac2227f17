//! The mailer as a library: `main.rs` and the tests both build it with
//! [`Mailer::start`] and serve it on a listener they bound.
//!
//! Route (see [`router`]): the internal `POST /send_email/`.
//!
//! # Layout
//!
//! - [`config`]: the service's settings (transport, retries, limits).
//! - `handlers`: `POST /send_email/`.
//! - [`domain`]: recipient, subject and body checked into typed values.
//! - [`store`]: all SQL: queueing (idempotency key and per-recipient
//!   limit), leasing due mail, recording attempts.
//! - [`sender`]: the background loop that delivers and retries.
//! - [`transport`]: SMTP through lettre, or `.eml` files in a directory.
//! - this file: [`State`], [`router`], [`Mailer::start`].

pub mod config;
pub mod domain;
mod handlers;
pub mod sender;
pub mod store;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::db::{Db, DbError};
use common::messages::{Message, SendEmail};
use common::time::now_ms;
use common::{App, Router};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::MailerConfig;
use crate::sender::Sender;
use crate::store::Store;
use crate::transport::Transport;

pub struct State {
    pub config: MailerConfig,
    pub store: Store,
    /// Verifies user tokens, only to tell them apart (`403`) from unknown
    /// credentials (`401`) on the internal endpoint.
    pub keys: TokenKeys,
    /// Wakes the sender when a mail is queued, instead of at the next poll.
    pub wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Transport(String),
}

/// A running mailer's state plus its background tasks.
pub struct Mailer {
    pub state: Arc<State>,
    background: Tasks,
}

pub fn router() -> Router<State> {
    Router::new().post(SendEmail::PATH, handlers::send_email)
}

/// How often finished mail older than `keep_mails` is deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Mailer {
    /// Connects and migrates the database, prepares the transport, and
    /// starts the sender and the pruning of old mail.
    pub async fn start(config: MailerConfig) -> Result<Mailer, StartError> {
        let transport = Transport::new(&config.transport, config.send_timeout)
            .map_err(StartError::Transport)?;
        let db = Db::connect(
            &config.base.database_url,
            config.base.database_max_connections,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let store = Store { db };
        let wake = Arc::new(Notify::new());
        let sender = Sender::new(&config, store.clone(), transport, wake.clone());
        let state = Arc::new(State {
            keys: config.base.token_keys(3600),
            store,
            wake,
            config,
        });
        let mut background = Tasks::new();
        background.spawn(|stop| sender.run(stop));
        let pruning = state.clone();
        background.every(PRUNE_EVERY, move || {
            let state = pruning.clone();
            async move {
                let before = now_ms() - state.config.keep_mails.as_millis() as i64;
                match state.store.prune(before).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("deleted {n} finished mails past their keep time"),
                    Err(e) => log::warn!("cannot prune old mail: {e}"),
                }
            }
        });
        Ok(Mailer { state, background })
    }

    pub fn app(&self) -> App<State> {
        App::new(config::NAME, self.state.clone(), router())
            .body_limit(self.state.config.base.body_limit)
            .readiness(|s: Arc<State>| async move { s.store.db.ping().await })
    }

    /// Serves until `shutdown`, then stops the background tasks (an attempt
    /// under way is finished and recorded first).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.state.config.base.server.clone();
        self.app().serve(listener, options, shutdown).await;
        self.background.shutdown().await;
        self.state.store.db.pool.close().await;
    }
}

// How the `mailer` binary drives the service (see `common::cli`).
common::service_binary!(
    Mailer,
    MailerConfig,
    StartError,
    describe = |s| match &s.state.config.transport {
        config::TransportConfig::Smtp(url) => format!("mail over SMTP {url:?}"),
        config::TransportConfig::Files(dir) => format!("mail as .eml files in {}", dir.display()),
    }
);
