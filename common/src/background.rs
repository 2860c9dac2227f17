//! A service's background tasks (outbox deliverer, senders, pruning) and
//! their orderly stop: cancel, then wait for each to finish its current
//! step, so none is cut off between sending a message and recording it.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Tasks {
    token: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task(token)`; the task must return soon after the token is
    /// cancelled.
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handles.push(tokio::spawn(task(self.token.clone())));
    }

    /// Spawns `step` every `period` until cancelled.
    pub fn every<F, Fut>(&mut self, period: Duration, step: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(move |stop| async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => step().await,
                }
            }
        });
    }

    /// Deletes what has expired every `period`, the first time after one
    /// period; logs how many `what` went (rows of a table) or why not.
    pub fn prune_every<F, Fut, E>(&mut self, period: Duration, what: &'static str, prune: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.every(period, move || log_pruned(what, prune()));
    }

    /// As [`Tasks::prune_every`], pruning once at start too.
    pub fn prune_now_and_every<F, Fut, E>(&mut self, period: Duration, what: &'static str, prune: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.spawn(move |stop| async move {
            loop {
                log_pruned(what, prune()).await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
            }
        });
    }

    /// Cancels every task and waits for all of them to return.
    pub async fn shutdown(self) {
        self.token.cancel();
        for handle in self.handles {
            if let Err(e) = handle.await {
                log::warn!("a background task ended abnormally: {e}");
            }
        }
    }
}

/// Awaits one pruning pass and logs its outcome.
async fn log_pruned<E: Display>(what: &str, pass: impl Future<Output = Result<u64, E>>) {
    match pass.await {
        Ok(0) => {}
        Ok(n) => log::info!("pruned {n} {what}"),
        Err(e) => log::warn!("cannot prune {what}: {e}"),
    }
}
