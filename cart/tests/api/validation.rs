//! What the cart refuses: quantities outside 1–999 (also when an add would
//! take a line past 999), unknown or deleted products, bodies that are not
//! a cart line or not JSON, and ids that do not parse (404).

use serde_json::json;

use crate::support::{problem, shop};

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
