//! Paying an invoice: the success card pays and only brand and last four
//! digits are kept, the declining test cards answer 402 and leave it open,
//! other Luhn-valid numbers pay with their brand, and of fifty parallel
//! payments exactly one succeeds.

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    card, failure, keys_of, problem, spawn_app, spawn_with, this_year, Receiver, WAIT,
};

#[tokio::test]
async fn the_success_card_pays_and_records_only_brand_and_last4() {
    let app = spawn_app().await;
    let inv = app.invoice(1999).await;
    let id = inv["id"].as_str().unwrap();
    let resp = app.pay(id, &card("4242424242424242")).await;
    assert_eq!(resp.status(), 200);
    let paid: Value = resp.json().await.unwrap();
    assert_eq!(
        keys_of(&paid),
        BTreeSet::from([
            "id",
            "amount_cents",
            "currency",
            "reference",
            "status",
            "created_at",
            "paid_at",
            "card"
        ])
    );
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["card"], json!({"brand": "visa", "last4": "4242"}));
    assert_eq!(paid["created_at"], inv["created_at"]);
    common::time::parse_rfc3339(paid["paid_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        app.get(&format!("/invoices/{id}"))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        paid
    );

    // A paid invoice cannot be paid again, with any card.
    for number in ["4242424242424242", "5555555555554444", "4000000000000002"] {
        let (status, code, _) = failure(app.pay(id, &card(number)).await).await;
        assert_eq!((status, code.as_str()), (409, "already_paid"), "{number}");
    }
}

#[tokio::test]
async fn declining_test_cards_answer_402_and_leave_the_invoice_open() {
    let app = spawn_app().await;
    let id = app.invoice(500).await["id"].as_str().unwrap().to_string();
    for (number, code) in [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000119", "processing_error"),
        ("4000 0000 0000 0002", "card_declined"),
    ] {
        let resp = app.pay(&id, &card(number)).await;
        assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED, "{number}");
        assert_eq!(problem(resp).await["code"], code, "{number}");
        assert_eq!(app.invoice_status(&id).await, "open");
    }
    // An expiry in the past is a decline too, not a validation error.
    let mut expired = card("4242424242424242");
    expired["exp_year"] = json!(this_year() - 1);
    let (status, code, _) = failure(app.pay(&id, &expired).await).await;
    assert_eq!((status, code.as_str()), (402, "expired_card"));
    let last_year_short = json!({"card_number": "4242424242424242", "exp_month": 1, "exp_year": (this_year() - 1) % 100, "cvc": "123"});
    assert_eq!(
        failure(app.pay(&id, &last_year_short).await).await.1,
        "expired_card"
    );
    assert_eq!(app.invoice_status(&id).await, "open");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox").await,
        0,
        "declines send no webhook"
    );

    // After the declines it can still be paid.
    assert_eq!(app.pay(&id, &card("4242424242424242")).await.status(), 200);
}

#[tokio::test]
async fn other_luhn_valid_numbers_pay_with_their_brand() {
    let app = spawn_app().await;
    for (number, brand, last4) in [
        ("5555 5555 5555 4444", "mastercard", "4444"),
        ("2223003122003222", "mastercard", "3222"),
        ("378282246310005", "amex", "0005"),
        ("6011111111111117", "unknown", "1117"),
        ("4000056655665556", "visa", "5556"),
    ] {
        let id = app.invoice(100).await["id"].as_str().unwrap().to_string();
        let mut body = card(number);
        body["cvc"] = json!("1234");
        let resp = app.pay(&id, &body).await;
        assert_eq!(resp.status(), 200, "{number}");
        let paid: Value = resp.json().await.unwrap();
        assert_eq!(
            paid["card"],
            json!({"brand": brand, "last4": last4}),
            "{number}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_payments_of_one_invoice_succeed_exactly_once() {
    let receiver = Receiver::start(0).await;
    let app = spawn_with(|c| c.webhook_url = receiver.url()).await;
    let id = app.invoice(10_000).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let numbers = ["4242424242424242", "5555555555554444", "378282246310005"];
    let answers = join_all((0..50).map(|i| {
        let body = card(numbers[i % numbers.len()]);
        let app = &app;
        let id = &id;
        async move {
            let resp = app.pay(id, &body).await;
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one payment succeeds: {statuses:?}"
    );
    for (status, body) in &answers {
        if *status != StatusCode::OK {
            assert_eq!(
                (*status, body["code"].as_str()),
                (StatusCode::CONFLICT, Some("already_paid"))
            );
        }
    }
    // The stored card is the winner's.
    let stored: Value = app
        .get(&format!("/invoices/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&stored, winners[0]);
    // One payment, one event.
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 1);
    let hooks = receiver.wait_acknowledged(1, WAIT).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["invoice"], stored);
}
