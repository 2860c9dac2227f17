//! Token revocation as users does it: a deleted account, a new password,
//! email or role refuses the tokens issued before at once here, and is
//! announced through the outbox to the services that verify tokens; a
//! self-service change of email or password needs the current password.

use std::time::Duration;

use common::auth::Role;
use serde_json::{json, Value};

use crate::support::{problem, spawn_app, spawn_with, Receiver, Seen, TestApp};

/// A users service whose every neighbour (mailer, stats, products, cart)
/// is `receiver`.
async fn announcing(receiver: &Receiver) -> TestApp {
    spawn_with(|c| {
        c.mailer_url = receiver.url();
        c.stats_url = receiver.url();
        c.products_url = receiver.url();
        c.cart_url = receiver.url();
    })
    .await
}

/// Waits for the two announcements (one per verifier) of `user_id` at
/// `version`, and checks how they were sent.
async fn announced(
    receiver: &Receiver,
    app: &TestApp,
    user_id: &str,
    version: i64,
    deleted: bool,
) -> Vec<Seen> {
    let matching = |r: &Seen| {
        r.path == "/internal/token-versions"
            && r.body["user_id"] == user_id
            && r.body["version"] == version
    };
    let seen = receiver
        .wait_for(Duration::from_secs(10), |reqs| {
            reqs.iter().filter(|r| matching(r)).count() >= 2
        })
        .await;
    let seen: Vec<Seen> = seen.into_iter().filter(|r| matching(r)).collect();
    for r in &seen {
        assert_eq!(r.body["deleted"], deleted, "{r:?}");
        assert_eq!(
            r.authorization,
            format!("Bearer {}", app.config.base.internal_key)
        );
    }
    seen
}

async fn token_of(app: &TestApp, email: &str, password: &str) -> String {
    let resp = app.login(email, password).await;
    assert_eq!(resp.status(), 200);
    let login: Value = resp.json().await.unwrap();
    login["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_password_change_refuses_older_tokens_here_at_once_and_announces_it() {
    let receiver = Receiver::start(0).await;
    let app = announcing(&receiver).await;
    let (ann, old) = app.user("ann@example.com").await;
    let id = ann["id"].as_str().unwrap();
    let path = format!("/user/{id}");
    assert_eq!(app.keys().verify(&old).unwrap().ver, 0);

    let resp = app
        .put_json(
            &path,
            Some(&old),
            &json!({"password": "new password", "current_password": "password1"}),
        )
        .await;
    assert_eq!(resp.status(), 200);

    let refused = app.get(&path, Some(&old)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    problem(refused).await;
    let new = token_of(&app, "ann@example.com", "new password").await;
    assert_eq!(app.keys().verify(&new).unwrap().ver, 1);
    assert_eq!(app.get(&path, Some(&new)).await.status(), 200);

    announced(&receiver, &app, id, 1, false).await;
}

#[tokio::test]
async fn a_new_email_revokes_too_but_a_new_name_does_not() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());
    let resp = app
        .put_json(&path, Some(&token), &json!({"name": "Annie"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.get(&path, Some(&token)).await.status(), 200);

    let resp = app
        .put_json(
            &path,
            Some(&token),
            &json!({"email": "annie@example.com", "current_password": "password1"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // The old token carries the old email: it must go.
    assert_eq!(app.get(&path, Some(&token)).await.status(), 401);
    let new = token_of(&app, "annie@example.com", "password1").await;
    let claims = app.keys().verify(&new).unwrap();
    assert_eq!(claims.email.as_deref(), Some("annie@example.com"));
    assert_eq!(app.get(&path, Some(&new)).await.status(), 200);
}

#[tokio::test]
async fn a_deletion_refuses_every_token_and_is_announced() {
    let receiver = Receiver::start(0).await;
    let app = announcing(&receiver).await;
    let (ann, token) = app.user("ann@example.com").await;
    let id = ann["id"].as_str().unwrap();
    let path = format!("/user/{id}");
    assert_eq!(app.delete(&path, Some(&token)).await.status(), 204);
    let refused = app.get(&path, Some(&token)).await;
    assert_eq!(refused.status(), 401);
    problem(refused).await;
    announced(&receiver, &app, id, 1, true).await;
}

#[tokio::test]
async fn a_promotion_revokes_but_bootstrapping_an_existing_admin_again_does_not() {
    let receiver = Receiver::start(0).await;
    let app = announcing(&receiver).await;
    let (bea, customer) = app.user("bea@example.com").await;
    let id = bea["id"].as_str().unwrap();
    let path = format!("/user/{id}");

    // Promoted, keeping the password: the role alone revokes.
    users::admin::promote(app.server_state(), "bea@example.com")
        .await
        .unwrap();
    assert_eq!(app.get(&path, Some(&customer)).await.status(), 401);
    let admin = token_of(&app, "bea@example.com", "password1").await;
    let claims = app.keys().verify(&admin).unwrap();
    assert_eq!((claims.role, claims.ver), (Role::Admin, 1));
    announced(&receiver, &app, id, 1, false).await;

    // What every start does for the configured admin: no change, no revocation.
    users::admin::create(
        app.server_state(),
        "bea@example.com",
        "password1",
        users::admin::IfAdmin::Keep,
    )
    .await
    .unwrap();
    assert_eq!(app.get(&path, Some(&admin)).await.status(), 200);
}

#[tokio::test]
async fn changing_ones_own_email_or_password_needs_the_current_password() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());

    for change in [
        json!({"password": "new password"}),
        json!({"email": "new@example.com"}),
        json!({"email": "new@example.com", "current_password": null}),
    ] {
        let resp = app.put_json(&path, Some(&token), &change).await;
        assert_eq!(resp.status(), 403, "{change}");
        assert_eq!(problem(resp).await["code"], "current_password_required");
    }
    let wrong = app
        .put_json(
            &path,
            Some(&token),
            &json!({"password": "new password", "current_password": "not-it-at-all"}),
        )
        .await;
    assert_eq!(wrong.status(), 403);
    assert_eq!(problem(wrong).await["code"], "invalid_credentials");
    // Nothing changed, and the token still works.
    assert_eq!(
        app.login("ann@example.com", "password1").await.status(),
        200
    );
    assert_eq!(app.get(&path, Some(&token)).await.status(), 200);

    // The name needs no password.
    let renamed = app
        .put_json(&path, Some(&token), &json!({"name": "Annie"}))
        .await;
    assert_eq!(renamed.status(), 200);
}

#[tokio::test]
async fn an_admin_changes_someone_elses_password_without_theirs_but_not_their_own() {
    let app = spawn_app().await;
    let (ann, token) = app.user("ann@example.com").await;
    let admin = app.admin_token().await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());

    let resp = app
        .put_json(&path, Some(&admin), &json!({"password": "reset by admin"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.login("ann@example.com", "reset by admin")
            .await
            .status(),
        200
    );
    // Ann's old sessions end with the reset.
    assert_eq!(app.get(&path, Some(&token)).await.status(), 401);

    let me: Value = app
        .login("admin@example.com", "admin password")
        .await
        .json()
        .await
        .unwrap();
    let own = format!("/user/{}", me["user_id"].as_str().unwrap());
    let resp = app
        .put_json(
            &own,
            Some(&admin),
            &json!({"password": "new admin password"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(problem(resp).await["code"], "current_password_required");
}
