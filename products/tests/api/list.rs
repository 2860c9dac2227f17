//! `GET /products/`: the envelope, pagination edges, creation order, and
//! search that treats `%`, `_`, quotes and non-ASCII as plain text.

use serde_json::json;

use crate::helpers::{invalid_fields, As, TestApp};

#[tokio::test]
async fn an_empty_catalog_is_an_empty_page() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.list("").await,
        json!({"items": [], "total": 0, "limit": 20, "offset": 0})
    );
    assert_eq!(app.list("?offset=40").await["total"], 0);
}

#[tokio::test]
async fn pages_follow_creation_order_and_total_counts_all_matches() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (1..=7).map(|i| format!("Item {i}")).collect();
    for name in &names {
        app.create_named(name).await;
    }

    let first = app.list("?limit=3").await;
    assert_eq!(first["total"], 7);
    assert_eq!(first["limit"], 3);
    assert_eq!(first["offset"], 0);
    assert_eq!(app.names("?limit=3").await, names[0..3]);
    assert_eq!(app.names("?limit=3&offset=3").await, names[3..6]);

    // The last page is short, and past it is empty with the same total.
    let last = app.list("?limit=3&offset=6").await;
    assert_eq!(last["total"], 7);
    assert_eq!(app.names("?limit=3&offset=6").await, names[6..7]);
    let past = app.list("?limit=3&offset=7").await;
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["total"], 7);
    assert_eq!(past["offset"], 7);
    assert_eq!(app.list("?offset=1000000").await["total"], 7);

    // Defaults and the upper bound of limit.
    assert_eq!(app.names("").await, names);
    assert_eq!(app.list("?limit=100").await["limit"], 100);

    // The order stays the same after edits (creation order, not update order).
    let middle = &app.list("?limit=1&offset=3").await["items"][0];
    let path = format!("/product/{}", middle["id"].as_str().unwrap());
    assert_eq!(
        app.put(&path, &As::Admin, &json!({"stock": 5}))
            .await
            .status(),
        200
    );
    assert_eq!(app.names("").await, names);

    // A deleted product leaves the count and the pages.
    assert_eq!(app.delete(&path, &As::Admin).await.status(), 204);
    let page = app.list("?limit=3&offset=3").await;
    assert_eq!(page["total"], 6);
    assert_eq!(
        app.names("?limit=3&offset=3").await,
        ["Item 5", "Item 6", "Item 7"]
    );
}

#[tokio::test]
async fn bad_paging_parameters_are_422() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?limit=-5", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=1.5", "limit"),
        ("?offset=-1", "offset"),
        ("?offset=x", "offset"),
        ("?offset=99999999999999999999", "offset"),
    ] {
        invalid_fields(app.get(&format!("/products/{query}")).await, &[field]).await;
    }
    invalid_fields(
        app.get("/products/?limit=500&offset=-1").await,
        &["limit", "offset"],
    )
    .await;
}

/// Names chosen so that a wildcard or a case slip shows up as a wrong hit.
const CATALOG: &[&str] = &[
    "100% Cotton Tee",
    "100 Percent Wool Scarf",
    "snake_case Mug",
    "snakeXcase Cup",
    "O'Brien's Tea",
    "The \"Best\" Kettle",
    "Back\\slash Poster",
    "Crème Brûlée Torch",
    "CREME Plain Soap",
    "ÉCOLE Pencil Set",
];

async fn search(app: &TestApp, q: &str) -> Vec<String> {
    let encoded: String = url_encode(q);
    let names = app.names(&format!("?q={encoded}")).await;
    let total = app.list(&format!("?q={encoded}")).await["total"]
        .as_i64()
        .unwrap();
    assert_eq!(
        total as usize,
        names.len(),
        "total counts the matches of {q:?}"
    );
    names
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn search_is_a_case_insensitive_substring_match_on_the_name() {
    let app = TestApp::spawn().await;
    for name in CATALOG {
        app.create_named(name).await;
    }
    assert_eq!(search(&app, "mug").await, ["snake_case Mug"]);
    assert_eq!(search(&app, "MUG").await, ["snake_case Mug"]);
    assert_eq!(
        search(&app, "case").await,
        ["snake_case Mug", "snakeXcase Cup"]
    );
    assert_eq!(search(&app, "crème").await, ["Crème Brûlée Torch"]);
    assert_eq!(search(&app, "CRÈME").await, ["Crème Brûlée Torch"]);
    assert_eq!(search(&app, "brûlée torch").await, ["Crème Brûlée Torch"]);
    assert_eq!(search(&app, "creme").await, ["CREME Plain Soap"]);
    assert_eq!(search(&app, "école").await, ["ÉCOLE Pencil Set"]);
    assert_eq!(search(&app, "no such thing").await, Vec::<String>::new());
    // An empty q is no filter.
    assert_eq!(search(&app, "").await.len(), CATALOG.len());
    // The description is not searched.
    assert_eq!(search(&app, "test product").await, Vec::<String>::new());
}

#[tokio::test]
async fn search_treats_wildcards_quotes_and_sql_as_text() {
    let app = TestApp::spawn().await;
    for name in CATALOG {
        app.create_named(name).await;
    }
    assert_eq!(search(&app, "%").await, ["100% Cotton Tee"]);
    assert_eq!(search(&app, "100%").await, ["100% Cotton Tee"]);
    assert_eq!(search(&app, "100%Wool").await, Vec::<String>::new());
    assert_eq!(search(&app, "_").await, ["snake_case Mug"]);
    assert_eq!(search(&app, "snake_case").await, ["snake_case Mug"]);
    assert_eq!(search(&app, "e_c").await, ["snake_case Mug"]);
    assert_eq!(search(&app, "'").await, ["O'Brien's Tea"]);
    assert_eq!(search(&app, "o'brien").await, ["O'Brien's Tea"]);
    assert_eq!(search(&app, "\"best\"").await, ["The \"Best\" Kettle"]);
    assert_eq!(search(&app, "\\").await, ["Back\\slash Poster"]);
    assert_eq!(search(&app, "k\\s").await, ["Back\\slash Poster"]);
    assert_eq!(search(&app, "\\%").await, Vec::<String>::new());
    for injection in [
        "' OR '1'='1",
        "%' OR 1=1 --",
        "'; DROP TABLE products; --",
        "\\' OR 1=1",
    ] {
        assert_eq!(
            search(&app, injection).await,
            Vec::<String>::new(),
            "{injection}"
        );
    }
    assert_eq!(
        app.list("").await["total"],
        CATALOG.len() as i64,
        "the table is intact"
    );
}

#[tokio::test]
async fn search_pages_and_rejects_nul() {
    let app = TestApp::spawn().await;
    for i in 1..=5 {
        app.create_named(&format!("Blue Thing {i}")).await;
        app.create_named(&format!("Red Thing {i}")).await;
    }
    let page = app.list("?q=BLUE&limit=2&offset=2").await;
    assert_eq!(page["total"], 5);
    assert_eq!(
        app.names("?q=BLUE&limit=2&offset=2").await,
        ["Blue Thing 3", "Blue Thing 4"]
    );
    let past = app.list("?q=blue&limit=2&offset=5").await;
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["total"], 5);
    assert_eq!(app.list("?q=red&offset=9").await["total"], 5);
    invalid_fields(app.get("/products/?q=a%00b").await, &["q"]).await;
}
