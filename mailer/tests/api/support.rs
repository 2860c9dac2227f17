//! Test harness: the mailer in common's [`common::testing::TestApp`], plus
//! sending with the right (or wrong) credentials, reading queued mail back,
//! and polling with a deadline for background work.

use std::path::PathBuf;
use std::time::Duration;

pub use common::testing::{eventually, fields, problem, Cred};
use mailer::config::{SmtpUrl, TransportConfig};
use mailer::store::MailRecord;
use mailer::State;
use serde_json::Value;

common::test_app!(TestApp, State);

/// SMTP transport settings for a server at `url`.
pub fn smtp(url: &str) -> TransportConfig {
    TransportConfig::Smtp(SmtpUrl(url.to_string()))
}

impl TestApp {
    pub fn outbox_dir(&self) -> PathBuf {
        match &self.config.transport {
            TransportConfig::Files(dir) => dir.clone(),
            TransportConfig::Smtp(_) => panic!("this app sends by SMTP"),
        }
    }

    pub async fn send_raw(
        &self,
        cred: Cred<'_>,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let rb = self.client.post(self.url("/send_email/")).json(body);
        let mut rb = self.authorize(rb, cred);
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
