//! The cart API over real HTTP, against the real products and payments-mock
//! services running in-process (see `support.rs`); mailer and stats are a
//! recording loopback receiver. Each test gets its own databases (SQLite,
//! or PostgreSQL when `TEST_DATABASE_URL` is set).

mod batch;
mod metrics;
mod revocation;
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::webhook::sign;
use futures::future::join_all;
use serde_json::{json, Value};
use support::{black_hole, eventually, problem, shop, shop_with, Options, Shop};

const PAID_WITHIN: Duration = Duration::from_secs(5);
const WEBHOOK_SECRET: &str = "test-webhook-secret-test-webhook-secret";
const GOOD_CARD: &str = "4242424242424242";

fn keys(v: &Value) -> HashSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

async fn count(shop: &Shop, sql: &str) -> i64 {
    let pool = shop.cart_db().await;
    let n: i64 = sqlx::Row::get(&sqlx::query(sql).fetch_one(&pool).await.unwrap(), "n");
    pool.close().await;
    n
}

/// Confirmation emails queued in the cart's outbox (delivered or not).
async fn queued_emails(shop: &Shop) -> i64 {
    count(
        shop,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox WHERE target = 'mailer'",
    )
    .await
}

// ---- the cart table, row by row ------------------------------------------

#[tokio::test]
async fn every_cart_endpoint_does_what_the_table_says() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    let pot = shop.product("Teapot", 2500, "USD").await;
    let base = format!("/user/{uid}/cart/");

    // POST: 201 with the item.
    let resp = shop
        .post(
            &base,
            Some(&token),
            &json!({"product_id": tea, "quantity": 2}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("x-request-id"));
    let item: Value = resp.json().await.unwrap();
    for key in [
        "id",
        "product_id",
        "name",
        "unit_price_cents",
        "quantity",
        "line_total_cents",
    ] {
        assert!(keys(&item).contains(key), "item lacks {key}: {item}");
    }
    assert_eq!(item["product_id"], tea.as_str());
    assert_eq!(item["name"], "Tea");
    assert_eq!(item["unit_price_cents"], 450);
    assert_eq!(item["quantity"], 2);
    assert_eq!(item["line_total_cents"], 900);
    let tea_item = item["id"].as_str().unwrap().to_string();

    // The same product again adds to that item's quantity.
    let again = shop.add(&uid, &token, &tea, 3).await;
    assert_eq!(again["id"], tea_item.as_str());
    assert_eq!(again["quantity"], 5);
    shop.add(&uid, &token, &pot, 1).await;

    // GET the cart: items (oldest first), total and currency.
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    assert_eq!(cart["items"][0]["id"], tea_item.as_str());
    assert_eq!(cart["items"][0]["quantity"], 5);
    assert_eq!(cart["total_cents"], 5 * 450 + 2500);
    assert_eq!(cart["currency"], "USD");

    // GET one item.
    let path = format!("{base}{tea_item}");
    let resp = shop.get(&path, Some(&token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["quantity"], 5);

    // PUT sets the quantity.
    let resp = shop.put(&path, Some(&token), &json!({"quantity": 7})).await;
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["quantity"], 7);
    assert_eq!(updated["line_total_cents"], 7 * 450);

    // DELETE, then it is gone.
    let resp = shop.delete(&path, Some(&token)).await;
    assert_eq!(resp.status(), 204);
    problem(shop.get(&path, Some(&token)).await, 404, "not_found").await;
    problem(shop.delete(&path, Some(&token)).await, 404, "not_found").await;
    problem(
        shop.put(&path, Some(&token), &json!({"quantity": 1})).await,
        404,
        "not_found",
    )
    .await;
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["total_cents"], 2500);

    // Each add is announced to stats.
    eventually(Duration::from_secs(5), "cart_item_added events", || async {
        (shop.receiver.events("cart_item_added").len() == 3).then_some(())
    })
    .await;
    let event = &shop.receiver.events("cart_item_added")[0];
    assert_eq!(event.body["user_id"], uid.as_str());
    assert_eq!(event.body["data"]["product_id"], tea.as_str());
}

#[tokio::test]
async fn quantities_must_be_1_to_999_also_when_adding_up() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    let base = format!("/user/{uid}/cart/");
    for bad in [
        json!(0),
        json!(-1),
        json!(1000),
        json!(1.5),
        json!("2"),
        json!(null),
    ] {
        let resp = shop
            .post(
                &base,
                Some(&token),
                &json!({"product_id": tea, "quantity": bad}),
            )
            .await;
        let body = problem(resp, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "quantity", "{bad}");
    }
    let resp = shop
        .post(&base, Some(&token), &json!({"product_id": tea}))
        .await;
    let body = problem(resp, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "quantity");

    // 998 + 2 would be 1000: refused, and the line keeps 998.
    let item = shop.add(&uid, &token, &tea, 998).await;
    let resp = shop
        .post(
            &base,
            Some(&token),
            &json!({"product_id": tea, "quantity": 2}),
        )
        .await;
    let body = problem(resp, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "quantity");
    assert_eq!(shop.add(&uid, &token, &tea, 1).await["quantity"], 999);

    let path = format!("{base}{}", item["id"].as_str().unwrap());
    for bad in [json!(0), json!(1000), json!("1"), json!(2.5)] {
        let resp = shop
            .put(&path, Some(&token), &json!({"quantity": bad}))
            .await;
        problem(resp, 422, "validation_failed").await;
    }
    problem(
        shop.put(&path, Some(&token), &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["items"][0]["quantity"], 999);
}

#[tokio::test]
async fn unknown_or_deleted_products_and_bad_bodies_are_refused() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let base = format!("/user/{uid}/cart/");
    let gone = shop.product("Gone", 100, "USD").await;
    shop.delete_product(&gone).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for product_id in [json!(unknown), json!(gone), json!("not-an-id"), json!(42)] {
        let resp = shop
            .post(
                &base,
                Some(&token),
                &json!({"product_id": product_id, "quantity": 1}),
            )
            .await;
        problem(resp, 404, "product_not_found").await;
    }
    for body in [json!({"product_id": "", "quantity": 1}), json!([1, 2])] {
        problem(
            shop.post(&base, Some(&token), &body).await,
            422,
            "validation_failed",
        )
        .await;
    }
    let malformed = shop
        .client
        .post(shop.url(&base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"product_id\":")
        .send()
        .await
        .unwrap();
    problem(malformed, 400, "malformed_json").await;
    let text = shop
        .client
        .post(shop.url(&base))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    problem(text, 415, "unsupported_media_type").await;
    assert!(shop.cart(&uid, &token).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn ids_that_do_not_parse_are_404() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let admin = shop.admin();
    for path in [
        format!("/user/{uid}/cart/not-an-id"),
        format!("/user/{uid}/cart/12"),
        format!("/user/{uid}/orders/not-an-id"),
    ] {
        problem(shop.get(&path, Some(&token)).await, 404, "not_found").await;
    }
    problem(
        shop.put(
            &format!("/user/{uid}/cart/xyz"),
            Some(&token),
            &json!({"quantity": 1}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    problem(
        shop.delete(&format!("/user/{uid}/cart/xyz"), Some(&token))
            .await,
        404,
        "not_found",
    )
    .await;
    // Not a user id: an admin gets 404, a customer 403 (it is not theirs).
    problem(
        shop.get("/user/nobody/cart/", Some(&admin)).await,
        404,
        "not_found",
    )
    .await;
    problem(
        shop.get("/user/nobody/cart/", Some(&token)).await,
        403,
        "forbidden",
    )
    .await;
    // The user id in another spelling is still the same user.
    let upper = format!("/user/{}/cart/", uid.to_uppercase());
    assert_eq!(shop.get(&upper, Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn every_path_is_for_its_own_user_or_an_admin() {
    let shop = shop().await;
    let (ann, ann_token) = shop.customer();
    let (bob, bob_token) = shop.customer();
    let admin = shop.admin();
    let tea = shop.product("Tea", 450, "USD").await;
    let item = shop.add(&ann, &ann_token, &tea, 1).await;
    let item_id = item["id"].as_str().unwrap();
    shop.add(&ann, &ann_token, &tea, 1).await;
    let order = shop.checkout_ok(&ann, &ann_token).await;
    let order_id = order["id"].as_str().unwrap();
    let item = shop.add(&ann, &ann_token, &tea, 1).await;
    let item_id2 = item["id"].as_str().unwrap();
    assert_ne!(item_id, item_id2, "the first line left with the order");

    let add = json!({"product_id": tea, "quantity": 1});
    let qty = json!({"quantity": 2});
    let cart = format!("/user/{ann}/cart/");
    let one = format!("/user/{ann}/cart/{item_id2}");
    let checkout = format!("/user/{ann}/cart/checkout");
    let orders = format!("/user/{ann}/orders/");
    let order_path = format!("/user/{ann}/orders/{order_id}");

    for token in [None, Some("not-a-token"), Some(bob_token.as_str())] {
        let answers = vec![
            shop.post(&cart, token, &add).await,
            shop.get(&cart, token).await,
            shop.get(&one, token).await,
            shop.put(&one, token, &qty).await,
            shop.delete(&one, token).await,
            shop.post(&checkout, token, &json!({})).await,
            shop.get(&orders, token).await,
            shop.get(&order_path, token).await,
        ];
        for resp in answers {
            if token == Some(bob_token.as_str()) {
                problem(resp, 403, "forbidden").await;
            } else {
                assert_eq!(resp.headers()["www-authenticate"], "Bearer");
                problem(resp, 401, "unauthorized").await;
            }
        }
    }

    // Bob's own cart and orders are separate from Ann's.
    let bobs_view_of_ann_item = format!("/user/{bob}/cart/{item_id2}");
    problem(
        shop.get(&bobs_view_of_ann_item, Some(&bob_token)).await,
        404,
        "not_found",
    )
    .await;
    problem(
        shop.get(&format!("/user/{bob}/orders/{order_id}"), Some(&bob_token))
            .await,
        404,
        "not_found",
    )
    .await;
    let bobs_orders: Value = shop
        .get(&format!("/user/{bob}/orders/"), Some(&bob_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bobs_orders["total"], 0);

    // The admin may do everything on Ann's behalf.
    assert_eq!(shop.post(&cart, Some(&admin), &add).await.status(), 201);
    let ann_cart: Value = shop.get(&cart, Some(&admin)).await.json().await.unwrap();
    assert_eq!(ann_cart["items"][0]["quantity"], 2);
    assert_eq!(shop.get(&one, Some(&admin)).await.status(), 200);
    assert_eq!(shop.put(&one, Some(&admin), &qty).await.status(), 200);
    assert_eq!(shop.get(&orders, Some(&admin)).await.status(), 200);
    assert_eq!(shop.get(&order_path, Some(&admin)).await.status(), 200);
    let by_admin = shop.post(&checkout, Some(&admin), &json!({})).await;
    assert_eq!(by_admin.status(), 201);
    let by_admin: Value = by_admin.json().await.unwrap();
    assert_eq!(by_admin["user_id"], ann.as_str());
    shop.add(&ann, &ann_token, &tea, 1).await;
    let line = shop.cart(&ann, &ann_token).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = shop
        .delete(&format!("/user/{ann}/cart/{line}"), Some(&admin))
        .await;
    assert_eq!(resp.status(), 204);
}

// ---- concurrency -----------------------------------------------------------

#[tokio::test]
async fn twenty_parallel_adds_are_all_counted() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    let path = format!("/user/{uid}/cart/");
    let body = json!({"product_id": tea, "quantity": 1});
    let adds = (0..20).map(|_| shop.post(&path, Some(&token), &body));
    for resp in join_all(adds).await {
        assert_eq!(resp.status(), 201);
    }
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["quantity"], 20);
    assert_eq!(cart["total_cents"], 20 * 450);
}

#[tokio::test]
async fn parallel_checkouts_of_one_cart_make_one_order() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 3).await;
    let answers = join_all((0..5).map(|_| shop.checkout(&uid, &token, None))).await;
    let mut created = 0;
    for resp in answers {
        match resp.status().as_u16() {
            201 => created += 1,
            409 => {
                let body: Value = resp.json().await.unwrap();
                assert!(
                    body["code"] == "cart_empty" || body["code"] == "cart_changed",
                    "{body}"
                );
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert_eq!(created, 1, "exactly one checkout wins");
    let orders: Value = shop
        .get(&format!("/user/{uid}/orders/"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orders["total"], 1);
    assert_eq!(orders["items"][0]["items"][0]["quantity"], 3);
    assert!(shop.cart(&uid, &token).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn checkout_racing_with_adds_neither_loses_nor_doubles_an_item() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 100, "USD").await;
    shop.add(&uid, &token, &tea, 5).await;
    let path = format!("/user/{uid}/cart/");
    let body = json!({"product_id": tea, "quantity": 1});
    let adds = (0..10).map(|_| shop.post(&path, Some(&token), &body));
    let (checkout, adds) = tokio::join!(shop.checkout(&uid, &token, None), join_all(adds));
    for resp in adds {
        assert_eq!(resp.status(), 201);
    }
    assert_eq!(checkout.status(), 201);
    let order: Value = checkout.json().await.unwrap();
    let ordered = order["items"][0]["quantity"].as_i64().unwrap();
    assert_eq!(order["amount_cents"].as_i64().unwrap(), ordered * 100);
    let cart = shop.cart(&uid, &token).await;
    let left = cart["items"]
        .as_array()
        .unwrap()
        .first()
        .map(|i| i["quantity"].as_i64().unwrap())
        .unwrap_or(0);
    assert_eq!(ordered + left, 15, "ordered {ordered}, left {left}");
}

// ---- prices, deleted products, currencies ----------------------------------

#[tokio::test]
async fn items_show_current_prices_and_deleted_products_are_flagged() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 100, "USD").await;
    let pot = shop.product("Teapot", 250, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;
    let pot_item = shop.add(&uid, &token, &pot, 1).await;
    shop.update_product(&tea, json!({"price_cents": 150, "name": "Green tea"}))
        .await;
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["items"][0]["name"], "Green tea");
    assert_eq!(cart["items"][0]["unit_price_cents"], 150);
    assert_eq!(cart["items"][0]["line_total_cents"], 300);
    assert_eq!(cart["total_cents"], 550);

    // A product deleted since: shown, flagged, left out of the total.
    shop.delete_product(&pot).await;
    let cart = shop.cart(&uid, &token).await;
    let gone = &cart["items"][1];
    assert_eq!(gone["available"], false);
    assert_eq!(gone["name"], "Teapot");
    assert_eq!(cart["items"][0]["available"], true);
    assert_eq!(cart["total_cents"], 300);
    let item_path = format!("/user/{uid}/cart/{}", pot_item["id"].as_str().unwrap());
    let one: Value = shop
        .get(&item_path, Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["available"], false);

    // It blocks checkout, with the cart intact, until removed.
    let resp = shop.checkout(&uid, &token, None).await;
    let body = problem(resp, 409, "product_unavailable").await;
    assert!(body["detail"].as_str().unwrap().contains(&pot), "{body}");
    assert_eq!(
        shop.cart(&uid, &token).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(shop.delete(&item_path, Some(&token)).await.status(), 204);
    let order = shop.checkout_ok(&uid, &token).await;
    assert_eq!(order["amount_cents"], 300);
    assert_eq!(order["items"][0]["name"], "Green tea");

    // The order keeps the price it was bought at.
    shop.update_product(&tea, json!({"price_cents": 999})).await;
    let order = shop
        .order(&uid, &token, order["id"].as_str().unwrap())
        .await;
    assert_eq!(order["items"][0]["unit_price_cents"], 150);
}

#[tokio::test]
async fn a_cart_mixing_currencies_cannot_be_checked_out() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 100, "USD").await;
    let cheese = shop.product("Cheese", 700, "EUR").await;
    shop.add(&uid, &token, &tea, 1).await;
    shop.add(&uid, &token, &cheese, 2).await;
    let cart = shop.cart(&uid, &token).await;
    assert_eq!(cart["currency"], "USD");
    assert_eq!(cart["total_cents"], 100);
    assert_eq!(
        cart["totals"],
        json!([
            {"currency": "USD", "total_cents": 100},
            {"currency": "EUR", "total_cents": 1400}
        ])
    );
    let resp = shop.checkout(&uid, &token, None).await;
    problem(resp, 409, "mixed_currencies").await;
    assert_eq!(
        shop.cart(&uid, &token).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(shop.invoice_count().await, 0);
}

// ---- neighbours down -------------------------------------------------------

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
    let orders: Value = shop
        .get(&format!("/user/{uid}/orders/"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
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
    let list: Value = shop
        .get(&format!("/user/{uid}/orders/"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
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

// ---- checkout ----------------------------------------------------------------

#[tokio::test]
async fn checkout_moves_the_items_into_an_order_with_an_invoice() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    let pot = shop.product("Teapot", 2500, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;
    shop.add(&uid, &token, &pot, 1).await;

    let resp = shop.checkout(&uid, &token, None).await;
    assert_eq!(resp.status(), 201);
    let order: Value = resp.json().await.unwrap();
    for key in [
        "id",
        "user_id",
        "items",
        "amount_cents",
        "currency",
        "invoice_id",
        "status",
        "created_at",
    ] {
        assert!(keys(&order).contains(key), "order lacks {key}: {order}");
    }
    assert_eq!(order["user_id"], uid.as_str());
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["amount_cents"], 3400);
    assert_eq!(order["currency"], "USD");
    assert!(order["created_at"].as_str().unwrap().ends_with('Z'));
    let items = order["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "Tea");
    assert_eq!(items[0]["quantity"], 2);
    assert_eq!(items[0]["line_total_cents"], 900);
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();

    // The cart is empty; the order reads back the same.
    assert!(shop.cart(&uid, &token).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(shop.order(&uid, &token, id).await, order);

    // The invoice at payments is for the order's amount.
    let invoice: Value = shop
        .client
        .get(shop.payments.url(&format!("/invoices/{invoice_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(invoice["amount_cents"], 3400);
    assert_eq!(invoice["currency"], "USD");
    assert_eq!(invoice["status"], "open");
    assert_eq!(shop.invoice_count().await, 1);

    eventually(Duration::from_secs(5), "an order_created event", || async {
        let events = shop.receiver.events("order_created");
        (events.len() == 1).then_some(events)
    })
    .await;

    // Nothing left: an empty cart cannot be checked out.
    problem(shop.checkout(&uid, &token, None).await, 409, "cart_empty").await;
}

#[tokio::test]
async fn an_empty_cart_is_409_cart_empty() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    problem(shop.checkout(&uid, &token, None).await, 409, "cart_empty").await;
    assert_eq!(shop.invoice_count().await, 0);
}

#[tokio::test]
async fn checkout_retried_with_the_same_key_is_one_order_and_one_invoice() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;

    let first = shop.checkout(&uid, &token, Some("order-key-1")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // The cart is empty now; a retry is still the same order, not a 409.
    for _ in 0..2 {
        let retry = shop.checkout(&uid, &token, Some("order-key-1")).await;
        assert_eq!(retry.status(), 201);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(retry.json::<Value>().await.unwrap(), first);
    }
    // Concurrent retries too.
    let retries = join_all((0..5).map(|_| shop.checkout(&uid, &token, Some("order-key-1")))).await;
    for r in retries {
        assert_eq!(r.status(), 201);
        assert_eq!(r.json::<Value>().await.unwrap()["id"], first["id"]);
    }
    assert_eq!(shop.invoice_count().await, 1);
    let orders: Value = shop
        .get(&format!("/user/{uid}/orders/"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orders["total"], 1);

    // The same key with another request is refused.
    let other = shop
        .client
        .post(shop.url(&format!("/user/{uid}/cart/checkout")))
        .bearer_auth(&token)
        .header("idempotency-key", "order-key-1")
        .json(&json!({"note": "different"}))
        .send()
        .await
        .unwrap();
    problem(other, 422, "idempotency_key_reused").await;
    // Keys are per caller: another user's same key is their own checkout.
    let (bob, bob_token) = shop.customer();
    problem(
        shop.checkout(&bob, &bob_token, Some("order-key-1")).await,
        409,
        "cart_empty",
    )
    .await;
}

#[tokio::test]
async fn concurrent_first_attempts_with_one_key_create_one_order() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let answers = join_all((0..5).map(|_| shop.checkout(&uid, &token, Some("k")))).await;
    let mut ids = HashSet::new();
    for resp in answers {
        match resp.status().as_u16() {
            201 => {
                ids.insert(resp.json::<Value>().await.unwrap()["id"].to_string());
            }
            409 => {
                problem(resp, 409, "request_in_progress").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ids.len() <= 1, "{ids:?}");
    let resp = shop.checkout(&uid, &token, Some("k")).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(shop.invoice_count().await, 1);
}

#[tokio::test]
async fn orders_are_listed_newest_first_in_pages() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 100, "USD").await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        shop.add(&uid, &token, &tea, n).await;
        ids.push(shop.checkout_ok(&uid, &token).await["id"].clone());
    }
    let page: Value = shop
        .get(&format!("/user/{uid}/orders/?limit=2"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 0);
    let got: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["id"])
        .collect();
    assert_eq!(got, vec![&ids[2], &ids[1]]);
    assert_eq!(page["items"][0]["amount_cents"], 300);
    let rest: Value = shop
        .get(
            &format!("/user/{uid}/orders/?limit=2&offset=2"),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], ids[0]);
    for bad in ["limit=0", "limit=101", "offset=-1", "limit=x"] {
        let resp = shop
            .get(&format!("/user/{uid}/orders/?{bad}"), Some(&token))
            .await;
        problem(resp, 422, "validation_failed").await;
    }
}

// ---- payment confirmation --------------------------------------------------

#[tokio::test]
async fn a_purchase_is_paid_within_5s_and_confirmed_by_one_email() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();

    // A declined card leaves everything pending.
    let declined = shop.pay(invoice_id, "4000000000000002").await;
    assert_eq!(declined.status(), 402);
    assert_eq!(
        shop.order(&uid, &token, id).await["status"],
        "pending_payment"
    );

    let paid_at = Instant::now();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);
    let order = shop
        .wait_for_status(&uid, &token, id, "paid", PAID_WITHIN)
        .await;
    assert!(paid_at.elapsed() < PAID_WITHIN);
    assert!(order["paid_at"].as_str().is_some());

    let emails = eventually(Duration::from_secs(5), "the confirmation email", || async {
        let emails = shop.receiver.emails();
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(email.body["to"], format!("{uid}@example.com"));
    assert!(email.body["body"].as_str().unwrap().contains("9.00 USD"));
    assert_eq!(
        email.authorization,
        format!("Bearer {}", shop.cart.config.base.internal_key)
    );
    eventually(Duration::from_secs(5), "an order_paid event", || async {
        (shop.receiver.events("order_paid").len() == 1).then_some(())
    })
    .await;
    assert_eq!(queued_emails(&shop).await, 1);

    // Paying again is refused by payments and changes nothing here.
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 409);
    assert_eq!(queued_emails(&shop).await, 1);
}

/// An `invoice.paid` event as payments-mock sends it, for an invoice read
/// from payments.
async fn paid_event(shop: &Shop, event_id: &str, invoice_id: &str) -> Vec<u8> {
    let invoice: Value = shop
        .client
        .get(shop.payments.url(&format!("/invoices/{invoice_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::to_vec(&json!({
        "id": event_id,
        "type": "invoice.paid",
        "created_at": common::time::rfc3339(common::time::now_ms()),
        "invoice": invoice,
    }))
    .unwrap()
}

async fn post_webhook(shop: &Shop, body: &[u8], signature: Option<String>) -> reqwest::Response {
    let mut rb = shop
        .client
        .post(shop.url("/internal/payments/webhook"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        rb = rb.header("shop-signature", sig);
    }
    rb.send().await.unwrap()
}

fn now_secs() -> i64 {
    common::time::now_ms() / 1000
}

/// Only webhooks can mark orders paid here: payments' own webhooks go
/// nowhere and reconciliation waits an hour.
fn webhooks_only() -> Options {
    Options {
        webhooks: false,
        cart: Box::new(|c| c.reconcile_after = Duration::from_secs(3600)),
    }
}

#[tokio::test]
async fn a_webhook_with_a_bad_signature_changes_nothing() {
    let shop = shop_with(webhooks_only()).await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);
    let body = paid_event(&shop, "evt_forged", invoice_id).await;

    let wrong_secret = sign("another-secret-another-secret-another", now_secs(), &body);
    problem(
        post_webhook(&shop, &body, Some(wrong_secret)).await,
        401,
        "signature_invalid",
    )
    .await;
    problem(
        post_webhook(&shop, &body, None).await,
        401,
        "signature_missing",
    )
    .await;
    problem(
        post_webhook(&shop, &body, Some("garbage".into())).await,
        400,
        "signature_malformed",
    )
    .await;
    let stale = sign(WEBHOOK_SECRET, now_secs() - 600, &body);
    problem(
        post_webhook(&shop, &body, Some(stale)).await,
        401,
        "signature_stale",
    )
    .await;
    // Signed for another body.
    let other = sign(WEBHOOK_SECRET, now_secs(), b"{}");
    problem(
        post_webhook(&shop, &body, Some(other)).await,
        401,
        "signature_invalid",
    )
    .await;
    assert_eq!(shop.stored_status(id).await, "pending_payment");
    assert_eq!(queued_emails(&shop).await, 0);
    assert_eq!(
        count(
            &shop,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM webhook_events"
        )
        .await,
        0,
        "a refused event is not recorded, so its genuine delivery still counts"
    );

    // The same event, properly signed, is accepted.
    let good = sign(WEBHOOK_SECRET, now_secs(), &body);
    assert_eq!(post_webhook(&shop, &body, Some(good)).await.status(), 200);
    assert_eq!(shop.stored_status(id).await, "paid");
}

#[tokio::test]
async fn a_duplicate_webhook_sends_one_email() {
    let shop = shop_with(webhooks_only()).await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);

    let body = paid_event(&shop, "evt_1", invoice_id).await;
    // Delivered three times (re-signed each time, as retries are), and in
    // parallel, plus a second event about the same invoice.
    let deliveries = (0..3).map(|_| {
        let sig = sign(WEBHOOK_SECRET, now_secs(), &body);
        post_webhook(&shop, &body, Some(sig))
    });
    for resp in join_all(deliveries).await {
        assert_eq!(resp.status(), 200);
    }
    let second = paid_event(&shop, "evt_2", invoice_id).await;
    let sig = sign(WEBHOOK_SECRET, now_secs(), &second);
    assert_eq!(post_webhook(&shop, &second, Some(sig)).await.status(), 200);

    assert_eq!(shop.stored_status(id).await, "paid");
    assert_eq!(queued_emails(&shop).await, 1);
    eventually(
        Duration::from_secs(5),
        "the email and the event",
        || async {
            (shop.receiver.emails().len() == 1 && shop.receiver.events("order_paid").len() == 1)
                .then_some(())
        },
    )
    .await;

    // Events of other types are acknowledged and ignored; malformed
    // events with a valid signature are 422.
    let other = br#"{"id":"evt_3","type":"invoice.created","invoice":{}}"#;
    let sig = sign(WEBHOOK_SECRET, now_secs(), other);
    assert_eq!(post_webhook(&shop, other, Some(sig)).await.status(), 200);
    let bad = br#"{"id":"evt_4","type":"invoice.paid"}"#;
    let sig = sign(WEBHOOK_SECRET, now_secs(), bad);
    problem(
        post_webhook(&shop, bad, Some(sig)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(queued_emails(&shop).await, 1);
}

#[tokio::test]
async fn a_lost_webhook_is_made_up_for_by_reconciliation() {
    let shop = shop_with(Options {
        webhooks: false,
        ..Options::default()
    })
    .await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap().to_string();
    let invoice_id = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);
    // Nobody reads the order: the background sweep notices on its own.
    eventually(PAID_WITHIN, "the sweep to mark the order paid", || async {
        (shop.stored_status(&id).await == "paid").then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "the confirmation email", || async {
        (shop.receiver.emails().len() == 1).then_some(())
    })
    .await;
    assert_eq!(queued_emails(&shop).await, 1);
    assert_eq!(shop.order(&uid, &token, &id).await["status"], "paid");
}

#[tokio::test]
async fn reading_a_pending_order_asks_payments() {
    // The sweep is slowed right down, so only the read can notice.
    let shop = shop_with(Options {
        webhooks: false,
        cart: Box::new(|c| c.reconcile_interval = Duration::from_secs(3600)),
    })
    .await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(
        shop.pay(order["invoice_id"].as_str().unwrap(), GOOD_CARD)
            .await
            .status(),
        200
    );
    let order = shop
        .wait_for_status(&uid, &token, &id, "paid", PAID_WITHIN)
        .await;
    assert_eq!(order["status"], "paid");
    let list: Value = shop
        .get(&format!("/user/{uid}/orders/"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["status"], "paid");
    assert_eq!(queued_emails(&shop).await, 1);
}

#[tokio::test]
async fn a_payment_made_while_the_cart_is_down_is_confirmed_after_restart() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap().to_string();
    let invoice_id = order["invoice_id"].as_str().unwrap().to_string();

    shop.stop_cart().await;
    assert_eq!(shop.pay(&invoice_id, GOOD_CARD).await.status(), 200);
    // Payments keeps trying to deliver its webhook meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shop.start_cart_again().await;

    let restarted = Instant::now();
    eventually(
        PAID_WITHIN,
        "the order to be paid after the restart",
        || async { (shop.stored_status(&id).await == "paid").then_some(()) },
    )
    .await;
    assert!(restarted.elapsed() < PAID_WITHIN);
    // Wait until payments' webhook got through too, then count: the
    // webhook and the sweep both noticed, one email was queued.
    eventually(
        Duration::from_secs(10),
        "the webhook to be delivered",
        || async {
            let pool = sqlx::AnyPool::connect(&shop.payments_database_url())
                .await
                .ok()?;
            let n: i64 = sqlx::Row::get(
            &sqlx::query(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox WHERE delivered_at IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .ok()?,
            "n",
        );
            pool.close().await;
            (n == 1).then_some(())
        },
    )
    .await;
    assert_eq!(queued_emails(&shop).await, 1);
    eventually(Duration::from_secs(5), "the confirmation email", || async {
        (shop.receiver.emails().len() == 1).then_some(())
    })
    .await;
    assert_eq!(shop.order(&uid, &token, &id).await["status"], "paid");
    assert_eq!(shop.receiver.events("order_paid").len(), 1);
}

// ---- recovery of interrupted checkouts --------------------------------------

/// Writes an order as step 2 of a checkout leaves it, as if the process
/// died right after.
async fn interrupted_checkout(
    shop: &Shop,
    uid: &str,
    product_id: &str,
    quantity: i64,
    price: i64,
    key: Option<&str>,
    created_at: i64,
) -> String {
    let pool = shop.cart_db().await;
    let id = uuid::Uuid::now_v7().to_string();
    // One transaction, as checkout writes them: two separate statements
    // let the running sweep see (and settle) an order with no items yet.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO orders (id, user_id, email, checkout_key, amount_cents, currency, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'USD', 'creating', $6, $6)",
    )
    .bind(&id)
    .bind(uid)
    .bind(format!("{uid}@example.com"))
    .bind(key.map(str::to_string))
    .bind(price * quantity)
    .bind(created_at)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO order_items (id, order_id, position, product_id, name, unit_price_cents, quantity) \
         VALUES ($1, $2, 0, $3, 'Tea', $4, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&id)
    .bind(product_id)
    .bind(price)
    .bind(quantity)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
    id
}

#[tokio::test]
async fn an_interrupted_checkout_is_completed_or_abandoned_by_the_sweep() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 3).await;
    let long_ago = common::time::now_ms() - 60_000;
    // One that fits the cart, one that no longer can (the cart holds 3).
    let fits = interrupted_checkout(&shop, &uid, &tea, 2, 450, None, long_ago).await;
    let orphan = interrupted_checkout(&shop, &uid, &tea, 5, 450, None, long_ago).await;
    eventually(
        Duration::from_secs(10),
        "the sweep to settle both",
        || async {
            let a = shop.stored_status(&fits).await;
            let b = shop.stored_status(&orphan).await;
            (a != "creating" && b != "creating").then_some(())
        },
    )
    .await;
    assert_eq!(shop.stored_status(&fits).await, "pending_payment");
    assert_eq!(shop.stored_status(&orphan).await, "abandoned");
    let order = shop.order(&uid, &token, &fits).await;
    assert_eq!(order["amount_cents"], 900);
    assert!(order["invoice_id"].as_str().unwrap().starts_with("inv_"));
    assert_eq!(shop.cart(&uid, &token).await["items"][0]["quantity"], 1);
    // Abandoned orders never show.
    problem(
        shop.get(&format!("/user/{uid}/orders/{orphan}"), Some(&token))
            .await,
        404,
        "not_found",
    )
    .await;
    let list: Value = shop
        .get(&format!("/user/{uid}/orders/"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn a_retry_after_a_crash_gets_the_order_its_key_started() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;
    // The first attempt died after step 2 (its idempotency row expired).
    let started = interrupted_checkout(
        &shop,
        &uid,
        &tea,
        2,
        450,
        Some(&format!("{uid}:crash-key")),
        common::time::now_ms(),
    )
    .await;
    let resp = shop.checkout(&uid, &token, Some("crash-key")).await;
    assert_eq!(resp.status(), 201);
    let order: Value = resp.json().await.unwrap();
    assert_eq!(order["id"], started.as_str());
    assert_eq!(order["status"], "pending_payment");
    assert!(shop.cart(&uid, &token).await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(shop.invoice_count().await, 1);
}

// ---- the service itself -------------------------------------------------------

#[tokio::test]
async fn health_routing_and_methods() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    assert_eq!(shop.get("/healthz", None).await.status(), 200);
    assert_eq!(shop.get("/readyz", None).await.status(), 200);
    assert_eq!(shop.get("/metrics", None).await.status(), 200);
    let resp = shop
        .get(&format!("/user/{uid}/cart/checkout"), Some(&token))
        .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = shop
        .delete(&format!("/user/{uid}/orders/"), Some(&token))
        .await;
    assert_eq!(resp.status(), 405);
    problem(shop.get("/nope", None).await, 404, "not_found").await;
    // The internal endpoint takes POST only.
    assert_eq!(
        shop.get("/internal/payments/webhook", None).await.status(),
        405
    );
}
