//! The service around the API: health, readiness and metrics, problem+json
//! 404 for unknown routes, 405 with `Allow` for a known route's other
//! methods.

use reqwest::StatusCode;

use crate::support::{problem, spawn_app};

#[tokio::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let resp = app.get("/nope").await;
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("x-request-id"));
    problem(resp).await;

    let resp = app
        .client
        .delete(app.url("/invoices"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = app.get("/invoices/inv_x/pay").await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = app
        .client
        .put(app.url("/invoices/inv_x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
}
