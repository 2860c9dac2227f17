//! Per-route metrics with their handles registered once: the `metrics`
//! macros build label sets (allocating strings) on every call, which the
//! hot path cannot afford, so each route keeps its histogram and one
//! lazily created counter per status code.

use std::sync::OnceLock;

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

    pub fn record(&self, status: u16, seconds: f64) {
        self.duration.record(seconds);
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
            .increment(1);
    }
}

/// An upstream failure, by pool and kind (connect, reset, timeout, …).
pub fn upstream_error(pool: &str, kind: &'static str) {
    metrics::counter!(
        "balancer_upstream_errors_total",
        "pool" => pool.to_string(),
        "kind" => kind
    )
    .increment(1);
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
