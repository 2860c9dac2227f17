//! Categories: every product has one (`general` unless given), `?category=`
//! lists one category (alone or with `q`), and `GET /products/categories`
//! counts live products per category, also right after writes.

use serde_json::{json, Value};

use crate::helpers::{invalid_fields, As, TestApp};

async fn create_in(app: &TestApp, name: &str, category: &str) -> Value {
    app.create(json!({
        "name": name, "description": "A test product.", "price_cents": 1000, "category": category
    }))
    .await
}

async fn categories(app: &TestApp) -> Value {
    let resp = app.get("/products/categories").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("etag"));
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("\"count\":1,\"name\""),
        "name before count, as documented: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_product_has_a_category_defaulting_to_general() {
    let app = TestApp::spawn().await;
    let plain = app.create_named("Plain").await;
    assert_eq!(plain["category"], "general");
    let null = app
        .create(json!({"name": "Null", "description": "d", "price_cents": 1, "category": null}))
        .await;
    assert_eq!(null["category"], "general");
    let mug = create_in(&app, "Mug", "kitchen-ware2").await;
    assert_eq!(mug["category"], "kitchen-ware2");
    let path = format!("/product/{}", mug["id"].as_str().unwrap());
    assert_eq!(
        app.get(&path).await.json::<Value>().await.unwrap()["category"],
        "kitchen-ware2"
    );

    // An update moves it; other fields stay.
    let resp = app
        .put(&path, &As::Admin, &json!({"category": "coffee"}))
        .await;
    assert_eq!(resp.status(), 200);
    let moved: Value = resp.json().await.unwrap();
    assert_eq!(moved["category"], "coffee");
    assert_eq!(moved["name"], "Mug");
    assert_eq!(app.get(&path).await.json::<Value>().await.unwrap(), moved);
}

#[tokio::test]
async fn the_list_filters_by_category_alone_and_with_q() {
    let app = TestApp::spawn().await;
    create_in(&app, "Blue Mug", "kitchen").await;
    create_in(&app, "Blue Scarf", "apparel").await;
    create_in(&app, "Red Mug", "kitchen").await;
    create_in(&app, "Kitchen Poster", "art").await;
    app.create_named("Blue Thing").await;

    assert_eq!(
        app.names("?category=kitchen").await,
        ["Blue Mug", "Red Mug"]
    );
    assert_eq!(app.list("?category=kitchen").await["total"], 2);
    assert_eq!(app.names("?category=kitchen&q=blue").await, ["Blue Mug"]);
    assert_eq!(app.list("?category=kitchen&q=blue").await["total"], 1);
    assert_eq!(app.names("?category=general").await, ["Blue Thing"]);
    // Exact, not a prefix or a name search.
    assert_eq!(app.names("?category=kitch").await, Vec::<String>::new());
    assert_eq!(app.list("?category=nothing-here").await["total"], 0);
    // Pages count within the category, also past the end.
    let page = app.list("?category=kitchen&limit=1&offset=1").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["name"], "Red Mug");
    let past = app.list("?category=kitchen&q=mug&offset=5").await;
    assert_eq!(
        (past["total"].clone(), past["items"].clone()),
        (json!(2), json!([]))
    );
    // An empty category is no filter, as from a cleared select box.
    assert_eq!(app.list("?category=").await["total"], 5);
}

#[tokio::test]
async fn a_malformed_category_parameter_is_422_naming_it() {
    let app = TestApp::spawn().await;
    for bad in ["Kitchen", "a%20b", "caf%C3%A9", "x_y", "%00"] {
        invalid_fields(
            app.get(&format!("/products/?category={bad}")).await,
            &["category"],
        )
        .await;
    }
    invalid_fields(
        app.get("/products/?category=BAD&sort=cheapest").await,
        &["category", "sort"],
    )
    .await;
}

#[tokio::test]
async fn categories_count_live_products_by_name_and_follow_writes() {
    let app = TestApp::spawn().await;
    assert_eq!(categories(&app).await, json!({"items": []}));
    // Names a database collation could order differently from byte order.
    create_in(&app, "A", "home-garden").await;
    create_in(&app, "B", "homeware").await;
    let c = create_in(&app, "C", "b").await;
    create_in(&app, "D", "home-garden").await;
    app.create_named("E").await;
    assert_eq!(
        categories(&app).await,
        json!({"items": [
            {"name": "b", "count": 1},
            {"name": "general", "count": 1},
            {"name": "home-garden", "count": 2},
            {"name": "homeware", "count": 1},
        ]})
    );

    // The read just cached must not hide a move or a deletion.
    let path = format!("/product/{}", c["id"].as_str().unwrap());
    app.put(&path, &As::Admin, &json!({"category": "homeware"}))
        .await;
    assert_eq!(
        categories(&app).await["items"],
        json!([
            {"name": "general", "count": 1},
            {"name": "home-garden", "count": 2},
            {"name": "homeware", "count": 2},
        ])
    );
    assert_eq!(app.delete(&path, &As::Admin).await.status(), 204);
    assert_eq!(categories(&app).await["items"][2]["count"], 1);
    // With a trailing slash too (the router ignores it).
    assert_eq!(app.get("/products/categories/").await.status(), 200);
}

#[tokio::test]
async fn cached_lists_are_kept_apart_per_category() {
    let app = TestApp::spawn().await;
    create_in(&app, "Mug", "kitchen").await;
    create_in(&app, "Scarf", "apparel").await;
    // Both reads are cached; neither may be served for the other.
    assert_eq!(app.names("?category=kitchen").await, ["Mug"]);
    assert_eq!(app.names("?category=apparel").await, ["Scarf"]);
    assert_eq!(app.names("?category=kitchen").await, ["Mug"]);
    assert_eq!(app.names("").await, ["Mug", "Scarf"]);
    // A write shows at once in the cached category page.
    create_in(&app, "Kettle", "kitchen").await;
    assert_eq!(app.names("?category=kitchen").await, ["Mug", "Kettle"]);
}
