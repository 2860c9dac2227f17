//! Queue gauges for the tables the shop uses as queues (the outbox, the
//! mailer's mails): how many rows wait and how old the oldest is. They
//! come from a query, so the background loop that owns the queue refreshes
//! them every few seconds rather than at every pass.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::mutex::lock;

/// How often the queue owners refresh their backlog gauges by default.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Says when a refresh is due: at the first call, then every `every`.
pub struct Refresh {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Refresh {
    pub fn new(every: Duration) -> Refresh {
        Refresh {
            every,
            last: Mutex::new(None),
        }
    }

    /// True at most once per interval; the caller then refreshes.
    pub fn due(&self) -> bool {
        let mut last = lock(&self.last);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.every => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// Sets a queue's two gauges, `count` and `age` (seconds since `oldest_ms`,
/// the oldest waiting row's creation in epoch milliseconds; 0 when none).
pub fn set(
    count: &'static str,
    age: &'static str,
    labels: &[(&'static str, String)],
    waiting: i64,
    oldest_ms: Option<i64>,
) {
    // A queue's loop may run before its service's App installs the recorder.
    super::handle();
    metrics::gauge!(count, labels).set(waiting as f64);
    let seconds = oldest_ms
        .map(|t| (crate::time::now_ms() - t).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics::gauge!(age, labels).set(seconds);
}
