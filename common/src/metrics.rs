//! Prometheus metrics through the `metrics` facade and its Prometheus
//! exporter: one recorder per process, rendered at `/metrics` (every
//! service's, and the balancer's admin listener's).
//!
//! Rendering is by the book (`promtool check metrics` finds nothing): every
//! family is in [`catalog`] and described when the recorder is installed,
//! so each has `# HELP` and `# TYPE`; the process metrics from `/proc`
//! ([`process`]) and gauges read at scrape time (the database pool, the
//! runtime) are added at each render.

pub mod backlog;
pub mod catalog;
pub mod process;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::mutex::lock;

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
        catalog::describe_all();
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

/// Something read at each scrape (a pool's size), by name.
type Sampler = Box<dyn Fn() + Send + Sync>;

static SAMPLERS: Mutex<Vec<(&'static str, Sampler)>> = Mutex::new(Vec::new());

/// Runs `sample` before every render, in place of an earlier sampler of
/// the same `name`: a process has one database pool, and a test process
/// that opens many reports the latest.
pub fn sample_on_render(name: &'static str, sample: impl Fn() + Send + Sync + 'static) {
    let mut samplers = lock(&SAMPLERS);
    samplers.retain(|(n, _)| *n != name);
    samplers.push((name, Box::new(sample)));
}

/// Prometheus text for `/metrics`.
pub fn render() -> String {
    let handle = handle();
    sample_runtime();
    for (_, sample) in lock(&SAMPLERS).iter() {
        sample();
    }
    let mut text = handle.render();
    text.push_str(&process::render());
    text
}

/// The tokio runtime serving the scrape: its workers, live tasks and the
/// tasks queued for a worker (a saturated service shows a growing queue).
fn sample_runtime() {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let m = runtime.metrics();
    metrics::gauge!("tokio_runtime_workers").set(m.num_workers() as f64);
    metrics::gauge!("tokio_runtime_alive_tasks").set(m.num_alive_tasks() as f64);
    metrics::gauge!("tokio_runtime_global_queue_depth").set(m.global_queue_depth() as f64);
}

/// Makes counter `name` exist at 0 for each of `values` of `label` (or
/// unlabelled with no label) before its first event: a dashboard then
/// shows 0 rather than no data, and an alert on `increase(...) > 0` sees
/// the first event, which a series born at 1 would hide.
pub fn zero_counter(name: &'static str, label: Option<(&'static str, &[&'static str])>) {
    // Components start before their App installs the recorder; without
    // one, these would go nowhere.
    handle();
    match label {
        None => metrics::counter!(name).increment(0),
        Some((label, values)) => {
            for value in values {
                metrics::counter!(name, label => *value).increment(0);
            }
        }
    }
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
