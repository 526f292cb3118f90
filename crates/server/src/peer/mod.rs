//! The peer link: TCP with mutual TLS between the nodes of a cluster.
//!
//! Used for challenge forwarding (DESIGN.md §5): a node that receives the
//! second request of a challenge owned by another node sends the raw RADIUS
//! datagram and the NAS address to the owner, which runs its pipeline on it
//! and returns its reply datagram (or nothing). Replication (DESIGN.md §6)
//! uses the same transport (port 4443): each node sends its replication
//! messages to a peer over its own outgoing connection to that peer, cut
//! into Repl frames; replicas forward admin writes to the primary as Admin
//! frames.
//!
//! # Security
//! A cluster CA ([`generate_ca`]) signs one certificate per node
//! ([`generate_node_cert`]) carrying the DNS name [`node_server_name`]. The
//! client verifies that the server's chain leads to the cluster CA and names
//! the node it wants; the server requires a client certificate chained to
//! the cluster CA and, after the client's Hello, that the certificate names
//! the node id the Hello claims and that this id is one of its configured
//! `[[cluster.peer]]` entries (certificates cannot be revoked: removing a
//! node from the peers' configuration shuts it out). TLS 1.3 only, no
//! session resumption.
//!
//! # Frames
//! Every frame on the TLS stream is
//!
//! ```text
//! u32 BE  length of the rest (9 ..= 9 + 16 MiB)
//! u8      kind
//! u64 BE  request id
//! ...     payload (kind specific)
//! ```
//!
//! | kind | name    | direction        | payload                                                     |
//! |------|---------|------------------|-------------------------------------------------------------|
//! | 1    | Hello   | client -> server | u16 BE node id, u8 protocol version (1); request id 0       |
//! | 2    | Forward | client -> server | u8 family (4 or 6), 4 or 16 bytes IP, u16 BE port, datagram |
//! | 3    | Reply   | server -> client | u8 status: 0 = datagram follows, 1 = no reply (nothing after)|
//! | 4    | Repl    | client -> server | u8 0 = last piece, 1 = more follow; a piece of a replication message; id 0 |
//! | 5    | Admin   | client -> server | an admin request (JSON) a replica forwards to the primary   |
//! | 6    | AdminReply | server -> client | the answer (JSON) to the Admin frame with the same id    |
//!
//! The Hello is the client's first frame and is sent once; a first frame
//! whose length prefix exceeds a Hello's is refused before its body is read. A Reply carries
//! the request id of its Forward; replies come back in completion order, not
//! request order. Any malformed frame, trailing byte, oversized length or
//! unknown kind closes the connection (other kinds are reserved for later
//! services, which will announce themselves through the protocol version).

mod client;
mod frame;
mod pki;
mod server;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

pub use client::PeerClient;
pub use pki::{generate_ca, generate_node_cert, Pem};
pub use server::serve;
pub use tls::PeerTls;

/// The DNS name in the certificate of node `node_id`:
/// `node-{id}.radmfa.cluster`.
pub fn node_server_name(node_id: u16) -> String {
    format!("node-{node_id}.radmfa.cluster")
}

/// Errors of the peer link set-up: certificates, keys, files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// TLS material is invalid or could not be generated.
    #[error("{0}")]
    Tls(String),
    /// A PEM file could not be read or used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Input/output.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// No address is configured for this node id.
    #[error("no peer with node id {0}")]
    UnknownPeer(u16),
    /// The owner could not be reached (connection refused, TLS failure, or
    /// a recent failure still in its back-off period).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// No answer within the time allowed.
    #[error("peer did not answer in time")]
    Timeout,
    /// The connection closed before the answer came.
    #[error("peer connection closed")]
    Closed,
    /// The datagram does not fit in a frame (cannot happen with RADIUS
    /// datagrams, which are at most 4096 bytes).
    #[error("datagram of {0} bytes is too large to forward")]
    PacketTooLarge(usize),
}

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
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the server side of the link calls for each forwarded request.
pub trait ForwardHandler: Send + Sync + 'static {
    /// Handles `packet`, received by peer `from_node` (authenticated by its
    /// certificate) from the NAS at `src`. Returns the reply datagram, or
    /// `None` when nothing is to be sent.
    fn handle(
        &self,
        from_node: u16,
        src: SocketAddr,
        packet: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'static>>;

    /// Receives one whole replication message (encoded with
    /// `radmfa_store::repl::wire`) from peer `from_node`. Must not block:
    /// queue it. Nodes without replication drop it.
    fn replication(&self, from_node: u16, message: Vec<u8>) {
        tracing::debug!(
            from_node,
            len = message.len(),
            "replication message ignored: replication is not running"
        );
    }

    /// Runs an admin request (JSON, as on the control socket) that replica
    /// `from_node` forwarded to this node; returns the answer (JSON).
    fn admin(
        &self,
        from_node: u16,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send + 'static>> {
        let _ = (from_node, body);
        Box::pin(async {
            br#"{"ok":false,"error":"this node does not take forwarded admin requests"}"#.to_vec()
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
