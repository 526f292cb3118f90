//! Exponential backoff between retries.

use std::time::Duration;

/// Exponential backoff: the delay before retry `n` (0-based) is
/// `min(initial * 2^n, max)`. Deterministic (no jitter), so tests can predict it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound for any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(700),
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(2), Duration::from_millis(400));
        assert_eq!(b.delay(3), Duration::from_millis(700));
        assert_eq!(b.delay(40), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn sleeping_the_backoff_advances_virtual_time() {
        let b = Backoff::default();
        let start = tokio::time::Instant::now();
        for n in 0..3 {
            tokio::time::sleep(b.delay(n)).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(200 + 400 + 800));
    }
}
