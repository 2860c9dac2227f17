//! `/metrics` by the book, over real HTTP: every family has `# HELP` and
//! `# TYPE` and is in the catalog, the process and pool gauges are there,
//! the outbox's backlog gauges follow its table, and docs/metrics.md and
//! the code name exactly the catalog's metrics.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::db::{Db, TestDb};
use common::json::json_response;
use common::metrics::catalog::{self, Kind};
use common::outbox::{Auth, Outbox, OutboxOptions, Target};
use common::server::ServerOptions;
use common::testing::{eventually, get_text, metric, spawn, Recorder, Running};
use common::{App, HandlerResult, Req, Router};
use http::StatusCode;
use tokio_util::sync::CancellationToken;

struct State;

async fn hello(_: Arc<State>, _: Req) -> HandlerResult {
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}

async fn app() -> Running {
    let router = Router::new().get("/hello", hello);
    let app = App::new("metrics-test", Arc::new(State), router);
    spawn(move |listener, shutdown| app.serve(listener, ServerOptions::default(), shutdown)).await
}

async fn scrape(server: &Running) -> String {
    get_text(&reqwest::Client::new(), &server.url("/metrics")).await
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    }
}

#[tokio::test]
async fn every_family_is_described_typed_and_in_the_catalog() {
    let db = TestDb::new().await;
    let _db = Db::connect(&db.url, 3, common::outbox::migrations())
        .await
        .unwrap();
    let server = app().await;
    reqwest::get(server.url("/hello")).await.unwrap();
    let text = scrape(&server).await;

    let helps: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP ")?.split(' ').next())
        .collect();
    let mut typed = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let doc = catalog::find(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
        assert_eq!(kind_name(doc.kind), kind, "{name}'s type");
        assert!(helps.contains(name), "{name} has no # HELP in {text}");
        typed += 1;
    }
    // Every sample belongs to a typed family.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| catalog::find(f).is_some_and(|d| d.kind == Kind::Histogram))
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{line} has no # TYPE"
        );
    }
    assert!(typed >= 10, "{text}");

    let route = ["service=\"metrics-test\"", "route=\"/hello\""];
    assert!(metric(&text, "http_requests_total", &route).unwrap() >= 1.0);
    assert!(metric(&text, "http_request_duration_seconds_count", &route).unwrap() >= 1.0);
    assert!(metric(&text, "process_cpu_seconds_total", &[]).is_some());
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "tokio_runtime_workers",
    ] {
        let value = metric(&text, name, &[]).unwrap_or_else(|| panic!("no {name} in {text}"));
        assert!(value > 0.0, "{name} = {value}");
    }
    // The start time is this process's: within the last hour.
    let started = metric(&text, "process_start_time_seconds", &[]).unwrap();
    let now = common::time::now_ms() as f64 / 1000.0;
    assert!(
        now - started < 3600.0 && now >= started - 1.0,
        "{started} vs {now}"
    );
    assert_eq!(metric(&text, "db_pool_max_connections", &[]), Some(3.0));
    let in_use = metric(&text, "db_pool_connections", &["state=\"in_use\""]).unwrap();
    let idle = metric(&text, "db_pool_connections", &["state=\"idle\""]).unwrap();
    assert!((1.0..=3.0).contains(&(in_use + idle)), "{in_use} + {idle}");
}

#[tokio::test]
async fn the_outbox_backlog_gauges_follow_the_table() {
    let db = TestDb::new().await;
    let db = Db::connect(&db.url, 3, common::outbox::migrations())
        .await
        .unwrap();
    // The receiver fails every delivery until it is told to take them.
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let receiver = Recorder::start(move |_, _| {
        if gate.load(Ordering::SeqCst) {
            202
        } else {
            503
        }
    })
    .await;
    // A target name no other test uses: the gauges are process-wide.
    let target = format!("metrics-test-{}", uuid::Uuid::new_v4().simple());
    let outbox = Outbox::new(
        db.clone(),
        common::client::HttpClient::new(Duration::from_secs(1), Duration::from_secs(2)),
        HashMap::from([(
            target.clone(),
            Target {
                base_url: receiver.url(""),
                auth: Auth::None,
            },
        )]),
        OutboxOptions {
            poll_interval: Duration::from_millis(50),
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            backlog_every: Duration::from_millis(100),
            ..OutboxOptions::default()
        },
    );
    let mut conn = db.pool.acquire().await.unwrap();
    common::outbox::enqueue(&mut conn, &target, "/events", &serde_json::json!({"n": 1}))
        .await
        .unwrap();
    drop(conn);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(outbox.clone().run(cancel.clone()));
    let server = app().await;
    let label = format!("target=\"{target}\"");

    let text = eventually(
        "a pending message older than 0.2 s",
        Duration::from_secs(10),
        || async {
            let text = scrape(&server).await;
            let age = metric(&text, "outbox_oldest_pending_age_seconds", &[&label])?;
            (age >= 0.2).then_some(text)
        },
    )
    .await;
    assert_eq!(
        metric(&text, "outbox_pending_messages", &[&label]),
        Some(1.0)
    );
    assert!(metric(&text, "outbox_retries_total", &[&label]).unwrap() >= 1.0);
    // Registered at 0 with the target, so the first delivery is an increase.
    assert_eq!(
        metric(&text, "outbox_delivered_total", &[&label]),
        Some(0.0)
    );

    open.store(true, Ordering::SeqCst);
    let text = eventually("the backlog drained", Duration::from_secs(10), || async {
        let text = scrape(&server).await;
        (metric(&text, "outbox_pending_messages", &[&label])? == 0.0).then_some(text)
    })
    .await;
    assert_eq!(
        metric(&text, "outbox_oldest_pending_age_seconds", &[&label]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "outbox_delivered_total", &[&label]),
        Some(1.0)
    );
    cancel.cancel();
    running.await.unwrap();
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Metric names given as literals to the `metrics` macros and to
/// `backlog::set`, in every crate's `src/`.
fn names_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(workspace()).unwrap().flatten() {
        collect_rs(&entry.path().join("src"), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // The macros name one metric first; `backlog::set` two.
        for (call, count) in [
            ("counter!(", 1),
            ("gauge!(", 1),
            ("histogram!(", 1),
            ("backlog::set(", 2),
            ("zero_counter(", 1),
        ] {
            for (at, _) in text.match_indices(call) {
                let args = text[at + call.len()..].trim_start();
                if !args.starts_with('"') {
                    continue; // a name in a variable: recorded from a literal elsewhere
                }
                let args = &args[..args.find(['&', '[', ')']).unwrap_or(args.len())];
                let literals = args.split('"').skip(1).step_by(2).take(count);
                names.extend(literals.map(str::to_string));
            }
        }
    }
    names
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_code_and_the_docs_name_exactly_the_catalog() {
    let catalogued: BTreeSet<String> = catalog::CATALOG
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    let in_code = names_in_code();
    let process: BTreeSet<String> = catalogued
        .iter()
        .filter(|n| n.starts_with("process_"))
        .cloned()
        .collect();
    let unlisted: Vec<_> = in_code.difference(&catalogued).collect();
    assert!(
        unlisted.is_empty(),
        "recorded but not in the catalog: {unlisted:?}"
    );
    let unused: Vec<_> = catalogued
        .difference(&in_code)
        .filter(|n| !process.contains(*n))
        .collect();
    assert!(
        unused.is_empty(),
        "in the catalog but never recorded: {unused:?}"
    );

    let docs = std::fs::read_to_string(workspace().join("docs/metrics.md")).unwrap();
    let table = docs
        .split("\n## ")
        .find(|section| section.starts_with("Every metric"))
        .expect("docs/metrics.md has a section \"Every metric\"");
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented, catalogued,
        "docs/metrics.md's table vs the catalog"
    );
}
