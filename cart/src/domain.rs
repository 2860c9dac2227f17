//! The cart's vocabulary: ids, quantities, what clients send (checked into
//! typed values, naming each bad field) and what they get back (items,
//! carts, orders). Money and its formatting are common's (`common::money`).

use serde::Serialize;
use serde_json::Value;

use common::money::{Money, DEFAULT_CURRENCY};
use common::time::rfc3339;
use common::validate::{all, field, object, FromBody};
use common::ApiError;

/// Most of one product a cart line may hold.
pub const MAX_QUANTITY: i64 = 999;
/// Most distinct products in one cart. Reading a cart asks products about
/// every line, so the fan-out is bounded.
pub const MAX_LINES: i64 = 100;

/// Ids of users, products, cart items and orders are UUIDs; anything else
/// cannot exist (`404`, never `500`). The canonical form is returned.
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A quantity of 1..=999, written as a JSON integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(value: Option<&Value>) -> Result<Quantity, String> {
        let range = || format!("must be an integer from 1 to {MAX_QUANTITY}");
        match value {
            None | Some(Value::Null) => Err("is required".into()),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(q) if (1..=MAX_QUANTITY).contains(&q) => Ok(Quantity(q)),
                _ => Err(range()),
            },
            Some(_) => Err(range()),
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A checked `POST /user/{uid}/cart/` body. `product_id` is `None` when it
/// is a well-formed string that is not a product id at all: that is an
/// unknown product (`404`), not a malformed request.
#[derive(Debug)]
pub struct NewItem {
    pub product_id: Option<String>,
    pub quantity: Quantity,
}

impl FromBody for NewItem {
    type Raw = Value;

    fn check(body: Value) -> Result<NewItem, ApiError> {
        let body = object(body)?;
        let product_id = match body.get("product_id") {
            None | Some(Value::Null) => Err("is required".to_string()),
            Some(Value::String(s)) if s.trim().is_empty() => Err("must not be empty".to_string()),
            Some(Value::String(s)) => Ok(parse_id(s.trim())),
            // IDs may be integers (docs/api.md); no product has one.
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(None),
            Some(_) => Err("must be a string".to_string()),
        };
        let (product_id, quantity) = all((
            field("product_id", product_id),
            field("quantity", Quantity::parse(body.get("quantity"))),
        ))?;
        Ok(NewItem {
            product_id,
            quantity,
        })
    }
}

/// A checked `PUT /user/{uid}/cart/{id}` body: `{"quantity"}`.
impl FromBody for Quantity {
    type Raw = Value;

    fn check(body: Value) -> Result<Quantity, ApiError> {
        let body = object(body)?;
        let (quantity,) = all((field("quantity", Quantity::parse(body.get("quantity"))),))?;
        Ok(quantity)
    }
}

/// A product as the products service shows it (the fields the cart uses).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    #[serde(default)]
    pub stock: Option<i64>,
}

/// A cart line as stored: the product as last seen.
#[derive(Debug, Clone)]
pub struct CartLine {
    pub id: String,
    pub product_id: String,
    pub quantity: i64,
    pub name: String,
    pub unit_price_cents: i64,
    pub currency: String,
    pub created_at: i64,
}

/// A cart item as clients see it. Beyond docs/api.md's fields: `currency`,
/// `stock` (shown, not enforced), and `available` — `false` for a product
/// deleted since it was added, shown with its last known name and price
/// so the customer sees what went away; such lines are left out of the
/// cart's total and block checkout.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub id: String,
    pub product_id: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
    pub line_total_cents: i64,
    pub currency: String,
    pub available: bool,
    pub stock: Option<i64>,
}

impl ItemView {
    /// The line with the product's current name and price, or — when the
    /// product is gone (`None`) — its last known ones, flagged unavailable.
    pub fn new(line: &CartLine, product: Option<&Product>) -> ItemView {
        let (name, price, currency, stock) = match product {
            Some(p) => (&p.name, p.price_cents, &p.currency, p.stock),
            None => (&line.name, line.unit_price_cents, &line.currency, None),
        };
        ItemView {
            id: line.id.clone(),
            product_id: line.product_id.clone(),
            name: name.clone(),
            unit_price_cents: price,
            quantity: line.quantity,
            line_total_cents: price.saturating_mul(line.quantity),
            currency: currency.clone(),
            available: product.is_some(),
            stock,
        }
    }
}

/// A per-currency subtotal, for a cart holding products priced in more
/// than one currency.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Subtotal {
    pub currency: String,
    pub total_cents: i64,
}

/// `{"items", "total_cents", "currency"}` plus `totals`, one subtotal per
/// currency. `total_cents`/`currency` are those of the currency of the
/// oldest available line (normally the only one); a cart mixing
/// currencies cannot be checked out (`409 mixed_currencies`).
#[derive(Debug, Serialize)]
pub struct CartView {
    pub items: Vec<ItemView>,
    pub total_cents: i64,
    pub currency: String,
    pub totals: Vec<Subtotal>,
}

impl CartView {
    pub fn new(items: Vec<ItemView>) -> CartView {
        let mut totals: Vec<Subtotal> = Vec::new();
        for item in items.iter().filter(|i| i.available) {
            match totals.iter_mut().find(|t| t.currency == item.currency) {
                Some(t) => t.total_cents = t.total_cents.saturating_add(item.line_total_cents),
                None => totals.push(Subtotal {
                    currency: item.currency.clone(),
                    total_cents: item.line_total_cents,
                }),
            }
        }
        let (total_cents, currency) = totals
            .first()
            .map(|t| (t.total_cents, t.currency.clone()))
            .unwrap_or((0, DEFAULT_CURRENCY.to_string()));
        CartView {
            items,
            total_cents,
            currency,
            totals,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Written before its invoice exists; internal.
    Creating,
    PendingPayment,
    Paid,
    /// A checkout that failed or lost a race; internal.
    Abandoned,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Creating => "creating",
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        match s {
            "creating" => Some(OrderStatus::Creating),
            "pending_payment" => Some(OrderStatus::PendingPayment),
            "paid" => Some(OrderStatus::Paid),
            "abandoned" => Some(OrderStatus::Abandoned),
            _ => None,
        }
    }
}

/// One line of an order: the product as it was at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub id: String,
    pub product_id: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
}

/// An order as stored.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub items: Vec<OrderLine>,
    pub amount_cents: i64,
    pub currency: String,
    pub invoice_id: Option<String>,
    pub status: OrderStatus,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct OrderItemView {
    pub id: String,
    pub product_id: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
    pub line_total_cents: i64,
}

/// An order as clients see it (docs/api.md's fields plus `paid_at`).
#[derive(Debug, Serialize)]
pub struct OrderView {
    pub id: String,
    pub user_id: String,
    pub items: Vec<OrderItemView>,
    pub amount_cents: i64,
    pub currency: String,
    pub invoice_id: Option<String>,
    pub status: &'static str,
    pub created_at: String,
    pub paid_at: Option<String>,
}

impl Order {
    /// What the order costs, to compare with what an invoice asks.
    pub fn total(&self) -> Money<'_> {
        Money::new(self.amount_cents, &self.currency)
    }
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> OrderView {
        OrderView {
            id: o.id.clone(),
            user_id: o.user_id.clone(),
            items: o
                .items
                .iter()
                .map(|l| OrderItemView {
                    id: l.id.clone(),
                    product_id: l.product_id.clone(),
                    name: l.name.clone(),
                    unit_price_cents: l.unit_price_cents,
                    quantity: l.quantity,
                    line_total_cents: l.unit_price_cents.saturating_mul(l.quantity),
                })
                .collect(),
            amount_cents: o.amount_cents,
            currency: o.currency.clone(),
            invoice_id: o.invoice_id.clone(),
            status: o.status.as_str(),
            created_at: rfc3339(o.created_at),
            paid_at: o.paid_at.map(rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Vec<String> {
        NewItem::check(body)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn quantities_are_integers_from_1_to_999() {
        for ok in [json!(1), json!(999)] {
            assert!(Quantity::parse(Some(&ok)).is_ok(), "{ok}");
        }
        for bad in [
            json!(0),
            json!(-1),
            json!(1000),
            json!(1.5),
            json!(2.0),
            json!("2"),
            json!(null),
            json!(u64::MAX),
            json!(true),
        ] {
            assert!(Quantity::parse(Some(&bad)).is_err(), "{bad}");
        }
        assert_eq!(Quantity::parse(None).unwrap_err(), "is required");
    }

    #[test]
    fn new_items_name_every_bad_field() {
        let id = new_id();
        let ok = NewItem::check(json!({"product_id": id.to_uppercase(), "quantity": 2})).unwrap();
        assert_eq!(ok.product_id.as_deref(), Some(id.as_str()));
        assert_eq!(ok.quantity.get(), 2);
        // Well-formed but not a product id: an unknown product, not a 422.
        let unknown = NewItem::check(json!({"product_id": "nope", "quantity": 1})).unwrap();
        assert_eq!(unknown.product_id, None);
        assert_eq!(
            NewItem::check(json!({"product_id": 7, "quantity": 1}))
                .unwrap()
                .product_id,
            None
        );
        assert_eq!(fields(json!({})), ["product_id", "quantity"]);
        assert_eq!(
            fields(json!({"product_id": "", "quantity": 0})),
            ["product_id", "quantity"]
        );
        assert_eq!(
            fields(json!({"product_id": [1], "quantity": 1})),
            ["product_id"]
        );
        assert_eq!(fields(json!([1])), ["body"]);
    }

    #[test]
    fn ids_parse_to_their_canonical_form() {
        let id = new_id();
        assert_eq!(parse_id(&id.to_uppercase()), Some(id));
        assert_eq!(parse_id("1"), None);
        assert_eq!(parse_id("../etc"), None);
    }

    #[test]
    fn a_cart_totals_available_lines_per_currency() {
        let line = |id: &str, price: i64, qty: i64, currency: &str| CartLine {
            id: id.into(),
            product_id: id.into(),
            quantity: qty,
            name: id.into(),
            unit_price_cents: price,
            currency: currency.into(),
            created_at: 0,
        };
        let product = |l: &CartLine| Product {
            id: l.product_id.clone(),
            name: l.name.clone(),
            price_cents: l.unit_price_cents,
            currency: l.currency.clone(),
            stock: Some(3),
        };
        let a = line("a", 250, 2, "USD");
        let b = line("b", 100, 1, "EUR");
        let c = line("c", 999, 1, "USD");
        let view = CartView::new(vec![
            ItemView::new(&a, Some(&product(&a))),
            ItemView::new(&b, Some(&product(&b))),
            ItemView::new(&c, None),
        ]);
        assert_eq!((view.total_cents, view.currency.as_str()), (500, "USD"));
        assert_eq!(view.totals.len(), 2);
        assert!(!view.items[2].available);
        let empty = CartView::new(vec![]);
        assert_eq!((empty.total_cents, empty.currency.as_str()), (0, "USD"));
    }
}
