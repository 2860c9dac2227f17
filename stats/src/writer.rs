//! The batched write path. Handlers hand accepted events to a bounded
//! in-memory queue and answer without waiting for the database; one writer
//! task takes them off in batches and writes each batch in one transaction
//! — when the batch is full or `flush_interval` after its first event,
//! whichever comes first.
//! On stop it drains the queue and writes everything before returning.
//!
//! Each queued event keeps the span of the request that sent it; a batch's
//! write is a span of its own linked to those (one write serves many
//! traces, so it is a child of none).
//!
//! When the queue is full a request waits a short, bounded time for room
//! (`queue_wait`): under overload that throttles clients to the rate the
//! database takes, at the cost of a little latency, instead of spending CPU
//! on answers that only say "retry". When the wait runs out — the database
//! is stuck — the request is refused with `503`; nothing piles up without
//! bound.

use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use common::telemetry::{self, SpanContext};

use crate::domain::Event;
use crate::store::Store;

/// Failed writes while stopping, before the events are given up.
const FINAL_ATTEMPTS: u32 = 3;

/// An event and the span that accepted it (when tracing is on).
pub struct Queued {
    event: Event,
    cause: Option<SpanContext>,
}

/// The handlers' end of the queue.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Queued>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the event queue is full")]
    Full,
    #[error("the service is stopping")]
    Closed,
}

impl Ingest {
    /// Queues `event`, waiting at most `wait` for room.
    pub async fn push(&self, event: Event, wait: Duration) -> Result<(), PushError> {
        let event = Queued {
            event,
            cause: telemetry::current_span_context(),
        };
        let event = match self.tx.try_send(event) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(PushError::Closed),
            Err(TrySendError::Full(event)) => event,
        };
        metrics::counter!("stats_queue_full_waits_total").increment(1);
        match tokio::time::timeout(wait, self.tx.send(event)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(PushError::Closed),
            Err(_) => Err(PushError::Full),
        }
    }
}

/// The writer's end of the queue.
pub struct Writer {
    rx: mpsc::Receiver<Queued>,
    store: Store,
    batch_size: usize,
    flush_interval: Duration,
}

/// A queue of `capacity` events and the writer that empties it.
pub fn channel(
    store: Store,
    capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
) -> (Ingest, Writer) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        Ingest { tx },
        Writer {
            rx,
            store,
            batch_size: batch_size.max(1),
            flush_interval,
        },
    )
}

impl Writer {
    /// Writes batches until `stop`, then drains and writes what is left.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut batch: Vec<Queued> = Vec::with_capacity(self.batch_size);
        'serving: loop {
            // Wait for the first event of the next batch.
            tokio::select! {
                biased;
                _ = stop.cancelled() => break 'serving,
                n = self.rx.recv_many(&mut batch, self.batch_size) => {
                    if n == 0 {
                        break 'serving; // every sender is gone
                    }
                }
            }
            // Then gather more until the batch is full or its time is up.
            let deadline = Instant::now() + self.flush_interval;
            while batch.len() < self.batch_size {
                let room = self.batch_size - batch.len();
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                    n = self.rx.recv_many(&mut batch, room) => {
                        if n == 0 {
                            break;
                        }
                    }
                }
            }
            self.flush(&mut batch, &stop).await;
        }
        // Stopping: refuse new events, then write everything still queued.
        self.rx.close();
        loop {
            if batch.len() < self.batch_size {
                let room = self.batch_size - batch.len();
                self.rx.recv_many(&mut batch, room).await;
            }
            if batch.is_empty() {
                break;
            }
            self.flush(&mut batch, &stop).await;
        }
        log::info!("event writer stopped; queue drained");
    }

    /// Writes `batch` and empties it. A failed write is retried with
    /// backoff — the queue meanwhile fills and sheds load with `503` —
    /// except while stopping, where it is given up after a few attempts.
    async fn flush(&self, queued: &mut Vec<Queued>, stop: &CancellationToken) {
        let mut causes = Vec::new();
        let mut batch: Vec<Event> = Vec::with_capacity(queued.len());
        for q in queued.drain(..) {
            causes.extend(q.cause);
            batch.push(q.event);
        }
        let mut attempts: u32 = 0;
        loop {
            let write = telemetry::span("stats.write_batch", telemetry::Kind::Internal, || {
                vec![
                    telemetry::Attr::new("db.operation.name", "INSERT"),
                    telemetry::Attr::new("db.collection.name", "events"),
                    telemetry::Attr::new("db.operation.batch.size", batch.len() as i64),
                ]
            })
            .parent(Default::default())
            .links(causes.clone())
            .run(self.store.insert_batch(&batch));
            match write.await {
                Ok(written) => {
                    metrics::counter!("stats_events_written_total").increment(written);
                    if (written as usize) < batch.len() {
                        let repeats = batch.len() as u64 - written;
                        metrics::counter!("stats_events_duplicate_total").increment(repeats);
                    }
                    metrics::counter!("stats_batches_written_total").increment(1);
                    batch.clear();
                    return;
                }
                Err(e) => {
                    attempts += 1;
                    if stop.is_cancelled() && attempts >= FINAL_ATTEMPTS {
                        log::error!(
                            "cannot write {} events while stopping; they are lost: {e}",
                            batch.len()
                        );
                        metrics::counter!("stats_events_lost_total").increment(batch.len() as u64);
                        batch.clear();
                        return;
                    }
                    let delay = common::retry::backoff(
                        Duration::from_millis(100),
                        Duration::from_secs(5),
                        attempts as i64,
                    );
                    log::warn!(
                        "cannot write {} events (attempt {attempts}), retrying in {delay:?}: {e}",
                        batch.len()
                    );
                    tokio::select! {
                        // A stop cuts the wait short; the final attempts follow.
                        _ = stop.cancelled(), if !stop.is_cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

/// The event counters, at 0 from the start (see
/// `common::metrics::zero_counter`): a first lost event is then an increase.
pub fn zero_counters() {
    for name in [
        "stats_events_accepted_total",
        "stats_events_refused_total",
        "stats_queue_full_waits_total",
        "stats_events_written_total",
        "stats_events_duplicate_total",
        "stats_events_lost_total",
        "stats_batches_written_total",
    ] {
        common::metrics::zero_counter(name, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: i64) -> Event {
        Event {
            id: format!("e{i}"),
            ts: i,
            user_id: None,
            action: "a".into(),
            data: None,
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn a_full_queue_waits_briefly_then_refuses_and_a_closed_one_refuses_at_once() {
        let (tx, mut rx) = mpsc::channel(1);
        let ingest = Ingest { tx };
        let wait = Duration::from_millis(30);
        assert_eq!(ingest.push(event(1), wait).await, Ok(()));
        let started = Instant::now();
        assert_eq!(ingest.push(event(2), wait).await, Err(PushError::Full));
        assert!(started.elapsed() >= wait);
        // Room made while waiting is taken.
        let pushing = tokio::spawn({
            let ingest = ingest.clone();
            async move { ingest.push(event(3), Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(rx.recv().await.map(|q| q.event.ts), Some(1));
        assert_eq!(pushing.await.unwrap(), Ok(()));
        rx.close();
        assert_eq!(ingest.push(event(4), wait).await, Err(PushError::Closed));
    }
}
