//! Routing by the default table: every public path reaches the pool
//! docs/api.md names, unchanged; internal paths and unknown ones are 404
//! and never reach a service; dot segments are 400.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn the_default_table_routes_as_api_md_says() {
    let (shop, _ups) = default_shop().await;
    let cases = [
        ("GET", "/user/42/cart/", "cart"),
        ("POST", "/user/42/cart/checkout", "cart"),
        ("GET", "/user/42/orders/", "cart"),
        ("GET", "/user/42/orders/9", "cart"),
        ("POST", "/user/", "users"),
        ("POST", "/user/login", "users"),
        ("GET", "/user/42", "users"),
        ("DELETE", "/user/42", "users"),
        ("GET", "/product/7", "products"),
        ("GET", "/products/?q=tea&limit=5", "products"),
        ("POST", "/invoices", "payments-mock"),
        ("POST", "/invoices/abc/pay", "payments-mock"),
        ("POST", "/log", "stats"),
    ];
    for (method, path, want) in cases {
        let resp = shop
            .http
            .request(method.parse().unwrap(), shop.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
        assert_eq!(resp.headers()["x-upstream"], want, "{method} {path}");
        let echo: Value = resp.json().await.unwrap();
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(echo["path"], p, "the path reaches the upstream unchanged");
        if !q.is_empty() {
            assert_eq!(echo["query"], q);
        }
    }
    let hidden = [
        ("GET", "/log"),
        ("GET", "/log?from=2020-01-01T00:00:00Z"),
        ("GET", "/log/summary"),
        ("POST", "/log/summary"),
        ("POST", "/send_email/"),
        ("POST", "/send_email"),
        ("GET", "/internal/anything"),
        ("POST", "/internal/payments/webhook"),
        ("GET", "/users"),
        ("GET", "/users-foo"),
        ("GET", "/productz"),
        // These shops have no storefront_dir (storefront.rs tests one).
        ("GET", "/"),
        ("GET", "/nope"),
    ];
    for (method, path) in hidden {
        let resp = shop
            .http
            .request(method.parse().unwrap(), shop.url(path))
            .send()
            .await
            .unwrap();
        problem(resp, 404, "not_found").await;
    }
    for path in ["/user/../internal/x", "/user/%2e%2e/internal/x"] {
        let resp = raw(
            shop.balancer.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
    }
}

#[tokio::test]
async fn no_internal_request_ever_reaches_a_service() {
    let (shop, ups) = default_shop().await;
    for path in ["/internal/x", "/send_email/", "/log/summary"] {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let resp = shop
                .http
                .request(method.parse().unwrap(), shop.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "{method} {path}");
        }
    }
    let resp = shop.get("/log").await;
    assert_eq!(resp.status(), 404);
    for u in &ups {
        assert_eq!(u.state.total(), 0, "{} was reached", u.state.name);
    }
}
