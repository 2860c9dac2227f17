//! Create, get, partial update, soft delete, and data surviving a restart.

use serde_json::{json, Value};

use crate::helpers::{problem, As, TestApp};

#[tokio::test]
async fn create_answers_201_with_the_product_and_where_it_lives() {
    let app = TestApp::spawn().await;
    let body =
        json!({"name": "  Espresso Cup  ", "description": "Thick porcelain.", "price_cents": 1250});
    let resp = app.post("/product/", &As::Admin, &body).await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let p: Value = resp.json().await.unwrap();
    let id = p["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).expect("ids are UUIDs");
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(location, format!("/product/{id}"));
    assert_eq!(p["name"], "Espresso Cup", "the name is trimmed");
    assert_eq!(p["description"], "Thick porcelain.");
    assert_eq!(p["price_cents"], 1250);
    assert_eq!(p["currency"], "USD", "currency defaults to USD");
    assert_eq!(p["stock"], 0, "stock defaults to 0");
    assert_eq!(p["category"], "general", "category defaults to general");
    assert_eq!(p["image_url"], Value::Null, "no picture unless given");
    assert_eq!(p["created_at"], p["updated_at"]);
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'), "{p}");
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        10,
        "exactly the fields of docs/api.md, nothing internal: {keys:?}"
    );

    let resp = app.get(&location).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), p);
}

#[tokio::test]
async fn optional_fields_and_unknown_fields() {
    let app = TestApp::spawn().await;
    let p = app
        .create(json!({
            "name": "Tea Tin", "description": "", "price_cents": 0, "currency": "EUR", "stock": 7,
            "id": "chosen-by-client", "created_at": "1999-01-01T00:00:00Z", "colour": "green"
        }))
        .await;
    assert_ne!(p["id"], "chosen-by-client");
    assert_ne!(p["created_at"], "1999-01-01T00:00:00Z");
    assert_eq!(p["currency"], "EUR");
    assert_eq!(p["stock"], 7);
    assert_eq!(p["price_cents"], 0, "free is a price");
    assert!(p.get("colour").is_none());
    // null for an optional field means the default.
    let p = app
        .create(json!({"name": "Tea Tin", "description": "x", "price_cents": 1, "currency": null, "stock": null}))
        .await;
    assert_eq!(p["currency"], "USD");
    assert_eq!(p["stock"], 0);
}

#[tokio::test]
async fn get_of_an_unknown_or_malformed_id_is_404() {
    let app = TestApp::spawn().await;
    app.create_named("Something").await;
    let unknown = uuid::Uuid::now_v7();
    for id in [
        unknown.to_string(),
        "42".to_string(),
        "not-a-uuid".to_string(),
        "1%27%20OR%20%271%27%3D%271".to_string(),
        "%00".to_string(),
        "x".repeat(300),
    ] {
        problem(app.get(&format!("/product/{id}")).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn ids_are_found_in_any_case() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Upper").await;
    let upper = p["id"].as_str().unwrap().to_uppercase();
    let resp = app.get(&format!("/product/{upper}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], p["id"]);
}

#[tokio::test]
async fn put_changes_only_the_fields_sent() {
    let app = TestApp::spawn().await;
    let p = app
        .create(
            json!({"name": "Lamp", "description": "Warm light.", "price_cents": 5000, "stock": 3}),
        )
        .await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    // updated_at has millisecond resolution.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let resp = app
        .put(&path, &As::Admin, &json!({"price_cents": 4500, "stock": 0}))
        .await;
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["price_cents"], 4500);
    assert_eq!(updated["stock"], 0);
    for same in ["id", "name", "description", "currency", "created_at"] {
        assert_eq!(updated[same], p[same], "{same} must not change");
    }
    assert_ne!(
        updated["updated_at"], p["updated_at"],
        "updated_at moves on"
    );
    assert_eq!(app.get(&path).await.json::<Value>().await.unwrap(), updated);

    let resp = app
        .put(
            &path,
            &As::Admin,
            &json!({"name": "Desk Lamp", "description": "", "currency": "GBP"}),
        )
        .await;
    let renamed: Value = resp.json().await.unwrap();
    assert_eq!(renamed["name"], "Desk Lamp");
    assert_eq!(renamed["description"], "");
    assert_eq!(renamed["currency"], "GBP");
    assert_eq!(renamed["price_cents"], 4500);
    // The new name is what search sees.
    assert_eq!(app.names("?q=desk").await, ["Desk Lamp"]);
}

#[tokio::test]
async fn an_empty_update_changes_nothing() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Still").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let resp = app.put(&path, &As::Admin, &json!({"ignored": true})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), p);
}

#[tokio::test]
async fn put_on_an_unknown_or_malformed_id_is_404() {
    let app = TestApp::spawn().await;
    let body = json!({"price_cents": 1});
    let unknown = format!("/product/{}", uuid::Uuid::now_v7());
    problem(app.put(&unknown, &As::Admin, &body).await, 404, "not_found").await;
    problem(
        app.put("/product/nope", &As::Admin, &body).await,
        404,
        "not_found",
    )
    .await;
    problem(app.delete(&unknown, &As::Admin).await, 404, "not_found").await;
    problem(
        app.delete("/product/nope", &As::Admin).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_deleted_product_is_gone_from_get_list_and_writes() {
    let app = TestApp::spawn().await;
    let keep = app.create_named("Keep").await;
    let gone = app.create_named("Gone").await;
    let path = format!("/product/{}", gone["id"].as_str().unwrap());

    let resp = app.delete(&path, &As::Admin).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());

    problem(app.get(&path).await, 404, "not_found").await;
    problem(
        app.put(&path, &As::Admin, &json!({"stock": 1})).await,
        404,
        "not_found",
    )
    .await;
    problem(app.delete(&path, &As::Admin).await, 404, "not_found").await;
    let page = app.list("").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], keep["id"]);
    assert_eq!(app.list("?q=gone").await["total"], 0);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    let p = app.create_named("Durable").await;
    let deleted = app.create_named("Deleted").await;
    let deleted_path = format!("/product/{}", deleted["id"].as_str().unwrap());
    assert_eq!(app.delete(&deleted_path, &As::Admin).await.status(), 204);

    app.restart().await;

    let resp = app
        .get(&format!("/product/{}", p["id"].as_str().unwrap()))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), p);
    problem(app.get(&deleted_path).await, 404, "not_found").await;
    assert_eq!(app.list("").await["total"], 1);
}
