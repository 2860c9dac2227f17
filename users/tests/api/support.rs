//! Test harness: spawn the users service on port 0 with a fresh database,
//! helpers for common requests, the `users` binary on that same database,
//! and a loopback receiver standing in for the
//! mailer and stats (it can fail on purpose, to exercise outbox retries).

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::auth::TokenKeys;
use common::db::TestDb;
pub use common::testing::problem;
use common::testing::{spawn, Recorder, Running};
use serde_json::{json, Value};
use users::config::UsersConfig;
use users::{State, Users};

pub struct TestApp {
    pub client: reqwest::Client,
    pub config: UsersConfig,
    server: Running,
    state: Arc<State>,
    _db: Arc<TestDb>,
    _dir: Arc<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Spawns with the test configuration, adjusted by `tweak`.
pub async fn spawn_with(tweak: impl FnOnce(&mut UsersConfig)) -> TestApp {
    let db = Arc::new(TestDb::new().await);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = UsersConfig::for_tests(&db.url, dir.path());
    tweak(&mut config);
    start(config, db, dir).await
}

async fn start(config: UsersConfig, db: Arc<TestDb>, dir: Arc<tempfile::TempDir>) -> TestApp {
    let users = Users::start(config.clone())
        .await
        .expect("the service starts");
    let state = users.state.clone();
    let server = spawn(move |listener, shutdown| users.serve(listener, shutdown)).await;
    TestApp {
        client: reqwest::Client::new(),
        config,
        server,
        state,
        _db: db,
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn keys(&self) -> TokenKeys {
        TokenKeys::new(&self.config.base.token_secret, 3600)
    }

    pub fn server_state(&self) -> &Arc<State> {
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

    /// A separate pool on the same database, to inspect rows.
    pub async fn pool(&self) -> sqlx::AnyPool {
        sqlx::AnyPool::connect(&self.config.base.database_url)
            .await
            .unwrap()
    }

    /// Stops gracefully and starts again on the same database.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    pub async fn restart_with(self, tweak: impl FnOnce(&mut UsersConfig)) -> TestApp {
        let TestApp {
            mut config,
            server,
            _db,
            _dir,
            ..
        } = self;
        server.stop().await;
        tweak(&mut config);
        start(config, _db, _dir).await
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

fn with_token(rb: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => rb.bearer_auth(t),
        None => rb,
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
