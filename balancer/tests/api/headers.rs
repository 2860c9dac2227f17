//! Headers on the way to the upstream: hop-by-hop ones never reach it, the
//! client's forwarding claims are replaced (or continued behind a trusted
//! front proxy), and `X-Request-Id` is kept or replaced when not sane.

use common::peers::TrustedPeers;
use serde_json::Value;

use crate::support::*;

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
