//! Circuit breaker: stop calling a gateway that keeps failing.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Circuit breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting one probe through (half-open).
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The externally visible state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down ended: one probe call goes through; its outcome closes or reopens.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_started: Option<Instant> },
}

/// A thread-safe circuit breaker. Time is passed in by the caller (`now`), so the
/// state machine is deterministic under test.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the
        // state is still a valid enum value.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`. False means: fail fast. In the half-open state a
    /// single probe is allowed; a probe that never reports (its future was dropped)
    /// is replaced by a new one after another cool-down.
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } => {
                if now >= until {
                    *inner = Inner::HalfOpen {
                        probe_started: Some(now),
                    };
                    true
                } else {
                    false
                }
            }
            Inner::HalfOpen { probe_started } => match probe_started {
                Some(started) if now.saturating_duration_since(started) < self.config.cool_down => {
                    false
                }
                _ => {
                    *inner = Inner::HalfOpen {
                        probe_started: Some(now),
                    };
                    true
                }
            },
        }
    }

    /// Reports a successful call: the breaker closes.
    pub fn on_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    /// Reports a failed call at `now`. Returns true when this failure opened the breaker.
    pub fn on_failure(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: now + self.config.cool_down,
        };
        match *inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    *inner = open;
                    true
                } else {
                    *inner = Inner::Closed { failures };
                    false
                }
            }
            Inner::HalfOpen { .. } => {
                *inner = open;
                true
            }
            // A call admitted before the breaker opened; keep the current cool-down.
            Inner::Open { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures() {
        let b = breaker();
        let now = Instant::now();
        assert!(!b.on_failure(now));
        assert!(!b.on_failure(now));
        assert_eq!(b.state(now), BreakerState::Closed);
        assert!(b.on_failure(now));
        assert_eq!(b.state(now), BreakerState::Open);
        assert!(!b.try_acquire(now));
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count() {
        let b = breaker();
        let now = Instant::now();
        b.on_failure(now);
        b.on_failure(now);
        b.on_success();
        b.on_failure(now);
        b.on_failure(now);
        assert_eq!(b.state(now), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_cool_down_then_closes_on_success() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!b.try_acquire(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(Instant::now()), BreakerState::HalfOpen);
        assert!(b.try_acquire(Instant::now()), "one probe allowed");
        assert!(!b.try_acquire(Instant::now()), "only one probe");
        b.on_success();
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
        assert!(b.try_acquire(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.try_acquire(Instant::now()));
        assert!(b.on_failure(Instant::now()));
        assert_eq!(b.state(Instant::now()), BreakerState::Open);
        assert!(!b.try_acquire(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn lost_probe_is_replaced_after_cool_down() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.try_acquire(Instant::now()));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.try_acquire(Instant::now()));
    }
}
