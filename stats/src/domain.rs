//! Parse-don't-validate types for events and range queries.

use std::collections::HashMap;

use common::messages::StatsEvent;
use common::validate::{all, field, FromBody};
use common::ApiError;
use serde::Serialize;
use serde_json::Value;

pub const MAX_ACTION_LEN: usize = 64;
pub const MAX_USER_ID_CHARS: usize = 128;
/// Largest `data` object, serialized.
pub const MAX_DATA_BYTES: usize = 8 * 1024;

/// An action name: 1–64 characters of `a-z 0-9 _ . -`, so dashboards can
/// group by it without normalising case or escaping.
pub fn parse_action(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > MAX_ACTION_LEN {
        return Err(format!("must be 1 to {MAX_ACTION_LEN} characters"));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("may contain only a-z, 0-9, '_', '.' and '-'".into());
    }
    Ok(raw.to_string())
}

/// A user id as the services have it: a string or an integer (IDs are
/// opaque, docs/api.md), kept as text. `null` is the same as absent.
pub fn parse_user_id(raw: Option<&Value>) -> Result<Option<String>, String> {
    let text = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err("must be a string or an integer".into()),
    };
    if text.is_empty() || text.chars().count() > MAX_USER_ID_CHARS {
        return Err(format!("must be 1 to {MAX_USER_ID_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(Some(text))
}

/// The event's `data`: a JSON object of at most 8 KiB serialized, stored as
/// that serialization. `null` is the same as absent.
pub fn parse_data(raw: Option<&Value>) -> Result<Option<String>, String> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > MAX_DATA_BYTES {
                return Err(format!("must be at most {MAX_DATA_BYTES} bytes as JSON"));
            }
            Ok(Some(text))
        }
        Some(_) => Err("must be a JSON object".into()),
    }
}

/// A checked `POST /log` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub user_id: Option<String>,
    pub action: String,
    /// A serialized JSON object.
    pub data: Option<String>,
}

impl FromBody for NewEvent {
    type Raw = StatsEvent;

    fn check(raw: StatsEvent) -> Result<NewEvent, ApiError> {
        let (user_id, action, data) = all((
            field("user_id", parse_user_id(raw.user_id.as_ref())),
            field("action", parse_action(&raw.action)),
            field("data", parse_data(raw.data.as_ref())),
        ))?;
        Ok(NewEvent {
            user_id,
            action,
            data,
        })
    }
}

/// An accepted event on its way to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    /// Epoch milliseconds when it was accepted.
    pub ts: i64,
    pub user_id: Option<String>,
    pub action: String,
    /// A serialized JSON object.
    pub data: Option<String>,
    pub idempotency_key: Option<String>,
}

/// A stored event as `GET /log` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub id: String,
    pub ts: String,
    pub user_id: Option<String>,
    pub action: String,
    pub data: Value,
}

/// `from <= ts < to`, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

impl Range {
    /// Reads `?from=&to=` (RFC 3339); a missing, malformed or inverted
    /// bound is `422` naming the parameter.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Range, ApiError> {
        let bound = |name: &str| match query.get(name) {
            None => field(name, Err("is required".to_string())),
            Some(raw) => field(name, common::time::parse_rfc3339(raw)),
        };
        let (from, to) = all((bound("from"), bound("to")))?;
        if from > to {
            return Err(ApiError::invalid_field("to", "must not be before from"));
        }
        Ok(Range { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions() {
        assert!(parse_action("order_paid").is_ok());
        assert!(parse_action("cart.item-added_2").is_ok());
        assert!(parse_action(&"a".repeat(64)).is_ok());
        for bad in ["", "Order", "order paid", "ordér", "a/b", &"a".repeat(65)] {
            assert!(parse_action(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_ids() {
        assert_eq!(parse_user_id(None), Ok(None));
        assert_eq!(parse_user_id(Some(&json!(null))), Ok(None));
        assert_eq!(parse_user_id(Some(&json!("u-1"))), Ok(Some("u-1".into())));
        assert_eq!(parse_user_id(Some(&json!(42))), Ok(Some("42".into())));
        for bad in [
            json!(""),
            json!(1.5),
            json!(true),
            json!({}),
            json!("a\u{0}b"),
            json!("x".repeat(129)),
        ] {
            assert!(parse_user_id(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn data() {
        assert_eq!(parse_data(None), Ok(None));
        assert_eq!(
            parse_data(Some(&json!({"a": 1}))),
            Ok(Some(r#"{"a":1}"#.into()))
        );
        for bad in [json!([1]), json!("x"), json!(3)] {
            assert!(parse_data(Some(&bad)).is_err(), "{bad}");
        }
        let big = json!({"k": "x".repeat(MAX_DATA_BYTES)});
        assert!(parse_data(Some(&big)).is_err());
        // Exactly at the limit is fine: {"k":"…"} is 8 bytes of framing.
        let edge = json!({"k": "x".repeat(MAX_DATA_BYTES - 8)});
        assert!(parse_data(Some(&edge)).is_ok());
    }

    #[test]
    fn ranges() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let r = Range::from_query(&q(&[
            ("from", "2026-11-27T10:00:00Z"),
            ("to", "2026-11-27T11:00:00+01:00"),
        ]))
        .unwrap();
        assert_eq!(r.from, r.to);
        let fields = |e: ApiError| e.errors.iter().map(|f| f.field.clone()).collect::<Vec<_>>();
        assert_eq!(
            fields(Range::from_query(&q(&[])).unwrap_err()),
            ["from", "to"]
        );
        assert_eq!(
            fields(
                Range::from_query(&q(&[("from", "yesterday"), ("to", "2026-11-27T10:00:00Z")]))
                    .unwrap_err()
            ),
            ["from"]
        );
        assert_eq!(
            fields(
                Range::from_query(&q(&[
                    ("from", "2026-11-27T10:00:01Z"),
                    ("to", "2026-11-27T10:00:00Z")
                ]))
                .unwrap_err()
            ),
            ["to"]
        );
    }
}
