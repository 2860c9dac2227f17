//! What is refused before anything is stored: every invalid invoice field
//! and card detail is 422 naming the field, and bodies that are not JSON
//! are 400, 413 or 415, for creating and for paying.

use serde_json::{json, Value};

use crate::support::{card, failure, problem, spawn_app, this_year, SERVER_KEY};

#[tokio::test]
async fn every_invalid_field_is_422_naming_it() {
    let app = spawn_app().await;
    let cases = [
        (json!({"amount_cents": 1.5}), "amount_cents"),
        (json!({"amount_cents": 100.0}), "amount_cents"),
        (json!({"amount_cents": "100"}), "amount_cents"),
        (json!({"amount_cents": 0}), "amount_cents"),
        (json!({"amount_cents": -100}), "amount_cents"),
        (json!({"amount_cents": null}), "amount_cents"),
        (
            json!({"amount_cents": 18446744073709551615u64}),
            "amount_cents",
        ),
        (json!({"currency": "USD"}), "amount_cents"),
        (json!({"amount_cents": 1, "currency": "usd"}), "currency"),
        (
            json!({"amount_cents": 1, "currency": "DOLLARS"}),
            "currency",
        ),
        (json!({"amount_cents": 1, "currency": 840}), "currency"),
        (
            json!({"amount_cents": 1, "reference": "r".repeat(201)}),
            "reference",
        ),
        (json!({"amount_cents": 1, "reference": ["a"]}), "reference"),
        (json!([{"amount_cents": 1}]), "body"),
        (json!("amount_cents"), "body"),
    ];
    for (body, field) in cases {
        let (status, code, got) = failure(app.create(&body).await).await;
        assert_eq!(
            (status, code.as_str(), got.as_deref()),
            (422, "validation_failed", Some(field)),
            "{body}"
        );
    }
    // All problems at once.
    let resp = app
        .create(&json!({"amount_cents": 0, "currency": "x", "reference": 5}))
        .await;
    let errors: Vec<String> = problem(resp).await["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors, ["amount_cents", "currency", "reference"]);
    // 200 characters (not bytes) is fine.
    assert_eq!(
        app.create(&json!({"amount_cents": 1, "reference": "é".repeat(200)}))
            .await
            .status(),
        201
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 1);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused() {
    let app = spawn_app().await;
    let post = |ct: Option<&'static str>, body: Vec<u8>| {
        let mut rb = app
            .client
            .post(app.url("/invoices"))
            .bearer_auth(SERVER_KEY)
            .body(body);
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        rb.send()
    };
    let resp = post(Some("application/json"), b"{\"amount_cents\":".to_vec())
        .await
        .unwrap();
    assert_eq!(failure(resp).await.0, 400);
    let resp = post(Some("text/plain"), b"{\"amount_cents\":1}".to_vec())
        .await
        .unwrap();
    assert_eq!(failure(resp).await.0, 415);
    let resp = post(None, b"{\"amount_cents\":1}".to_vec()).await.unwrap();
    assert_eq!(failure(resp).await.0, 415);
    let huge = format!(
        "{{\"amount_cents\":1,\"reference\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let resp = post(Some("application/json"), huge.into_bytes())
        .await
        .unwrap();
    assert_eq!(failure(resp).await.0, 413);
    // The same for paying.
    let id = app.invoice(100).await["id"].as_str().unwrap().to_string();
    let resp = app
        .client
        .post(app.url(&format!("/invoices/{id}/pay")))
        .header("content-type", "text/plain")
        .body(card("4242424242424242").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(failure(resp).await.0, 415);
    let resp = app
        .client
        .post(app.url(&format!("/invoices/{id}/pay")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(failure(resp).await.0, 400);
    assert_eq!(app.invoice_status(&id).await, "open");
}

#[tokio::test]
async fn invalid_card_details_are_422_naming_the_field() {
    let app = spawn_app().await;
    let id = app.invoice(100).await["id"].as_str().unwrap().to_string();
    let with = |field: &str, value: Value| {
        let mut body = card("4242424242424242");
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = card("4242424242424242");
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (
            with("card_number", json!("4242424242424241")),
            "card_number",
        ),
        (
            with("card_number", json!("4242-4242-4242-4242")),
            "card_number",
        ),
        (with("card_number", json!("42424242424")), "card_number"),
        (with("card_number", json!("4".repeat(20))), "card_number"),
        (with("card_number", json!("")), "card_number"),
        (
            with("card_number", json!(4242424242424242u64)),
            "card_number",
        ),
        (without("card_number"), "card_number"),
        (with("exp_month", json!(0)), "exp_month"),
        (with("exp_month", json!(13)), "exp_month"),
        (with("exp_month", json!("12")), "exp_month"),
        (without("exp_month"), "exp_month"),
        (with("exp_year", json!(this_year() + 51)), "exp_year"),
        (with("exp_year", json!(123)), "exp_year"),
        (with("exp_year", json!(2030.5)), "exp_year"),
        (without("exp_year"), "exp_year"),
        (with("cvc", json!("12")), "cvc"),
        (with("cvc", json!("12345")), "cvc"),
        (with("cvc", json!("12a")), "cvc"),
        (with("cvc", json!(123)), "cvc"),
        (without("cvc"), "cvc"),
        (json!(["4242424242424242"]), "body"),
    ];
    for (body, field) in cases {
        let resp = app.pay(&id, &body).await;
        let status = resp.status();
        let p = problem(resp).await;
        assert_eq!(
            (status.as_u16(), p["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
        // The problem never echoes the number back.
        assert!(!p.to_string().contains("4242424242424242"), "{p}");
    }
    let resp = app
        .pay(
            &id,
            &json!({"card_number": "1234", "exp_month": 0, "exp_year": 123, "cvc": "x"}),
        )
        .await;
    let fields: Vec<Value> = problem(resp).await["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(
        fields,
        [
            json!("card_number"),
            json!("exp_month"),
            json!("exp_year"),
            json!("cvc")
        ]
    );
    assert_eq!(app.invoice_status(&id).await, "open");
}
