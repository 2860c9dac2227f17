//! Network faults, made by the fault proxy between two of the shop's
//! processes: latency, connection resets and black holes, first between
//! the balancer and products (a public route), then between the cart and
//! the payment provider (checkout's dependency). Each fault maps to the
//! status the contract promises, other routes keep working, nothing is
//! doubled, and everything heals when the network does.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::{FaultProxy, Mode};
use crate::support::{eventually, Client, Ports, Shop};

const ROUTE_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until the route through the proxy answers 200 again (the balancer
/// may have taken the replica out and needs two good health checks).
async fn healed(api: &Client, path: &str) {
    eventually("the route heals", Duration::from_secs(20), || async {
        let r = api.get(path, None).await;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.text))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_resets_and_black_holes_between_the_balancer_and_products() {
    let ports = Ports::reserve();
    let proxy = FaultProxy::start(ports.addr("products")).await;
    // The balancer's own setting for the pool beats the launcher's
    // SHOP_PRODUCTS_URL; the cart still talks to products directly.
    let shop = Shop::options()
        .ports(ports)
        .env("BALANCER_PRODUCTS_URL", proxy.url())
        .env("BALANCER_ROUTE_TIMEOUT", "2s")
        .start()
        .await;
    let api = Client::new(shop.url(""));
    let ann = api.new_customer("ann").await;
    api.get("/products/", None).await.expect(200);
    assert!(
        proxy.accepted() > 0,
        "the balancer reaches products through the proxy"
    );

    // Latency below the route timeout: slower, still 200.
    proxy.set(Mode::Delay(Duration::from_millis(400)));
    let started = Instant::now();
    api.get("/products/?q=latency", None).await.expect(200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    // Latency beyond it: 504 at the deadline.
    proxy.set(Mode::Delay(ROUTE_TIMEOUT + Duration::from_secs(2)));
    let started = Instant::now();
    api.get("/products/?q=slow", None)
        .await
        .problem(504, "upstream_timeout");
    assert!(
        started.elapsed() < ROUTE_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    proxy.set(Mode::Pass);
    healed(&api, "/products/").await;

    // Connections reset after the request went out: 502, never a hang.
    proxy.set(Mode::Reset);
    let r = api.get("/products/?q=reset", None).await;
    assert!(
        matches!(r.status, 502 | 503),
        "a reset upstream is a bad gateway (or taken out): {} {}",
        r.status,
        r.text
    );
    assert_eq!(r.content_type(), "application/problem+json");
    if r.status == 502 {
        assert_eq!(r.body["code"], "bad_gateway", "{}", r.text);
    }
    // A POST that reached the upstream is never sent twice: products sees
    // the create once or not at all, never two products.
    let admin = api.admin().await;
    let create = api
        .post(
            "/product/",
            Some(&admin.token),
            &json!({"name": "Reset Probe", "description": "x", "price_cents": 1}),
        )
        .await;
    assert!(
        matches!(create.status, 502 | 503),
        "{} {}",
        create.status,
        create.text
    );
    proxy.set(Mode::Pass);
    healed(&api, "/products/").await;
    let probes = api
        .get("/products/?q=Reset%20Probe", None)
        .await
        .expect(200);
    assert!(
        probes.body["total"].as_u64().unwrap() <= 1,
        "{}",
        probes.text
    );

    // A black hole: 504 at the deadline, while other routes answer.
    proxy.set(Mode::Blackhole);
    let slow = {
        let api = api.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (api.get("/products/?q=hole", None).await, started.elapsed())
        })
    };
    api.get(&format!("/user/{}", ann.user_id), Some(&ann.token))
        .await
        .expect(200);
    api.post("/log", None, &json!({"action": "during_blackhole"}))
        .await
        .expect(202);
    let (resp, took) = slow.await.expect("the black-holed request");
    let resp = resp.problem(504, "upstream_timeout");
    assert!(resp.header("x-request-id").is_some());
    assert!(
        took >= ROUTE_TIMEOUT - Duration::from_millis(100)
            && took < ROUTE_TIMEOUT + Duration::from_secs(2),
        "took {took:?}"
    );
    // The health checks see it too; the pool is taken out and the answer
    // becomes an immediate 503 instead of a wait.
    eventually(
        "the balancer takes the black-holed replica out",
        Duration::from_secs(20),
        || async {
            let r = api.get("/products/?q=out", None).await;
            if r.status == 503 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.text))
            }
        },
    )
    .await;
    let r = api
        .get("/products/", None)
        .await
        .problem(503, "no_healthy_upstream");
    assert!(r.header("retry-after").is_some());

    proxy.set(Mode::Pass);
    healed(&api, "/products/").await;
    drop(shop);
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_black_holes_between_the_cart_and_payments() {
    let ports = Ports::reserve();
    let proxy = FaultProxy::start(ports.addr("payments-mock")).await;
    let shop = Shop::options()
        .ports(ports)
        .env("CART_PAYMENTS_URL", proxy.url())
        .env("CART_UPSTREAM_TIMEOUT", "1s")
        .start()
        .await;
    let api = Client::new(shop.url(""));
    let ann = api.new_customer("ann").await;
    let product = api.catalog().await[2]["id"].as_str().unwrap().to_string();
    api.add_to_cart(&ann, &product, 2).await;
    let before = api.cart(&ann).await;

    for mode in [Mode::Reset, Mode::Blackhole] {
        proxy.set(mode);
        let started = Instant::now();
        api.checkout(&ann, Some("the-one-checkout"))
            .await
            .problem(503, "payments_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            api.cart(&ann).await,
            before,
            "{mode:?}: the cart is unchanged"
        );
        assert_eq!(
            api.orders(&ann).await["total"],
            0,
            "{mode:?}: no order is visible"
        );
    }

    // The network heals: the retry with the same key gets the one order.
    proxy.set(Mode::Pass);
    let order = api
        .checkout(&ann, Some("the-one-checkout"))
        .await
        .expect(201)
        .body;
    let again = api
        .checkout(&ann, Some("the-one-checkout"))
        .await
        .expect(201)
        .body;
    assert_eq!(order, again);
    assert_eq!(api.orders(&ann).await["total"], 1, "exactly one order");
    assert!(api.cart(&ann).await["items"].as_array().unwrap().is_empty());

    // Payment goes browser → balancer → payments, and the webhook goes
    // payments → cart: neither crosses the proxy, so it still pays.
    api.pay(order["invoice_id"].as_str().unwrap(), "4242424242424242")
        .await
        .expect(200);
    eventually("the order reads paid", Duration::from_secs(5), || async {
        let o = api.order(&ann, order["id"].as_str().unwrap()).await;
        if o.body["status"] == "paid" {
            Ok(())
        } else {
            Err(o.text)
        }
    })
    .await;
    drop(shop);
    drop(proxy);
}
