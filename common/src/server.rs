//! The accept loop every service runs, and the server settings every
//! service and the balancer share.
//!
//! Plain hyper-util: its auto builder serves HTTP/1.1 and h2c on one port,
//! hyper's header-read timeout cuts off clients slow to send their headers
//! (and idle keep-alive connections), and hyper-util's `GracefulShutdown`
//! drains. The loop survives accept errors (EMFILE and friends), caps
//! concurrent connections, and on shutdown stops accepting, lets in-flight
//! requests finish for a bounded time and returns. The balancer's proxy
//! workers run a tuned variant of this loop (`balancer::accept`); the
//! services spend milliseconds per request in argon2 and SQL, where the
//! few thousand instructions that variant saves do not show.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, ConfigError, Setting};

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive, counted from when it is
    /// first read; past it the answer is `408` and the connection closes.
    /// Enforced where bodies are read (common's `App`, the balancer), not
    /// in this loop, which never looks at bodies.
    pub body_read_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The settings behind [`ServerOptions`], shared by every service.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "max_connections",
        Some("10000"),
        "Most client connections served at once",
    ),
    Setting::new(
        "header_read_timeout",
        Some("10s"),
        "A connection with no request in progress for this long is closed (a client that never finishes its headers, an idle keep-alive connection)",
    ),
    Setting::new(
        "body_read_timeout",
        Some("10s"),
        "A request body not complete this long after it is first read gets 408 and the connection closes (a client trickling its body)",
    ),
    Setting::new(
        "shutdown_timeout",
        Some("10s"),
        "How long in-flight requests may finish after SIGTERM",
    ),
];

impl ServerOptions {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(ServerOptions {
            max_connections: config.positive("max_connections")?,
            header_read_timeout: config.duration("header_read_timeout")?,
            body_read_timeout: config.nonzero_duration("body_read_timeout")?,
            shutdown_timeout: config.duration("shutdown_timeout")?,
        })
    }
}

/// Serves `handler` on `listener` until `shutdown` completes, then drains.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    options: ServerOptions,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    tokio::pin!(shutdown);

    while let Some(Accepted {
        stream,
        peer,
        permit,
    }) = next_connection(&listener, &slots, &mut shutdown).await
    {
        let handler = handler.clone();
        let service = service_fn(move |req| {
            let answer = handler(req, peer);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("connection from {peer} ended with an error: {e}");
            }
            drop(permit);
        });
    }

    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => log::info!("all connections closed"),
        _ = tokio::time::sleep(options.shutdown_timeout) => {
            log::warn!("shutdown timeout of {:?} reached; closing remaining connections", options.shutdown_timeout);
        }
    }
}

/// One accepted client connection, and the connection slot it holds until
/// it is dropped.
pub struct Accepted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

/// The accept step both loops share (this one and the balancer's tuned
/// one): waits for a free slot in `slots` — which leaves excess clients in
/// the kernel's backlog instead of spawning unbounded tasks — then for the
/// next connection, with `TCP_NODELAY` set. `None` once `shutdown`
/// completes.
pub async fn next_connection<S: Future<Output = ()>>(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut Pin<&mut S>,
) -> Option<Accepted> {
    let permit = tokio::select! {
        permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        _ = shutdown.as_mut() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some(Accepted { stream, peer, permit });
                }
                // Out of file descriptors or a connection reset before
                // accept: back off briefly instead of spinning or dying.
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.as_mut() => return None,
        }
    }
}
