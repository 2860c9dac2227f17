//! One async function per endpoint of the cart API, the internal payment
//! webhook, and the mapping of the cart's typed errors to problem+json.

use std::sync::Arc;

use common::auth::Claims;
use common::idempotency::{request_hash, Key};
use common::json::{is_json_content_type, json_response, no_content};
use common::messages::payments::INVOICE_PAID;
use common::messages::stats::CartItemAdded;
use common::messages::{Message, StatsEvent};
use common::pagination::{Page, PageParams};
use common::validate::from_bytes;
use common::webhook::{verify_now, SignatureError, DEFAULT_TOLERANCE_SECS};
use common::{ApiError, HandlerResult, Req};
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::checkout::CheckoutError;
use crate::clients::ProductError;
use crate::domain::{
    parse_id, CartView, ItemView, NewItem, OrderView, Quantity, MAX_LINES, MAX_QUANTITY,
};
use crate::payment_event::PaymentEvent;
use crate::store::StoreError;
use crate::State;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CartFull => ApiError::conflict(
                "cart_full",
                format!("a cart holds at most {MAX_LINES} different products"),
            ),
            StoreError::QuantityTooLarge => ApiError::invalid_field(
                "quantity",
                format!("the item's quantity would exceed {MAX_QUANTITY}"),
            ),
            StoreError::CheckoutKeyTaken => key_in_use(),
            StoreError::Db(e) => e.into(),
        }
    }
}

impl From<ProductError> for ApiError {
    fn from(e: ProductError) -> Self {
        match e {
            ProductError::NotFound => product_not_found(),
            ProductError::Unavailable(e) => products_unavailable(e),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        let detail = e.to_string();
        match e {
            CheckoutError::CartEmpty => ApiError::conflict("cart_empty", detail),
            CheckoutError::CartChanged => ApiError::conflict(
                "cart_changed",
                "the cart changed while checking out; review it and check out again",
            ),
            CheckoutError::ProductsGone(_) => ApiError::conflict("product_unavailable", detail),
            CheckoutError::MixedCurrencies(_) => ApiError::conflict("mixed_currencies", detail),
            CheckoutError::AmountTooLarge => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount_too_large",
                detail,
            ),
            CheckoutError::InvoiceRejected(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invoice_rejected",
                detail,
            ),
            CheckoutError::KeyInUse => key_in_use(),
            CheckoutError::ProductsUnavailable(e) => products_unavailable(e),
            CheckoutError::PaymentsUnavailable(e) => ApiError::unavailable(
                "payments_unavailable",
                "the payment provider is unavailable; nothing was charged and the cart is unchanged",
            )
            .with_cause(e)
            .with_header(RETRY_AFTER, HeaderValue::from_static("5")),
            e @ CheckoutError::InvoiceMismatch => ApiError::unavailable(
                "payments_unavailable",
                "the payment provider answered inconsistently; the cart is unchanged",
            )
            .with_cause(e),
            CheckoutError::Store(e) => e.into(),
        }
    }
}

fn product_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "product_not_found",
        "no such product (unknown or deleted)",
    )
}

fn products_unavailable(cause: common::client::ClientError) -> ApiError {
    ApiError::unavailable(
        "products_unavailable",
        "the products service is unavailable; try again shortly",
    )
    .with_cause(cause)
    .with_header(RETRY_AFTER, HeaderValue::from_static("5"))
}

/// Two attempts with one checkout key met (only possible after a crash);
/// a `503` is not stored under the key, so the retry it asks for gets
/// the order.
fn key_in_use() -> ApiError {
    ApiError::unavailable(
        "checkout_in_progress",
        "a checkout with this Idempotency-Key is still in progress; retry shortly",
    )
    .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
}

fn item_not_found() -> ApiError {
    ApiError::not_found("cart item")
}

fn order_not_found() -> ApiError {
    ApiError::not_found("order")
}

/// Authenticates the caller (`401`, also for a token users has revoked)
/// and checks they may act on `{uid}`: themselves or an admin (`403`).
/// Returns the claims and the canonical user id; a `{uid}` that is not a
/// user id at all is `404` (for an admin; anyone else is refused first,
/// since it cannot be their own).
async fn authorize(state: &State, req: &Req) -> Result<(Claims, String), ApiError> {
    let claims = state
        .keys
        .authenticate_current(req.headers(), &state.versions)
        .await?;
    let raw = req.param("uid");
    let uid = parse_id(raw);
    if !(uid.as_deref() == Some(claims.sub.as_str()) || raw == claims.sub) {
        claims.require_self_or_admin(raw)?;
    }
    let uid = uid.ok_or_else(|| ApiError::not_found("user"))?;
    Ok((claims, uid))
}

/// `POST /user/{uid}/cart/`
pub async fn add_item(state: Arc<State>, mut req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let new: NewItem = req.body().await?;
    let product_id = new.product_id.ok_or_else(product_not_found)?;
    let product = state.products.get(&product_id).await?;
    let quantity = new.quantity.get();
    let line = state
        .store
        .add_item(&uid, &product, quantity, |line| {
            StatsEvent::cart_item_added(
                &uid,
                CartItemAdded {
                    item_id: &line.id,
                    product_id: &line.product_id,
                    quantity,
                    cart_quantity: line.quantity,
                },
            )
            .outgoing()
        })
        .await?;
    state.outbox.notify();
    Ok(json_response(
        StatusCode::CREATED,
        &ItemView::new(&line, Some(&product)),
    ))
}

/// `GET /user/{uid}/cart/`: every line with its product's current name and
/// price, read from products in one batch request.
pub async fn cart(state: Arc<State>, req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let lines = state.store.lines(&uid).await?;
    let ids: Vec<String> = lines.iter().map(|l| l.product_id.clone()).collect();
    let products = state
        .products
        .get_many(&ids)
        .await
        .map_err(products_unavailable)?;
    let items = lines
        .iter()
        .zip(&products)
        .map(|(line, product)| ItemView::new(line, product.as_ref()))
        .collect();
    Ok(json_response(StatusCode::OK, &CartView::new(items)))
}

/// The product of a line: `None` when it was deleted; `503` when products
/// cannot say.
async fn product_of(
    state: &State,
    product_id: &str,
) -> Result<Option<crate::domain::Product>, ApiError> {
    match state.products.get(product_id).await {
        Ok(p) => Ok(Some(p)),
        Err(ProductError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `GET /user/{uid}/cart/{id}`
pub async fn item(state: Arc<State>, req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let id = parse_id(req.param("id")).ok_or_else(item_not_found)?;
    let line = state
        .store
        .line(&uid, &id)
        .await?
        .ok_or_else(item_not_found)?;
    let product = product_of(&state, &line.product_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &ItemView::new(&line, product.as_ref()),
    ))
}

/// `PUT /user/{uid}/cart/{id}` `{"quantity"}`: sets the quantity. The
/// product is read first, so with products down nothing changes (`503`).
pub async fn update_item(state: Arc<State>, mut req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let quantity: Quantity = req.body().await?;
    let id = parse_id(req.param("id")).ok_or_else(item_not_found)?;
    let line = state
        .store
        .line(&uid, &id)
        .await?
        .ok_or_else(item_not_found)?;
    let product = product_of(&state, &line.product_id).await?;
    let line = state
        .store
        .set_quantity(&uid, &id, quantity.get(), product.as_ref())
        .await?
        .ok_or_else(item_not_found)?;
    Ok(json_response(
        StatusCode::OK,
        &ItemView::new(&line, product.as_ref()),
    ))
}

/// `DELETE /user/{uid}/cart/{id}`
pub async fn delete_item(state: Arc<State>, req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let id = parse_id(req.param("id")).ok_or_else(item_not_found)?;
    if !state.store.delete_line(&uid, &id).await? {
        return Err(item_not_found());
    }
    Ok(no_content())
}

/// `POST /user/{uid}/cart/checkout`, honouring `Idempotency-Key` (scoped to
/// the caller). The body, if any, is not used but is part of the request
/// a key is remembered by.
pub async fn checkout(state: Arc<State>, mut req: Req) -> HandlerResult {
    let (claims, uid) = authorize(&state, &req).await?;
    let key = Key::from_headers(req.headers())?;
    let body = req.bytes().await?;
    let hash = request_hash(&req.parts.method, req.parts.uri.path(), &body);
    let scope = format!("user:{}", claims.sub);
    // The confirmation goes to the buyer's address from their own token;
    // an admin checking out for someone else does not know it.
    let email = if claims.sub == uid {
        claims.email.clone()
    } else {
        None
    };
    let checkout_key = key
        .as_ref()
        .map(|k| format!("{}:{}", claims.sub, k.as_str()));
    let work_state = state.clone();
    let work = async move {
        let order = crate::checkout::checkout(&work_state, &uid, email, checkout_key).await?;
        Ok(json_response(StatusCode::CREATED, &OrderView::from(&order)))
    };
    state
        .idempotency
        .run(&scope, key.as_ref(), &hash, work)
        .await
}

/// `GET /user/{uid}/orders/`: newest first, paginated; pending orders in
/// the page are reconciled with the provider first.
pub async fn orders(state: Arc<State>, req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let page = PageParams::from_query(&req.query())?;
    let (orders, total) = state.store.orders(&uid, page.limit, page.offset).await?;
    let orders = crate::reconciliation::reconcile_all(&state, orders).await;
    let views: Vec<OrderView> = orders.iter().map(OrderView::from).collect();
    Ok(json_response(
        StatusCode::OK,
        &Page::new(views, total, page),
    ))
}

/// `GET /user/{uid}/orders/{id}`
pub async fn order(state: Arc<State>, req: Req) -> HandlerResult {
    let (_, uid) = authorize(&state, &req).await?;
    let id = parse_id(req.param("id")).ok_or_else(order_not_found)?;
    let order = state
        .store
        .visible_order(&uid, &id)
        .await?
        .ok_or_else(order_not_found)?;
    let order = crate::reconciliation::reconcile(&state, order).await;
    Ok(json_response(StatusCode::OK, &OrderView::from(&order)))
}

/// `POST /internal/token-versions` (internal): users announces a revocation.
pub async fn token_version(state: Arc<State>, req: Req) -> HandlerResult {
    let internal_key = &state.config.base.internal_key;
    state.versions.receive(req, internal_key, &state.keys).await
}

/// `POST /internal/payments/webhook`: the provider's signed events. The
/// signature is checked over the raw body before anything is parsed; a
/// missing, wrong or stale one is `401` (malformed `400`) and changes
/// nothing. `invoice.paid` marks its order paid; a redelivered event (same
/// id) is acknowledged and ignored; other event types are acknowledged.
pub async fn payment_webhook(state: Arc<State>, mut req: Req) -> HandlerResult {
    let body = req.bytes().await?;
    let header = req
        .header(common::webhook::HEADER)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "signature_missing",
                "the Shop-Signature header is required",
            )
        })?
        .to_string();
    verify_now(
        &state.config.webhook_secret,
        &header,
        &body,
        DEFAULT_TOLERANCE_SECS,
    )
    .map_err(|e| {
        log::warn!("payment webhook refused from {}: {e}", req.peer);
        match e {
            SignatureError::Malformed => {
                ApiError::bad_request("signature_malformed", e.to_string())
            }
            SignatureError::Stale => {
                ApiError::new(StatusCode::UNAUTHORIZED, "signature_stale", e.to_string())
            }
            SignatureError::Mismatch => {
                ApiError::new(StatusCode::UNAUTHORIZED, "signature_invalid", e.to_string())
            }
        }
    })?;
    if !is_json_content_type(req.headers()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        ));
    }
    let (event_id, invoice) = match from_bytes::<PaymentEvent>(&body)? {
        PaymentEvent::InvoicePaid { event_id, invoice } => (event_id, invoice),
        PaymentEvent::Other {
            event_id,
            event_type,
        } => {
            log::info!("payment webhook {event_id} of type {event_type} ignored");
            return Ok(json_response(StatusCode::OK, &json!({"received": true})));
        }
    };
    let invoice_id = invoice.id.clone();
    if let Some(order) = state.store.order_by_invoice(&invoice_id).await? {
        if !crate::reconciliation::pays(&invoice, &order) {
            // Acknowledged so the provider stops retrying; the order stays
            // pending and the mismatch is in the log for an operator.
            return Ok(json_response(StatusCode::OK, &json!({"received": true})));
        }
    }
    let outcome = crate::reconciliation::confirm(
        &state,
        &invoice_id,
        Some((&event_id, INVOICE_PAID)),
        "webhook",
    )
    .await?;
    log::debug!("payment webhook {event_id}: {outcome:?}");
    Ok(json_response(StatusCode::OK, &json!({"received": true})))
}
