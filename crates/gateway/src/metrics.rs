//! Counters for each gateway operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::breaker::BreakerState;

/// Upper bounds (milliseconds) of the latency histogram buckets; one more bucket
/// counts everything slower (+Inf).
pub const LATENCY_BUCKETS_MS: [u64; 11] =
    [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/// A gateway operation, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `send_sms`.
    SendSms,
    /// `start_verification`.
    StartVerification,
    /// A verdict poll made by `wait_verdict`.
    PollVerdict,
}

/// A snapshot of the counters of one operation. Each HTTP attempt counts as one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpMetrics {
    /// HTTP attempts made.
    pub requests: u64,
    /// Attempts that failed (any error, including timeouts).
    pub errors: u64,
    /// Attempts that timed out (also counted in `errors`).
    pub timeouts: u64,
    /// Retries made (attempts after the first).
    pub retries: u64,
    /// Calls refused without any attempt because the circuit breaker was open.
    pub breaker_open: u64,
    /// Latency histogram, not cumulative: `latency_buckets[i]` counts attempts with
    /// latency <= `LATENCY_BUCKETS_MS[i]` and above the previous bound; the last
    /// element counts slower attempts.
    pub latency_buckets: [u64; 12],
    /// Sum of the latencies, in milliseconds.
    pub latency_sum_ms: u64,
}

/// A snapshot of all gateway metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayMetrics {
    /// `send_sms` counters.
    pub send_sms: OpMetrics,
    /// `start_verification` counters.
    pub start_verification: OpMetrics,
    /// Verdict poll counters.
    pub poll_verdict: OpMetrics,
    /// Times the circuit breaker went to the open state.
    pub breaker_opened: u64,
    /// The breaker state when the snapshot was taken.
    pub breaker_state: BreakerState,
}

#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    retries: AtomicU64,
    breaker_open: AtomicU64,
    buckets: [AtomicU64; 12],
    latency_sum_ms: AtomicU64,
}

impl OpCounters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn error(&self, timeout: bool) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if timeout {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn breaker_open(&self) {
        self.breaker_open.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn latency(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let idx = LATENCY_BUCKETS_MS
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        if let Some(b) = self.buckets.get(idx) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> OpMetrics {
        let mut latency_buckets = [0u64; 12];
        for (out, b) in latency_buckets.iter_mut().zip(self.buckets.iter()) {
            *out = b.load(Ordering::Relaxed);
        }
        OpMetrics {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            breaker_open: self.breaker_open.load(Ordering::Relaxed),
            latency_buckets,
            latency_sum_ms: self.latency_sum_ms.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) send_sms: OpCounters,
    pub(crate) start_verification: OpCounters,
    pub(crate) poll_verdict: OpCounters,
    pub(crate) breaker_opened: AtomicU64,
}

impl Counters {
    pub(crate) fn op(&self, op: Operation) -> &OpCounters {
        match op {
            Operation::SendSms => &self.send_sms,
            Operation::StartVerification => &self.start_verification,
            Operation::PollVerdict => &self.poll_verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_right_bucket() {
        let c = OpCounters::default();
        c.latency(Duration::from_millis(5));
        c.latency(Duration::from_millis(10));
        c.latency(Duration::from_millis(11));
        c.latency(Duration::from_secs(60));
        let s = c.snapshot();
        assert_eq!(s.latency_buckets[0], 2);
        assert_eq!(s.latency_buckets[1], 1);
        assert_eq!(s.latency_buckets[11], 1);
        assert_eq!(s.latency_sum_ms, 5 + 10 + 11 + 60_000);
    }

    #[test]
    fn error_counts_timeouts() {
        let c = OpCounters::default();
        c.error(true);
        c.error(false);
        let s = c.snapshot();
        assert_eq!((s.errors, s.timeouts), (2, 1));
    }
}
