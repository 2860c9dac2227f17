//! The payment provider's webhook body, checked into a typed event before
//! the handler acts on it (parse, don't validate): an `invoice.paid` event
//! carries a paid invoice; any other type is only acknowledged.

use serde_json::Value;

use common::messages::payments::INVOICE_PAID;
use common::validate::FromBody;
use common::ApiError;

use crate::clients::Invoice;

/// One signed event, as the handler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// `invoice.paid`: `invoice.id` and a paid invoice with its amount.
    InvoicePaid { event_id: String, invoice: Invoice },
    /// Any other type: acknowledged, nothing done.
    Other {
        event_id: String,
        event_type: String,
    },
}

impl PaymentEvent {
    pub fn event_id(&self) -> &str {
        match self {
            PaymentEvent::InvoicePaid { event_id, .. } | PaymentEvent::Other { event_id, .. } => {
                event_id
            }
        }
    }
}

/// A non-empty string of at most 255 bytes at `key`, named `field` when
/// it is not one.
fn text(v: &Value, key: &str, field: &str) -> Result<String, ApiError> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid_field(field, "must be a non-empty string"))
}

impl FromBody for PaymentEvent {
    type Raw = Value;

    fn check(event: Value) -> Result<PaymentEvent, ApiError> {
        let event_id = text(&event, "id", "id")?;
        let event_type = text(&event, "type", "type")?;
        if event_type != INVOICE_PAID {
            return Ok(PaymentEvent::Other {
                event_id,
                event_type,
            });
        }
        let raw = event
            .get("invoice")
            .filter(|v| v.is_object())
            .ok_or_else(|| ApiError::invalid_field("invoice", "must be an object"))?;
        text(raw, "id", "invoice.id")?;
        let invoice: Invoice = serde_json::from_value(raw.clone())
            .map_err(|e| ApiError::invalid_field("invoice", e.to_string()))?;
        if !invoice.is_paid() {
            return Err(ApiError::invalid_field(
                "invoice.status",
                "an invoice.paid event must carry a paid invoice",
            ));
        }
        Ok(PaymentEvent::InvoicePaid { event_id, invoice })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bad_field(body: Value) -> String {
        let err = PaymentEvent::check(body).unwrap_err();
        assert_eq!(
            err.status,
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "{err:?}"
        );
        err.errors[0].field.clone()
    }

    #[test]
    fn an_invoice_paid_event_carries_a_paid_invoice() {
        let invoice =
            json!({"id": "inv_1", "status": "paid", "amount_cents": 1299, "currency": "EUR"});
        let event =
            PaymentEvent::check(json!({"id": "evt_1", "type": INVOICE_PAID, "invoice": invoice}))
                .unwrap();
        let PaymentEvent::InvoicePaid { event_id, invoice } = event else {
            panic!("{event:?}");
        };
        assert_eq!((event_id.as_str(), invoice.id.as_str()), ("evt_1", "inv_1"));
        assert_eq!(invoice.amount_cents, 1299);
    }

    #[test]
    fn other_types_are_only_acknowledged() {
        let event = PaymentEvent::check(json!({"id": "evt_2", "type": "invoice.created"})).unwrap();
        assert_eq!(
            event,
            PaymentEvent::Other {
                event_id: "evt_2".into(),
                event_type: "invoice.created".into()
            }
        );
        assert_eq!(event.event_id(), "evt_2");
    }

    #[test]
    fn each_malformed_part_is_named() {
        assert_eq!(bad_field(json!({"type": INVOICE_PAID})), "id");
        assert_eq!(bad_field(json!({"id": "x".repeat(256), "type": "t"})), "id");
        assert_eq!(bad_field(json!({"id": "e", "type": ""})), "type");
        assert_eq!(
            bad_field(json!({"id": "e", "type": INVOICE_PAID})),
            "invoice"
        );
        assert_eq!(
            bad_field(json!({"id": "e", "type": INVOICE_PAID, "invoice": {"status": "paid"}})),
            "invoice.id"
        );
        assert_eq!(
            bad_field(
                json!({"id": "e", "type": INVOICE_PAID, "invoice": {"id": "i", "status": "paid"}})
            ),
            "invoice"
        );
        let open = json!({"id": "i", "status": "open", "amount_cents": 1, "currency": "EUR"});
        assert_eq!(
            bad_field(json!({"id": "e", "type": INVOICE_PAID, "invoice": open})),
            "invoice.status"
        );
    }
}
