//! Who may use a user's cart and orders: that user or an admin; anyone else
//! is 401 (no or a bad token) or 403 (another customer's token), on every
//! path.

use serde_json::{json, Value};

use crate::support::{problem, shop};

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
