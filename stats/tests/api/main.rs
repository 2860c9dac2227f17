//! The stats API over real HTTP: the service runs in-process on a loopback
//! port with a fresh database per test (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set), and is driven with reqwest.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use common::auth::{Role, TokenKeys};
use common::db::Backend;
use common::time::{now_ms, parse_rfc3339, rfc3339};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stats::domain::Event;
use support::{enc, eventually, fields, problem, spawn_app, spawn_with, Cred, WIDE_FROM, WIDE_TO};

#[tokio::test]
async fn an_event_is_accepted_and_stored() {
    let app = spawn_app().await;
    let before = now_ms();
    let resp = app
        .post(&json!({"user_id": "u-1", "action": "user_registered", "data": {"plan": "free", "n": [1, 2]}}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "accepted"})
    );
    // An integer user id, no data, and a null user id are fine too.
    app.log(&json!({"user_id": 42, "action": "cart_item_added"}))
        .await;
    app.log(&json!({"user_id": null, "action": "page.view-2", "data": null}))
        .await;
    let after = now_ms();

    let events = app.wait_for_events(3).await;
    let e = &events[0];
    let keys: HashSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "ts", "user_id", "action", "data"])
    );
    assert_eq!(e["user_id"], "u-1");
    assert_eq!(e["action"], "user_registered");
    assert_eq!(e["data"], json!({"plan": "free", "n": [1, 2]}));
    let id = e["id"].as_str().unwrap();
    assert!(
        id.len() == 36 && id.as_bytes()[14] == b'7',
        "a UUID v7: {id}"
    );
    let ts = e["ts"].as_str().unwrap();
    assert!(ts.ends_with('Z'), "{ts}");
    let ms = parse_rfc3339(ts).unwrap();
    assert!((before..=after).contains(&ms), "{ts}");
    assert_eq!(events[1]["user_id"], "42");
    assert_eq!(events[1]["data"], Value::Null);
    assert_eq!(events[2]["user_id"], Value::Null);
    assert_eq!(events[2]["action"], "page.view-2");
}

#[tokio::test]
async fn posted_events_are_validated() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "action"),
        (json!({"action": ""}), "action"),
        (json!({"action": "Order_Paid"}), "action"),
        (json!({"action": "order paid"}), "action"),
        (json!({"action": "a".repeat(65)}), "action"),
        (json!({"action": 7}), "action"),
        (json!({"action": "x", "data": [1, 2]}), "data"),
        (json!({"action": "x", "data": "text"}), "data"),
        (
            json!({"action": "x", "data": {"big": "y".repeat(8 * 1024)}}),
            "data",
        ),
        (json!({"action": "x", "user_id": true}), "user_id"),
        (json!({"action": "x", "user_id": 1.5}), "user_id"),
        (json!({"action": "x", "user_id": ""}), "user_id"),
        (json!({"action": "x", "user_id": "a\u{0}b"}), "user_id"),
    ];
    for (body, field) in cases {
        let resp = app.post(&body).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let p = problem(resp).await;
        assert_eq!(fields(&p), vec![field.to_string()], "{body}");
    }
    let p = problem(
        app.post(&json!({"action": "A", "data": 1, "user_id": false}))
            .await,
    )
    .await;
    assert_eq!(fields(&p), ["user_id", "action", "data"]);
    // The limits themselves are allowed: 64 characters, 8 KiB of data.
    app.log(&json!({"action": "a".repeat(64), "data": {"k": "x".repeat(8 * 1024 - 8)}}))
        .await;

    let resp = app
        .client
        .post(app.url("/log"))
        .header("content-type", "application/json")
        .body("{\"action\":")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    problem(resp).await;
    let resp = app
        .client
        .post(app.url("/log"))
        .header("content-type", "text/plain")
        .body("action=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    problem(resp).await;
    let resp = app
        .post_raw(Some(&"k".repeat(256)), &json!({"action": "x"}))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(resp).await["code"], "invalid_idempotency_key");

    assert_eq!(
        app.wait_for_events(1).await.len(),
        1,
        "only the valid event was stored"
    );
}

#[tokio::test]
async fn reading_is_internal_only() {
    let app = spawn_app().await;
    let keys = TokenKeys::new(&app.config.base.token_secret, 3600);
    let (user, _) = keys.issue("0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee", Role::Admin);
    let wrong = "wrong-key-wrong-key-wrong-key-wrong-key";
    for path in ["/log", "/log/summary"] {
        let q = format!("{path}?from={}&to={}", enc(WIDE_FROM), enc(WIDE_TO));
        let resp = app.get(&q, Cred::None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        problem(resp).await;
        let resp = app.get(&q, Cred::Bearer(wrong)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        problem(resp).await;
        let resp = app.get(&q, Cred::Bearer(&user)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        problem(resp).await;
        // Credentials are checked before the query: no leak of what is valid.
        let resp = app.get(path, Cred::None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let resp = app.get(&q, Cred::Internal).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn ranges_include_from_and_exclude_to() {
    let app = spawn_app().await;
    // Three events at known, distinct milliseconds, written as the writer
    // would write them; then one through HTTP.
    let t0 = parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
    let events: Vec<Event> = [t0, t0 + 1, t0 + 1000]
        .iter()
        .enumerate()
        .map(|(i, ts)| Event {
            id: uuid::Uuid::now_v7().to_string(),
            ts: *ts,
            user_id: None,
            action: format!("e{i}"),
            data: None,
            idempotency_key: None,
        })
        .collect();
    app.state.store.insert_batch(&events).await.unwrap();
    let actions = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |from: i64, to: i64| (rfc3339(from), rfc3339(to));
    let (f, t) = q(t0, t0 + 1000);
    let page = app.events(&f, &t, "").await;
    assert_eq!(actions(&page), ["e0", "e1"], "from inclusive, to exclusive");
    assert_eq!(page["total"], 2);
    let (f, t) = q(t0 + 1, t0 + 1001);
    assert_eq!(actions(&app.events(&f, &t, "").await), ["e1", "e2"]);
    let (f, t) = q(t0, t0);
    assert_eq!(
        actions(&app.events(&f, &t, "").await),
        Vec::<String>::new(),
        "an empty range"
    );
    // The same instant written with another offset is the same bound.
    let page = app
        .events(
            "2026-11-27T11:00:00+01:00",
            "2026-11-27T11:00:00.001+01:00",
            "",
        )
        .await;
    assert_eq!(actions(&page), ["e0"]);
    assert_eq!(page["items"][0]["ts"], "2026-11-27T10:00:00Z");
    assert_eq!(page["items"][1]["ts"], Value::Null);
    let page = app
        .events("2026-11-27T10:00:00.001Z", "2026-11-27T10:00:01Z", "")
        .await;
    assert_eq!(page["items"][0]["ts"], "2026-11-27T10:00:00.001Z");

    // An event posted over HTTP is found at exactly its own timestamp.
    app.log(&json!({"action": "live"})).await;
    let all = app.wait_for_events(4).await;
    let ts = all[3]["ts"].as_str().unwrap();
    let ms = parse_rfc3339(ts).unwrap();
    assert_eq!(
        actions(&app.events(ts, &rfc3339(ms + 1), "").await),
        ["live"]
    );
    assert!(actions(&app.events(&rfc3339(ms - 1), ts, "").await).is_empty());
}

#[tokio::test]
async fn equal_timestamps_are_ordered_by_id() {
    let app = spawn_app().await;
    let ts = parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
    let mut ids: Vec<String> = (0..5).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let events: Vec<Event> = ids
        .iter()
        .rev()
        .map(|id| Event {
            id: id.clone(),
            ts,
            user_id: None,
            action: "same".into(),
            data: None,
            idempotency_key: None,
        })
        .collect();
    app.state.store.insert_batch(&events).await.unwrap();
    ids.sort();
    let page = app
        .events("2026-11-27T10:00:00Z", "2026-11-27T10:00:01Z", "")
        .await;
    let got: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn a_missing_malformed_or_inverted_range_is_422() {
    let app = spawn_app().await;
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("/log".into(), vec!["from", "to"]),
        (format!("/log?to={}", enc(WIDE_TO)), vec!["from"]),
        (format!("/log?from={}", enc(WIDE_FROM)), vec!["to"]),
        (
            format!("/log?from=yesterday&to={}", enc(WIDE_TO)),
            vec!["from"],
        ),
        (
            format!("/log?from={}&to=2026-13-01T00:00:00Z", enc(WIDE_FROM)),
            vec!["to"],
        ),
        (
            format!("/log?from=2026-11-27&to={}", enc(WIDE_TO)),
            vec!["from"],
        ),
        (
            format!("/log?from={}&to={}", enc(WIDE_TO), enc(WIDE_FROM)),
            vec!["to"],
        ),
        (
            format!("/log?from={}&to={}&limit=0", enc(WIDE_FROM), enc(WIDE_TO)),
            vec!["limit"],
        ),
        (
            format!("/log?from={}&to={}&limit=101", enc(WIDE_FROM), enc(WIDE_TO)),
            vec!["limit"],
        ),
        (
            format!("/log?from={}&to={}&offset=-1", enc(WIDE_FROM), enc(WIDE_TO)),
            vec!["offset"],
        ),
        ("/log?from=x&limit=x".into(), vec!["from", "to", "limit"]),
        ("/log/summary?from=x".into(), vec!["from", "to"]),
        (
            format!("/log/summary?from={}&to={}", enc(WIDE_TO), enc(WIDE_FROM)),
            vec!["to"],
        ),
    ];
    for (path, want) in cases {
        let resp = app.get(&path, Cred::Internal).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let p = problem(resp).await;
        assert_eq!(p["code"], "validation_failed");
        assert_eq!(fields(&p), want, "{path}");
    }
}

#[tokio::test]
async fn lists_are_paginated_oldest_first() {
    let app = spawn_app().await;
    for i in 0..25 {
        app.log(&json!({"action": "step", "data": {"i": i}})).await;
    }
    let all = app.wait_for_events(25).await;
    let order: Vec<i64> = all
        .iter()
        .map(|e| e["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..25).collect::<Vec<_>>(), "oldest first");

    let page = app.events(WIDE_FROM, WIDE_TO, "").await;
    assert_eq!(page["limit"], 20);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["total"], 25);
    assert_eq!(page["items"].as_array().unwrap().len(), 20);

    let mut seen = Vec::new();
    for offset in [0, 10, 20] {
        let page = app
            .events(WIDE_FROM, WIDE_TO, &format!("&limit=10&offset={offset}"))
            .await;
        assert_eq!(page["total"], 25);
        assert_eq!(page["limit"], 10);
        assert_eq!(page["offset"], offset);
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(seen, all);
    let beyond = app.events(WIDE_FROM, WIDE_TO, "&offset=100").await;
    assert_eq!(beyond["items"], json!([]));
    assert_eq!(beyond["total"], 25);
}

#[tokio::test]
async fn the_summary_counts_events_per_action() {
    let app = spawn_app().await;
    for action in [
        "order_paid",
        "cart_item_added",
        "order_paid",
        "user_registered",
        "order_paid",
        "cart_item_added",
    ] {
        app.log(&json!({"action": action})).await;
    }
    app.wait_for_events(6).await;
    let resp = app
        .get(
            &format!("/log/summary?from={}&to={}", enc(WIDE_FROM), enc(WIDE_TO)),
            Cred::Internal,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let s: Value = resp.json().await.unwrap();
    assert_eq!(
        s["items"],
        json!([
            {"action": "order_paid", "count": 3},
            {"action": "cart_item_added", "count": 2},
            {"action": "user_registered", "count": 1},
        ])
    );
    assert_eq!(s["total"], 3, "distinct actions");
    assert_eq!(s["events"], 6);
    assert_eq!(s["from"], WIDE_FROM);
    assert_eq!(s["to"], WIDE_TO);

    let page: Value = app
        .get(
            &format!(
                "/log/summary?from={}&to={}&limit=1&offset=1",
                enc(WIDE_FROM),
                enc(WIDE_TO)
            ),
            Cred::Internal,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"],
        json!([{"action": "cart_item_added", "count": 2}])
    );
    assert_eq!(page["total"], 3);

    let empty: Value = app
        .get(
            "/log/summary?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
            Cred::Internal,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["events"], 0);
}

#[tokio::test]
async fn batched_events_are_all_stored_after_graceful_shutdown() {
    // Nothing is flushed on its own during the test: the batch never fills
    // and its time never runs out, so only the shutdown drain stores them.
    let app = spawn_with(|c| {
        c.batch_size = 100_000;
        c.flush_interval = Duration::from_secs(3600);
    })
    .await;
    let n = 400;
    let posts = (0..n).map(|i| {
        let app = &app;
        async move {
            let resp = app
                .post(&json!({"action": "burst", "data": {"i": i}}))
                .await;
            resp.status().as_u16()
        }
    });
    let statuses = futures_join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let page = app.events(WIDE_FROM, WIDE_TO, "").await;
    assert_eq!(page["total"], 0, "the events are still batched in memory");

    // Stop as SIGTERM would; serve() returns only after the drain.
    let app = app
        .restart_with(|c| c.flush_interval = Duration::from_millis(20))
        .await;
    let all = app.all_events().await;
    assert_eq!(all.len(), n);
    let distinct: HashSet<i64> = all
        .iter()
        .map(|e| e["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(distinct.len(), n);
}

/// Runs the futures 50 at a time, as many clients at once would.
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut futs = futs.into_iter();
    let mut out = Vec::new();
    loop {
        let chunk: Vec<F> = futs.by_ref().take(50).collect();
        if chunk.is_empty() {
            return out;
        }
        out.extend(futures::future::join_all(chunk).await);
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_stores_one_event() {
    let app = spawn_with(|c| c.flush_interval = Duration::from_millis(200)).await;
    let body = json!({"user_id": "u-1", "action": "user_registered", "data": {}});
    let key = "0190aaaa-bbbb-7ccc-8ddd-000000000001";
    // Repeats inside one batch...
    let posts = (0..5).map(|_| {
        let (app, body) = (&app, &body);
        async move { app.post_raw(Some(key), body).await.status().as_u16() }
    });
    assert!(futures_join_all(posts).await.iter().all(|s| *s == 202));
    app.wait_for_events(1).await;
    // ...and after it was written.
    let resp = app.post_raw(Some(key), &body).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "accepted"})
    );
    // Another key is another event.
    assert_eq!(app.post_raw(Some("other"), &body).await.status(), 202);
    let all = app.wait_for_events(2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.all_events().await, all, "nothing more arrived");
}

/// Holds the events table's write lock from outside, so the writer blocks
/// until the returned transaction ends (readers are not blocked).
async fn hold_write_lock(app: &support::TestApp) -> sqlx::Transaction<'static, sqlx::Any> {
    let pool = sqlx::AnyPool::connect(&app.config.base.database_url)
        .await
        .unwrap();
    let mut lock = pool.begin().await.unwrap();
    match common::db::backend_of(&app.config.base.database_url) {
        Some(Backend::Postgres) => sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE"),
        // A write takes SQLite's one write lock until the transaction ends.
        _ => sqlx::query("INSERT INTO events (id, ts, action) VALUES ('lock', 0, 'lock')"),
    }
    .execute(&mut *lock)
    .await
    .unwrap();
    lock
}

#[tokio::test]
async fn events_still_queued_at_shutdown_are_written_before_it_ends() {
    // One event per batch, and the database stalled: the writer blocks on
    // the first while the rest wait in the queue.
    let app = spawn_with(|c| c.batch_size = 1).await;
    let lock = hold_write_lock(&app).await;
    for i in 0..50 {
        app.log(&json!({"action": "queued", "data": {"i": i}}))
            .await;
    }
    // Stop while they wait; the database recovers during the shutdown.
    let stopping = tokio::spawn(app.restart_with(|c| c.batch_size = 1000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stopping.is_finished(), "the shutdown waits for the writer");
    lock.rollback().await.unwrap();
    let app = stopping.await.unwrap();
    assert_eq!(app.all_events().await.len(), 50);
}

#[tokio::test]
async fn a_stuck_database_makes_a_full_queue_answer_503() {
    let app = spawn_with(|c| {
        c.queue_capacity = 2;
        c.batch_size = 1;
        c.queue_wait = Duration::from_millis(100);
    })
    .await;
    let lock = hold_write_lock(&app).await;
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..20 {
        let resp = app
            .post(&json!({"action": "queued", "data": {"i": i}}))
            .await;
        match resp.status().as_u16() {
            202 => accepted += 1,
            503 => {
                refused = Some(resp);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let resp = refused.expect("a full queue refuses");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(problem(resp).await["code"], "stats_busy");
    assert!((2..=3).contains(&accepted), "{accepted} accepted");

    // Released: everything accepted is written.
    lock.rollback().await.unwrap();
    let all = app.wait_for_events(accepted).await;
    assert!(all.iter().all(|e| e["action"] == "queued"));
}

#[tokio::test]
async fn old_events_are_deleted_by_retention() {
    let app = spawn_with(|c| c.retention = Duration::from_secs(24 * 3600)).await;
    let day = 24 * 3600 * 1000;
    let event = |action: &str, ts: i64| Event {
        id: uuid::Uuid::now_v7().to_string(),
        ts,
        user_id: None,
        action: action.into(),
        data: None,
        idempotency_key: None,
    };
    let now = now_ms();
    app.state
        .store
        .insert_batch(&[event("old", now - 2 * day), event("recent", now - day / 2)])
        .await
        .unwrap();
    app.state.apply_retention().await.unwrap();
    let all = app.all_events().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["action"], "recent");

    // It also runs in the background, starting when the service starts.
    app.state
        .store
        .insert_batch(&[event("older", now - 3 * day)])
        .await
        .unwrap();
    let app = app.restart_with(|_| {}).await;
    eventually("retention at start", Duration::from_secs(10), || async {
        let all = app.all_events().await;
        (all.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn routing_health_and_metrics() {
    let app = spawn_app().await;
    let resp = app.client.delete(app.url("/log")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");
    let resp = app
        .client
        .post(app.url("/log/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = app.client.get(app.url("/logs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    app.log(&json!({"action": "x"})).await;
    app.wait_for_events(1).await;
    let metrics = common::testing::get_text(&app.client, &app.url("/metrics")).await;
    // The counters exist from the start (at 0), so they must have moved.
    for name in [
        "stats_events_accepted_total",
        "stats_events_written_total",
        "stats_batches_written_total",
    ] {
        let n = common::testing::metric(&metrics, name, &[]).unwrap_or(0.0);
        assert!(n >= 1.0, "{name} = {n} in {metrics}");
    }
}
