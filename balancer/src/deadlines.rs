//! Many deadlines, one tokio timer.
//!
//! The balancer gives every proxied request a deadline. As a tokio `Sleep`
//! each is inserted into tokio's timer wheel and taken out again a few
//! microseconds later, almost never firing; under callgrind tokio's timers
//! cost about 650 instructions of every proxied request. Here a sleep is an
//! entry in a slab, inserted on its first poll and removed when dropped, both
//! under an uncontended lock (one [`Deadlines`] per worker), and one
//! background task sleeps on tokio's timer until the earliest deadline that
//! may be due, then wakes whatever is due.
//!
//! Deadlines are added in roughly increasing order (now + a fixed timeout),
//! so the background task is rarely re-armed: when it wakes, most entries it
//! was armed for are long gone, and it re-arms for the earliest live one.
//!
//! Sleeps must be polled inside a tokio runtime (as tokio's own must): the
//! background task is spawned on the runtime of the first poll.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use common::mutex::lock;
use slab::Slab;

/// A set of sleeps sharing one background timer task. Cheap to clone; use
/// one per worker thread so the lock is never contended.
#[derive(Clone, Default)]
pub struct Deadlines {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: Slab<Entry>,
    /// When the background task must next look at the entries; `None`
    /// when none is waiting.
    next_look: Option<Instant>,
    ticker: Ticker,
}

#[derive(Default)]
enum Ticker {
    /// Not spawned yet, or its runtime has gone away.
    #[default]
    Stopped,
    /// Spawned; the waker is set while it waits.
    Running(Option<Waker>),
}

struct Entry {
    deadline: Instant,
    waker: Waker,
    due: bool,
}

/// The error of [`Deadlines::timeout_at`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl Deadlines {
    pub fn new() -> Deadlines {
        Deadlines::default()
    }

    /// A future that completes at `deadline`.
    pub fn at(&self, deadline: Instant) -> DeadlineSleep {
        DeadlineSleep {
            inner: self.inner.clone(),
            deadline,
            key: None,
            done: false,
        }
    }

    /// Runs `fut` until it completes or `deadline` passes, whichever is
    /// first.
    pub fn timeout_at<F: Future>(&self, deadline: Instant, fut: F) -> Timeout<F> {
        Timeout {
            fut,
            sleep: self.at(deadline),
        }
    }

    /// Sleeps that have been polled and not yet completed or dropped.
    pub fn waiting(&self) -> usize {
        lock(&self.inner.state).entries.len()
    }
}

impl fmt::Debug for Deadlines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadlines")
            .field("waiting", &self.waiting())
            .finish()
    }
}

impl State {
    /// Makes sure the background task looks no later than `deadline`.
    fn schedule(&mut self, deadline: Instant, inner: &Arc<Inner>) {
        let earlier = self.next_look.is_none_or(|t| deadline < t);
        if earlier {
            self.next_look = Some(deadline);
        }
        match &mut self.ticker {
            Ticker::Running(waiting) => {
                if earlier {
                    if let Some(waker) = waiting.take() {
                        waker.wake();
                    }
                }
            }
            Ticker::Stopped => {
                self.ticker = Ticker::Running(None);
                tokio::spawn(tick(Arc::downgrade(inner)));
            }
        }
    }
}

/// The background task: waits for `next_look`, marks what is due and wakes
/// it, and re-arms for the earliest deadline left. Ends when the
/// [`Deadlines`] and all its sleeps are gone.
async fn tick(inner: Weak<Inner>) {
    /// Marks the task stopped if its runtime drops it, so the next sleep
    /// polled on another runtime starts a new one.
    struct Running(Weak<Inner>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                lock(&inner.state).ticker = Ticker::Stopped;
            }
        }
    }
    let _running = Running(inner.clone());
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut due: Vec<Waker> = Vec::new();
    std::future::poll_fn(|cx| loop {
        let Some(inner) = inner.upgrade() else {
            return Poll::Ready(());
        };
        let mut state = lock(&inner.state);
        let Some(look) = state.next_look else {
            state.ticker = Ticker::Running(Some(cx.waker().clone()));
            return Poll::Pending;
        };
        let mut now = Instant::now();
        if look > now {
            let at = tokio::time::Instant::from_std(look);
            let timer = match &mut timer {
                Some(t) => {
                    if t.deadline() != at {
                        t.as_mut().reset(at);
                    }
                    t
                }
                None => timer.insert(Box::pin(tokio::time::sleep_until(at))),
            };
            state.ticker = Ticker::Running(Some(cx.waker().clone()));
            drop(state);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // tokio never fires early (it rounds up to the millisecond),
            // so `look` has passed, whatever a clock read might say.
            now = look;
            state = lock(&inner.state);
        }
        let mut next: Option<Instant> = None;
        for (_, entry) in state.entries.iter_mut() {
            if entry.due {
                continue;
            }
            if entry.deadline <= now {
                entry.due = true;
                due.push(entry.waker.clone());
            } else {
                next = Some(next.map_or(entry.deadline, |n| n.min(entry.deadline)));
            }
        }
        state.next_look = next;
        drop(state);
        // Woken outside the lock: a waker may run code that polls a sleep.
        for waker in due.drain(..) {
            waker.wake();
        }
    })
    .await
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the background task see it is no longer needed and end.
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Ticker::Running(Some(waker)) = std::mem::take(&mut state.ticker) {
            waker.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// See [`Deadlines::timeout_at`]. A plain struct rather than an `async`
    /// block, so the wrapped future is moved once, not into a second state
    /// machine and again on every layer above.
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: DeadlineSleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// A sleep registered with a [`Deadlines`]; see [`Deadlines::at`].
pub struct DeadlineSleep {
    inner: Arc<Inner>,
    deadline: Instant,
    /// The slab entry, once polled.
    key: Option<usize>,
    done: bool,
}

impl Future for DeadlineSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        let mut state = lock(&this.inner.state);
        match this.key {
            Some(key) => match state.entries.get_mut(key) {
                Some(entry) if !entry.due => {
                    if !entry.waker.will_wake(cx.waker()) {
                        entry.waker = cx.waker().clone();
                    }
                }
                _ => {
                    if state.entries.contains(key) {
                        state.entries.remove(key);
                    }
                    this.key = None;
                    this.done = true;
                    return Poll::Ready(());
                }
            },
            None => {
                // No clock read here: a deadline already past is found due
                // by the background task at once.
                let key = state.entries.insert(Entry {
                    deadline: this.deadline,
                    waker: cx.waker().clone(),
                    due: false,
                });
                this.key = Some(key);
                state.schedule(this.deadline, &this.inner);
            }
        }
        Poll::Pending
    }
}

impl Drop for DeadlineSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut state = lock(&self.inner.state);
            if state.entries.contains(key) {
                state.entries.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    fn after(deadlines: &Deadlines, d: Duration) -> DeadlineSleep {
        deadlines.at(Instant::now() + d)
    }

    #[tokio::test]
    async fn a_sleep_ends_at_its_deadline_and_not_before() {
        let deadlines = Deadlines::new();
        let start = Instant::now();
        after(&deadlines, 80 * MS).await;
        let took = start.elapsed();
        assert!(took >= 80 * MS, "woke after {took:?}");
        assert!(took < 2000 * MS, "woke after {took:?}");
        assert_eq!(deadlines.waiting(), 0);
    }

    #[tokio::test]
    async fn an_earlier_deadline_added_later_fires_first() {
        let deadlines = Deadlines::new();
        let late = tokio::spawn(after(&deadlines, 3000 * MS));
        tokio::time::sleep(20 * MS).await;
        let start = Instant::now();
        after(&deadlines, 50 * MS).await;
        let took = start.elapsed();
        assert!(took >= 50 * MS && took < 1500 * MS, "woke after {took:?}");
        assert!(!late.is_finished());
        late.abort();
    }

    #[tokio::test]
    async fn sleeps_end_in_deadline_order() {
        let deadlines = Deadlines::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let start = Instant::now();
        for ms in [120u32, 40, 80, 160] {
            let sleep = deadlines.at(start + ms * MS);
            let tx = tx.clone();
            tokio::spawn(async move {
                sleep.await;
                let _ = tx.send(ms);
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(ms) = rx.recv().await {
            assert!(start.elapsed() >= ms * MS);
            order.push(ms);
        }
        assert_eq!(order, [40, 80, 120, 160]);
    }

    #[tokio::test]
    async fn a_dropped_sleep_leaves_nothing_behind() {
        let deadlines = Deadlines::new();
        let mut sleeps: Vec<_> = (0..100)
            .map(|_| Box::pin(after(&deadlines, 60 * MS)))
            .collect();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for s in &mut sleeps {
            assert!(s.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(deadlines.waiting(), 100);
        drop(sleeps);
        assert_eq!(deadlines.waiting(), 0);
        // The background task wakes for the old deadline, finds nothing,
        // and a later sleep still works.
        tokio::time::sleep(80 * MS).await;
        after(&deadlines, 10 * MS).await;
    }

    #[tokio::test]
    async fn timeout_at_returns_the_output_or_elapsed() {
        let deadlines = Deadlines::new();
        let soon = Instant::now() + 50 * MS;
        let quick = deadlines.timeout_at(soon, async { 7 }).await;
        assert_eq!(quick, Ok(7));
        let slow = deadlines
            .timeout_at(soon, tokio::time::sleep(Duration::from_secs(5)))
            .await;
        assert_eq!(slow, Err(Elapsed));
        assert!(Instant::now() >= soon);
        assert_eq!(deadlines.waiting(), 0);
    }

    #[tokio::test]
    async fn a_past_deadline_is_due_at_once() {
        let deadlines = Deadlines::new();
        let past = Instant::now() - Duration::from_secs(1);
        tokio::time::timeout(Duration::from_secs(2), deadlines.at(past))
            .await
            .expect("a deadline in the past completes");
    }

    #[test]
    fn a_sleep_polled_on_a_second_runtime_still_fires() {
        let deadlines = Deadlines::new();
        for _ in 0..2 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let d = deadlines.clone();
            rt.block_on(async move {
                tokio::time::timeout(Duration::from_secs(2), after(&d, 20 * MS))
                    .await
                    .expect("fires on this runtime");
            });
        }
    }
}
