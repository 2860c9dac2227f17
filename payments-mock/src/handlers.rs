//! One async function per endpoint of the payments-mock API.

use std::sync::Arc;

use common::auth::{bearer, constant_time_eq};
use common::idempotency::{request_hash, Key};
use common::json::{is_json_content_type, json_response, parse_json};
use common::validate::{from_bytes, object};
use common::{ApiError, HandlerResult, Req};
use http::StatusCode;
use serde_json::Value;

use crate::card::Card;
use crate::domain::{parse_invoice_id, CardSummary, NewInvoice, Status};
use crate::store::PayError;
use crate::State;

impl From<PayError> for ApiError {
    fn from(e: PayError) -> Self {
        match e {
            PayError::NotFound => ApiError::not_found("invoice"),
            PayError::AlreadyPaid => already_paid(),
            PayError::Db(e) => e.into(),
        }
    }
}

fn already_paid() -> ApiError {
    ApiError::conflict("already_paid", "the invoice is already paid")
}

/// The idempotency scope of the merchant whose server key authenticates
/// the request; `401` without a valid key.
fn authenticate<'a>(state: &'a State, req: &Req) -> Result<&'a str, ApiError> {
    let token = bearer(req.headers()).ok_or_else(|| {
        ApiError::unauthorized("a server key is required (Authorization: Bearer <key>)")
    })?;
    // Every key is compared, so timing does not tell which one came close.
    let mut scope = None;
    for (key, key_scope) in &state.callers {
        if constant_time_eq(key.as_bytes(), token.as_bytes()) {
            scope = Some(key_scope.as_str());
        }
    }
    scope.ok_or_else(|| ApiError::unauthorized("the server key is invalid"))
}

/// The raw JSON body: `415` for another content type, `413` over the limit.
async fn json_body(req: &mut Req) -> Result<bytes::Bytes, ApiError> {
    if !is_json_content_type(req.headers()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        ));
    }
    req.bytes().await
}

/// `POST /invoices` (server key; honours `Idempotency-Key`)
pub async fn create(state: Arc<State>, mut req: Req) -> HandlerResult {
    state.config.faults.apply().await?;
    let scope = authenticate(&state, &req)?.to_string();
    let key = Key::from_headers(req.headers())?;
    let body = json_body(&mut req).await?;
    let hash = request_hash(&req.parts.method, req.parts.uri.path(), &body);
    let work_state = state.clone();
    let work = async move {
        let new: NewInvoice = from_bytes(&body)?;
        let invoice = work_state.store.create(&new).await?;
        metrics::counter!("payments_invoices_created_total").increment(1);
        log::info!(
            "created invoice {} for {} {}",
            invoice.id,
            invoice.amount_cents,
            invoice.currency
        );
        Ok(json_response(StatusCode::CREATED, &invoice))
    };
    state
        .idempotency
        .run(&scope, key.as_ref(), &hash, work)
        .await
}

/// `GET /invoices/{id}` (anyone with the id)
pub async fn get(state: Arc<State>, req: Req) -> HandlerResult {
    state.config.faults.apply().await?;
    let id = parse_invoice_id(req.param("id")).ok_or_else(|| ApiError::not_found("invoice"))?;
    let invoice = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("invoice"))?;
    Ok(json_response(StatusCode::OK, &invoice))
}

/// `POST /invoices/{id}/pay` (anyone with the id). The card number and CVC
/// live only in this request's memory: they are neither stored nor logged.
pub async fn pay(state: Arc<State>, mut req: Req) -> HandlerResult {
    state.config.faults.apply().await?;
    let id = parse_invoice_id(req.param("id"))
        .ok_or_else(|| ApiError::not_found("invoice"))?
        .to_string();
    let body = json_body(&mut req).await?;
    let invoice = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("invoice"))?;
    let today = time::OffsetDateTime::now_utc();
    let card = Card::parse(&object(parse_json::<Value>(&body)?)?, today.year())?;
    if invoice.status == Status::Paid {
        payment_outcome("already_paid");
        return Err(already_paid());
    }
    if let Err(decline) = card.authorize(today.year(), u8::from(today.month()).into()) {
        payment_outcome(decline.code());
        log::info!(
            "payment of invoice {id} declined: {} ({} ending {})",
            decline.code(),
            card.brand,
            card.last4
        );
        return Err(decline.into_error());
    }
    let summary = CardSummary {
        brand: card.brand.to_string(),
        last4: card.last4.clone(),
    };
    let paid = state.store.pay(&id, &summary).await?;
    payment_outcome("paid");
    // The webhook is committed; start delivering it now, not at the next poll.
    state.outbox.notify();
    log::info!(
        "invoice {id} paid ({} ending {})",
        summary.brand,
        summary.last4
    );
    Ok(json_response(StatusCode::OK, &paid))
}

/// Counts a card payment tried on a known invoice, by outcome: `paid`,
/// `already_paid` or the decline code.
fn payment_outcome(outcome: &'static str) {
    metrics::counter!("payments_attempts_total", "outcome" => outcome).increment(1);
}
