//! One request through the balancer: its own endpoints, limits, CORS
//! preflight, route lookup, replica selection, the rewritten request,
//! forwarding with the retry rules, and the response on its way back.
//!
//! Failure sources map to one status each: no rule → 404, a request body
//! that cannot be read (broken chunked framing) → 400, a body slower than
//! the body-read timeout → 408, body too large → 413, a path and query
//! over 8 KiB → 414, headers too large → 431, no replica reachable (or a broken exchange that may not be retried)
//! → 502, no healthy replica → 503, no response headers before the route's
//! deadline → 504. A client's faulty body breaks the upstream exchange too;
//! it is answered as the client's fault (4xx), never as the upstream's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::deadlines::Deadlines;
use common::mutex::lock;
use common::telemetry::{self, Attr};
use common::ApiError;
use http::header::{
    HeaderName, HeaderValue, ACCESS_CONTROL_REQUEST_METHOD, CACHE_CONTROL, CONNECTION,
    CONTENT_TYPE, HOST, RETRY_AFTER,
};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId};

use crate::body::{BodyShared, ClientFault, DownBody, UpBody};
use crate::config::BalancerConfig;
use crate::connections::{ConnectOptions, Connections, SendError};
use crate::headers;
use crate::metrics::{RouteMetrics, Tally};
use crate::routes::{Rule, Target};
use crate::storefront::{Outcome, Storefront};
use crate::upstream::{Pick, Picked, Pool, PoolView};

/// Everything the workers share: configuration, pools with their health,
/// and the metric handles.
pub struct Shared {
    pub config: BalancerConfig,
    pub pools: Vec<Arc<Pool>>,
    /// What `static = true` rules serve.
    pub storefront: Storefront,
    /// One per rule, then the unmatched requests, then the balancer's own
    /// endpoints (see [`Label::index`]).
    metrics: Vec<RouteMetrics>,
    /// Every worker's tally, for `/metrics` to flush before it renders.
    tallies: Mutex<Vec<Arc<Tally>>>,
    /// Workers started so far: each one's round-robin starts elsewhere.
    workers: AtomicUsize,
}

impl Shared {
    pub fn new(config: BalancerConfig) -> Shared {
        // The recorder must exist before handles are registered, or they
        // would be no-ops.
        common::metrics::handle();
        let pools: Vec<Arc<Pool>> = config
            .table
            .pools
            .iter()
            .map(|p| Arc::new(Pool::new(p)))
            .collect();
        let mut metrics: Vec<RouteMetrics> = config
            .table
            .rules
            .iter()
            .map(|r| {
                let pool = match r.target {
                    Target::Pool(i) => config.table.pools[i].name.as_str(),
                    Target::Deny | Target::Static => "-",
                };
                RouteMetrics::new(&r.name, pool)
            })
            .collect();
        metrics.push(RouteMetrics::new("unmatched", "-"));
        metrics.push(RouteMetrics::new("balancer", "-"));
        Shared {
            pools,
            storefront: Storefront::new(&config.storefront),
            metrics,
            tallies: Mutex::new(Vec::new()),
            workers: AtomicUsize::new(0),
            config,
        }
    }

    /// Adds every worker's pending tally to the shared metrics.
    pub fn flush_metrics(&self) {
        for tally in lock(&self.tallies).iter() {
            tally.flush(&self.metrics);
        }
    }

    /// Whether the balancer counts as ready: always, unless
    /// `ready_requires_all_pools` and some pool has no healthy replica.
    pub fn is_ready(&self) -> bool {
        !self.config.ready_requires_all_pools || self.all_pools_healthy()
    }

    /// Whether every pool has at least one healthy replica.
    pub fn all_pools_healthy(&self) -> bool {
        self.pools
            .iter()
            .all(|p| p.replicas().iter().any(|r| r.is_healthy()))
    }
}

/// Attempts per request. A connect failure sent nothing, so the request
/// goes on to the next healthy replica (the one that failed is ejected, so
/// each is tried once): when replicas vanish together — a scale-down, a
/// host lost — one live replica is enough. A broken exchange is repeated
/// once, and only for a bodiless idempotent request. The bound is for the
/// pathological pool whose replicas are revived as fast as they fail.
const MAX_ATTEMPTS: usize = 8;

/// What one request carries from `handle` through `dispatch` to `forward`.
struct Exchange {
    peer: SocketAddr,
    /// The one clock reading of the request: its deadline, the pool's
    /// bookkeeping and its latency are all counted from here.
    started: Instant,
    rid: HeaderValue,
    /// The client's `Origin`, when CORS allows it.
    origin: Option<HeaderValue>,
    /// Set when the request has a body to relay.
    body_shared: Option<Arc<BodyShared>>,
    /// The proxy span's trace and span ids, for the access log line
    /// (tracing on only). Bytes, not a `SpanContext`: its `u128` trace id
    /// would align a request's whole future to 16 bytes, and with that
    /// layout hyper copies all of it (about 5 KB, not the few hundred bytes
    /// of `handle`'s arguments) when it stores a new request's future:
    /// +500 instructions a request with tracing off (callgrind).
    span: OnceLock<([u8; 16], [u8; 8])>,
}

/// Which metric and log labels a request ends up with.
enum Label {
    Own,
    Unmatched,
    Rule(usize),
}

impl Label {
    /// Its place in [`Shared::metrics`] (`rules` is the number of rules).
    fn index(&self, rules: usize) -> usize {
        match *self {
            Label::Rule(i) => i,
            Label::Unmatched => rules,
            Label::Own => rules + 1,
        }
    }
}

/// One worker's proxy: the shared state plus this worker's upstream
/// connections, replica lists and metric tally. Each worker thread has its
/// own, so a request never writes memory that another core is using.
pub struct Proxy {
    shared: Arc<Shared>,
    connections: Connections,
    /// This worker's copy of each pool's replicas, by pool index.
    views: Vec<PoolView>,
    /// This worker's requests, until they are added to the shared metrics.
    tally: Arc<Tally>,
    /// This worker's timers: route deadlines here, header-read timeouts in
    /// the server loop.
    deadlines: Deadlines,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>) -> Proxy {
        let cfg = &shared.config;
        let connections = Connections::new(ConnectOptions {
            connect_timeout: cfg.connect_timeout,
            max_per_replica: cfg.pool_max_idle_per_host,
            idle_timeout: cfg.pool_idle_timeout,
        });
        let worker = shared.workers.fetch_add(1, Ordering::Relaxed);
        let views = shared.pools.iter().map(|p| p.view(worker)).collect();
        let tally = Arc::new(Tally::default());
        lock(&shared.tallies).push(Arc::clone(&tally));
        Proxy {
            shared,
            connections,
            views,
            tally,
            deadlines: Deadlines::new(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Answers one request; never fails, never panics on input. Takes the
    /// worker's `Arc` so that the server's closure can return this future
    /// itself (see [`crate::serve_worker`]).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<DownBody> {
        let started = Instant::now();
        let mut scan = headers::scan(req.headers());
        let rid = match scan.request_id.take() {
            Some(v) if headers::sane_request_id(&v) => v,
            _ => headers::generate_request_id(),
        };
        let origin = scan
            .origin
            .take()
            .filter(|o| self.shared.config.cors.allows(o.as_bytes()));
        let log_access = log::log_enabled!(target: "access", log::Level::Info);
        let logged = log_access.then(|| (req.method().clone(), req.uri().path().to_string()));
        // Noted before the body is lent out: whether the client connection
        // can carry another request depends on the body being read to its
        // end before the answer goes back.
        let body_shared = (!req.body().is_end_stream()).then(|| Arc::new(BodyShared::default()));
        let http1 = req.version() < Version::HTTP_2;

        let exchange = Exchange {
            peer,
            started,
            rid,
            origin,
            body_shared,
            span: OnceLock::new(),
        };
        let (label, upstream, mut resp) = self.dispatch(req, &mut scan, &exchange).await;
        let Exchange {
            rid,
            origin,
            body_shared,
            span,
            ..
        } = exchange;

        let h = resp.headers_mut();
        // An answer before the whole body arrived — an upstream's early 401,
        // or our own 404/405/413/400 that never reads it — leaves unread
        // bytes on the connection, so hyper will close it after this
        // response. Saying so keeps a keep-alive client from sending its
        // next request into a closing socket (RFC 9112 §9.6). HTTP/2 has no
        // such header and needs none: a stream is reset, not the connection.
        if http1 && body_shared.is_some_and(|s| !s.is_finished()) {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        h.insert(headers::X_REQUEST_ID, rid.clone());
        if let Some(origin) = origin {
            if !h.contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN) {
                headers::cors_response_headers(h, origin);
            }
        }
        let status = resp.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        let index = label.index(self.shared.config.table.rules.len());
        self.tally
            .record(&self.shared.metrics, index, status, elapsed);
        if let Some((method, path)) = logged {
            let route_name = self.shared.metrics[index].route();
            let upstream = upstream
                .map(|r| r.addr.to_string())
                .unwrap_or_else(|| "-".into());
            let rid = rid.to_str().unwrap_or("-");
            let duration_ms = elapsed * 1000.0;
            let (trace_id, span_id) = span
                .get()
                .map(|&(t, s)| {
                    (
                        TraceId::from_bytes(t).to_string(),
                        SpanId::from_bytes(s).to_string(),
                    )
                })
                .unwrap_or_default();
            // The query string is left out: it can carry search terms.
            // With LOG_FORMAT=json the key-values are fields of the line.
            log::info!(
                target: "access",
                request_id = rid, method = method.as_str(), route = route_name, status = status,
                duration_ms = duration_ms, upstream = upstream.as_str(), peer = peer.to_string().as_str(),
                trace_id = trace_id.as_str(), span_id = span_id.as_str();
                "{method} {path} {status} {duration_ms:.2}ms route={route_name} upstream={upstream} rid={rid} peer={peer}",
            );
        }
        resp
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        scan: &mut headers::Scan,
        exchange: &Exchange,
    ) -> (Label, Option<Picked>, Response<DownBody>) {
        let rid_str = exchange.rid.to_str().unwrap_or("-");
        let problem = |e: ApiError| e.into_response(rid_str).map(DownBody::from);
        let cfg = &self.shared.config;

        // Header limits come first: nothing else should look at headers a
        // client was not allowed to send.
        if let Some(e) = check_header_limits(scan, cfg) {
            return (Label::Unmatched, None, problem(e));
        }
        if let Err(e) = common::query::check_target(req.uri()) {
            return (Label::Unmatched, None, problem(e));
        }

        let method = req.method();
        let path = req.uri().path();
        if method == Method::GET || method == Method::HEAD {
            match path {
                "/healthz" => {
                    return (
                        Label::Own,
                        None,
                        json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
                    )
                }
                "/readyz" => return (Label::Own, None, public_readyz(&self.shared)),
                "/openapi.json" => return (Label::Own, None, openapi_response()),
                _ => {}
            }
        }
        // The balancer's own paths exist for GET and HEAD only; any other
        // method on them is 405 with `Allow`, not the 404 of an unknown path,
        // and never reaches a route (a catch-all prefix would forward it).
        if matches!(path, "/healthz" | "/readyz" | "/openapi.json") {
            return (
                Label::Own,
                None,
                problem(ApiError::method_not_allowed(&[Method::GET, Method::HEAD])),
            );
        }
        // Metrics live on the admin listener only; the name is still the
        // balancer's, so a catch-all route cannot forward it to a service.
        if path == "/metrics" {
            return (Label::Own, None, problem(not_found(path)));
        }
        if method == Method::CONNECT || method == Method::TRACE {
            return (
                Label::Unmatched,
                None,
                problem(ApiError::method_not_allowed(&[
                    Method::GET,
                    Method::HEAD,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                    Method::OPTIONS,
                ])),
            );
        }
        if !path_is_clean(path) {
            return (
                Label::Unmatched,
                None,
                problem(ApiError::bad_request(
                    "invalid_path",
                    "the path may not contain . or .. segments",
                )),
            );
        }

        // A CORS preflight from an allowed origin is answered here, for
        // the method it announces; others pass through untouched.
        if method == Method::OPTIONS {
            if let (Some(origin), Some(wanted)) = (
                &exchange.origin,
                req.headers().get(ACCESS_CONTROL_REQUEST_METHOD),
            ) {
                let wanted = Method::from_bytes(wanted.as_bytes()).unwrap_or(Method::GET);
                return match cfg.table.find(&wanted, path) {
                    Some((i, rule)) if matches!(rule.target, Target::Pool(_)) => {
                        let mut resp = Response::new(DownBody::from(Full::default()));
                        *resp.status_mut() = StatusCode::NO_CONTENT;
                        let requested = req.headers().get(headers::REQUEST_HEADERS);
                        headers::preflight_headers(resp.headers_mut(), origin.clone(), requested);
                        (Label::Rule(i), None, resp)
                    }
                    Some((i, _)) => (Label::Rule(i), None, problem(not_found(path))),
                    None => (Label::Unmatched, None, problem(not_found(path))),
                };
            }
        }

        let Some((index, rule)) = cfg.table.find(method, path) else {
            return (Label::Unmatched, None, problem(not_found(path)));
        };
        let (pool, view) = match rule.target {
            Target::Deny => return (Label::Rule(index), None, problem(not_found(path))),
            Target::Static => {
                let resp = match self.serve_static(method, path, req.headers()).await {
                    Outcome::Served(resp) => resp,
                    Outcome::NotFound => problem(not_found(path)),
                    Outcome::MethodNotAllowed => {
                        problem(ApiError::method_not_allowed(&[Method::GET, Method::HEAD]))
                    }
                    Outcome::Failed(e) => problem(ApiError::internal(e)),
                };
                return (Label::Rule(index), None, resp);
            }
            Target::Pool(p) => (&self.shared.pools[p], &self.views[p]),
        };
        let limit = rule.max_body.unwrap_or(cfg.max_body);
        if scan.content_length.is_some_and(|n| n > limit) {
            return (Label::Rule(index), None, problem(too_large(limit)));
        }
        // Two calls rather than `forward` deciding: with tracing off the
        // request's future is `send_upstream`'s alone, not also a span
        // layer's around it (about 250 instructions a request, callgrind).
        let (upstream, resp) = if telemetry::enabled() {
            self.forward(rule, pool, view, req, scan, exchange).await
        } else {
            self.send_upstream(rule, pool, view, req, scan, exchange, None)
                .await
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => problem(e),
        };
        (Label::Rule(index), upstream, resp)
    }

    /// A static rule's answer. A path that any proxied or denied rule's
    /// pattern covers (for whatever method) belongs to the API, so it never
    /// falls back to the storefront's index.html.
    async fn serve_static(
        &self,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Outcome {
        let rules = &self.shared.config.table.rules;
        let is_api_path = |p: &str| {
            rules
                .iter()
                .any(|r| r.target != Target::Static && r.pattern.matches(p))
        };
        self.shared
            .storefront
            .serve(method, path, headers, is_api_path)
            .await
    }

    /// [`Self::send_upstream`] in the proxy span: a child of the client's
    /// trace context if a trusted front sent one, else the root of a new
    /// trace. Tracing on only; off, `dispatch` awaits `send_upstream`
    /// itself, so that a request's future has no layer for a span.
    async fn forward(
        &self,
        rule: &Rule,
        pool: &Pool,
        view: &PoolView,
        req: Request<Incoming>,
        scan: &mut headers::Scan,
        exchange: &Exchange,
    ) -> (Option<Picked>, Result<Response<DownBody>, ApiError>) {
        let method = req.method().clone();
        let trusted = scan.trace_context
            && self
                .shared
                .config
                .trusted_proxies
                .with(|trusted| headers::is_trusted(trusted, exchange.peer.ip()));
        let parent = if trusted {
            telemetry::extract(req.headers())
        } else {
            telemetry::Context::new()
        };
        let span = telemetry::span("proxy", telemetry::Kind::Server, || {
            // Room for the two added at the end (address, status).
            let mut attrs = Vec::with_capacity(6);
            attrs.extend([
                Attr::new("http.request.method", telemetry::method_value(&method)),
                Attr::new("http.route", rule.name.clone()),
                Attr::new("balancer.pool", pool.name.clone()),
                Attr::new(
                    "shop.request_id",
                    exchange.rid.to_str().unwrap_or("").to_string(),
                ),
            ]);
            attrs
        })
        .parent(parent)
        .start();
        let (upstream, resp) = self
            .send_upstream(rule, pool, view, req, scan, exchange, span.as_ref())
            .await;
        let Some(cx) = span else {
            return (upstream, resp);
        };
        let s = cx.span();
        let ids = s.span_context();
        let _ = exchange
            .span
            .set((ids.trace_id().to_bytes(), ids.span_id().to_bytes()));
        // A span the sampler dropped records nothing (its ids still go to
        // the access log).
        if !s.is_recording() {
            return (upstream, resp);
        }
        s.update_name(telemetry::http_span_name(&method, &rule.name));
        if let Some(replica) = &upstream {
            s.set_attribute(Attr::new("upstream.address", replica.addr_text.clone()));
        }
        match &resp {
            Ok(r) => s.set_attribute(Attr::new(
                "http.response.status_code",
                i64::from(r.status().as_u16()),
            )),
            Err(e) => {
                s.set_attribute(Attr::new(
                    "http.response.status_code",
                    i64::from(e.status.as_u16()),
                ));
                telemetry::set_error(&cx, e.code.clone());
            }
        }
        s.end();
        (upstream, resp)
    }

    /// Sends the request to a replica, retrying as the rules allow, until
    /// the route's deadline counted from the request's start. `span` is
    /// the proxy span the upstream's `traceparent` names.
    #[allow(clippy::too_many_arguments)]
    async fn send_upstream(
        &self,
        rule: &Rule,
        pool: &Pool,
        view: &PoolView,
        req: Request<Incoming>,
        scan: &mut headers::Scan,
        exchange: &Exchange,
        span: Option<&telemetry::Context>,
    ) -> (Option<Picked>, Result<Response<DownBody>, ApiError>) {
        let Exchange {
            peer,
            started,
            ref rid,
            ref body_shared,
            ..
        } = *exchange;
        let body_shared = body_shared.as_ref();
        let limit = rule.max_body.unwrap_or(self.shared.config.max_body);
        let timeout = rule.timeout.unwrap_or(self.shared.config.route_timeout);
        let deadline = started + timeout;
        let (mut parts, body) = req.into_parts();
        let has_host = self.shared.config.trusted_proxies.with(|trusted| {
            headers::prepare_request(
                &mut parts.headers,
                scan,
                peer.ip(),
                trusted,
                parts.uri.authority(),
            )
        });
        parts.headers.insert(headers::X_REQUEST_ID, rid.clone());
        if let Some(cx) = span {
            telemetry::inject(cx, &mut parts.headers);
        }
        let method = parts.method.clone();
        // Only these may be sent twice: repeating them changes nothing.
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        // Upstreams get the origin form (`/path?query`); the client's
        // `Host` stays, so services see the name the client used.
        let target = Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        // A bodiless idempotent request may be sent again after a broken
        // exchange, so its headers are kept for a rebuild. Any other
        // request can only be re-sent when it comes back unsent. A plain
        // list, not a `HeaderMap` clone: one allocation instead of two and
        // no index, for something almost never read.
        let rebuild: Option<Vec<(HeaderName, HeaderValue)>> = (idempotent && body_shared.is_none())
            .then(|| {
                let mut kept = Vec::with_capacity(parts.headers.len());
                kept.extend(parts.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
                kept
            });
        let up_body = match body_shared {
            Some(shared) => UpBody::stream(
                body,
                limit,
                self.shared.config.server.body_read_timeout,
                Arc::clone(shared),
            ),
            None => UpBody::Empty,
        };
        // The client's request becomes the upstream's in place: its method
        // and headers stay where they are, and nothing is built only to be
        // dropped. Extensions (hyper's upgrade handle and the like) belong
        // to the client connection and do not travel.
        parts.uri = target.clone();
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();
        let mut pending = Some(Request::from_parts(parts, up_body));

        let mut previous: Option<(Picked, Failure)> = None;
        let mut broken_once = false;
        for attempt in 0..MAX_ATTEMPTS {
            let pick = match &previous {
                None => pool.pick(view, None, false),
                // After a broken exchange the same replica may be tried
                // again if it is the only healthy one (the failure may have
                // been one stale connection); after a connect error never.
                Some((r, failure)) => pool.pick(view, Some(r), *failure == Failure::Broken),
            };
            let replica = match pick {
                Pick::Replica(r) => r,
                Pick::NoneHealthy | Pick::NoReplicas => {
                    return match previous {
                        None => (None, Err(unavailable(&pool.name))),
                        Some((r, failure)) => (Some(r), Err(failure.to_error(&pool.name))),
                    };
                }
            };
            let mut up = match pending.take() {
                Some(up) => up,
                None => {
                    let Some(kept) = &rebuild else {
                        break;
                    };
                    let mut up = Request::new(UpBody::Empty);
                    *up.method_mut() = method.clone();
                    *up.uri_mut() = target.clone();
                    let headers = up.headers_mut();
                    headers.reserve(kept.len());
                    for (name, value) in kept {
                        headers.append(name.clone(), value.clone());
                    }
                    up
                }
            };
            if attempt > 0 {
                let reason = previous.as_ref().map(|p| p.1.reason()).unwrap_or("other");
                crate::metrics::retry(&pool.name, reason);
                if let Some(cx) = span {
                    cx.span().add_event(
                        "retry",
                        vec![
                            Attr::new("retry.reason", reason),
                            Attr::new("retry.attempt", attempt as i64),
                            Attr::new("upstream.address", replica.addr_text.clone()),
                        ],
                    );
                }
            }
            if !has_host {
                // HTTP/1.1 requires one; a client without it (HTTP/1.0)
                // gets the replica's address, as a client library would.
                up.headers_mut().insert(HOST, replica.host_header.clone());
            }

            // Pinned where it is made: awaiting the send future (about
            // 1 KiB) by value would move it into this state machine first.
            let sent = std::pin::pin!(self
                .deadlines
                .timeout_at(deadline, self.connections.send(replica.addr, up, started)));
            let err = match sent.await {
                Ok(Ok(resp)) => return (Some(replica.clone()), Ok(self.relay(resp, timeout))),
                Ok(Err(e)) => e,
                Err(_) => {
                    // Still waiting for the client's body: its fault, not
                    // the upstream's, whichever timeout is shorter.
                    if body_shared.is_some_and(|s| s.waiting_on_client()) {
                        let waited = self.shared.config.server.body_read_timeout.min(timeout);
                        return (
                            Some(replica.clone()),
                            Err(common::json::body_timeout(waited)),
                        );
                    }
                    crate::metrics::upstream_error(&pool.name, "timeout");
                    return (
                        Some(replica.clone()),
                        Err(ApiError::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            "upstream_timeout",
                            format!(
                                "the {} service did not answer within {timeout:?}",
                                pool.name
                            ),
                        )),
                    );
                }
            };
            match err {
                SendError::NotSent { error, request } => {
                    crate::metrics::upstream_error(&pool.name, "connect");
                    log::warn!(
                        "pool {}: cannot connect to {}: {}",
                        pool.name,
                        replica.addr,
                        common::error::chain(error.as_ref())
                    );
                    pool.eject(&replica);
                    // Nothing was sent, so any method may go elsewhere.
                    pending = Some(*request);
                    previous = Some((replica, Failure::Connect));
                }
                SendError::Broken(err) => {
                    if let Some(fault) = body_shared.and_then(|s| s.fault()) {
                        log::debug!(
                            "pool {}: exchange with {} abandoned for the client's body: {}",
                            pool.name,
                            replica.addr,
                            common::error::chain(&err)
                        );
                        let error = match fault {
                            ClientFault::TooLarge => too_large(limit),
                            ClientFault::TooSlow => common::json::body_timeout(
                                self.shared.config.server.body_read_timeout,
                            ),
                            ClientFault::Unreadable => common::json::body_unreadable(),
                        };
                        return (Some(replica.clone()), Err(error));
                    }
                    crate::metrics::upstream_error(&pool.name, "broken");
                    log::warn!(
                        "pool {}: exchange with {} failed: {}",
                        pool.name,
                        replica.addr,
                        common::error::chain(&err)
                    );
                    // The request reached the upstream: only a bodiless
                    // idempotent request may be sent again, and once.
                    if rebuild.is_none() || broken_once {
                        return (
                            Some(replica.clone()),
                            Err(Failure::Broken.to_error(&pool.name)),
                        );
                    }
                    broken_once = true;
                    previous = Some((replica, Failure::Broken));
                }
            }
        }
        match previous {
            Some((r, failure)) => (Some(r), Err(failure.to_error(&pool.name))),
            None => (None, Err(unavailable(&pool.name))),
        }
    }

    fn relay(&self, resp: Response<Incoming>, idle: std::time::Duration) -> Response<DownBody> {
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::default();
        Response::from_parts(parts, DownBody::upstream(body, idle))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection could be made: nothing was sent.
    Connect,
    /// The exchange started and broke (reset, closed, garbage).
    Broken,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Broken => "broken",
        }
    }

    fn to_error(self, pool: &str) -> ApiError {
        match self {
            Failure::Connect => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("the {pool} service could not be reached"),
            ),
            Failure::Broken => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!("the {pool} service failed to answer"),
            ),
        }
    }
}

fn unavailable(pool: &str) -> ApiError {
    ApiError::unavailable(
        "no_healthy_upstream",
        format!("the {pool} service has no healthy replica"),
    )
    .with_header(RETRY_AFTER, HeaderValue::from_static("5"))
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {path}"),
    )
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds {limit} bytes"),
    )
}

fn check_header_limits(scan: &headers::Scan, cfg: &BalancerConfig) -> Option<ApiError> {
    if scan.count > cfg.max_header_count {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!(
                "at most {} request headers are accepted",
                cfg.max_header_count
            ),
        ));
    }
    if scan.bytes > cfg.max_header_bytes {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!("the request headers exceed {} bytes", cfg.max_header_bytes),
        ));
    }
    None
}

/// False for paths with `.` or `..` segments, plain or percent-encoded: an
/// upstream that normalizes them would serve a path the route table never
/// saw (`/user/../internal/…`).
pub fn path_is_clean(path: &str) -> bool {
    if !path.contains('.') && !path.contains('%') {
        return true;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    !decoded
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<DownBody> {
    common::json::json_response(status, value).map(DownBody::from)
}

/// The public API's OpenAPI 3.1 document, kept at the repository root and
/// built in, so the frontend and tools can fetch it from the shop itself.
const OPENAPI: &str = include_str!("../../openapi.json");

fn openapi_response() -> Response<DownBody> {
    let mut resp = Response::new(DownBody::from(Full::from(OPENAPI)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// The public `/readyz`: ready or not, and nothing about the upstreams
/// (their addresses and health are on the admin listener).
fn public_readyz(shared: &Shared) -> Response<DownBody> {
    if shared.is_ready() {
        json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not_ready"}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused() {
        assert!(path_is_clean("/user/42/cart/"));
        assert!(path_is_clean("/products/?q=a.b"));
        assert!(path_is_clean("/product/v1.2"));
        assert!(!path_is_clean("/user/../internal/x"));
        assert!(!path_is_clean("/user/%2e%2e/internal/x"));
        assert!(!path_is_clean("/user/%2E./internal"));
        assert!(!path_is_clean("/user/.%2e%2finternal"));
        assert!(!path_is_clean("/user/./x"));
        assert!(!path_is_clean("/user/..\\internal"));
    }

    /// See [`Exchange::span`]: a 16-byte-aligned field anywhere in a
    /// request's future makes every request copy the whole future.
    #[test]
    fn a_request_future_is_aligned_to_8_bytes_at_most() {
        fn align_of_future<Fut>(
            _: impl FnOnce(Arc<Proxy>, Request<Incoming>, SocketAddr) -> Fut,
        ) -> usize {
            std::mem::align_of::<Fut>()
        }
        assert!(align_of_future(Proxy::handle) <= 8);
    }
}
