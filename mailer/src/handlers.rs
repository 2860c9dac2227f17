//! `POST /send_email/`: the mailer's one endpoint.

use std::sync::Arc;

use common::auth::require_internal;
use common::idempotency::Key;
use common::json::json_response;
use common::{ApiError, HandlerResult, Req};
use http::StatusCode;
use serde_json::json;

use crate::domain::NewMail;
use crate::store::{Enqueued, RecipientLimit, StoreError};
use crate::State;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::KeyReused => common::idempotency::key_reused(),
            StoreError::RateLimited { retry_after } => ApiError::too_many_requests(
                // Round up: retrying at the advertised second must succeed.
                retry_after.as_millis().div_ceil(1000) as u64,
                "too many mails to this recipient; try again later",
            ),
            StoreError::Db(e) => e.into(),
        }
    }
}

/// `POST /send_email/` (internal): validates, queues durably, answers `202`.
pub async fn send_email(state: Arc<State>, mut req: Req) -> HandlerResult {
    require_internal(req.headers(), &state.config.base.internal_key, &state.keys)?;
    let key = Key::from_headers(req.headers())?;
    let mail: NewMail = req.body().await?;
    let limit = RecipientLimit {
        max: state.config.recipient_limit,
        window: state.config.recipient_window,
    };
    let id = match state
        .store
        .enqueue(&mail, key.as_ref().map(Key::as_str), limit)
        .await
    {
        Ok(Enqueued::Created(id)) => {
            metrics::counter!("mailer_mails_queued_total").increment(1);
            log::info!("queued mail {id}");
            state.wake.notify_one();
            id
        }
        Ok(Enqueued::Replayed(id)) => {
            log::info!("repeated request for mail {id}; nothing queued");
            id
        }
        Err(e @ StoreError::RateLimited { .. }) => {
            metrics::counter!("mailer_rate_limited_total").increment(1);
            log::warn!("refused a mail: recipient over its limit");
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"id": id, "status": "queued"}),
    ))
}
