//! Injected clocks: library logic takes `now` as a parameter; callers obtain it from a [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of the current time: Unix seconds (OTP steps, sessions,
/// locks), Unix milliseconds (audit timestamps) and a monotonic instant
/// (intervals: latency, duplicate windows, caches).
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now_unix(&self) -> u64;

    /// Milliseconds since 1970-01-01T00:00:00Z; by default
    /// [`Clock::now_unix`] in milliseconds.
    fn now_unix_ms(&self) -> u64 {
        self.now_unix().saturating_mul(1000)
    }

    /// A monotonic instant; by default the system's monotonic clock (a
    /// manual clock sets only the wall time).
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The system's wall clock. A time before the Unix epoch reads as 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock set by hand, for tests and simulations. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `t`.
    pub fn new(t: u64) -> Self {
        Self(Arc::new(AtomicU64::new(t)))
    }

    /// Sets the time to `t` (it may go backwards).
    pub fn set(&self, t: u64) {
        self.0.store(t, Ordering::SeqCst);
    }

    /// Moves the time forward by `d` seconds, saturating at `u64::MAX`.
    pub fn advance(&self, d: u64) {
        // The closure always returns Some, so fetch_update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(d))
            });
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_set_and_advance_shared_by_clones() {
        let c = ManualClock::new(100);
        let c2 = c.clone();
        assert_eq!(c.now_unix(), 100);
        c.advance(30);
        assert_eq!(c2.now_unix(), 130);
        c2.set(5);
        assert_eq!(c.now_unix(), 5);
        c.set(u64::MAX - 1);
        c.advance(10);
        assert_eq!(c.now_unix(), u64::MAX);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix() > 1_577_836_800);
        let (s, ms) = (SystemClock.now_unix(), SystemClock.now_unix_ms());
        assert!(ms / 1000 >= s && ms / 1000 <= s + 1, "{s} {ms}");
    }

    #[test]
    fn manual_clock_milliseconds_follow_its_seconds() {
        let c = ManualClock::new(100);
        assert_eq!(c.now_unix_ms(), 100_000);
    }
}
