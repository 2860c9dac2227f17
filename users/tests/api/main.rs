//! The users API over real HTTP: the service runs in-process on a loopback
//! port with a fresh database per test (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set), and is driven with reqwest.

mod limits;
mod revocation;
mod support;

mod admin;
mod data_dir;
mod registration;

use std::collections::HashSet;
use std::time::Duration;

use common::auth::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{spawn_app, spawn_with, Receiver};

#[tokio::test]
async fn register_returns_the_user_without_secrets() {
    let app = spawn_app().await;
    let resp = app
        .register("Ann@Example.com", "correct horse", "Ann")
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(resp.headers().contains_key("x-request-id"));
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["email"], "Ann@Example.com");
    assert_eq!(user["name"], "Ann");
    assert_eq!(user["role"], "customer");
    assert!(user["id"].as_str().unwrap().len() >= 32);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let keys: HashSet<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "email", "name", "role", "created_at"])
    );
}

#[tokio::test]
async fn the_same_email_in_any_case_is_taken() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("bob@example.com", "password1", "Bob")
            .await
            .status(),
        201
    );
    let resp = app.register("BOB@Example.COM", "password2", "Bobby").await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body = support::problem(resp).await;
    assert_eq!(body["code"], "email_taken");
}

#[tokio::test]
async fn registration_validates_every_field() {
    let app = spawn_app().await;
    let resp = app
        .post_json(
            "/user/",
            &json!({"email": "not-an-email", "password": "short", "name": " "}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = support::problem(resp).await;
    let fields: HashSet<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["email".into(), "password".into(), "name".into()])
    );

    let missing = app
        .post_json("/user/", &json!({"email": "a@example.com", "name": "A"}))
        .await;
    assert_eq!(missing.status(), 422);
    assert_eq!(
        support::problem(missing).await["errors"][0]["field"],
        "password"
    );

    let wrong_type = app
        .post_json(
            "/user/",
            &json!({"email": "a@example.com", "password": 12345678, "name": "A"}),
        )
        .await;
    assert_eq!(wrong_type.status(), 422);
    assert_eq!(
        support::problem(wrong_type).await["errors"][0]["field"],
        "password"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_get_the_contract_statuses() {
    let app = spawn_app().await;
    let malformed = app
        .client
        .post(app.url("/user/"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(support::problem(malformed).await["code"], "malformed_json");

    let text = app
        .client
        .post(app.url("/user/"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    support::problem(text).await;

    let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let too_big = app
        .client
        .post(app.url("/user/"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    support::problem(too_big).await;
}

#[tokio::test]
async fn login_issues_a_token_and_hides_which_part_was_wrong() {
    let app = spawn_app().await;
    let user = app.register_ok("cat@example.com", "password1", "Cat").await;
    let resp = app.login("CAT@example.com", "password1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user_id"], user["id"]);
    assert!(body["token"].as_str().unwrap().len() > 20);
    let expires = common::time::parse_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires > common::time::now_ms());

    let wrong_password = app.login("cat@example.com", "password2").await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let a = support::problem(wrong_password).await;
    let unknown = app.login("nobody@example.com", "password1").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let b = support::problem(unknown).await;
    assert_eq!(a, b, "unknown email and wrong password must look the same");
    assert_eq!(a["code"], "invalid_credentials");
}

#[tokio::test]
async fn users_see_themselves_but_not_each_other_and_admins_see_all() {
    let app = spawn_app().await;
    let (ann, ann_token) = app.user("ann@example.com").await;
    let (bob, bob_token) = app.user("bob@example.com").await;
    let admin_token = app.admin_token().await;
    let ann_path = format!("/user/{}", ann["id"].as_str().unwrap());

    let own = app.get(&ann_path, Some(&ann_token)).await;
    assert_eq!(own.status(), 200);
    assert_eq!(own.json::<Value>().await.unwrap(), ann);

    let other = app.get(&ann_path, Some(&bob_token)).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    support::problem(other).await;

    let by_admin = app.get(&ann_path, Some(&admin_token)).await;
    assert_eq!(by_admin.status(), 200);

    let anonymous = app.get(&ann_path, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    support::problem(anonymous).await;

    // Bob may not change or delete Ann.
    let put = app
        .put_json(&ann_path, Some(&bob_token), &json!({"name": "Hacked"}))
        .await;
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    let del = app.delete(&ann_path, Some(&bob_token)).await;
    assert_eq!(del.status(), StatusCode::FORBIDDEN);
    let still = app
        .get(&ann_path, Some(&ann_token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(still["name"], "Test User");
    let _ = bob;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_for_an_admin() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for id in [
        "0190d7a4-0000-7000-8000-000000000000",
        "not-a-uuid",
        "%27%3B--",
    ] {
        let resp = app.get(&format!("/user/{id}"), Some(&admin)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{id}");
        support::problem(resp).await;
    }
}

#[tokio::test]
async fn tampered_expired_and_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());

    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.get(&path, Some(&tampered)).await.status(), 401);

    let now = common::time::now_ms() / 1000;
    let (expired, _) = app.keys().issue_with(
        ann["id"].as_str().unwrap(),
        Role::Customer,
        now - 7200,
        now - 3600,
    );
    let resp = app.get(&path, Some(&expired)).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        support::problem(resp).await["detail"],
        "the token has expired"
    );

    let foreign = common::auth::TokenKeys::new("some-other-secret-some-other-secret", 3600)
        .issue(ann["id"].as_str().unwrap(), Role::Admin)
        .0;
    assert_eq!(app.get(&path, Some(&foreign)).await.status(), 401);
    assert_eq!(app.get(&path, Some("garbage")).await.status(), 401);
}

#[tokio::test]
async fn partial_updates_change_only_what_is_sent() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    app.user("taken@example.com").await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());

    let resp = app
        .put_json(&path, Some(&token), &json!({"name": "Annie"}))
        .await;
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["name"], "Annie");
    assert_eq!(updated["email"], ann["email"]);
    assert_eq!(updated["created_at"], ann["created_at"]);

    let taken = app
        .put_json(
            &path,
            Some(&token),
            &json!({"email": "TAKEN@example.com", "current_password": "password1"}),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(support::problem(taken).await["code"], "email_taken");

    let invalid = app
        .put_json(
            &path,
            Some(&token),
            &json!({"password": "short", "email": "x"}),
        )
        .await;
    assert_eq!(invalid.status(), 422);
    assert_eq!(
        support::problem(invalid).await["errors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let unchanged = app.put_json(&path, Some(&token), &json!({})).await;
    assert_eq!(unchanged.status(), 200);

    let resp = app
        .put_json(
            &path,
            Some(&token),
            &json!({"email": "new@example.com", "password": "new password", "current_password": "password1"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.login("ann@example.com", "password1").await.status(),
        401
    );
    assert_eq!(
        app.login("new@example.com", "password1").await.status(),
        401
    );
    assert_eq!(
        app.login("new@example.com", "new password").await.status(),
        200
    );
}

#[tokio::test]
async fn a_deleted_user_is_gone_and_their_token_is_refused_at_once() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    let admin = app.admin_token().await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());

    let resp = app.delete(&path, Some(&token)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("ann@example.com", "password1").await.status(),
        401
    );
    assert_eq!(app.get(&path, Some(&admin)).await.status(), 404);
    assert_eq!(app.delete(&path, Some(&admin)).await.status(), 404);
    assert_eq!(app.get(&path, Some(&token)).await.status(), 401);

    // Personal data is erased from the row, and the email is free again.
    let row: (String, String, String) =
        sqlx::query_as("SELECT email, name, password_hash FROM users WHERE id = $1")
            .bind(ann["id"].as_str().unwrap())
            .fetch_one(&app.pool().await)
            .await
            .unwrap();
    assert_eq!(row, (String::new(), String::new(), String::new()));
    assert_eq!(
        app.register("ann@example.com", "password1", "Ann again")
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_account() {
    let app = spawn_app().await;
    let attempts = (0..10).map(|i| {
        let app = &app;
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@Example.com"
        };
        async move { app.register(email, "password1", "Racer").await.status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 9), "{statuses:?}");
}

#[tokio::test]
async fn data_survives_a_restart() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    let app = app.restart().await;
    let resp = app.login("ann@example.com", "password1").await;
    assert_eq!(resp.status(), 200);
    // Tokens are signed with the configured secret, so they survive too.
    let path = format!("/user/{}", ann["id"].as_str().unwrap());
    assert_eq!(app.get(&path, Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn the_welcome_email_reaches_a_mailer_that_fails_at_first() {
    let mailer = Receiver::start(2).await;
    let app = spawn_with(|c| {
        c.mailer_url = mailer.url();
        c.stats_url = mailer.url();
    })
    .await;
    let user = app
        .register_ok("dora@example.com", "password1", "Dora")
        .await;

    let delivered = mailer
        .wait_for(Duration::from_secs(15), |reqs| {
            reqs.iter()
                .filter(|r| r.path == "/send_email/" && r.status == 202)
                .count()
                >= 1
                && reqs.iter().any(|r| r.path == "/log" && r.status == 202)
        })
        .await;
    let mails: Vec<_> = delivered
        .iter()
        .filter(|r| r.path == "/send_email/")
        .collect();
    // Failed twice with 500, then accepted once; never sent again after that.
    assert_eq!(
        mails.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 500, 202]
    );
    let keys: HashSet<&str> = mails.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(
        keys.len(),
        1,
        "every retry carries the same idempotency key"
    );
    let mail = &mails[2];
    assert_eq!(
        mail.authorization,
        format!("Bearer {}", app.config.base.internal_key)
    );
    assert_eq!(mail.body["to"], "dora@example.com");
    assert!(mail.body["subject"].as_str().unwrap().contains("Welcome"));

    let event = delivered
        .iter()
        .find(|r| r.path == "/log" && r.status == 202)
        .unwrap();
    assert_eq!(event.body["action"], "user_registered");
    assert_eq!(event.body["user_id"], user["id"]);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = mailer.requests();
    assert_eq!(
        after
            .iter()
            .filter(|r| r.path == "/send_email/" && r.status == 202)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_welcome_email_queued_while_the_mailer_is_down_survives_a_restart() {
    let app = spawn_app().await; // the mailer URL points at a closed port
    app.register_ok("eve@example.com", "password1", "Eve").await;
    let mailer = Receiver::start(0).await;
    let app = app.restart_with(|c| c.mailer_url = mailer.url()).await;
    let got = mailer
        .wait_for(Duration::from_secs(15), |reqs| {
            reqs.iter().any(|r| r.path == "/send_email/")
        })
        .await;
    assert_eq!(got.iter().filter(|r| r.path == "/send_email/").count(), 1);
    drop(app);
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_email() {
    let app = spawn_app().await;
    app.register_ok("fay@example.com", "password1", "Fay").await;
    for _ in 0..5 {
        assert_eq!(
            app.login("fay@example.com", "wrong-password")
                .await
                .status(),
            401
        );
    }
    let resp = app.login("fay@example.com", "password1").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = common::testing::retry_after(&resp);
    assert!((1..=60).contains(&retry), "{retry}");
    support::problem(resp).await;
    // Another email from the same address is not affected.
    assert_eq!(
        app.login("other@example.com", "password1").await.status(),
        401
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_forwarded_client() {
    let app = spawn_with(|c| c.login_attempts_per_ip = 3).await;
    let attempt = |ip: &'static str, n: u32| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/user/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": format!("user{n}@example.com"), "password": "password1"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for n in 0..3 {
        assert_eq!(attempt("203.0.113.7", n).await, 401);
    }
    assert_eq!(attempt("203.0.113.7", 9).await, 429);
    assert_eq!(
        attempt("203.0.113.8", 9).await,
        401,
        "another client is not limited"
    );
}

#[tokio::test]
async fn the_admin_is_bootstrapped_from_configuration() {
    let app =
        spawn_with(|c| c.admin = Some(("Root@Example.com".into(), "admin password".into()))).await;
    let resp = app.login("root@example.com", "admin password").await;
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let claims = app.keys().verify(&token).unwrap();
    assert_eq!(claims.role, Role::Admin);
    // Starting again with the same settings does not duplicate or fail.
    let app = app.restart().await;
    assert_eq!(
        app.login("root@example.com", "admin password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_problems() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    support::problem(resp).await;
    let resp = app.client.patch(app.url("/user/x")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, PUT, DELETE, HEAD");
    support::problem(resp).await;
    let resp = app.client.get(app.url("/user/login")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_replaced_otherwise() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.register_ok("m@example.com", "password1", "M").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/user/\""), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.server_state().store.db.pool.close().await;
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
