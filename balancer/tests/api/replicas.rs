//! A pool's replicas and their health: health checks eject and readmit a
//! replica (and the metrics say so), readiness can require every pool, and
//! a hostname upstream becomes one replica per address.

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::support::*;

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
