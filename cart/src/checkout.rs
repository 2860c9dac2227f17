//! Checkout: from a cart to an order with an invoice at the payment
//! provider, in steps that survive a crash or a timeout at any point with
//! no duplicate invoice, no lost cart and no half order.
//!
//! 1. Read the cart and every product's current price (a product gone →
//!    `409 product_unavailable`; products down → `503`; the cart untouched).
//! 2. Write the order as `creating` with its item snapshot and amount.
//!    Clients never see a `creating` order.
//! 3. Create the invoice with `Idempotency-Key: order-<order id>`, so any
//!    re-run of this step — a retry, the recovery sweep after a crash —
//!    gets the same invoice back. On failure the order is abandoned and
//!    the client gets `503` with its cart as it was.
//! 4. In one transaction: the order becomes `pending_payment` with its
//!    invoice, the snapshot's quantities leave the cart, and the
//!    `order_created` event is queued. Both parts are conditional — the
//!    order must still be `creating` and the cart must still hold the
//!    quantities — so of two checkouts racing for one cart exactly one
//!    wins; the loser's order is abandoned and it answers `409 cart_empty`
//!    (or `cart_changed` if something is left). Its invoice stays open at
//!    the provider, unseen and unpayable by anyone, like an abandoned
//!    payment intent.
//!
//! A crash between 2 and 4 leaves a `creating` order; the sweep
//! ([`recover`]) re-runs steps 3 and 4 for it once it is older than the
//! longest a checkout can take, or abandons it. A client retrying with its
//! `Idempotency-Key` after such a crash is given the order that key
//! started (the key is stored on the order), completed first if needed.

use common::client::ClientError;
use common::messages::stats::OrderEvent;
use common::messages::{Message, StatsEvent};
use common::time::now_ms;

use crate::clients::PaymentsError;
use crate::domain::{new_id, Order, OrderLine, OrderStatus};
use crate::store::{Completion, StoreError};
use crate::State;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the cart is empty")]
    CartEmpty,
    #[error("the cart changed while checking out")]
    CartChanged,
    #[error("products in the cart are no longer available: {}", .0.join(", "))]
    ProductsGone(Vec<String>),
    #[error("the cart holds products priced in different currencies: {}", .0.join(", "))]
    MixedCurrencies(Vec<String>),
    #[error("the order total is too large")]
    AmountTooLarge,
    #[error("a checkout with this Idempotency-Key is being recovered")]
    KeyInUse,
    #[error("the products service is unavailable")]
    ProductsUnavailable(#[source] ClientError),
    #[error("the payment provider is unavailable")]
    PaymentsUnavailable(#[source] ClientError),
    #[error("the payment provider answered with an invoice that does not match the order")]
    InvoiceMismatch,
    #[error("the payment provider refused the invoice: {0}")]
    InvoiceRejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckoutError {
    /// A short, fixed label for metrics (`cart_orders_abandoned_total`).
    pub fn reason(&self) -> &'static str {
        match self {
            CheckoutError::CartEmpty => "cart_empty",
            CheckoutError::CartChanged => "cart_changed",
            CheckoutError::ProductsGone(_) => "products_gone",
            CheckoutError::MixedCurrencies(_) => "mixed_currencies",
            CheckoutError::AmountTooLarge => "amount_too_large",
            CheckoutError::KeyInUse => "key_in_use",
            CheckoutError::ProductsUnavailable(_) => "products_unavailable",
            CheckoutError::PaymentsUnavailable(_) => "payments_unavailable",
            CheckoutError::InvoiceMismatch => "invoice_mismatch",
            CheckoutError::InvoiceRejected(_) => "invoice_rejected",
            CheckoutError::Store(_) => "store",
        }
    }
}

/// Checks out `user_id`'s cart. `email` is where the confirmation will go;
/// `checkout_key` is the client's Idempotency-Key, prefixed with the caller.
pub async fn checkout(
    state: &State,
    user_id: &str,
    email: Option<String>,
    checkout_key: Option<String>,
) -> Result<Order, CheckoutError> {
    if let Some(key) = &checkout_key {
        if let Some(done) = resume(state, user_id, key).await? {
            return done;
        }
    }

    // Step 1: the cart at current prices.
    let lines = state.store.lines(user_id).await?;
    if lines.is_empty() {
        return Err(CheckoutError::CartEmpty);
    }
    let ids: Vec<String> = lines.iter().map(|l| l.product_id.clone()).collect();
    let mut gone = Vec::new();
    let mut items = Vec::with_capacity(lines.len());
    let mut currencies: Vec<String> = Vec::new();
    let products = state
        .products
        .get_many(&ids)
        .await
        .map_err(CheckoutError::ProductsUnavailable)?;
    for (line, product) in lines.iter().zip(products) {
        match product {
            Some(p) => {
                if !currencies.contains(&p.currency) {
                    currencies.push(p.currency.clone());
                }
                items.push(OrderLine {
                    id: new_id(),
                    product_id: line.product_id.clone(),
                    name: p.name,
                    unit_price_cents: p.price_cents,
                    quantity: line.quantity,
                });
            }
            None => gone.push(line.product_id.clone()),
        }
    }
    if !gone.is_empty() {
        return Err(CheckoutError::ProductsGone(gone));
    }
    if currencies.len() > 1 {
        return Err(CheckoutError::MixedCurrencies(currencies));
    }
    let amount_cents = items
        .iter()
        .try_fold(0i64, |sum, l| {
            l.unit_price_cents
                .checked_mul(l.quantity)
                .and_then(|t| sum.checked_add(t))
        })
        .ok_or(CheckoutError::AmountTooLarge)?;
    let currency = currencies
        .pop()
        .unwrap_or_else(|| common::money::DEFAULT_CURRENCY.to_string());

    // Step 2: the order, not yet visible.
    let order = Order {
        id: new_id(),
        user_id: user_id.to_string(),
        email,
        items,
        amount_cents,
        currency,
        invoice_id: None,
        status: OrderStatus::Creating,
        created_at: now_ms(),
        paid_at: None,
    };
    match state
        .store
        .insert_creating(&order, checkout_key.as_deref())
        .await
    {
        Ok(()) => {}
        Err(StoreError::CheckoutKeyTaken) => {
            // Another attempt with this key wrote its order a moment ago.
            let key = checkout_key.as_deref().unwrap_or_default();
            return match resume(state, user_id, key).await? {
                Some(done) => done,
                None => Err(CheckoutError::KeyInUse),
            };
        }
        Err(e) => return Err(e.into()),
    }
    finish(state, order).await
}

/// The order an earlier attempt with this checkout key started — the
/// retry of a checkout whose first attempt died mid-way — completed first
/// if it is still `creating`. `None` if there is none.
async fn resume(
    state: &State,
    user_id: &str,
    key: &str,
) -> Result<Option<Result<Order, CheckoutError>>, CheckoutError> {
    let Some(order) = state.store.order_by_checkout_key(user_id, key).await? else {
        return Ok(None);
    };
    log::info!(
        "checkout key already started order {}; resuming it",
        order.id
    );
    Ok(Some(match order.status {
        OrderStatus::Creating => finish(state, order).await,
        _ => Ok(order),
    }))
}

/// Steps 3 and 4 for a `creating` order: safe to run again for the same
/// order (the invoice is created under the order's own idempotency key,
/// and step 4 is conditional).
pub async fn finish(state: &State, mut order: Order) -> Result<Order, CheckoutError> {
    let invoice = match state
        .payments
        .create_invoice(&order.id, order.amount_cents, &order.currency)
        .await
    {
        Ok(invoice) => invoice,
        Err(e) => {
            let err = match e {
                PaymentsError::Rejected(detail) => CheckoutError::InvoiceRejected(detail),
                PaymentsError::Unavailable(e) => CheckoutError::PaymentsUnavailable(e),
            };
            return give_up(state, &order, err).await;
        }
    };
    if invoice.amount() != order.total() {
        log::error!(
            "invoice {} for order {} is for {}, the order for {}",
            invoice.id,
            order.id,
            invoice.amount(),
            order.total()
        );
        return give_up(state, &order, CheckoutError::InvoiceMismatch).await;
    }
    let created = StatsEvent::order_created(
        &order.user_id,
        OrderEvent {
            order_id: &order.id,
            invoice_id: Some(invoice.id.as_str()),
            amount_cents: order.amount_cents,
            currency: &order.currency,
            items: Some(order.items.len()),
        },
    )
    .outgoing();
    match state
        .store
        .complete_checkout(&order, &invoice.id, vec![created])
        .await?
    {
        Completion::Done => {
            state.outbox.notify();
            metrics::counter!("cart_orders_created_total").increment(1);
            log::info!(
                "order {} created for user {} with invoice {}",
                order.id,
                order.user_id,
                invoice.id
            );
            order.invoice_id = Some(invoice.id);
            order.status = OrderStatus::PendingPayment;
            Ok(order)
        }
        Completion::NotCreating => settled(state, &order.id).await,
        Completion::CartChanged => {
            log::info!(
                "order {} lost its cart to a concurrent change; abandoning it (invoice {} stays unused)",
                order.id,
                invoice.id
            );
            let err = if state.store.lines(&order.user_id).await?.is_empty() {
                CheckoutError::CartEmpty
            } else {
                CheckoutError::CartChanged
            };
            give_up(state, &order, err).await
        }
    }
}

/// Abandons `order` and answers `err` — unless someone else completed it
/// meanwhile (the recovery sweep), in which case that order is the answer.
async fn give_up(state: &State, order: &Order, err: CheckoutError) -> Result<Order, CheckoutError> {
    if state.store.abandon(&order.id).await? {
        log::info!(
            "order {} abandoned: {}",
            order.id,
            common::error::chain(&err)
        );
        metrics::counter!("cart_orders_abandoned_total", "reason" => err.reason()).increment(1);
        return Err(err);
    }
    match settled(state, &order.id).await {
        Ok(done) => Ok(done),
        Err(_) => Err(err),
    }
}

/// The order as someone else left it: visible ones are the answer.
async fn settled(state: &State, order_id: &str) -> Result<Order, CheckoutError> {
    match state.store.order(order_id).await? {
        Some(o) if matches!(o.status, OrderStatus::PendingPayment | OrderStatus::Paid) => Ok(o),
        _ => Err(CheckoutError::CartChanged),
    }
}

/// The sweep's part: completes (or abandons) checkouts interrupted longer
/// ago than a checkout can take, i.e. left behind by a crash.
pub async fn recover(state: &State) {
    let before = now_ms() - state.config.checkout_recovery_after.as_millis() as i64;
    let stale = match state.store.stale_creating(before, 20).await {
        Ok(stale) => stale,
        Err(e) => {
            log::warn!("checkout recovery: cannot read interrupted checkouts: {e}");
            return;
        }
    };
    for order in stale {
        let id = order.id.clone();
        match finish(state, order).await {
            Ok(o) => log::info!(
                "checkout recovery: order {id} completed ({})",
                o.status.as_str()
            ),
            Err(e) => log::info!(
                "checkout recovery: order {id} abandoned: {}",
                common::error::chain(&e)
            ),
        }
    }
}
