//! Fault injection: added latency and a share of requests answered `503`, so
//! the cart's timeouts, retries and idempotency can be exercised against a
//! provider that misbehaves the way real ones do. Off by default; applied to
//! the `/invoices` endpoints only, never to health checks.

use std::time::Duration;

use common::ApiError;
use http::header::{HeaderValue, RETRY_AFTER};
use rand::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Inclusive range of added latency in milliseconds.
    pub latency_ms: (u64, u64),
    /// Probability in 0.0..=1.0 that a request is answered `503`.
    pub failure_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::OFF
    }
}

/// Added latency above this would outlast clients' timeouts and the
/// idempotency lock; a knob for resilience tests needs no more.
pub const MAX_LATENCY_MS: u64 = 30_000;

impl Faults {
    pub const OFF: Faults = Faults {
        latency_ms: (0, 0),
        failure_rate: 0.0,
    };

    /// `"50-200"` (a range) or `"100"` (a fixed delay), in milliseconds.
    pub fn parse_latency(raw: &str) -> Result<(u64, u64), String> {
        let bad = || {
            format!("expected milliseconds as MIN-MAX (such as 50-200) or a single number, up to {MAX_LATENCY_MS}")
        };
        let (lo, hi) = match raw.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (raw.trim(), raw.trim()),
        };
        let lo: u64 = lo.parse().map_err(|_| bad())?;
        let hi: u64 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(format!("the minimum {lo} is above the maximum {hi}"));
        }
        if hi > MAX_LATENCY_MS {
            return Err(bad());
        }
        Ok((lo, hi))
    }

    /// A probability from 0.0 to 1.0.
    pub fn parse_failure_rate(raw: &str) -> Result<f64, String> {
        match raw.trim().parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
            _ => Err("expected a number from 0.0 (never) to 1.0 (always)".to_string()),
        }
    }

    pub fn is_off(&self) -> bool {
        self.latency_ms.1 == 0 && self.failure_rate == 0.0
    }

    /// Waits the configured latency, then fails with the configured rate.
    pub async fn apply(&self) -> Result<(), ApiError> {
        if self.is_off() {
            return Ok(());
        }
        // The generator is not Send, so it is dropped before any await.
        let (delay, fail) = {
            let mut rng = rand::thread_rng();
            let (lo, hi) = self.latency_ms;
            (rng.gen_range(lo..=hi), rng.gen_bool(self.failure_rate))
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if fail {
            return Err(ApiError::unavailable(
                "service_unavailable",
                "the payment provider is temporarily unavailable; retry later",
            )
            .with_header(RETRY_AFTER, HeaderValue::from_static("1")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ranges() {
        assert_eq!(Faults::parse_latency("0-0"), Ok((0, 0)));
        assert_eq!(Faults::parse_latency("50-200"), Ok((50, 200)));
        assert_eq!(Faults::parse_latency(" 100 "), Ok((100, 100)));
        for bad in ["", "-", "a-b", "200-50", "-5", "1-99999999", "1.5-2"] {
            assert!(Faults::parse_latency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failure_rates() {
        assert_eq!(Faults::parse_failure_rate("0"), Ok(0.0));
        assert_eq!(Faults::parse_failure_rate("0.25"), Ok(0.25));
        assert_eq!(Faults::parse_failure_rate("1.0"), Ok(1.0));
        for bad in ["-0.1", "1.01", "NaN", "inf", "often"] {
            assert!(Faults::parse_failure_rate(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn off_never_fails_and_always_fails_at_one() {
        assert!(Faults::OFF.apply().await.is_ok());
        let always = Faults {
            latency_ms: (0, 0),
            failure_rate: 1.0,
        };
        let e = always.apply().await.unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(e.code, "service_unavailable");
    }
}
