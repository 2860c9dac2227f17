//! Latencies and outcomes as they happen: one histogram and status count
//! per endpoint, and one histogram per second of the run (by intended send
//! time) for the plot. A request's latency runs from when it was meant to
//! be sent, so time spent waiting for the generator or the shop counts.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are kept in microseconds, from 1 µs to an hour, to three
/// significant digits.
const MAX_MICROS: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds")
}

/// How one request ended, as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Http(u16),
    Timeout,
    /// No connection, or it broke before an answer.
    Transport,
}

impl Status {
    pub fn label(&self) -> String {
        match self {
            Status::Http(code) => code.to_string(),
            Status::Timeout => "timeout".into(),
            Status::Transport => "transport_error".into(),
        }
    }
}

#[derive(Debug)]
pub struct Endpoint {
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<Status, u64>,
    pub errors: u64,
}

impl Endpoint {
    fn new() -> Endpoint {
        Endpoint {
            latency: histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
        }
    }

    pub fn requests(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// What happened in one second of the run.
#[derive(Debug)]
pub struct Second {
    pub latency: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p99_9_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    endpoints: BTreeMap<&'static str, Endpoint>,
    seconds: Vec<Second>,
}

/// Shared by every request task of a run.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// One request to `endpoint`, meant to be sent at `intended`, ended at
    /// `done` with `status`; `error` says whether it counts as one.
    pub fn record(
        &self,
        endpoint: &'static str,
        intended: Instant,
        done: Instant,
        status: Status,
        error: bool,
    ) {
        let micros =
            (done.saturating_duration_since(intended).as_micros() as u64).clamp(1, MAX_MICROS);
        let second = intended.saturating_duration_since(self.start).as_secs() as usize;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = inner
            .endpoints
            .entry(endpoint)
            .or_insert_with(Endpoint::new);
        e.latency.saturating_record(micros);
        *e.statuses.entry(status).or_default() += 1;
        e.errors += u64::from(error);
        while inner.seconds.len() <= second {
            inner.seconds.push(Second {
                latency: histogram(),
                requests: 0,
                errors: 0,
            });
        }
        let s = &mut inner.seconds[second];
        s.latency.saturating_record(micros);
        s.requests += 1;
        s.errors += u64::from(error);
    }

    /// Requests, errors and the p99 of the last complete second before
    /// `now`, for the progress line.
    pub fn last_second(&self, now: Instant) -> Option<(u64, u64, f64)> {
        let second = now.saturating_duration_since(self.start).as_secs() as usize;
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = inner.seconds.get(second.checked_sub(1)?)?;
        Some((
            s.requests,
            s.errors,
            s.latency.value_at_quantile(0.99) as f64 / 1000.0,
        ))
    }

    pub fn totals(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .endpoints
            .values()
            .fold((0, 0), |(r, e), ep| (r + ep.requests(), e + ep.errors))
    }

    /// Everything recorded so far, for the report (a request that ends
    /// later is not in it).
    pub fn finish(&self) -> (BTreeMap<&'static str, Endpoint>, Vec<Second>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = std::mem::take(&mut *inner);
        (inner.endpoints, inner.seconds)
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_the_intended_time() {
        let start = Instant::now();
        let r = Recorder::new(start);
        let intended = start + Duration::from_millis(1500);
        // Sent late (the generator or the shop queued it): the wait counts.
        r.record(
            "GET /x",
            intended,
            intended + Duration::from_millis(40),
            Status::Http(200),
            false,
        );
        r.record(
            "GET /x",
            intended,
            intended + Duration::from_millis(2),
            Status::Http(503),
            true,
        );
        r.record(
            "GET /y",
            start,
            start + Duration::from_millis(1),
            Status::Timeout,
            true,
        );
        assert_eq!(r.totals(), (3, 2));
        assert_eq!(
            r.last_second(start + Duration::from_secs(2)).map(|s| s.0),
            Some(2)
        );
        let (endpoints, seconds) = r.finish();
        let x = &endpoints["GET /x"];
        assert_eq!(x.requests(), 2);
        assert_eq!(x.errors, 1);
        assert_eq!(x.statuses[&Status::Http(503)], 1);
        let p = Percentiles::of(&x.latency);
        assert!((p.max_ms - 40.0).abs() < 0.1, "{p:?}");
        assert!((p.p50_ms - 2.0).abs() < 0.01, "{p:?}");
        // Filed by the second it was meant to be sent in.
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[0].requests, 1);
        assert_eq!(seconds[1].requests, 2);
        assert_eq!(seconds[1].errors, 1);
    }

    #[test]
    fn status_labels() {
        assert_eq!(Status::Http(201).label(), "201");
        assert_eq!(Status::Timeout.label(), "timeout");
        assert_eq!(Status::Transport.label(), "transport_error");
    }
}
