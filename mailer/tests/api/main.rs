//! The mailer over real HTTP: the service runs in-process on a loopback
//! port with a fresh database per test (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set), delivering into a temporary outbox
//! directory or to a real SMTP server on loopback.

mod smtp;
mod support;

use std::collections::HashSet;
use std::time::Duration;

use common::auth::{Role, TokenKeys};
use mailparse::MailHeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use smtp::SmtpServer;
use support::{eventually, fields, free_port, problem, smtp, spawn_app, spawn_with, Cred};

const SUBJECT: &str = "Grüße aus dem Shop ✓";
const BODY: &str =
    "Hallo Ann,\n\nschöne Grüße — dein Konto ist bereit. ✓\n.\nA line with a lone dot above.\n";

/// Checks an RFC 5322 message against what was sent as mail `id`.
fn assert_message(raw: &[u8], id: &str, to: &str, subject: &str, body: &str) {
    let parsed = mailparse::parse_mail(raw).expect("an RFC 5322 message");
    let h = &parsed.headers;
    assert_eq!(
        h.get_first_value("From").as_deref(),
        Some("Shop <no-reply@shop.localhost>")
    );
    assert_eq!(h.get_first_value("To").as_deref(), Some(to));
    assert_eq!(h.get_first_value("Subject").as_deref(), Some(subject));
    assert_eq!(
        h.get_first_value("Message-ID"),
        Some(format!("<{id}@shop.localhost>"))
    );
    let date = h.get_first_value("Date").expect("a Date header");
    let secs = mailparse::dateparse(&date).expect("an RFC 5322 date");
    let now = common::time::now_ms() / 1000;
    assert!(
        (now - 300..=now + 5).contains(&secs),
        "date {date} is not recent"
    );
    assert!(
        h.get_first_value("Content-Type")
            .unwrap()
            .to_lowercase()
            .contains("charset=utf-8"),
        "utf-8 is declared"
    );
    // 8-bit text travels transfer-encoded, and decodes back to the original.
    assert!(raw.is_ascii(), "the message is 7-bit clean");
    let decoded = parsed.get_body().unwrap().replace("\r\n", "\n");
    assert_eq!(decoded, body);
}

#[tokio::test]
async fn a_mail_is_queued_and_written_as_an_eml_file() {
    let app = spawn_app().await;
    let resp = app
        .send(&json!({"to": "ann@example.com", "subject": SUBJECT, "body": BODY}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["id", "status"]));
    assert_eq!(v["status"], "queued");
    let id = v["id"].as_str().unwrap();
    assert!(uuid_v7(id), "{id}");

    let path = app.outbox_dir().join(format!("{id}.eml"));
    let raw = eventually("the .eml file", Duration::from_secs(10), || async {
        std::fs::read(&path).ok()
    })
    .await;
    assert_message(&raw, id, "ann@example.com", SUBJECT, BODY);
    let mail = app
        .wait_for_mail(id, "status sent", |m| m.status == "sent")
        .await;
    assert_eq!(mail.attempts, 1);
    // Only the finished file: the temporary one was renamed into place.
    let names: Vec<String> = std::fs::read_dir(app.outbox_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![format!("{id}.eml")]);
    // Mail holds customers' addresses and orders: only the shop's user
    // may read the outbox (the directory is new, made by the mailer).
    assert_eq!(common::private::mode(&app.outbox_dir()).unwrap(), 0o700);
    assert_eq!(common::private::mode(&path).unwrap(), 0o600);
}

fn uuid_v7(id: &str) -> bool {
    id.len() == 36 && id.as_bytes()[14] == b'7'
}

#[tokio::test]
async fn the_endpoint_is_internal_only() {
    let app = spawn_app().await;
    let body = json!({"to": "ann@example.com", "subject": "Hi", "body": "x"});

    let resp = app.send_raw(Cred::None, None, &body).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    problem(resp).await;

    let wrong = "wrong-key-wrong-key-wrong-key-wrong-key";
    let resp = app.send_raw(Cred::Bearer(wrong), None, &body).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    problem(resp).await;

    let keys = TokenKeys::new(&app.config.base.token_secret, 3600);
    for role in [Role::Customer, Role::Admin] {
        let (token, _) = keys.issue("0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee", role);
        let resp = app.send_raw(Cred::Bearer(&token), None, &body).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{role:?}");
        problem(resp).await;
    }
    assert!(app.mails().await.is_empty(), "nothing was queued");
}

#[tokio::test]
async fn every_field_is_validated() {
    let app = spawn_app().await;
    let ok =
        |to: &str, subject: &str, body: &str| json!({"to": to, "subject": subject, "body": body});
    let cases: Vec<(Value, &str)> = vec![
        (ok("not-an-address", "Hi", "x"), "to"),
        (ok("ann@", "Hi", "x"), "to"),
        (ok("Ann <ann@example.com>", "Hi", "x"), "to"),
        (ok("ann@example.com, eve@example.com", "Hi", "x"), "to"),
        (
            ok("ann@example.com\r\nBcc: eve@example.com", "Hi", "x"),
            "to",
        ),
        (ok("", "Hi", "x"), "to"),
        (
            ok("ann@example.com", "Hi\r\nBcc: eve@example.com", "x"),
            "subject",
        ),
        (ok("ann@example.com", "Hi\nthere", "x"), "subject"),
        (ok("ann@example.com", &"s".repeat(201), "x"), "subject"),
        (ok("ann@example.com", "", "x"), "subject"),
        (
            ok("ann@example.com", "Hi", &"b".repeat(100 * 1024 + 1)),
            "body",
        ),
        (ok("ann@example.com", "Hi", "nul\u{0}byte"), "body"),
        (json!({"subject": "Hi", "body": "x"}), "to"),
        (json!({"to": "ann@example.com", "body": "x"}), "subject"),
        (json!({"to": "ann@example.com", "subject": "Hi"}), "body"),
        (json!({"to": 42, "subject": "Hi", "body": "x"}), "to"),
        (
            json!({"to": "ann@example.com", "subject": ["Hi"], "body": "x"}),
            "subject",
        ),
    ];
    for (body, field) in cases {
        let resp = app.send(&body).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let p = problem(resp).await;
        assert_eq!(p["code"], "validation_failed");
        assert_eq!(fields(&p), vec![field.to_string()], "{body}");
    }
    // Everything wrong at once is reported at once.
    let p = problem(
        app.send(&ok("x", "a\rb", &"b".repeat(100 * 1024 + 1)))
            .await,
    )
    .await;
    assert_eq!(fields(&p), ["to", "subject", "body"]);

    // The limits themselves are allowed.
    app.send_ok("ann@example.com", &"é".repeat(200), &"b".repeat(100 * 1024))
        .await;

    let resp = app
        .client
        .post(app.url("/send_email/"))
        .bearer_auth(&app.config.base.internal_key)
        .header("content-type", "application/json")
        .body("{\"to\":")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    problem(resp).await;

    let resp = app
        .client
        .post(app.url("/send_email/"))
        .bearer_auth(&app.config.base.internal_key)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    problem(resp).await;

    let huge =
        json!({"to": "ann@example.com", "subject": "Hi", "body": "b".repeat(2 * 1024 * 1024)});
    let resp = app.send(&huge).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    problem(resp).await;

    assert_eq!(app.mails().await.len(), 1, "only the valid mail was queued");
}

#[tokio::test]
async fn routing_health_and_metrics() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/send_email/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    problem(resp).await;
    for path in ["/healthz", "/readyz"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    app.send_ok("ann@example.com", "Hi", "x").await;
    let metrics = common::testing::get_text(&app.client, &app.url("/metrics")).await;
    // The counter exists from the start (at 0), so it must have moved.
    let queued = common::testing::metric(&metrics, "mailer_mails_queued_total", &[]);
    assert!(queued.unwrap_or(0.0) >= 1.0, "{metrics}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_queues_one_mail() {
    let app = spawn_app().await;
    let body = json!({"to": "ann@example.com", "subject": "Welcome", "body": "Hello"});
    let key = "0190aaaa-bbbb-7ccc-8ddd-000000000001";

    // Many deliveries of the same message at once, as retries can overlap.
    let answers = futures_join(&app, key, &body, 8).await;
    let ids: HashSet<String> = answers
        .iter()
        .map(|(s, v)| {
            assert_eq!(*s, 202, "{v}");
            assert_eq!(v["status"], "queued");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same mail: {ids:?}");
    let id = ids.into_iter().next().unwrap();

    // A later retry too.
    let resp = app.send_raw(Cred::Internal, Some(key), &body).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], id.as_str());

    app.wait_for_mail(&id, "sent", |m| m.status == "sent").await;
    // And after it was sent: still the same mail, nothing new queued.
    let resp = app.send_raw(Cred::Internal, Some(key), &body).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(app.mails().await.len(), 1);
    let files = std::fs::read_dir(app.outbox_dir()).unwrap().count();
    assert_eq!(files, 1);

    // The same key for a different mail is refused.
    let other = json!({"to": "ann@example.com", "subject": "Welcome", "body": "Hello!"});
    let resp = app.send_raw(Cred::Internal, Some(key), &other).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(resp).await["code"], "idempotency_key_reused");

    // A malformed key is refused before anything is queued.
    let resp = app.send_raw(Cred::Internal, Some("bad\tkey"), &body).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(resp).await["code"], "invalid_idempotency_key");

    // Without a key, the same body is a new mail.
    let again = app.send_ok("ann@example.com", "Welcome", "Hello").await;
    assert_ne!(again, id);
    assert_eq!(app.mails().await.len(), 2);
}

async fn futures_join(
    app: &support::TestApp,
    key: &str,
    body: &Value,
    n: usize,
) -> Vec<(u16, Value)> {
    let sends = (0..n).map(|_| async {
        let resp = app.send_raw(Cred::Internal, Some(key), body).await;
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    futures::future::join_all(sends).await
}

#[tokio::test]
async fn too_many_mails_to_one_recipient_is_429_with_retry_after() {
    let app = spawn_with(|c| c.recipient_limit = 3).await;
    let key = "welcome-ann";
    let first = app
        .send_raw(
            Cred::Internal,
            Some(key),
            &json!({"to": "ann@example.com", "subject": "1", "body": "x"}),
        )
        .await;
    assert_eq!(first.status(), 202);
    let first_id = first.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send_ok("Ann@Example.com", "2", "x").await;
    app.send_ok("ann@example.com", "3", "x").await;

    // The fourth, in any letter case, is over the limit.
    let resp = app
        .send(&json!({"to": "ANN@example.COM", "subject": "4", "body": "x"}))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = common::testing::retry_after(&resp);
    // The oldest of the three leaves the one-hour window in about an hour.
    assert!((3590..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(problem(resp).await["code"], "rate_limited");

    // A replay of an accepted mail is not a new mail: still 202, same id.
    let replay = app
        .send_raw(
            Cred::Internal,
            Some(key),
            &json!({"to": "ann@example.com", "subject": "1", "body": "x"}),
        )
        .await;
    assert_eq!(replay.status(), 202);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["id"],
        first_id.as_str()
    );

    // Other recipients are not affected.
    app.send_ok("bob@example.com", "1", "x").await;
    assert_eq!(app.mails().await.len(), 4);
}

#[tokio::test]
async fn the_limit_holds_under_concurrent_requests() {
    let app = spawn_with(|c| c.recipient_limit = 5).await;
    let sends = (0..20).map(|i| {
        let body = json!({"to": "ann@example.com", "subject": format!("{i}"), "body": "x"});
        let app = &app;
        async move { app.send(&body).await.status().as_u16() }
    });
    let statuses = futures::future::join_all(sends).await;
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((accepted, limited), (5, 15), "{statuses:?}");
    assert_eq!(app.mails().await.len(), 5);
}

#[tokio::test]
async fn the_limit_opens_again_when_the_window_has_passed() {
    let app = spawn_with(|c| {
        c.recipient_limit = 1;
        c.recipient_window = Duration::from_secs(2);
    })
    .await;
    app.send_ok("ann@example.com", "1", "x").await;
    let resp = app
        .send(&json!({"to": "ann@example.com", "subject": "2", "body": "x"}))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = common::testing::retry_after(&resp);
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Retrying when told to succeeds.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    app.send_ok("ann@example.com", "2", "x").await;
}

#[tokio::test]
async fn mail_is_delivered_through_a_real_smtp_server() {
    let server = SmtpServer::start().await;
    let app = spawn_with(|c| c.transport = smtp(&server.url())).await;
    let id = app.send_ok("ann@example.com", SUBJECT, BODY).await;
    let got = eventually(
        "the SMTP server got the mail",
        Duration::from_secs(10),
        || async { server.received().into_iter().next() },
    )
    .await;
    assert_eq!(got.mail_from, "no-reply@shop.localhost");
    assert_eq!(got.rcpt_to, vec!["ann@example.com".to_string()]);
    assert_message(got.message(), &id, "ann@example.com", SUBJECT, BODY);
    let mail = app.wait_for_mail(&id, "sent", |m| m.status == "sent").await;
    assert_eq!(mail.attempts, 1);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn smtp_credentials_come_from_the_url() {
    let server = SmtpServer::start_on(0, Some(("shop", "p@ss word"))).await;
    let url = format!("smtp://shop:p%40ss%20word@{}", server.addr);
    let app = spawn_with(|c| c.transport = smtp(&url)).await;
    let id = app.send_ok("ann@example.com", "Hi", "x").await;
    app.wait_for_mail(&id, "sent", |m| m.status == "sent").await;
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].user.as_deref(), Some("shop"));
}

#[tokio::test]
async fn a_mail_that_keeps_failing_is_marked_failed_and_counted() {
    let server = SmtpServer::start_on(0, Some(("shop", "right"))).await;
    let url = format!("smtp://shop:wrong@{}", server.addr);
    let app = spawn_with(|c| {
        c.transport = smtp(&url);
        c.max_attempts = 3;
    })
    .await;
    let id = app.send_ok("ann@example.com", "Hi", "x").await;
    let mail = app
        .wait_for_mail(&id, "failed", |m| m.status == "failed")
        .await;
    assert_eq!(mail.attempts, 3);
    assert!(
        mail.last_error.unwrap().contains("SMTP"),
        "the cause is kept"
    );
    assert!(server.received().is_empty());
    let metrics = common::testing::get_text(&app.client, &app.url("/metrics")).await;
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("mailer_mails_failed_total"))
        .unwrap_or_else(|| panic!("no failure counter in {metrics}"));
    let n: f64 = failed.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{failed}");
}

#[tokio::test]
async fn mail_waits_while_the_smtp_server_is_down_and_goes_out_when_it_is_back() {
    let port = free_port();
    let app = spawn_with(|c| c.transport = smtp(&format!("smtp://127.0.0.1:{port}"))).await;
    let id = app.send_ok("ann@example.com", SUBJECT, BODY).await;
    // Down: attempts fail and the mail stays queued.
    let mail = app
        .wait_for_mail(&id, "two failed attempts", |m| m.attempts >= 2)
        .await;
    assert_eq!(mail.status, "queued");
    assert!(mail.last_error.is_some());
    // Back: the next attempt delivers it, once.
    let server = SmtpServer::start_on(port, None).await;
    let mail = app.wait_for_mail(&id, "sent", |m| m.status == "sent").await;
    assert!(mail.attempts >= 3);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_message(got[0].message(), &id, "ann@example.com", SUBJECT, BODY);
}

#[tokio::test]
async fn queued_mail_survives_a_restart() {
    let port = free_port();
    let app = spawn_with(|c| {
        c.transport = smtp(&format!("smtp://127.0.0.1:{port}"));
        c.max_attempts = 1000;
    })
    .await;
    let a = app.send_ok("ann@example.com", "one", "x").await;
    let b = app.send_ok("bob@example.com", "two", "y").await;
    app.wait_for_mail(&b, "an attempt", |m| m.attempts >= 1)
        .await;
    // Stopped while the mail is still queued.
    let server = SmtpServer::start_on(port, None).await;
    server.stop();
    let app = app.restart_with(|_| {}).await;
    assert!(app.mails().await.iter().all(|m| m.status == "queued"));
    let server = SmtpServer::start_on(port, None).await;
    for id in [&a, &b] {
        app.wait_for_mail(id, "sent after the restart", |m| m.status == "sent")
            .await;
    }
    let mut subjects: Vec<String> = server
        .received()
        .iter()
        .map(|r| {
            mailparse::parse_mail(r.message())
                .unwrap()
                .headers
                .get_first_value("Subject")
                .unwrap()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["one", "two"], "each mail delivered exactly once");
}

#[tokio::test]
async fn tls_required_is_never_downgraded_to_plaintext() {
    // The server offers no STARTTLS, so a transport that requires TLS must
    // keep the mail queued rather than send it in the clear.
    let server = SmtpServer::start().await;
    let url = format!("smtp://{}?tls=required", server.addr);
    let app = spawn_with(|c| c.transport = smtp(&url)).await;
    let id = app.send_ok("ann@example.com", "Hi", "x").await;
    let mail = app
        .wait_for_mail(&id, "a failed attempt", |m| m.attempts >= 1)
        .await;
    assert_eq!(mail.status, "queued");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn two_replicas_on_one_database_send_each_mail_once() {
    let server = SmtpServer::start().await;
    let a = spawn_with(|c| {
        c.transport = smtp(&server.url());
        c.recipient_limit = 100;
    })
    .await;
    let b = a.replica(|_| {}).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let app = if i % 2 == 0 { &a } else { &b };
        ids.push(
            app.send_ok("ann@example.com", &format!("mail {i}"), "x")
                .await,
        );
    }
    eventually("all 30 sent", Duration::from_secs(20), || async {
        let mails = a.mails().await;
        (mails.len() == 30 && mails.iter().all(|m| m.status == "sent")).then_some(())
    })
    .await;
    let got = server.received();
    let unique: HashSet<String> = got
        .iter()
        .map(|r| {
            mailparse::parse_mail(r.message())
                .unwrap()
                .headers
                .get_first_value("Message-ID")
                .unwrap()
        })
        .collect();
    assert_eq!(got.len(), 30, "no mail was sent twice");
    assert_eq!(unique.len(), 30);
    b.stop().await;
}
