//! Test harness: spawn the mailer on port 0 with a fresh database and data
//! directory, send requests with the right (or wrong) credentials, read
//! queued mail back, and poll with a deadline for background work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::db::TestDb;
pub use common::testing::{eventually, fields, problem};
use common::testing::{spawn, Running};
use mailer::config::{MailerConfig, SmtpUrl, TransportConfig};
use mailer::store::MailRecord;
use mailer::{Mailer, State};
use serde_json::Value;

/// How the test authenticates a request.
#[derive(Clone, Copy, Debug)]
pub enum Cred<'a> {
    Internal,
    None,
    Bearer(&'a str),
}

pub struct TestApp {
    pub client: reqwest::Client,
    pub config: MailerConfig,
    server: Running,
    pub state: Arc<State>,
    db: Arc<TestDb>,
    dir: Arc<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Spawns with the test configuration, adjusted by `tweak`.
pub async fn spawn_with(tweak: impl FnOnce(&mut MailerConfig)) -> TestApp {
    let db = Arc::new(TestDb::new().await);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = MailerConfig::for_tests(&db.url, dir.path());
    tweak(&mut config);
    start(config, db, dir).await
}

async fn start(config: MailerConfig, db: Arc<TestDb>, dir: Arc<tempfile::TempDir>) -> TestApp {
    let mailer = Mailer::start(config.clone())
        .await
        .expect("the mailer starts");
    let state = mailer.state.clone();
    let server = spawn(move |listener, shutdown| mailer.serve(listener, shutdown)).await;
    TestApp {
        client: reqwest::Client::new(),
        config,
        server,
        state,
        db,
        dir,
    }
}

/// SMTP transport settings for a server at `url`.
pub fn smtp(url: &str) -> TransportConfig {
    TransportConfig::Smtp(SmtpUrl(url.to_string()))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn outbox_dir(&self) -> PathBuf {
        match &self.config.transport {
            TransportConfig::Files(dir) => dir.clone(),
            TransportConfig::Smtp(_) => panic!("this app sends by SMTP"),
        }
    }

    /// A second mailer on the same database (another replica).
    pub async fn replica(&self, tweak: impl FnOnce(&mut MailerConfig)) -> TestApp {
        let mut config = self.config.clone();
        tweak(&mut config);
        start(config, self.db.clone(), self.dir.clone()).await
    }

    /// Stops gracefully and starts again on the same database.
    pub async fn restart_with(self, tweak: impl FnOnce(&mut MailerConfig)) -> TestApp {
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

    pub async fn stop(self) {
        self.server.stop().await;
    }

    pub async fn send_raw(
        &self,
        cred: Cred<'_>,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut rb = self.client.post(self.url("/send_email/")).json(body);
        rb = match cred {
            Cred::Internal => rb.bearer_auth(&self.config.base.internal_key),
            Cred::None => rb,
            Cred::Bearer(token) => rb.bearer_auth(token),
        };
        if let Some(key) = key {
            rb = rb.header("Idempotency-Key", key);
        }
        rb.send().await.unwrap()
    }

    /// Sends with internal credentials and no key.
    pub async fn send(&self, body: &Value) -> reqwest::Response {
        self.send_raw(Cred::Internal, None, body).await
    }

    /// Sends and expects `202`; returns the mail id.
    pub async fn send_ok(&self, to: &str, subject: &str, body: &str) -> String {
        let resp = self
            .send(&serde_json::json!({"to": to, "subject": subject, "body": body}))
            .await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["status"], "queued");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn mails(&self) -> Vec<MailRecord> {
        self.state.store.all().await.unwrap()
    }

    pub async fn mail(&self, id: &str) -> MailRecord {
        self.state
            .store
            .get(id)
            .await
            .unwrap()
            .expect("the mail exists")
    }

    /// Polls until mail `id` satisfies `done`.
    pub async fn wait_for_mail(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&MailRecord) -> bool,
    ) -> MailRecord {
        eventually(what, Duration::from_secs(20), || async {
            let m = self.mail(id).await;
            done(&m).then_some(m)
        })
        .await
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
