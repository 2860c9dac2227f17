//! The `invoice.paid` webhook: retried until acknowledged, the same signed
//! event on every attempt, delivered once; and an undelivered one is
//! delivered after a restart.

use std::collections::BTreeSet;

use common::webhook::{self, SignatureError};
use serde_json::Value;

use crate::support::{card, dead_url, eventually, keys_of, spawn_with, Receiver, WAIT};

#[tokio::test]
async fn the_paid_webhook_is_retried_until_acknowledged_and_its_signature_verifies() {
    let receiver = Receiver::start(2).await;
    let app = spawn_with(|c| c.webhook_url = receiver.url()).await;
    let secret = app.config.webhook_secret.clone();
    let id = app.invoice(3100).await["id"].as_str().unwrap().to_string();
    let paid: Value = app
        .pay(&id, &card("4242424242424242"))
        .await
        .json()
        .await
        .unwrap();

    let hooks = receiver.wait_acknowledged(1, WAIT).await;
    assert_eq!(
        hooks.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // Every attempt is the same event, carrying its id for deduplication.
    let event = hooks[0].json();
    for h in &hooks {
        assert_eq!(h.path, "/internal/payments/webhook");
        assert_eq!(h.content_type, "application/json");
        assert_eq!(
            h.body, hooks[0].body,
            "the body is the same on every attempt"
        );
        assert_eq!(h.idempotency_key, hooks[0].idempotency_key);
        assert_eq!(
            webhook::verify_now(
                &secret,
                &h.signature,
                &h.body,
                webhook::DEFAULT_TOLERANCE_SECS
            ),
            Ok(())
        );
    }
    assert_eq!(
        keys_of(&event),
        BTreeSet::from(["id", "type", "created_at", "invoice"])
    );
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["type"], "invoice.paid");
    assert_eq!(event["created_at"], paid["paid_at"]);
    assert_eq!(event["invoice"], paid);

    // The signature is over exactly these bytes, with this secret, now.
    let h = &hooks[2];
    assert!(
        h.signature.starts_with("t=") && h.signature.contains(",v1="),
        "{}",
        h.signature
    );
    let mut tampered = h.body.to_vec();
    tampered[10] ^= 1;
    assert_eq!(
        webhook::verify_now(&secret, &h.signature, &tampered, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        webhook::verify_now("another-secret", &h.signature, &h.body, 300),
        Err(SignatureError::Mismatch)
    );
    let forged = format!(
        "{},v1={}",
        h.signature.split(',').next().unwrap(),
        "ab".repeat(32)
    );
    assert_eq!(
        webhook::verify_now(&secret, &forged, &h.body, 300),
        Err(SignatureError::Mismatch)
    );
    let t: i64 = h.signature[2..].split(',').next().unwrap().parse().unwrap();
    assert_eq!(
        webhook::verify(&secret, &h.signature, &h.body, t + 301, 300),
        Err(SignatureError::Stale)
    );

    // Delivered once: acknowledged, recorded, never sent again.
    eventually("the delivery to be recorded", WAIT, || async {
        (app.count("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL AND attempts = 3")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        receiver.hooks().iter().filter(|h| h.status == 200).count(),
        1
    );
}

#[tokio::test]
async fn an_undelivered_webhook_is_delivered_after_a_restart() {
    let down = dead_url().await;
    let app = spawn_with(|c| c.webhook_url = down).await;
    let id = app.invoice(800).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.pay(&id, &card("4242424242424242")).await.status(), 200);
    // At least one attempt failed while the receiver was unreachable.
    eventually("a failed attempt", WAIT, || async {
        (app.count("SELECT COUNT(*) FROM outbox WHERE attempts > 0 AND delivered_at IS NULL")
            .await
            == 1)
            .then_some(())
    })
    .await;

    let receiver = Receiver::start(0).await;
    let url = receiver.url();
    let app = app.restart_with(|c| c.webhook_url = url).await;
    let hooks = receiver.wait_acknowledged(1, WAIT).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["invoice"]["id"], id.as_str());
    assert_eq!(
        webhook::verify_now(
            &app.config.webhook_secret,
            &hooks[0].signature,
            &hooks[0].body,
            300
        ),
        Ok(())
    );
}
