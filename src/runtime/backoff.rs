//! One back-off policy for retries (accept errors, reconnects, reconciles): exponential with
//! jitter, never giving up. `backon` is already in the tree through kube-runtime, whose watchers
//! use the same crate, so there is one implementation of the arithmetic in the binary.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays from `min` doubling to `max`, with jitter, forever.
pub fn exponential(min: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// A resettable back-off: `next()` gives the next delay, `reset()` starts over after a success.
pub struct Backoff {
    min: Duration,
    max: Duration,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            delays: Box::new(exponential(min, max)),
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }

    pub fn reset(&mut self) {
        self.delays = Box::new(exponential(self.min, self.max));
    }
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff")
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_never_end() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        // Jitter adds up to one more delay on top; the cap holds before jitter.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(160)),
            "{delays:?}"
        );
        assert!(delays[10] >= Duration::from_millis(80), "{delays:?}");
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(40));
    }
}
