//! The checks after the run: fetches the accounts' orders through the
//! balancer, the mail from the mailer's outbox directory or a Mailpit-style
//! API, and the events from stats' internal API, and waits (up to the
//! settle timeout) for what is still on its way. Mail and stats are not
//! reachable through the balancer: without where to look, their checks
//! say "not checked" and why, and never pass.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::accounts::Account;
use crate::judge::{self, Event, Judgement, Mail, ShopOrder};
use crate::ledger::AccountLedger;
use crate::shop::Shop;

/// Problems listed in full per check (the rest are counted).
const SHOWN: usize = 20;
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    NotChecked,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub summary: String,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Check {
    fn not_checked(name: &'static str, why: &str) -> Check {
        Check {
            name,
            verdict: Verdict::NotChecked,
            summary: format!("consistency not checked: {why}"),
            problems: vec![],
            notes: vec![],
        }
    }

    fn from(name: &'static str, what: String, j: Judgement, waited: Duration) -> Check {
        let settled = j.settled();
        let mut problems: Vec<String> = j.broken.into_iter().chain(j.pending).collect();
        let total = problems.len();
        problems.truncate(SHOWN);
        if total > SHOWN {
            problems.push(format!("… and {} more", total - SHOWN));
        }
        Check {
            name,
            verdict: if settled {
                Verdict::Passed
            } else {
                Verdict::Failed
            },
            summary: if settled {
                format!(
                    "{what}: consistent (settled {:.1} s after the run)",
                    waited.as_secs_f64()
                )
            } else {
                format!(
                    "{what}: {total} problems after waiting {:.0} s",
                    waited.as_secs_f64()
                )
            },
            problems,
            notes: j.notes,
        }
    }
}

/// Where the checks look, and what they hold the shop to.
pub struct Inputs<'a> {
    pub shop: &'a Shop,
    pub accounts: &'a [Arc<Account>],
    pub ledger: &'a BTreeMap<String, AccountLedger>,
    pub mail_dir: Option<&'a Path>,
    pub mail_api: Option<&'a str>,
    pub stats: Option<(&'a str, &'a str)>,
    /// Before the first account was registered.
    pub since: SystemTime,
    pub settle: Duration,
}

/// Polls `fetch` and judges until settled, broken or out of time.
async fn settle<F, Fut>(deadline: Instant, mut fetch: F) -> Judgement
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Judgement, String>>,
{
    loop {
        let j = match fetch().await {
            Ok(j) => j,
            Err(e) => Judgement {
                pending: vec![e],
                ..Judgement::default()
            },
        };
        if j.settled() || !j.broken.is_empty() || Instant::now() >= deadline {
            return j;
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn check_all(inputs: &Inputs<'_>) -> Vec<Check> {
    let deadline = Instant::now() + inputs.settle;
    // The orders first: once they read paid, confirmation and event are
    // queued, so mail and stats need wait only for their outboxes.
    let orders = check_orders(inputs, deadline).await;
    let (mail, stats) = tokio::join!(check_mail(inputs, deadline), check_stats(inputs, deadline));
    vec![orders, mail, stats]
}

async fn check_orders(inputs: &Inputs<'_>, deadline: Instant) -> Check {
    let started = Instant::now();
    let by_uid: HashMap<&str, &Arc<Account>> =
        inputs.accounts.iter().map(|a| (a.user_id(), a)).collect();
    let placed: usize = inputs.ledger.values().map(|a| a.orders.len()).sum();
    let paid: usize = inputs.ledger.values().map(|a| a.paid.len()).sum();
    let j = settle(deadline, || async {
        let lists = futures::stream::iter(inputs.ledger.keys())
            .filter_map(|uid| async { by_uid.get(uid.as_str()).copied() })
            .map(|account| async move {
                let mut all = Vec::new();
                loop {
                    let (page, total) = inputs.shop.orders(account, all.len()).await?;
                    let empty = page.is_empty();
                    all.extend(
                        page.into_iter()
                            .map(|(id, status)| ShopOrder { id, status }),
                    );
                    if empty || all.len() as u64 >= total {
                        return Ok::<_, String>((account.user_id().to_string(), all));
                    }
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let lists = lists.into_iter().collect::<Result<HashMap<_, _>, _>>()?;
        Ok(judge::orders(inputs.ledger, &lists))
    })
    .await;
    Check::from(
        "orders",
        format!("{placed} orders placed, {paid} paid"),
        j,
        started.elapsed(),
    )
}

async fn check_mail(inputs: &Inputs<'_>, deadline: Instant) -> Check {
    let started = Instant::now();
    let emails: HashMap<String, String> = inputs
        .accounts
        .iter()
        .map(|a| (a.user_id().to_string(), a.email.clone()))
        .collect();
    let paid: usize = inputs.ledger.values().map(|a| a.paid.len()).sum();
    let what = format!(
        "{paid} confirmation and {} welcome emails expected",
        inputs.ledger.values().filter(|a| a.registered).count()
    );
    let mut cache: HashMap<String, Mail> = HashMap::new();
    let j = match (inputs.mail_dir, inputs.mail_api) {
        (Some(dir), _) => {
            settle(deadline, || {
                let r = read_outbox(dir, &mut cache)
                    .map(|mails| judge::mail(inputs.ledger, &emails, &mails));
                async move { r }
            })
            .await
        }
        (None, Some(api)) => {
            let http = reqwest::Client::new();
            let emails = &emails;
            settle(deadline, || {
                let http = http.clone();
                async move {
                    let mails = read_mail_api(&http, api).await?;
                    Ok(judge::mail(inputs.ledger, emails, &mails))
                }
            })
            .await
        }
        (None, None) => {
            return Check::not_checked(
                "mail",
                "the mailer is not reachable through the balancer; give --mail-dir (the .eml outbox) or --mail-api (a Mailpit-style API)",
            )
        }
    };
    Check::from("mail", what, j, started.elapsed())
}

/// Every `.eml` file of the outbox, parsed (each file once: `cache`).
fn read_outbox(dir: &Path, cache: &mut HashMap<String, Mail>) -> Result<Vec<Mail>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("reading the outbox {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        let name = path.to_string_lossy().into_owned();
        if path.extension().is_none_or(|e| e != "eml") || cache.contains_key(&name) {
            continue;
        }
        // A file being written may not parse yet: read it next time.
        if let Some(m) = std::fs::read(&path).ok().and_then(|b| parse_eml(&b)) {
            cache.insert(name, m);
        }
    }
    Ok(cache.values().cloned().collect())
}

/// Recipients, subject and text of an RFC 5322 message.
pub fn parse_eml(bytes: &[u8]) -> Option<Mail> {
    let parsed = mailparse::parse_mail(bytes).ok()?;
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
    };
    let to = mailparse::addrparse_header(header("To")?).ok()?;
    let to = to
        .iter()
        .flat_map(|a| match a {
            mailparse::MailAddr::Single(s) => vec![s.addr.to_lowercase()],
            mailparse::MailAddr::Group(g) => {
                g.addrs.iter().map(|s| s.addr.to_lowercase()).collect()
            }
        })
        .collect();
    let subject = header("Subject").map(|h| h.get_value()).unwrap_or_default();
    let mut body = String::new();
    let mut parts = vec![&parsed];
    while let Some(p) = parts.pop() {
        if p.subparts.is_empty() {
            if p.ctype.mimetype.starts_with("text/") {
                body.push_str(&p.get_body().unwrap_or_default());
            }
        } else {
            parts.extend(p.subparts.iter());
        }
    }
    Some(Mail { to, subject, body })
}

/// Every message of a Mailpit-style API (`GET /api/v1/messages`, newest
/// first), by recipients and subject. Messages arriving while it pages
/// shift the pages; each message counts once, by its `ID`.
async fn read_mail_api(http: &reqwest::Client, api: &str) -> Result<Vec<Mail>, String> {
    let mut mails = HashMap::new();
    let mut start = 0;
    loop {
        let url = format!("{api}/api/v1/messages?start={start}&limit=1000");
        let page: Value = http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("GET {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        start += messages.len();
        for m in &messages {
            let id = m["ID"].as_str().unwrap_or_default().to_string();
            mails.entry(id).or_insert_with(|| mail_of(m));
        }
        let total = page["messages_count"]
            .as_u64()
            .or(page["total"].as_u64())
            .unwrap_or(0);
        if messages.is_empty() || start as u64 >= total {
            return Ok(mails.into_values().collect());
        }
    }
}

/// One message of a Mailpit-style list: `To[].Address` and `Subject`.
fn mail_of(m: &Value) -> Mail {
    Mail {
        to: m["To"]
            .as_array()
            .map(|to| {
                to.iter()
                    .filter_map(|a| a["Address"].as_str())
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default(),
        subject: m["Subject"].as_str().unwrap_or_default().to_string(),
        body: String::new(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn check_stats(inputs: &Inputs<'_>, deadline: Instant) -> Check {
    let started = Instant::now();
    let Some((url, key)) = inputs.stats else {
        return Check::not_checked(
            "stats",
            "stats' GET /log is internal and not reachable through the balancer; give --stats-url and --internal-key",
        );
    };
    let from = rfc3339(inputs.since - Duration::from_secs(5));
    let http = reqwest::Client::new();
    let ours: std::collections::HashSet<&str> = inputs.ledger.keys().map(String::as_str).collect();
    let expected: u64 = inputs
        .ledger
        .values()
        .map(|a| {
            u64::from(a.registered) + a.items_added + a.orders.len() as u64 + a.paid.len() as u64
        })
        .sum();
    let summary = std::cell::RefCell::new(String::new());
    let j = settle(deadline, || {
        let http = http.clone();
        let from = from.clone();
        let ours = &ours;
        let summary = &summary;
        async move {
            let to = rfc3339(SystemTime::now() + Duration::from_secs(3600));
            // The summary first: cheap, and the whole log is read only
            // once enough events are there.
            let s = stats_get(&http, url, key, "/log/summary", &from, &to, 0).await?;
            *summary.borrow_mut() = s["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|i| format!("{} {}", i["action"].as_str().unwrap_or("?"), i["count"]))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let events_in_range = s["events"].as_u64().unwrap_or(0);
            if events_in_range < expected {
                return Err(format!(
                    "stats holds {events_in_range} events since the run began, the run's alone are {expected}"
                ));
            }
            let mut events = Vec::new();
            let mut offset = 0;
            loop {
                let page = stats_get(&http, url, key, "/log", &from, &to, offset).await?;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                offset += items.len();
                events.extend(items.iter().filter_map(|e| {
                    let user_id = id_string(&e["user_id"])?;
                    ours.contains(user_id.as_str()).then(|| Event {
                        user_id,
                        action: e["action"].as_str().unwrap_or_default().to_string(),
                        order_id: id_string(&e["data"]["order_id"]),
                    })
                }));
                if items.is_empty() || offset as u64 >= page["total"].as_u64().unwrap_or(0) {
                    break;
                }
            }
            Ok(judge::stats(inputs.ledger, &events))
        }
    })
    .await;
    let mut check = Check::from(
        "stats",
        format!("{expected} events of the run expected"),
        j,
        started.elapsed(),
    );
    let summary = summary.into_inner();
    if !summary.is_empty() {
        check.notes.push(format!(
            "all users' events in stats from 5 s before the run on, by action: {summary}"
        ));
    }
    check
}

async fn stats_get(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    path: &str,
    from: &str,
    to: &str,
    offset: usize,
) -> Result<Value, String> {
    let r = http
        .request(Method::GET, format!("{url}{path}"))
        .query(&[
            ("from", from),
            ("to", to),
            ("limit", "100"),
            ("offset", &offset.to_string()),
        ])
        .bearer_auth(key)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("GET {url}{path}: {e}"))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!(
            "GET {url}{path} answered {status}: {}",
            body["detail"].as_str().unwrap_or("")
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_eml_file() {
        let eml = b"From: shop@shop.example\r\nTo: \"Ann\" <Ann@Example.com>, bob@example.com\r\nSubject: Your order 1a2b3c4d5e6f is paid\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOrder 0190-aaaa-1a2b3c4d5e6f\r\n";
        let m = parse_eml(eml).unwrap();
        assert_eq!(m.to, vec!["ann@example.com", "bob@example.com"]);
        assert_eq!(m.subject, "Your order 1a2b3c4d5e6f is paid");
        assert!(m.body.contains("0190-aaaa-1a2b3c4d5e6f"));
        assert!(parse_eml(b"Subject: no recipient\r\n\r\nx").is_none());
    }

    #[test]
    fn outbox_files_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("1.eml"),
            "To: a@example.com\r\nSubject: Welcome to the shop\r\n\r\nHi\r\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not mail").unwrap();
        let mut cache = HashMap::new();
        assert_eq!(read_outbox(dir.path(), &mut cache).unwrap().len(), 1);
        std::fs::write(
            dir.path().join("2.eml"),
            "To: a@example.com\r\nSubject: Your order x is paid\r\n\r\nHi\r\n",
        )
        .unwrap();
        assert_eq!(read_outbox(dir.path(), &mut cache).unwrap().len(), 2);
        assert!(read_outbox(&dir.path().join("missing"), &mut cache).is_err());
    }

    #[test]
    fn reads_a_mailpit_message() {
        let m = mail_of(&serde_json::json!({
            "ID": "x", "Subject": "Your order 1a2b is paid",
            "To": [{"Name": "Ann", "Address": "Ann@Example.com"}]
        }));
        assert_eq!(m.to, vec!["ann@example.com"]);
        assert_eq!(m.subject, "Your order 1a2b is paid");
    }

    #[test]
    fn times_are_whole_seconds_in_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }
}
