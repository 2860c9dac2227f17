//! Creating and reading invoices: creating needs a server key; a created
//! invoice is open and anyone with its id reads it; malformed and unknown
//! ids are 404.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{card, keys_of, problem, spawn_app, OTHER_SERVER_KEY, SERVER_KEY};

#[tokio::test]
async fn creating_needs_the_server_key() {
    let app = spawn_app().await;
    let body = json!({"amount_cents": 100});
    for key in [
        None,
        Some("wrong"),
        Some(&SERVER_KEY[..SERVER_KEY.len() - 1]),
        Some(OTHER_SERVER_KEY),
    ] {
        let resp = app.create_as(key, None, &body).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(problem(resp).await["code"], "unauthorized");
    }
    let basic = app
        .client
        .post(app.url("/invoices"))
        .header("authorization", format!("Basic {SERVER_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 0);
    assert_eq!(app.create(&body).await.status(), 201);
}

#[tokio::test]
async fn a_created_invoice_is_open_and_can_be_read_by_id() {
    let app = spawn_app().await;
    let resp = app
        .create(&json!({"amount_cents": 2599, "currency": "EUR", "reference": "order 42"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let inv: Value = resp.json().await.unwrap();
    assert_eq!(
        keys_of(&inv),
        BTreeSet::from([
            "id",
            "amount_cents",
            "currency",
            "reference",
            "status",
            "created_at"
        ])
    );
    let id = inv["id"].as_str().unwrap();
    assert!(id.starts_with("inv_") && id.len() == 36, "{id}");
    assert_eq!(inv["amount_cents"], 2599);
    assert_eq!(inv["currency"], "EUR");
    assert_eq!(inv["reference"], "order 42");
    assert_eq!(inv["status"], "open");
    common::time::parse_rfc3339(inv["created_at"].as_str().unwrap()).unwrap();
    assert!(inv["created_at"].as_str().unwrap().ends_with('Z'));

    // Anyone with the id reads it; no key needed.
    let resp = app.get(&format!("/invoices/{id}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), inv);

    // Defaults: USD and a null reference.
    let inv = app.invoice(1).await;
    assert_eq!(inv["currency"], "USD");
    assert_eq!(inv["reference"], Value::Null);
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let known = app.invoice(100).await;
    let id = known["id"].as_str().unwrap();
    let unknown = format!("inv_{}", uuid::Uuid::now_v7().simple());
    let shouting = id.to_uppercase().replace("INV_", "inv_");
    let long = "x".repeat(5000);
    for bad in [
        "nope",
        "inv_",
        "inv_123",
        "123",
        "%00%ff",
        long.as_str(),
        unknown.as_str(),
        shouting.as_str(),
    ] {
        let resp = app.get(&format!("/invoices/{bad}")).await;
        assert_eq!(resp.status(), 404, "{bad}");
        assert_eq!(problem(resp).await["code"], "not_found");
        let resp = app.pay(bad, &card("4242424242424242")).await;
        assert_eq!(resp.status(), 404, "pay {bad}");
    }
}
