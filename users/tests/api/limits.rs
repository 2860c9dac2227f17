//! Bounds on what a client may make the service wait for: a registration
//! whose body trickles in is cut off with `408` and nothing is created.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use crate::support::spawn_with;

#[tokio::test]
async fn a_registration_body_that_trickles_in_is_408_and_creates_nothing() {
    let app = spawn_with(|c| c.base.server.body_read_timeout = Duration::from_millis(300)).await;
    let addr: SocketAddr = app.url("").trim_start_matches("http://").parse().unwrap();
    let body =
        json!({"email": "slow@example.com", "password": "password1", "name": "Slow"}).to_string();
    let head = format!(
        "POST /user/ HTTP/1.1\r\nHost: users\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // One byte every 100 ms: the whole body would take seconds.
    let answer = common::testing::trickle(
        addr,
        &head,
        body.as_bytes(),
        Duration::from_millis(100),
        Duration::from_secs(5),
    )
    .await;
    common::testing::assert_closing_problem(&answer, 408, "request_timeout");

    // Nothing was created: the same email registers normally afterwards.
    let resp = app.register("slow@example.com", "password1", "Slow").await;
    assert_eq!(resp.status(), 201);
}
