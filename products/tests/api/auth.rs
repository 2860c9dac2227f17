//! Writes need an admin token: no or a bad token is 401 with the Bearer
//! challenge, a customer's is 403, and neither changes anything. Reads are
//! public.

use common::auth::{Role, TokenKeys};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{problem, As, TestApp};

/// Every way a request can lack a usable token.
fn bad_credentials(app: &TestApp) -> Vec<As> {
    let now = common::time::now_ms() / 1000;
    let (expired, _) = app
        .keys
        .issue_with("someone", Role::Admin, now - 7200, now - 3600);
    let (foreign, _) =
        TokenKeys::new("another-secret-another-secret-another", 3600).issue("someone", Role::Admin);
    vec![
        As::Anyone,
        As::Header("Bearer".into()),
        As::Header("Bearer not-a-token".into()),
        As::Header(format!("Basic {foreign}")),
        As::Header(format!("Bearer {expired}")),
        As::Header(format!("Bearer {foreign}")),
    ]
}

async fn write(app: &TestApp, method: Method, path: &str, who: &As) -> reqwest::Response {
    let body = json!({"name": "Changed", "description": "d", "price_cents": 1});
    app.request(method, path, who)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_write_needs_an_admin() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Guarded").await;
    let item = format!("/product/{}", p["id"].as_str().unwrap());
    let writes = [
        (Method::POST, "/product/"),
        (Method::PUT, item.as_str()),
        (Method::DELETE, item.as_str()),
    ];

    for (method, path) in &writes {
        for who in bad_credentials(&app) {
            let resp = write(&app, method.clone(), path, &who).await;
            assert_eq!(resp.status(), 401, "{method} {path} as {who:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            problem(resp, 401, "unauthorized").await;
        }
        let resp = write(&app, method.clone(), path, &As::Customer).await;
        problem(resp, 403, "forbidden").await;
    }

    // Nothing above changed anything.
    let page = app.list("").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0], p);

    // And the admin may do each.
    assert_eq!(
        write(&app, Method::PUT, &item, &As::Admin).await.status(),
        200
    );
    assert_eq!(
        write(&app, Method::POST, "/product/", &As::Admin)
            .await
            .status(),
        201
    );
    assert_eq!(
        write(&app, Method::DELETE, &item, &As::Admin)
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn the_token_is_checked_before_the_body() {
    let app = TestApp::spawn().await;
    // A customer sending garbage learns only that they may not write.
    let resp = app
        .request(Method::POST, "/product/", &As::Customer)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;
    let resp = app
        .request(Method::POST, "/product/", &As::Anyone)
        .body("x")
        .send()
        .await
        .unwrap();
    problem(resp, 401, "unauthorized").await;
}

#[tokio::test]
async fn reads_need_no_token_and_ignore_a_bad_one() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Public").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    for who in [
        As::Anyone,
        As::Customer,
        As::Header("Bearer garbage".into()),
    ] {
        let resp = app.request(Method::GET, &path, &who).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{who:?}");
        let resp = app
            .request(Method::GET, "/products/", &who)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{who:?}");
        assert_eq!(resp.json::<Value>().await.unwrap()["total"], 1);
    }
}
