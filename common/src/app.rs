//! A service's HTTP front: the built-in `/healthz`, `/readyz` and `/metrics`,
//! request ids, the access log line, request metrics, and the conversion of
//! errors (and panics) into problem+json. Services supply a [`Router`] and a
//! readiness check; everything else is the same everywhere.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::json::json_response;
use crate::request::{BodySlot, Req};
use crate::request_context::{self, RequestContext};
use crate::request_id;
use crate::router::{Match, Router};
use crate::server::{serve, ServerOptions};
use crate::telemetry::{self, Attr as KeyValue, Kind};
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _};

pub type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type ReadyCheck<S> = Box<dyn Fn(Arc<S>) -> ReadyFuture + Send + Sync>;

/// Default request body limit: 1 MiB, as docs/api.md says.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

pub struct App<S> {
    name: &'static str,
    state: Arc<S>,
    router: Router<S>,
    ready: Option<ReadyCheck<S>>,
    body_limit: usize,
    /// Taken from the [`ServerOptions`] the app is served with.
    body_read_timeout: Duration,
}

impl<S: Send + Sync + 'static> App<S> {
    pub fn new(name: &'static str, state: Arc<S>, router: Router<S>) -> Self {
        // Install the recorder now: metrics recorded before it exists are lost.
        crate::metrics::handle();
        App {
            name,
            state,
            router,
            ready: None,
            body_limit: DEFAULT_BODY_LIMIT,
            body_read_timeout: ServerOptions::default().body_read_timeout,
        }
    }

    /// The check behind `/readyz`: the database at least.
    pub fn readiness<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn(Arc<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.ready = Some(Box::new(move |s| Box::pin(check(s))));
        self
    }

    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    pub fn state(&self) -> &Arc<S> {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        options: ServerOptions,
        shutdown: impl Future<Output = ()>,
    ) {
        self.body_read_timeout = options.body_read_timeout;
        let app = Arc::new(self);
        serve(
            listener,
            options,
            // The handler's own future, not one wrapped in another async
            // block: each layer is built and moved on every request.
            move |req, peer| Arc::clone(&app).handle(req, peer),
            shutdown,
        )
        .await
    }

    /// Answers one request; never fails, never panics outward. Everything
    /// it logs carries the request's fields (`request_context`); with
    /// tracing on it runs in a server span, a child of the caller's
    /// `traceparent` (services sit behind the balancer, which decides
    /// whether a client's trace context is believed).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let ctx = RequestContext::new(
            request_id::from_headers(req.headers()),
            req.method().clone(),
        );
        let span = telemetry::enabled()
            .then(|| {
                telemetry::span("HTTP", Kind::Server, || {
                    // Room for the route and status added at the end.
                    let mut attrs = Vec::with_capacity(3);
                    attrs.push(KeyValue::new(
                        "http.request.method",
                        telemetry::method_value(req.method()),
                    ));
                    attrs
                })
                .parent(telemetry::extract(req.headers()))
                .start()
            })
            .flatten();
        let work = request_context::scope(ctx.clone(), self.respond(req, peer, started, &ctx));
        let Some(cx) = span else {
            return work.await;
        };
        let resp = work.with_context(cx.clone()).await;
        let route = ctx.route().unwrap_or("unmatched");
        let status = resp.status();
        let s = cx.span();
        // A span the sampler dropped records nothing: naming it and adding
        // attributes would be work thrown away.
        if !s.is_recording() {
            return resp;
        }
        s.update_name(telemetry::http_span_name(&ctx.method, route));
        // One call, one lock of the span.
        s.set_attributes([
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        ]);
        if status.is_server_error() {
            telemetry::set_error(&cx, ctx.error_kind().unwrap_or("server_error").to_string());
        }
        s.end();
        resp
    }

    async fn respond(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        started: Instant,
        ctx: &RequestContext,
    ) -> Response<Full<Bytes>> {
        let rid = &ctx.request_id;
        let method = &ctx.method;
        // A copy of the path only for an access line that will be written.
        let logged_path = log::log_enabled!(target: "access", log::Level::Info)
            .then(|| req.uri().path().to_string());
        let (parts, body) = req.into_parts();
        let has_body = !body.is_end_stream();
        let slot: BodySlot = Arc::new(Mutex::new(Some(body)));
        let (route, mut resp) = self.dispatch(parts, slot.clone(), peer, rid).await;
        // Handlers saw their pattern already; built-ins and misses get theirs now.
        if ctx.route().is_none() {
            ctx.set_route(route);
        }
        let unread = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(body) = unread.filter(|_| has_body) {
            // Answered without reading the body (an auth failure, 404, 415…).
            // A client or proxy still sending it would see the connection
            // reset if we closed with bytes unread, and lose our answer; so
            // a body within the limit is read and dropped first, as nginx's
            // lingering close does. Past the limit or too slow, the
            // connection is closed, and the client is told so.
            if !drain(body, self.body_limit).await {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        if let Ok(v) = HeaderValue::from_str(rid) {
            resp.headers_mut().insert(request_id::HEADER_NAME, v);
        }
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        crate::metrics::record_request(
            self.name,
            method.as_str(),
            route,
            status,
            elapsed.as_secs_f64(),
        );
        if let Some(path) = logged_path {
            let duration_ms = elapsed.as_secs_f64() * 1000.0;
            // The query string is left out: it can carry search terms or tokens.
            // Request id, route, user and error kind are added as fields.
            log::info!(
                target: "access",
                status = status, duration_ms = duration_ms, peer = peer.to_string().as_str();
                "{method} {path} {status} {duration_ms:.2}ms rid={rid} peer={peer}"
            );
        }
        resp
    }

    async fn dispatch(
        &self,
        parts: Parts,
        body: BodySlot,
        peer: SocketAddr,
        rid: &Arc<str>,
    ) -> (&'static str, Response<Full<Bytes>>) {
        if let Err(e) = crate::query::check_target(&parts.uri) {
            return ("unmatched", e.into_response(rid));
        }
        let method = parts.method.clone();
        // Borrowed until `parts` moves into the handler's request.
        let path = parts.uri.path();
        if method == Method::GET || method == Method::HEAD {
            match path {
                "/healthz" => {
                    return (
                        "/healthz",
                        json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
                    )
                }
                "/readyz" => return ("/readyz", self.readyz().await),
                "/metrics" => return ("/metrics", metrics_response()),
                _ => {}
            }
        }
        match self.router.find(&method, path) {
            Match::Found {
                pattern,
                handler,
                params,
            } => {
                request_context::with(|c| c.set_route(pattern));
                let ctx = Req::new(parts, body, params, rid.clone(), peer)
                    .body_bounds(self.body_limit, self.body_read_timeout);
                let fut = handler(self.state.clone(), ctx);
                let resp = match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(Ok(resp)) => resp,
                    Ok(Err(e)) => e.into_response(rid),
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        ApiError::internal(std::io::Error::other(format!(
                            "handler panicked: {msg}"
                        )))
                        .into_response(rid)
                    }
                };
                (pattern, resp)
            }
            Match::MethodNotAllowed(allowed) => (
                "unmatched",
                ApiError::method_not_allowed(&allowed).into_response(rid),
            ),
            Match::NotFound => (
                "unmatched",
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route for {path}"),
                )
                .into_response(rid),
            ),
        }
    }

    async fn readyz(&self) -> Response<Full<Bytes>> {
        let result = match &self.ready {
            Some(check) => check(self.state.clone()).await,
            None => Ok(()),
        };
        match result {
            Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            Err(reason) => {
                log::warn!("not ready: {reason}");
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "unavailable", "reason": reason}),
                )
            }
        }
    }
}

/// Reads and drops an unread request body of at most `limit` bytes, within
/// a second; false if it was larger, slower or broken.
async fn drain(body: Incoming, limit: usize) -> bool {
    let read = Limited::new(body, limit).collect();
    matches!(
        tokio::time::timeout(Duration::from_secs(1), read).await,
        Ok(Ok(_))
    )
}

/// `/metrics`: the process's Prometheus text, never cached.
pub fn metrics_response() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(crate::metrics::render())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
