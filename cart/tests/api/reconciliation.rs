//! Reconciliation with payments when no webhook arrives: the background
//! sweep, a read of a pending order, and the sweep after a restart of the
//! cart each mark a paid order paid, with one email.

use std::time::{Duration, Instant};

use crate::support::{eventually, queued_emails, shop, shop_with, Options, GOOD_CARD, PAID_WITHIN};

#[tokio::test]
async fn a_lost_webhook_is_made_up_for_by_reconciliation() {
    let shop = shop_with(Options {
        webhooks: false,
        ..Options::default()
    })
    .await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap().to_string();
    let invoice_id = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);
    // Nobody reads the order: the background sweep notices on its own.
    eventually(PAID_WITHIN, "the sweep to mark the order paid", || async {
        (shop.stored_status(&id).await == "paid").then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "the confirmation email", || async {
        (shop.receiver.emails().len() == 1).then_some(())
    })
    .await;
    assert_eq!(queued_emails(&shop).await, 1);
    assert_eq!(shop.order(&uid, &token, &id).await["status"], "paid");
}

#[tokio::test]
async fn reading_a_pending_order_asks_payments() {
    // The sweep is slowed right down, so only the read can notice.
    let shop = shop_with(Options {
        webhooks: false,
        cart: Box::new(|c| c.reconcile_interval = Duration::from_secs(3600)),
    })
    .await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(
        shop.pay(order["invoice_id"].as_str().unwrap(), GOOD_CARD)
            .await
            .status(),
        200
    );
    let order = shop
        .wait_for_status(&uid, &token, &id, "paid", PAID_WITHIN)
        .await;
    assert_eq!(order["status"], "paid");
    let list = shop.orders(&uid, &token).await;
    assert_eq!(list["items"][0]["status"], "paid");
    assert_eq!(queued_emails(&shop).await, 1);
}

#[tokio::test]
async fn a_payment_made_while_the_cart_is_down_is_confirmed_after_restart() {
    let mut shop = shop().await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap().to_string();
    let invoice_id = order["invoice_id"].as_str().unwrap().to_string();

    shop.stop_cart().await;
    assert_eq!(shop.pay(&invoice_id, GOOD_CARD).await.status(), 200);
    // Payments keeps trying to deliver its webhook meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shop.start_cart_again().await;

    let restarted = Instant::now();
    eventually(
        PAID_WITHIN,
        "the order to be paid after the restart",
        || async { (shop.stored_status(&id).await == "paid").then_some(()) },
    )
    .await;
    assert!(restarted.elapsed() < PAID_WITHIN);
    // Wait until payments' webhook got through too, then count: the
    // webhook and the sweep both noticed, one email was queued.
    eventually(
        Duration::from_secs(10),
        "the webhook to be delivered",
        || async {
            let pool = sqlx::AnyPool::connect(&shop.payments_database_url())
                .await
                .ok()?;
            let n: i64 = sqlx::Row::get(
            &sqlx::query(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox WHERE delivered_at IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .ok()?,
            "n",
        );
            pool.close().await;
            (n == 1).then_some(())
        },
    )
    .await;
    assert_eq!(queued_emails(&shop).await, 1);
    eventually(Duration::from_secs(5), "the confirmation email", || async {
        (shop.receiver.emails().len() == 1).then_some(())
    })
    .await;
    assert_eq!(shop.order(&uid, &token, &id).await["status"], "paid");
    // The stats event travels by its own outbox delivery: it may still be
    // on its way when the email has arrived.
    eventually(Duration::from_secs(5), "an order_paid event", || async {
        (!shop.receiver.events("order_paid").is_empty()).then_some(())
    })
    .await;
    assert_eq!(shop.receiver.events("order_paid").len(), 1);
}
