//! Rate limits for log lines that anyone (or a misbehaving peer) can trigger: a rejected
//! certificate, a refused stream. Every event is still counted in the metrics; the log gets a
//! few lines per cause and window, and the next line allowed says how many were left out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines per cause per window.
pub const BURST: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct LogLimit {
    causes: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    /// `Some(n)` if a line for `cause` may be logged now, `n` being how many were suppressed
    /// since the last one; `None` to stay quiet.
    pub fn allow(&self, cause: &'static str) -> Option<u64> {
        self.allow_at(cause, Instant::now())
    }

    fn allow_at(&self, cause: &'static str, now: Instant) -> Option<u64> {
        let mut causes = self
            .causes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = causes.entry(cause).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= WINDOW {
            w.start = now;
            w.logged = 0;
        }
        if w.logged < BURST {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_cause_per_window_then_the_count_of_what_was_left_out() {
        let l = LogLimit::default();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(l.allow_at("a", t0), Some(0));
        }
        assert_eq!(l.allow_at("a", t0), None);
        assert_eq!(l.allow_at("a", t0), None);
        assert_eq!(
            l.allow_at("b", t0),
            Some(0),
            "causes are limited separately"
        );
        assert_eq!(l.allow_at("a", t0 + WINDOW), Some(2));
    }
}
