//! The shop and its payment provider: `POST /invoices` creates an invoice
//! (the cart, directly, under an idempotency key), and the provider's
//! `invoice.paid` webhook (through its outbox, signed) says one was paid.

use serde::{Deserialize, Serialize};

use super::{target, Message};

/// The `POST /invoices` body. Payments checks each field when it reads one
/// (amount range, currency, reference length).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateInvoice<'a> {
    pub amount_cents: i64,
    pub currency: &'a str,
    pub reference: Option<String>,
}

impl Message for CreateInvoice<'_> {
    const TARGET: &'static str = target::PAYMENTS;
    const PATH: &'static str = "/invoices";
}

/// The `type` of the webhook event saying an invoice was paid; receivers
/// acknowledge and ignore any other type.
pub const INVOICE_PAID: &str = "invoice.paid";

/// A webhook event: `{"id","type","created_at","invoice"}`, where
/// `invoice` is the invoice as `GET /invoices/{id}` shows it (`I`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaid<I> {
    /// `evt_` + 32 hex digits; receivers deduplicate by it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub invoice: I,
}

impl<I> InvoicePaid<I> {
    /// A new event about `invoice`, paid at `now_ms`.
    pub fn new(invoice: I, now_ms: i64) -> InvoicePaid<I> {
        InvoicePaid {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            kind: INVOICE_PAID.to_string(),
            created_at: crate::time::rfc3339(now_ms),
            invoice,
        }
    }
}

impl<I: Serialize> Message for InvoicePaid<I> {
    const TARGET: &'static str = target::WEBHOOK;
    /// The receiver's whole URL is configured (`webhook_url`).
    const PATH: &'static str = "";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_invoice_paid_event_has_its_documented_fields() {
        let e = InvoicePaid::new(json!({"id": "inv_1"}), 0).outgoing();
        assert_eq!((e.target, e.path), ("webhook", ""));
        assert_eq!(e.payload["type"], "invoice.paid");
        assert_eq!(e.payload["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(e.payload["invoice"]["id"], "inv_1");
        assert!(e.payload["id"].as_str().unwrap().starts_with("evt_"));
    }

    #[test]
    fn create_invoice_is_posted_to_payments() {
        let m = CreateInvoice {
            amount_cents: 1,
            currency: "USD",
            reference: Some("order 1".into()),
        }
        .outgoing();
        assert_eq!((m.target, m.path), ("payments", "/invoices"));
        assert_eq!(
            m.payload,
            json!({"amount_cents": 1, "currency": "USD", "reference": "order 1"})
        );
    }
}
