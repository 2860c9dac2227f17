//! Invoices as the API shows them, their ids, and the checks on what a
//! merchant sends when creating one. Request fields arrive as raw JSON
//! values and are checked here, so every message is ours (and names its
//! field) rather than serde's.

use serde::Serialize;
use serde_json::Value;

use common::money::Currency;
use common::validate::{all, field, object, FromBody};
use common::ApiError;

/// Invoice ids are `inv_` + a UUIDv7 in simple form (time-ordered, opaque).
pub const ID_PREFIX: &str = "inv_";

pub fn new_invoice_id() -> String {
    format!("{ID_PREFIX}{}", uuid::Uuid::now_v7().simple())
}

/// A well-formed invoice id, or `None` (which the handlers answer `404`).
pub fn parse_invoice_id(raw: &str) -> Option<&str> {
    let hex = raw.strip_prefix(ID_PREFIX)?;
    (hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(raw)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Paid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Paid => "paid",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "open" => Some(Status::Open),
            "paid" => Some(Status::Paid),
            _ => None,
        }
    }
}

/// What is known of the card that paid: never more than this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub reference: Option<String>,
    pub status: Status,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSummary>,
}

/// The largest invoice: about a billion in major units, far beyond any
/// basket, and far from overflowing anyone's sums.
pub const MAX_AMOUNT_CENTS: i64 = 99_999_999_999;
pub const MAX_REFERENCE_CHARS: usize = 200;

/// A checked `POST /invoices` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    pub amount_cents: i64,
    pub currency: Currency,
    pub reference: Option<String>,
}

/// A required JSON integer: floats, strings and out-of-range numbers are refused.
pub fn integer(value: Option<&Value>) -> Result<i64, String> {
    match value {
        None | Some(Value::Null) => Err("is required".into()),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(i),
            None if n.is_u64() => Err("is too large".into()),
            None => Err("must be an integer, written without a fraction or exponent".into()),
        },
        Some(_) => Err("must be an integer".into()),
    }
}

/// A required JSON string.
pub fn string(value: Option<&Value>) -> Result<&str, String> {
    match value {
        None | Some(Value::Null) => Err("is required".into()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err("must be a string".into()),
    }
}

impl FromBody for NewInvoice {
    type Raw = Value;

    /// Checks every field and reports all problems at once.
    fn check(body: Value) -> Result<NewInvoice, ApiError> {
        let body = object(body)?;
        let amount = integer(body.get("amount_cents")).and_then(|a| match a {
            a if a < 1 => Err("must be at least 1".into()),
            a if a > MAX_AMOUNT_CENTS => Err(format!("must be at most {MAX_AMOUNT_CENTS}")),
            a => Ok(a),
        });
        let currency = match body.get("currency") {
            None | Some(Value::Null) => Ok(Currency::default()),
            value => string(value).and_then(Currency::parse),
        };
        let reference = match body.get("reference") {
            None | Some(Value::Null) => Ok(None),
            value => string(value).and_then(|r| {
                if r.chars().count() > MAX_REFERENCE_CHARS {
                    Err(format!("must be at most {MAX_REFERENCE_CHARS} characters"))
                } else if r.chars().any(char::is_control) {
                    Err("must not contain control characters".into())
                } else {
                    Ok(Some(r.to_string()))
                }
            }),
        };
        let (amount_cents, currency, reference) = all((
            field("amount_cents", amount),
            field("currency", currency),
            field("reference", reference),
        ))?;
        Ok(NewInvoice {
            amount_cents,
            currency,
            reference,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Vec<String> {
        NewInvoice::check(body)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn ids() {
        let id = new_invoice_id();
        assert_eq!(parse_invoice_id(&id), Some(id.as_str()));
        assert_eq!(id.len(), 36);
        for bad in [
            "",
            "inv_",
            "inv_123",
            "usr_0190e5b0c6a57d7c9b1e2f3a4b5c6d7e",
            "inv_0190E5B0C6A57D7C9B1E2F3A4B5C6D7E",
            "inv_0190e5b0-c6a5-7d7c-9b1e-2f3a4b5c6d7e",
        ] {
            assert_eq!(parse_invoice_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_invoice_gets_defaults() {
        let n = NewInvoice::check(json!({"amount_cents": 1999})).unwrap();
        assert_eq!(
            n,
            NewInvoice {
                amount_cents: 1999,
                currency: Currency::default(),
                reference: None
            }
        );
        let n = NewInvoice::check(
            json!({"amount_cents": 1, "currency": "EUR", "reference": "order 7"}),
        )
        .unwrap();
        assert_eq!(n.currency.as_str(), "EUR");
        assert_eq!(n.reference.as_deref(), Some("order 7"));
    }

    #[test]
    fn every_bad_field_is_named() {
        for amount in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("100"),
            json!(null),
            json!(1e20),
            json!(u64::MAX),
            json!(100_000_000_000i64),
        ] {
            assert_eq!(
                fields(json!({"amount_cents": amount})),
                ["amount_cents"],
                "{amount}"
            );
        }
        assert_eq!(fields(json!({})), ["amount_cents"]);
        for currency in [
            json!("usd"),
            json!("US"),
            json!("USDX"),
            json!(840),
            json!("ÜSD"),
        ] {
            assert_eq!(
                fields(json!({"amount_cents": 1, "currency": currency})),
                ["currency"],
                "{currency}"
            );
        }
        let long = "r".repeat(201);
        assert_eq!(
            fields(json!({"amount_cents": 1, "reference": long})),
            ["reference"]
        );
        assert!(
            NewInvoice::check(json!({"amount_cents": 1, "reference": "é".repeat(200)})).is_ok()
        );
        assert_eq!(
            fields(json!({"amount_cents": 1, "reference": "a\u{0}b"})),
            ["reference"]
        );
        assert_eq!(
            fields(json!({"amount_cents": 1, "reference": 7})),
            ["reference"]
        );
        assert_eq!(
            fields(json!({"amount_cents": 0, "currency": "x", "reference": 1})),
            ["amount_cents", "currency", "reference"]
        );
        assert_eq!(fields(json!([1, 2])), ["body"]);
    }
}
