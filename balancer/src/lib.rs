//! The balancer as a library: `main.rs` and the tests both build it with
//! [`Balancer::start`] and serve it on listeners they bound.
//!
//! Shape (after pingora's load-balancing crate): route → select a healthy
//! replica round-robin → rewrite → forward → log, with health checks and
//! DNS re-resolution in background tasks.
//!
//! # Layout
//!
//! - [`config`]: the settings and the route table they load.
//! - [`routes`]: the route table (`routes.toml`) parsed into rules and pools.
//! - [`proxy`]: one request: own endpoints, limits, CORS preflight, route,
//!   replica, forward with retries, response.
//! - [`upstream`]: pools of replicas, health checks, re-resolution.
//! - [`connections`]: each worker's keep-alive connections upstream.
//! - [`headers`]: hop-by-hop removal, `X-Forwarded-*`, request ids, CORS.
//! - [`body`]: the streaming request and response bodies.
//! - [`deadlines`]: every request's deadline on one timer per worker.
//! - [`metrics`]: per-route metrics with handles registered once.
//! - [`accept`] and [`served`]: the proxy workers' accept loop, tuned past
//!   common's plain one (no per-request timers, hang-ups from the poller).
//! - this file: [`Balancer::start`] and serving on the bound listeners.

pub mod accept;
pub mod admin;
pub mod body;
pub mod config;
pub mod connections;
pub mod deadlines;
pub mod headers;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod served;
pub mod storefront;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;

use common::background::Tasks;
use common::server::ServerOptions;
use tokio::net::TcpListener;

use crate::config::BalancerConfig;
use crate::proxy::{Proxy, Shared};

/// A started balancer: shared state plus its background tasks.
pub struct Balancer {
    pub shared: Arc<Shared>,
    background: Tasks,
}

impl Balancer {
    /// Resolves every upstream once and starts the health checker and the
    /// re-resolver on the current runtime.
    pub async fn start(config: BalancerConfig) -> Balancer {
        let shared = Arc::new(Shared::new(config));
        for pool in &shared.pools {
            pool.resolve().await;
            if pool.replicas().is_empty() {
                log::warn!(
                    "pool {}: no upstream resolved yet; answering 503 until one does",
                    pool.name
                );
            }
        }
        shared.config.trusted_proxies.refresh().await;
        let mut background = Tasks::new();
        let opts = shared.config.health.clone();
        let client = upstream::health_client(shared.config.connect_timeout);
        let checked = shared.clone();
        background.every(opts.interval, move || {
            let shared = checked.clone();
            let client = client.clone();
            async move {
                upstream::check_all(&shared.pools, &client, &shared.config.health).await;
            }
        });
        let resolved = shared.clone();
        background.every(opts.resolve_interval, move || {
            let shared = resolved.clone();
            async move {
                for pool in &shared.pools {
                    pool.resolve().await;
                }
                shared.config.trusted_proxies.refresh().await;
            }
        });
        Balancer { shared, background }
    }

    /// A proxy with its own upstream connection pool, for one worker.
    pub fn proxy(&self) -> Arc<Proxy> {
        Arc::new(Proxy::new(self.shared.clone()))
    }

    /// Serves on `listener` (one worker, the current runtime) until
    /// `shutdown`, then stops the background tasks.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let options = self.shared.config.server.clone();
        serve_worker(self.proxy(), listener, options, shutdown).await;
        self.background.shutdown().await;
    }

    /// Stops the background tasks (after the workers have stopped).
    pub async fn stop_background(self) {
        self.background.shutdown().await;
    }
}

/// One worker's accept loop: the tuned [`accept::serve`] with the proxy as
/// handler.
pub async fn serve_worker(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    spawn_sweeper(Arc::downgrade(&proxy));
    accept::serve(
        listener,
        options,
        // The handler's future itself, not an `async` block around it: the
        // block's first poll would copy the request into the handler's
        // future once more, and every poll would go through one more layer
        // (about 200 instructions a request, callgrind).
        move |req, peer| Arc::clone(&proxy).handle(req, peer),
        shutdown,
    )
    .await
}

/// Closes the worker's idle upstream connections past their timeout, on
/// the worker's own runtime, until the worker's proxy is gone.
fn spawn_sweeper(proxy: std::sync::Weak<Proxy>) {
    let Some(every) = proxy
        .upgrade()
        .map(|p| p.shared().config.pool_idle_timeout / 2)
    else {
        return;
    };
    let every = every.max(std::time::Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match proxy.upgrade() {
                Some(p) => p.connections().sweep(),
                None => return,
            }
        }
    });
}
