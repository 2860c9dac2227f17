//! The whole shop, end to end: the launcher starts every service and the
//! balancer as real processes on a temporary data directory and free ports,
//! and the tests use it only the way its users do — the frontend through
//! the balancer, an operator through the stats service's internal read and
//! the mail outbox directory — the way the services call each other's
//! internal endpoints (`routes.rs`), or the way faults do (kill -9,
//! SIGSTOP, a misbehaving network).
//!
//! Needs the workspace's binaries in `target/debug`: `cargo build
//! --workspace` (or `cargo test --workspace`, which builds them first).
//! With `TEST_DATABASE_URL` set, every service gets a fresh PostgreSQL
//! database of its own, dropped afterwards.
//!
//! Read-mostly scenarios share one shop (`Shop::shared`); each fault test
//! has its own, and at most two shops run at once, whatever
//! `--test-threads` says.

mod support;

mod edge;
mod faults;
mod journey;
mod limits;
mod load;
mod network;
mod openapi;
mod private_data;
mod regressions;
mod revocation;
mod routes;
mod tracing;
