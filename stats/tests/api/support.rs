//! Test harness: the stats service in common's [`common::testing::TestApp`],
//! plus posting events, querying ranges with the right (or wrong)
//! credentials, and polling with a deadline for the batched writer.

use std::time::Duration;

pub use common::testing::{eventually, fields, problem, Cred};
use serde_json::Value;
use stats::State;

common::test_app!(TestApp, State);

impl TestApp {
    pub async fn post_raw(&self, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut rb = self.client.post(self.url("/log")).json(body);
        if let Some(key) = key {
            rb = rb.header("Idempotency-Key", key);
        }
        rb.send().await.unwrap()
    }

    pub async fn post(&self, body: &Value) -> reqwest::Response {
        self.post_raw(None, body).await
    }

    /// Posts and expects `202`.
    pub async fn log(&self, body: &Value) {
        let resp = self.post(body).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    }

    pub async fn get(&self, path_and_query: &str, cred: Cred<'_>) -> reqwest::Response {
        let rb = self.client.get(self.url(path_and_query));
        self.authorize(rb, cred).send().await.unwrap()
    }

    /// `GET /log` with internal credentials; expects `200`.
    pub async fn events(&self, from: &str, to: &str, extra: &str) -> Value {
        let resp = self
            .get(
                &format!("/log?from={}&to={}{extra}", enc(from), enc(to)),
                Cred::Internal,
            )
            .await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    /// Every stored event (any time), oldest first.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let page = self
                .events(
                    WIDE_FROM,
                    WIDE_TO,
                    &format!("&limit=100&offset={}", out.len()),
                )
                .await;
            let items = page["items"].as_array().unwrap().clone();
            if items.is_empty() {
                return out;
            }
            out.extend(items);
        }
    }

    /// Polls until `n` events are stored.
    pub async fn wait_for_events(&self, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} stored events"),
            Duration::from_secs(10),
            || async {
                let all = self.all_events().await;
                (all.len() == n).then_some(all)
            },
        )
        .await
    }
}

pub const WIDE_FROM: &str = "2000-01-01T00:00:00Z";
pub const WIDE_TO: &str = "2100-01-01T00:00:00Z";

/// Percent-encodes a query value (`+` in an offset must not become a space).
pub fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
