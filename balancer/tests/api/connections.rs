//! The balancer's own upstream connections: kept and reused (after
//! answers with a body, without one, and many at once), replaced when the
//! upstream closed them while idle (for any method, since nothing was
//! sent on them), closed after the idle timeout, and never reused after a
//! response the client abandoned halfway; and closed when the client hangs
//! up while waiting for an answer.
//!
//! The upstream here is raw TCP, so the test sees connections exactly: how
//! many the balancer opened for real requests, and when it closed them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// What the raw upstream does after answering a request.
#[derive(Clone, Copy, PartialEq)]
enum AfterAnswer {
    /// Waits for the next request on the same connection.
    KeepAlive,
    /// Closes the connection a moment later without having announced it
    /// (as a service restarting or timing out idle connections does).
    CloseQuietly,
}

#[derive(Default)]
struct Seen {
    /// Connections that carried at least one request (health checks use
    /// connections of their own and are not counted).
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Connections the balancer closed while they were idle.
    closed_by_balancer: AtomicUsize,
    /// Connections the balancer closed while a response on them was
    /// still being sent.
    closed_mid_body: AtomicUsize,
    /// Connections the balancer closed while waiting for an answer that
    /// never came (`GET /hang/…`).
    closed_unanswered: AtomicUsize,
}

/// The length `GET /big/…` announces; it sends only the first [`SENT`]
/// bytes, then waits.
const ANNOUNCED: usize = 1 << 20;
const SENT: usize = 64 * 1024;

/// A keep-alive HTTP/1.1 upstream on raw TCP answering `200 ok`.
async fn raw_upstream(after: AfterAnswer) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve_connection(sock, after, s.clone()));
        }
    });
    (url, seen)
}

async fn serve_connection(mut sock: TcpStream, after: AfterAnswer, seen: Arc<Seen>) {
    let mut counted = false;
    let mut buf = Vec::new();
    loop {
        let Some((head, body_len)) = read_request(&mut sock, &mut buf).await else {
            // The balancer closed it between requests.
            if counted && buf.is_empty() {
                seen.closed_by_balancer.fetch_add(1, Ordering::SeqCst);
            }
            return;
        };
        let health = head.starts_with("get /healthz ");
        if !health {
            if !counted {
                counted = true;
                seen.connections.fetch_add(1, Ordering::SeqCst);
            }
            seen.requests.fetch_add(1, Ordering::SeqCst);
        }
        if head.starts_with("get /hang/") {
            // No answer ever; only the balancer can end this.
            return count_when_closed(&mut sock, &seen.closed_unanswered).await;
        }
        // `HEAD` and `GET /empty/…` answer without a body (hyper never
        // polls such a body); `GET /big/…` sends part of a large one.
        let answer = if head.starts_with("head ") {
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".to_string()
        } else if head.starts_with("get /empty/") {
            "HTTP/1.1 204 No Content\r\n\r\n".to_string()
        } else if head.starts_with("get /big/") {
            let mut answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {ANNOUNCED}\r\n\r\n");
            answer.push_str(&"x".repeat(SENT));
            answer
        } else {
            format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-body-len: {body_len}\r\n\r\nok")
        };
        if sock.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if head.starts_with("get /big/") {
            // The rest never comes; the balancer can only close it.
            return count_when_closed(&mut sock, &seen.closed_mid_body).await;
        }
        if after == AfterAnswer::CloseQuietly && !health {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    }
}

/// Waits for the balancer to close `sock` (it sends nothing more on it),
/// then counts that in `closed`.
async fn count_when_closed(sock: &mut TcpStream, closed: &AtomicUsize) {
    let mut rest = [0u8; 64];
    if let Ok(0) | Err(_) = sock.read(&mut rest).await {
        closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (up to 5 s) until `counter` reads `n`; `what` names the wait in
/// the failure message.
async fn until_counted(what: &str, counter: &AtomicUsize, n: usize) {
    common::testing::eventually(what, Duration::from_secs(5), || {
        let reached = counter.load(Ordering::SeqCst) == n;
        async move { reached.then_some(()) }
    })
    .await;
}

/// Reads one request (head and `Content-Length` body) from `sock`,
/// keeping bytes of the next one in `buf`. `None` at end of stream.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + body_len {
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..head_end + body_len);
    Some((head, body_len))
}

#[tokio::test]
async fn upstream_connections_are_kept_and_reused() {
    let (url, seen) = raw_upstream(AfterAnswer::KeepAlive).await;
    let shop = spawn_balancer(&table("", &[url]), |_| {}).await;
    for i in 0..20 {
        let resp = if i % 2 == 0 {
            shop.get(&format!("/item/{i}")).await
        } else {
            shop.post(&format!("/item/{i}"), "{\"n\":1}").await
        };
        assert_eq!(resp.status(), 200, "request {i}");
        let expected = if i % 2 == 0 { "0" } else { "7" };
        assert_eq!(resp.headers()["x-body-len"], expected, "request {i}");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one after another, twenty requests share one upstream connection"
    );
}

#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_replaced_for_any_method() {
    let (url, seen) = raw_upstream(AfterAnswer::CloseQuietly).await;
    let shop = spawn_balancer(&table("", &[url]), |_| {}).await;
    for i in 0..6 {
        // Give the upstream time to close the connection the previous
        // request used, so the balancer holds a dead one when this starts.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let resp = shop.post(&format!("/pay/{i}"), "{\"amount\":1}").await;
        assert_eq!(resp.status(), 200, "POST {i} went over a fresh connection");
        assert_eq!(resp.headers()["x-body-len"], "12");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 6, "each sent once");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let (url, seen) = raw_upstream(AfterAnswer::KeepAlive).await;
    let shop = spawn_balancer(&table("", &[url]), |c| {
        c.pool_idle_timeout = Duration::from_millis(300);
    })
    .await;
    assert_eq!(shop.get("/item/1").await.status(), 200);
    // Still open well inside the timeout…
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.closed_by_balancer.load(Ordering::SeqCst), 0);
    // …and closed by the balancer once it has passed.
    until_counted("the idle connection closed", &seen.closed_by_balancer, 1).await;
    // A request afterwards opens a new connection and works.
    assert_eq!(shop.get("/item/2").await.status(), 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn answers_without_a_body_leave_the_connection_reusable() {
    let (url, seen) = raw_upstream(AfterAnswer::KeepAlive).await;
    let shop = spawn_balancer(&table("", &[url]), |_| {}).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..6 {
        let resp = client
            .head(shop.url(&format!("/item/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "HEAD {i}");
        assert_eq!(
            shop.get(&format!("/empty/{i}")).await.status(),
            204,
            "204 {i}"
        );
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 12);
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "answers without a body give their connection back as well"
    );
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let (url, seen) = raw_upstream(AfterAnswer::KeepAlive).await;
    let shop = spawn_balancer(&table("", &[url]), |_| {}).await;
    // Separate clients: each request arrives on its own client connection,
    // so they are in flight together.
    let burst = |round: usize| {
        let shop = &shop;
        futures::future::join_all((0..8).map(move |i| async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let resp = client
                .get(shop.url(&format!("/item/{round}-{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().await.unwrap(), "ok");
        }))
    };
    burst(0).await;
    let opened = seen.connections.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&opened),
        "{opened} connections for 8 requests"
    );
    for round in 1..4 {
        burst(round).await;
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 32);
    assert!(
        seen.connections.load(Ordering::SeqCst) <= 8,
        "later bursts reuse the connections of the first: {} opened",
        seen.connections.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_response_the_client_abandoned_closes_its_upstream_connection() {
    let (url, seen) = raw_upstream(AfterAnswer::KeepAlive).await;
    let shop = spawn_balancer(&table("", &[url]), |_| {}).await;
    let mut resp = shop.get("/big/1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(ANNOUNCED as u64));
    assert!(resp.chunk().await.unwrap().is_some(), "the body starts");
    drop(resp);
    // The half-sent response cannot be followed by another request on
    // that connection: the balancer closes it…
    until_counted("the connection closed", &seen.closed_mid_body, 1).await;
    // …and the next request goes over a new one.
    let resp = shop.get("/item/2").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_that_hangs_up_while_waiting_ends_its_upstream_exchange() {
    let (url, seen) = raw_upstream(AfterAnswer::KeepAlive).await;
    // The route's deadline (15 s by default) is far off: only the hang-up
    // can end the exchange within the wait below.
    let shop = spawn_balancer(&table("", &[url]), |_| {}).await;
    let mut client = TcpStream::connect(shop.balancer.addr).await.unwrap();
    client
        .write_all(b"GET /hang/1 HTTP/1.1\r\nhost: shop\r\n\r\n")
        .await
        .unwrap();
    until_counted("the request reached the upstream", &seen.requests, 1).await;
    drop(client);
    until_counted(
        "the balancer closed the unanswered exchange",
        &seen.closed_unanswered,
        1,
    )
    .await;
    // The balancer still serves.
    let resp = shop.get("/item/2").await;
    assert_eq!(resp.status(), 200);
}
