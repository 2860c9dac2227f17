//! Field validation on create and update: every bad value is a 422 naming
//! its field, and nothing is written.

use serde_json::{json, Value};

use crate::helpers::{invalid_fields, problem, As, TestApp};

fn valid() -> Value {
    json!({"name": "Valid", "description": "Fine.", "price_cents": 100, "currency": "USD", "stock": 1})
}

fn with(field: &str, value: Value) -> Value {
    let mut body = valid();
    body[field] = value;
    body
}

fn without(field: &str) -> Value {
    let mut body = valid();
    body.as_object_mut().unwrap().remove(field);
    body
}

/// (field, bad value) pairs that create and update both refuse.
fn bad_values() -> Vec<(&'static str, Value)> {
    vec![
        ("name", json!("")),
        ("name", json!("   ")),
        ("name", json!("x".repeat(201))),
        ("name", json!("é".repeat(201))),
        ("name", json!("tab\tinside")),
        ("name", json!(42)),
        ("name", json!(["a"])),
        ("description", json!("d".repeat(10_001))),
        ("description", json!("nul \u{0} inside")),
        ("description", json!(false)),
        ("price_cents", json!(12.5)),
        ("price_cents", json!(12.0)),
        ("price_cents", json!("12")),
        ("price_cents", json!(-1)),
        ("price_cents", json!(1_000_000_000_001_i64)),
        ("price_cents", json!(u64::MAX)),
        ("price_cents", json!({"amount": 1})),
        ("currency", json!("usd")),
        ("currency", json!("US")),
        ("currency", json!("EURO")),
        ("currency", json!("€UR")),
        ("currency", json!(840)),
        ("stock", json!(-1)),
        ("stock", json!(1.5)),
        ("stock", json!(3.0)),
        ("stock", json!("3")),
        ("category", json!("")),
        ("category", json!("Kitchen")),
        ("category", json!("home garden")),
        ("category", json!("x".repeat(41))),
        ("category", json!(7)),
        ("image_url", json!("")),
        ("image_url", json!("mug.svg")),
        ("image_url", json!("//elsewhere.example/mug.svg")),
        ("image_url", json!("javascript:alert(1)")),
        ("image_url", json!(format!("/{}", "a".repeat(500)))),
        ("image_url", json!(12)),
    ]
}

#[tokio::test]
async fn create_refuses_each_bad_value_naming_the_field() {
    let app = TestApp::spawn().await;
    for (field, value) in bad_values() {
        let resp = app
            .post("/product/", &As::Admin, &with(field, value.clone()))
            .await;
        invalid_fields(resp, &[field]).await;
    }
    // Floats written exactly as a client would send them, not via serde.
    for raw in [
        r#"{"name":"x","description":"d","price_cents":12.50}"#,
        r#"{"name":"x","description":"d","price_cents":1e3}"#,
        r#"{"name":"x","description":"d","price_cents":-0.0}"#,
    ] {
        let resp = app
            .request(reqwest::Method::POST, "/product/", &As::Admin)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        invalid_fields(resp, &["price_cents"]).await;
    }
    assert_eq!(app.list("").await["total"], 0, "nothing was written");
}

#[tokio::test]
async fn create_requires_name_description_and_price() {
    let app = TestApp::spawn().await;
    for field in ["name", "description", "price_cents"] {
        let body = invalid_fields(
            app.post("/product/", &As::Admin, &without(field)).await,
            &[field],
        )
        .await;
        assert_eq!(body["errors"][0]["message"], "is required");
        invalid_fields(
            app.post("/product/", &As::Admin, &with(field, Value::Null))
                .await,
            &[field],
        )
        .await;
    }
    // All problems at once, so a form can mark every field.
    let resp = app
        .post(
            "/product/",
            &As::Admin,
            &json!({"price_cents": 1.5, "currency": "usd", "stock": -2}),
        )
        .await;
    invalid_fields(
        resp,
        &["name", "description", "price_cents", "currency", "stock"],
    )
    .await;
    // A body that is JSON but not an object.
    for body in [
        json!(["Mug", "d", 100]),
        json!("product"),
        json!(7),
        json!(null),
    ] {
        problem(
            app.post("/product/", &As::Admin, &body).await,
            422,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(app.list("").await["total"], 0);
}

#[tokio::test]
async fn boundary_values_are_accepted() {
    let app = TestApp::spawn().await;
    let p = app
        .create(json!({
            "name": "é".repeat(200), "description": "d".repeat(10_000),
            "price_cents": 1_000_000_000_000_i64, "currency": "JPY", "stock": 0
        }))
        .await;
    assert_eq!(p["name"].as_str().unwrap().chars().count(), 200);
    assert_eq!(p["description"].as_str().unwrap().len(), 10_000);
    assert_eq!(p["price_cents"], 1_000_000_000_000_i64);
    let p = app
        .create(with("description", json!("Line one.\nLine two.\ttabbed")))
        .await;
    assert_eq!(p["description"], "Line one.\nLine two.\ttabbed");
}

#[tokio::test]
async fn update_validates_like_create_and_writes_nothing_on_error() {
    let app = TestApp::spawn().await;
    let p = app.create(valid()).await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    for (field, value) in bad_values() {
        // Beside a valid change, which must not be written either.
        let mut body = json!({"description": "Changed.", "stock": 99});
        body[field] = value;
        invalid_fields(app.put(&path, &As::Admin, &body).await, &[field]).await;
    }
    for field in [
        "name",
        "description",
        "price_cents",
        "currency",
        "stock",
        "category",
    ] {
        let body = json!({ field: null });
        let err = invalid_fields(app.put(&path, &As::Admin, &body).await, &[field]).await;
        assert_eq!(err["errors"][0]["message"], "must not be null");
    }
    for body in [json!(["Renamed", "d", 5]), json!("Renamed"), json!(null)] {
        problem(
            app.put(&path, &As::Admin, &body).await,
            422,
            "validation_failed",
        )
        .await;
    }
    let now = app.get(&path).await.json::<Value>().await.unwrap();
    assert_eq!(now, p, "no partial write happened (stock is still 1)");
}
