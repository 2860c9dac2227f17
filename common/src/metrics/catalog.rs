//! Every metric the shop exports, with its type and help text: the
//! renderer describes them all at start, so each family on `/metrics` has
//! its `# HELP` and `# TYPE`, and docs/metrics.md documents exactly this
//! list (a test in `tests/metrics.rs` holds both to it).
//!
//! Names carry their unit (`_seconds`, `_bytes`) and counters end in
//! `_total`, as Prometheus' naming guide and `promtool check metrics` want.

/// A metric family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family.
#[derive(Clone, Copy, Debug)]
pub struct Doc {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn doc(name: &'static str, kind: Kind, help: &'static str) -> Doc {
    Doc { name, kind, help }
}

use Kind::{Counter, Gauge, Histogram};

/// The shop's metrics, by who records them.
pub const CATALOG: &[Doc] = &[
    // Every service (common).
    doc("http_requests_total", Counter, "Requests answered, by service, method, route pattern and status."),
    doc("http_request_duration_seconds", Histogram, "Time from a request's arrival to its answer, by service, method, route pattern and status."),
    doc("process_cpu_seconds_total", Counter, "User and system CPU time the process has used."),
    doc("process_resident_memory_bytes", Gauge, "Resident memory (RSS) of the process."),
    doc("process_virtual_memory_bytes", Gauge, "Virtual memory size of the process."),
    doc("process_open_fds", Gauge, "File descriptors the process has open (sockets included)."),
    doc("process_max_fds", Gauge, "The process's soft limit on open file descriptors."),
    doc("process_start_time_seconds", Gauge, "When the process started, in seconds since the Unix epoch."),
    doc("tokio_runtime_workers", Gauge, "Worker threads of the runtime that serves /metrics."),
    doc("tokio_runtime_alive_tasks", Gauge, "Tasks alive on the runtime that serves /metrics."),
    doc("tokio_runtime_global_queue_depth", Gauge, "Tasks waiting in the runtime's global queue for a worker."),
    doc("db_pool_connections", Gauge, "Database connections of the service's pool, by state (in_use, idle)."),
    doc("db_pool_max_connections", Gauge, "The most connections the service's database pool opens."),
    doc("outbox_delivered_total", Counter, "Outbox messages delivered (answered 2xx), by target."),
    doc("outbox_retries_total", Counter, "Outbox delivery attempts that failed and will be retried (receiver down, 5xx, timeout), by target."),
    doc("outbox_rejected_total", Counter, "Outbox messages the receiver refused for good (400, 413, 415, 422), kept undelivered, by target."),
    doc("outbox_pending_messages", Gauge, "Outbox messages not yet delivered nor rejected, by target (refreshed every few seconds)."),
    doc("outbox_oldest_pending_age_seconds", Gauge, "Age of the oldest outbox message not yet delivered, by target; 0 when none is pending."),
    // cart
    doc("cart_orders_created_total", Counter, "Orders created by a checkout (pending payment)."),
    doc("cart_orders_paid_total", Counter, "Orders marked paid, by who noticed the payment (webhook, poll)."),
    doc("cart_orders_abandoned_total", Counter, "Checkouts abandoned after their order was started, by reason."),
    // payments-mock
    doc("payments_invoices_created_total", Counter, "Invoices the payment provider created."),
    doc("payments_attempts_total", Counter, "Card payments tried, by outcome (paid, or the decline code)."),
    // mailer
    doc("mailer_mails_queued_total", Counter, "Mails accepted into the queue."),
    doc("mailer_rate_limited_total", Counter, "Mails refused because their recipient had too many lately."),
    doc("mailer_mails_sent_total", Counter, "Mails handed to the transport, by transport (smtp, file)."),
    doc("mailer_send_retries_total", Counter, "Send attempts that failed and will be retried."),
    doc("mailer_mails_failed_total", Counter, "Mails given up after their last attempt."),
    doc("mailer_queued_mails", Gauge, "Mails waiting to be sent (refreshed every few seconds)."),
    doc("mailer_oldest_queued_age_seconds", Gauge, "Age of the oldest mail waiting to be sent; 0 when none is."),
    // stats
    doc("stats_events_accepted_total", Counter, "Events accepted by POST /log and queued for the writer."),
    doc("stats_events_refused_total", Counter, "Events refused by POST /log (invalid)."),
    doc("stats_queue_full_waits_total", Counter, "Times a request waited because the writer's queue was full."),
    doc("stats_events_written_total", Counter, "Events written to the database."),
    doc("stats_events_duplicate_total", Counter, "Events dropped as repeats of ones already written."),
    doc("stats_events_lost_total", Counter, "Events lost because their batch could not be written."),
    doc("stats_batches_written_total", Counter, "Batches the writer wrote (events per batch = events written / batches)."),
    // balancer
    doc("balancer_requests_total", Counter, "Requests the balancer answered, by route, pool and status."),
    doc("balancer_request_duration_seconds", Histogram, "Time the balancer took to answer, upstream included, by route and pool."),
    doc("balancer_upstream_errors_total", Counter, "Failed attempts to reach an upstream, by pool and kind (connect, timeout, broken)."),
    doc("balancer_retries_total", Counter, "Requests sent to a second replica, by pool and reason."),
    doc("balancer_upstream_healthy", Gauge, "1 when a replica takes traffic, 0 when it is ejected, by pool and replica."),
    doc("balancer_upstream_ejections_total", Counter, "Times a replica was taken out of its pool, by pool, replica and cause (connect_error, health_check)."),
];

/// The entry for `name`.
pub fn find(name: &str) -> Option<&'static Doc> {
    CATALOG.iter().find(|d| d.name == name)
}

/// Tells the recorder every family's help text; metrics not yet recorded
/// stay absent from `/metrics` until they are.
pub(super) fn describe_all() {
    for d in CATALOG {
        match d.kind {
            Counter => metrics::describe_counter!(d.name, d.help),
            Gauge => metrics::describe_gauge!(d.name, d.help),
            Histogram => metrics::describe_histogram!(d.name, d.help),
        }
    }
}
