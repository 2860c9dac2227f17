//! The line that says how a run is going: rewritten in place on a
//! terminal, one line every few seconds in a log.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    tty: bool,
    /// When a line was last printed (None: not yet).
    last: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            last: Mutex::new(None),
        }
    }

    /// Shows `text`, at most once a second on a terminal and once every
    /// five seconds otherwise.
    pub fn line(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let every = if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        *last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{text}");
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    /// Ends an in-place line so what follows starts on a line of its own.
    pub fn end_line(&self) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if self.enabled && self.tty && last.is_some() {
            eprintln!();
        }
        *last = None;
    }
}
