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
    /// The counters as a JSON object keyed by field name.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "forwarded_out": get(&self.forwarded_out),
            "forward_failed": get(&self.forward_failed),
            "forwarded_in": get(&self.forwarded_in),
            "peer_connects": get(&self.peer_connects),
            "peer_rejected": get(&self.peer_rejected),
        })
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
