//! Revoked tokens (see `common::token_versions`): users announces an
//! account's new token version on `POST /internal/token-versions`, and
//! from then on every replica refuses the account's older tokens, also
//! after a restart; a deleted account's tokens are all refused.

use std::time::Duration;

use common::auth::Role;
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::{invalid_fields, problem, As, TestApp};

const PATH: &str = "/internal/token-versions";

/// An admin token of `user_id` at token version `ver`.
fn admin(app: &TestApp, user_id: &str, ver: i64) -> String {
    app.keys
        .issue_for(user_id, Role::Admin, "admin@example.com", ver)
        .0
}

async fn announce(app: &TestApp, credential: Option<&str>, body: &Value) -> Response {
    let mut rb = app.client.post(app.url(PATH)).json(body);
    if let Some(credential) = credential {
        rb = rb.bearer_auth(credential);
    }
    rb.send().await.expect("POST sent")
}

/// Announces with the internal key; returns what the service stored.
async fn announce_ok(app: &TestApp, body: Value) -> Value {
    let resp = announce(app, Some(&app.config.base.internal_key), &body).await;
    assert_eq!(resp.status(), 200, "{body}");
    resp.json().await.expect("the stored version")
}

async fn create_as(app: &TestApp, token: &str) -> Response {
    let body = json!({"name": "Lamp", "description": "A lamp.", "price_cents": 100});
    app.post("/product/", &As::Header(format!("Bearer {token}")), &body)
        .await
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test]
async fn announcements_need_the_internal_key_and_a_sane_body() {
    let app = TestApp::spawn().await;
    let id = new_id();
    let body = json!({"user_id": id, "version": 1, "deleted": true});
    problem(announce(&app, None, &body).await, 401, "unauthorized").await;
    problem(
        announce(&app, Some("not-the-internal-key"), &body).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        announce(&app, Some(app.admin_token()), &body).await,
        403,
        "forbidden",
    )
    .await;
    let key = Some(app.config.base.internal_key.as_str());
    invalid_fields(
        announce(&app, key, &json!({"user_id": "", "version": -1})).await,
        &["user_id", "version"],
    )
    .await;
    let wrong_shape = announce(&app, key, &json!({"user_id": 5, "version": "1"})).await;
    assert_eq!(wrong_shape.status(), 422);
    let not_json = app
        .client
        .post(app.url(PATH))
        .bearer_auth(&app.config.base.internal_key)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    // None of that revoked anything.
    assert_eq!(create_as(&app, &admin(&app, &id, 0)).await.status(), 201);
}

#[tokio::test]
async fn versions_only_go_up_and_a_deletion_is_final() {
    let app = TestApp::spawn().await;
    let id = new_id();
    let stored = |version: i64, deleted: bool| json!({"user_id": id, "version": version, "deleted": deleted});
    assert_eq!(
        announce_ok(&app, json!({"user_id": id, "version": 3})).await,
        stored(3, false)
    );
    // Late, repeated and reordered deliveries change nothing.
    for late in [2, 3, 0] {
        assert_eq!(
            announce_ok(
                &app,
                json!({"user_id": id, "version": late, "deleted": false})
            )
            .await,
            stored(3, false)
        );
    }
    assert_eq!(
        announce_ok(&app, json!({"user_id": id, "version": 1, "deleted": true})).await,
        stored(3, true)
    );
    assert_eq!(
        announce_ok(&app, json!({"user_id": id, "version": 4, "deleted": false})).await,
        stored(4, true)
    );
}

#[tokio::test]
async fn a_revoked_admin_token_cannot_write_on_any_replica_even_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let replica = app.replica(Duration::from_secs(1)).await;
    let id = new_id();
    let old = admin(&app, &id, 0);
    assert_eq!(create_as(&app, &old).await.status(), 201);

    announce_ok(&app, json!({"user_id": id, "version": 1})).await;
    let refused = create_as(&app, &old).await;
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    problem(refused, 401, "unauthorized").await;
    let on_replica = app
        .client
        .post(replica.url("/product/"))
        .bearer_auth(&old)
        .json(&json!({"name": "Lamp", "description": "A lamp.", "price_cents": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(on_replica.status(), 401, "the replica shares the record");
    // A token issued after the change works at once.
    assert_eq!(create_as(&app, &admin(&app, &id, 1)).await.status(), 201);

    app.restart().await;
    assert_eq!(create_as(&app, &old).await.status(), 401, "durable");
    assert_eq!(create_as(&app, &admin(&app, &id, 1)).await.status(), 201);

    // A deleted account: every token, whatever its version.
    announce_ok(&app, json!({"user_id": id, "version": 2, "deleted": true})).await;
    for ver in [0, 2, 99] {
        assert_eq!(create_as(&app, &admin(&app, &id, ver)).await.status(), 401);
    }
    // Other accounts are untouched.
    assert_eq!(
        app.post(
            "/product/",
            &As::Admin,
            &json!({"name": "Lamp", "description": "A lamp.", "price_cents": 100})
        )
        .await
        .status(),
        201
    );
}
