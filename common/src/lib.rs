//! What every shop service shares: configuration, logging, the server loop,
//! health and metrics, errors, JSON bodies, routing, request ids, auth, the
//! database, the outbound client, the outbox, webhook signatures,
//! idempotency keys and token revocation; and the shop's shared vocabulary:
//! money and the messages services send each other. No business logic
//! lives here.
//!
//! # Layout
//!
//! - Starting a service: [`host`] (the [`host::Service`] trait a service
//!   implements and the [`host::Host`] that connects and migrates the
//!   database, wires the outbox, runs background jobs, serves and stops in
//!   order), [`config`] (layered settings), [`base_config`] (the settings every
//!   service has, generated secrets), [`cli`] (flags, logging, the binary's
//!   start-up sequence), [`logging`].
//! - Serving: [`server`] (the plain hyper-util accept loop: connection
//!   limits, slow-header and idle cut-off, graceful drain), [`app`] (built-in
//!   `/healthz` `/readyz` `/metrics`, request ids, the access log, errors
//!   and panics → problem+json), [`router`], [`request`], [`request_id`],
//!   [`shutdown`], [`metrics`].
//! - Requests and answers: [`json`] (bodies and their limits), [`validate`]
//!   (a body or query checked into a value, every bad field named),
//!   [`error`] (`ApiError`, `FieldError`), [`money`] (`Money`, `Currency`,
//!   the default currency), [`pagination`], [`auth`] (user tokens, the
//!   internal key), [`token_versions`] (revoked tokens).
//! - Data and neighbours: [`db`] (SQLite or PostgreSQL, migrations),
//!   [`client`] (outbound HTTP), [`messages`] (what services send each
//!   other, typed, with target and path), [`outbox`], [`idempotency`],
//!   [`webhook`] (`Shop-Signature`), [`retry`], [`background`], [`mutex`]
//!   (locks that survive a panicking holder), [`time`].
//! - Tests, behind the `test-support` feature: `testing` (`TestApp<S>`,
//!   spawn on port 0, a recording server), `db::TestDb`.

pub mod app;
pub mod auth;
pub mod background;
pub mod base_config;
pub mod cli;
pub mod client;
pub mod conditional;
pub mod config;
pub mod db;
pub mod error;
pub mod host;
pub mod idempotency;
pub mod json;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod money;
pub mod mutex;
pub mod outbox;
pub mod pagination;
pub mod peers;
pub mod private;
pub mod query;
pub mod request;
pub mod request_context;
pub mod request_id;
pub mod retry;
pub mod router;
pub mod secrets;
pub mod server;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod time;
pub mod token_versions;
pub mod validate;
pub mod webhook;

pub use app::App;
pub use error::{ApiError, FieldError};
pub use request::Req;
pub use router::{HandlerResult, Router};
