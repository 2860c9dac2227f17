//! Paying an order: a declined card leaves it pending; a paid one is marked
//! paid within 5 s and confirmed by exactly one email and one `order_paid`
//! event; paying again changes nothing.

use std::time::{Duration, Instant};

use crate::support::{eventually, queued_emails, shop, GOOD_CARD, PAID_WITHIN};

#[tokio::test]
async fn a_purchase_is_paid_within_5s_and_confirmed_by_one_email() {
    let shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 2).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();

    // A declined card leaves everything pending.
    let declined = shop.pay(invoice_id, "4000000000000002").await;
    assert_eq!(declined.status(), 402);
    assert_eq!(
        shop.order(&uid, &token, id).await["status"],
        "pending_payment"
    );

    let paid_at = Instant::now();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);
    let order = shop
        .wait_for_status(&uid, &token, id, "paid", PAID_WITHIN)
        .await;
    assert!(paid_at.elapsed() < PAID_WITHIN);
    assert!(order["paid_at"].as_str().is_some());

    let emails = eventually(Duration::from_secs(5), "the confirmation email", || async {
        let emails = shop.receiver.emails();
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(email.body["to"], format!("{uid}@example.com"));
    assert!(email.body["body"].as_str().unwrap().contains("9.00 USD"));
    assert_eq!(
        email.authorization,
        format!("Bearer {}", shop.cart.config.base.internal_key)
    );
    eventually(Duration::from_secs(5), "an order_paid event", || async {
        (shop.receiver.events("order_paid").len() == 1).then_some(())
    })
    .await;
    assert_eq!(queued_emails(&shop).await, 1);

    // Paying again is refused by payments and changes nothing here.
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 409);
    assert_eq!(queued_emails(&shop).await, 1);
}
