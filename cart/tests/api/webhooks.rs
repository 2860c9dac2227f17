//! Payments' `invoice.paid` webhook on `/internal/payments/webhook`: a
//! forged, missing, malformed or stale signature changes nothing; duplicate
//! and concurrent deliveries send one email; other event types are ignored
//! and malformed ones are 422.

use std::time::Duration;

use common::webhook::sign;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::{
    count, eventually, problem, queued_emails, shop_with, Options, Shop, GOOD_CARD,
};

const WEBHOOK_SECRET: &str = "test-webhook-secret-test-webhook-secret";

/// An `invoice.paid` event as payments-mock sends it, for an invoice read
/// from payments.
async fn paid_event(shop: &Shop, event_id: &str, invoice_id: &str) -> Vec<u8> {
    let invoice: Value = shop
        .client
        .get(shop.payments.url(&format!("/invoices/{invoice_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::to_vec(&json!({
        "id": event_id,
        "type": "invoice.paid",
        "created_at": common::time::rfc3339(common::time::now_ms()),
        "invoice": invoice,
    }))
    .unwrap()
}

async fn post_webhook(shop: &Shop, body: &[u8], signature: Option<String>) -> reqwest::Response {
    let mut rb = shop
        .client
        .post(shop.url("/internal/payments/webhook"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        rb = rb.header("shop-signature", sig);
    }
    rb.send().await.unwrap()
}

fn now_secs() -> i64 {
    common::time::now_ms() / 1000
}

/// Only webhooks can mark orders paid here: payments' own webhooks go
/// nowhere and reconciliation waits an hour.
fn webhooks_only() -> Options {
    Options {
        webhooks: false,
        cart: Box::new(|c| c.reconcile_after = Duration::from_secs(3600)),
    }
}

#[tokio::test]
async fn a_webhook_with_a_bad_signature_changes_nothing() {
    let shop = shop_with(webhooks_only()).await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);
    let body = paid_event(&shop, "evt_forged", invoice_id).await;

    let wrong_secret = sign("another-secret-another-secret-another", now_secs(), &body);
    problem(
        post_webhook(&shop, &body, Some(wrong_secret)).await,
        401,
        "signature_invalid",
    )
    .await;
    problem(
        post_webhook(&shop, &body, None).await,
        401,
        "signature_missing",
    )
    .await;
    problem(
        post_webhook(&shop, &body, Some("garbage".into())).await,
        400,
        "signature_malformed",
    )
    .await;
    let stale = sign(WEBHOOK_SECRET, now_secs() - 600, &body);
    problem(
        post_webhook(&shop, &body, Some(stale)).await,
        401,
        "signature_stale",
    )
    .await;
    // Signed for another body.
    let other = sign(WEBHOOK_SECRET, now_secs(), b"{}");
    problem(
        post_webhook(&shop, &body, Some(other)).await,
        401,
        "signature_invalid",
    )
    .await;
    assert_eq!(shop.stored_status(id).await, "pending_payment");
    assert_eq!(queued_emails(&shop).await, 0);
    assert_eq!(
        count(
            &shop,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM webhook_events"
        )
        .await,
        0,
        "a refused event is not recorded, so its genuine delivery still counts"
    );

    // The same event, properly signed, is accepted.
    let good = sign(WEBHOOK_SECRET, now_secs(), &body);
    assert_eq!(post_webhook(&shop, &body, Some(good)).await.status(), 200);
    assert_eq!(shop.stored_status(id).await, "paid");
}

#[tokio::test]
async fn a_duplicate_webhook_sends_one_email() {
    let shop = shop_with(webhooks_only()).await;
    let (uid, token) = shop.customer();
    let tea = shop.product("Tea", 450, "USD").await;
    shop.add(&uid, &token, &tea, 1).await;
    let order = shop.checkout_ok(&uid, &token).await;
    let id = order["id"].as_str().unwrap();
    let invoice_id = order["invoice_id"].as_str().unwrap();
    assert_eq!(shop.pay(invoice_id, GOOD_CARD).await.status(), 200);

    let body = paid_event(&shop, "evt_1", invoice_id).await;
    // Delivered three times (re-signed each time, as retries are), and in
    // parallel, plus a second event about the same invoice.
    let deliveries = (0..3).map(|_| {
        let sig = sign(WEBHOOK_SECRET, now_secs(), &body);
        post_webhook(&shop, &body, Some(sig))
    });
    for resp in join_all(deliveries).await {
        assert_eq!(resp.status(), 200);
    }
    let second = paid_event(&shop, "evt_2", invoice_id).await;
    let sig = sign(WEBHOOK_SECRET, now_secs(), &second);
    assert_eq!(post_webhook(&shop, &second, Some(sig)).await.status(), 200);

    assert_eq!(shop.stored_status(id).await, "paid");
    assert_eq!(queued_emails(&shop).await, 1);
    eventually(
        Duration::from_secs(5),
        "the email and the event",
        || async {
            (shop.receiver.emails().len() == 1 && shop.receiver.events("order_paid").len() == 1)
                .then_some(())
        },
    )
    .await;

    // Events of other types are acknowledged and ignored; malformed
    // events with a valid signature are 422.
    let other = br#"{"id":"evt_3","type":"invoice.created","invoice":{}}"#;
    let sig = sign(WEBHOOK_SECRET, now_secs(), other);
    assert_eq!(post_webhook(&shop, other, Some(sig)).await.status(), 200);
    let bad = br#"{"id":"evt_4","type":"invoice.paid"}"#;
    let sig = sign(WEBHOOK_SECRET, now_secs(), bad);
    problem(
        post_webhook(&shop, bad, Some(sig)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(queued_emails(&shop).await, 1);
}
