//! The load itself: shoppers (a session on an account) take steps either
//! when the open-loop schedule says an arrival is due — each arrival goes
//! to an idle shopper, and its latency counts from when it was due, so a
//! shop (or generator) that falls behind shows its queueing — or, closed
//! loop, each as soon as its previous step answered and it thought.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::accounts::{Account, Pool};
use crate::config::{Mode, Options, SessionAuth};
use crate::journey::{Catalog, Outcome, Session, Step};
use crate::ledger::Ledger;
use crate::progress::Progress;
use crate::record::{Recorder, Status};
use crate::shop::Shop;

/// Errors shown in full (the rest are only counted).
const ERROR_SAMPLES: usize = 20;

/// A shopper: a session, the account it shops with and its own dice.
struct Shopper {
    session: Session,
    account: Arc<Account>,
    rng: fastrand::Rng,
}

/// Counters of the run beyond per-request latency.
#[derive(Debug, Default)]
pub struct Counters {
    pub orders: AtomicU64,
    pub payments: AtomicU64,
    /// Arrivals that found no idle shopper and waited for one.
    pub waited_for_shopper: AtomicU64,
    pub max_shopper_wait_us: AtomicU64,
    /// Arrivals never sent: the run ended while they waited for a shopper.
    pub unsent: AtomicU64,
    /// Checkouts drawn for an account whose mail budget was spent.
    pub checkouts_skipped: AtomicU64,
}

pub struct Run {
    pub opts: Options,
    pub shop: Shop,
    pub catalog: Catalog,
    pub pool: Pool,
    pub recorder: Recorder,
    pub ledger: Ledger,
    pub counters: Counters,
    pub progress: Progress,
    /// Every account a session used, for the checks at the end.
    pub accounts: Mutex<Vec<Arc<Account>>>,
    pub error_samples: Mutex<Vec<String>>,
    run_id: String,
    fresh_accounts: AtomicUsize,
    in_flight: AtomicUsize,
}

impl Run {
    /// `accounts` are the prepared pool (empty when sessions register).
    pub fn new(
        opts: Options,
        shop: Shop,
        catalog: Catalog,
        accounts: Vec<Arc<Account>>,
        ledger: Ledger,
        run_id: String,
    ) -> Run {
        let progress = Progress::new(opts.progress);
        Run {
            pool: Pool::new(accounts.clone()),
            accounts: Mutex::new(accounts),
            recorder: Recorder::new(Instant::now()),
            counters: Counters::default(),
            error_samples: Mutex::new(Vec::new()),
            fresh_accounts: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            progress,
            opts,
            shop,
            catalog,
            ledger,
            run_id,
        }
    }

    /// Orders one account may place: its mail budget less the welcome email.
    pub fn orders_per_account(opts: &Options) -> u32 {
        opts.mail_budget.saturating_sub(1)
    }

    fn new_shopper(&self, rng: fastrand::Rng, previous: Option<Arc<Account>>) -> Shopper {
        let steps = self.opts.session_steps;
        let (account, auth) = match self.opts.session_auth {
            SessionAuth::Register => {
                let n = self.fresh_accounts.fetch_add(1, Ordering::Relaxed);
                let account = Arc::new(Account::new(
                    &format!("{}s", self.run_id),
                    n,
                    Self::orders_per_account(&self.opts),
                ));
                self.accounts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(account.clone());
                (account, vec![Step::Register, Step::Login])
            }
            auth => {
                if let Some(prev) = previous {
                    self.pool.give(prev);
                }
                let account = self
                    .pool
                    .take()
                    .expect("there is one pool account per shopper");
                let steps = match auth {
                    SessionAuth::Login => vec![Step::Login],
                    _ => vec![],
                };
                (account, steps)
            }
        };
        Shopper {
            session: Session::new(steps, auth),
            account,
            rng,
        }
    }

    /// The shopper's next step, due at `intended`.
    async fn step(&self, shopper: &mut Shopper, intended: Instant) {
        let account = shopper.account.clone();
        let step = shopper
            .session
            .next(&self.opts.mix, &self.catalog, &mut shopper.rng, || {
                let ok = account.take_order();
                if !ok {
                    self.counters
                        .checkouts_skipped
                        .fetch_add(1, Ordering::Relaxed);
                }
                ok
            });
        let (answer, error, outcome) = self.shop.step(&step, &account).await;
        self.recorder.record(
            step.endpoint(),
            intended,
            Instant::now(),
            answer.status.clone(),
            error,
        );
        let uid = account.user_id();
        match (&step, &outcome) {
            (Step::Register, Outcome::Ok) => {
                if let Some(id) = answer.id() {
                    self.ledger.registered(&id);
                }
            }
            (Step::AddToCart { .. }, Outcome::Ok) => self.ledger.item_added(uid),
            (Step::Checkout { .. }, Outcome::Placed(placed)) => {
                self.counters.orders.fetch_add(1, Ordering::Relaxed);
                self.ledger.order_placed(uid, &placed.order_id);
            }
            (Step::Checkout { .. }, _) if !matches!(answer.status, Status::Http(_)) => {
                self.ledger.checkout_unknown(uid)
            }
            (Step::Pay(placed), Outcome::Ok) => {
                self.counters.payments.fetch_add(1, Ordering::Relaxed);
                self.ledger.order_paid(uid, &placed.order_id);
            }
            _ => {}
        }
        if error {
            let mut samples = self.error_samples.lock().unwrap_or_else(|e| e.into_inner());
            if samples.len() < ERROR_SAMPLES {
                let detail = answer.body["detail"]
                    .as_str()
                    .or(answer.body["title"].as_str())
                    .unwrap_or("");
                samples.push(format!(
                    "{} → {} {detail}",
                    step.endpoint(),
                    answer.status.label()
                ));
            }
        }
        shopper.session.record(&step, &outcome);
        if shopper.session.done() {
            let rng = shopper.rng.fork();
            let previous = shopper.account.clone();
            *shopper = self.new_shopper(rng, Some(previous));
        }
    }

    /// Generates load for the configured duration and waits for the
    /// requests still in flight.
    pub async fn drive(self: &Arc<Self>, shoppers: usize) {
        let mut seeds = fastrand::Rng::with_seed(self.opts.seed);
        let shoppers: Vec<Shopper> = (0..shoppers)
            .map(|_| self.new_shopper(seeds.fork(), None))
            .collect();
        let start = Instant::now();
        let end = start + self.opts.duration;
        let ticker = tokio::spawn(self.clone().report_progress(end));
        match self.opts.mode {
            Mode::Open { rate } => self.clone().open_loop(shoppers, rate, start, end).await,
            Mode::Closed { .. } => self.clone().closed_loop(shoppers, end).await,
        }
        // Requests still in flight finish (or time out) before the report.
        let deadline = Instant::now() + self.opts.timeout + Duration::from_secs(1);
        while self.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ticker.abort();
        self.progress.end_line();
    }

    async fn open_loop(
        self: Arc<Self>,
        shoppers: Vec<Shopper>,
        rate: f64,
        start: Instant,
        end: Instant,
    ) {
        let (idle_tx, mut idle_rx) = tokio::sync::mpsc::unbounded_channel();
        for s in shoppers {
            let _ = idle_tx.send(s);
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        // Arrivals still waiting for a shopper this long after the end are
        // not sent: the run is over.
        let give_up = end + self.opts.timeout;
        let total = (self.opts.duration.as_secs_f64() * rate).round() as u64;
        for i in 0..total {
            let intended = start + interval.mul_f64(i as f64);
            tokio::time::sleep_until(intended.into()).await;
            let mut shopper = match idle_rx.try_recv() {
                Ok(s) => s,
                Err(_) => {
                    let got = tokio::time::timeout_at(give_up.into(), idle_rx.recv()).await;
                    let Ok(Some(s)) = got else {
                        self.counters.unsent.store(total - i, Ordering::Relaxed);
                        break;
                    };
                    let waited = intended.elapsed().as_micros() as u64;
                    self.counters
                        .waited_for_shopper
                        .fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .max_shopper_wait_us
                        .fetch_max(waited, Ordering::Relaxed);
                    s
                }
            };
            let run = self.clone();
            let idle_tx = idle_tx.clone();
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                run.step(&mut shopper, intended).await;
                run.in_flight.fetch_sub(1, Ordering::AcqRel);
                let think = run.opts.think.draw(&mut shopper.rng);
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
                let _ = idle_tx.send(shopper);
            });
        }
    }

    async fn closed_loop(self: Arc<Self>, shoppers: Vec<Shopper>, end: Instant) {
        let tasks: Vec<_> = shoppers
            .into_iter()
            .map(|mut shopper| {
                let run = self.clone();
                tokio::spawn(async move {
                    while Instant::now() < end {
                        run.in_flight.fetch_add(1, Ordering::AcqRel);
                        run.step(&mut shopper, Instant::now()).await;
                        run.in_flight.fetch_sub(1, Ordering::AcqRel);
                        let think = run.opts.think.draw(&mut shopper.rng);
                        let wake = (Instant::now() + think).min(end);
                        tokio::time::sleep_until(wake.into()).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn report_progress(self: Arc<Self>, end: Instant) {
        let total = self.opts.duration.as_secs();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = Instant::now();
            let elapsed = self.recorder.elapsed().as_secs().min(total);
            let (requests, errors) = self.recorder.totals();
            let last = match self.recorder.last_second(now) {
                Some((n, e, p99)) => format!("{n} req/s, {e} errors, p99 {p99:.1} ms"),
                None => "starting".into(),
            };
            let phase = if now < end { "" } else { " (finishing)" };
            self.progress.line(&format!(
                "[{elapsed:>3}/{total} s]{phase} last second: {last} | total {requests} requests, {errors} errors, {} in flight, {} orders, {} payments",
                self.in_flight.load(Ordering::Relaxed),
                self.counters.orders.load(Ordering::Relaxed),
                self.counters.payments.load(Ordering::Relaxed),
            ));
        }
    }
}
