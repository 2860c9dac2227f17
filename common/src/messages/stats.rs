//! `POST /log` to stats: one event of the shop's activity, and the `data`
//! each of the shop's own actions carries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{target, Message};

/// The stats request body. On the wire `user_id` is a string or an integer
/// (ids are opaque, docs/api.md) and `data` an object; both may be absent or
/// `null`. Stats checks each field when it reads one, so they are kept as
/// JSON here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsEvent {
    #[serde(default)]
    pub user_id: Option<Value>,
    pub action: String,
    #[serde(default)]
    pub data: Option<Value>,
}

impl Message for StatsEvent {
    const TARGET: &'static str = target::STATS;
    const PATH: &'static str = "/log";
}

/// `data` of `cart_item_added`.
#[derive(Debug, Clone, Serialize)]
pub struct CartItemAdded<'a> {
    pub item_id: &'a str,
    pub product_id: &'a str,
    /// How many were added.
    pub quantity: i64,
    /// How many the line holds now.
    pub cart_quantity: i64,
}

/// `data` of `order_created` and `order_paid`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderEvent<'a> {
    pub order_id: &'a str,
    pub invoice_id: Option<&'a str>,
    pub amount_cents: i64,
    pub currency: &'a str,
    /// Lines in the order (`order_created` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
}

impl StatsEvent {
    /// `action` done by `user_id`, with `data` (a struct, serialized to an
    /// object).
    fn new(user_id: &str, action: &str, data: impl Serialize) -> StatsEvent {
        StatsEvent {
            user_id: Some(Value::String(user_id.to_string())),
            action: action.to_string(),
            data: Some(serde_json::to_value(data).expect("event data always serializes")),
        }
    }

    pub fn user_registered(user_id: &str) -> StatsEvent {
        StatsEvent::new(user_id, "user_registered", serde_json::Map::new())
    }

    pub fn cart_item_added(user_id: &str, data: CartItemAdded<'_>) -> StatsEvent {
        StatsEvent::new(user_id, "cart_item_added", data)
    }

    pub fn order_created(user_id: &str, data: OrderEvent<'_>) -> StatsEvent {
        StatsEvent::new(user_id, "order_created", data)
    }

    pub fn order_paid(user_id: &str, data: OrderEvent<'_>) -> StatsEvent {
        StatsEvent::new(user_id, "order_paid", data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_keep_their_wire_shape() {
        let e = StatsEvent::user_registered("u-1").outgoing();
        assert_eq!((e.target, e.path), ("stats", "/log"));
        assert_eq!(
            e.payload,
            json!({"user_id": "u-1", "action": "user_registered", "data": {}})
        );
        let paid = StatsEvent::order_paid(
            "u",
            OrderEvent {
                order_id: "o",
                invoice_id: None,
                amount_cents: 5,
                currency: "USD",
                items: None,
            },
        );
        assert_eq!(
            paid.outgoing().payload["data"],
            json!({"order_id": "o", "invoice_id": null, "amount_cents": 5, "currency": "USD"})
        );
    }

    #[test]
    fn receivers_read_absent_fields_as_none() {
        let e: StatsEvent = serde_json::from_value(json!({"action": "x"})).unwrap();
        assert_eq!((e.user_id, e.data), (None, None));
    }
}
