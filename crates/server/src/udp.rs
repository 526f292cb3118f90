//! The UDP listener loop: receive a datagram, run the pipeline on it, send the
//! reply from the same socket. A request that completes without waiting
//! (the common case: cached credentials, TOTP) is finished inline with no
//! task spawned; one that has to wait (argon2 on the blocking pool, later an
//! out-of-band verification) continues in its own task. A semaphore bounds
//! the requests in progress.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::counters::bump;
use crate::pipeline::Node;

/// Largest datagram we read (RFC 2865 packets are at most 4096 bytes; a
/// larger datagram is truncated and then fails the length check).
const RECV_BUF: usize = 4096 + 1;

/// Serves one socket until `shutdown`, then waits for requests in progress.
pub async fn serve(
    socket: Arc<UdpSocket>,
    node: Arc<Node>,
    max_in_flight: usize,
    shutdown: CancellationToken,
) {
    let max_in_flight = u32::try_from(max_in_flight).unwrap_or(u32::MAX >> 3).max(1);
    let limit = Arc::new(Semaphore::new(max_in_flight as usize));
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            bump(&node.counters().requests_received);
            bump(&node.counters().dropped_overload);
            node.note_overload(source);
            continue;
        };
        let datagram = buf.get(..n).unwrap_or_default().to_vec();
        let node = node.clone();
        let socket = socket.clone();
        let mut request = Box::pin(async move {
            let _permit = permit;
            if let Some(reply) = node.handle_datagram(&datagram, source).await {
                if let Err(e) = socket.send_to(&reply, source).await {
                    warn!(%source, error = %e, "cannot send the reply");
                }
            }
        });
        // Run it inline as far as it goes; hand it to a task only if it waits.
        let mut cx = Context::from_waker(Waker::noop());
        if request.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(request);
        }
    }
    // Every permit back means every request has been answered.
    let _ = limit.acquire_many(max_in_flight).await;
}
