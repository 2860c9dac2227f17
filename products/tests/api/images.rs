//! `image_url`: a product's picture, site-relative or absolute http(s), or
//! null for none; set on create, changed or removed on update.

use serde_json::{json, Value};

use crate::helpers::{invalid_fields, As, TestApp};

#[tokio::test]
async fn pictures_are_set_changed_and_removed() {
    let app = TestApp::spawn().await;
    let none = app.create_named("No Picture").await;
    assert_eq!(none["image_url"], Value::Null);
    let explicit_null = app
        .create(json!({"name": "N", "description": "d", "price_cents": 1, "image_url": null}))
        .await;
    assert_eq!(explicit_null["image_url"], Value::Null);

    let mug = app
        .create(json!({
            "name": "Mug", "description": "d", "price_cents": 1,
            "image_url": "/assets/products/ceramic-coffee-mug.svg"
        }))
        .await;
    assert_eq!(mug["image_url"], "/assets/products/ceramic-coffee-mug.svg");
    let path = format!("/product/{}", mug["id"].as_str().unwrap());
    let read: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(read, mug);
    assert_eq!(
        app.list("").await["items"][2]["image_url"],
        "/assets/products/ceramic-coffee-mug.svg"
    );

    // Absent leaves it; a new URL replaces it; null removes it.
    let renamed: Value = app
        .put(&path, &As::Admin, &json!({"name": "Big Mug"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["image_url"], mug["image_url"]);
    let cdn = "https://cdn.example.com/img/mug.png?w=400";
    let moved: Value = app
        .put(&path, &As::Admin, &json!({"image_url": cdn}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(moved["image_url"], cdn);
    assert_eq!(moved["name"], "Big Mug");
    let removed = app
        .put(&path, &As::Admin, &json!({"image_url": null}))
        .await;
    assert_eq!(removed.status(), 200);
    let removed: Value = removed.json().await.unwrap();
    assert_eq!(removed["image_url"], Value::Null);
    assert_ne!(removed["updated_at"], Value::Null);
    let read: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(read["image_url"], Value::Null);
    assert_eq!(read["name"], "Big Mug");
}

#[tokio::test]
async fn bad_picture_addresses_are_422_naming_image_url() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Target").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    for bad in [
        json!("relative/mug.svg"),
        json!("//cdn.example.com/mug.svg"),
        json!("data:image/svg+xml,<svg/>"),
        json!("javascript:alert(1)"),
        json!("ftp://example.com/mug.svg"),
        json!("/with space.svg"),
        json!("/nul\u{0}.svg"),
        json!(format!("/{}", "a".repeat(500))),
        json!(true),
        json!({"url": "/x.svg"}),
    ] {
        let body = json!({"name": "x", "description": "d", "price_cents": 1, "image_url": bad});
        invalid_fields(
            app.post("/product/", &As::Admin, &body).await,
            &["image_url"],
        )
        .await;
        invalid_fields(
            app.put(&path, &As::Admin, &json!({"image_url": bad})).await,
            &["image_url"],
        )
        .await;
    }
    // 500 characters is the limit, inclusive.
    let longest = format!("/{}", "a".repeat(499));
    let ok: Value = app
        .put(&path, &As::Admin, &json!({"image_url": longest}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["image_url"], longest);
}
