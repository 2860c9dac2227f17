//! Parallel writes to one product leave a consistent row: no update is
//! lost to another that changed different fields, and the fields of one
//! update are never mixed with another's.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{As, TestApp};

#[tokio::test]
async fn parallel_updates_of_different_fields_all_land() {
    let app = TestApp::spawn().await;
    for round in 0..5 {
        let p = app.create_named(&format!("Start {round}")).await;
        let path = format!("/product/{}", p["id"].as_str().unwrap());
        let updates = [
            json!({"name": format!("Renamed {round}")}),
            json!({"description": format!("Described {round}")}),
            json!({"price_cents": 700 + round}),
            json!({"currency": "EUR"}),
            json!({"stock": 40 + round}),
        ];
        let results = join_all(updates.iter().map(|body| app.put(&path, &As::Admin, body))).await;
        assert!(
            results.iter().all(|r| r.status() == 200),
            "every update succeeds"
        );

        let now: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(now["name"], format!("Renamed {round}"));
        assert_eq!(now["description"], format!("Described {round}"));
        assert_eq!(now["price_cents"], 700 + round);
        assert_eq!(now["currency"], "EUR");
        assert_eq!(now["stock"], 40 + round);
    }
}

#[tokio::test]
async fn parallel_updates_of_the_same_fields_leave_one_whole_update() {
    let app = TestApp::spawn().await;
    let p = app.create_named("Contested").await;
    let path = format!("/product/{}", p["id"].as_str().unwrap());
    let n = 24;
    let bodies: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("Variant {i:02}"), "price_cents": 1000 + i, "stock": i}))
        .collect();
    let results = join_all(bodies.iter().map(|body| app.put(&path, &As::Admin, body))).await;
    for resp in results {
        assert_eq!(resp.status(), 200);
        // Each answer is the row its own update wrote.
        let written: Value = resp.json().await.unwrap();
        let i = written["stock"].as_i64().unwrap();
        assert_eq!(written["name"], format!("Variant {i:02}"));
        assert_eq!(written["price_cents"], 1000 + i);
    }

    let now: Value = app.get(&path).await.json().await.unwrap();
    let i = now["stock"].as_i64().unwrap();
    assert!((0..n).contains(&i));
    assert_eq!(now["name"], format!("Variant {i:02}"), "{now}");
    assert_eq!(now["price_cents"], 1000 + i, "{now}");
    // The search column moved with the name.
    assert_eq!(app.names("?q=variant").await, [format!("Variant {i:02}")]);
    assert_eq!(
        app.names(&format!("?q=VARIANT%20{i:02}")).await,
        [format!("Variant {i:02}")]
    );
    assert_eq!(app.names("?q=contested").await, Vec::<String>::new());
}
