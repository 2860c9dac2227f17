//! A client's broken or slow request body is the client's fault: the
//! balancer answers 400 or 408 itself, aborts the upstream exchange, and
//! never reports it as the upstream failing (502) or timing out (504). An
//! overlong path and query is refused before it goes anywhere (414).

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::testing::{assert_closing_problem, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A chunked `POST` head, for a body written by hand.
const CHUNKED_HEAD: &str =
    "POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Everything to `url`, in a pool of its own: the metrics are the whole
/// process's, and this pool's must show no upstream error.
fn own_pool(url: &str) -> String {
    format!("[[route]]\nname = \"faults\"\nprefix = \"/\"\npool = \"faults\"\n\n[pools.faults]\nupstreams = [{url:?}]\n")
}

/// Waits until the upstream has seen every request it got end in a broken
/// body: the balancer abandoned the exchange instead of completing it.
async fn upstream_saw_only_aborted_bodies(up: &Upstream) {
    let s = up.state.clone();
    eventually(
        "the upstream to see its body cut off",
        Duration::from_secs(5),
        || {
            let s = s.clone();
            async move { (s.total() == s.broken_bodies.load(Ordering::SeqCst)).then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn a_malformed_chunked_body_is_400_not_502() {
    let up = Upstream::spawn("stats").await;
    let shop = spawn_balancer(&own_pool(&up.url()), |_| {}).await;
    let overflow = "ffffffffffffffffffffff\r\nx\r\n0\r\n\r\n".to_string();
    let long_extension = format!("2;{}\r\n{{}}\r\n0\r\n\r\n", "e".repeat(100 * 1024));
    for body in [overflow, long_extension] {
        let answer = raw(shop.balancer.addr, &format!("{CHUNKED_HEAD}{body}")).await;
        assert_closing_problem(&answer, 400, "body_unreadable");
        upstream_saw_only_aborted_bodies(&up).await;
    }

    // A chunk that is fine, and once the upstream is reading the body, a
    // broken one: the upstream sees its body cut off, never completed.
    let mut sock = tokio::net::TcpStream::connect(shop.balancer.addr)
        .await
        .unwrap();
    let start = format!("{CHUNKED_HEAD}7\r\n{{\"a\":1}}\r\n");
    sock.write_all(start.as_bytes()).await.unwrap();
    let s = up.state.clone();
    eventually(
        "the upstream to receive the request",
        Duration::from_secs(5),
        || {
            let s = s.clone();
            async move { (s.total() == 1).then_some(()) }
        },
    )
    .await;
    sock.write_all(b"zz\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer))
        .await
        .expect("the balancer closes the connection")
        .unwrap();
    assert_closing_problem(&String::from_utf8_lossy(&answer), 400, "body_unreadable");
    upstream_saw_only_aborted_bodies(&up).await;

    // The upstream was never counted as failing. The metrics are read
    // from the process's recorder, where the balancer counts them,
    // whichever listener serves them.
    let metrics = common::metrics::render();
    assert!(
        metrics.contains("balancer_requests_total") || metrics.contains("faults"),
        "the balancer's metrics are in this process's recorder: {metrics}"
    );
    // Its error counters exist from the pool's start, at 0.
    assert_eq!(
        common::testing::metric(
            &metrics,
            "balancer_upstream_errors_total",
            &["pool=\"faults\""]
        ),
        Some(0.0),
        "{metrics}"
    );
    // And it still serves well-formed requests, whole.
    let broken = up.state.broken_bodies.load(Ordering::SeqCst);
    let resp = shop.post("/upload", "{}").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.state.broken_bodies.load(Ordering::SeqCst), broken);
}

#[tokio::test]
async fn a_body_slower_than_the_body_timeout_is_408() {
    let up = Upstream::spawn("stats").await;
    let shop = spawn_balancer(&table("", &[up.url()]), |c| {
        c.server.body_read_timeout = Duration::from_millis(300);
    })
    .await;
    let body = vec![b' '; 1000];
    let head = "POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    let answer = common::testing::trickle(
        shop.balancer.addr,
        head,
        &body,
        Duration::from_millis(100),
        Duration::from_secs(5),
    )
    .await;
    assert_closing_problem(&answer, 408, "request_timeout");
    upstream_saw_only_aborted_bodies(&up).await;
}

#[tokio::test]
async fn a_route_deadline_that_passes_while_the_client_trickles_is_408_not_504() {
    let up = Upstream::spawn("stats").await;
    // The route's deadline comes long before the body timeout.
    let shop = spawn_balancer(&table("", &[up.url()]), |c| {
        c.route_timeout = Duration::from_millis(300);
        c.server.body_read_timeout = Duration::from_secs(60);
    })
    .await;
    let chunks: Vec<u8> = "1\r\nx\r\n".repeat(100).into_bytes();
    let answer = common::testing::trickle(
        shop.balancer.addr,
        CHUNKED_HEAD,
        &chunks,
        Duration::from_millis(20),
        Duration::from_secs(5),
    )
    .await;
    assert_closing_problem(&answer, 408, "request_timeout");
    upstream_saw_only_aborted_bodies(&up).await;

    // An upstream that is slow to answer a complete body is still a 504.
    let resp = shop.post("/slow", "{}").await;
    problem(resp, 504, "upstream_timeout").await;
}

#[tokio::test]
async fn a_path_and_query_over_8_kib_is_414_and_never_forwarded() {
    let up = Upstream::spawn("products").await;
    let shop = spawn_balancer(&own_pool(&up.url()), |_| {}).await;
    let at_limit = format!(
        "/products/?q={}",
        "a".repeat(8 * 1024 - "/products/?q=".len())
    );
    assert_eq!(shop.get(&at_limit).await.status(), 200);
    problem(shop.get(&format!("{at_limit}a")).await, 414, "uri_too_long").await;
    problem(
        shop.get(&format!("/{}", "p".repeat(60_000))).await,
        414,
        "uri_too_long",
    )
    .await;
    assert_eq!(
        up.state.total(),
        1,
        "only the one within the bound went upstream"
    );
}
