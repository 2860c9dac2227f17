//! CORS: preflights answered by the balancer for configured origins only
//! (following the route table), and the CORS headers on ordinary answers
//! and the balancer's own errors for allowed origins.

use crate::support::*;

#[tokio::test]
async fn cors_preflights_are_answered_for_configured_origins_only() {
    let (shop, ups) = default_shop().await;
    let allowed = "http://localhost:5173";
    let resp = shop
        .http
        .request(reqwest::Method::OPTIONS, shop.url("/user/"))
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert_eq!(
        h["access-control-allow-headers"],
        "content-type, authorization"
    );
    assert!(h.contains_key("access-control-max-age"));
    assert!(h["vary"].to_str().unwrap().contains("Origin"));
    assert!(h.contains_key("x-request-id"));
    assert!(
        ups.iter().all(|u| u.state.total() == 0),
        "answered by the balancer"
    );

    // The preflight follows the route table for the announced method.
    let resp = shop
        .http
        .request(reqwest::Method::OPTIONS, shop.url("/log"))
        .header("origin", allowed)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Ordinary responses carry the CORS headers for allowed origins…
    let resp = shop
        .http
        .get(shop.url("/products/"))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], allowed);
    let expose = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        expose.contains("X-Request-Id") && expose.contains("Location"),
        "{expose}"
    );
    assert!(resp.headers()["vary"].to_str().unwrap().contains("Origin"));
    // …including the balancer's own errors, so the app can read them.
    let resp = shop
        .http
        .get(shop.url("/nope"))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["access-control-allow-origin"], allowed);

    // Others get nothing: no CORS headers, and their preflight is not
    // answered by the balancer.
    let evil = "http://evil.example";
    let resp = shop
        .http
        .get(shop.url("/products/"))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = shop
        .http
        .request(reqwest::Method::OPTIONS, shop.url("/user/"))
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert!(!resp.headers().contains_key("access-control-allow-methods"));
}
