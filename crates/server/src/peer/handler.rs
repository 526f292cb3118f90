//! [`ForwardHandler`]: what the server side of the link hands each request
//! to. Its own file so the server side and the node that implements it share
//! it without either depending on the other.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

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

    /// Delivers a user's out-of-band answer (JSON, `callback::Answer`) that
    /// peer `from_node` received for a verification of this node; returns
    /// what became of it (JSON, `callback::Delivered`).
    fn verdict(
        &self,
        from_node: u16,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send + 'static>> {
        let _ = (from_node, body);
        Box::pin(async { br#""unknown""#.to_vec() })
    }
}
