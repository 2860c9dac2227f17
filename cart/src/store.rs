//! All SQL of the cart service. Concurrency is settled here, by the
//! database: an upsert for adding, conditional updates for every state
//! change of an order, and one transaction per business change together
//! with the outbox messages it causes.

use std::collections::HashMap;

use common::db::{is_unique_violation, Db};
use common::messages::Outgoing;
use common::time::now_ms;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::{CartLine, Order, OrderLine, OrderStatus, Product, MAX_LINES, MAX_QUANTITY};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the cart already holds {MAX_LINES} different products")]
    CartFull,
    #[error("the quantity of one product would exceed {MAX_QUANTITY}")]
    QuantityTooLarge,
    #[error("an order with this checkout key exists")]
    CheckoutKeyTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How finishing a checkout (step 4) went.
#[derive(Debug)]
pub enum Completion {
    /// The order is `pending_payment` and its items left the cart.
    Done,
    /// The order was no longer `creating`: someone else finished or
    /// abandoned it. Nothing changed.
    NotCreating,
    /// The cart no longer holds the snapshot's quantities (changed or
    /// checked out concurrently). Nothing changed.
    CartChanged,
}

/// How an attempt to mark an order paid went.
#[derive(Debug)]
pub enum MarkPaid {
    /// This call made it paid (and queued its side effects).
    Paid(Box<Order>),
    /// The webhook event was applied before; nothing changed.
    DuplicateEvent,
    /// No pending order has this invoice (already paid, or unknown).
    NotPending,
}

#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
}

const LINE_COLUMNS: &str = "id, product_id, quantity, name, unit_price_cents, currency, created_at";
const ORDER_COLUMNS: &str =
    "id, user_id, email, amount_cents, currency, invoice_id, status, created_at, paid_at";
/// The statuses clients see; `creating` and `abandoned` are internal.
const VISIBLE: &str = "status IN ('pending_payment', 'paid')";

fn line_from_row(row: &AnyRow) -> CartLine {
    CartLine {
        id: row.get("id"),
        product_id: row.get("product_id"),
        quantity: row.get("quantity"),
        name: row.get("name"),
        unit_price_cents: row.get("unit_price_cents"),
        currency: row.get("currency"),
        created_at: row.get("created_at"),
    }
}

fn order_from_row(row: &AnyRow) -> Order {
    let status: String = row.get("status");
    Order {
        id: row.get("id"),
        user_id: row.get("user_id"),
        email: row.get("email"),
        items: Vec::new(),
        amount_cents: row.get("amount_cents"),
        currency: row.get("currency"),
        invoice_id: row.get("invoice_id"),
        // Only this service writes the column, always from an OrderStatus.
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Abandoned),
        created_at: row.get("created_at"),
        paid_at: row.get("paid_at"),
    }
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attaches each order's lines, read in one query.
async fn with_items(
    conn: &mut AnyConnection,
    mut orders: Vec<Order>,
) -> Result<Vec<Order>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(orders);
    }
    let sql = format!(
        "SELECT id, order_id, product_id, name, unit_price_cents, quantity FROM order_items \
         WHERE order_id IN ({}) ORDER BY position",
        placeholders(1, orders.len())
    );
    let mut query = sqlx::query(&sql);
    for o in &orders {
        query = query.bind(o.id.clone());
    }
    let mut by_order: HashMap<String, Vec<OrderLine>> = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        by_order
            .entry(row.get("order_id"))
            .or_default()
            .push(OrderLine {
                id: row.get("id"),
                product_id: row.get("product_id"),
                name: row.get("name"),
                unit_price_cents: row.get("unit_price_cents"),
                quantity: row.get("quantity"),
            });
    }
    for o in &mut orders {
        o.items = by_order.remove(&o.id).unwrap_or_default();
    }
    Ok(orders)
}

async fn order_where(
    conn: &mut AnyConnection,
    condition: &str,
    binds: &[&str],
) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE {condition}");
    let mut query = sqlx::query(&sql);
    for b in binds {
        query = query.bind(b.to_string());
    }
    let Some(row) = query.fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    Ok(with_items(conn, vec![order_from_row(&row)]).await?.pop())
}

impl Store {
    // ---- cart lines -------------------------------------------------------

    /// Adds `quantity` of `product` to the user's cart: a new line, or the
    /// existing line's quantity increased — atomically, by one upsert, so
    /// concurrent adds are all counted. An increase past [`MAX_QUANTITY`] is
    /// refused by the upsert's own condition (no row comes back), not by a
    /// read-then-write that could race. `announce` builds the stats event,
    /// queued in the same transaction.
    pub async fn add_item(
        &self,
        user_id: &str,
        product: &Product,
        quantity: i64,
        announce: impl FnOnce(&CartLine) -> Outgoing,
    ) -> Result<CartLine, StoreError> {
        common::telemetry::db("TRANSACTION", "cart_items")
            .run(async move {
            let now = now_ms();
            let mut tx = self.db.begin_write().await?;
            let present =
                sqlx::query("SELECT id FROM cart_items WHERE user_id = $1 AND product_id = $2")
                    .bind(user_id)
                    .bind(&product.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if !present {
                // A soft limit: on PostgreSQL two concurrent first adds of
                // different products may both pass it, which is harmless.
                let lines: i64 = sqlx::query(
                    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM cart_items WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?
                .get("n");
                if lines >= MAX_LINES {
                    return Err(StoreError::CartFull);
                }
            }
            let row = sqlx::query(&format!(
                "INSERT INTO cart_items (id, user_id, product_id, quantity, name, unit_price_cents, currency, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (user_id, product_id) DO UPDATE SET \
                   quantity = cart_items.quantity + excluded.quantity, \
                   name = excluded.name, unit_price_cents = excluded.unit_price_cents, \
                   currency = excluded.currency, updated_at = excluded.updated_at \
                 WHERE cart_items.quantity + excluded.quantity <= $9 \
                 RETURNING {LINE_COLUMNS}"
            ))
            .bind(crate::domain::new_id())
            .bind(user_id)
            .bind(&product.id)
            .bind(quantity)
            .bind(&product.name)
            .bind(product.price_cents)
            .bind(&product.currency)
            .bind(now)
            .bind(MAX_QUANTITY)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::QuantityTooLarge);
            };
            let line = line_from_row(&row);
            let m = announce(&line);
            m.enqueue(&mut tx).await?;
            tx.commit().await?;
            Ok(line)
            })
            .await
    }

    /// The user's cart, oldest line first.
    pub async fn lines(&self, user_id: &str) -> Result<Vec<CartLine>, StoreError> {
        common::telemetry::db("SELECT", "cart_items")
            .run(async move {
                let rows = sqlx::query(&format!(
                "SELECT {LINE_COLUMNS} FROM cart_items WHERE user_id = $1 ORDER BY created_at, id"
            ))
                .bind(user_id)
                .fetch_all(&self.db.pool)
                .await?;
                Ok(rows.iter().map(line_from_row).collect())
            })
            .await
    }

    pub async fn line(&self, user_id: &str, id: &str) -> Result<Option<CartLine>, StoreError> {
        common::telemetry::db("SELECT", "cart_items")
            .run(async move {
                let row = sqlx::query(&format!(
                    "SELECT {LINE_COLUMNS} FROM cart_items WHERE id = $1 AND user_id = $2"
                ))
                .bind(id)
                .bind(user_id)
                .fetch_optional(&self.db.pool)
                .await?;
                Ok(row.as_ref().map(line_from_row))
            })
            .await
    }

    /// Sets a line's quantity (and refreshes the product as last seen);
    /// `None` if the line is gone.
    pub async fn set_quantity(
        &self,
        user_id: &str,
        id: &str,
        quantity: i64,
        product: Option<&Product>,
    ) -> Result<Option<CartLine>, StoreError> {
        common::telemetry::db("UPDATE", "cart_items")
            .run(async move {
            let row = sqlx::query(&format!(
                "UPDATE cart_items SET quantity = $1, name = COALESCE($2, name), \
                   unit_price_cents = COALESCE($3, unit_price_cents), currency = COALESCE($4, currency), \
                   updated_at = $5 \
                 WHERE id = $6 AND user_id = $7 RETURNING {LINE_COLUMNS}"
            ))
            .bind(quantity)
            .bind(product.map(|p| p.name.clone()))
            .bind(product.map(|p| p.price_cents))
            .bind(product.map(|p| p.currency.clone()))
            .bind(now_ms())
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *self.db.writer().await?)
            .await?;
            Ok(row.as_ref().map(line_from_row))
            })
            .await
    }

    /// `false` if the line was already gone.
    pub async fn delete_line(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        common::telemetry::db("DELETE", "cart_items")
            .run(async move {
                let result = sqlx::query("DELETE FROM cart_items WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user_id)
                    .execute(&mut *self.db.writer().await?)
                    .await?;
                Ok(result.rows_affected() == 1)
            })
            .await
    }

    // ---- checkout -----------------------------------------------------------

    /// Step 2 of a checkout: the order in state `creating` with its item
    /// snapshot, in one transaction. The cart is not touched yet.
    pub async fn insert_creating(
        &self,
        order: &Order,
        checkout_key: Option<&str>,
    ) -> Result<(), StoreError> {
        common::telemetry::db("TRANSACTION", "orders")
            .run(async move {
            let mut tx = self.db.begin_write().await?;
            sqlx::query(
                "INSERT INTO orders (id, user_id, email, checkout_key, amount_cents, currency, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&order.id)
            .bind(&order.user_id)
            .bind(order.email.clone())
            .bind(checkout_key.map(str::to_string))
            .bind(order.amount_cents)
            .bind(&order.currency)
            .bind(OrderStatus::Creating.as_str())
            .bind(order.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::CheckoutKeyTaken
                } else {
                    StoreError::Db(e)
                }
            })?;
            for (position, line) in order.items.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO order_items (id, order_id, position, product_id, name, unit_price_cents, quantity) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&line.id)
                .bind(&order.id)
                .bind(position as i64)
                .bind(&line.product_id)
                .bind(&line.name)
                .bind(line.unit_price_cents)
                .bind(line.quantity)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
            })
            .await
    }

    /// Step 4 of a checkout, in one transaction: the order becomes
    /// `pending_payment` with its invoice (only if it is still `creating`),
    /// the snapshot's quantities leave the cart (only if the cart still
    /// holds them; lines that reach 0 are deleted, anything added meanwhile
    /// stays), and `announce`'s messages are queued. Either all of it
    /// happens or none.
    pub async fn complete_checkout(
        &self,
        order: &Order,
        invoice_id: &str,
        announce: Vec<Outgoing>,
    ) -> Result<Completion, StoreError> {
        common::telemetry::db("TRANSACTION", "orders")
            .run(async move {
            let now = now_ms();
            let mut tx = self.db.begin_write().await?;
            let moved = sqlx::query(
                "UPDATE orders SET status = $1, invoice_id = $2, updated_at = $3 WHERE id = $4 AND status = $5",
            )
            .bind(OrderStatus::PendingPayment.as_str())
            .bind(invoice_id)
            .bind(now)
            .bind(&order.id)
            .bind(OrderStatus::Creating.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(Completion::NotCreating);
            }
            // A fixed order of row locks, so two checkouts of one cart on
            // PostgreSQL wait for each other instead of deadlocking.
            let mut lines: Vec<&OrderLine> = order.items.iter().collect();
            lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
            for line in lines {
                let taken = sqlx::query(
                    "UPDATE cart_items SET quantity = quantity - $1, updated_at = $2 \
                     WHERE user_id = $3 AND product_id = $4 AND quantity >= $1",
                )
                .bind(line.quantity)
                .bind(now)
                .bind(&order.user_id)
                .bind(&line.product_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 0 {
                    // Dropping the transaction rolls everything back.
                    return Ok(Completion::CartChanged);
                }
            }
            sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND quantity <= 0")
                .bind(&order.user_id)
                .execute(&mut *tx)
                .await?;
            for m in announce {
                m.enqueue(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(Completion::Done)
            })
            .await
    }

    /// Gives up a `creating` order: it never shows, its checkout key is
    /// freed for a fresh attempt. `false` if it was no longer `creating`.
    pub async fn abandon(&self, order_id: &str) -> Result<bool, StoreError> {
        common::telemetry::db("UPDATE", "orders")
            .run(async move {
            let result = sqlx::query(
                "UPDATE orders SET status = $1, checkout_key = NULL, updated_at = $2 WHERE id = $3 AND status = $4",
            )
            .bind(OrderStatus::Abandoned.as_str())
            .bind(now_ms())
            .bind(order_id)
            .bind(OrderStatus::Creating.as_str())
            .execute(&mut *self.db.writer().await?)
            .await?;
            Ok(result.rows_affected() == 1)
            })
            .await
    }

    /// The order a checkout with this (caller-scoped) key started, if it
    /// was not abandoned.
    pub async fn order_by_checkout_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Order>, StoreError> {
        let mut conn = self.db.pool.acquire().await?;
        Ok(order_where(
            &mut conn,
            "user_id = $1 AND checkout_key = $2",
            &[user_id, key],
        )
        .await?)
    }

    /// Checkouts interrupted before `created_before` (crash leftovers).
    pub async fn stale_creating(
        &self,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        common::telemetry::db("SELECT", "orders")
            .run(async move {
            let mut conn = self.db.pool.acquire().await?;
            let rows = sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE status = $1 AND created_at < $2 ORDER BY created_at LIMIT $3"
            ))
            .bind(OrderStatus::Creating.as_str())
            .bind(created_before)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            Ok(with_items(&mut conn, rows.iter().map(order_from_row).collect()).await?)
            })
            .await
    }

    // ---- orders -------------------------------------------------------------

    /// Any order by id, whatever its status.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        let mut conn = self.db.pool.acquire().await?;
        Ok(order_where(&mut conn, "id = $1", &[id]).await?)
    }

    /// The order an invoice was created for, whatever its status.
    pub async fn order_by_invoice(&self, invoice_id: &str) -> Result<Option<Order>, StoreError> {
        let mut conn = self.db.pool.acquire().await?;
        Ok(order_where(&mut conn, "invoice_id = $1", &[invoice_id]).await?)
    }

    /// A user's order as clients may see it.
    pub async fn visible_order(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<Order>, StoreError> {
        let mut conn = self.db.pool.acquire().await?;
        Ok(order_where(
            &mut conn,
            &format!("id = $1 AND user_id = $2 AND {VISIBLE}"),
            &[id, user_id],
        )
        .await?)
    }

    /// A page of the user's orders, newest first, and how many there are.
    pub async fn orders(
        &self,
        user_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Order>, i64), StoreError> {
        common::telemetry::db("TRANSACTION", "orders")
            .run(async move {
                let mut conn = self.db.pool.acquire().await?;
                let total: i64 = sqlx::query(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM orders WHERE user_id = $1 AND {VISIBLE}"
            ))
                .bind(user_id)
                .fetch_one(&mut *conn)
                .await?
                .get("n");
                let rows = sqlx::query(&format!(
                    "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND {VISIBLE} \
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(user_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?;
                let orders =
                    with_items(&mut conn, rows.iter().map(order_from_row).collect()).await?;
                Ok((orders, total))
            })
            .await
    }

    // ---- payment ------------------------------------------------------------

    /// Marks the order of `invoice_id` paid — exactly once, whoever calls
    /// (webhook, reconciliation on read, the sweep, another replica): the
    /// conditional UPDATE lets one caller through, and only that caller
    /// queues `announce`'s messages, in the same transaction. A webhook's
    /// event id is recorded in that transaction too, so a redelivered event
    /// is recognised even when it would change nothing.
    pub async fn mark_paid(
        &self,
        invoice_id: &str,
        event: Option<(&str, &str)>,
        announce: impl FnOnce(&Order) -> Vec<Outgoing>,
    ) -> Result<MarkPaid, StoreError> {
        common::telemetry::db("TRANSACTION", "webhook_events")
            .run(async move {
            let now = now_ms();
            let mut tx = self.db.begin_write().await?;
            if let Some((event_id, event_type)) = event {
                let fresh = sqlx::query(
                    "INSERT INTO webhook_events (event_id, event_type, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(event_id)
                .bind(event_type)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if fresh == 0 {
                    return Ok(MarkPaid::DuplicateEvent);
                }
            }
            let updated = sqlx::query(
                "UPDATE orders SET status = $1, paid_at = $2, updated_at = $2 WHERE invoice_id = $3 AND status = $4",
            )
            .bind(OrderStatus::Paid.as_str())
            .bind(now)
            .bind(invoice_id)
            .bind(OrderStatus::PendingPayment.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                tx.commit().await?;
                return Ok(MarkPaid::NotPending);
            }
            let order = order_where(&mut tx, "invoice_id = $1", &[invoice_id])
                .await?
                .ok_or_else(|| sqlx::Error::RowNotFound)?;
            for m in announce(&order) {
                m.enqueue(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(MarkPaid::Paid(Box::new(order)))
            })
            .await
    }

    /// Pending orders created before `created_before` whose next check is
    /// due, least recently checked first.
    pub async fn due_for_check(
        &self,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        common::telemetry::db("SELECT", "orders")
            .run(async move {
            let rows = sqlx::query(
                "SELECT id, invoice_id, created_at FROM orders \
                 WHERE status = $1 AND invoice_id IS NOT NULL AND created_at < $2 AND next_check_at <= $3 \
                 ORDER BY next_check_at, created_at LIMIT $4",
            )
            .bind(OrderStatus::PendingPayment.as_str())
            .bind(created_before)
            .bind(now_ms())
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get("id"), r.get("invoice_id"), r.get("created_at")))
                .collect())
            })
            .await
    }

    pub async fn set_next_check(&self, order_id: &str, at: i64) -> Result<(), StoreError> {
        common::telemetry::db("UPDATE", "orders")
            .run(async move {
                sqlx::query("UPDATE orders SET next_check_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(order_id)
                    .execute(&mut *self.db.writer().await?)
                    .await?;
                Ok(())
            })
            .await
    }

    /// Forgets webhook events received before `before`; returns how many.
    pub async fn prune_events(&self, before: i64) -> Result<u64, StoreError> {
        common::telemetry::db("DELETE", "webhook_events")
            .run(async move {
                let result = sqlx::query("DELETE FROM webhook_events WHERE received_at < $1")
                    .bind(before)
                    .execute(&mut *self.db.writer().await?)
                    .await?;
                Ok(result.rows_affected())
            })
            .await
    }
}
