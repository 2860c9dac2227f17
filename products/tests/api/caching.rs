//! HTTP caching of catalog reads: a strong ETag on products, `304` for a
//! matching `If-None-Match`, a short public `Cache-Control`; and the
//! in-process read cache, which never hides this process's own writes and
//! hides another replica's only briefly.

use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::{problem, As, TestApp};

async fn get_if_none_match(app: &TestApp, path: &str, tags: &[&str]) -> Response {
    let mut req = app.request(Method::GET, path, &As::Anyone);
    for tag in tags {
        req = req.header("if-none-match", *tag);
    }
    req.send().await.unwrap()
}

fn etag_of(resp: &Response) -> String {
    resp.headers()["etag"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn etag_round_trip() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Cached").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());

    let first = app.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "public, max-age=30");
    let etag = etag_of(&first);
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "a strong ETag: {etag}"
    );
    assert_eq!(
        etag_of(&app.get(&path).await),
        etag,
        "stable while unchanged"
    );

    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for tags in [
        vec![etag.as_str()],
        vec!["*"],
        vec![weak.as_str()],
        vec![listed.as_str()],
        vec!["\"x\"", etag.as_str()],
    ] {
        let resp = get_if_none_match(&app, &path, &tags).await;
        assert_eq!(resp.status(), 304, "If-None-Match: {tags:?}");
        assert_eq!(etag_of(&resp), etag);
        assert_eq!(resp.headers()["cache-control"], "public, max-age=30");
        assert!(resp.bytes().await.unwrap().is_empty(), "a 304 has no body");
    }
    for tags in [vec!["\"stale\""], vec![&etag[1..etag.len() - 1]]] {
        let resp = get_if_none_match(&app, &path, &tags).await;
        assert_eq!(resp.status(), 200, "If-None-Match: {tags:?}");
        assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), p);
    }

    // A change makes the old tag stale.
    assert_eq!(
        app.put(&path, &As::Admin, &json!({"stock": 12}))
            .await
            .status(),
        200
    );
    let resp = get_if_none_match(&app, &path, &[etag.as_str()]).await;
    assert_eq!(resp.status(), 200);
    let new_etag = etag_of(&resp);
    assert_ne!(new_etag, etag);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["stock"], 12);
    assert_eq!(
        get_if_none_match(&app, &path, &[new_etag.as_str()])
            .await
            .status(),
        304
    );

    // A deleted product is 404 whatever the client has cached.
    assert_eq!(app.delete(&path, &As::Admin).await.status(), 204);
    let resp = get_if_none_match(&app, &path, &["*"]).await;
    assert!(
        resp.headers().get("cache-control").is_none(),
        "errors are not cacheable"
    );
    problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn lists_are_cacheable_too() {
    let app = TestApp::spawn().await;
    app.create_named("One").await;
    let resp = app.get("/products/?limit=5").await;
    assert_eq!(resp.headers()["cache-control"], "public, max-age=30");
    let etag = etag_of(&resp);
    assert_eq!(
        get_if_none_match(&app, "/products/?limit=5", &[etag.as_str()])
            .await
            .status(),
        304
    );
    app.create_named("Two").await;
    assert_eq!(
        get_if_none_match(&app, "/products/?limit=5", &[etag.as_str()])
            .await
            .status(),
        200
    );
    // Errors are not.
    let resp = app.get("/products/?limit=0").await;
    assert!(resp.headers().get("cache-control").is_none());
}

#[tokio::test]
async fn local_writes_are_visible_at_once_through_the_read_cache() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Fresh").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    for price in [1, 2, 3] {
        // Read twice so the second read is a cache hit if nothing changed.
        app.get(&path).await;
        app.list("?q=fresh").await;
        assert_eq!(
            app.put(&path, &As::Admin, &json!({"price_cents": price}))
                .await
                .status(),
            200
        );
        let now: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(now["price_cents"], price);
        assert_eq!(app.list("?q=fresh").await["items"][0]["price_cents"], price);
    }
    app.list("").await;
    app.create_named("Second").await;
    assert_eq!(app.list("").await["total"], 2);
    assert_eq!(app.delete(&path, &As::Admin).await.status(), 204);
    problem(app.get(&path).await, 404, "not_found").await;
    assert_eq!(app.list("").await["total"], 1);
}

#[tokio::test]
async fn another_replicas_writes_show_within_the_read_cache_ttl() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Shared").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    // Warm this replica's cache.
    assert_eq!(
        app.get(&path).await.json::<Value>().await.unwrap()["price_cents"],
        1000
    );
    assert_eq!(app.list("").await["items"][0]["price_cents"], 1000);

    let mut other = app.replica(Duration::ZERO).await;
    let resp = app
        .client
        .put(other.url(&path))
        .bearer_auth(app.admin_token())
        .json(&json!({"price_cents": 2000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The writer's replica, without a read cache, shows it at once.
    let there: Value = app
        .client
        .get(other.url(&path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(there["price_cents"], 2000);

    // This one within its TTL (a second); the deadline is generous for slow CI.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let product: Value = app.get(&path).await.json().await.unwrap();
        let listed = app.list("").await["items"][0]["price_cents"].clone();
        if product["price_cents"] == 2000 && listed == 2000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still stale: {product} / {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    other.stop().await;
}
