//! The shop's load generator as a library: [`run`] prepares the catalog and
//! the account pool, generates the load, checks consistency and returns the
//! report; `main.rs` parses the command line and writes the files.

pub mod accounts;
pub mod config;
pub mod consistency;
pub mod journey;
pub mod judge;
pub mod ledger;
pub mod plot;
pub mod progress;
pub mod record;
pub mod report;
pub mod run;
pub mod shop;

use std::sync::Arc;
use std::time::SystemTime;

use config::{Mode, Options, SessionAuth};
use consistency::Inputs;
use journey::Catalog;
use ledger::Ledger;
use report::{Generator, Report, ShopRates};
use run::Run;
use shop::Shop;

/// Why a run could not start; the load itself never fails this way.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("reading the catalog at {base}: {reason}")]
    Catalog { base: String, reason: String },
    #[error("preparing the accounts: {0}")]
    Accounts(String),
}

/// Every product of the shop's catalog, page by page.
async fn catalog(shop: &Shop, base: &str) -> Result<Catalog, SetupError> {
    let err = |reason: String| SetupError::Catalog {
        base: base.to_string(),
        reason,
    };
    let mut products = Vec::new();
    loop {
        let (page, total) = shop.products(products.len()).await.map_err(err)?;
        let empty = page.is_empty();
        products.extend(page);
        if empty || products.len() as u64 >= total {
            break;
        }
    }
    let catalog = Catalog::new(products);
    if catalog.products.is_empty() {
        return Err(err(
            "the catalog is empty: the journeys need products (the launcher seeds a demo catalog unless --no-demo)".into(),
        ));
    }
    Ok(catalog)
}

/// Prepares, runs and checks; the report says whether the run passed.
pub async fn run(opts: Options) -> Result<Report, SetupError> {
    let shop = Shop::new(&opts.base, opts.timeout, &opts.card)?;
    let catalog = catalog(&shop, &opts.base).await?;
    let pool = opts.pool_size();
    let shoppers = match opts.mode {
        Mode::Closed { shoppers } => shoppers,
        Mode::Open { .. } => pool,
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let since = SystemTime::now();
    let started_at = rfc3339_now();
    let ledger = Ledger::default();
    let progress = progress::Progress::new(opts.progress);
    let (accounts, setup) = if opts.session_auth == SessionAuth::Register {
        (Vec::new(), None)
    } else {
        eprintln!(
            "loadgen: {} products; registering and logging in {pool} accounts (run {run_id})",
            catalog.products.len()
        );
        let (accounts, setup) = accounts::prepare(
            &shop,
            &run_id,
            pool.max(shoppers),
            Run::orders_per_account(&opts),
            opts.setup_concurrency,
            &ledger,
            &progress,
        )
        .await
        .map_err(SetupError::Accounts)?;
        (accounts, Some(setup))
    };
    eprintln!(
        "loadgen: {} for {} s with {shoppers} shoppers",
        match opts.mode {
            Mode::Open { rate } => format!("open loop at {rate} arrivals/s"),
            Mode::Closed { .. } => "closed loop".to_string(),
        },
        opts.duration.as_secs_f64()
    );
    let run = Arc::new(Run::new(
        opts.clone(),
        shop.clone(),
        catalog,
        accounts,
        ledger,
        run_id,
    ));
    run.drive(shoppers).await;
    let elapsed = opts.duration.as_secs_f64();
    let (endpoints, seconds) = run.recorder.finish();
    let (endpoints, all, timeline) = report::summarize(&endpoints, &seconds);

    eprintln!(
        "loadgen: checking consistency (waiting up to {} s for what is on its way)",
        opts.settle_timeout.as_secs()
    );
    let accounts = run
        .accounts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ledger = run.ledger.snapshot();
    let consistency = consistency::check_all(&Inputs {
        shop: &shop,
        accounts: &accounts,
        ledger: &ledger,
        mail_dir: opts.mail_dir.as_deref(),
        mail_api: opts.mail_api.as_deref(),
        stats: opts.stats_url.as_deref().zip(opts.internal_key.as_deref()),
        since,
        settle: opts.settle_timeout,
    })
    .await;

    let c = &run.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let requests: u64 = endpoints.values().map(|e| e.requests).sum();
    let errors: u64 = endpoints.values().map(|e| e.errors).sum::<u64>() + load(&c.unsent);
    let mut report = Report {
        base: opts.base.clone(),
        mode: match opts.mode {
            Mode::Open { .. } => "open",
            Mode::Closed { .. } => "closed",
        },
        target_rate: match opts.mode {
            Mode::Open { rate } => Some(rate),
            Mode::Closed { .. } => None,
        },
        shoppers,
        duration_s: elapsed,
        think_time: format!(
            "{}-{}",
            humantime::format_duration(opts.think.min),
            humantime::format_duration(opts.think.max)
        ),
        mix: opts.mix.to_string(),
        session_auth: format!("{:?}", opts.session_auth).to_lowercase(),
        seed: opts.seed,
        started_at,
        setup,
        requests,
        errors,
        achieved_rate: requests as f64 / elapsed,
        endpoints,
        all,
        shop: ShopRates {
            orders: load(&c.orders),
            payments: load(&c.payments),
            orders_per_s: load(&c.orders) as f64 / elapsed,
            payments_per_s: load(&c.payments) as f64 / elapsed,
        },
        generator: Generator {
            waited_for_shopper: load(&c.waited_for_shopper),
            max_shopper_wait_ms: load(&c.max_shopper_wait_us) as f64 / 1000.0,
            unsent: load(&c.unsent),
            checkouts_skipped_for_mail_budget: load(&c.checkouts_skipped),
        },
        timeline,
        error_samples: run
            .error_samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        consistency,
        passed: false,
    };
    report.judge();
    Ok(report)
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}
