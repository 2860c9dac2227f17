//! Prices, deleted products and currencies: lines show the product's
//! current name and price, a deleted product is flagged and blocks checkout,
//! an order keeps the price it was bought at, and a cart mixing currencies
//! cannot be checked out.

use serde_json::{json, Value};

use crate::support::{problem, shop};

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
