//! The mail queue's gauges over real HTTP, in a test process of their own:
//! `mailer_queued_mails` and `mailer_oldest_queued_age_seconds` are one per
//! process, so mailers of parallel tests would overwrite them.

#[allow(dead_code)]
#[path = "api/smtp.rs"]
mod smtp;
#[allow(dead_code, unused_imports)]
#[path = "api/support.rs"]
mod support;

use std::time::Duration;

use common::testing::{eventually, get_text, metric};
use smtp::SmtpServer;
use support::{free_port, smtp, spawn_with, TestApp};

/// The gauges are refreshed every 5 s.
const WITHIN: Duration = Duration::from_secs(15);

async fn scrape(app: &TestApp) -> String {
    get_text(&app.client, &app.url("/metrics")).await
}

#[tokio::test]
async fn the_queue_gauges_follow_mail_waiting_for_a_server_that_is_down() {
    let port = free_port();
    let app = spawn_with(|c| {
        c.transport = smtp(&format!("smtp://127.0.0.1:{port}"));
        c.max_attempts = 1000;
    })
    .await;
    let idle = scrape(&app).await;
    assert_eq!(metric(&idle, "mailer_mails_failed_total", &[]), Some(0.0));

    app.send_ok("ann@example.com", "queued", "waits").await;
    let text = eventually("the queue gauge to show the mail", WITHIN, || async {
        let text = scrape(&app).await;
        (metric(&text, "mailer_queued_mails", &[])? == 1.0).then_some(text)
    })
    .await;
    let age = metric(&text, "mailer_oldest_queued_age_seconds", &[]).unwrap();
    assert!(age > 0.0 && age < WITHIN.as_secs_f64(), "{age}");
    assert!(metric(&text, "mailer_send_retries_total", &[]).unwrap() >= 1.0);

    let server = SmtpServer::start_on(port, None).await;
    let text = eventually("the queue gauge to drain", WITHIN, || async {
        let text = scrape(&app).await;
        (metric(&text, "mailer_queued_mails", &[])? == 0.0).then_some(text)
    })
    .await;
    assert_eq!(server.received().len(), 1);
    assert_eq!(
        metric(&text, "mailer_oldest_queued_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "mailer_mails_sent_total", &["transport=\"smtp\""]),
        Some(1.0)
    );
}
