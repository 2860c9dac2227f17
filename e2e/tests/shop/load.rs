//! The load generator (`loadgen`, as a library) against the real shop: a
//! short, slow run through the balancer, with the checks of the orders,
//! the mail outbox and the stats service that its operators rely on. The
//! generator's own rules are unit-tested in its crate; this proves they
//! hold against the shop as it is (API shapes, mail and event formats).

use loadgen::config::{command, Options};
use loadgen::consistency::Verdict;

use crate::support::harness::Shop;

#[tokio::test]
async fn a_short_load_run_loses_and_doubles_nothing() {
    let shop = Shop::shared().await;
    let base = shop.url("");
    let outbox = shop.outbox().display().to_string();
    let stats = shop.service_url("stats", "");
    let key = shop.internal_key();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report_path = dir.path().join("report.json").display().to_string();
    let args = [
        "loadgen",
        "--base",
        &base,
        "--rate",
        "10",
        "--duration",
        "2s",
        // Two shoppers, about ten steps each, most of them towards an order.
        "--accounts",
        "2",
        "--mix",
        "browse=2,add_to_cart=2,checkout=2,view_cart=1,orders=1,search=1",
        "--seed",
        "1",
        "--mail-dir",
        &outbox,
        "--stats-url",
        &stats,
        "--internal-key",
        &key,
        "--settle-timeout",
        "60s",
        "--report",
        &report_path,
        "--quiet",
    ];
    let matches = command()
        .try_get_matches_from(args)
        .expect("the options parse");
    let opts = Options::from_matches(&matches).expect("the options are valid");
    let report = loadgen::run(opts).await.expect("the run starts");
    let text = report.text();
    assert!(report.passed, "{text}");
    assert_eq!(report.requests, 20, "{text}");
    assert!(report.shop.payments > 0, "{text}");
    let verdicts: Vec<_> = report
        .consistency
        .iter()
        .map(|c| (c.name, c.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("orders", Verdict::Passed),
            ("mail", Verdict::Passed),
            ("stats", Verdict::Passed)
        ],
        "{text}"
    );
}
