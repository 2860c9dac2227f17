//! The payments-mock API over real HTTP: the service runs in-process on a
//! loopback port with a fresh database per test (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set) and is driven with reqwest; webhooks go to a
//! loopback receiver in the test.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::webhook::{self, SignatureError};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{
    card, dead_url, eventually, failure, problem, spawn_app, spawn_with, this_year, Receiver,
    OTHER_SERVER_KEY, SERVER_KEY,
};

const WAIT: Duration = Duration::from_secs(20);

fn keys_of(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

// ---- the service around the API ----

#[tokio::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let resp = app.get("/nope").await;
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("x-request-id"));
    problem(resp).await;

    let resp = app
        .client
        .delete(app.url("/invoices"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = app.get("/invoices/inv_x/pay").await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = app
        .client
        .put(app.url("/invoices/inv_x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
}

// ---- creating and reading invoices ----

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

// ---- Idempotency-Key ----

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_answer_byte_for_byte() {
    let app = spawn_app().await;
    let body = json!({"amount_cents": 1500, "reference": "cart 1"});
    let first = app.create_as(Some(SERVER_KEY), Some("key-1"), &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_ct = first.headers()["content-type"].clone();
    let first_bytes = first.bytes().await.unwrap();
    for _ in 0..3 {
        let again = app.create_as(Some(SERVER_KEY), Some("key-1"), &body).await;
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.headers()["content-type"], first_ct);
        assert_eq!(again.bytes().await.unwrap(), first_bytes);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 1);

    // The same key for another request is refused, and creates nothing.
    for other in [
        json!({"amount_cents": 1501, "reference": "cart 1"}),
        json!({"amount_cents": 1500}),
    ] {
        let resp = app.create_as(Some(SERVER_KEY), Some("key-1"), &other).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem(resp).await["code"], "idempotency_key_reused");
    }
    // Another key is another request.
    let other = app.create_as(Some(SERVER_KEY), Some("key-2"), &body).await;
    assert_eq!(other.status(), 201);
    assert_ne!(other.bytes().await.unwrap(), first_bytes);
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 2);
}

#[tokio::test]
async fn client_errors_are_replayed_too() {
    let app = spawn_app().await;
    let bad = json!({"amount_cents": 0});
    let first = app.create_as(Some(SERVER_KEY), Some("k"), &bad).await;
    assert_eq!(first.status(), 422);
    let first_bytes = first.bytes().await.unwrap();
    let again = app.create_as(Some(SERVER_KEY), Some("k"), &bad).await;
    assert_eq!(again.status(), 422);
    assert_eq!(again.headers()["content-type"], "application/problem+json");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first_bytes);
    // A corrected body needs a new key.
    let fixed = app
        .create_as(Some(SERVER_KEY), Some("k"), &json!({"amount_cents": 1}))
        .await;
    assert_eq!(problem(fixed).await["code"], "idempotency_key_reused");
    assert_eq!(
        app.create_as(Some(SERVER_KEY), Some("k2"), &json!({"amount_cents": 1}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn malformed_keys_are_422_and_unauthenticated_requests_claim_nothing() {
    let app = spawn_app().await;
    let body = json!({"amount_cents": 1});
    let long = "k".repeat(256);
    for key in [long.as_str(), "", "   "] {
        let resp = app.create_as(Some(SERVER_KEY), Some(key), &body).await;
        assert_eq!(resp.status(), 422, "{key:?}");
        let p = problem(resp).await;
        assert_eq!(p["code"], "invalid_idempotency_key");
        assert_eq!(p["errors"][0]["field"], "Idempotency-Key");
    }
    let latin1 = app
        .client
        .post(app.url("/invoices"))
        .bearer_auth(SERVER_KEY)
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(failure(latin1).await.1, "invalid_idempotency_key");
    assert_eq!(
        app.create_as(Some(SERVER_KEY), Some(&"k".repeat(255)), &body)
            .await
            .status(),
        201
    );

    // A 401 does not use up the key.
    assert_eq!(
        app.create_as(Some("wrong"), Some("fresh"), &body)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.create_as(Some(SERVER_KEY), Some("fresh"), &body)
            .await
            .status(),
        201
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 2);
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller() {
    let app = spawn_with(|c| c.server_keys.push(OTHER_SERVER_KEY.to_string())).await;
    let body = json!({"amount_cents": 700});
    let a = app.create_as(Some(SERVER_KEY), Some("same"), &body).await;
    let b = app
        .create_as(Some(OTHER_SERVER_KEY), Some("same"), &body)
        .await;
    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_ne!(a["id"], b["id"], "each caller's key is its own");
    let a_again: Value = app
        .create_as(Some(SERVER_KEY), Some("same"), &body)
        .await
        .json()
        .await
        .unwrap();
    let b_again: Value = app
        .create_as(Some(OTHER_SERVER_KEY), Some("same"), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((a_again, b_again), (a, b));
    // Another caller's key with another body is not a reuse.
    assert_eq!(
        app.create_as(
            Some(OTHER_SERVER_KEY),
            Some("only-a"),
            &json!({"amount_cents": 1})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.create_as(Some(SERVER_KEY), Some("only-a"), &body)
            .await
            .status(),
        201
    );
    // No server key is ever written to the database.
    let stored = app.dump("idempotency_keys").await.join("\n");
    assert!(!stored.contains(SERVER_KEY) && !stored.contains(OTHER_SERVER_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_creates_with_one_key_make_one_invoice() {
    let app = spawn_app().await;
    let body = json!({"amount_cents": 4200, "reference": "race"});
    let answers = join_all((0..50).map(|_| async {
        let resp = app
            .create_as(Some(SERVER_KEY), Some("race-key"), &body)
            .await;
        (resp.status(), resp.bytes().await.unwrap())
    }))
    .await;
    let mut created = HashSet::new();
    for (status, bytes) in &answers {
        match *status {
            StatusCode::CREATED => {
                created.insert(bytes.clone());
            }
            StatusCode::CONFLICT => {
                let p: Value = serde_json::from_slice(bytes).unwrap();
                assert_eq!(p["code"], "request_in_progress");
            }
            other => panic!("unexpected {other}: {bytes:?}"),
        }
    }
    assert_eq!(created.len(), 1, "every 201 carries the same invoice");
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 1);
    // Once settled, every retry replays.
    let again = app
        .create_as(Some(SERVER_KEY), Some("race-key"), &body)
        .await;
    assert_eq!(again.status(), 201);
    assert!(created.contains(&again.bytes().await.unwrap()));
}

#[tokio::test]
async fn a_request_in_flight_is_409_and_an_abandoned_one_is_taken_over() {
    let app = spawn_app().await;
    let body = json!({"amount_cents": 300});
    let bytes = serde_json::to_vec(&body).unwrap();
    // A first request that is "still running" (its process may have died).
    let pool = app.pool().await;
    let now = common::time::now_ms();
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash, claim, locked_at, created_at) \
         VALUES ($1, $2, $3, 'elsewhere', $4, $4)",
    )
    .bind(payments_mock::caller_scope(SERVER_KEY))
    .bind("in-flight")
    .bind(common::idempotency::request_hash(&http::Method::POST, "/invoices", &bytes))
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    let resp = app
        .create_as(Some(SERVER_KEY), Some("in-flight"), &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(problem(resp).await["code"], "request_in_progress");
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 0);

    // Past the lock timeout it no longer blocks: the retry runs and is kept.
    sqlx::query("UPDATE idempotency_keys SET locked_at = $1")
        .bind(now - 61_000)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let resp = app
        .create_as(Some(SERVER_KEY), Some("in-flight"), &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let first = resp.bytes().await.unwrap();
    let again = app
        .create_as(Some(SERVER_KEY), Some("in-flight"), &body)
        .await;
    assert_eq!(again.bytes().await.unwrap(), first);
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 1);
}

// ---- paying ----

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

// ---- webhooks ----

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

// ---- card data ----

#[tokio::test]
async fn card_numbers_and_cvcs_are_never_stored() {
    let receiver = Receiver::start(0).await;
    let app = spawn_with(|c| c.webhook_url = receiver.url()).await;
    let declined = app.invoice(100).await["id"].as_str().unwrap().to_string();
    let mut body = card("4000 0000 0000 0002");
    body["cvc"] = json!("8642");
    assert_eq!(app.pay(&declined, &body).await.status(), 402);
    let paid = app.invoice(100).await["id"].as_str().unwrap().to_string();
    let mut body = card("5555 5555 5555 4444");
    body["cvc"] = json!("9753");
    assert_eq!(app.pay(&paid, &body).await.status(), 200);
    receiver.wait_acknowledged(1, WAIT).await;

    let mut stored = Vec::new();
    for table in ["invoices", "outbox", "idempotency_keys"] {
        stored.extend(app.dump(table).await);
    }
    let text = stored.join("\n");
    assert!(
        text.contains("4444"),
        "the last four digits are kept: {text}"
    );
    for secret in [
        "5555555555554444",
        "555555555555",
        "4000000000000002",
        "card_number",
        "cvc",
    ] {
        assert!(!text.contains(secret), "{secret} is stored: {text}");
    }
    // A CVC's four digits may occur inside some random hex id, so it is
    // looked for as a whole value (and as a JSON field above).
    assert!(
        stored.iter().all(|v| v != "9753" && v != "8642"),
        "a CVC is stored"
    );
    // The webhook carries only brand and last4 too.
    let hook = &receiver.hooks()[0];
    assert_eq!(
        hook.json()["invoice"]["card"],
        json!({"brand": "mastercard", "last4": "4444"})
    );
    // On SQLite, the database files themselves (free pages included).
    if let Some(path) = common::db::sqlite_path(&app.config.base.database_url) {
        for file in [path.clone(), path.with_extension("db-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for secret in [&b"5555555555554444"[..], b"4000000000000002"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "found in {}",
                    file.display()
                );
            }
        }
    }
}

// ---- fault injection ----

#[tokio::test]
async fn the_failure_knob_answers_503_on_invoices_but_not_on_health() {
    let app = spawn_with(|c| c.faults.failure_rate = 1.0).await;
    let resp = app.create(&json!({"amount_cents": 1})).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(problem(resp).await["code"], "service_unavailable");
    let resp = app
        .get(&format!("/invoices/inv_{}", uuid::Uuid::now_v7().simple()))
        .await;
    assert_eq!(resp.status(), 503);
    let resp = app.pay("inv_x", &card("4242424242424242")).await;
    assert_eq!(resp.status(), 503);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM invoices").await, 0);
    // A failed request does not use up its idempotency key.
    let app = app.restart_with(|c| c.faults.failure_rate = 0.0).await;
    assert_eq!(
        app.create_as(Some(SERVER_KEY), Some("k"), &json!({"amount_cents": 1}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn the_latency_knob_delays_invoice_requests() {
    let app = spawn_with(|c| c.faults.latency_ms = (150, 150)).await;
    let started = Instant::now();
    assert_eq!(app.create(&json!({"amount_cents": 1})).await.status(), 201);
    // Only the lower bound: how much longer it takes is the machine's business.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}
