//! The payments-mock API over real HTTP: the service runs in-process on a
//! loopback port with a fresh database per test (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set) and is driven with reqwest; webhooks go to a
//! loopback receiver in the test.

mod card_data;
mod faults;
mod idempotency;
mod invoices;
mod paying;
mod service;
mod support;
mod validation;
mod webhooks;
