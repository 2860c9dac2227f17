//! Payment confirmation: an order becomes `paid` when the provider's signed
//! `invoice.paid` webhook arrives, or — because webhooks can be lost or
//! arrive while the cart is down — when reconciliation asks the provider
//! and hears the invoice is paid: on reading a pending order older than
//! `reconcile_after`, and in a background sweep over all pending orders.
//! Whichever comes first marks the order paid; the store's conditional
//! update makes the confirmation email and the `order_paid` event happen
//! exactly once.

use std::time::Duration;

use common::messages::stats::OrderEvent;
use common::messages::{Message, Outgoing, SendEmail, StatsEvent};
use common::money::Money;
use common::time::now_ms;
use futures::StreamExt;

use crate::clients::Invoice;
use crate::domain::{Order, OrderStatus};
use crate::store::{MarkPaid, StoreError};
use crate::State;

/// How many invoices one sweep or one list read asks about at once.
const CHECK_CONCURRENCY: usize = 8;
/// Most pending orders one sweep pass checks.
const SWEEP_BATCH: i64 = 100;
/// Pending orders younger than this are checked on every sweep; older
/// ones (a payment page left open, an order never paid) less and less
/// often, so unpaid orders do not cost a provider call every 2 s forever.
const EAGER_CHECK_AGE: Duration = Duration::from_secs(3600);
const MAX_CHECK_DELAY: Duration = Duration::from_secs(600);

/// The messages a newly paid order sends: the confirmation email (when the
/// order knows an address) and the `order_paid` event.
pub fn paid_messages(order: &Order) -> Vec<Outgoing> {
    let mut out = Vec::with_capacity(2);
    match &order.email {
        Some(to) => out.push(
            SendEmail {
                to: to.clone(),
                subject: format!("Your order {} is paid", short_id(&order.id)),
                body: confirmation_body(order),
            }
            .outgoing(),
        ),
        None => log::info!(
            "order {} is paid but has no email address (checked out without one); no confirmation sent",
            order.id
        ),
    }
    let paid = OrderEvent {
        order_id: &order.id,
        invoice_id: order.invoice_id.as_deref(),
        amount_cents: order.amount_cents,
        currency: &order.currency,
        items: None,
    };
    out.push(StatsEvent::order_paid(&order.user_id, paid).outgoing());
    out
}

/// The last block of the UUID: enough for a person to tell orders apart.
fn short_id(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

fn confirmation_body(order: &Order) -> String {
    let mut body =
        String::from("Hello,\n\nthank you for your order. We have received your payment.\n\n");
    body.push_str(&format!("Order {}\n\n", order.id));
    for line in &order.items {
        body.push_str(&format!(
            "  {} x {} — {}\n",
            line.quantity,
            line.name,
            Money::new(
                line.unit_price_cents.saturating_mul(line.quantity),
                &order.currency
            )
        ));
    }
    body.push_str(&format!("\nTotal paid: {}\n\nThe Shop\n", order.total()));
    body
}

/// Marks the order of `invoice_id` paid (once) and starts delivering what
/// that sends. `source` names who noticed, for logs and metrics.
pub async fn confirm(
    state: &State,
    invoice_id: &str,
    event: Option<(&str, &str)>,
    source: &'static str,
) -> Result<MarkPaid, StoreError> {
    let outcome = state
        .store
        .mark_paid(invoice_id, event, paid_messages)
        .await?;
    if let MarkPaid::Paid(order) = &outcome {
        state.outbox.notify();
        metrics::counter!("cart_orders_paid_total", "source" => source).increment(1);
        log::info!(
            "order {} paid (invoice {invoice_id}, noticed by {source})",
            order.id
        );
    }
    Ok(outcome)
}

/// Whether the provider's invoice says this order is paid. An invoice for
/// another amount is not a payment of this order, whatever its status.
pub fn pays(invoice: &Invoice, order: &Order) -> bool {
    if invoice.amount() != order.total() {
        log::error!(
            "invoice {} is for {} but order {} is for {}; not marking it paid",
            invoice.id,
            invoice.amount(),
            order.id,
            order.total()
        );
        return false;
    }
    invoice.is_paid()
}

/// The most a read spends asking the provider before answering with what
/// it has: a hanging provider must not make order reads hang.
const READ_BUDGET: Duration = Duration::from_secs(2);

fn read_budget(state: &State) -> Duration {
    state.config.upstream_timeout.min(READ_BUDGET)
}

/// Reconciliation on read: a pending order older than `reconcile_after` is
/// checked at the provider and returned as it is now. If the provider
/// cannot be asked (down, or slower than the read budget), the stored
/// order is returned: a read never fails because payments is down. Giving
/// up half-way is safe: marking paid is one transaction.
pub async fn reconcile(state: &State, order: Order) -> Order {
    let fallback = order.clone();
    match tokio::time::timeout(read_budget(state), reconcile_one(state, order)).await {
        Ok(order) => order,
        Err(_) => {
            log::warn!(
                "payment provider too slow; order {} shown as stored",
                fallback.id
            );
            fallback
        }
    }
}

async fn reconcile_one(state: &State, order: Order) -> Order {
    let age = now_ms() - order.created_at;
    let due = order.status == OrderStatus::PendingPayment
        && age >= state.config.reconcile_after.as_millis() as i64;
    let Some(invoice_id) = order.invoice_id.clone().filter(|_| due) else {
        return order;
    };
    match state.payments.get_invoice(&invoice_id).await {
        Ok(Some(invoice)) if pays(&invoice, &order) => {}
        Ok(_) => return order,
        Err(e) => {
            log::warn!(
                "cannot check invoice {invoice_id} of order {}: {e}",
                order.id
            );
            return order;
        }
    }
    match confirm(state, &invoice_id, None, "read").await {
        Ok(MarkPaid::Paid(paid)) => *paid,
        // Paid by someone else a moment ago: read it back.
        Ok(_) => match state.store.order(&order.id).await {
            Ok(Some(fresh)) => fresh,
            _ => order,
        },
        Err(e) => {
            log::warn!("cannot mark order {} paid: {e}", order.id);
            order
        }
    }
}

/// [`reconcile`] for a page of orders, a few at a time, keeping their
/// order, within one read budget for the whole page.
pub async fn reconcile_all(state: &State, orders: Vec<Order>) -> Vec<Order> {
    let fallback = orders.clone();
    let all = futures::stream::iter(orders)
        .map(|o| reconcile_one(state, o))
        .buffered(CHECK_CONCURRENCY)
        .collect();
    match tokio::time::timeout(read_budget(state), all).await {
        Ok(orders) => orders,
        Err(_) => {
            log::warn!("payment provider too slow; orders shown as stored");
            fallback
        }
    }
}

/// When to check a pending order of `age` again after finding it unpaid.
fn next_check_delay(age: Duration, interval: Duration) -> Duration {
    if age < EAGER_CHECK_AGE {
        interval
    } else {
        (age / 60).clamp(interval, MAX_CHECK_DELAY)
    }
}

/// One pass of the background sweep: recovers interrupted checkouts, then
/// asks the provider about every pending order that is due.
pub async fn sweep(state: &State) {
    crate::checkout::recover(state).await;
    let created_before = now_ms() - state.config.reconcile_after.as_millis() as i64;
    let due = match state.store.due_for_check(created_before, SWEEP_BATCH).await {
        Ok(due) => due,
        Err(e) => {
            log::warn!("payment sweep: cannot read pending orders: {e}");
            return;
        }
    };
    futures::stream::iter(due)
        .for_each_concurrent(
            CHECK_CONCURRENCY,
            |(order_id, invoice_id, created_at)| async move {
                check_one(state, &order_id, &invoice_id, created_at).await
            },
        )
        .await;
}

async fn check_one(state: &State, order_id: &str, invoice_id: &str, created_at: i64) {
    let invoice = match state.payments.get_invoice(invoice_id).await {
        Ok(invoice) => invoice,
        Err(e) => {
            // Provider down: try again on the next pass.
            log::debug!(
                "payment sweep: cannot check invoice {invoice_id}: {}",
                common::error::chain(&e)
            );
            return;
        }
    };
    if let Some(invoice) = invoice.filter(Invoice::is_paid) {
        match state.store.order(order_id).await {
            Ok(Some(order)) if pays(&invoice, &order) => {
                if let Err(e) = confirm(state, invoice_id, None, "sweep").await {
                    log::warn!("payment sweep: cannot mark order {order_id} paid: {e}");
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!("payment sweep: cannot read order {order_id}: {e}");
                return;
            }
        }
    }
    let now = now_ms();
    let age = Duration::from_millis((now - created_at).max(0) as u64);
    let next = now + next_check_delay(age, state.config.reconcile_interval).as_millis() as i64;
    if let Err(e) = state.store.set_next_check(order_id, next).await {
        log::warn!("payment sweep: cannot schedule the next check of order {order_id}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderLine;

    fn order(email: Option<&str>) -> Order {
        Order {
            id: "0190e5b0-c6a5-7d7c-9b1e-2f3a4b5c6d7e".into(),
            user_id: "u".into(),
            email: email.map(str::to_string),
            items: vec![OrderLine {
                id: "l".into(),
                product_id: "p".into(),
                name: "Teapot".into(),
                unit_price_cents: 1250,
                quantity: 2,
            }],
            amount_cents: 2500,
            currency: "USD".into(),
            invoice_id: Some("inv_1".into()),
            status: OrderStatus::Paid,
            created_at: 0,
            paid_at: Some(1),
        }
    }

    #[test]
    fn a_paid_order_mails_its_buyer_and_tells_stats() {
        let m = paid_messages(&order(Some("ann@example.com")));
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].target, "mailer");
        assert_eq!(m[0].payload["to"], "ann@example.com");
        let body = m[0].payload["body"].as_str().unwrap();
        assert!(body.contains("2 x Teapot — 25.00 USD"), "{body}");
        assert!(body.contains("Total paid: 25.00 USD"), "{body}");
        assert_eq!(m[1].payload["action"], "order_paid");
        // Without an address only the event goes out.
        let m = paid_messages(&order(None));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].target, "stats");
    }

    #[test]
    fn old_unpaid_orders_are_checked_less_often() {
        let i = Duration::from_secs(2);
        assert_eq!(next_check_delay(Duration::from_secs(10), i), i);
        assert_eq!(
            next_check_delay(Duration::from_secs(7200), i),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_check_delay(Duration::from_secs(86400 * 7), i),
            MAX_CHECK_DELAY
        );
    }

    #[test]
    fn an_invoice_for_another_amount_does_not_pay() {
        let o = order(None);
        let inv = |amount, status: &str| Invoice {
            id: "inv_1".into(),
            status: status.into(),
            amount_cents: amount,
            currency: "USD".into(),
        };
        assert!(pays(&inv(2500, "paid"), &o));
        assert!(!pays(&inv(2500, "open"), &o));
        assert!(!pays(&inv(1, "paid"), &o));
    }
}
