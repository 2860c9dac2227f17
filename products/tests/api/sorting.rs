//! `?sort=`: six orders, each total (ties broken by creation order, so pages
//! never overlap), combined with filters and pages; anything else is a 422
//! naming `sort`.

use serde_json::json;

use crate::helpers::{invalid_fields, As, TestApp};

/// (name, price), created in this order. Two prices tie; names differ in
/// case so a case-sensitive sort would show.
const PRODUCTS: &[(&str, i64)] = &[
    ("banana Stand", 500),
    ("Apple Crate", 1500),
    ("cherry Bowl", 500),
    ("Date Box", 9900),
    ("elderberry Jam", 100),
];

async fn app_with_products() -> TestApp {
    let app = TestApp::spawn().await;
    for (name, price) in PRODUCTS {
        app.create(json!({"name": name, "description": "Fruit.", "price_cents": price}))
            .await;
    }
    app
}

#[tokio::test]
async fn every_order() {
    let app = app_with_products().await;
    let oldest = [
        "banana Stand",
        "Apple Crate",
        "cherry Bowl",
        "Date Box",
        "elderberry Jam",
    ];
    assert_eq!(app.names("").await, oldest, "the default is oldest first");
    assert_eq!(app.names("?sort=oldest").await, oldest);
    assert_eq!(app.names("?sort=").await, oldest, "empty is the default");
    let mut newest = oldest;
    newest.reverse();
    assert_eq!(app.names("?sort=newest").await, newest);
    assert_eq!(
        app.names("?sort=price_asc").await,
        [
            "elderberry Jam",
            "banana Stand",
            "cherry Bowl",
            "Apple Crate",
            "Date Box"
        ]
    );
    // Equal prices keep creation order in both directions.
    assert_eq!(
        app.names("?sort=price_desc").await,
        [
            "Date Box",
            "Apple Crate",
            "banana Stand",
            "cherry Bowl",
            "elderberry Jam"
        ]
    );
    assert_eq!(
        app.names("?sort=name_asc").await,
        [
            "Apple Crate",
            "banana Stand",
            "cherry Bowl",
            "Date Box",
            "elderberry Jam"
        ]
    );
    assert_eq!(
        app.names("?sort=name_desc").await,
        [
            "elderberry Jam",
            "Date Box",
            "cherry Bowl",
            "banana Stand",
            "Apple Crate"
        ]
    );
}

#[tokio::test]
async fn sorted_pages_tile_the_list_and_combine_with_filters() {
    let app = app_with_products().await;
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        paged.extend(
            app.names(&format!("?sort=price_asc&limit=2&offset={offset}"))
                .await,
        );
    }
    assert_eq!(paged, app.names("?sort=price_asc").await);
    assert_eq!(app.list("?sort=price_desc&limit=2").await["total"], 5);
    assert_eq!(app.list("?sort=newest&offset=9").await["total"], 5);
    assert_eq!(app.names("?q=an&sort=name_desc").await, ["banana Stand"],);
    assert_eq!(
        app.names("?q=E&sort=price_desc").await,
        ["Date Box", "Apple Crate", "cherry Bowl", "elderberry Jam"]
    );
    // A price change reorders at once, though the sorted page was cached.
    let cheapest = &app.list("?sort=price_asc&limit=1").await["items"][0];
    assert_eq!(cheapest["name"], "elderberry Jam");
    let path = format!("/product/{}", cheapest["id"].as_str().unwrap());
    app.put(&path, &As::Admin, &json!({"price_cents": 99_999}))
        .await;
    assert_eq!(
        app.names("?sort=price_desc&limit=1").await,
        ["elderberry Jam"]
    );
    assert_eq!(app.names("?sort=price_asc&limit=1").await, ["banana Stand"]);
}

#[tokio::test]
async fn an_unknown_sort_is_422_naming_sort() {
    let app = TestApp::spawn().await;
    for bad in [
        "cheapest",
        "PRICE_ASC",
        "price",
        "price_asc%20",
        "name_asc,price_asc",
        "%00",
    ] {
        let body =
            invalid_fields(app.get(&format!("/products/?sort={bad}")).await, &["sort"]).await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("price_asc"),
            "the message lists the choices: {body}"
        );
    }
    // All bad parameters at once.
    invalid_fields(
        app.get("/products/?limit=0&sort=x&offset=-1").await,
        &["limit", "offset", "sort"],
    )
    .await;
}
