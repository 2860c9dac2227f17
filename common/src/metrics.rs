//! Prometheus metrics through the `metrics` facade and its Prometheus
//! exporter: one recorder per process, rendered at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from a fast cache hit to a slow argon2 login.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
            .expect("bucket list is not empty")
            .install_recorder()
            .expect("only this function installs a metrics recorder");
        let upkeep = handle.clone();
        // Histograms need periodic upkeep to drain their buffers.
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawning a thread at start-up");
        handle
    })
}

/// Prometheus text for `/metrics`.
pub fn render() -> String {
    handle().render()
}

/// Records one served request.
pub fn record_request(
    service: &'static str,
    method: &str,
    route: &'static str,
    status: u16,
    seconds: f64,
) {
    let labels = [
        ("service", service.to_string()),
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(seconds);
}
