//! Client mistakes are 4xx, never 5xx, with the real services behind the
//! real balancer (the outside audit's findings): a malformed chunked body
//! to stats through the balancer was a 502, a 50 KB products search a 500
//! (SQLite: "LIKE or GLOB pattern too complex"), and a body trickling into
//! a service port held the connection indefinitely.

use std::time::Duration;

use common::testing::{assert_closing_problem, trickle};

use crate::support::{Client, Shop};

const POST_LOG_CHUNKED: &str =
    "POST /log HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Sends `request` whole and returns the answer up to the server's close.
async fn send_raw(addr: std::net::SocketAddr, request: String) -> String {
    // Sent at once, then nothing more: `trickle` with an empty body.
    trickle(addr, &request, b"", Duration::ZERO, Duration::from_secs(10)).await
}

#[tokio::test]
async fn client_mistakes_are_4xx_through_the_balancer_and_at_the_services() {
    let shop = Shop::options()
        .services(&["products", "stats", "balancer"])
        .env("STATS_BODY_READ_TIMEOUT", "300ms")
        .env("BALANCER_BODY_READ_TIMEOUT", "300ms")
        .start()
        .await;
    let balancer = shop.ports.addr("balancer");

    // A malformed chunked body is the client's fault, not the stats service's.
    let overflow = format!("{POST_LOG_CHUNKED}ffffffffffffffffffffff\r\nx\r\n0\r\n\r\n");
    let extension = format!(
        "{POST_LOG_CHUNKED}2;{}\r\n{{}}\r\n0\r\n\r\n",
        "e".repeat(100 * 1024)
    );
    for request in [overflow, extension] {
        let answer = send_raw(balancer, request).await;
        assert_closing_problem(&answer, 400, "body_unreadable");
    }

    // A body trickling in, one byte every 100 ms: cut off with 408 at the
    // service's own port and at the balancer.
    let body = br#"{"action": "slowly"}"#;
    let head = format!(
        "POST /log HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for addr in [shop.ports.addr("stats"), balancer] {
        let every = Duration::from_millis(100);
        let answer = trickle(addr, &head, body, every, Duration::from_secs(5)).await;
        assert_closing_problem(&answer, 408, "request_timeout");
    }

    // Search terms are bounded: 422 naming q, and 414 past 8 KiB in all.
    let api = Client::new(shop.url(""));
    let resp = api
        .get(&format!("/products/?q={}", "a".repeat(201)), None)
        .await;
    let resp = resp.problem(422, "validation_failed");
    assert_eq!(resp.body["errors"][0]["field"], "q", "{}", resp.text);
    let resp = api
        .get(&format!("/products/?q={}", "a".repeat(50_000)), None)
        .await;
    resp.problem(414, "uri_too_long");
    let at_limit = api
        .get(&format!("/products/?q={}", "a".repeat(200)), None)
        .await;
    at_limit.expect(200);

    // The stats service is fine and was never blamed.
    api.get("/readyz", None).await.expect(200);
}
