//! Test harness: spawn the stats service on port 0 with a fresh database,
//! post events, query ranges with the right (or wrong) credentials, and
//! poll with a deadline for the batched writer.

use std::sync::Arc;
use std::time::Duration;

use common::db::TestDb;
pub use common::testing::{eventually, fields, problem};
use common::testing::{spawn, Running};
use serde_json::Value;
use stats::config::StatsConfig;
use stats::{State, Stats};

/// How the test authenticates a request.
#[derive(Clone, Copy, Debug)]
pub enum Cred<'a> {
    Internal,
    None,
    Bearer(&'a str),
}

pub struct TestApp {
    pub client: reqwest::Client,
    pub config: StatsConfig,
    server: Running,
    pub state: Arc<State>,
    db: Arc<TestDb>,
    dir: Arc<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut StatsConfig)) -> TestApp {
    let db = Arc::new(TestDb::new().await);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = StatsConfig::for_tests(&db.url, dir.path());
    tweak(&mut config);
    start(config, db, dir).await
}

async fn start(config: StatsConfig, db: Arc<TestDb>, dir: Arc<tempfile::TempDir>) -> TestApp {
    let stats = Stats::start(config.clone()).await.expect("stats starts");
    let state = stats.state.clone();
    let server = spawn(move |listener, shutdown| stats.serve(listener, shutdown)).await;
    TestApp {
        client: reqwest::Client::new(),
        config,
        server,
        state,
        db,
        dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Stops gracefully (as SIGTERM does) and starts again on the same
    /// database.
    pub async fn restart_with(self, tweak: impl FnOnce(&mut StatsConfig)) -> TestApp {
        let TestApp {
            mut config,
            server,
            db,
            dir,
            ..
        } = self;
        server.stop().await;
        tweak(&mut config);
        start(config, db, dir).await
    }

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
        let rb = match cred {
            Cred::Internal => rb.bearer_auth(&self.config.base.internal_key),
            Cred::None => rb,
            Cred::Bearer(t) => rb.bearer_auth(t),
        };
        rb.send().await.unwrap()
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
