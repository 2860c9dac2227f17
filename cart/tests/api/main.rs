//! The cart API over real HTTP, against the real products and payments-mock
//! services running in-process (see `support.rs`); mailer and stats are a
//! recording loopback receiver. Each test gets its own databases (SQLite,
//! or PostgreSQL when `TEST_DATABASE_URL` is set).

mod access;
mod batch;
mod checkout;
mod concurrency;
mod idempotency;
mod lines;
mod metrics;
mod orders;
mod outages;
mod payment;
mod prices;
mod reconciliation;
mod recovery;
mod revocation;
mod service;
mod support;
mod validation;
mod webhooks;
