//! The queue between the threads that end spans and the thread that
//! exports them. Spans arrive already encoded (one `ScopeSpans.spans`
//! field each, [`super::otlp_wire::span_message`]), so the queue is one
//! byte buffer and the offsets where its spans end; the export thread
//! wraps them into requests of at most `max_export_batch_size` spans.
//!
//! The thread wakes when a batch is full (one wake-up per batch, not per
//! span), when the scheduled delay has passed, and at shutdown; a full
//! queue drops spans and says so once. Sizes and delay follow the
//! `OTEL_BSP_*` variables, as the SDK's batch processor read them.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::mutex::lock;

/// `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`,
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, with the specification's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchConfig {
    pub scheduled_delay: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            scheduled_delay: Duration::from_millis(5000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

impl BatchConfig {
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From `var` (a variable's value), for tests. A value that is not a
    /// positive number keeps the default, with a warning (the SDK ignored
    /// it silently); a batch larger than the queue is cut to the queue.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str, default: usize| -> usize {
            match var(name).map(|v| v.trim().parse::<usize>()) {
                None => default,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    log::warn!("tracing: {name} is not a positive number; using {default}");
                    default
                }
            }
        };
        let d = Self::default();
        let max_queue_size = read("OTEL_BSP_MAX_QUEUE_SIZE", d.max_queue_size);
        Self {
            scheduled_delay: Duration::from_millis(read(
                "OTEL_BSP_SCHEDULE_DELAY",
                d.scheduled_delay.as_millis() as usize,
            ) as u64),
            max_queue_size,
            max_export_batch_size: read("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", d.max_export_batch_size)
                .min(max_queue_size),
        }
    }
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Where each queued span's bytes end in `bytes`.
    ends: Vec<usize>,
    shutdown: bool,
}

/// Encoded spans waiting for the export thread.
pub struct ExportQueue {
    pending: Mutex<Pending>,
    wake: Condvar,
    config: BatchConfig,
    dropped: AtomicU64,
}

thread_local! {
    /// Where a span is encoded before the queue's lock is taken, so that
    /// threads ending spans hold it only for a copy.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl ExportQueue {
    pub fn new(config: BatchConfig) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            config,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues the span `encode` writes.
    pub fn push_with(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            encode(&mut scratch);
            let mut p = lock(&self.pending);
            if p.ends.len() >= self.config.max_queue_size || p.shutdown {
                drop(p);
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(
                        "tracing: the span queue is full (OTEL_BSP_MAX_QUEUE_SIZE={}); \
                         spans are dropped until the exporter catches up",
                        self.config.max_queue_size
                    );
                }
                return;
            }
            p.bytes.extend_from_slice(&scratch);
            let end = p.bytes.len();
            p.ends.push(end);
            if p.ends.len() == self.config.max_export_batch_size {
                self.wake.notify_one();
            }
        });
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the export thread to send what is queued and stop.
    pub fn shut_down(&self) {
        lock(&self.pending).shutdown = true;
        self.wake.notify_one();
    }

    /// The export thread's loop: waits for a full batch, the delay or
    /// shutdown, takes everything queued (swapping buffers, so that both
    /// keep their capacity) and hands `send` one batch at a time, as the
    /// concatenated span messages. Returns after shutdown.
    pub fn run(&self, mut send: impl FnMut(&[u8])) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        loop {
            let shutdown = {
                let deadline = Instant::now() + self.config.scheduled_delay;
                let mut p = lock(&self.pending);
                while !p.shutdown && p.ends.len() < self.config.max_export_batch_size {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    p = self
                        .wake
                        .wait_timeout(p, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                std::mem::swap(&mut p.bytes, &mut bytes);
                std::mem::swap(&mut p.ends, &mut ends);
                p.shutdown
            };
            let mut start = 0;
            for chunk in ends.chunks(self.config.max_export_batch_size) {
                let end = *chunk.last().expect("chunks are not empty");
                send(&bytes[start..end]);
                start = end;
            }
            bytes.clear();
            ends.clear();
            if shutdown {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> BatchConfig {
        BatchConfig::from_vars(crate::telemetry::vars_of(vars))
    }

    #[test]
    fn the_variables_are_read_as_the_sdk_read_them() {
        assert_eq!(config(&[]), BatchConfig::default());
        let c = config(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
        ]);
        assert_eq!(c.scheduled_delay, Duration::from_millis(200));
        assert_eq!(c.max_queue_size, 100);
        assert_eq!(c.max_export_batch_size, 100, "cut to the queue");
        let bad = config(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ]);
        assert_eq!(bad, BatchConfig::default());
    }

    /// Spans pushed from several threads arrive whole, in batches of at
    /// most the batch size; past the queue's size they are dropped and
    /// counted; shutdown sends what is left.
    #[test]
    fn batches_are_whole_spans_and_a_full_queue_drops() {
        let queue = Arc::new(ExportQueue::new(BatchConfig {
            scheduled_delay: Duration::from_secs(3600),
            max_queue_size: 50,
            max_export_batch_size: 7,
        }));
        // Fill past the queue's size before the export thread starts.
        for i in 0..60u8 {
            queue.push_with(|b| b.extend_from_slice(&[i; 3]));
        }
        assert_eq!(queue.dropped(), 10);
        let exporter = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut batches = Vec::new();
                queue.run(|batch| batches.push(batch.to_vec()));
                batches
            })
        };
        let pushers: Vec<_> = (0..2)
            .map(|t| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    for i in 0..20u8 {
                        queue.push_with(|b| b.extend_from_slice(&[100 + t * 20 + i; 3]));
                    }
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        queue.shut_down();
        let batches = exporter.join().unwrap();
        let mut spans: Vec<u8> = Vec::new();
        for batch in &batches {
            assert!(!batch.is_empty() && batch.len() <= 7 * 3, "{}", batch.len());
            for span in batch.chunks(3) {
                assert!(span.iter().all(|b| *b == span[0]), "a span was split");
                spans.push(span[0]);
            }
        }
        spans.sort();
        let mut expected: Vec<u8> = (0..50).chain(100..140).collect();
        expected.sort();
        assert_eq!(spans.len() + queue.dropped() as usize - 10, 90);
        // Spans dropped while the thread ran (the queue held 50) are the
        // only ones missing.
        let missing = expected.iter().filter(|s| !spans.contains(s)).count();
        assert_eq!(missing as u64, queue.dropped() - 10);
    }
}
