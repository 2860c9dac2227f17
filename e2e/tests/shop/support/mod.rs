//! What the scenarios share: the shop harness, the client, the fault
//! proxy, bounded waiting, and the two verification reads beside the
//! public API — the mail outbox directory and the stats events.

pub mod client;
pub mod harness;
pub mod proxy;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

pub use client::{unique_email, Client, Resp, Session};
pub use harness::{Ports, Shop};

/// Polls `check` every 100 ms until it yields a value; panics with `what`
/// (and the last thing `check` saw) after `limit`. Every wait in the suite
/// goes through here, so none is unbounded and none is a bare sleep.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if started.elapsed() > limit => {
                panic!("{what}: not within {limit:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One `.eml` file of the mailer's outbox.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Every finished mail in `dir` (the mailer writes a hidden temporary file
/// and renames it, so a visible `.eml` is complete).
pub fn mails(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !name.ends_with(".eml") {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let parsed = mailparse::parse_mail(&bytes)
            .unwrap_or_else(|e| panic!("{name} is not an RFC 5322 message: {e}"));
        let header = |h: &str| {
            mailparse::MailHeaderMap::get_first_value(parsed.headers.as_slice(), h)
                .unwrap_or_default()
        };
        out.push(Mail {
            file: name.clone(),
            to: header("To"),
            subject: header("Subject"),
            body: parsed.get_body().unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// The mails addressed to `to`.
pub fn mails_to(dir: &Path, to: &str) -> Vec<Mail> {
    mails(dir)
        .into_iter()
        .filter(|m| m.to.eq_ignore_ascii_case(to))
        .collect()
}

/// Every stats event (the internal `GET /log`, on the stats port with the
/// internal key: the balancer hides it, as it must).
pub async fn stats_events(shop: &Shop) -> Vec<Value> {
    let client = Client::new(shop.ports.url("stats"));
    let key = shop.internal_key();
    let mut out = Vec::new();
    loop {
        let path = format!(
            "/log?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=100&offset={}",
            out.len()
        );
        let page = client
            .send(Method::GET, &path, Some(&key), None, &[])
            .await
            .expect(200)
            .body;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let empty = items.is_empty();
        out.extend(items);
        if empty || out.len() >= total {
            return out;
        }
    }
}

/// The stats events of one user, as `(action, data)`.
pub async fn events_of(shop: &Shop, user_id: &str) -> Vec<(String, Value)> {
    stats_events(shop)
        .await
        .into_iter()
        .filter(|e| e["user_id"] == user_id)
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["data"].clone(),
            )
        })
        .collect()
}

/// The sum of a Prometheus counter over the series whose labels contain
/// every one of `labels` (`target="mailer"`), from `service`'s `/metrics`.
pub async fn counter(shop: &Shop, service: &str, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(shop.metrics_url(service))
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("{service} /metrics: {e}"))
        .text()
        .await
        .unwrap_or_default();
    common::testing::metric(&text, name, labels).unwrap_or(0.0)
}
