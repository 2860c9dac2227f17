//! Limits on what a client may send: bodies over the limit are 413
//! (declared or chunked), too many or too large headers 431, a client that
//! never finishes its headers is cut off, and connections beyond the cap
//! wait for a free slot.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde_json::Value;

use crate::support::*;

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
