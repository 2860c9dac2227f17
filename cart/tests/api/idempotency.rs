//! Checkout's `Idempotency-Key`: a retry, also concurrent, is the same
//! order and one invoice; the key with another request is refused; keys
//! are per caller; concurrent first attempts create one order.

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::{problem, shop};

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
    let orders = shop.orders(&uid, &token).await;
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
