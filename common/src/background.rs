//! A service's background tasks (outbox deliverer, senders, pruning) and
//! their orderly stop: cancel, then wait for each to finish its current
//! step, so none is cut off between sending a message and recording it.

use std::future::Future;

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
    pub fn every<F, Fut>(&mut self, period: std::time::Duration, step: F)
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
