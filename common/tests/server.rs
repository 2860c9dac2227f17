//! The shared server loop and App over real sockets: HTTP/1.1 and h2c on
//! one port, slow clients cut off, the connection cap, graceful shutdown
//! that lets in-flight requests finish, and panics turned into 500s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::json::json_response;
use common::server::ServerOptions;
use common::testing::{spawn, Running};
use common::{App, HandlerResult, Req, Router};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct State;

async fn hello(_: Arc<State>, req: Req) -> HandlerResult {
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"rid": &*req.request_id}),
    ))
}

async fn slow(_: Arc<State>, _: Req) -> HandlerResult {
    tokio::time::sleep(Duration::from_millis(800)).await;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"slow": true}),
    ))
}

async fn boom(_: Arc<State>, req: Req) -> HandlerResult {
    if req.param("id") == "panic" {
        panic!("a bug in a handler");
    }
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}

async fn refuse(_: Arc<State>, _: Req) -> HandlerResult {
    Err(common::ApiError::unauthorized("no token"))
}

async fn echo(_: Arc<State>, mut req: Req) -> HandlerResult {
    let value: serde_json::Value = req.json().await?;
    Ok(json_response(StatusCode::OK, &value))
}

async fn start(options: ServerOptions) -> Running {
    let router = Router::new()
        .get("/hello", hello)
        .get("/slow", slow)
        .get("/boom/{id}", boom)
        .post("/refuse", refuse)
        .post("/echo", echo);
    let app = App::new("test", Arc::new(State), router);
    spawn(move |listener, shutdown| app.serve(listener, options, shutdown)).await
}

#[tokio::test]
async fn serves_http1_and_h2c_on_one_port() {
    let server = start(ServerOptions::default()).await;
    let h1 = reqwest::Client::new()
        .get(server.url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .get(server.url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.status(), 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let options = ServerOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServerOptions::default()
    };
    let server = start(options).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The server closes the connection (possibly after a 408); reading to
    // the end must finish long before this generous bound.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was left open");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server itself still answers others.
    assert_eq!(
        reqwest::get(server.url("/hello")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_request_or_a_download_slower_than_the_header_timeout_is_not_cut_off() {
    let options = ServerOptions {
        header_read_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    // A handler that takes 800 ms to answer.
    let server = start(options.clone()).await;
    let resp = reqwest::get(server.url("/slow")).await.unwrap();
    assert_eq!(resp.status(), 200);

    // A body that trickles out over 800 ms.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let trickle = |_req, _peer| async {
        let frames = futures::stream::unfold(0, |i| async move {
            if i == 8 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let frame = hyper::body::Frame::data(bytes::Bytes::from_static(b"x"));
            Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
        });
        http::Response::new(http_body_util::StreamBody::new(frames))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(common::server::serve(listener, options, trickle, async {
        let _ = stopped.await;
    }));
    let body = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .bytes()
        .await
        .expect("the whole body arrives");
    assert_eq!(&body[..], b"xxxxxxxx");
    let _ = stop.send(());
    serving.await.unwrap();
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_only_once_idle_past_the_header_timeout() {
    let limit = Duration::from_millis(300);
    let options = ServerOptions {
        header_read_timeout: limit,
        ..ServerOptions::default()
    };
    let server = start(options).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    // Requests every 100 ms for a second, all on the one connection.
    for i in 0..10 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        conn.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = conn.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "the connection was closed while in use"
        );
    }
    // Then idle from the last answer on: closed after the limit, not before.
    let idle_from = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the idle connection was closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(idle_from.elapsed() >= limit - Duration::from_millis(100));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let options = ServerOptions {
        max_connections: 1,
        ..ServerOptions::default()
    };
    let server = start(options).await;
    // The first connection holds the only slot while it is open.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let url = server.url("/hello");
    let second = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second connection was served beyond the cap"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let server = start(ServerOptions::default()).await;
    let url = server.url("/slow");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = server.addr;
    server.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    // And nothing accepts any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_and_the_server_lives_on() {
    let server = start(ServerOptions::default()).await;
    let resp = reqwest::get(server.url("/boom/panic")).await.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body = resp.text().await.unwrap();
    assert!(!body.contains("a bug in a handler"), "{body}");
    assert_eq!(
        reqwest::get(server.url("/boom/fine"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_answer_that_leaves_the_body_unread_still_keeps_the_connection() {
    // The body is drained after the answer, so a keep-alive client (or the
    // balancer) reuses the connection instead of having it reset mid-send.
    let server = start(ServerOptions::default()).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let body = vec![b'x'; 256 * 1024];
    for _ in 0..20 {
        let refused = client
            .post(server.url("/refuse"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().get("connection").is_none());
        let unknown = client
            .post(server.url("/nowhere"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        let echoed = client
            .post(server.url("/echo"))
            .header("content-type", "application/json")
            .body("{\"a\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(echoed.status(), 200);
    }
}

/// The head of a JSON `POST /echo` announcing `length` body bytes.
fn echo_head(length: usize) -> String {
    format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_that_trickles_in_past_the_body_timeout_is_408_and_the_connection_closes() {
    let options = ServerOptions {
        body_read_timeout: Duration::from_millis(300),
        ..ServerOptions::default()
    };
    let server = start(options).await;
    // One byte every 100 ms of a 1000-byte body would take 100 s.
    let body = vec![b' '; 1000];
    let answer = common::testing::trickle(
        server.addr,
        &echo_head(body.len()),
        &body,
        Duration::from_millis(100),
        Duration::from_secs(5),
    )
    .await;
    common::testing::assert_closing_problem(&answer, 408, "request_timeout");

    // A body that arrives in time, even in pieces, is read as usual.
    let body = b"{\"a\":1}";
    let answer = common::testing::trickle(
        server.addr,
        &echo_head(body.len()).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
        body,
        Duration::from_millis(10),
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"a\":1}"), "{answer}");
}

#[tokio::test]
async fn a_path_and_query_over_8_kib_is_414() {
    let server = start(ServerOptions::default()).await;
    let client = reqwest::Client::new();
    let at_limit = format!("/hello?x={}", "a".repeat(8 * 1024 - "/hello?x=".len()));
    let resp = client.get(server.url(&at_limit)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    for long in [format!("{at_limit}a"), format!("/{}", "p".repeat(60_000))] {
        let resp = client.get(server.url(&long)).send().await.unwrap();
        assert_eq!(resp.status(), 414);
        let body = common::testing::problem(resp).await;
        assert_eq!(body["code"], "uri_too_long");
    }
}
