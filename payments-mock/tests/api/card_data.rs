//! Card data: neither card numbers nor CVCs are ever stored, in any table,
//! in the webhook, or in the SQLite files themselves.

use serde_json::json;

use crate::support::{card, spawn_with, Receiver, WAIT};

#[tokio::test]
async fn card_numbers_and_cvcs_are_never_stored() {
    let receiver = Receiver::start(0).await;
    let app = spawn_with(|c| c.webhook_url = receiver.url()).await;
    let declined = app.invoice(100).await["id"].as_str().unwrap().to_string();
    let mut body = card("4000 0000 0000 0002");
    body["cvc"] = json!("8642");
    assert_eq!(app.pay(&declined, &body).await.status(), 402);
    let paid = app.invoice(100).await["id"].as_str().unwrap().to_string();
    let mut body = card("5555 5555 5555 4444");
    body["cvc"] = json!("9753");
    assert_eq!(app.pay(&paid, &body).await.status(), 200);
    receiver.wait_acknowledged(1, WAIT).await;

    let mut stored = Vec::new();
    for table in ["invoices", "outbox", "idempotency_keys"] {
        stored.extend(app.dump(table).await);
    }
    let text = stored.join("\n");
    assert!(
        text.contains("4444"),
        "the last four digits are kept: {text}"
    );
    for secret in [
        "5555555555554444",
        "555555555555",
        "4000000000000002",
        "card_number",
        "cvc",
    ] {
        assert!(!text.contains(secret), "{secret} is stored: {text}");
    }
    // A CVC's four digits may occur inside some random hex id, so it is
    // looked for as a whole value (and as a JSON field above).
    assert!(
        stored.iter().all(|v| v != "9753" && v != "8642"),
        "a CVC is stored"
    );
    // The webhook carries only brand and last4 too.
    let hook = &receiver.hooks()[0];
    assert_eq!(
        hook.json()["invoice"]["card"],
        json!({"brand": "mastercard", "last4": "4444"})
    );
    // On SQLite, the database files themselves (free pages included).
    if let Some(path) = common::db::sqlite_path(&app.config.base.database_url) {
        for file in [path.clone(), path.with_extension("db-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for secret in [&b"5555555555554444"[..], b"4000000000000002"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "found in {}",
                    file.display()
                );
            }
        }
    }
}
