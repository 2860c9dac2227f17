//! Recovery of interrupted checkouts: an order a crash left in `creating`
//! is completed or abandoned by the sweep, and a retry with its key gets
//! that order.

use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, problem, shop, Shop};

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
    let list = shop.orders(&uid, &token).await;
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
