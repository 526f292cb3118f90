//! The UDP listener loop: receive, hand each datagram to the pipeline in its
//! own task (bounded by a semaphore), send the reply from the same socket.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::counters::bump;
use crate::pipeline::Node;

/// Largest datagram we read (RFC 2865 packets are at most 4096 bytes; a
/// larger datagram is truncated and then fails the length check).
const RECV_BUF: usize = 4096 + 1;

/// Serves one socket until `shutdown`, then waits for in-flight requests.
pub async fn serve(
    socket: Arc<UdpSocket>,
    node: Arc<Node>,
    max_in_flight: usize,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(max_in_flight));
    let mut inflight = JoinSet::new();
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let (n, source) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some
                    // systems; they concern one peer, not the socket.
                    debug!(error = %e, "recv_from failed");
                    continue;
                }
            },
        };
        // Reap finished tasks so the set does not grow.
        while inflight.try_join_next().is_some() {}
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            bump(&node.counters().requests_received);
            bump(&node.counters().dropped_overload);
            continue;
        };
        let datagram = buf.get(..n).unwrap_or_default().to_vec();
        let node = node.clone();
        let socket = socket.clone();
        inflight.spawn(async move {
            let _permit = permit;
            if let Some(reply) = node.handle_datagram(&datagram, source).await {
                if let Err(e) = socket.send_to(&reply, source).await {
                    warn!(%source, error = %e, "cannot send the reply");
                }
            }
        });
    }
    while inflight.join_next().await.is_some() {}
}
