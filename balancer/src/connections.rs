//! One worker's keep-alive connections to the upstream replicas, on
//! hyper's own HTTP/1 client connections.
//!
//! The first balancer used hyper-util's pooled client. Under load its
//! bookkeeping cost more than the proxying: it spawns a task per HTTP/1
//! request to put the connection back once it is ready again, races a
//! connect against every checkout, and looks connections up in a locked
//! map keyed by URI authority. A worker here owns its connections outright
//! (one thread, one runtime): a connection goes back on its replica's list
//! as soon as the response head arrives, and a checkout takes the first
//! one hyper reports ready for another request — which it is only once the
//! previous exchange has completed both ways. Nothing is spawned per
//! request, and a request that was never written (a refused connect, or a
//! kept connection that turned out closed) comes back whole, body
//! included, so it can go to another replica.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use common::mutex::lock;

use crate::body::{BoxError, UpBody};

/// How connections are opened and how long they are kept.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    /// Connections kept per replica (busy and idle together); one more is
    /// opened when every kept one is busy, and closed after its exchange.
    pub max_per_replica: usize,
    pub idle_timeout: Duration,
}

/// Why a request got no response.
pub enum SendError {
    /// Nothing was written: no connection could be opened, or the one
    /// opened closed first. The request comes back untouched.
    NotSent {
        error: BoxError,
        request: Box<Request<UpBody>>,
    },
    /// The request was handed to the upstream and the exchange broke.
    Broken(hyper::Error),
}

struct Kept {
    sender: SendRequest<UpBody>,
    /// When it was last handed out; a connection ready for longer than
    /// the idle timeout is closed rather than reused.
    since: Instant,
}

/// The connections of one worker, by replica address. A list, not a
/// map: a worker talks to a handful of replicas, and comparing addresses
/// costs less than hashing one.
pub struct Connections {
    options: ConnectOptions,
    kept: Mutex<Vec<(SocketAddr, VecDeque<Kept>)>>,
}

impl Connections {
    pub fn new(options: ConnectOptions) -> Connections {
        Connections {
            options,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `addr` over a kept
    /// connection when one is ready, else over a new one. `now` is the
    /// request's start, taken as the time the connection is handed out
    /// (one clock read per request serves the proxy and the pool).
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut request: Request<UpBody>,
        now: Instant,
    ) -> Result<Response<Incoming>, SendError> {
        while let Some(mut sender) = self.checkout(addr, now) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin(addr, sender, now);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    // The upstream closed it while it was idle: try the next.
                    Some(back) => request = back,
                    None => return Err(SendError::Broken(e.into_error())),
                },
            }
        }
        let mut sender = match self.connect(addr).await {
            Ok(sender) => sender,
            Err(error) => {
                return Err(SendError::NotSent {
                    error: Box::new(error),
                    request: Box::new(request),
                })
            }
        };
        match sender.try_send_request(request).await {
            Ok(response) => {
                self.checkin(addr, sender, now);
                Ok(response)
            }
            Err(mut e) => match e.take_message() {
                Some(back) => Err(SendError::NotSent {
                    error: Box::new(e.into_error()),
                    request: Box::new(back),
                }),
                None => Err(SendError::Broken(e.into_error())),
            },
        }
    }

    /// Closes connections that have been idle too long or that the
    /// upstream closed, and forgets replicas with none left.
    pub fn sweep(&self) {
        let timeout = self.options.idle_timeout;
        let mut kept = lock(&self.kept);
        for (_, list) in kept.iter_mut() {
            list.retain(|k| {
                let expired = k.sender.is_ready() && k.since.elapsed() > timeout;
                !(k.sender.is_closed() || expired)
            });
        }
        kept.retain(|(_, list)| !list.is_empty());
    }

    /// The most recently used kept connection that is ready for a
    /// request, dropping closed and expired ones on the way.
    fn checkout(&self, addr: SocketAddr, now: Instant) -> Option<SendRequest<UpBody>> {
        let mut kept = lock(&self.kept);
        let (_, list) = kept.iter_mut().find(|(a, _)| *a == addr)?;
        // Newest first: the connections in use stay few and warm, and the
        // surplus of a burst sits at the front until the sweep closes it.
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            if list[i].sender.is_closed() {
                list.remove(i);
            } else if list[i].sender.is_ready() {
                let k = list.remove(i)?;
                if now.saturating_duration_since(k.since) <= self.options.idle_timeout {
                    return Some(k.sender);
                }
            }
        }
        None
    }

    /// Puts a connection back right after its response head arrived; it
    /// becomes ready again when the body has been relayed.
    fn checkin(&self, addr: SocketAddr, sender: SendRequest<UpBody>, now: Instant) {
        let mut kept = lock(&self.kept);
        let list = match kept.iter().position(|(a, _)| *a == addr) {
            Some(i) => &mut kept[i].1,
            None => {
                kept.push((addr, VecDeque::new()));
                &mut kept.last_mut().expect("just pushed").1
            }
        };
        if list.len() >= self.options.max_per_replica {
            list.retain(|k| !k.sender.is_closed());
            if list.len() >= self.options.max_per_replica {
                // Over the limit: hyper closes it after this exchange.
                return;
            }
        }
        list.push_back(Kept { sender, since: now });
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<SendRequest<UpBody>> {
        let timeout = self.options.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(connected) => connected?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {timeout:?}"),
                ))
            }
        };
        stream.set_nodelay(true)?;
        // Keepalive probes notice an upstream host that vanished while a
        // connection sat idle, instead of the next request finding out.
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
        // One flat write per request, as `common::server` does for responses.
        let (sender, connection) = Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("upstream connection to {addr} ended: {e}");
            }
        });
        Ok(sender)
    }
}
