//! The order and payment counters on `/metrics`, over real HTTP. The
//! payment provider runs in this test process, so it shares the cart's
//! recorder and its counters show on the cart's `/metrics` too. Other
//! tests run in parallel in the same process, so the checks are on how
//! much a counter moved at least, not on its value.

use std::time::Duration;

use crate::support::{problem, shop, Shop, GOOD_CARD};

async fn scrape(shop: &Shop) -> String {
    let resp = shop.get("/metrics", None).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// How much `name{labels}` grew from `before` to `after` (absent is 0).
fn moved(before: &str, after: &str, name: &str, labels: &[&str]) -> f64 {
    let value = |text| common::testing::metric(text, name, labels).unwrap_or(0.0);
    value(after) - value(before)
}

#[tokio::test]
async fn a_checkout_and_its_payments_move_the_order_and_payment_counters() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let product = shop.product("Metered mug", 900, "EUR").await;
    shop.add(&uid, &token, &product, 1).await;
    let before = scrape(&shop).await;
    // Registered at start, before any order: a dashboard shows 0, not nothing.
    for name in [
        "cart_orders_created_total",
        "cart_orders_paid_total",
        "cart_orders_abandoned_total",
        "payments_invoices_created_total",
    ] {
        assert!(
            common::testing::metric(&before, name, &[]).is_some(),
            "{name} missing from {before}"
        );
    }

    let order = shop.checkout_ok(&uid, &token).await;
    let invoice = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice, "4000000000000002").await.status(), 402);
    assert_eq!(shop.pay(invoice, GOOD_CARD).await.status(), 200);
    assert_eq!(shop.pay(invoice, GOOD_CARD).await.status(), 409);
    let id = order["id"].as_str().unwrap();
    shop.wait_for_status(&uid, &token, id, "paid", Duration::from_secs(10))
        .await;
    let after = scrape(&shop).await;

    let at_least_one = |name: &str, labels: &[&str]| {
        let n = moved(&before, &after, name, labels);
        assert!(n >= 1.0, "{name}{labels:?} moved by {n}");
    };
    at_least_one("cart_orders_created_total", &[]);
    at_least_one("cart_orders_paid_total", &[]);
    at_least_one("payments_invoices_created_total", &[]);
    at_least_one("payments_attempts_total", &["outcome=\"card_declined\""]);
    at_least_one("payments_attempts_total", &["outcome=\"paid\""]);
    at_least_one("payments_attempts_total", &["outcome=\"already_paid\""]);
}

#[tokio::test]
async fn a_checkout_the_provider_cannot_take_counts_as_abandoned() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let product = shop.product("Unpayable mug", 900, "EUR").await;
    shop.add(&uid, &token, &product, 1).await;
    let before = scrape(&shop).await;
    shop.stop_payments().await;
    problem(
        shop.checkout(&uid, &token, None).await,
        503,
        "payments_unavailable",
    )
    .await;
    let after = scrape(&shop).await;
    let reason = ["reason=\"payments_unavailable\""];
    let n = moved(&before, &after, "cart_orders_abandoned_total", &reason);
    assert!(n >= 1.0, "abandoned moved by {n}");
}
