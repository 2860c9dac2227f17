//! What every shop service shares: configuration, logging, the server loop,
//! health and metrics, errors, JSON bodies, routing, request ids, auth, the
//! database, the outbound client, the outbox, webhook signatures,
//! idempotency keys and token revocation. No business logic lives here.

pub mod app;
pub mod auth;
pub mod background;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod pagination;
pub mod request;
pub mod request_id;
pub mod retry;
pub mod router;
pub mod served;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod sync;
pub mod testing;
pub mod time;
pub mod token_versions;
pub mod webhook;

pub use app::App;
pub use error::{ApiError, FieldError, Validator};
pub use request::Req;
pub use router::{HandlerResult, Router};
