//! The admin listener: the balancer's operational endpoints, on an address
//! of their own (`admin_listen`, loopback by default) instead of the public
//! port. `/metrics` and the detailed `/readyz` name every upstream replica
//! and its health, which is for operators and monitoring, not for anyone
//! who can reach the shop.
//!
//! Served by one task on the main runtime: a scrape every few seconds
//! needs no worker of its own, and the proxy's hot path stays as it is.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::json::json_response;
use common::server::{serve, ServerOptions};
use common::ApiError;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::proxy::Shared;

/// The paths served here; any other method on them is `405`.
const PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve_admin(
    shared: Arc<Shared>,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    serve(
        listener,
        options,
        move |req, peer| {
            let shared = shared.clone();
            async move { handle(&shared, req, peer) }
        },
        shutdown,
    )
    .await
}

fn handle(shared: &Shared, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let rid = common::request_id::from_headers(req.headers());
    let path = req.uri().path();
    let mut resp = if !PATHS.contains(&path) {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin endpoint {path}"),
        )
        .into_response(&rid)
    } else if !matches!(*req.method(), Method::GET | Method::HEAD) {
        ApiError::method_not_allowed(&[Method::GET, Method::HEAD]).into_response(&rid)
    } else {
        match path {
            "/healthz" => json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            "/readyz" => readiness(shared),
            _ => {
                shared.flush_metrics();
                common::app::metrics_response()
            }
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&rid) {
        resp.headers_mut().insert(common::request_id::HEADER, v);
    }
    log::debug!(
        target: "access",
        "admin {} {path} {} rid={rid} peer={peer}",
        req.method(),
        resp.status().as_u16()
    );
    resp
}

/// The detailed readiness: the public `/readyz`'s status and code, plus
/// every pool's replicas (address, configured upstream, health).
fn readiness(shared: &Shared) -> Response<Full<Bytes>> {
    let mut pools = serde_json::Map::new();
    for pool in &shared.pools {
        let replicas = pool.replicas();
        let healthy = replicas.iter().filter(|r| r.is_healthy()).count();
        pools.insert(
            pool.name.clone(),
            serde_json::json!({
                "healthy": healthy,
                "total": replicas.len(),
                "replicas": replicas.iter().map(|r| serde_json::json!({
                    "addr": r.addr.to_string(),
                    "upstream": r.origin,
                    "healthy": r.is_healthy(),
                })).collect::<Vec<_>>(),
            }),
        );
    }
    let ready = shared.is_ready();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "all_pools_healthy": shared.all_pools_healthy(),
        "pools": pools,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}
