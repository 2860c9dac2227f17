//! `Idempotency-Key` on creating invoices: a retry replays the first answer
//! byte for byte (client errors too), another body under the key is
//! refused, malformed keys are 422, keys are per caller, parallel first
//! attempts make one invoice, and an abandoned attempt is taken over.

use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{failure, problem, spawn_app, spawn_with, OTHER_SERVER_KEY, SERVER_KEY};

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
