//! RADIUS over TLS (RadSec, RFC 6614) with RADIUS/TCP framing (RFC 6613).
//!
//! A TCP listener (port 2083 by default) accepts TLS 1.2 and 1.3 with a
//! mandatory client certificate chained to `radsec.ca`. Inside the handshake
//! the certificate is mapped to the first `[[radsec.client]]` whose matchers
//! (`cert_cn`, `cert_san_dns`, `cert_sha256`) all match it; a certificate of
//! another CA, or one no client matches, fails the handshake, is counted in
//! `radsec_rejected_certs` and logged with its subject and fingerprint.
//!
//! On an established connection packets follow each other, delimited by
//! their Length field. Each one runs through the same pipeline as a UDP
//! datagram ([`Node::handle_stream`]) under the connection's client, with
//! the shared secret "radsec" (RFC 6614 §2.3); several may be in progress
//! at once and replies are written as they complete, one whole packet at a
//! time. A packet the pipeline discards gets no reply and leaves the
//! connection open; a Length outside 20..=4096 or a stream cut inside a
//! packet closes it (RFC 6613 §2.6) and counts in `radsec_framing_errors`.
//! A connection with no request for `idle_timeout_secs` and none in
//! progress is closed; at shutdown connections stop reading, finish their
//! requests, write the replies and close.
//!
//! Challenge forwarding over the peer link is not used for RadSec requests:
//! a RadSec client keeps its connection to one node, which answers the
//! challenges it issued.

mod frame;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::clients::ClientEntry;
use crate::counters::{bump, Counters};
use crate::pipeline::Node;
use crate::tls_util::accept_connections;

pub use crate::config::{RadsecClient, RadsecSection, RadsecSettings};
pub use frame::{complete_packet, FrameReader, FramingError};
pub use tls::{CertIdentity, ClientMap, RadsecTls, TlsFileError, RADSEC_SECRET};

/// Time allowed for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of one connection in progress at once; reading pauses beyond
/// (the Identifier space allows 256 outstanding requests per connection).
const MAX_IN_FLIGHT: usize = 256;
/// Replies queued for the writer of one connection.
const WRITE_QUEUE: usize = 256;
/// A peer that reads nothing for this long while a reply waits is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the requests of one connection.
pub trait StreamHandler: Send + Sync + 'static {
    /// The reply to one packet, or `None` when it is silently discarded.
    fn handle(&self, packet: Vec<u8>) -> impl Future<Output = Option<Arc<[u8]>>> + Send;
}

/// The pipeline, for one authenticated connection.
struct NodeHandler {
    node: Arc<Node>,
    source: SocketAddr,
    client: Arc<ClientEntry>,
}

impl StreamHandler for NodeHandler {
    async fn handle(&self, packet: Vec<u8>) -> Option<Arc<[u8]>> {
        self.node
            .handle_stream(&packet, self.source, self.client.clone())
            .await
    }
}

/// Accepts RadSec connections on `listener` until `shutdown` is cancelled,
/// then lets the open connections finish their requests and returns.
pub async fn serve(
    listener: TcpListener,
    tls: RadsecTls,
    node: Arc<Node>,
    idle_timeout: Duration,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls.server_config());
    let refused = |addr: SocketAddr| {
        warn!(peer = %addr, max_connections, "too many RadSec connections; refusing one");
    };
    let start = |tcp: TcpStream, addr: SocketAddr| {
        let conn = Connection {
            acceptor: acceptor.clone(),
            tls: tls.clone(),
            node: node.clone(),
            idle_timeout,
            shutdown: shutdown.clone(),
        };
        let span = tracing::info_span!("radsec", peer = %addr);
        async move { conn.run(tcp, addr).await }.instrument(span)
    };
    let mut connections = accept_connections(
        &listener,
        max_connections,
        "RadSec",
        &shutdown,
        refused,
        start,
    )
    .await;
    while connections.join_next().await.is_some() {}
}

/// What one connection needs.
struct Connection {
    acceptor: TlsAcceptor,
    tls: RadsecTls,
    node: Arc<Node>,
    idle_timeout: Duration,
    shutdown: CancellationToken,
}

/// Whether a handshake failed because the client sent no certificate.
fn no_certificate(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::NoCertificatesPresented))
}

impl Connection {
    async fn run(self, tcp: TcpStream, addr: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let counters = self.node.counters().clone();
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp));
        let stream = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    if no_certificate(&e) {
                        bump(&counters.radsec_rejected_certs);
                        warn!("RadSec connection refused: the client presented no certificate");
                    } else {
                        // Certificate refusals were logged by the verifier.
                        info!(error = %e, "RadSec TLS handshake failed");
                    }
                    return;
                }
                Err(_) => {
                    info!("RadSec TLS handshake timed out");
                    return;
                }
            },
        };
        let (_, session) = stream.get_ref();
        let version = session.protocol_version();
        let Some(client) = session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| self.tls.client_for(c))
        else {
            // The verifier refuses such handshakes; this is a second guard.
            bump(&counters.radsec_rejected_certs);
            warn!("RadSec connection refused: its certificate maps to no client");
            return;
        };
        bump(&counters.radsec_connections);
        info!(client = %client.name, tls = ?version, "RadSec client connected");
        let name = client.name.clone();
        let handler = Arc::new(NodeHandler {
            node: self.node.clone(),
            source: addr,
            client,
        });
        let end = serve_stream(
            stream,
            handler,
            self.idle_timeout,
            &counters,
            self.shutdown.clone(),
        )
        .await;
        match end {
            StreamEnd::Framing(e) => {
                warn!(client = %name, error = %e, "RadSec connection closed: malformed framing")
            }
            other => info!(client = %name, reason = %other, "RadSec connection closed"),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The client closed it between packets.
    ClientClosed,
    /// No request within the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// A malformed Length, or the stream ended inside a packet.
    Framing(FramingError),
    /// Reading or writing failed.
    Io(String),
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamEnd::ClientClosed => f.write_str("closed by the client"),
            StreamEnd::Idle => f.write_str("idle timeout"),
            StreamEnd::Shutdown => f.write_str("server shutdown"),
            StreamEnd::Framing(e) => write!(f, "framing: {e}"),
            StreamEnd::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Serves the packets of one established stream with `handler` until the
/// client closes it, it stays idle for `idle`, its framing breaks, or
/// `shutdown`. Except after a framing or I/O error, requests in progress are
/// finished and their replies written before the stream is closed.
pub async fn serve_stream<S, H>(
    stream: S,
    handler: Arc<H>,
    idle: Duration,
    counters: &Counters,
    shutdown: CancellationToken,
) -> StreamEnd
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: StreamHandler,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Arc<[u8]>>(WRITE_QUEUE);
    // Cancelled when the stream must close without finishing.
    let abort = CancellationToken::new();
    let writer = tokio::spawn(write_replies(wr, rx, abort.clone()));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut frames = FrameReader::new();
    let mut deadline = Instant::now() + idle;
    let end = loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break StreamEnd::Shutdown,
            _ = abort.cancelled() => break StreamEnd::Io("cannot write to the client".into()),
            _ = tokio::time::sleep_until(deadline) => {
                deadline = Instant::now() + idle;
                if in_flight.available_permits() < MAX_IN_FLIGHT {
                    continue;
                }
                break StreamEnd::Idle;
            }
            r = frames.next_packet(&mut rd) => r,
        };
        let packet = match next {
            Ok(Some(p)) => p,
            Ok(None) => break StreamEnd::ClientClosed,
            Err(FramingError::Io(e)) => break StreamEnd::Io(e),
            Err(e) => {
                bump(&counters.radsec_framing_errors);
                break StreamEnd::Framing(e);
            }
        };
        deadline = Instant::now() + idle;
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break StreamEnd::Shutdown,
            _ = abort.cancelled() => break StreamEnd::Io("cannot write to the client".into()),
            p = in_flight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break StreamEnd::Shutdown,
            },
        };
        let (handler, tx) = (handler.clone(), tx.clone());
        // In the connection's span, so each request's lines name the peer.
        tokio::spawn(
            async move {
                let _permit = permit;
                if let Some(reply) = handler.handle(packet).await {
                    // The stream may be gone; the reply is then lost.
                    if tx.send(reply).await.is_err() {
                        debug!("reply for a closed RadSec connection dropped");
                    }
                }
            }
            .in_current_span(),
        );
    };
    if matches!(end, StreamEnd::Framing(_) | StreamEnd::Io(_)) {
        abort.cancel();
    }
    // The writer ends once every request still in progress has sent its
    // reply (all senders gone), then closes the stream.
    drop(tx);
    let _ = writer.await;
    end
}

/// Writes replies one whole packet at a time, in completion order; closes
/// the stream when every sender is gone. A write failure or a peer that
/// does not read cancels `abort`.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Arc<[u8]>>,
    abort: CancellationToken,
) {
    loop {
        let reply = tokio::select! {
            _ = abort.cancelled() => return,
            r = rx.recv() => r,
        };
        let Some(reply) = reply else {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.shutdown()).await;
            return;
        };
        let write = async {
            wr.write_all(&reply).await?;
            // Replies completed meanwhile go out in the same flush.
            while let Ok(more) = rx.try_recv() {
                wr.write_all(&more).await?;
            }
            wr.flush().await
        };
        let failed = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the client reads nothing".to_string(),
        };
        debug!(error = %failed, "cannot write to the RadSec client; closing");
        abort.cancel();
        return;
    }
}

#[cfg(test)]
mod tests;
