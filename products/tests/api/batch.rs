//! The batch read `GET /products/?ids=a,b,c`: the live products among those
//! ids, in the list's order; unknown and deleted ids simply absent; repeats
//! and letter case do not matter; at most 100 ids, each a product id, else
//! `422` naming `ids`. It combines with the other filters and the page.

use serde_json::Value;

use crate::helpers::{invalid_fields, As, TestApp};

fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().expect("an id").to_string())
        .collect()
}

async fn made(app: &TestApp, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(
            app.create_named(name).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

#[tokio::test]
async fn ids_read_exactly_those_live_products() {
    let app = TestApp::spawn().await;
    let ids = made(&app, &["Alpha", "Beta", "Gamma", "Delta"]).await;
    let (alpha, beta, gamma, delta) = (
        ids[0].as_str(),
        ids[1].as_str(),
        ids[2].as_str(),
        ids[3].as_str(),
    );
    assert_eq!(
        app.delete(&format!("/product/{delta}"), &As::Admin)
            .await
            .status(),
        204
    );
    let unknown = uuid::Uuid::now_v7().to_string();

    // Asked in any order, with a repeat, an unknown and a deleted id, in
    // upper case: the live ones, once each, in the list's order.
    let query = format!(
        "?ids={gamma},{},{alpha},{unknown},{delta},{gamma}",
        alpha.to_uppercase()
    );
    let page = app.list(&query).await;
    assert_eq!(ids_of(&page), [alpha, gamma]);
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["name"], "Alpha");
    // The whole product, as GET /product/{id} shows it.
    let one: Value = app
        .get(&format!("/product/{alpha}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0], one);

    // Only unknown ids: an empty page, not an error.
    let page = app.list(&format!("?ids={unknown}")).await;
    assert_eq!(page["items"], serde_json::json!([]));
    assert_eq!(page["total"], 0);

    // With the other filters, the sort and the page.
    let all = format!("?ids={alpha},{beta},{gamma}");
    assert_eq!(
        ids_of(&app.list(&format!("{all}&sort=name_desc")).await),
        [gamma, beta, alpha]
    );
    assert_eq!(
        ids_of(
            &app.list(&format!("{all}&q=a&sort=name_asc&limit=1&offset=1"))
                .await
        ),
        [beta]
    );
    assert_eq!(app.list(&format!("{all}&q=alp")).await["total"], 1);
    // An empty ids is no filter, like an empty category or sort.
    assert_eq!(app.list("?ids=").await["total"], 3);
}

#[tokio::test]
async fn a_batch_read_follows_writes_at_once() {
    let app = TestApp::spawn().await;
    let ids = made(&app, &["Kettle", "Mug"]).await;
    let query = format!("?ids={},{}", ids[0], ids[1]);
    assert_eq!(app.list(&query).await["total"], 2);
    // Read again after a change: the cached answer is not served.
    let resp = app
        .put(
            &format!("/product/{}", ids[0]),
            &As::Admin,
            &serde_json::json!({"price_cents": 4321}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.list(&query).await["items"][0]["price_cents"], 4321);
    let resp = app
        .delete(&format!("/product/{}", ids[1]), &As::Admin)
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(ids_of(&app.list(&query).await), [ids[0].as_str()]);
}

#[tokio::test]
async fn a_hundred_ids_are_read_in_one_page() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..3).map(|i| format!("Product {i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut ids = made(&app, &names).await;
    // 97 unknown ids beside the three: 100 in all, the most allowed.
    while ids.len() < 100 {
        ids.push(uuid::Uuid::now_v7().to_string());
    }
    let page = app.list(&format!("?limit=100&ids={}", ids.join(","))).await;
    assert_eq!(page["total"], 3);
    assert_eq!(ids_of(&page), ids[..3]);
    // Repeats count: 100 names of one product are fine, 101 are not.
    let same = vec![ids[0].as_str(); 100].join(",");
    assert_eq!(app.list(&format!("?ids={same}")).await["total"], 1);
    invalid_fields(
        app.get(&format!("/products/?ids={same},{}", ids[0])).await,
        &["ids"],
    )
    .await;
}

#[tokio::test]
async fn malformed_ids_are_422_naming_ids() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::now_v7().to_string();
    let too_many = vec![id.as_str(); 101].join(",");
    for bad in [
        "42",
        "not-a-uuid",
        &format!("{id},"),
        &format!("{id},,{id}"),
        &format!("{id},x"),
        "%00",
        "'%20OR%201=1%20--",
        too_many.as_str(),
    ] {
        let body = invalid_fields(app.get(&format!("/products/?ids={bad}")).await, &["ids"]).await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("product id"),
            "{body}"
        );
    }
    // With other bad parameters, one 422 names them all, paging ones first.
    invalid_fields(
        app.get("/products/?limit=0&ids=x&sort=cheapest").await,
        &["limit", "ids", "sort"],
    )
    .await;
}
