//! The test harness: the products service in common's
//! [`common::testing::TestApp`] (its own fresh database: SQLite in a
//! temporary directory, or a new PostgreSQL database when TEST_DATABASE_URL
//! is set), tokens signed with the test secret, and a few request shortcuts.

use std::ops::{Deref, DerefMut};

use common::auth::{Role, TokenKeys};
use products::State;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

/// Who sends a request.
#[derive(Clone, Debug)]
pub enum As {
    Anyone,
    Admin,
    Customer,
    /// A raw `Authorization` header value.
    Header(String),
}

pub struct TestApp {
    app: common::testing::TestApp<State>,
    pub keys: TokenKeys,
    admin: String,
    customer: String,
}

impl Deref for TestApp {
    type Target = common::testing::TestApp<State>;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

impl DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.app
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let app = common::testing::TestApp::<State>::spawn().await;
        let keys = app.keys();
        let (admin, _) = keys.issue(&uuid::Uuid::now_v7().to_string(), Role::Admin);
        let (customer, _) = keys.issue(&uuid::Uuid::now_v7().to_string(), Role::Customer);
        TestApp {
            app,
            keys,
            admin,
            customer,
        }
    }

    /// Stops the service gracefully and starts a new one on the same
    /// database, as a process restart would.
    pub async fn restart(&mut self) {
        self.app.stop().await;
        self.app.start_again().await;
    }

    /// A second service on the same database, as another replica behind the
    /// balancer would be, with its own read-cache lifetime.
    pub async fn replica(
        &self,
        read_cache_ttl: std::time::Duration,
    ) -> common::testing::TestApp<State> {
        self.app
            .replica(|c| c.read_cache_ttl = read_cache_ttl)
            .await
    }

    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    pub fn request(&self, method: Method, path: &str, who: &As) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match who {
            As::Anyone => builder,
            As::Admin => builder.bearer_auth(&self.admin),
            As::Customer => builder.bearer_auth(&self.customer),
            As::Header(value) => builder.header("authorization", value),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, &As::Anyone)
            .send()
            .await
            .expect("GET sent")
    }

    pub async fn post(&self, path: &str, who: &As, body: &Value) -> Response {
        self.request(Method::POST, path, who)
            .json(body)
            .send()
            .await
            .expect("POST sent")
    }

    pub async fn put(&self, path: &str, who: &As, body: &Value) -> Response {
        self.request(Method::PUT, path, who)
            .json(body)
            .send()
            .await
            .expect("PUT sent")
    }

    pub async fn delete(&self, path: &str, who: &As) -> Response {
        self.request(Method::DELETE, path, who)
            .send()
            .await
            .expect("DELETE sent")
    }

    /// Creates a product as admin and returns it; the test fails otherwise.
    pub async fn create(&self, body: Value) -> Value {
        let resp = self.post("/product/", &As::Admin, &body).await;
        assert_eq!(resp.status(), 201, "creating {body}");
        resp.json().await.expect("a product")
    }

    /// Creates a product with this name and otherwise ordinary fields.
    pub async fn create_named(&self, name: &str) -> Value {
        self.create(json!({"name": name, "description": "A test product.", "price_cents": 1000}))
            .await
    }

    /// `GET /products/{query}`, which must answer 200.
    pub async fn list(&self, query: &str) -> Value {
        let resp = self.get(&format!("/products/{query}")).await;
        assert_eq!(resp.status(), 200, "listing {query}");
        resp.json().await.expect("a page")
    }

    /// The names on one page, in order.
    pub async fn names(&self, query: &str) -> Vec<String> {
        let page = self.list(query).await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| p["name"].as_str().expect("a name").to_string())
            .collect()
    }
}

/// Asserts a problem+json answer with this status and code; returns its body.
pub async fn problem(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = resp.json().await.expect("a problem body");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    body
}

/// Asserts a `422` naming exactly these fields.
pub async fn invalid_fields(resp: Response, fields: &[&str]) -> Value {
    let body = problem(resp, 422, "validation_failed").await;
    let named: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("a field"))
        .collect();
    assert_eq!(named, fields, "{body}");
    body
}
