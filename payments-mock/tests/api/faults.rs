//! Fault injection: the failure knob answers 503 on invoices (not on health)
//! without using up idempotency keys, and the latency knob delays invoice
//! requests.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{card, problem, spawn_with, SERVER_KEY};

#[tokio::test]
async fn the_failure_knob_answers_503_on_invoices_but_not_on_health() {
    let app = spawn_with(|c| c.faults.failure_rate = 1.0).await;
    let resp = app.create(&json!({"amount_cents": 1})).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(problem(resp).await["code"], "service_unavailable");
    let resp = app
        .get(&format!("/invoices/inv_{}", uuid::Uuid::now_v7().simple()))
        .await;
    assert_eq!(resp.status(), 503);
    let resp = app.pay("inv_x", &card("4242424242424242")).await;
    assert_eq!(resp.status(), 503);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 0);
    // A failed request does not use up its idempotency key.
    let app = app.restart_with(|c| c.faults.failure_rate = 0.0).await;
    assert_eq!(
        app.create_as(Some(SERVER_KEY), Some("k"), &json!({"amount_cents": 1}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn the_latency_knob_delays_invoice_requests() {
    let app = spawn_with(|c| c.faults.latency_ms = (150, 150)).await;
    let started = Instant::now();
    assert_eq!(app.create(&json!({"amount_cents": 1})).await.status(), 201);
    // Only the lower bound: how much longer it takes is the machine's business.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}
