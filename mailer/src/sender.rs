//! The background sender: leases due mail, builds each message and hands
//! it to the transport; a failure is retried with exponential backoff and
//! jitter, and after the last allowed attempt the mail is marked failed,
//! logged at error level and counted (`mailer_mails_failed_total`).
//!
//! Nothing is held in memory between passes: the database is the queue, so
//! a restart resumes where the last process stopped.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::metrics::backlog::{self, Refresh};
use common::telemetry;
use common::time::now_ms;
use futures::StreamExt;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Address, Message};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::MailerConfig;
use crate::store::{Pending, Store};
use crate::transport::Transport;

/// Mails read per pass, and sent at once.
const BATCH: i64 = 32;
const CONCURRENCY: usize = 4;
/// Longest error text kept with a mail.
const MAX_ERROR_CHARS: usize = 500;

#[derive(Clone)]
pub struct Sender {
    store: Store,
    transport: Transport,
    from: Mailbox,
    wake: Arc<Notify>,
    max_attempts: i64,
    retry_base: Duration,
    retry_max: Duration,
    send_timeout: Duration,
    lease: Duration,
    poll_interval: Duration,
    backlog: Arc<Refresh>,
}

impl Sender {
    pub fn new(
        config: &MailerConfig,
        store: Store,
        transport: Transport,
        wake: Arc<Notify>,
    ) -> Self {
        use common::metrics::zero_counter;
        zero_counter("mailer_mails_failed_total", None);
        zero_counter("mailer_send_retries_total", None);
        zero_counter("mailer_mails_queued_total", None);
        zero_counter(
            "mailer_mails_sent_total",
            Some(("transport", &[transport.name()])),
        );
        Sender {
            store,
            transport,
            from: config.from.clone(),
            wake,
            max_attempts: config.max_attempts,
            retry_base: config.retry_base,
            retry_max: config.retry_max,
            send_timeout: config.send_timeout,
            lease: config.lease(),
            poll_interval: config.poll_interval,
            backlog: Arc::new(Refresh::new(backlog::REFRESH_EVERY)),
        }
    }

    /// Sends until `stop`; an attempt under way when it fires is finished
    /// and recorded, so a stop never leaves a sent mail marked queued.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            if self.backlog.due() {
                self.refresh_backlog().await;
            }
            match self.send_due(&stop).await {
                // A full batch means more may be due: go again at once.
                Ok(n) if n as i64 >= BATCH => continue,
                Ok(_) => {}
                Err(e) => log::warn!("cannot read queued mail: {e}"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Sets the queue gauges (`mailer_queued_mails`,
    /// `mailer_oldest_queued_age_seconds`).
    async fn refresh_backlog(&self) {
        match self.store.backlog().await {
            Ok((waiting, oldest)) => backlog::set(
                "mailer_queued_mails",
                "mailer_oldest_queued_age_seconds",
                &[],
                waiting,
                oldest,
            ),
            Err(e) => log::warn!("cannot read the mail queue's length: {e}"),
        }
    }

    /// One pass over the due mail; returns how many were due.
    pub async fn send_due(&self, stop: &CancellationToken) -> Result<usize, sqlx::Error> {
        let due = self.store.due(now_ms(), BATCH).await?;
        let count = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |mail| async move {
                if stop.is_cancelled() {
                    return;
                }
                let id = mail.id.clone();
                if let Err(e) = self.attempt(mail).await {
                    log::warn!("cannot record the attempt on mail {id}: {e}");
                }
            })
            .await;
        Ok(count)
    }

    async fn attempt(&self, mail: Pending) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let lease_until = now + self.lease.as_millis() as i64;
        if !self.store.claim(&mail.id, now, lease_until).await? {
            return Ok(()); // another sender has it, or it is done
        }
        let attempts = mail.attempts + 1;
        let message = match build_message(&self.from, &mail) {
            Ok(m) => m,
            Err(error) => {
                // Validated on the way in, so this is a bug; retrying
                // cannot fix it.
                log::error!(
                    "mail {} cannot be built and is marked failed: {error}",
                    mail.id
                );
                metrics::counter!("mailer_mails_failed_total").increment(1);
                return self.store.mark_failed(&mail.id, attempts, &error).await;
            }
        };
        let transport = self.transport.name();
        let send = async {
            match tokio::time::timeout(self.send_timeout, self.transport.send(&mail.id, &message))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "the attempt took longer than {:?}",
                    self.send_timeout
                )),
            }
        };
        // A child of the span that queued the mail; no recipient or body.
        let parent = match &mail.traceparent {
            Some(tp) if telemetry::enabled() => telemetry::context_from_traceparent(tp),
            _ => Default::default(),
        };
        let outcome = telemetry::span("smtp.send", telemetry::Kind::Client, || {
            vec![
                telemetry::Attr::new("mail.id", mail.id.clone()),
                telemetry::Attr::new("mail.transport", transport),
                telemetry::Attr::new("mail.attempt", attempts),
            ]
        })
        .parent(parent)
        .run(send)
        .await;
        // The request that queued the mail, so one id traces it end to end.
        let rid = mail.request_id.as_deref().unwrap_or("-");
        match outcome {
            Ok(()) => {
                log::info!(
                    "mail {} sent via {transport} (attempt {attempts}) rid={rid}",
                    mail.id
                );
                metrics::counter!("mailer_mails_sent_total", "transport" => transport).increment(1);
                self.store.mark_sent(&mail.id, attempts).await
            }
            Err(error) if attempts >= self.max_attempts => {
                let error = truncate(&error);
                log::error!(
                    "mail {} failed for good after {attempts} attempts via {transport} rid={rid}: {error}",
                    mail.id
                );
                metrics::counter!("mailer_mails_failed_total").increment(1);
                self.store.mark_failed(&mail.id, attempts, &error).await
            }
            Err(error) => {
                let error = truncate(&error);
                let delay = common::retry::backoff(self.retry_base, self.retry_max, attempts);
                log::warn!(
                    "mail {} not sent via {transport} (attempt {attempts} of {}), retrying in {delay:?} rid={rid}: {error}",
                    mail.id,
                    self.max_attempts
                );
                metrics::counter!("mailer_send_retries_total").increment(1);
                let next = now_ms() + delay.as_millis() as i64;
                self.store
                    .mark_retry(&mail.id, attempts, next, &error)
                    .await
            }
        }
    }
}

/// The RFC 5322 message for a stored mail. Date and Message-ID derive from
/// the stored row, so every attempt produces the same message and a
/// receiver can recognise a repeat.
pub fn build_message(from: &Mailbox, mail: &Pending) -> Result<Message, String> {
    let to: Address = mail
        .recipient
        .parse()
        .map_err(|e| format!("stored recipient does not parse: {e}"))?;
    let created = UNIX_EPOCH + Duration::from_millis(mail.created_at.max(0) as u64);
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(mail.subject.clone())
        .date(created)
        .message_id(Some(format!("<{}@{}>", mail.id, from.email.domain())))
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_headers_and_encode_utf8() {
        let from: Mailbox = "Shop <no-reply@shop.example>".parse().unwrap();
        let mail = Pending {
            id: "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee".into(),
            recipient: "ann@example.com".into(),
            subject: "Grüße".into(),
            body: "Hallo Ann, schöne Grüße ✓\n".into(),
            attempts: 0,
            created_at: 1_795_775_544_000,
            request_id: None,
            traceparent: None,
        };
        let text = String::from_utf8(build_message(&from, &mail).unwrap().formatted()).unwrap();
        assert!(
            text.contains("From: Shop <no-reply@shop.example>\r\n"),
            "{text}"
        );
        assert!(text.contains("To: ann@example.com\r\n"), "{text}");
        assert!(
            text.contains("Subject: =?utf-8?"),
            "encoded subject: {text}"
        );
        assert!(
            text.contains("Date: Fri, 27 Nov 2026 10:32:24 +0000\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee@shop.example>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
        assert!(text.is_ascii(), "8-bit text is transfer-encoded: {text}");
    }
}
