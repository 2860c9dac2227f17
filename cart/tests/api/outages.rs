//! Neighbours down or hanging: with products or payments stopped or not
//! answering, the cart answers 503 promptly (order reads still answer),
//! keeps the cart intact and remembers no 503 under an idempotency key.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{black_hole, problem, shop, shop_with, Options};

#[tokio::test]
async fn with_products_down_the_cart_answers_503_and_keeps_everything() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    let item = shop.add(&uid, &token, &tea, 2).await;
    let item_path = format!("/user/{uid}/cart/{}", item["id"].as_str().unwrap());
    shop.stop_products().await;

    let base = format!("/user/{uid}/cart/");
    let add = shop
        .post(
            &base,
            Some(&token),
            &json!({"product_id": tea, "quantity": 1}),
        )
        .await;
    problem(add, 503, "products_unavailable").await;
    problem(
        shop.get(&base, Some(&token)).await,
        503,
        "products_unavailable",
    )
    .await;
    problem(
        shop.get(&item_path, Some(&token)).await,
        503,
        "products_unavailable",
    )
    .await;
    problem(
        shop.put(&item_path, Some(&token), &json!({"quantity": 9}))
            .await,
        503,
        "products_unavailable",
    )
    .await;
    problem(
        shop.checkout(&uid, &token, Some("while-products-down"))
            .await,
        503,
        "products_unavailable",
    )
    .await;
    // What needs no product still works.
    assert_eq!(
        shop.get(&format!("/user/{uid}/orders/"), Some(&token))
            .await
            .status(),
        200
    );

    shop.start_products_again().await;
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["items"][0]["quantity"], 2, "nothing changed");
    // The 503 was not remembered under the key: the retry checks out.
    let resp = shop
        .checkout(&uid, &token, Some("while-products-down"))
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_hanging_products_service_is_503_not_a_hang() {
    let (hole, _keep) = black_hole().await;
    let shop = shop_with(Options {
        cart: Box::new(move |c| {
            c.products_url = hole;
            c.upstream_timeout = std::time::Duration::from_millis(500);
        }),
        ..Options::default()
    })
    .await;
    let (uid, token) = shop.customer();
    let started = Instant::now();
    let resp = shop
        .post(
            &format!("/user/{uid}/cart/"),
            Some(&token),
            &json!({"product_id": uuid::Uuid::now_v7().to_string(), "quantity": 1}),
        )
        .await;
    problem(resp, 503, "products_unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn checkout_with_payments_down_is_503_and_keeps_the_cart() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    let pot = shop.product("Teapot", 2500, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;
    shop.add(&uid, &token, &pot, 1).await;
    let before = shop.cart(&uid, &token).await;
    shop.stop_payments().await;

    let resp = shop.checkout(&uid, &token, Some("checkout-1")).await;
    problem(resp, 503, "payments_unavailable").await;
    assert_eq!(shop.cart(&uid, &token).await, before, "the cart is intact");
    let orders = shop.orders(&uid, &token).await;
    assert_eq!(orders["total"], 0, "no half order is visible");

    // Once payments is back, the same key checks out (a 503 is not stored).
    shop.start_payments_again().await;
    let resp = shop.checkout(&uid, &token, Some("checkout-1")).await;
    assert_eq!(resp.status(), 201);
    let order: Value = resp.json().await.unwrap();
    assert_eq!(order["amount_cents"], 2 * 450 + 2500);
    assert_eq!(shop.invoice_count().await, 1);
}

#[tokio::test]
async fn a_hanging_payment_provider_hangs_neither_reads_nor_checkout() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    for _ in 0..3 {
        shop.add(&uid, &token, &tea, 1).await;
        shop.checkout_ok(&uid, &token).await;
    }
    shop.add(&uid, &token, &tea, 1).await;
    let (hole, _keep) = black_hole().await;
    shop.stop_cart().await;
    shop.cart.config.payments_url = hole;
    shop.start_cart_again().await;
    // The orders are pending and old enough to be checked on read.
    tokio::time::sleep(shop.cart.config.reconcile_after).await;

    let started = Instant::now();
    let list = shop.orders(&uid, &token).await;
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["status"], "pending_payment");
    let id = list["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        shop.order(&uid, &token, id).await["status"],
        "pending_payment"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    problem(
        shop.checkout(&uid, &token, None).await,
        503,
        "payments_unavailable",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(shop.cart(&uid, &token).await["items"][0]["quantity"], 1);
    // And the cart still stops promptly while its sweep waits on payments.
    let started = Instant::now();
    shop.stop_cart().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
