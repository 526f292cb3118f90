//! [`Throttle`]: at most one log line a minute about one kind of trouble,
//! with the number of occurrences since the last line, so a failure that
//! hits every request (a gateway down under ten thousand logins) is said at
//! the default level once, with its remedy, without flooding the log. A
//! leaf module: the pipeline and the callback handlers both use it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds between two lines about the same trouble.
const EVERY_SECS: u64 = 60;

/// Counts occurrences and says when a line is due.
#[derive(Debug, Default)]
pub struct Throttle {
    /// Unix seconds of the last line (0: never).
    last: AtomicU64,
    /// Occurrences since the last line.
    since: AtomicU64,
}

impl Throttle {
    /// Records one occurrence at `now` (unix seconds); returns how many
    /// there were since the last line (this one included) when a line is
    /// due now, else `None`.
    pub fn due(&self, now: u64) -> Option<u64> {
        let count = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last.load(Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < EVERY_SECS)
            || self
                .last
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        self.since.store(0, Ordering::Relaxed);
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_with_the_count_since_the_last() {
        let t = Throttle::default();
        assert_eq!(t.due(1000), Some(1));
        for s in 1..60 {
            assert_eq!(t.due(1000 + s), None);
        }
        assert_eq!(t.due(1060), Some(60));
        assert_eq!(t.due(1061), None);
    }
}
