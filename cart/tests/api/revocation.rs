//! Revoked tokens (see `common::token_versions`): once users has announced
//! an account's new token version on `POST /internal/token-versions`, the
//! account's older tokens are refused — also for checkout, and after a
//! restart — while a token issued after the change works at once.

use common::auth::Role;
use serde_json::{json, Value};

use crate::support::{problem, shop, Shop};

const PATH: &str = "/internal/token-versions";

async fn announce(shop: &Shop, credential: Option<&str>, body: &Value) -> reqwest::Response {
    let mut rb = shop.client.post(shop.url(PATH)).json(body);
    if let Some(credential) = credential {
        rb = rb.bearer_auth(credential);
    }
    rb.send().await.unwrap()
}

async fn announce_ok(shop: &Shop, body: Value) {
    let key = shop.cart.config.base.internal_key.clone();
    let resp = announce(shop, Some(&key), &body).await;
    assert_eq!(resp.status(), 200, "{body}");
}

fn token(shop: &Shop, user_id: &str, role: Role, ver: i64) -> String {
    shop.keys
        .issue_for(user_id, role, &format!("{user_id}@example.com"), ver)
        .0
}

#[tokio::test]
async fn announcements_need_the_internal_key() {
    let shop = shop().await;
    let (id, customer) = shop.customer();
    let body = json!({"user_id": id, "version": 1});
    problem(announce(&shop, None, &body).await, 401, "unauthorized").await;
    problem(
        announce(&shop, Some(&customer), &body).await,
        403,
        "forbidden",
    )
    .await;
    // Nothing was revoked.
    shop.cart(&id, &customer).await;
}

#[tokio::test]
async fn a_revoked_token_cannot_check_out_and_one_issued_after_can() {
    let mut shop = shop().await;
    let product = shop.product("Mug", 1200, "USD").await;
    let (id, old) = shop.customer();
    shop.add(&id, &old, &product, 2).await;

    announce_ok(&shop, json!({"user_id": id, "version": 1})).await;
    let refused = shop.checkout(&id, &old, None).await;
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    problem(refused, 401, "unauthorized").await;
    let read = shop.get(&format!("/user/{id}/cart/"), Some(&old)).await;
    problem(read, 401, "unauthorized").await;

    shop.stop_cart().await;
    shop.start_cart_again().await;
    let after_restart = shop.checkout(&id, &old, None).await;
    problem(after_restart, 401, "unauthorized").await;

    let new = token(&shop, &id, Role::Customer, 1);
    let order = shop.checkout_ok(&id, &new).await;
    assert_eq!(order["amount_cents"], 2400);
}

#[tokio::test]
async fn a_deleted_admin_reads_no_ones_orders() {
    let shop = shop().await;
    let (customer, customer_token) = shop.customer();
    let admin_id = uuid::Uuid::now_v7().to_string();
    let admin = token(&shop, &admin_id, Role::Admin, 3);
    let orders = format!("/user/{customer}/orders/");
    assert_eq!(shop.get(&orders, Some(&admin)).await.status(), 200);

    announce_ok(
        &shop,
        json!({"user_id": admin_id, "version": 4, "deleted": true}),
    )
    .await;
    problem(shop.get(&orders, Some(&admin)).await, 401, "unauthorized").await;
    let newer = token(&shop, &admin_id, Role::Admin, 9);
    problem(shop.get(&orders, Some(&newer)).await, 401, "unauthorized").await;
    // The customer is someone else: untouched.
    assert_eq!(shop.get(&orders, Some(&customer_token)).await.status(), 200);
}
