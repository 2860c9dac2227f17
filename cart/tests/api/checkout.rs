//! Checkout: the cart's lines become an order with an invoice at payments
//! for its amount, the cart is emptied, an `order_created` event is sent;
//! an empty cart is 409.

use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, keys, problem, shop};

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
