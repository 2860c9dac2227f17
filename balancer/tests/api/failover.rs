//! Failover when a replica fails: a killed replica is failed over for every
//! method, a hanging one is 504 without blocking others, a broken GET is
//! retried but a POST that reached an upstream never is, replicas that
//! vanish together (a scale-down) cost nothing while one lives, and nothing
//! reachable is 502 then 503.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

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

#[tokio::test]
async fn replicas_that_vanish_together_cost_nothing_while_one_lives() {
    // The first request meets both dead replicas before the live one (the
    // round-robin starts at the top of the list), as after `--scale
    // products=1` before the balancer has re-resolved the name.
    let [dead_a, dead_b] = closed_ports().await;
    let good = Upstream::spawn("good").await;
    let shop = spawn_balancer(&table("", &[dead_a, dead_b, good.url()]), |c| {
        c.health.interval = Duration::from_secs(3600);
    })
    .await;
    let resp = shop.post("/p/0", "{\"k\":\"v\"}").await;
    assert_eq!(resp.status(), 200, "the first POST");
    for i in 0..4 {
        let resp = shop.get(&format!("/g/{i}")).await;
        assert_eq!(resp.status(), 200, "GET {i}");
        assert_eq!(resp.headers()["x-upstream"], "good");
    }
    assert_eq!(good.state.count("POST"), 1);
    let health = shop.readyz().await;
    assert_eq!(health["pools"]["main"]["healthy"], 1, "{health}");
}
