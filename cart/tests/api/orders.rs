//! The order list: newest first, paged with `limit` and `offset`, which are
//! validated.

use serde_json::Value;

use crate::support::{problem, shop};

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
