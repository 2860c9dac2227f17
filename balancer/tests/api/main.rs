//! The balancer over real HTTP on loopback: test upstreams are small
//! servers in this process that echo, stream, hang, fail or die on purpose;
//! the balancer runs in-process on port 0 and is driven with reqwest, a
//! hyper client (for streaming uploads) or raw TCP (for exact headers).

mod client_faults;
mod connections;
mod storefront;
mod support;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::peers::TrustedPeers;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use support::*;
use tokio::io::AsyncWriteExt;

/// The default table with every pool pointed at its own echo upstream.
async fn default_shop() -> (Shop, Vec<Upstream>) {
    let names = ["users", "products", "cart", "payments-mock", "stats"];
    let mut ups = Vec::new();
    for n in names {
        ups.push(Upstream::spawn(n).await);
    }
    let mut text = balancer::routes::DEFAULT_TABLE.to_string();
    for (n, u) in names.iter().zip(&ups) {
        // Point each default pool at its test upstream.
        let default = match *n {
            "users" => "8001",
            "products" => "8002",
            "cart" => "8003",
            "payments-mock" => "8006",
            _ => "8005",
        };
        text = text.replace(&format!("http://127.0.0.1:{default}"), &u.url());
    }
    let shop = spawn_balancer(&text, |_| {}).await;
    (shop, ups)
}

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

#[tokio::test]
async fn the_balancer_serves_its_own_health_readiness_and_metrics() {
    let (shop, _ups) = default_shop().await;
    let resp = shop.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let ready = shop.readyz().await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["all_pools_healthy"], true);
    for pool in ["users", "products", "cart", "payments-mock", "stats"] {
        assert_eq!(ready["pools"][pool]["healthy"], 1, "{ready}");
    }
    shop.post("/log", "{}").await;
    let resp = shop.admin_get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("balancer_requests_total"), "{text}");
    assert!(text.contains("route=\"log\""), "{text}");
    assert!(text.contains("balancer_request_duration_seconds"), "{text}");
    assert_eq!(shop.admin_get("/healthz").await.status(), 200);
}

/// The audit's finding: the public port served `/metrics` and a `/readyz`
/// listing every upstream replica's address. Both are on the admin
/// listener now; the public `/readyz` says ready or not, nothing more.
#[tokio::test]
async fn the_public_port_shows_no_upstream_addresses_or_metrics() {
    let (shop, ups) = default_shop().await;
    let resp = shop.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::json!({"status": "ready"})
    );
    for up in &ups {
        let port = up.addr().port().to_string();
        assert!(
            !text.contains(&port),
            "an upstream's port is public: {text}"
        );
    }
    for method in ["GET", "HEAD", "POST"] {
        let resp = shop
            .http
            .request(method.parse().unwrap(), shop.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} /metrics");
    }
    problem(shop.get("/metrics").await, 404, "not_found").await;
    // Even a table that forwards everything does not forward it.
    let up = Upstream::spawn("catch-all").await;
    let catch_all = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    problem(catch_all.get("/metrics").await, 404, "not_found").await;
    assert_eq!(up.state.total(), 0);

    // The admin listener has what the public port no longer shows, and
    // nothing else.
    let ready = shop.readyz().await;
    let addr = ready["pools"]["users"]["replicas"][0]["addr"].clone();
    assert_eq!(addr, ups[0].addr().to_string(), "{ready}");
    problem(shop.admin_get("/user/1").await, 404, "not_found").await;
    for path in ["/metrics", "/readyz", "/healthz"] {
        let resp = shop.http.post(shop.admin_url(path)).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], "GET, HEAD", "{path}");
        problem(resp, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn hop_by_hop_headers_never_reach_the_upstream_and_forwarding_headers_do() {
    let up = Upstream::spawn("echo").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    let resp = raw(
        shop.balancer.addr,
        "GET /headers HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Connection: close, X-Secret\r\n\
         X-Secret: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Upgrade: websocket\r\n\
         Proxy-Authorization: Basic eDp5\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-Forwarded-For: 203.0.113.9\r\n\
         X-Forwarded-For: 198.51.100.1\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: evil.example\r\n\
         Forwarded: for=203.0.113.9;proto=https\r\n\
         X-Real-IP: 203.0.113.9\r\n\
         X-Request-Id: trace-me-123\r\n\
         X-Kept: yes\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("x-request-id: trace-me-123"), "{resp}");
    assert!(
        !lower.contains("x-up-secret"),
        "response hop-by-hop leaked: {resp}"
    );
    let echo = raw_json(&resp);
    let h = &echo["headers"];
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    if let Some(c) = h.get("connection") {
        assert!(
            !c.to_string().to_ascii_lowercase().contains("x-secret"),
            "{c}"
        );
    }
    assert_eq!(h["x-kept"][0], "yes");
    // The client's forwarding claims are replaced (it is no trusted proxy).
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(h["x-forwarded-host"], serde_json::json!(["shop.example"]));
    for gone in ["forwarded", "x-real-ip"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(h["host"][0], "shop.example", "the original Host is kept");
    assert_eq!(h["x-request-id"][0], "trace-me-123");

    // An id that is not sane is replaced, and the new one travels too.
    let resp = shop
        .http
        .get(shop.url("/x"))
        .header("x-request-id", "has spaces in it")
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 32);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["headers"]["x-request-id"][0], rid.as_str());
    assert_eq!(echo["headers"]["x-forwarded-for"][0], "127.0.0.1");
}

/// Behind a front proxy named in `trusted_proxies` the chain goes on: the
/// proxy's `X-Forwarded-For` gets the peer appended and its scheme and
/// host are kept. Only the connecting peer's address decides.
#[tokio::test]
async fn a_trusted_front_proxy_s_forwarding_headers_are_continued() {
    let up = Upstream::spawn("echo").await;
    let request = "GET /headers HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Connection: close\r\n\
         X-Forwarded-For: 203.0.113.9\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: www.shop.example\r\n\
         X-Real-IP: 203.0.113.9\r\n\r\n";
    // What the upstream saw, through a balancer trusting `trusted`.
    let seen = |trusted: &'static str| {
        let url = up.url();
        async move {
            let shop = spawn_balancer(&table("", &[url]), |c| {
                c.trusted_proxies = TrustedPeers::literal(vec![trusted.parse().unwrap()])
            })
            .await;
            raw_json(&raw(shop.balancer.addr, request).await)["headers"].clone()
        }
    };
    let h = &seen("127.0.0.0/8").await;
    assert_eq!(h["x-forwarded-for"][0], "203.0.113.9, 127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-forwarded-host"][0], "www.shop.example");
    assert_eq!(h["x-real-ip"][0], "203.0.113.9");
    // Trusting another address trusts nobody on this connection.
    let h = &seen("192.0.2.0/24").await;
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], "shop.example");
    assert!(h.get("x-real-ip").is_none(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_upload_streams_through() {
    let up = Upstream::spawn("sink").await;
    let extra = "[[route]]\nprefix = \"/upload\"\npool = \"main\"\nmax_body = \"200MiB\"\n";
    let shop = spawn_balancer(&table(extra, &[up.url()]), |_| {}).await;
    const TOTAL: usize = 100 * MIB;
    let state = up.state.clone();
    // The body is produced lazily; after the first MiB the producer waits
    // until the upstream has received that MiB. A balancer that buffered
    // the body before forwarding it would never let that happen.
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let stream = futures::stream::unfold((0usize, chunk), move |(sent, chunk)| {
        let state = state.clone();
        async move {
            if sent >= TOTAL {
                return None;
            }
            if sent == MIB {
                tokio::time::timeout(Duration::from_secs(20), state.got_first_mib.notified())
                    .await
                    .expect("the upstream got the first MiB before the rest was produced");
            }
            let n = chunk.len().min(TOTAL - sent);
            Some((
                Ok::<_, Infallible>(Frame::data(chunk.slice(..n))),
                (sent + n, chunk),
            ))
        }
    });
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = http::Request::post(shop.url("/upload"))
        .body(StreamBody::new(Box::pin(stream)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req))
        .await
        .expect("upload finished")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body_len"], TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_download_streams_through() {
    let up = Upstream::spawn("source").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    const TOTAL: usize = 100 * MIB;
    let mut resp = shop.get(&format!("/download?bytes={TOTAL}")).await;
    assert_eq!(resp.status(), 200);
    let mut got = 0usize;
    let mut opened = false;
    // The upstream sends one MiB and then waits for this client to have
    // it: a balancer that collected the whole response first would stall.
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
        .await
        .expect("the first MiB arrived before the upstream produced the rest")
        .unwrap()
    {
        got += chunk.len();
        if !opened && got >= MIB {
            opened = true;
            up.state.gate.notify_one();
        }
    }
    assert_eq!(got, TOTAL);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let up = Upstream::spawn("echo").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |c| c.max_body = 1024).await;
    // A declared length over the limit is refused before anything is sent.
    let resp = shop.post("/big", &"x".repeat(2048)).await;
    problem(resp, 413, "payload_too_large").await;
    assert_eq!(up.state.total(), 0, "the upstream never saw it");

    // A chunked body is cut off as it passes the limit.
    let chunks = futures::stream::iter(
        (0..4).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 1000])))),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = http::Request::post(shop.url("/chunked"))
        .body(StreamBody::new(Box::pin(chunks)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // At the limit it passes.
    let resp = shop.post("/ok", &"x".repeat(1024)).await;
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["body_len"], 1024);
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431() {
    let up = Upstream::spawn("echo").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    let mut req = shop.http.get(shop.url("/x"));
    for i in 0..80 {
        req = req.header(format!("x-h-{i}"), "1");
    }
    problem(
        req.send().await.unwrap(),
        431,
        "request_header_fields_too_large",
    )
    .await;
    let resp = shop
        .http
        .get(shop.url("/x"))
        .header("x-big", "y".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    problem(resp, 431, "request_header_fields_too_large").await;
    assert_eq!(up.state.total(), 0);
    assert_eq!(shop.get("/x").await.status(), 200);
}

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

#[tokio::test]
async fn a_killed_replica_is_failed_over_for_every_method() {
    let a = Upstream::spawn("a").await;
    let b = Upstream::spawn("b").await;
    let a_addr = a.addr();
    let shop = spawn_balancer(&table("", &[a.url(), b.url()]), |c| {
        c.health.interval = Duration::from_secs(3600);
    })
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let resp = shop.get("/x").await;
        assert_eq!(resp.status(), 200);
        seen.insert(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "round-robin reaches both replicas");

    a.server.stop().await;
    for i in 0..6 {
        let resp = shop.get(&format!("/get/{i}")).await;
        assert_eq!(resp.status(), 200, "GET {i}");
        assert_eq!(resp.headers()["x-upstream"], "b");
    }
    // A connect failure means nothing was sent: POSTs with bodies are
    // retried on the other replica too.
    for i in 0..6 {
        let resp = shop.post(&format!("/post/{i}"), "{\"n\":1}").await;
        assert_eq!(resp.status(), 200, "POST {i}");
        let echo: Value = resp.json().await.unwrap();
        assert_eq!(echo["upstream"], "b");
        assert_eq!(echo["body_len"], 7);
    }
    shop.wait_health("main", a_addr, false).await;
}

#[tokio::test]
async fn health_checks_eject_and_readmit_a_replica() {
    let a = Upstream::spawn("a").await;
    let b = Upstream::spawn("b").await;
    let shop = spawn_balancer(&table("", &[a.url(), b.url()]), |_| {}).await;
    a.state.healthy.store(false, Ordering::SeqCst);
    shop.wait_health("main", a.addr(), false).await;
    let before = a.state.total();
    for _ in 0..6 {
        let resp = shop.get("/x").await;
        assert_eq!(resp.headers()["x-upstream"], "b");
    }
    assert_eq!(
        a.state.total(),
        before,
        "an ejected replica gets no traffic"
    );
    // The admin listener's metrics say so: replica addresses are this
    // test's own, so the counts are exact.
    let a_is = format!("replica=\"{}\"", a.addr());
    let b_is = format!("replica=\"{}\"", b.addr());
    let metrics = shop.admin_get("/metrics").await.text().await.unwrap();
    let metric = |name, labels: &[&str]| common::testing::metric(&metrics, name, labels);
    assert_eq!(metric("balancer_upstream_healthy", &[&a_is]), Some(0.0));
    assert_eq!(metric("balancer_upstream_healthy", &[&b_is]), Some(1.0));
    let ejections = "balancer_upstream_ejections_total";
    assert_eq!(
        metric(ejections, &[&a_is, "cause=\"health_check\""]),
        Some(1.0)
    );
    assert_eq!(
        metric(ejections, &[&a_is, "cause=\"connect_error\""]),
        Some(0.0)
    );

    // Both out: 503 with Retry-After, until one comes back.
    b.state.healthy.store(false, Ordering::SeqCst);
    shop.wait_health("main", b.addr(), false).await;
    let resp = shop.get("/x").await;
    assert!(resp.headers().contains_key("retry-after"));
    problem(resp, 503, "no_healthy_upstream").await;
    assert_eq!(
        shop.get("/readyz").await.status(),
        200,
        "readiness does not flap"
    );
    assert_eq!(shop.readyz().await["all_pools_healthy"], false);

    a.state.healthy.store(true, Ordering::SeqCst);
    shop.wait_health("main", a.addr(), true).await;
    let resp = shop.get("/x").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    let metrics = shop.admin_get("/metrics").await.text().await.unwrap();
    assert_eq!(
        common::testing::metric(&metrics, "balancer_upstream_healthy", &[&a_is]),
        Some(1.0)
    );
}

#[tokio::test]
async fn readiness_can_require_every_pool() {
    let a = Upstream::spawn("a").await;
    let shop = spawn_balancer(&table("", &[a.url()]), |c| {
        c.ready_requires_all_pools = true
    })
    .await;
    assert_eq!(shop.get("/readyz").await.status(), 200);
    a.state.healthy.store(false, Ordering::SeqCst);
    shop.wait_health("main", a.addr(), false).await;
    let resp = shop.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    // Not problem+json: a load balancer reads the status, a person the word.
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "not_ready"}));
    let resp = shop.admin_get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["pools"]["main"]["healthy"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upstream_is_504_within_the_timeout_and_blocks_nothing_else() {
    let slow = Upstream::spawn("slow").await;
    let fast = Upstream::spawn("fast").await;
    let text = format!(
        "[[route]]\nprefix = \"/slow\"\npool = \"slow\"\ntimeout = \"1s\"\n\
         [[route]]\nprefix = \"/\"\npool = \"fast\"\n\
         [pools.slow]\nupstreams = [{:?}]\n[pools.fast]\nupstreams = [{:?}]\n",
        slow.url(),
        fast.url()
    );
    let shop = spawn_balancer(&text, |_| {}).await;
    let started = Instant::now();
    let hanging: Vec<_> = (0..3)
        .map(|i| {
            let req = shop.http.get(shop.url(&format!("/slow/{i}"))).send();
            tokio::spawn(req)
        })
        .collect();
    // While those hang, the other route (and the same upstream's other
    // paths, over new connections) keep answering.
    for i in 0..5 {
        let resp = shop.get(&format!("/fast/{i}")).await;
        assert_eq!(resp.status(), 200);
    }
    for h in hanging {
        let resp = h.await.unwrap().unwrap();
        problem(resp, 504, "upstream_timeout").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "504 came after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_get_that_broke_is_retried_and_a_post_that_reached_an_upstream_never_is() {
    let resetter = Resetter::spawn().await;
    let good = Upstream::spawn("good").await;
    let shop = spawn_balancer(&table("", &[resetter.url(), good.url()]), |_| {}).await;
    for i in 0..6 {
        let resp = shop.get(&format!("/item/{i}")).await;
        assert_eq!(
            resp.status(),
            200,
            "GET {i} was retried on the good replica"
        );
        assert_eq!(resp.headers()["x-upstream"], "good");
    }
    assert!(
        resetter.count("GET") >= 1,
        "some GETs hit the resetting replica first"
    );

    let mut failed = 0;
    for i in 0..6 {
        let resp = shop.post(&format!("/pay/{i}"), "{\"amount\":1}").await;
        match resp.status().as_u16() {
            200 => {}
            502 => {
                failed += 1;
                problem(resp, 502, "bad_gateway").await;
            }
            other => panic!("POST {i}: unexpected {other}"),
        }
    }
    assert!(failed >= 1, "some POSTs reached the resetting replica");
    assert_eq!(
        resetter.count("POST"),
        failed,
        "each failed POST was sent exactly once"
    );
    assert_eq!(
        good.state.count("POST"),
        6 - failed,
        "and never repeated elsewhere"
    );
}

#[tokio::test]
async fn nothing_reachable_is_502_then_503_once_ejected() {
    let dead = closed_port().await;
    let shop = spawn_balancer(&table("", &[dead]), |c| {
        c.health.interval = Duration::from_secs(3600);
    })
    .await;
    let resp = shop.post("/x", "{}").await;
    problem(resp, 502, "upstream_unreachable").await;
    let resp = shop.get("/x").await;
    problem(resp, 503, "no_healthy_upstream").await;
}

#[tokio::test]
async fn a_dead_replica_costs_a_post_nothing() {
    let dead = closed_port().await;
    let good = Upstream::spawn("good").await;
    let shop = spawn_balancer(&table("", &[dead, good.url()]), |c| {
        c.health.interval = Duration::from_secs(3600);
    })
    .await;
    for i in 0..4 {
        let resp = shop.post(&format!("/p/{i}"), "{\"k\":\"v\"}").await;
        assert_eq!(resp.status(), 200, "POST {i}");
    }
    assert_eq!(good.state.count("POST"), 4);
}

/// The binary as the launcher and docker-compose run it: the admin
/// endpoints on loopback at the public port + 1, not on the public port.
#[tokio::test]
async fn the_binary_serves_its_admin_endpoints_on_the_next_port() {
    let public = two_free_ports();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_balancer"))
        .args(["--listen", &format!("127.0.0.1:{public}"), "--workers", "1"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = format!("http://127.0.0.1:{}", public + 1);
    let mut metrics = None;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{admin}/metrics")).send().await {
            metrics = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = metrics.expect("the admin listener answers");
    assert_eq!(metrics.status(), 200);
    let json = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await }
    };
    let ready = json(format!("{admin}/readyz")).await.unwrap();
    assert!(ready["pools"]["users"].is_object(), "{ready}");
    let public = format!("http://127.0.0.1:{public}");
    let resp = http.get(format!("{public}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let ready = json(format!("{public}/readyz")).await.unwrap();
    assert_eq!(ready, serde_json::json!({"status": "ready"}));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A free port whose successor is free too. Both are closed again before
/// the balancer binds them: a small race, as with any port handed to a
/// child process.
fn two_free_ports() -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports");
}

#[test]
fn check_config_accepts_good_tables_and_names_the_bad_rule() {
    let bin = env!("CARGO_BIN_EXE_balancer");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.toml");
    let out = std::process::Command::new(bin)
        .args(["check-config", shipped])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[route]]\nprefix = \"/a\"\npool = \"a\"\n\n[[route]]\nregex = \"^/b(\"\npool = \"a\"\n\n[pools.a]\nupstreams = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("route #2"), "{stderr}");
    assert!(stderr.contains("regex"), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let out = std::process::Command::new(bin)
        .args(["check-config", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_hostname_upstream_becomes_one_replica_per_address() {
    let up = Upstream::spawn("named").await;
    let url = format!("http://localhost:{}", up.addr().port());
    let shop = spawn_balancer(&table("", std::slice::from_ref(&url)), |_| {}).await;
    let resp = shop.get("/x").await;
    assert_eq!(resp.status(), 200);
    let ready = shop.readyz().await;
    let replicas = ready["pools"]["main"]["replicas"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!replicas.is_empty(), "{ready}");
    assert!(
        replicas.iter().all(|r| r["upstream"] == url.as_str()),
        "{ready}"
    );
    assert!(
        replicas
            .iter()
            .any(|r| r["addr"] == format!("127.0.0.1:{}", up.addr().port())),
        "{ready}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let up = Upstream::spawn("echo").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |c| {
        c.server.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut sock = tokio::net::TcpStream::connect(shop.balancer.addr)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    sock.write_all(b"GET /x HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out))
        .await
        .expect("the balancer closed the slow connection")
        .ok();
    assert_eq!(up.state.total(), 0);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let up = Upstream::spawn("echo").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |c| {
        c.server.max_connections = 1;
    })
    .await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The first connection holds the only slot (keep-alive, idle).
    let mut first = tokio::net::TcpStream::connect(shop.balancer.addr)
        .await
        .unwrap();
    first
        .write_all(b"GET /one HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second is accepted by the kernel but not served…
    let second = tokio::spawn(raw(
        shop.balancer.addr,
        "GET /two HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "served beyond the connection cap");
    // …until the first one goes away.
    drop(first);
    let resp = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn a_chunked_body_with_a_conflicting_length_is_never_framed_by_the_length() {
    let up = Upstream::spawn("echo").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    let resp = raw(
        shop.balancer.addr,
        "POST /x HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
         Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         b\r\nhello world\r\n0\r\n\r\n",
    )
    .await;
    // Either refused outright or forwarded with chunked framing: the
    // upstream must never see a 5-byte body and a smuggled remainder.
    if resp.starts_with("HTTP/1.1 200") {
        let echo = raw_json(&resp);
        assert_eq!(echo["body_len"], 11, "{resp}");
        assert!(echo["headers"].get("content-length").is_none(), "{resp}");
    } else {
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    }
    assert!(up.state.total() <= 1);
}

/// An upstream that answers (401) on the headers alone and then closes, as
/// hyper does when a handler drops the body unread: the balancer relayed
/// the 401, then lost the upstream connection and with it the client's
/// unread body, and hyper closed the client connection without having said
/// so. A keep-alive client then sends its next request into a closing
/// socket (a reset, or a 502 behind another proxy). RFC 9112 §9.6: say
/// `Connection: close`.
///
/// The 256 KiB body is announced but withheld, as in the e2e probe: sent in
/// full, the upstream's close can break the balancer's upload before it
/// reads the 401 (a 502 that is the upstream's doing, not the bug here).
#[tokio::test]
async fn an_upstream_answer_before_the_body_was_read_announces_the_close() {
    const BODY: usize = 256 * 1024;
    let up = Upstream::spawn("early").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    let addr = shop.balancer.addr;
    let head = format!(
        "POST /early/login HTTP/1.1\r\nHost: shop\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {BODY}\r\n\r\n"
    );
    // The silent close is a race: one clean try proves little.
    for i in 0..25 {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(head.as_bytes()).await.unwrap();
        let answer = read_head(&mut sock).await;
        assert!(answer.starts_with("http/1.1 401"), "try {i}: {answer}");
        assert!(announces_close(&answer), "try {i}: {answer}");
        // The broken upstream connection is not reused: the next request,
        // with a body the upstream reads, is answered normally.
        let resp = shop.post("/echo", &"x".repeat(1024)).await;
        assert_eq!(resp.status(), 200, "try {i}");
        assert!(!resp.headers().contains_key("connection"), "try {i}");
    }
}

/// The balancer's own early answers leave a request body unread just as an
/// upstream's do, so they announce the close too; answers to requests whose
/// body was read (or that had none) keep the connection.
#[tokio::test]
async fn the_balancers_own_answers_to_an_unread_body_announce_the_close() {
    let (shop, ups) = default_shop().await;
    let addr = shop.balancer.addr;
    let cases = [
        ("POST /nope", "404"),
        ("POST /internal/payments/webhook", "404"),
        ("TRACE /user/42", "405"),
        ("POST /user/../internal/x", "400"),
        ("POST /healthz", "405"),
    ];
    for (line, status) in cases {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!("{line} HTTP/1.1\r\nHost: shop\r\nContent-Length: 20\r\n\r\n");
        sock.write_all(head.as_bytes()).await.unwrap();
        let answer = read_head(&mut sock).await;
        assert!(
            answer.starts_with(&format!("http/1.1 {status}")),
            "{line}: {answer}"
        );
        assert!(announces_close(&answer), "{line}: {answer}");
    }
    // Refused on its declared length: the body is never read.
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"POST /log HTTP/1.1\r\nHost: shop\r\nContent-Length: 999999999999\r\n\r\n")
        .await
        .unwrap();
    let answer = read_head(&mut sock).await;
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(announces_close(&answer), "413: {answer}");
    assert_eq!(ups[4].state.total(), 0, "the stats upstream never saw it");

    // A body the upstream read, then a bodiless request: both on one
    // connection, which stays open.
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"POST /log HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let answer = read_head(&mut sock).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!announces_close(&answer), "a read body: {answer}");
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let answer = read_head(&mut sock).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!announces_close(&answer), "no body: {answer}");
}

/// `/healthz`, `/readyz` and `/openapi.json` are known paths:
/// another method is 405 with `Allow`, as docs/api.md says for every known path,
/// not the 404 of an unknown one.
#[tokio::test]
async fn the_balancers_own_paths_answer_405_to_other_methods() {
    let (shop, ups) = default_shop().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "QUERY"] {
            let resp = shop
                .http
                .request(method.parse().unwrap(), shop.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.headers().get("allow").map(|v| v.to_str().unwrap()),
                Some("GET, HEAD"),
                "{method} {path}"
            );
            problem(resp, 405, "method_not_allowed").await;
        }
        for method in ["GET", "HEAD"] {
            let resp = shop
                .http
                .request(method.parse().unwrap(), shop.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{method} {path}");
        }
    }
    for up in &ups {
        assert_eq!(up.state.total(), 0, "{} saw a request", up.state.name);
    }
}

/// Each worker tallies its requests and adds them to the shared metrics
/// in batches; a scrape on the admin listener must still count every
/// request of every worker, exactly once (and a second scrape no more).
#[tokio::test]
async fn metrics_count_every_workers_requests_exactly() {
    let up = Upstream::spawn("tally").await;
    let text = format!(
        "[[route]]\nname = \"tally-check\"\nprefix = \"/\"\npool = \"main\"\n\n[pools.main]\nupstreams = [{:?}]\n",
        up.url()
    );
    let table = balancer::routes::Table::parse(&text).unwrap();
    let config = balancer::config::BalancerConfig::for_tests(table);
    let options = config.server.clone();
    let b = balancer::Balancer::start(config).await;
    let (first, second) = (b.proxy(), b.proxy());
    let (options2, options3) = (options.clone(), options.clone());
    let one =
        common::testing::spawn(move |l, s| balancer::serve_worker(first, l, options, s)).await;
    let two =
        common::testing::spawn(move |l, s| balancer::serve_worker(second, l, options2, s)).await;
    let shared = b.shared.clone();
    let admin =
        common::testing::spawn(move |l, s| balancer::admin::serve_admin(shared, l, options3, s))
            .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // More than one batch on the first worker, less than one on the
    // second: both the batches already added and the pending rest count.
    let batch = balancer::metrics::FLUSH_AT;
    let (on_one, on_two) = (batch + 44, 5);
    for (worker, n) in [(&one, on_one), (&two, on_two)] {
        for _ in 0..n {
            let resp = http.get(worker.url("/x")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    let total = on_one + on_two;
    for _ in 0..2 {
        let text = common::testing::get_text(&http, &admin.url("/metrics")).await;
        let value = |prefix: &str| -> Option<String> {
            text.lines()
                .find(|l| l.starts_with(prefix) && l.contains("route=\"tally-check\""))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(
            value("balancer_requests_total{").as_deref(),
            Some(total.to_string().as_str()),
            "{text}"
        );
        assert_eq!(
            value("balancer_request_duration_seconds_count{").as_deref(),
            Some(total.to_string().as_str()),
            "{text}"
        );
    }
    assert_eq!(up.state.total(), total);
    one.stop().await;
    two.stop().await;
    admin.stop().await;
    b.stop_background().await;
}
