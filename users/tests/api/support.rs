//! Test harness: the users service in common's [`common::testing::TestApp`],
//! helpers for common requests, the `users` binary on that same database,
//! and a loopback receiver standing in for the mailer and stats (it can
//! fail on purpose, to exercise outbox retries).

use std::time::{Duration, Instant};

pub use common::testing::problem;
use common::testing::{with_token, Recorder};
use serde_json::{json, Value};
use users::State;

common::test_app!(TestApp, State);

impl TestApp {
    pub fn server_state(&self) -> &std::sync::Arc<State> {
        &self.state
    }

    /// The `users` binary on this app's database, data directory and
    /// secrets, with nothing from the developer's environment.
    pub fn binary(&self) -> tokio::process::Command {
        let base = &self.config.base;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_users"));
        cmd.env_clear()
            .current_dir(&base.data_dir)
            .env("USERS_DATABASE_URL", &base.database_url)
            .env("USERS_DATA_DIR", &base.data_dir)
            .env("USERS_TOKEN_SECRET", &base.token_secret)
            .env("USERS_INTERNAL_KEY", &base.internal_key)
            .env("USERS_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// The role in a fresh login token of `email`, or `None` if login fails.
    pub async fn role_of(&self, email: &str, password: &str) -> Option<common::auth::Role> {
        let resp = self.login(email, password).await;
        if resp.status() != 200 {
            return None;
        }
        let body: Value = resp.json().await.unwrap();
        let claims = self.keys().verify(body["token"].as_str().unwrap()).unwrap();
        Some(claims.role)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        with_token(self.client.put(self.url(path)), token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        with_token(self.client.get(self.url(path)), token)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        with_token(self.client.delete(self.url(path)), token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> reqwest::Response {
        self.post_json(
            "/user/",
            &json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    pub async fn register_ok(&self, email: &str, password: &str, name: &str) -> Value {
        let resp = self.register(email, password, name).await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/user/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` with password `password1` and logs in.
    pub async fn user(&self, email: &str) -> (Value, String) {
        let user = self.register_ok(email, "password1", "Test User").await;
        let login: Value = self.login(email, "password1").await.json().await.unwrap();
        (user, login["token"].as_str().unwrap().to_string())
    }

    /// Creates an admin the way `users create-admin --email` does, and logs in.
    pub async fn admin_token(&self) -> String {
        users::admin::create(
            &self.state,
            "admin@example.com",
            "admin password",
            users::admin::IfAdmin::ResetPassword,
        )
        .await
        .unwrap();
        let login: Value = self
            .login("admin@example.com", "admin password")
            .await
            .json()
            .await
            .unwrap();
        login["token"].as_str().unwrap().to_string()
    }
}

/// One request the receiver saw, and what it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub status: u16,
    pub idempotency_key: String,
    pub authorization: String,
    pub body: Value,
}

/// A loopback HTTP server that records requests; the first `fail_first`
/// requests to `/send_email/` get a 500, everything else a 202.
pub struct Receiver(Recorder);

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        Receiver(
            Recorder::start(move |req, before| {
                let failed_so_far = before
                    .iter()
                    .filter(|s| s.path == req.path && s.status == 500)
                    .count();
                if req.path == "/send_email/" && failed_so_far < fail_first {
                    500
                } else {
                    202
                }
            })
            .await,
        )
    }

    pub fn url(&self) -> String {
        self.0.url("")
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.0
            .requests()
            .into_iter()
            .map(|r| Seen {
                status: r.status,
                idempotency_key: r.header("idempotency-key"),
                authorization: r.header("authorization"),
                body: r.json(),
                path: r.path,
            })
            .collect()
    }

    /// Polls until `done` holds for the requests seen, or panics at the deadline.
    pub async fn wait_for(&self, deadline: Duration, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let start = Instant::now();
        loop {
            let seen = self.requests();
            if done(&seen) {
                return seen;
            }
            assert!(start.elapsed() < deadline, "timed out; saw {seen:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
