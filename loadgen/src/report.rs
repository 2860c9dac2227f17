//! The run's report: per endpoint requests, errors by status and latency
//! percentiles; the shop-level rates; the timeline the plot draws; the
//! consistency checks; and whether the run passed. Written as JSON and
//! printed as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::accounts::SetupReport;
use crate::consistency::{Check, Verdict};
use crate::record::{Endpoint, Percentiles, Second};

#[derive(Debug, Serialize)]
pub struct EndpointReport {
    pub requests: u64,
    pub errors: u64,
    /// Answers by status code (`"200"`), plus `timeout` and `transport_error`.
    pub statuses: BTreeMap<String, u64>,
    pub latency: Percentiles,
}

/// One second of the run, by intended send time.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Tick {
    pub second: usize,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ShopRates {
    pub orders: u64,
    pub payments: u64,
    pub orders_per_s: f64,
    pub payments_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Generator {
    /// Arrivals that found every shopper busy and waited for one (their
    /// wait is in their latency).
    pub waited_for_shopper: u64,
    pub max_shopper_wait_ms: f64,
    /// Arrivals never sent because the run ended first (count as errors).
    pub unsent: u64,
    /// Checkouts not made because the account's mail budget was spent.
    pub checkouts_skipped_for_mail_budget: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub base: String,
    /// `open` or `closed`.
    pub mode: &'static str,
    pub target_rate: Option<f64>,
    pub shoppers: usize,
    pub duration_s: f64,
    pub think_time: String,
    pub mix: String,
    pub session_auth: String,
    pub seed: u64,
    pub started_at: String,
    pub setup: Option<SetupReport>,
    pub requests: u64,
    pub errors: u64,
    pub achieved_rate: f64,
    pub endpoints: BTreeMap<String, EndpointReport>,
    pub all: Percentiles,
    pub shop: ShopRates,
    pub generator: Generator,
    pub timeline: Vec<Tick>,
    pub error_samples: Vec<String>,
    pub consistency: Vec<Check>,
    /// No request failed and no check failed.
    pub passed: bool,
}

/// The per-endpoint reports, the whole run's percentiles and the timeline.
pub fn summarize(
    endpoints: &BTreeMap<&'static str, Endpoint>,
    seconds: &[Second],
) -> (BTreeMap<String, EndpointReport>, Percentiles, Vec<Tick>) {
    let mut all =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let per = endpoints
        .iter()
        .map(|(name, e)| {
            all.add(&e.latency).expect("same bounds");
            (
                name.to_string(),
                EndpointReport {
                    requests: e.requests(),
                    errors: e.errors,
                    statuses: e.statuses.iter().map(|(s, n)| (s.label(), *n)).collect(),
                    latency: Percentiles::of(&e.latency),
                },
            )
        })
        .collect();
    let timeline = seconds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = Percentiles::of(&s.latency);
            Tick {
                second: i,
                requests: s.requests,
                errors: s.errors,
                p50_ms: if s.requests == 0 { 0.0 } else { p.p50_ms },
                p99_ms: if s.requests == 0 { 0.0 } else { p.p99_ms },
            }
        })
        .collect();
    (per, Percentiles::of(&all), timeline)
}

impl Report {
    /// Whether every request succeeded and no check failed.
    pub fn judge(&mut self) {
        self.passed = self.errors == 0
            && self.generator.unsent == 0
            && self
                .consistency
                .iter()
                .all(|c| c.verdict != Verdict::Failed);
    }

    /// The table printed at the end of a run.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mode = match self.target_rate {
            Some(r) => format!("open loop at {r} arrivals/s"),
            None => format!("closed loop with {} shoppers", self.shoppers),
        };
        let _ = writeln!(
            out,
            "\n{} for {:.0} s against {}: {} requests ({:.1}/s), {} errors",
            mode, self.duration_s, self.base, self.requests, self.achieved_rate, self.errors
        );
        let _ = writeln!(
            out,
            "\n{:<32} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  statuses",
            "endpoint", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let row = |out: &mut String,
                   name: &str,
                   requests: u64,
                   errors: u64,
                   p: &Percentiles,
                   statuses: String| {
            let _ = writeln!(
                out,
                "{:<32} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                name,
                requests,
                errors,
                p.p50_ms,
                p.p90_ms,
                p.p99_ms,
                p.p99_9_ms,
                p.max_ms,
                statuses
            );
        };
        for (name, e) in &self.endpoints {
            let statuses = e
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            row(&mut out, name, e.requests, e.errors, &e.latency, statuses);
        }
        row(
            &mut out,
            "all",
            self.requests,
            self.errors,
            &self.all,
            String::new(),
        );
        let _ = writeln!(
            out,
            "\nshop: {} orders ({:.1}/s), {} payments ({:.1}/s)",
            self.shop.orders, self.shop.orders_per_s, self.shop.payments, self.shop.payments_per_s
        );
        let g = &self.generator;
        if g.waited_for_shopper > 0 || g.unsent > 0 || g.checkouts_skipped_for_mail_budget > 0 {
            let _ = writeln!(
                out,
                "generator: {} arrivals waited for an idle shopper (longest {:.1} ms), {} never sent, {} checkouts skipped (mail budget spent)",
                g.waited_for_shopper, g.max_shopper_wait_ms, g.unsent, g.checkouts_skipped_for_mail_budget
            );
        }
        if !self.error_samples.is_empty() {
            let _ = writeln!(out, "\nfirst errors:");
            for e in &self.error_samples {
                let _ = writeln!(out, "  {e}");
            }
        }
        let _ = writeln!(out, "\nconsistency:");
        for c in &self.consistency {
            let mark = match c.verdict {
                Verdict::Passed => "ok  ",
                Verdict::Failed => "FAIL",
                Verdict::NotChecked => "--  ",
            };
            let _ = writeln!(out, "  {mark} {:<7} {}", c.name, c.summary);
            for p in &c.problems {
                let _ = writeln!(out, "         - {p}");
            }
            for n in &c.notes {
                let _ = writeln!(out, "         note: {n}");
            }
        }
        let _ = writeln!(
            out,
            "\n{}",
            if self.passed {
                "PASSED: no request failed and every check that ran passed"
            } else {
                "FAILED: see the errors and checks above"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Recorder, Status};
    use std::time::{Duration, Instant};

    fn report(errors: u64, checks: Vec<Check>) -> Report {
        let start = Instant::now();
        let r = Recorder::new(start);
        r.record(
            "GET /products/",
            start,
            start + Duration::from_millis(3),
            Status::Http(200),
            false,
        );
        r.record(
            "GET /products/",
            start + Duration::from_millis(1200),
            start + Duration::from_millis(1210),
            Status::Http(500),
            true,
        );
        let (endpoints, seconds) = r.finish();
        let (endpoints, all, timeline) = summarize(&endpoints, &seconds);
        let mut rep = Report {
            base: "http://127.0.0.1:8080".into(),
            mode: "open",
            target_rate: Some(2.0),
            shoppers: 8,
            duration_s: 2.0,
            think_time: "0".into(),
            mix: "list=1".into(),
            session_auth: "token".into(),
            seed: 1,
            started_at: "2026-01-01T00:00:00Z".into(),
            setup: None,
            requests: 2,
            errors,
            achieved_rate: 1.0,
            endpoints,
            all,
            shop: ShopRates {
                orders: 0,
                payments: 0,
                orders_per_s: 0.0,
                payments_per_s: 0.0,
            },
            generator: Generator {
                waited_for_shopper: 0,
                max_shopper_wait_ms: 0.0,
                unsent: 0,
                checkouts_skipped_for_mail_budget: 0,
            },
            timeline,
            error_samples: vec![],
            consistency: checks,
            passed: false,
        };
        rep.judge();
        rep
    }

    fn check(verdict: Verdict) -> Check {
        Check {
            name: "mail",
            verdict,
            summary: "s".into(),
            problems: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn summary_and_timeline() {
        let r = report(0, vec![]);
        let e = &r.endpoints["GET /products/"];
        assert_eq!(e.requests, 2);
        assert_eq!(e.statuses["500"], 1);
        assert_eq!(r.timeline.len(), 2);
        assert_eq!(r.timeline[1].errors, 1);
        assert!((r.timeline[1].p99_ms - 10.0).abs() < 0.1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["endpoints"]["GET /products/"]["statuses"]["200"], 1);
        assert!(json["all"]["p99_9_ms"].is_number());
        assert!(r.text().contains("GET /products/"));
    }

    #[test]
    fn passes_only_without_errors_and_failed_checks() {
        assert!(report(0, vec![check(Verdict::Passed)]).passed);
        // Not checked is said, but does not fail the run.
        let r = report(0, vec![check(Verdict::NotChecked)]);
        assert!(r.passed);
        assert!(r.text().contains("--   mail"));
        assert!(!report(1, vec![check(Verdict::Passed)]).passed);
        assert!(!report(0, vec![check(Verdict::Failed)]).passed);
    }
}
