//! Per-route metrics with their handles registered once: the `metrics`
//! macros build label sets (allocating strings) on every call, which the
//! hot path cannot afford, so each route keeps its histogram and one
//! lazily created counter per status code.
//!
//! Workers do not update those shared handles per request: a counter and a
//! histogram are atomics that every worker thread would write, and the
//! cache lines bouncing between cores cost about 3 % of a proxied
//! request's CPU at saturation (measured with `schedstat` under wrk). Each
//! worker tallies into its own [`Tally`] instead and adds it to the shared
//! handles every [`FLUSH_AT`] requests, and `/metrics` adds every worker's
//! tally before it renders, so a scrape is always exact.

use std::sync::{Mutex, OnceLock};

use common::mutex::lock;
use metrics::{Counter, Histogram};

/// Status codes 100..=599 map to slots 0..500.
const STATUSES: usize = 500;

pub struct RouteMetrics {
    route: String,
    pool: String,
    requests: Box<[OnceLock<Counter>]>,
    duration: Histogram,
}

impl RouteMetrics {
    pub fn new(route: &str, pool: &str) -> RouteMetrics {
        let duration = metrics::histogram!(
            "balancer_request_duration_seconds",
            "route" => route.to_string(),
            "pool" => pool.to_string()
        );
        RouteMetrics {
            route: route.to_string(),
            pool: pool.to_string(),
            requests: (0..STATUSES).map(|_| OnceLock::new()).collect(),
            duration,
        }
    }

    /// The route's name, as in its metric labels and the access log.
    pub fn route(&self) -> &str {
        &self.route
    }

    fn add(&self, status: u16, count: u64) {
        let slot = (status as usize).saturating_sub(100).min(STATUSES - 1);
        self.requests[slot]
            .get_or_init(|| {
                metrics::counter!(
                    "balancer_requests_total",
                    "route" => self.route.clone(),
                    "pool" => self.pool.clone(),
                    "status" => status.to_string()
                )
            })
            .increment(count);
    }
}

/// Requests a worker tallies before adding them to the shared handles.
pub const FLUSH_AT: usize = 256;

/// One worker's requests not yet added to the shared metrics, by index
/// into the list of [`RouteMetrics`] they belong to.
#[derive(Default)]
pub struct Tally {
    /// Only its own worker locks it, but for a flush from `/metrics`, so
    /// the lock is uncontended and its cache line stays on one core.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// (metrics index, status, requests): a handful of distinct pairs.
    counts: Vec<(usize, u16, u64)>,
    /// (metrics index, seconds): one per request.
    durations: Vec<(usize, f64)>,
}

impl Tally {
    /// Notes one request; every [`FLUSH_AT`] requests the tally goes to
    /// `all`.
    pub fn record(&self, all: &[RouteMetrics], index: usize, status: u16, seconds: f64) {
        let mut pending = lock(&self.pending);
        match pending
            .counts
            .iter_mut()
            .find(|(i, s, _)| *i == index && *s == status)
        {
            Some((_, _, n)) => *n += 1,
            None => pending.counts.push((index, status, 1)),
        }
        pending.durations.push((index, seconds));
        if pending.durations.len() >= FLUSH_AT {
            pending.flush(all);
        }
    }

    /// Adds everything tallied so far to `all`.
    pub fn flush(&self, all: &[RouteMetrics]) {
        lock(&self.pending).flush(all);
    }
}

impl Pending {
    fn flush(&mut self, all: &[RouteMetrics]) {
        for (index, status, n) in &mut self.counts {
            if *n > 0 {
                all[*index].add(*status, *n);
                *n = 0;
            }
        }
        for (index, seconds) in self.durations.drain(..) {
            all[index].duration.record(seconds);
        }
    }
}

/// The kinds of [`upstream_error`].
const ERROR_KINDS: [&str; 3] = ["connect", "timeout", "broken"];

/// An upstream failure, by pool and kind (one of [`ERROR_KINDS`]).
pub fn upstream_error(pool: &str, kind: &'static str) {
    debug_assert!(ERROR_KINDS.contains(&kind));
    upstream_errors(pool, kind).increment(1);
}

/// A pool's error counters, at 0 from its start: a dashboard shows 0
/// errors rather than no data, and the first error is an increase.
pub fn zero_pool(pool: &str) {
    for kind in ERROR_KINDS {
        upstream_errors(pool, kind).increment(0);
    }
}

fn upstream_errors(pool: &str, kind: &'static str) -> Counter {
    metrics::counter!(
        "balancer_upstream_errors_total",
        "pool" => pool.to_string(),
        "kind" => kind
    )
}

/// A second attempt, by pool and why.
pub fn retry(pool: &str, reason: &'static str) {
    metrics::counter!(
        "balancer_retries_total",
        "pool" => pool.to_string(),
        "reason" => reason
    )
    .increment(1);
}
