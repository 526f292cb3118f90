//! Server side of the peer link: accepts authenticated peers and runs their
//! forwarded requests through a [`ForwardHandler`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::frame::{read_frame, write_frames, Frame, ReplAssembler, MAX_REPLY_PACKET};
use super::tls::{self, PeerTls};
use super::{bump, ForwardHandler, PeerStats};
use crate::tls_util::accept_connections;

/// Connections (authenticated or still in their handshake) served at once.
const MAX_CONNECTIONS: usize = 256;
/// Requests of one connection handled at once; reading pauses beyond.
const MAX_IN_FLIGHT: usize = 1024;
/// Reply frames queued for the writer of one connection.
const WRITE_QUEUE: usize = 1024;

/// Accepts peer connections on `listener` until `shutdown` is cancelled,
/// then closes the open connections and returns.
///
/// Each connection must complete the TLS handshake (client certificate from
/// the cluster CA) within 5 s and then send a Hello whose node id its
/// certificate names and which is one of `peers` (the configured
/// `[[cluster.peer]]` ids): a certificate cannot be revoked, so removing a
/// node from the configuration is what shuts it out. Its Forward requests
/// are handled concurrently (at most 1024 at a time) and answered as they
/// complete.
pub async fn serve(
    listener: TcpListener,
    tls: PeerTls,
    peers: HashSet<u16>,
    handler: Arc<dyn ForwardHandler>,
    stats: Arc<PeerStats>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls.server_config());
    let peers = Arc::new(peers);
    let refused = |addr: SocketAddr| {
        bump(&stats.peer_rejected);
        warn!(%addr, "too many peer connections; refusing one");
    };
    let start = |tcp: TcpStream, addr: SocketAddr| {
        let conn = Connection {
            acceptor: acceptor.clone(),
            peers: peers.clone(),
            handler: handler.clone(),
            stats: stats.clone(),
            closed: shutdown.child_token(),
        };
        conn.run(tcp, addr)
    };
    let mut connections = accept_connections(
        &listener,
        MAX_CONNECTIONS,
        "peer link",
        &shutdown,
        refused,
        start,
    )
    .await;
    connections.shutdown().await;
    Ok(())
}

/// What one connection needs.
struct Connection {
    acceptor: TlsAcceptor,
    /// The node ids allowed to connect.
    peers: Arc<HashSet<u16>>,
    handler: Arc<dyn ForwardHandler>,
    stats: Arc<PeerStats>,
    /// Cancelled at shutdown and when this connection ends.
    closed: CancellationToken,
}

impl Connection {
    async fn run(self, tcp: TcpStream, addr: SocketAddr) {
        // However this ends (including abort), the writer task stops.
        let _close = self.closed.clone().drop_guard();
        let (stream, node) = match tls::accept(&self.acceptor, tcp).await {
            Ok(x) => x,
            Err(reason) => {
                bump(&self.stats.peer_rejected);
                warn!(%addr, %reason, "peer connection refused");
                return;
            }
        };
        if !self.peers.contains(&node) {
            bump(&self.stats.peer_rejected);
            warn!(%addr, node, "peer connection refused: node {node} is not a [[cluster.peer]] of this node (its certificate is valid; add the peer to the configuration, or it stays shut out)");
            return;
        }
        info!(%addr, node, "peer connected");
        let (mut rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_frames(wr, rx, self.closed.clone()));
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut repl = ReplAssembler::default();
        loop {
            let frame = tokio::select! {
                _ = self.closed.cancelled() => break,
                f = read_frame(&mut rd) => f,
            };
            let (id, src, packet) = match frame {
                Ok(Some(Frame::Forward { id, src, packet })) => (id, src, packet),
                Ok(Some(Frame::Repl { more, data })) => match repl.push(more, &data) {
                    Ok(Some(message)) => {
                        self.handler.replication(node, message);
                        continue;
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(%addr, node, error = %e, "replication message too large; closing the connection");
                        break;
                    }
                },
                Ok(Some(Frame::Admin { id, body })) => {
                    let answer = self.handler.admin(node, body);
                    answer_later(tx.clone(), node, answer, move |body| Frame::AdminReply {
                        id,
                        body,
                    });
                    continue;
                }
                Ok(Some(Frame::Verdict { id, body })) => {
                    let answer = self.handler.verdict(node, body);
                    answer_later(tx.clone(), node, answer, move |body| Frame::VerdictReply {
                        id,
                        body,
                    });
                    continue;
                }
                Ok(Some(_)) => {
                    warn!(%addr, node, "unexpected frame from peer; closing the connection");
                    break;
                }
                Ok(None) => {
                    info!(%addr, node, "peer disconnected");
                    break;
                }
                Err(e) => {
                    warn!(%addr, node, error = %e, "bad frame from peer; closing the connection");
                    break;
                }
            };
            let permit = tokio::select! {
                _ = self.closed.cancelled() => break,
                p = in_flight.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let reply = self.handler.handle(node, src, packet);
            let (tx, stats) = (tx.clone(), self.stats.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let mut reply = reply.await;
                bump(&stats.forwarded_in);
                if reply.as_ref().is_some_and(|r| r.len() > MAX_REPLY_PACKET) {
                    warn!(node, %src, "reply too large for the peer link; not sent");
                    reply = None;
                }
                match (Frame::Reply { id, reply }).encode() {
                    Ok(frame) => {
                        // The connection may be gone; the reply is then lost,
                        // and the requesting node times out.
                        if tx.send(frame).await.is_err() {
                            debug!(node, id, "reply for a closed peer connection dropped");
                        }
                    }
                    Err(e) => warn!(node, error = %e, "cannot encode a reply"),
                }
            });
        }
    }
}

/// Sends the frame `reply(answer)` once `answer` is ready (Admin and
/// Verdict requests run in their own task; the connection may be gone by
/// then, and the answer with it).
fn answer_later(
    tx: mpsc::Sender<Vec<u8>>,
    node: u16,
    answer: std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send + 'static>>,
    reply: impl FnOnce(Vec<u8>) -> Frame + Send + 'static,
) {
    tokio::spawn(async move {
        let body = answer.await;
        match reply(body).encode() {
            Ok(frame) => {
                let _ = tx.send(frame).await;
            }
            Err(e) => warn!(node, error = %e, "cannot encode an answer"),
        }
    });
}
