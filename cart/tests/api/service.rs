//! The service around the API: health, readiness and metrics endpoints,
//! 405 with `Allow` for a known path's other methods, 404 for unknown
//! paths.

use crate::support::{problem, shop};

#[tokio::test]
async fn health_routing_and_methods() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    assert_eq!(shop.get("/healthz", None).await.status(), 200);
    assert_eq!(shop.get("/readyz", None).await.status(), 200);
    assert_eq!(shop.get("/metrics", None).await.status(), 200);
    let resp = shop
        .get(&format!("/user/{uid}/cart/checkout"), Some(&token))
        .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = shop
        .delete(&format!("/user/{uid}/orders/"), Some(&token))
        .await;
    assert_eq!(resp.status(), 405);
    problem(shop.get("/nope", None).await, 404, "not_found").await;
    // The internal endpoint takes POST only.
    assert_eq!(
        shop.get("/internal/payments/webhook", None).await.status(),
        405
    );
}
