//! Registration cannot be used to flood the shop or to borrow another
//! person's identity: it is rate-limited per client address, email
//! addresses are refused when a look-alike compatibility character (or an
//! invisible one) would make them another account's, and names refuse
//! control and format characters — on register, login and update alike.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{problem, spawn_app, spawn_with, TestApp};

async fn register_from(app: &TestApp, ip: &str, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/user/"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": "password1", "name": "Flood"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn registrations_are_rate_limited_per_client_address() {
    let app = spawn_with(|c| c.registrations_per_ip = 3).await;
    for n in 0..3 {
        let resp = register_from(&app, "203.0.113.7", &format!("flood{n}@example.com")).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = register_from(&app, "203.0.113.7", "flood9@example.com").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = common::testing::retry_after(&resp);
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(problem(resp).await["code"], "rate_limited");
    // Nothing was created for the refused one; another client is not limited.
    assert_eq!(
        app.login("flood9@example.com", "password1").await.status(),
        401
    );
    let other = register_from(&app, "203.0.113.8", "flood9@example.com").await;
    assert_eq!(other.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_default_registration_limit_is_five_a_minute() {
    let binary = users::config::binary();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("USERS_DATA_DIR", dir.path().display().to_string()),
        ("USERS_TOKEN_SECRET", "s".repeat(32)),
        ("USERS_INTERNAL_KEY", "k".repeat(32)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let raw =
        common::config::Config::from_layers(binary.prefix, &binary.settings, None, &[], &env, &[])
            .unwrap();
    let config = <users::config::UsersConfig as common::host::Settings>::from_config(&raw).unwrap();
    assert_eq!(config.registrations_per_ip, 5);
    assert!(!config.admin_strict);
}

/// The field errors of a `422`.
async fn fields_422(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    common::testing::fields(&problem(resp).await)
}

#[tokio::test]
async fn look_alike_emails_can_neither_block_nor_open_an_account() {
    let app = spawn_app().await;
    for email in [
        "\u{212A}ate@example.com",  // Kelvin sign, lower-cases to `k`
        "\u{FF4B}ate@example.com",  // full-width k
        "\u{FB01}fi@example.com",   // ligature
        "ka\u{200B}te@example.com", // zero-width space
    ] {
        let resp = app.register(email, "password1", "Mallory").await;
        assert_eq!(fields_422(resp).await, vec!["email"], "{email:?}");
    }
    // So the real Kate can register, and the look-alike is not her login.
    let (kate, token) = app.user("kate@example.com").await;
    let kelvin = app.login("\u{212A}ate@example.com", "password1").await;
    assert_eq!(kelvin.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(problem(kelvin).await["code"], "invalid_credentials");
    // Nor can an account move onto a look-alike address.
    let path = format!("/user/{}", kate["id"].as_str().unwrap());
    let resp = app
        .put_json(
            &path,
            Some(&token),
            &json!({"email": "\u{212A}ate@example.com"}),
        )
        .await;
    assert_eq!(fields_422(resp).await, vec!["email"]);
    let user: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(user["email"], "kate@example.com");
    // Plain non-ASCII addresses are still welcome.
    app.register_ok("josé@example.com", "password1", "José")
        .await;
}

#[tokio::test]
async fn names_refuse_control_and_format_characters() {
    let app = spawn_app().await;
    for name in ["Ann\u{202E}gnp.exe", "A\u{200B}nn", "Ann\u{7}"] {
        let resp = app.register("ann@example.com", "password1", name).await;
        assert_eq!(fields_422(resp).await, vec!["name"], "{name:?}");
    }
    let (ann, token) = app.user("ann@example.com").await;
    let path = format!("/user/{}", ann["id"].as_str().unwrap());
    let resp = app
        .put_json(&path, Some(&token), &json!({"name": "\u{202E}nnA"}))
        .await;
    assert_eq!(fields_422(resp).await, vec!["name"]);
}
