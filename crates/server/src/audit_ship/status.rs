//! What the audit shipper says about itself (`radmfa status`, the API's
//! cluster view, the benchmark's lag figure): where it ships, how far the
//! primary has acknowledged, and the lag from a record's time to its
//! acknowledgement. Shared by the sender task and the replication status.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

/// Lag samples kept for the percentiles (the most recent ones).
const LAG_SAMPLES: usize = 16_384;

/// The shipper's state, updated by the sender task.
#[derive(Debug, Default)]
pub struct ShipState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    target: Option<u16>,
    acked: u64,
    shipped: u64,
    last_error: Option<String>,
    lags_ms: VecDeque<u64>,
}

/// `radmfa status`: audit shipping of this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditShipView {
    /// The primary records go to (none on the primary itself).
    pub target: Option<u16>,
    /// Everything of this node's journal up to this sequence is on it.
    pub acked_seq: u64,
    /// The sequence this node's next record gets.
    pub next_seq: u64,
    /// Records shipped since start.
    pub shipped: u64,
    /// Lag from a record's time to the primary's acknowledgement, p50 and
    /// p99 over the last shipped records (ms).
    pub lag_p50_ms: Option<u64>,
    /// See `lag_p50_ms`.
    pub lag_p99_ms: Option<u64>,
    /// Why the last attempt failed (cleared by the next success).
    pub last_error: Option<String>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ShipState {
    /// Records now go to `target` (`None`: this node is the primary), which
    /// holds this node's records up to `acked`.
    pub fn set_target(&self, target: Option<u16>, acked: u64) {
        let mut st = lock(&self.inner);
        st.target = target;
        st.acked = acked;
    }

    /// A batch was acknowledged up to `acked`; `lags_ms` of its records.
    pub fn acked(&self, acked: u64, lags_ms: impl Iterator<Item = u64>) {
        let mut st = lock(&self.inner);
        st.acked = acked;
        st.last_error = None;
        for lag in lags_ms {
            st.shipped += 1;
            if st.lags_ms.len() == LAG_SAMPLES {
                st.lags_ms.pop_front();
            }
            st.lags_ms.push_back(lag);
        }
    }

    /// The last attempt failed.
    pub fn failed(&self, error: String) {
        lock(&self.inner).last_error = Some(error);
    }

    /// The view, with `next_seq` from the journal.
    pub fn view(&self, next_seq: u64) -> AuditShipView {
        let st = lock(&self.inner);
        let mut lags: Vec<u64> = st.lags_ms.iter().copied().collect();
        lags.sort_unstable();
        let pct = |p: usize| lags.get(lags.len().saturating_sub(1) * p / 100).copied();
        AuditShipView {
            target: st.target,
            acked_seq: st.acked,
            next_seq,
            shipped: st.shipped,
            lag_p50_ms: pct(50),
            lag_p99_ms: pct(99),
            last_error: st.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_recent_lags() {
        let s = ShipState::default();
        assert_eq!(s.view(5).lag_p99_ms, None);
        s.acked(10, 1..=100);
        let v = s.view(11);
        assert_eq!(
            (v.lag_p50_ms, v.lag_p99_ms, v.shipped),
            (Some(50), Some(99), 100)
        );
        assert_eq!((v.acked_seq, v.next_seq), (10, 11));
    }
}
