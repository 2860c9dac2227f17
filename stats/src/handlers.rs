//! One async function per endpoint of the stats API.

use std::sync::Arc;

use common::auth::require_internal;
use common::idempotency::Key;
use common::json::json_response;
use common::pagination::{Page, PageParams};
use common::time::{now_ms, rfc3339};
use common::validate::both;
use common::{ApiError, HandlerResult, Req};
use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use crate::domain::{Event, NewEvent, Range};
use crate::store::ActionCount;
use crate::writer::PushError;
use crate::State;

/// `POST /log` (public): validates and queues; the writer stores it
/// within `flush_interval`. The answer carries nothing request-specific,
/// so a repeat with the same `Idempotency-Key` gets the same answer.
pub async fn log_event(state: Arc<State>, mut req: Req) -> HandlerResult {
    let key = Key::from_headers(req.headers())?;
    let new: NewEvent = req.body().await?;
    let event = Event {
        id: uuid::Uuid::now_v7().to_string(),
        ts: now_ms(),
        user_id: new.user_id,
        action: new.action,
        data: new.data,
        idempotency_key: key.map(|k| k.as_str().to_string()),
    };
    match state.ingest.push(event, state.config.queue_wait).await {
        Ok(()) => {
            metrics::counter!("stats_events_accepted_total").increment(1);
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"status": "accepted"}),
            ))
        }
        Err(e) => {
            metrics::counter!("stats_events_refused_total").increment(1);
            let detail = match e {
                PushError::Full => "the event store is not keeping up; retry shortly",
                PushError::Closed => "the service is stopping; retry shortly",
            };
            Err(ApiError::unavailable("stats_busy", detail)
                .with_header(RETRY_AFTER, HeaderValue::from_static("1")))
        }
    }
}

fn authorize(state: &State, req: &Req) -> Result<(), ApiError> {
    require_internal(req.headers(), &state.config.base.internal_key, &state.keys)
}

/// Range and page parameters, all problems reported at once.
fn range_and_page(req: &Req) -> Result<(Range, PageParams), ApiError> {
    let query = req.query();
    both(Range::from_query(&query), PageParams::from_query(&query))
}

/// `GET /log?from=&to=` (internal): events with `from <= ts < to`, oldest
/// first, paginated.
pub async fn list(state: Arc<State>, req: Req) -> HandlerResult {
    authorize(&state, &req)?;
    let (range, page) = range_and_page(&req)?;
    let (items, total) = state.store.list(range, page).await?;
    Ok(json_response(
        StatusCode::OK,
        &Page::new(items, total, page),
    ))
}

#[derive(Serialize)]
struct SummaryBody {
    from: String,
    to: String,
    /// Events in the range, over all actions.
    events: i64,
    #[serde(flatten)]
    page: Page<ActionCount>,
}

/// `GET /log/summary?from=&to=` (internal): events per action in the
/// range, most frequent first, as a page of `{"action","count"}`.
pub async fn summary(state: Arc<State>, req: Req) -> HandlerResult {
    authorize(&state, &req)?;
    let (range, page) = range_and_page(&req)?;
    let s = state.store.summary(range, page).await?;
    Ok(json_response(
        StatusCode::OK,
        &SummaryBody {
            from: rfc3339(range.from),
            to: rfc3339(range.to),
            events: s.events,
            page: Page::new(s.actions, s.distinct, page),
        },
    ))
}
