//! The cart reads the products of its lines in one request to products
//! (`GET /products/?ids=…`), not one per line: counted by a recording relay
//! between the real cart and the real products, for a full cart's read and
//! for checkout, with a deleted product among the lines.

use std::collections::BTreeSet;

use common::testing::Recorded;

use crate::support::{problem, shop};

/// The one request the cart made to products, which must be a batch read
/// naming exactly `ids`.
fn one_batch_read(seen: &[Recorded], ids: &[String]) {
    let paths: Vec<String> = seen.iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/products/"], "one batch read, not one per line");
    let named: BTreeSet<&str> = seen[0]
        .query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ids="))
        .expect("an ids parameter")
        .split(',')
        .collect();
    let expected: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(named, expected);
    assert_eq!(seen[0].status, 200);
}

#[tokio::test]
async fn a_full_cart_is_read_and_checked_out_with_one_products_request_each() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let mut ids = Vec::new();
    let mut items = Vec::new();
    // 100 lines: as many as a cart holds.
    for i in 0..100 {
        let id = shop.product(&format!("Item {i}"), 100 + i, "USD").await;
        items.push(shop.add(&uid, &token, &id, 1).await);
        ids.push(id);
    }
    shop.delete_product(&ids[99]).await;
    let relay = shop.relay_products().await;

    // The read: every line with its product, the deleted one flagged.
    let cart = shop.cart(&uid, &token).await;
    let lines = cart["items"].as_array().unwrap();
    assert_eq!(lines.len(), 100);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["name"], format!("Item {i}"));
        assert_eq!(line["unit_price_cents"], 100 + i);
        assert_eq!(line["available"], i != 99, "line {i}");
    }
    assert_eq!(cart["total_cents"], (0..99).map(|i| 100 + i).sum::<i64>());
    one_batch_read(&relay.requests(), &ids);

    // Checkout refuses the deleted product after one read too.
    relay.clear();
    let resp = shop.checkout(&uid, &token, None).await;
    let body = problem(resp, 409, "product_unavailable").await;
    assert!(
        body["detail"].as_str().unwrap().contains(&ids[99]),
        "{body}"
    );
    one_batch_read(&relay.requests(), &ids);

    // Without it, checkout makes the order from one read.
    let gone = format!("/user/{uid}/cart/{}", items[99]["id"].as_str().unwrap());
    assert_eq!(shop.delete(&gone, Some(&token)).await.status(), 204);
    relay.clear();
    let order = shop.checkout_ok(&uid, &token).await;
    assert_eq!(order["items"].as_array().unwrap().len(), 99);
    assert_eq!(order["amount_cents"], cart["total_cents"]);
    one_batch_read(&relay.requests(), &ids[..99]);
}
