//! The connections one accept loop is serving: each is told to finish
//! gracefully when the loop drains, and cut off when it has gone without a
//! request for too long (a client that never completes its headers, or an
//! idle keep-alive connection).
//!
//! Both used to come from hyper and hyper-util, at a price on every request:
//! hyper's header-read timeout makes a new timer for each request and an
//! extra read attempt after each response, and hyper-util's graceful
//! shutdown polls a `watch` channel every time a connection is polled —
//! together about 2 000 instructions of every proxied request under
//! callgrind. Here a request costs a few atomic operations: it marks its
//! connection busy when it arrives and idle when its response body is
//! done. One background task per loop advances a coarse clock and cuts off
//! connections idle for longer than the limit; a connection reads one
//! atomic flag when polled.
//!
//! A connection also ends when its client hangs up while a request is in
//! progress (see [`Watched::hang_up_with`]). hyper notices that itself by
//! reading the socket mid-request, but each such read first reserves a
//! fresh 8 KiB buffer (the old one is still shared with the request's
//! header values); `crate::accept` turns that read off (`half_close`)
//! and lets the poller's `EPOLLRDHUP` tell instead.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use common::mutex::lock;

/// The connections of one accept loop.
pub struct Served {
    registry: Arc<Registry>,
}

struct Registry {
    conns: Mutex<Slab<Arc<Conn>>>,
    draining: AtomicBool,
    /// The coarse clock: ticks of the sweeper since the loop started.
    now: Arc<AtomicU64>,
}

/// What one connection shares with its requests and the sweeper.
pub struct Conn {
    /// Its place in the registry.
    key: usize,
    in_flight: AtomicU32,
    /// The tick at which the last request finished (or the connection
    /// opened).
    idle_since: AtomicU64,
    stop: AtomicU8,
    waker: Mutex<Option<Waker>>,
    now: Arc<AtomicU64>,
}

const RUN: u8 = 0;
const DRAIN: u8 = 1;
const CUT: u8 = 2;

impl Served {
    /// Connections idle for longer than `idle_limit` are closed, checked
    /// on a clock that ticks every quarter of the limit (10 ms to 1 s), so
    /// one goes between the limit and one and a half times it. Must be
    /// called inside a tokio runtime.
    pub fn new(idle_limit: Duration) -> Served {
        let tick = (idle_limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        // Whole ticks of idleness beyond which a connection is cut off.
        let limit_ticks = idle_limit.as_nanos().div_ceil(tick.as_nanos()) as u64;
        let registry = Arc::new(Registry {
            conns: Mutex::new(Slab::new()),
            draining: AtomicBool::new(false),
            now: Arc::new(AtomicU64::new(0)),
        });
        tokio::spawn(sweep(Arc::downgrade(&registry), tick, limit_ticks));
        Served { registry }
    }

    /// A new connection's shared state, registered with this loop.
    pub fn open(&self) -> Arc<Conn> {
        let now = self.registry.now.clone();
        let mut conns = lock(&self.registry.conns);
        let entry = conns.vacant_entry();
        // Read under the lock `drain` takes after setting the flag: either
        // the drain sees this connection, or this sees the flag.
        let draining = self.registry.draining.load(Ordering::SeqCst);
        let conn = Arc::new(Conn {
            key: entry.key(),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now.load(Ordering::Relaxed)),
            stop: AtomicU8::new(if draining { DRAIN } else { RUN }),
            waker: Mutex::new(None),
            now,
        });
        entry.insert(conn.clone());
        conn
    }

    /// Runs `connection` for `conn` (from [`Served::open`]): resolves to
    /// its output, or to `None` if it was cut off (idle for too long, or
    /// its client hung up mid-request). When the loop drains,
    /// `begin_shutdown` is called on it once.
    pub fn watch<C, F>(&self, conn: Arc<Conn>, connection: C, begin_shutdown: F) -> Watched<C, F>
    where
        C: Future,
        F: FnOnce(Pin<&mut C>),
    {
        Watched {
            connection: Box::pin(connection),
            begin_shutdown: Some(begin_shutdown),
            conn,
            registry: Arc::downgrade(&self.registry),
            waker: None,
            hang_up: None,
        }
    }

    /// Tells every connection to finish gracefully, now and from now on.
    pub fn drain(&self) {
        self.registry.draining.store(true, Ordering::SeqCst);
        let conns: Vec<Arc<Conn>> = lock(&self.registry.conns)
            .iter()
            .map(|(_, c)| c.clone())
            .collect();
        for conn in conns {
            // A connection being cut off for idleness stays cut off.
            let _ = conn
                .stop
                .compare_exchange(RUN, DRAIN, Ordering::SeqCst, Ordering::SeqCst);
            conn.wake();
        }
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.registry.conns).len()
    }
}

impl Conn {
    /// Marks a request in progress until the returned guard is dropped
    /// (when the response body has been sent or abandoned).
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy { conn: self.clone() }
    }

    fn wake(&self) {
        if let Some(waker) = lock(&self.waker).as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// A request in progress on its connection; see [`Conn::busy`].
pub struct Busy {
    conn: Arc<Conn>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.conn.now.load(Ordering::Relaxed);
        self.conn.idle_since.store(now, Ordering::SeqCst);
        self.conn.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in progress until
    /// it is dropped: a long download is not an idle connection.
    pub struct BusyBody<B> {
        #[pin]
        body: B,
        busy: Busy,
    }
}

impl<B> BusyBody<B> {
    pub fn new(body: B, busy: Busy) -> BusyBody<B> {
        BusyBody { body, busy }
    }
}

impl<B: Body<Data = Bytes>> Body for BusyBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection under a [`Served`]; see [`Served::watch`].
pub struct Watched<C, F> {
    // Boxed so `Watched` is `Unpin` whatever the connection is; allocated
    // once per connection, not per request.
    connection: Pin<Box<C>>,
    begin_shutdown: Option<F>,
    conn: Arc<Conn>,
    registry: Weak<Registry>,
    /// A copy of the waker registered in `conn`, to notice a change
    /// without taking the lock.
    waker: Option<Waker>,
    /// A second descriptor of the client's socket, registered for reading
    /// only, to learn that the client hung up; see [`Watched::hang_up_with`].
    hang_up: Option<AsyncFd<OwnedFd>>,
}

impl<C, F> Watched<C, F> {
    /// Ends the connection when the client hangs up (closes or resets its
    /// side) while one of its requests is in progress, as hyper does by
    /// default. `socket` is a duplicate of the client's socket
    /// (`try_clone_to_owned`); it only waits for readiness, it never reads.
    /// Must be called inside a tokio runtime. Without it (or if the
    /// registration fails) a hang-up is noticed at the next write.
    pub fn hang_up_with(mut self, socket: OwnedFd) -> Self {
        // SAFETY: an `OwnedFd` is a valid open descriptor, closed only when
        // it is dropped, and `AsyncFd` owns it until then.
        match unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) } {
            Ok(fd) => self.hang_up = Some(fd),
            Err(e) => log::debug!("cannot watch a connection for hang-ups: {e}"),
        }
        self
    }

    /// Whether the client has hung up. Readiness left over from data (the
    /// request, or a pipelined next one, which hyper reads itself) is
    /// cleared, so that the next change wakes this task.
    fn client_hung_up(&self, cx: &mut Context<'_>) -> bool {
        let Some(fd) = &self.hang_up else {
            return false;
        };
        while let Poll::Ready(ready) = fd.poll_read_ready(cx) {
            match ready {
                Ok(mut guard) => {
                    if guard.ready().is_read_closed() {
                        return true;
                    }
                    guard.clear_ready();
                }
                Err(_) => return false,
            }
        }
        false
    }
}

// The connection is boxed and the callback is never pinned (it is moved
// out and called), so moving a `Watched` moves neither in place.
impl<C, F> Unpin for Watched<C, F> {}

impl<C: Future, F: FnOnce(Pin<&mut C>)> Future for Watched<C, F> {
    type Output = Option<C::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The waker first, then the flag: a flag set after this check wakes
        // the waker already in place.
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            this.waker = Some(cx.waker().clone());
            *lock(&this.conn.waker) = Some(cx.waker().clone());
        }
        match this.conn.stop.load(Ordering::SeqCst) {
            RUN => {}
            CUT => {
                // Requests only start while the connection is polled, on
                // this task, so none can have started since the sweeper
                // looked; if one had already, the cut is called off.
                if this.conn.in_flight.load(Ordering::SeqCst) == 0 {
                    return Poll::Ready(None);
                }
                let _ =
                    this.conn
                        .stop
                        .compare_exchange(CUT, RUN, Ordering::SeqCst, Ordering::SeqCst);
            }
            _ => {
                if let Some(begin) = this.begin_shutdown.take() {
                    begin(this.connection.as_mut());
                }
            }
        }
        // Between requests hyper reads the socket and sees a hang-up
        // itself; during one it does not (`half_close`), so this looks.
        if this.conn.in_flight.load(Ordering::SeqCst) > 0 && this.client_hung_up(cx) {
            return Poll::Ready(None);
        }
        this.connection.as_mut().poll(cx).map(Some)
    }
}

impl<C, F> Drop for Watched<C, F> {
    fn drop(&mut self) {
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let mut conns = lock(&registry.conns);
        let key = self.conn.key;
        if conns.get(key).is_some_and(|c| Arc::ptr_eq(c, &self.conn)) {
            conns.remove(key);
        }
    }
}

/// Advances the coarse clock and cuts off connections idle too long, until
/// the [`Served`] is gone.
async fn sweep(registry: Weak<Registry>, tick: Duration, limit_ticks: u64) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let now = registry.now.fetch_add(1, Ordering::Relaxed) + 1;
        let idle: Vec<Arc<Conn>> = lock(&registry.conns)
            .iter()
            .filter(|(_, c)| {
                c.in_flight.load(Ordering::SeqCst) == 0
                    && now.saturating_sub(c.idle_since.load(Ordering::SeqCst)) > limit_ticks
            })
            .map(|(_, c)| c.clone())
            .collect();
        for conn in idle {
            if conn
                .stop
                .compare_exchange(RUN, CUT, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                conn.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::testing::eventually;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// A "connection" that runs until told to shut down, then finishes.
    struct Pending {
        stopping: bool,
        polls: Arc<AtomicUsize>,
    }

    impl Future for Pending {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<&'static str> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.stopping {
                Poll::Ready("drained")
            } else {
                Poll::Pending
            }
        }
    }

    fn pending(polls: &Arc<AtomicUsize>) -> Pending {
        Pending {
            stopping: false,
            polls: polls.clone(),
        }
    }

    fn stop(c: Pin<&mut Pending>) {
        c.get_mut().stopping = true;
    }

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn draining_wakes_and_stops_every_connection_at_no_extra_poll() {
        let served = Served::new(LONG);
        let polls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..3)
            .map(|_| tokio::spawn(served.watch(served.open(), pending(&polls), stop)))
            .collect();
        let all_polled = || {
            let n = polls.load(Ordering::SeqCst);
            async move { (n == 3).then_some(()) }
        };
        eventually("each connection polled", Duration::from_secs(5), all_polled).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(polls.load(Ordering::SeqCst), 3, "nothing polls them again");
        assert_eq!(served.open_connections(), 3);

        served.drain();
        for t in tasks {
            let out = tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("a drained connection finishes")
                .unwrap();
            assert_eq!(out, Some("drained"));
        }
        assert_eq!(served.open_connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_opened_while_draining_stops_at_once() {
        let served = Served::new(LONG);
        served.drain();
        let polls = Arc::new(AtomicUsize::new(0));
        let watched = served.watch(served.open(), pending(&polls), stop);
        let out = tokio::time::timeout(Duration::from_secs(5), watched)
            .await
            .expect("finishes without being woken");
        assert_eq!(out, Some("drained"));
        assert_eq!(served.open_connections(), 0);
    }

    #[tokio::test]
    async fn an_idle_connection_is_cut_off_after_the_limit() {
        let limit = Duration::from_millis(200);
        let served = Served::new(limit);
        let polls = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            served.watch(served.open(), pending(&polls), stop),
        )
        .await
        .expect("cut off");
        assert_eq!(out, None);
        let took = started.elapsed();
        assert!(took >= limit, "cut after {took:?}");
        assert_eq!(served.open_connections(), 0);
    }

    #[tokio::test]
    async fn a_connection_with_a_request_in_progress_is_not_cut_off() {
        let limit = Duration::from_millis(100);
        let served = Served::new(limit);
        let polls = Arc::new(AtomicUsize::new(0));
        let conn = served.open();
        let busy = conn.busy();
        let task = tokio::spawn(served.watch(conn, pending(&polls), stop));
        tokio::time::sleep(limit * 5).await;
        assert!(
            !task.is_finished(),
            "cut off while a request was in progress"
        );

        // Idle from now on: cut off after the limit, not before.
        drop(busy);
        let idle_from = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("cut off once idle")
            .unwrap();
        assert_eq!(out, None);
        assert!(idle_from.elapsed() >= limit - Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_busy_body_keeps_its_request_in_progress_until_dropped() {
        let served = Served::new(LONG);
        let conn = served.open();
        let body = BusyBody::new(http_body_util::Empty::<Bytes>::new(), conn.busy());
        assert_eq!(conn.in_flight.load(Ordering::SeqCst), 1);
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(conn.in_flight.load(Ordering::SeqCst), 0);
    }
}
