//! The shoppers' accounts: registered and logged in before measuring, at
//! the pace the shop's abuse limits allow (a `429` is waited out as its
//! `Retry-After` says), then lent to one session at a time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::ledger::Ledger;
use crate::progress::Progress;
use crate::shop::{Answer, Shop};

/// The account's id and a token from logging in.
#[derive(Debug, Clone)]
pub struct Creds {
    pub user_id: String,
    pub token: String,
}

#[derive(Debug)]
pub struct Account {
    pub email: String,
    pub password: String,
    creds: OnceLock<Creds>,
    /// Orders the account's mail budget still allows.
    pub orders_left: AtomicU32,
}

impl Account {
    /// A new account's credentials (`run` makes the address unique to
    /// this run, so the checks at the end see only this run's doings).
    pub fn new(run: &str, n: usize, orders: u32) -> Account {
        Account {
            email: format!("loadgen-{run}-{n}@loadgen.example"),
            password: format!("lg-{}", uuid::Uuid::new_v4().simple()),
            creds: OnceLock::new(),
            orders_left: AtomicU32::new(orders),
        }
    }

    /// Keeps the first login's token; later logins (sessions that log in
    /// to measure it) change nothing.
    pub fn logged_in(&self, creds: (String, String)) {
        let _ = self.creds.set(Creds {
            token: creds.0,
            user_id: creds.1,
        });
    }

    pub fn is_logged_in(&self) -> bool {
        self.creds.get().is_some()
    }

    /// Empty before the first login: requests then fail, as they should.
    pub fn user_id(&self) -> &str {
        self.creds.get().map_or("", |c| c.user_id.as_str())
    }

    pub fn token(&self) -> &str {
        self.creds.get().map_or("", |c| c.token.as_str())
    }

    /// Takes one order from the budget; false when none is left.
    pub fn take_order(&self) -> bool {
        self.orders_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Accounts not in a session right now.
#[derive(Debug, Default)]
pub struct Pool {
    free: Mutex<Vec<Arc<Account>>>,
}

impl Pool {
    pub fn new(accounts: Vec<Arc<Account>>) -> Pool {
        Pool {
            free: Mutex::new(accounts),
        }
    }

    /// The free account with the most orders left, so budgets drain evenly.
    pub fn take(&self) -> Option<Arc<Account>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let best = free
            .iter()
            .enumerate()
            .max_by_key(|(_, a)| a.orders_left.load(Ordering::Relaxed))
            .map(|(i, _)| i)?;
        Some(free.swap_remove(best))
    }

    pub fn give(&self, account: Arc<Account>) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(account);
    }
}

/// What preparing the pool took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SetupReport {
    pub accounts: usize,
    pub seconds: f64,
    /// Times the shop said `429` and the generator waited.
    pub rate_limited: u64,
}

/// Sends `call` until it is not a `429`/`503` (waiting as `Retry-After`
/// says) or a broken request has failed three times.
async fn patiently<F, Fut>(what: &str, limited: &AtomicU64, mut call: F) -> Result<Answer, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let mut broken = 0;
    loop {
        let a = call().await;
        if a.is(429) || a.is(503) {
            limited.fetch_add(1, Ordering::Relaxed);
            let wait = a.retry_after.unwrap_or(1).clamp(1, 120);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        if matches!(a.status, crate::record::Status::Http(_)) {
            return Ok(a);
        }
        broken += 1;
        if broken == 3 {
            return Err(format!("{what}: {}", a.status.label()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Registers and logs in `n` new accounts, `concurrency` at a time, each
/// allowed `orders` orders.
pub async fn prepare(
    shop: &Shop,
    run: &str,
    n: usize,
    orders: u32,
    concurrency: usize,
    ledger: &Ledger,
    progress: &Progress,
) -> Result<(Vec<Arc<Account>>, SetupReport), String> {
    let started = Instant::now();
    let limited = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let one = |i: usize| {
        let limited = &limited;
        let done = &done;
        async move {
            let account = Account::new(run, i, orders);
            let a = patiently("registering", limited, || {
                shop.register(&account.email, &account.password)
            })
            .await?;
            if !a.is(201) {
                return Err(format!(
                    "registering {} answered {}: {}",
                    account.email,
                    a.status.label(),
                    a.body
                ));
            }
            let a = patiently("logging in", limited, || {
                shop.login(&account.email, &account.password)
            })
            .await?;
            match a.login_creds() {
                Some(c) => account.logged_in(c),
                None => {
                    return Err(format!(
                        "logging in as {} answered {}: {}",
                        account.email,
                        a.status.label(),
                        a.body
                    ))
                }
            }
            ledger.registered(account.user_id());
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress.line(&format!(
                "preparing accounts: {d}/{n} registered and logged in, {} waits for the shop's limits, {:.0} s",
                limited.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            ));
            Ok(Arc::new(account))
        }
    };
    let results: Vec<Result<Arc<Account>, String>> = futures::stream::iter(0..n)
        .map(one)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    progress.end_line();
    let accounts = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((
        accounts,
        SetupReport {
            accounts: n,
            seconds: started.elapsed().as_secs_f64(),
            rate_limited: limited.load(Ordering::Relaxed),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: usize, orders: u32) -> Arc<Account> {
        Arc::new(Account::new("t", n, orders))
    }

    #[test]
    fn the_mail_budget_runs_out() {
        let a = account(0, 2);
        assert!(a.take_order());
        assert!(a.take_order());
        assert!(!a.take_order());
    }

    #[test]
    fn the_pool_lends_the_fullest_budget_first() {
        let pool = Pool::new(vec![account(0, 1), account(1, 5), account(2, 3)]);
        let a = pool.take().unwrap();
        assert_eq!(a.orders_left.load(Ordering::Relaxed), 5);
        let b = pool.take().unwrap();
        assert_eq!(b.orders_left.load(Ordering::Relaxed), 3);
        pool.give(a);
        assert_eq!(pool.take().unwrap().orders_left.load(Ordering::Relaxed), 5);
        assert!(pool.take().is_some());
        assert!(pool.take().is_none());
    }

    #[test]
    fn first_login_wins() {
        let a = account(0, 1);
        assert_eq!(a.user_id(), "");
        a.logged_in(("tok".into(), "u1".into()));
        a.logged_in(("other".into(), "u2".into()));
        assert_eq!((a.user_id(), a.token()), ("u1", "tok"));
        assert!(a.email.starts_with("loadgen-t-0@"));
    }
}
