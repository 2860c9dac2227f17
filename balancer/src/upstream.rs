//! Pools of upstream replicas: round-robin selection over the healthy ones,
//! passive ejection on connect errors, active `/healthz` checks with
//! consecutive-failure/success thresholds, and periodic re-resolution of
//! hostnames (each resolved address is one replica, so
//! `docker-compose up --scale cart=3` spreads load).
//!
//! Health is plain atomics shared by every worker thread; the replica list
//! changes only when DNS answers differently, behind a read-mostly lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::HealthOptions;
use crate::routes::{PoolSpec, UpstreamUrl};

/// One address serving a pool.
#[derive(Debug)]
pub struct Replica {
    pub addr: SocketAddr,
    /// `ip:port`, the authority of URIs sent to it (pre-built: cloning is
    /// a reference-count bump, not a parse per request).
    pub authority: Authority,
    /// The same, as a `Host` header for requests that came without one.
    pub host_header: http::HeaderValue,
    /// The configured URL it came from, for logs and metrics.
    pub origin: String,
    healthy: AtomicBool,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
}

impl Replica {
    fn new(addr: SocketAddr, origin: String) -> Replica {
        let authority = Authority::try_from(addr.to_string().as_str())
            .expect("a socket address is a valid authority");
        let host_header = http::HeaderValue::from_str(authority.as_str())
            .expect("a socket address is a valid header value");
        Replica {
            addr,
            authority,
            host_header,
            origin,
            // Optimistic start: the shop works the moment the balancer is
            // up; a dead replica is ejected by its first connect error.
            healthy: AtomicBool::new(true),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The URI of `path_and_query` on this replica.
    pub fn uri(&self, path_and_query: Option<http::uri::PathAndQuery>) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query =
            Some(path_and_query.unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")));
        Uri::from_parts(parts).expect("scheme, authority and path make a URI")
    }
}

/// What selection found.
pub enum Pick {
    Replica(Arc<Replica>),
    /// Replicas exist but every one is ejected.
    NoneHealthy,
    /// No replica at all (a hostname that does not resolve yet).
    NoReplicas,
}

#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub upstreams: Vec<UpstreamUrl>,
    replicas: RwLock<Arc<[Arc<Replica>]>>,
    next: AtomicUsize,
}

impl Pool {
    /// A pool whose IP-literal upstreams are replicas at once; hostnames
    /// are filled in by [`Pool::resolve`].
    pub fn new(spec: &PoolSpec) -> Pool {
        let replicas: Vec<Arc<Replica>> =
            spec.upstreams
                .iter()
                .filter_map(|u| {
                    u.host.parse::<std::net::IpAddr>().ok().map(|ip| {
                        Arc::new(Replica::new(SocketAddr::new(ip, u.port), u.to_string()))
                    })
                })
                .collect();
        Pool {
            name: spec.name.clone(),
            upstreams: spec.upstreams.clone(),
            replicas: RwLock::new(replicas.into()),
            next: AtomicUsize::new(0),
        }
    }

    pub fn replicas(&self) -> Arc<[Arc<Replica>]> {
        // A poisoned lock only means a writer panicked between two plain
        // assignments; the list itself is always whole.
        match self.replicas.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The next healthy replica in round-robin order, skipping `avoid`
    /// (the one that just failed) unless it is the only healthy one left
    /// and `allow_same` says a second try there is acceptable.
    pub fn pick(&self, avoid: Option<&Arc<Replica>>, allow_same: bool) -> Pick {
        let guard = match self.replicas.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let list: &[Arc<Replica>] = &guard;
        if list.is_empty() {
            return Pick::NoReplicas;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fallback = None;
        for i in 0..list.len() {
            let r = &list[(start + i) % list.len()];
            if !r.is_healthy() {
                continue;
            }
            if avoid.is_some_and(|a| Arc::ptr_eq(a, r)) {
                fallback = Some(r);
                continue;
            }
            return Pick::Replica(r.clone());
        }
        match fallback {
            Some(r) if allow_same => Pick::Replica(r.clone()),
            _ => Pick::NoneHealthy,
        }
    }

    pub fn healthy_count(&self) -> (usize, usize) {
        let list = self.replicas();
        (list.iter().filter(|r| r.is_healthy()).count(), list.len())
    }

    /// Passive ejection: a replica that refused a connection is out until
    /// the active check has seen it healthy `healthy_threshold` times.
    pub fn eject(&self, replica: &Replica) {
        replica.ok_streak.store(0, Ordering::Relaxed);
        if replica.healthy.swap(false, Ordering::Relaxed) {
            log::warn!(
                "pool {}: replica {} ({}) ejected after a connect error",
                self.name,
                replica.addr,
                replica.origin
            );
            set_gauge(&self.name, replica, false);
        }
    }

    /// Applies one active check's outcome.
    pub fn record_check(&self, replica: &Replica, ok: bool, opts: &HealthOptions) {
        if ok {
            replica.fail_streak.store(0, Ordering::Relaxed);
            let streak = replica.ok_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if !replica.is_healthy() && streak >= opts.healthy_threshold {
                replica.healthy.store(true, Ordering::Relaxed);
                log::info!(
                    "pool {}: replica {} ({}) is healthy again",
                    self.name,
                    replica.addr,
                    replica.origin
                );
                set_gauge(&self.name, replica, true);
            }
        } else {
            replica.ok_streak.store(0, Ordering::Relaxed);
            let streak = replica.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if replica.is_healthy() && streak >= opts.unhealthy_threshold {
                replica.healthy.store(false, Ordering::Relaxed);
                log::warn!(
                    "pool {}: replica {} ({}) failed {streak} health checks; taken out",
                    self.name,
                    replica.addr,
                    replica.origin
                );
                set_gauge(&self.name, replica, false);
            }
        }
    }

    /// Resolves every hostname again and swaps in the new replica list,
    /// keeping the health state of addresses that are still there. A
    /// failed lookup keeps that upstream's previous addresses: a DNS blip
    /// must not empty a pool.
    pub async fn resolve(&self) {
        let old = self.replicas();
        let mut new: Vec<Arc<Replica>> = Vec::new();
        for u in &self.upstreams {
            let origin = u.to_string();
            let addrs: Vec<SocketAddr> = if let Ok(ip) = u.host.parse::<std::net::IpAddr>() {
                vec![SocketAddr::new(ip, u.port)]
            } else {
                match tokio::net::lookup_host((u.host.as_str(), u.port)).await {
                    Ok(found) => found.collect(),
                    Err(e) => {
                        log::warn!("pool {}: cannot resolve {origin}: {e}", self.name);
                        old.iter()
                            .filter(|r| r.origin == origin)
                            .map(|r| r.addr)
                            .collect()
                    }
                }
            };
            for addr in addrs {
                if new.iter().any(|r| r.addr == addr) {
                    continue;
                }
                let kept = old.iter().find(|r| r.addr == addr && r.origin == origin);
                new.push(match kept {
                    Some(r) => r.clone(),
                    None => Arc::new(Replica::new(addr, origin.clone())),
                });
            }
        }
        let changed =
            new.len() != old.len() || new.iter().zip(old.iter()).any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            log::info!(
                "pool {}: replicas {:?}",
                self.name,
                new.iter().map(|r| r.addr).collect::<Vec<_>>()
            );
            for r in &new {
                set_gauge(&self.name, r, r.is_healthy());
            }
            match self.replicas.write() {
                Ok(mut g) => *g = new.into(),
                Err(p) => *p.into_inner() = new.into(),
            }
        }
    }
}

fn set_gauge(pool: &str, replica: &Replica, healthy: bool) {
    metrics::gauge!(
        "balancer_upstream_healthy",
        "pool" => pool.to_string(),
        "replica" => replica.addr.to_string()
    )
    .set(if healthy { 1.0 } else { 0.0 });
}

/// The client of the health checker: no pooling, so every check opens a
/// fresh connection and a listener that stopped accepting is noticed.
pub fn health_client(connect_timeout: Duration) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// One active check of one replica: `GET health_path` answered 2xx within
/// the timeout.
pub async fn check(
    client: &Client<HttpConnector, Empty<Bytes>>,
    replica: &Replica,
    opts: &HealthOptions,
) -> bool {
    let pq = http::uri::PathAndQuery::try_from(opts.path.as_str()).ok();
    let req = match Request::get(replica.uri(pq))
        .header(http::header::USER_AGENT, "shop-balancer-health")
        .body(Empty::new())
    {
        Ok(r) => r,
        Err(_) => return false,
    };
    let fut = async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status();
        // Read the (small) body so the exchange completes cleanly.
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        Some(status)
    };
    matches!(
        tokio::time::timeout(opts.timeout, fut).await,
        Ok(Some(s)) if s.is_success() || s == StatusCode::NO_CONTENT
    )
}

/// Checks every replica of every pool once, concurrently.
pub async fn check_all(
    pools: &[Arc<Pool>],
    client: &Client<HttpConnector, Empty<Bytes>>,
    opts: &HealthOptions,
) {
    let mut checks = Vec::new();
    for pool in pools {
        for replica in pool.replicas().iter() {
            let pool = pool.clone();
            let replica = replica.clone();
            checks.push(async move {
                let ok = check(client, &replica, opts).await;
                pool.record_check(&replica, ok, opts);
            });
        }
    }
    futures::future::join_all(checks).await;
}
