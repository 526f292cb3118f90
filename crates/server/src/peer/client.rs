//! Client side of the peer link: one persistent, multiplexed connection per
//! peer, opened on first use and re-opened after a failure.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::sync::{mpsc, oneshot, OwnedMutexGuard};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::frame::{read_frame, repl_frames, write_frames, Frame, MAX_PAYLOAD, MAX_RADIUS_PACKET};
use super::tls::{self, PeerTls};
use super::{bump, ForwardError, PeerStats};

/// After a failed connect, callers fail fast for this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Frames queued for the writer of one connection.
const WRITE_QUEUE: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends forwarded requests to their owners.
#[derive(Clone, Debug)]
pub struct PeerClient {
    inner: Arc<Inner>,
}

struct Inner {
    connector: TlsConnector,
    self_id: u16,
    peers: HashMap<u16, Arc<Peer>>,
    connect_timeout: Duration,
    stats: Arc<PeerStats>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut peers: Vec<_> = self.peers.iter().map(|(id, p)| (*id, p.addr)).collect();
        peers.sort_unstable();
        f.debug_struct("PeerClient")
            .field("self_id", &self.self_id)
            .field("peers", &peers)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// One peer: its address, its live connection, and the connect lock.
struct Peer {
    addr: SocketAddr,
    current: Mutex<Option<Arc<Conn>>>,
    /// Held while a connect attempt is in progress: at most one per peer.
    connecting: Arc<tokio::sync::Mutex<Backoff>>,
}

/// The outcome of the last failed connect.
#[derive(Default)]
struct Backoff {
    retry_at: Option<Instant>,
    last_error: String,
}

impl Peer {
    fn live(&self) -> Option<Arc<Conn>> {
        lock(&self.current)
            .as_ref()
            .filter(|c| c.is_open())
            .cloned()
    }
}

/// Requests awaiting their reply; `None` once the connection is closed.
type Pending = Mutex<Option<HashMap<u64, oneshot::Sender<Option<Vec<u8>>>>>>;

/// State shared by a connection's handle and its reader and writer tasks.
struct Shared {
    node: u16,
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    closed: CancellationToken,
}

impl Shared {
    /// Marks the connection closed and fails every waiting request.
    fn close(&self) {
        self.closed.cancel();
        lock(&self.pending).take();
    }
}

/// A handle on one connection; dropping the last one closes it.
struct Conn {
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Removes a request from the pending map when its caller gives up.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(map) = lock(&self.shared.pending).as_mut() {
            map.remove(&self.id);
        }
    }
}

impl Conn {
    fn is_open(&self) -> bool {
        !self.shared.closed.is_cancelled()
    }

    /// Sends one Forward and waits for its Reply.
    async fn request(
        &self,
        src: SocketAddr,
        packet: &[u8],
    ) -> Result<Option<Vec<u8>>, ForwardError> {
        self.call(packet.len(), |id| Frame::Forward {
            id,
            src,
            packet: packet.to_vec(),
        })
        .await
    }

    /// Sends the frame `make(id)` and waits for the answer with that id.
    async fn call(
        &self,
        len: usize,
        make: impl FnOnce(u64) -> Frame,
    ) -> Result<Option<Vec<u8>>, ForwardError> {
        let shared = &*self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = make(id)
            .encode()
            .map_err(|_| ForwardError::PacketTooLarge(len))?;
        let (reply_tx, reply_rx) = oneshot::channel();
        match lock(&shared.pending).as_mut() {
            Some(map) => map.insert(id, reply_tx),
            None => return Err(ForwardError::Closed),
        };
        let _guard = PendingGuard { shared, id };
        shared
            .tx
            .send(frame)
            .await
            .map_err(|_| ForwardError::Closed)?;
        reply_rx.await.map_err(|_| ForwardError::Closed)
    }
}

impl PeerClient {
    /// A client for `peers` (node id, peer-link address), identifying itself
    /// as `self_id`. No connection is opened until the first forward.
    pub fn new(
        tls: &PeerTls,
        self_id: u16,
        peers: Vec<(u16, SocketAddr)>,
        connect_timeout: Duration,
        stats: Arc<PeerStats>,
    ) -> PeerClient {
        let peers = peers
            .into_iter()
            .map(|(id, addr)| {
                let peer = Peer {
                    addr,
                    current: Mutex::new(None),
                    connecting: Arc::new(tokio::sync::Mutex::new(Backoff::default())),
                };
                (id, Arc::new(peer))
            })
            .collect();
        PeerClient {
            inner: Arc::new(Inner {
                connector: TlsConnector::from(tls.client_config()),
                self_id,
                peers,
                connect_timeout,
                stats,
            }),
        }
    }

    /// Whether an address is configured for `node`.
    pub fn knows(&self, node: u16) -> bool {
        self.inner.peers.contains_key(&node)
    }

    /// Sends `packet` (a RADIUS datagram received from `src`) to node `node`;
    /// returns the owner's reply datagram, or `None` when the owner chose
    /// not to answer (duplicate etc.). `timeout` bounds the whole call,
    /// connecting included (a connect is also bounded by the connect
    /// timeout). Never logs the packet.
    pub async fn forward(
        &self,
        node: u16,
        src: SocketAddr,
        packet: &[u8],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, ForwardError> {
        let result = self.try_forward(node, src, packet, timeout).await;
        match &result {
            Ok(_) => bump(&self.inner.stats.forwarded_out),
            Err(e) => {
                bump(&self.inner.stats.forward_failed);
                debug!(node, %src, error = %e, "forward failed");
            }
        }
        result
    }

    async fn try_forward(
        &self,
        node: u16,
        src: SocketAddr,
        packet: &[u8],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, ForwardError> {
        let peer = self
            .inner
            .peers
            .get(&node)
            .ok_or(ForwardError::UnknownPeer(node))?;
        if packet.len() > MAX_RADIUS_PACKET {
            return Err(ForwardError::PacketTooLarge(packet.len()));
        }
        let attempt = async {
            let conn = self.connection(node, peer).await?;
            conn.request(src, packet).await
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(Err(ForwardError::Timeout))
    }

    /// Replication: makes sure a connection to `node` is open (opening one if
    /// needed) and returns a token cancelled when it closes.
    pub async fn connect_to(&self, node: u16) -> Result<CancellationToken, ForwardError> {
        let peer = self
            .inner
            .peers
            .get(&node)
            .ok_or(ForwardError::UnknownPeer(node))?;
        let conn = self.connection(node, peer).await?;
        Ok(conn.shared.closed.clone())
    }

    /// Replication: closes the connection to `node`, if open (a silent
    /// peer); forwards in flight on it fail and the next use reconnects.
    pub fn disconnect(&self, node: u16) {
        if let Some(peer) = self.inner.peers.get(&node) {
            if let Some(conn) = lock(&peer.current).take() {
                conn.shared.close();
            }
        }
    }

    /// Replication: sends one encoded replication message to `node` over
    /// the open connection, cut into Repl frames; waits while the
    /// connection's write queue is full. Fails when no connection is open
    /// (the replication machine asks for one and sends again).
    pub async fn send_replication(&self, node: u16, message: &[u8]) -> Result<(), ForwardError> {
        let peer = self
            .inner
            .peers
            .get(&node)
            .ok_or(ForwardError::UnknownPeer(node))?;
        let conn = peer.live().ok_or(ForwardError::Closed)?;
        let frames =
            repl_frames(message).map_err(|_| ForwardError::PacketTooLarge(message.len()))?;
        for f in frames {
            conn.shared
                .tx
                .send(f)
                .await
                .map_err(|_| ForwardError::Closed)?;
        }
        Ok(())
    }

    /// Sends an admin request (JSON) to `node` (the primary) and returns its
    /// answer (JSON), within `timeout`.
    pub async fn admin(
        &self,
        node: u16,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ForwardError> {
        self.exchange(node, body, timeout, |id, body| Frame::Admin { id, body })
            .await
    }

    /// Sends a user's out-of-band answer (JSON) to `node` (the
    /// verification's owner) and returns what became of it (JSON), within
    /// `timeout`.
    pub async fn verdict(
        &self,
        node: u16,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ForwardError> {
        self.exchange(node, body, timeout, |id, body| Frame::Verdict { id, body })
            .await
    }

    /// Sends the frame `make(id, body)` to `node` and waits for its answer.
    async fn exchange(
        &self,
        node: u16,
        body: Vec<u8>,
        timeout: Duration,
        make: impl FnOnce(u64, Vec<u8>) -> Frame,
    ) -> Result<Vec<u8>, ForwardError> {
        let peer = self
            .inner
            .peers
            .get(&node)
            .ok_or(ForwardError::UnknownPeer(node))?;
        if body.len() > MAX_PAYLOAD {
            return Err(ForwardError::PacketTooLarge(body.len()));
        }
        let attempt = async {
            let conn = self.connection(node, peer).await?;
            conn.call(body.len(), |id| make(id, body)).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(Some(answer))) => Ok(answer),
            Ok(Ok(None)) => Err(ForwardError::Closed),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ForwardError::Timeout),
        }
    }

    /// The ids of the configured peers.
    pub fn peer_ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self.inner.peers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The address configured for `node`.
    pub fn address(&self, node: u16) -> Option<SocketAddr> {
        self.inner.peers.get(&node).map(|p| p.addr)
    }

    /// The live connection to `peer`, opening one if needed.
    async fn connection(&self, node: u16, peer: &Arc<Peer>) -> Result<Arc<Conn>, ForwardError> {
        if let Some(conn) = peer.live() {
            return Ok(conn);
        }
        let backoff = peer.connecting.clone().lock_owned().await;
        if let Some(conn) = peer.live() {
            return Ok(conn);
        }
        if let Some(at) = backoff.retry_at {
            if Instant::now() < at {
                return Err(ForwardError::Unreachable(backoff.last_error.clone()));
            }
        }
        // The attempt runs in its own task so that a caller giving up (its
        // timeout) does not abort it: its outcome is recorded either way.
        let task = tokio::spawn(connect(self.inner.clone(), node, peer.clone(), backoff));
        task.await
            .unwrap_or_else(|e| Err(ForwardError::Unreachable(format!("connect task: {e}"))))
    }
}

/// Opens a connection to `peer` and records the outcome; `backoff` is the
/// peer's connect lock, held until the outcome is recorded.
async fn connect(
    inner: Arc<Inner>,
    node: u16,
    peer: Arc<Peer>,
    mut backoff: OwnedMutexGuard<Backoff>,
) -> Result<Arc<Conn>, ForwardError> {
    match tls::connect(
        &inner.connector,
        peer.addr,
        node,
        inner.self_id,
        inner.connect_timeout,
    )
    .await
    {
        Ok(stream) => {
            bump(&inner.stats.peer_connects);
            info!(node, addr = %peer.addr, "peer link connected");
            backoff.retry_at = None;
            backoff.last_error.clear();
            let conn = Arc::new(start(stream, node));
            *lock(&peer.current) = Some(conn.clone());
            Ok(conn)
        }
        Err(e) => {
            warn!(node, addr = %peer.addr, error = %e, "cannot connect to peer");
            let reason = format!("node {node} at {}: {e}", peer.addr);
            backoff.retry_at = Some(Instant::now() + RETRY_AFTER);
            backoff.last_error.clone_from(&reason);
            Err(ForwardError::Unreachable(reason))
        }
    }
}

/// Starts the reader and writer tasks of a connected stream.
fn start<S>(stream: S, node: u16) -> Conn
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let shared = Arc::new(Shared {
        node,
        tx,
        pending: Mutex::new(Some(HashMap::new())),
        next_id: AtomicU64::new(1),
        closed: CancellationToken::new(),
    });
    tokio::spawn(reader(rd, shared.clone()));
    tokio::spawn(write_frames(wr, rx, shared.closed.clone()));
    Conn { shared }
}

/// Delivers Replies to their callers until the connection ends.
async fn reader<S: AsyncRead>(mut rd: ReadHalf<S>, shared: Arc<Shared>) {
    let node = shared.node;
    loop {
        let frame = tokio::select! {
            _ = shared.closed.cancelled() => break,
            f = read_frame(&mut rd) => f,
        };
        match frame {
            Ok(Some(Frame::AdminReply { id, body } | Frame::VerdictReply { id, body })) => {
                let waiter = lock(&shared.pending).as_mut().and_then(|m| m.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Some(body));
                }
            }
            Ok(Some(Frame::Reply { id, reply })) => {
                let waiter = lock(&shared.pending).as_mut().and_then(|m| m.remove(&id));
                match waiter {
                    // The caller may have gone meanwhile; nothing to do then.
                    Some(waiter) => {
                        let _ = waiter.send(reply);
                    }
                    None => debug!(node, id, "late or unknown reply dropped"),
                }
            }
            Ok(Some(_)) => {
                warn!(node, "unexpected frame from peer; closing the connection");
                break;
            }
            Ok(None) => {
                info!(node, "peer closed the connection");
                break;
            }
            Err(e) => {
                warn!(node, error = %e, "peer link read failed; closing the connection");
                break;
            }
        }
    }
    shared.close();
}
