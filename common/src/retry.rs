//! Exponential backoff with jitter for work retried in the background
//! (mail sends, deliveries to other services): the delay doubles with each
//! failed attempt up to a cap, and ±20 % jitter keeps many items that failed
//! together from retrying in lockstep.

use std::time::Duration;

use rand::Rng;

/// The delay before the next try after `attempts` failed ones (1 = the first
/// failure): `base · 2^(attempts−1)`, capped at `max`, then jittered.
pub fn backoff(base: Duration, max: Duration, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    let capped = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    capped.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        for (attempts, nominal) in [
            (0, 1.0),
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (99, 10.0),
        ] {
            let d = backoff(base, max, attempts).as_secs_f64();
            assert!(
                d >= nominal * 0.8 && d <= nominal * 1.2,
                "attempt {attempts}: {d}"
            );
        }
    }
}
