//! The cart's lines, endpoint by endpoint as the API table says: add (the
//! same product again adds to its line), read the cart and one line, set a
//! quantity, delete; and the `cart_item_added` event each add sends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventually, keys, problem, shop};

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
