//! The HTTP-level errors of docs/api.md on the products paths: 400, 405, 413,
//! 414, 415, 422 for unbounded query parameters, unknown paths, and the
//! built-in health endpoints.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{invalid_fields, problem, As, TestApp};

#[tokio::test]
async fn malformed_json_is_400_on_create_and_update() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Target").await;
    let item = format!("/product/{}", p["id"].as_str().unwrap());
    for (method, path) in [(Method::POST, "/product/"), (Method::PUT, item.as_str())] {
        for body in ["{\"name\": ", "", "{'name': 'x'}", "nul\u{0}"] {
            let resp = app
                .request(method.clone(), path, &As::Admin)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            problem(resp, 400, "malformed_json").await;
        }
    }
    assert_eq!(app.list("").await["items"][0], p);
}

#[tokio::test]
async fn another_content_type_is_415() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Target").await;
    let item = format!("/product/{}", p["id"].as_str().unwrap());
    let json = json!({"name": "x", "description": "d", "price_cents": 1}).to_string();
    for (method, path) in [(Method::POST, "/product/"), (Method::PUT, item.as_str())] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let mut req = app
                .request(method.clone(), path, &As::Admin)
                .body(json.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            problem(req.send().await.unwrap(), 415, "unsupported_media_type").await;
        }
    }
    assert_eq!(app.list("").await["total"], 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Target").await;
    let item = format!("/product/{}", p["id"].as_str().unwrap());
    // Valid JSON, just too big: 1 MiB of description plus the rest.
    let big = json!({"name": "x", "description": "d".repeat(1024 * 1024), "price_cents": 1});
    for (method, path) in [(Method::POST, "/product/"), (Method::PUT, item.as_str())] {
        let resp = app
            .request(method, path, &As::Admin)
            .json(&big)
            .send()
            .await
            .unwrap();
        problem(resp, 413, "payload_too_large").await;
    }
}

#[tokio::test]
async fn a_known_path_with_the_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Target").await;
    let item = format!("/product/{}", p["id"].as_str().unwrap());
    let cases = [
        (Method::PATCH, item.as_str(), "GET, PUT, DELETE, HEAD"),
        (Method::POST, item.as_str(), "GET, PUT, DELETE, HEAD"),
        (Method::GET, "/product/", "POST"),
        (Method::DELETE, "/products/", "GET, HEAD"),
        (Method::POST, "/products/", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let resp = app
            .request(method.clone(), path, &As::Admin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        problem(resp, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = TestApp::spawn().await;
    for path in ["/", "/productz", "/products/extra/segments", "/product/a/b"] {
        problem(app.get(path).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.list("").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("/products/"), "{metrics}");

    let resp = app
        .request(Method::GET, "/products/", &As::Anyone)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let resp = app.get("/product/nope").await;
    assert!(!resp.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn a_search_term_over_200_characters_is_422_naming_q() {
    let app = TestApp::spawn().await;
    app.create_named("Lamp").await;
    // 200 characters is the bound, counted as characters, not bytes.
    let at_bound = "%C3%A9".repeat(200);
    let resp = app.get(&format!("/products/?q={at_bound}")).await;
    assert_eq!(resp.status(), 200);
    invalid_fields(app.get(&format!("/products/?q={at_bound}a")).await, &["q"]).await;
    // Wildcards count as characters too.
    let body = invalid_fields(
        app.get(&format!("/products/?q={}", "%25".repeat(2000)))
            .await,
        &["q"],
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("200"), "{body}");
    // 50 KB: past the 8 KiB bound on the whole path and query, 414.
    let resp = app
        .get(&format!("/products/?q={}", "a".repeat(50_000)))
        .await;
    problem(resp, 414, "uri_too_long").await;
}

#[tokio::test]
async fn paging_parameters_past_their_range_are_422_never_500() {
    let app = TestApp::spawn().await;
    app.create_named("Lamp").await;
    for (query, field) in [
        ("limit=99999999999999999999", "limit"),
        ("offset=99999999999999999999", "offset"),
        ("limit=-1", "limit"),
        ("offset=-9223372036854775808", "offset"),
    ] {
        invalid_fields(app.get(&format!("/products/?{query}")).await, &[field]).await;
    }
    // The largest offset there is: an empty page, not an overflow.
    let page = app.list(&format!("?offset={}", i64::MAX)).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["total"], 1);
    let page = app.list(&format!("?q=lamp&offset={}", i64::MAX)).await;
    assert_eq!(page["total"], 1);
}
