//! Test harness: payments-mock in common's [`common::testing::TestApp`],
//! helpers for its requests, a reader for raw database rows, and a loopback
//! webhook receiver that can fail on purpose.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
pub use common::testing::eventually;
pub use common::testing::problem;
use common::testing::Recorder;
use payments_mock::State;
use serde_json::{json, Value};
use sqlx::{Column, Row};

pub const SERVER_KEY: &str = "test-server-key-test-server-key-0001";
pub const OTHER_SERVER_KEY: &str = "test-server-key-test-server-key-0002";

/// How long a test waits for a webhook to arrive or be recorded.
pub const WAIT: Duration = Duration::from_secs(20);

common::test_app!(TestApp, State);

#[test]
fn the_server_key_is_the_one_of_the_test_settings() {
    use common::testing::TestConfig;
    let config = payments_mock::config::PaymentsConfig::for_tests(
        "sqlite://unused.db",
        std::path::Path::new("unused"),
    );
    assert_eq!(config.server_keys, [SERVER_KEY]);
}

/// The keys of a JSON object.
pub fn keys_of(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// The status, code and first invalid field of a problem answer.
pub async fn failure(resp: reqwest::Response) -> (u16, String, Option<String>) {
    let status = resp.status().as_u16();
    let body = problem(resp).await;
    let field = body["errors"][0]["field"].as_str().map(str::to_string);
    (status, body["code"].as_str().unwrap().to_string(), field)
}

/// A pay body for `number` that expires well in the future.
pub fn card(number: &str) -> Value {
    json!({"card_number": number, "exp_month": 12, "exp_year": this_year() + 2, "cvc": "123"})
}

pub fn this_year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

impl TestApp {
    pub async fn count(&self, sql: &str) -> i64 {
        let pool = self.pool().await;
        let n: i64 = sqlx::query(sql).fetch_one(&pool).await.unwrap().get(0);
        pool.close().await;
        n
    }

    /// Every value of every row of `table`, as text, for "is X stored
    /// anywhere" checks.
    pub async fn dump(&self, table: &str) -> Vec<String> {
        let pool = self.pool().await;
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let mut out = Vec::new();
        for row in &rows {
            for col in row.columns() {
                let i = col.ordinal();
                let text = match row.try_get::<Option<String>, _>(i) {
                    Ok(v) => v.unwrap_or_default(),
                    Err(_) => row
                        .try_get::<Option<i64>, _>(i)
                        .ok()
                        .flatten()
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                };
                out.push(text);
            }
        }
        pool.close().await;
        out
    }

    /// `POST /invoices` with `key` as the server key and an optional
    /// Idempotency-Key.
    pub async fn create_as(
        &self,
        server_key: Option<&str>,
        idem: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut rb = self.client.post(self.url("/invoices")).json(body);
        if let Some(k) = server_key {
            rb = rb.bearer_auth(k);
        }
        if let Some(k) = idem {
            rb = rb.header("idempotency-key", k);
        }
        rb.send().await.unwrap()
    }

    pub async fn create(&self, body: &Value) -> reqwest::Response {
        self.create_as(Some(SERVER_KEY), None, body).await
    }

    /// Creates an invoice for `amount_cents` USD and returns it.
    pub async fn invoice(&self, amount_cents: i64) -> Value {
        let resp = self.create(&json!({"amount_cents": amount_cents})).await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn invoice_status(&self, id: &str) -> String {
        let v: Value = self
            .get(&format!("/invoices/{id}"))
            .await
            .json()
            .await
            .unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    pub async fn pay(&self, id: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/invoices/{id}/pay")))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// One webhook request the receiver saw, and what it answered.
#[derive(Debug, Clone)]
pub struct Hook {
    pub status: u16,
    pub path: String,
    pub signature: String,
    pub idempotency_key: String,
    pub content_type: String,
    pub body: Bytes,
}

impl Hook {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A loopback HTTP server standing in for the cart's webhook endpoint: it
/// answers the first `fail_first` requests with 500, the rest with 200.
pub struct Receiver(Recorder);

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver(
            Recorder::start(move |_, before| if before.len() < fail_first { 500 } else { 200 })
                .await,
        )
    }

    /// The webhook URL to configure.
    pub fn url(&self) -> String {
        self.0.url("/internal/payments/webhook")
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.0
            .requests()
            .into_iter()
            .map(|r| Hook {
                status: r.status,
                signature: r.header("shop-signature"),
                idempotency_key: r.header("idempotency-key"),
                content_type: r.header("content-type"),
                path: r.path,
                body: r.body,
            })
            .collect()
    }

    /// Waits until `n` deliveries were acknowledged (answered 200).
    pub async fn wait_acknowledged(&self, n: usize, deadline: Duration) -> Vec<Hook> {
        eventually("webhook deliveries", deadline, || async {
            let hooks = self.hooks();
            (hooks.iter().filter(|h| h.status == 200).count() >= n).then_some(hooks)
        })
        .await
    }
}

/// A loopback address nothing listens on (bound, then released).
pub async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/internal/payments/webhook")
}
