//! The shop's public edge as an outside audit saw it: what the balancer's
//! public port shows about the inside, and whose word it takes for the
//! client's address. Operational detail is on the balancer's admin
//! listener (loopback, the port after the public one); forwarding headers
//! from a client are replaced, so the users service's login limit counts
//! the address the connection really came from.

use reqwest::Method;
use serde_json::json;

use crate::support::{unique_email, Client, Shop};

#[tokio::test]
async fn the_public_port_shows_no_pools_or_metrics_and_the_admin_port_does() {
    let shop = Shop::shared().await;
    let api = Client::new(shop.url(""));
    let ready = api.get("/readyz", None).await.expect(200);
    assert_eq!(ready.body, json!({"status": "ready"}), "{}", ready.text);
    api.get("/metrics", None).await.problem(404, "not_found");

    let admin = Client::new(shop.ports.balancer_admin_url());
    let ready = admin.get("/readyz", None).await.expect(200);
    let users = &ready.body["pools"]["users"];
    assert_eq!(
        users["replicas"][0]["addr"],
        shop.ports.addr("users").to_string(),
        "{}",
        ready.text
    );
    let metrics = admin.get("/metrics", None).await.expect(200);
    assert!(
        metrics.text.contains("balancer_requests_total"),
        "{}",
        metrics.text
    );
}

/// With a per-address login limit of 3, a client that sends each attempt
/// with a new `X-Forwarded-For` must still be stopped at the fourth: the
/// users service trusts the balancer's header, so the balancer may not
/// pass on what the client made up.
#[tokio::test]
async fn a_client_cannot_choose_the_address_the_login_limit_counts() {
    let shop = Shop::options()
        .env("USERS_LOGIN_ATTEMPTS_PER_IP", "3")
        .start()
        .await;
    let api = Client::new(shop.url(""));
    let mut statuses = Vec::new();
    for i in 0..4 {
        let spoofed = format!("198.51.100.{}", i + 1);
        // A different email each time: only the per-address limit is at play.
        let body = json!({"email": unique_email("spoof"), "password": "wrong-password"});
        let resp = api
            .send(
                Method::POST,
                "/user/login",
                None,
                Some(&body),
                &[
                    ("x-forwarded-for", spoofed.as_str()),
                    ("x-real-ip", spoofed.as_str()),
                    ("forwarded", &format!("for={spoofed}")),
                ],
            )
            .await;
        statuses.push(resp.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "one address, four attempts");
}
