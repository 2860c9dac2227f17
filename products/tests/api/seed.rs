//! The demo catalog: `products seed` loads it once; running it again, or
//! after an admin deleted a demo product, adds nothing.

use std::process::Output;

use serde_json::Value;

use crate::helpers::{As, TestApp};

#[tokio::test]
async fn seeding_twice_adds_the_catalog_once() {
    let app = TestApp::spawn().await;
    // Read first, so a cached empty page would show if seeding forgot to
    // invalidate it.
    assert_eq!(app.list("?limit=100").await["total"], 0);
    let first = products::seed(&app.state.store).await.unwrap();
    assert!((12..=16).contains(&first), "{first} demo products");
    assert_eq!(products::seed(&app.state.store).await.unwrap(), 0);

    let page = app.list("?limit=100").await;
    assert_eq!(page["total"], first as i64);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no duplicates: {names:?}");
    assert_eq!(app.names("?q=crème").await, ["Crème Brûlée Torch Set"]);

    // The storefront's picture and category of every demo product.
    for p in page["items"].as_array().unwrap() {
        let image = p["image_url"].as_str().unwrap_or_default();
        assert!(
            image.starts_with("/assets/products/") && image.ends_with(".svg"),
            "{p}"
        );
    }
    let categories: Value = app.get("/products/categories").await.json().await.unwrap();
    let categories = categories["items"].as_array().unwrap();
    assert!((4..=5).contains(&categories.len()), "{categories:?}");
    let counted: i64 = categories
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, first as i64);
    assert!(categories.iter().all(|c| c["name"] != "general"));

    // An admin's deletion sticks: seeding does not bring it back.
    let id = page["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/product/{id}"), &As::Admin)
            .await
            .status(),
        204
    );
    assert_eq!(products::seed(&app.state.store).await.unwrap(), 0);
    assert_eq!(app.list("").await["total"], first as i64 - 1);
}

#[tokio::test]
async fn concurrent_seeds_do_not_duplicate() {
    let app = TestApp::spawn().await;
    let store = &app.state.store;
    let (a, b) = tokio::join!(products::seed(store), products::seed(store));
    let catalog = products::seed::catalog().unwrap().len();
    assert_eq!(a.unwrap() + b.unwrap(), catalog);
    assert_eq!(app.list("").await["total"], catalog as i64);
}

async fn run_seed(app: &TestApp) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_products"))
        .arg("seed")
        .env("PRODUCTS_DATABASE_URL", &app.config.base.database_url)
        .env("PRODUCTS_DATA_DIR", &app.config.base.data_dir)
        .env("PRODUCTS_TOKEN_SECRET", &app.config.base.token_secret)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running products seed");
    assert!(output.status.success(), "{output:?}");
    output
}

#[tokio::test]
async fn the_seed_subcommand_loads_the_catalog_once() {
    let app = TestApp::spawn().await;
    let catalog = products::seed::catalog().unwrap().len();
    let first = String::from_utf8_lossy(&run_seed(&app).await.stdout).to_string();
    assert!(
        first.contains(&format!("{catalog} products added")),
        "{first}"
    );
    let second = String::from_utf8_lossy(&run_seed(&app).await.stdout).to_string();
    assert!(second.contains("0 products added"), "{second}");

    // The running service sees what the subcommand wrote.
    let page: Value = app.list("?limit=100").await;
    assert_eq!(page["total"], catalog as i64);
    let first_item = &page["items"][0];
    assert_eq!(
        first_item["name"], "Pour-Over Coffee Kettle",
        "catalog order is kept"
    );
    assert_eq!(first_item["currency"], "USD");
}
