//! The balancer's own endpoints: health, readiness and metrics, with only
//! a bare readiness on the public port and the details (upstream addresses,
//! metrics) on the admin listener; 405 for their other methods; metrics
//! that count every worker's requests exactly once.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn the_balancer_serves_its_own_health_readiness_and_metrics() {
    let (shop, _ups) = default_shop().await;
    let resp = shop.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let ready = shop.readyz().await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["all_pools_healthy"], true);
    for pool in ["users", "products", "cart", "payments-mock", "stats"] {
        assert_eq!(ready["pools"][pool]["healthy"], 1, "{ready}");
    }
    shop.post("/log", "{}").await;
    let resp = shop.admin_get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("balancer_requests_total"), "{text}");
    assert!(text.contains("route=\"log\""), "{text}");
    assert!(text.contains("balancer_request_duration_seconds"), "{text}");
    assert_eq!(shop.admin_get("/healthz").await.status(), 200);
}

/// The audit's finding: the public port served `/metrics` and a `/readyz`
/// listing every upstream replica's address. Both are on the admin
/// listener now; the public `/readyz` says ready or not, nothing more.
#[tokio::test]
async fn the_public_port_shows_no_upstream_addresses_or_metrics() {
    let (shop, ups) = default_shop().await;
    let resp = shop.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::json!({"status": "ready"})
    );
    for up in &ups {
        let port = up.addr().port().to_string();
        assert!(
            !text.contains(&port),
            "an upstream's port is public: {text}"
        );
    }
    for method in ["GET", "HEAD", "POST"] {
        let resp = shop
            .http
            .request(method.parse().unwrap(), shop.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} /metrics");
    }
    problem(shop.get("/metrics").await, 404, "not_found").await;
    // Even a table that forwards everything does not forward it.
    let up = Upstream::spawn("catch-all").await;
    let catch_all = spawn_balancer(&table("", &[up.url()]), |_| {}).await;
    problem(catch_all.get("/metrics").await, 404, "not_found").await;
    assert_eq!(up.state.total(), 0);

    // The admin listener has what the public port no longer shows, and
    // nothing else.
    let ready = shop.readyz().await;
    let addr = ready["pools"]["users"]["replicas"][0]["addr"].clone();
    assert_eq!(addr, ups[0].addr().to_string(), "{ready}");
    problem(shop.admin_get("/user/1").await, 404, "not_found").await;
    for path in ["/metrics", "/readyz", "/healthz"] {
        let resp = shop.http.post(shop.admin_url(path)).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], "GET, HEAD", "{path}");
        problem(resp, 405, "method_not_allowed").await;
    }
}

/// `/healthz`, `/readyz` and `/openapi.json` are known paths:
/// another method is 405 with `Allow`, as docs/api.md says for every known path,
/// not the 404 of an unknown one.
#[tokio::test]
async fn the_balancers_own_paths_answer_405_to_other_methods() {
    let (shop, ups) = default_shop().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "QUERY"] {
            let resp = shop
                .http
                .request(method.parse().unwrap(), shop.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.headers().get("allow").map(|v| v.to_str().unwrap()),
                Some("GET, HEAD"),
                "{method} {path}"
            );
            problem(resp, 405, "method_not_allowed").await;
        }
        for method in ["GET", "HEAD"] {
            let resp = shop
                .http
                .request(method.parse().unwrap(), shop.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{method} {path}");
        }
    }
    for up in &ups {
        assert_eq!(up.state.total(), 0, "{} saw a request", up.state.name);
    }
}

/// Each worker tallies its requests and adds them to the shared metrics
/// in batches; a scrape on the admin listener must still count every
/// request of every worker, exactly once (and a second scrape no more).
#[tokio::test]
async fn metrics_count_every_workers_requests_exactly() {
    let up = Upstream::spawn("tally").await;
    let text = format!(
        "[[route]]\nname = \"tally-check\"\nprefix = \"/\"\npool = \"main\"\n\n[pools.main]\nupstreams = [{:?}]\n",
        up.url()
    );
    let table = balancer::routes::Table::parse(&text).unwrap();
    let config = balancer::config::BalancerConfig::for_tests(table);
    let options = config.server.clone();
    let b = balancer::Balancer::start(config).await;
    let (first, second) = (b.proxy(), b.proxy());
    let (options2, options3) = (options.clone(), options.clone());
    let one =
        common::testing::spawn(move |l, s| balancer::serve_worker(first, l, options, s)).await;
    let two =
        common::testing::spawn(move |l, s| balancer::serve_worker(second, l, options2, s)).await;
    let shared = b.shared.clone();
    let admin =
        common::testing::spawn(move |l, s| balancer::admin::serve_admin(shared, l, options3, s))
            .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // More than one batch on the first worker, less than one on the
    // second: both the batches already added and the pending rest count.
    let batch = balancer::metrics::FLUSH_AT;
    let (on_one, on_two) = (batch + 44, 5);
    for (worker, n) in [(&one, on_one), (&two, on_two)] {
        for _ in 0..n {
            let resp = http.get(worker.url("/x")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    let total = on_one + on_two;
    for _ in 0..2 {
        let text = common::testing::get_text(&http, &admin.url("/metrics")).await;
        let value = |prefix: &str| -> Option<String> {
            text.lines()
                .find(|l| l.starts_with(prefix) && l.contains("route=\"tally-check\""))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(
            value("balancer_requests_total{").as_deref(),
            Some(total.to_string().as_str()),
            "{text}"
        );
        assert_eq!(
            value("balancer_request_duration_seconds_count{").as_deref(),
            Some(total.to_string().as_str()),
            "{text}"
        );
    }
    assert_eq!(up.state.total(), total);
    one.stop().await;
    two.stop().await;
    admin.stop().await;
    b.stop_background().await;
}
