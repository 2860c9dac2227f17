//! The shop's messages between services, as types: each knows the service
//! that receives it ([`Message::TARGET`]) and the path it is POSTed to
//! ([`Message::PATH`]). The sender serializes one (into the outbox, or a
//! direct call), the receiver routes its path and reads its body with the
//! same type, so the two cannot drift apart.
//!
//! - [`email`]: `SendEmail` to the mailer.
//! - [`stats`]: `StatsEvent` to stats, with each action's `data`.
//! - [`payments`]: `CreateInvoice` to payments and the `invoice.paid`
//!   webhook (`InvoicePaid`) payments sends back.
//!
//! Token revocations (`common::token_versions`) are messages too; they live
//! with their verifier, as users sends them to several targets.

pub mod email;
pub mod payments;
pub mod stats;

use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;

pub use email::SendEmail;
pub use payments::{CreateInvoice, InvoicePaid};
pub use stats::StatsEvent;

/// The names senders give their receivers: the keys of an outbox's
/// targets (`common::outbox::Target`).
pub mod target {
    pub const MAILER: &str = "mailer";
    pub const STATS: &str = "stats";
    pub const PAYMENTS: &str = "payments";
    /// The shop's webhook receiver, as payments knows it (its path is part
    /// of the configured URL).
    pub const WEBHOOK: &str = "webhook";
}

/// A message one service sends another.
pub trait Message: Serialize {
    /// Who receives it: one of [`target`].
    const TARGET: &'static str;
    /// Where, under the target's base URL.
    const PATH: &'static str;

    /// The message as the outbox stores it.
    fn outgoing(&self) -> Outgoing {
        Outgoing {
            target: Self::TARGET,
            path: Self::PATH,
            // Message types are plain structs of strings and numbers.
            payload: serde_json::to_value(self).expect("a message always serializes"),
        }
    }
}

/// A message on its way into the outbox, whatever its type, so a change
/// can announce several kinds at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub target: &'static str,
    pub path: &'static str,
    pub payload: Value,
}

impl Outgoing {
    /// Writes it in the caller's transaction; returns its id.
    pub async fn enqueue(&self, conn: &mut AnyConnection) -> Result<String, sqlx::Error> {
        crate::outbox::enqueue(conn, self.target, self.path, &self.payload).await
    }
}
