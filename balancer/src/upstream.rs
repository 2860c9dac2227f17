//! Pools of upstream replicas: round-robin selection over the healthy ones,
//! passive ejection on connect errors, active `/healthz` checks with
//! consecutive-failure/success thresholds, and periodic re-resolution of
//! hostnames (each resolved address is one replica, so
//! `docker-compose up --scale cart=3` spreads load).
//!
//! Health is plain atomics shared by every worker thread; the replica list
//! changes only when DNS answers differently, behind a read-mostly lock.
//! Each worker picks from its own copy of that list (a [`PoolView`]), so
//! a request writes no memory another core uses: no lock word, no shared
//! round-robin counter, no shared reference count.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use common::mutex::lock;

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
    /// `ip:port` as text, for span attributes: cloning it is a count
    /// bump, where formatting the address cost a traced request 1 600
    /// instructions (callgrind).
    pub addr_text: Arc<str>,
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
            addr_text: authority.as_str().into(),
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
    Replica(Picked),
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
    /// Bumped whenever `replicas` is replaced, so that views notice.
    generation: AtomicU64,
}

/// One worker's copy of a pool's replica list and its own round-robin
/// position. Workers each start at a different replica, so together they
/// still spread requests evenly.
pub struct PoolView {
    state: Mutex<ViewState>,
}

struct ViewState {
    generation: u64,
    /// A list of this worker's own: cloning it per request touches only
    /// this worker's reference count.
    list: Arc<[Arc<Replica>]>,
    next: usize,
}

/// A replica picked for one request, kept alive by the worker's list.
#[derive(Clone)]
pub struct Picked {
    list: Arc<[Arc<Replica>]>,
    index: usize,
}

impl Deref for Picked {
    type Target = Replica;
    fn deref(&self) -> &Replica {
        &self.list[self.index]
    }
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
        for r in &replicas {
            set_gauge(&spec.name, r, r.is_healthy());
        }
        crate::metrics::zero_pool(&spec.name);
        Pool {
            name: spec.name.clone(),
            upstreams: spec.upstreams.clone(),
            replicas: RwLock::new(replicas.into()),
            generation: AtomicU64::new(0),
        }
    }

    /// A worker's view of this pool; `worker` staggers where its
    /// round-robin starts.
    pub fn view(&self, worker: usize) -> PoolView {
        let (generation, list) = self.snapshot();
        PoolView {
            state: Mutex::new(ViewState {
                generation,
                list,
                next: worker,
            }),
        }
    }

    /// The current list as a fresh allocation, with its generation.
    fn snapshot(&self) -> (u64, Arc<[Arc<Replica>]>) {
        let guard = match self.replicas.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Read under the lock: a writer bumps it while holding the lock.
        let generation = self.generation.load(Ordering::Acquire);
        (generation, guard.iter().cloned().collect())
    }

    pub fn replicas(&self) -> Arc<[Arc<Replica>]> {
        // A poisoned lock only means a writer panicked between two plain
        // assignments; the list itself is always whole.
        match self.replicas.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The next healthy replica in `view`'s round-robin order, skipping
    /// `avoid` (the one that just failed) unless it is the only healthy
    /// one left and `allow_same` says a second try there is acceptable.
    pub fn pick(&self, view: &PoolView, avoid: Option<&Replica>, allow_same: bool) -> Pick {
        let mut state = lock(&view.state);
        if state.generation != self.generation.load(Ordering::Acquire) {
            (state.generation, state.list) = self.snapshot();
        }
        let len = state.list.len();
        if len == 0 {
            return Pick::NoReplicas;
        }
        let start = state.next;
        state.next = start.wrapping_add(1);
        let mut fallback = None;
        for i in 0..len {
            let index = (start + i) % len;
            let r = &state.list[index];
            if !r.is_healthy() {
                continue;
            }
            if avoid.is_some_and(|a| std::ptr::eq::<Replica>(&**r, a)) {
                fallback = Some(index);
                continue;
            }
            return Pick::Replica(Picked {
                list: Arc::clone(&state.list),
                index,
            });
        }
        match fallback {
            Some(index) if allow_same => Pick::Replica(Picked {
                list: Arc::clone(&state.list),
                index,
            }),
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
            count_ejection(&self.name, replica, "connect_error");
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
                count_ejection(&self.name, replica, "health_check");
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
            let mut guard = match self.replicas.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *guard = new.into();
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// The replica's health gauge; its ejection counters are made to exist
/// (at 0) with it, so the first ejection is a visible increase.
fn set_gauge(pool: &str, replica: &Replica, healthy: bool) {
    metrics::gauge!(
        "balancer_upstream_healthy",
        "pool" => pool.to_string(),
        "replica" => replica.addr.to_string()
    )
    .set(if healthy { 1.0 } else { 0.0 });
    for cause in ["connect_error", "health_check"] {
        ejections(pool, replica, cause).increment(0);
    }
}

/// A replica taken out of its pool, by `cause`: an alert on the rate of
/// these catches a flapping replica that the health gauge, sampled every
/// scrape, may miss.
fn count_ejection(pool: &str, replica: &Replica, cause: &'static str) {
    ejections(pool, replica, cause).increment(1);
}

fn ejections(pool: &str, replica: &Replica, cause: &'static str) -> metrics::Counter {
    metrics::counter!(
        "balancer_upstream_ejections_total",
        "pool" => pool.to_string(),
        "replica" => replica.addr.to_string(),
        "cause" => cause
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(urls: &[&str]) -> Pool {
        Pool::new(&PoolSpec {
            name: "p".into(),
            upstreams: urls
                .iter()
                .map(|u| UpstreamUrl::parse(u).unwrap())
                .collect(),
        })
    }

    fn port(pick: Pick) -> u16 {
        match pick {
            Pick::Replica(r) => r.addr.port(),
            Pick::NoneHealthy => 0,
            Pick::NoReplicas => 1,
        }
    }

    #[test]
    fn each_view_goes_round_robin_from_its_own_start() {
        let p = pool(&["http://127.0.0.1:7001", "http://127.0.0.1:7002"]);
        let (a, b) = (p.view(0), p.view(1));
        let firsts: Vec<u16> = (0..4).map(|_| port(p.pick(&a, None, false))).collect();
        assert_eq!(firsts, [7001, 7002, 7001, 7002]);
        // The second worker starts at the other replica, so two workers
        // with one request each still reach both.
        assert_eq!(port(p.pick(&b, None, false)), 7002);
    }

    #[test]
    fn ejected_and_avoided_replicas_are_skipped() {
        let p = pool(&["http://127.0.0.1:7001", "http://127.0.0.1:7002"]);
        let view = p.view(0);
        let Pick::Replica(first) = p.pick(&view, None, false) else {
            panic!("a replica")
        };
        assert_eq!(first.addr.port(), 7001);
        // A retry avoids the one that failed, whatever the turn.
        for _ in 0..3 {
            assert_eq!(port(p.pick(&view, Some(&first), false)), 7002);
        }
        p.eject(&first);
        for _ in 0..3 {
            assert_eq!(port(p.pick(&view, None, false)), 7002);
        }
        let Pick::Replica(second) = p.pick(&view, None, false) else {
            panic!("a replica")
        };
        // The only healthy one, avoided: only when a second try is allowed.
        assert_eq!(port(p.pick(&view, Some(&second), false)), 0);
        assert_eq!(port(p.pick(&view, Some(&second), true)), 7002);
        p.eject(&second);
        assert_eq!(port(p.pick(&view, None, true)), 0);
    }

    #[tokio::test]
    async fn a_view_sees_the_list_change_after_resolving() {
        // A hostname is only a replica once resolved; the view was made
        // before that, so it has to notice the new list.
        let p = pool(&["http://localhost:7003"]);
        let view = p.view(0);
        assert_eq!(port(p.pick(&view, None, false)), 1, "no replica yet");
        p.resolve().await;
        assert_eq!(port(p.pick(&view, None, false)), 7003);
        // Resolving to the same addresses keeps the list, so views keep
        // theirs rather than copying it again.
        let generation = p.generation.load(Ordering::Acquire);
        p.resolve().await;
        assert_eq!(p.generation.load(Ordering::Acquire), generation);
    }
}
