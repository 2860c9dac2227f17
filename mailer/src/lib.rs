//! The mailer as a library: [`State`] is its [`Service`], which `main.rs`
//! and the tests start in a [`common::host::Host`].
//!
//! Route (see `router()`): the internal `POST /send_email/`.
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
//! - this file: [`State`] and what the host needs of it.

pub mod config;
pub mod domain;
mod handlers;
pub mod sender;
pub mod store;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenKeys;
use common::background::Tasks;
use common::db::DbError;
use common::host::{Service, Wiring};
use common::messages::{Message, SendEmail};
use common::time::now_ms;
use common::Router;
use sqlx::migrate::Migrator;
use tokio::sync::Notify;

use crate::config::{MailerConfig, TransportConfig};
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

/// How often finished mail older than `keep_mails` is deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Service for State {
    type Config = MailerConfig;
    type StartError = StartError;
    const NAME: &'static str = config::NAME;
    const MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

    /// Prepares the transport and starts the sender: an attempt under way
    /// at shutdown is finished and recorded first.
    async fn build(config: MailerConfig, wiring: Wiring<'_>) -> Result<State, StartError> {
        let transport = Transport::new(&config.transport, config.send_timeout)
            .map_err(StartError::Transport)?;
        let store = Store { db: wiring.db };
        let wake = Arc::new(Notify::new());
        let sender = Sender::new(&config, store.clone(), transport, wake.clone());
        wiring.jobs.spawn(|stop| sender.run(stop));
        Ok(State {
            keys: config.base.token_keys(3600),
            store,
            wake,
            config,
        })
    }

    fn router() -> Router<State> {
        Router::new().post(SendEmail::PATH, handlers::send_email)
    }

    /// The pruning of finished mail past its keep time.
    async fn jobs(state: &Arc<State>, jobs: &mut Tasks) {
        let state = state.clone();
        jobs.prune_every(
            PRUNE_EVERY,
            "finished mails past their keep time",
            move || {
                let state = state.clone();
                async move {
                    let before = now_ms() - state.config.keep_mails.as_millis() as i64;
                    state.store.prune(before).await
                }
            },
        );
    }

    fn describe(config: &MailerConfig) -> String {
        match &config.transport {
            TransportConfig::Smtp(url) => format!("mail over SMTP {url:?}"),
            TransportConfig::Files(dir) => format!("mail as .eml files in {}", dir.display()),
        }
    }
}
