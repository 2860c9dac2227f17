//! Requests at once on one cart: parallel adds all count, parallel
//! checkouts make one order, and a checkout racing adds neither loses nor
//! doubles an item.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::shop;

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
    let orders = shop.orders(&uid, &token).await;
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
