//! The two streaming bodies of a proxied exchange.
//!
//! [`UpBody`] carries the client's request body to the upstream frame by
//! frame, enforcing the route's size limit and the body-read timeout as it
//! goes (a request that was never written comes back whole from
//! [`crate::connections`], so it can go to another replica). When the
//! client's body fails — too large, too slow, or not valid HTTP framing —
//! it says so in [`BodyShared`], so the broken upstream exchange that
//! follows is answered as the client's fault (4xx), not the upstream's.
//! [`DownBody`] carries
//! the upstream's response to the client and gives up when the upstream
//! stalls for longer than the route's timeout. Neither buffers: memory per
//! exchange is a frame, whatever the body's size.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// What the handler keeps of a request body while it is lent to the client.
#[derive(Default)]
pub struct BodyShared {
    /// A [`ClientFault`] as a number; 0 while there is none.
    fault: AtomicU8,
    /// Whether the last read of the client's body had to wait for the
    /// client: if the route's deadline passes then, the client is the slow
    /// party, not the upstream.
    waiting_on_client: AtomicBool,
    /// Set once the client's body has been read to its end. Until then the
    /// client connection holds unread bytes and cannot carry another
    /// request, so an answer sent before this must announce the close.
    finished: AtomicBool,
}

/// Why the client's body was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// It grew past the route's limit.
    TooLarge = 1,
    /// It did not arrive within the body-read timeout.
    TooSlow = 2,
    /// It could not be read: broken chunked framing, or the client hung up.
    Unreadable = 3,
}

impl BodyShared {
    /// Whether the client's body was read to its end.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Why the client's body failed, if it did.
    pub fn fault(&self) -> Option<ClientFault> {
        match self.fault.load(Ordering::Acquire) {
            1 => Some(ClientFault::TooLarge),
            2 => Some(ClientFault::TooSlow),
            3 => Some(ClientFault::Unreadable),
            _ => None,
        }
    }

    /// Whether the body is unfinished because the client is not sending it.
    pub fn waiting_on_client(&self) -> bool {
        !self.is_finished() && self.waiting_on_client.load(Ordering::Acquire)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds {0} bytes")]
pub struct TooLarge(pub u64);

#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}")]
pub struct Stalled(pub Duration);

#[derive(Debug, thiserror::Error)]
#[error("the client's request body did not arrive within {0:?}")]
pub struct TooSlow(pub Duration);

#[derive(Debug, thiserror::Error)]
#[error("the client's request body could not be read")]
pub struct Unreadable(#[source] pub hyper::Error);

/// A request body on its way upstream.
pub enum UpBody {
    Empty,
    Stream(StreamUp),
}

pub struct StreamUp {
    inner: Option<Incoming>,
    limit: u64,
    seen: u64,
    /// How long the client may take over its body, counted from the first
    /// time it makes us wait.
    timeout: Duration,
    /// Created the first time the client makes us wait: a body that
    /// arrives with its head never touches the timer wheel.
    timer: Option<Pin<Box<Sleep>>>,
    shared: Arc<BodyShared>,
}

impl StreamUp {
    /// Stops reading the client's body for `fault`, which the handler will
    /// answer for.
    fn give_up(
        &mut self,
        fault: ClientFault,
        error: BoxError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.shared.fault.store(fault as u8, Ordering::Release);
        self.inner = None;
        self.timer = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl UpBody {
    pub fn stream(
        inner: Incoming,
        limit: u64,
        timeout: Duration,
        shared: Arc<BodyShared>,
    ) -> UpBody {
        UpBody::Stream(StreamUp {
            inner: Some(inner),
            limit,
            seen: 0,
            timeout,
            timer: None,
            shared,
        })
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = match self.get_mut() {
            UpBody::Empty => return Poll::Ready(None),
            UpBody::Stream(s) => s,
        };
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        let waiting = polled.is_pending();
        if waiting != this.shared.waiting_on_client.load(Ordering::Relaxed) {
            this.shared
                .waiting_on_client
                .store(waiting, Ordering::Release);
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        let error = Box::new(TooLarge(this.limit));
                        return this.give_up(ClientFault::TooLarge, error);
                    }
                }
                // hyper's client stops polling once `is_end_stream` says a
                // sized body is complete, so the last frame may be the
                // last poll: note the end here, not only on `None`.
                if this.inner.as_ref().is_some_and(|b| b.is_end_stream()) {
                    this.shared.finished.store(true, Ordering::Release);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            // hyper reports the client's own mistakes here: a chunk size
            // that overflows, an overlong chunk extension, a body cut short.
            Poll::Ready(Some(Err(e))) => {
                this.give_up(ClientFault::Unreadable, Box::new(Unreadable(e)))
            }
            Poll::Ready(None) => {
                this.shared.finished.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.give_up(ClientFault::TooSlow, Box::new(TooSlow(timeout)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Stream(s) => s.inner.as_ref().is_none_or(|b| b.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Empty => SizeHint::with_exact(0),
            UpBody::Stream(s) => s
                .inner
                .as_ref()
                .map(|b| b.size_hint())
                .unwrap_or_else(|| SizeHint::with_exact(0)),
        }
    }
}

/// A response body on its way to the client.
pub enum DownBody {
    Full(Full<Bytes>),
    Upstream(StreamDown),
}

pub struct StreamDown {
    inner: Incoming,
    idle: Duration,
    /// Created only the first time the upstream makes us wait: a small
    /// response that arrives whole never touches the timer wheel.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl DownBody {
    pub fn upstream(inner: Incoming, idle: Duration) -> DownBody {
        DownBody::Upstream(StreamDown {
            inner,
            idle,
            timer: None,
            armed: false,
        })
    }
}

impl From<Full<Bytes>> for DownBody {
    fn from(b: Full<Bytes>) -> Self {
        DownBody::Full(b)
    }
}

impl Body for DownBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            DownBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(|e| match e {}),
            DownBody::Upstream(s) => match Pin::new(&mut s.inner).poll_frame(cx) {
                Poll::Ready(r) => {
                    s.armed = false;
                    Poll::Ready(r.map(|r| r.map_err(|e| Box::new(e) as BoxError)))
                }
                Poll::Pending => {
                    let deadline = Instant::now() + s.idle;
                    if !s.armed {
                        match s.timer.as_mut() {
                            Some(t) => t.as_mut().reset(deadline),
                            None => s.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                        }
                        s.armed = true;
                    }
                    match s.timer.as_mut().map(|t| t.as_mut().poll(cx)) {
                        Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(Stalled(s.idle))))),
                        _ => Poll::Pending,
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownBody::Full(b) => b.is_end_stream(),
            DownBody::Upstream(s) => s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownBody::Full(b) => b.size_hint(),
            DownBody::Upstream(s) => s.inner.size_hint(),
        }
    }
}
