//! The proxy workers' accept loop, tuned for the balancer's last percent.
//!
//! Same contract as `common::server::serve` (HTTP/1.1 and h2c on one port,
//! the connection cap, idle and slow-header cut-off, graceful drain), but the
//! per-request costs of hyper's header-read timer, hyper-util's graceful
//! watch channel and hyper's mid-request socket reads are replaced by
//! [`crate::served`]: a few atomics per request and the poller's
//! `EPOLLRDHUP`. Only the balancer proxies every request of the shop, so
//! only it carries this code and its `unsafe`; the services, which spend
//! milliseconds in argon2 and SQL, use common's plain hyper-util loop.
//! Measurements behind each choice are in the comments below and in
//! `bench/balancer-cpu.sh`.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::Bytes;
use common::server::{Accepted, ServerOptions};
use futures::FutureExt;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::served::{BusyBody, Served};

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
    // No timer for HTTP/1, so no header-read timeout from hyper: `Served`
    // cuts off connections that go without a request for that long, at a
    // far smaller cost per request.
    builder.http1().header_read_timeout(None);
    // Small heads and bodies are copied into one buffer and sent with one
    // plain write instead of a vectored write of a queue of buffers: about
    // 700 fewer instructions per proxied request (callgrind) and 3 % less
    // balancer CPU per request, bodies still streamed in bounded memory.
    builder.http1().writev(false);
    // While a request is in progress hyper would read the socket to notice
    // a client that hangs up, reserving a fresh 8 KiB read buffer each time
    // (the old one is still shared with the request's header values): 3.6-
    // 3.9 % of the balancer's CPU per proxied request (bench/balancer-cpu.sh,
    // both slot orders). `Watched::hang_up_with` notices it from the poller
    // instead, without reading.
    builder.http1().half_close(true);
    builder.http2().timer(TokioTimer::new());
    let served = Served::new(options.header_read_timeout);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    tokio::pin!(shutdown);

    while let Some(Accepted {
        stream,
        peer,
        permit,
    }) = common::server::next_connection(&listener, &slots, &mut shutdown).await
    {
        let socket = stream.as_fd().try_clone_to_owned();
        let handler = handler.clone();
        let conn = served.open();
        let activity = conn.clone();
        // `map`, not an `async` block around the handler's future: the
        // block would be one more state machine that every request's
        // future and response are moved through.
        let service = service_fn(move |req| {
            let busy = activity.busy();
            handler(req, peer)
                .map(move |resp| Ok::<_, Infallible>(resp.map(|body| BusyBody::new(body, busy))))
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let mut connection = served.watch(conn, connection.into_owned(), |c| c.graceful_shutdown());
        match socket {
            Ok(socket) => connection = connection.hang_up_with(socket),
            Err(e) => log::debug!("cannot watch the connection from {peer} for hang-ups: {e}"),
        }
        tokio::spawn(async move {
            match connection.await {
                Some(Ok(())) => {}
                Some(Err(e)) => log::debug!("connection from {peer} ended with an error: {e}"),
                None => log::debug!(
                    "connection from {peer} closed: idle past the header-read timeout, or hung up mid-request"
                ),
            }
            drop(permit);
        });
    }

    drop(listener);
    served.drain();
    // Every connection holds a slot until it ends: holding all of them
    // means every connection has closed.
    let all = u32::try_from(options.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => log::info!("all connections closed"),
        _ = tokio::time::sleep(options.shutdown_timeout) => {
            log::warn!("shutdown timeout of {:?} reached; closing remaining connections", options.shutdown_timeout);
        }
    }
}
