//! The peer link's counters, shared by the client and server sides and read
//! by the metrics and status endpoints.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the peer link (relaxed atomics).
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Requests sent to their owner and answered.
    pub forwarded_out: AtomicU64,
    /// Forwards that failed: unknown peer, unreachable, timeout, closed.
    pub forward_failed: AtomicU64,
    /// Requests received from peers and handled.
    pub forwarded_in: AtomicU64,
    /// Successful outgoing TLS connections.
    pub peer_connects: AtomicU64,
    /// Incoming connections refused (TLS, identity, protocol or limit).
    pub peer_rejected: AtomicU64,
}

impl PeerStats {
    /// Each counter with its stable name (the JSON key and the metrics
    /// label), in name order.
    pub fn counts(&self) -> [(&'static str, u64); 5] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("forward_failed", get(&self.forward_failed)),
            ("forwarded_in", get(&self.forwarded_in)),
            ("forwarded_out", get(&self.forwarded_out)),
            ("peer_connects", get(&self.peer_connects)),
            ("peer_rejected", get(&self.peer_rejected)),
        ]
    }

    /// The counters as a JSON object keyed by name.
    pub fn to_json(&self) -> serde_json::Value {
        self.counts()
            .into_iter()
            .map(|(k, n)| (k.to_string(), serde_json::Value::from(n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_named_once_for_json_and_metrics() {
        let s = PeerStats::default();
        bump(&s.forwarded_out);
        bump(&s.forwarded_out);
        bump(&s.peer_rejected);
        let j = s.to_json();
        assert_eq!(j["forwarded_out"], 2);
        assert_eq!(j["peer_rejected"], 1);
        assert_eq!(j["forwarded_in"], 0);
        assert_eq!(j.as_object().map(|m| m.len()), Some(5));
        let names: Vec<&str> = s.counts().iter().map(|(k, _)| *k).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "distinct, in name order");
    }
}
