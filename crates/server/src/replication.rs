//! The replication driver (DESIGN.md §6): runs the store's sans-io
//! [`Machine`] on a thread of its own and carries out its actions over the
//! peer link.
//!
//! * **Events in:** a tick every [`TICK`]; `Connected` / `Disconnected` from
//!   the outgoing peer connections; `Received` for every replication message
//!   the peer-link server reassembles; `Promote` from `radmfa promote`.
//! * **Actions out:** `Persist` is written to the store first (role and
//!   epoch, flushed) so a restart resumes where the machine was; `Send`
//!   encodes the message ([`radmfa_store::repl::wire`]) and queues it for the
//!   peer's sender task; `Connect` / `Disconnect` open or close the outgoing
//!   connection.
//! * **Store:** the primary's admin writes go straight to the store, which
//!   appends their changelog entries in the same transaction; the machine
//!   pushes them to idle replicas on the next tick. When replication changes
//!   the data under the node (applied changes, an installed snapshot), the
//!   node's caches are refreshed through the callback given at start.
//! * A thread rather than a task: applying a batch, taking or installing a
//!   snapshot of a million users are blocking sled work.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use radmfa_store::repl::{wire, Action, Event, Machine, Msg, NodeId, Role, Status, Timing};
use radmfa_store::{Store, TREE_OTP_STATE, TREE_TOKENS, TREE_USERS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc as tmpsc;
use tracing::{debug, error, info, warn};

use crate::audit_ship::status::{AuditShipView, ShipState};
use crate::peer::PeerClient;

/// A node's role as `radmfa status` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Takes writes.
    Primary,
    /// Follows the primary.
    Replica,
    /// No replication configured.
    Standalone,
}

/// What `radmfa status` answers: a clustered node's replication state, or
/// a standalone node's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplStatus {
    /// Replication is configured.
    Clustered(ClusterStatus),
    /// No `[cluster]` replication.
    Standalone(StandaloneStatus),
}

/// A standalone node (`replication` is always false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandaloneStatus {
    /// This node.
    pub node_id: NodeId,
    /// Always [`NodeRole::Standalone`].
    pub role: NodeRole,
    /// Always false.
    pub replication: bool,
}

/// A clustered node's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: NodeId,
    /// Primary or replica.
    pub role: NodeRole,
    /// Current epoch.
    pub epoch: u64,
    /// Last applied change.
    pub last_seq: u64,
    /// Its epoch.
    pub last_epoch: u64,
    /// The primary, when known.
    pub primary: Option<NodeId>,
    /// Since when a replica cannot reach its primary (RFC 3339).
    pub primary_unreachable_since: Option<String>,
    /// Whether the replica confirmed its copy is complete.
    pub synced: bool,
    /// Installing a snapshot from the primary.
    pub installing_snapshot: bool,
    /// The replicas (on the primary).
    pub replicas: Vec<ReplicaView>,
    /// The last replication error.
    pub last_error: Option<String>,
    /// Audit shipping of this node's records to the primary.
    #[serde(default)]
    pub audit_shipping: Option<AuditShipView>,
}

/// One replica as the primary sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// The replica.
    pub node_id: NodeId,
    /// Its peer-link address, when configured.
    pub address: Option<String>,
    /// Last change it acknowledged.
    pub acked_seq: u64,
    /// How many changes behind.
    pub lag_entries: u64,
    /// Milliseconds since it was last heard from.
    pub last_seen_ms_ago: u64,
    /// A connection to it is up.
    pub connected: bool,
}

/// How often the machine is ticked.
pub const TICK: Duration = Duration::from_millis(10);
/// Encoded messages queued per peer before new ones are dropped (the
/// machine repeats what matters).
const OUTBOX: usize = 256;
/// How often the changelog is trimmed.
const TRIM_EVERY: Duration = Duration::from_secs(30);
/// Trimming waits until no snapshot part was served for this long.
const SNAPSHOT_QUIET: Duration = Duration::from_secs(2);
/// Bytes of received messages waiting for the driver, at most. Real traffic
/// is one change batch or one snapshot part in flight per peer (a few MiB);
/// a peer sending faster than the driver applies (broken or hostile) must
/// not fill the memory. Beyond it messages are dropped: the machine asks
/// again for what it misses.
const MAX_INBOUND_BYTES: usize = 512 << 20;

/// Bytes queued for the driver (see [`MAX_INBOUND_BYTES`]).
#[derive(Debug, Default)]
struct Inbound(std::sync::atomic::AtomicUsize);

impl Inbound {
    /// Counts `len` more bytes unless that would exceed `max`.
    fn admit(&self, len: usize, max: usize) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                q.checked_add(len).filter(|n| *n <= max)
            })
            .is_ok()
    }

    /// The driver took a message of `len` bytes.
    fn done(&self, len: usize) {
        self.0.fetch_sub(len, Ordering::SeqCst);
    }
}

/// What the driver thread is told.
enum Cmd {
    Event(Event),
    /// Raw message from a peer (decoded on the driver thread).
    Received(NodeId, Vec<u8>),
    Promote(std::sync::mpsc::Sender<Status>),
    Stop,
}

/// Which users' data replication changed, for the node's caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Some keys changed.
    Keys {
        /// Users whose record or token changed.
        users: Vec<String>,
        /// Users whose token or replay state changed.
        otp: Vec<String>,
    },
    /// Everything may have changed (a snapshot was installed).
    All,
}

/// The running replication of one node.
pub struct Replication {
    tx: mpsc::Sender<Cmd>,
    status: Arc<Mutex<Status>>,
    peers: PeerClient,
    /// Node id to peer-link address, for messages.
    addresses: HashMap<NodeId, SocketAddr>,
    started_unix: u64,
    origin: Instant,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The changelog trimmer: its stop channel and thread.
    trimmer: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    store: Store,
    rt: tokio::runtime::Handle,
    /// Consumed OTP steps could not reach the primary (said once).
    otp_local_only: Arc<AtomicBool>,
    /// Received messages not yet taken by the driver.
    inbound: Arc<Inbound>,
    /// A message was dropped over [`MAX_INBOUND_BYTES`] (said once).
    inbound_full: AtomicBool,
    /// Audit shipping (`audit_ship/`), shown in the status.
    audit: Arc<ShipState>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds since `origin`.
fn ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Replication {
    /// Starts replication for node `id` with `peers`, on `store`, sending
    /// through `client` and spawning its I/O on `rt`. `on_change` is called
    /// (on the driver thread) after replication changed the data.
    pub fn start(
        id: NodeId,
        peers: Vec<(NodeId, SocketAddr)>,
        store: Store,
        client: PeerClient,
        changelog_keep: u64,
        rt: tokio::runtime::Handle,
        on_change: Box<dyn Fn(Changed) + Send>,
    ) -> std::io::Result<Arc<Replication>> {
        let (role, epoch) = store.repl_state();
        let peer_ids: Vec<NodeId> = peers.iter().map(|(p, _)| *p).collect();
        // Snapshots go in parts of about 2 MiB, each asked for by the
        // replica when the one before arrives (it installs that one while
        // the primary reads the next): neither side holds more than two
        // parts, and a replica that stops asking for 5 s (its first part
        // was lost) gets a new snapshot when it pulls again.
        let timing = Timing {
            snapshot_retry_ms: 5_000,
            dead_after_ms: 5_000,
            snapshot_part_bytes: 2 << 20,
            ..Timing::default()
        };
        let machine = Machine::with_timing(id, peer_ids.clone(), role, epoch, timing);
        let status = Arc::new(Mutex::new(machine.status()));
        let (tx, rx) = mpsc::channel();
        let origin = Instant::now();
        let started_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let inbound = Arc::new(Inbound::default());
        let mut outboxes = HashMap::new();
        for &p in &peer_ids {
            let (otx, orx) = tmpsc::channel::<Vec<u8>>(OUTBOX);
            rt.spawn(sender(client.clone(), p, orx));
            outboxes.insert(p, otx);
        }
        let driver = Driver {
            machine,
            store: store.clone(),
            client: client.clone(),
            rt: rt.clone(),
            tx: tx.clone(),
            outboxes,
            watching: peer_ids
                .iter()
                .map(|&p| (p, Arc::new(AtomicBool::new(false))))
                .collect(),
            status: status.clone(),
            origin,
            on_change,
            inbound: inbound.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("radmfa-replication".into())
            .spawn(move || driver.run(rx))?;
        // Trimming runs beside the driver: a store imported or restored in
        // bulk may hold millions of entries, which take minutes to remove,
        // and the driver must go on serving meanwhile.
        let (trim_stop, trim_rx) = mpsc::channel::<()>();
        let trim_store = store.clone();
        let trimmer = std::thread::Builder::new()
            .name("radmfa-trim".into())
            .spawn(move || trim_loop(&trim_store, changelog_keep, &trim_rx))?;
        info!(
            node = id,
            ?role,
            epoch,
            peers = peers.len(),
            "replication started"
        );
        Ok(Arc::new(Replication {
            tx,
            status,
            peers: client,
            addresses: peers.into_iter().collect(),
            started_unix,
            origin,
            thread: Mutex::new(Some(thread)),
            trimmer: Mutex::new(Some((trim_stop, trimmer))),
            store,
            rt,
            otp_local_only: Arc::new(AtomicBool::new(false)),
            inbound,
            inbound_full: AtomicBool::new(false),
            audit: Arc::new(ShipState::default()),
        }))
    }

    /// TOTP steps / HOTP counters consumed on this node (from the OTP
    /// writer thread): logged by the primary so every node refuses them. A
    /// replica sends them to the primary; with the primary unreachable,
    /// replay protection is node-local until it is back (logged once).
    pub fn otp_advanced(&self, steps: Vec<(String, u64)>) {
        if self.is_primary() {
            if let Err(e) = self.store.advance_otp_states_logged(&steps) {
                debug!(error = %e, "OTP steps not logged for the replicas");
            }
            return;
        }
        let local_only = self.otp_local_only.clone();
        let target = match self.write_target() {
            Ok(p) => p,
            Err(reason) => {
                if !local_only.swap(true, Ordering::SeqCst) {
                    warn!(%reason, "replay protection is node-local until the primary is reachable again");
                }
                return;
            }
        };
        let body =
            match serde_json::to_vec(&crate::admin::request::AdminRequest::OtpAdvance { steps }) {
                Ok(b) => b,
                Err(_) => return,
            };
        let peers = self.peers.clone();
        self.rt.spawn(async move {
            match peers.admin(target, body, Duration::from_secs(5)).await {
                Ok(_) => {
                    if local_only.swap(false, Ordering::SeqCst) {
                        info!("replay protection is cluster-wide again");
                    }
                }
                Err(e) => {
                    if !local_only.swap(true, Ordering::SeqCst) {
                        warn!(error = %e, "replay protection is node-local until the primary is reachable again");
                    }
                }
            }
        });
    }

    /// Hands a message received from `from` to the machine.
    /// Dropped when [`MAX_INBOUND_BYTES`] are already waiting.
    pub fn received(&self, from: NodeId, message: Vec<u8>) {
        let len = message.len();
        if !self.inbound.admit(len, MAX_INBOUND_BYTES) {
            if self.inbound_full.swap(true, Ordering::Relaxed) {
                debug!(from, len, "replication message dropped: the queue is full");
            } else {
                warn!(from, len, "replication messages from peers arrive faster than this node applies them; dropping them until the queue drains (the nodes ask again). If this repeats, check node {from}'s version and this node's disk");
            }
            return;
        }
        if self.tx.send(Cmd::Received(from, message)).is_err() {
            self.inbound.done(len);
        }
    }

    /// The machine's latest status.
    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Whether this node is the primary.
    pub fn is_primary(&self) -> bool {
        lock(&self.status).role == Role::Primary
    }

    /// Promotes this node to primary at epoch + 1 and returns the new
    /// status. Refused (an error naming why) when the node is not known to
    /// hold everything its primary acknowledged, unless `force`.
    pub fn promote(&self, force: bool) -> Result<Status, String> {
        let st = self.status();
        if st.role == Role::Primary {
            return Err(format!(
                "node {} is already the primary (epoch {})",
                st.id, st.epoch
            ));
        }
        if !st.synced && !force {
            return Err(format!(
                "node {} has not confirmed with a primary of epoch {} that its copy is complete \
                 (it may miss writes, or hold writes fenced by a later promotion); promote \
                 another replica, or repeat with --force to accept that",
                st.id, st.epoch
            ));
        }
        let (reply, answer) = std::sync::mpsc::channel();
        self.tx
            .send(Cmd::Promote(reply))
            .map_err(|_| "replication has stopped".to_string())?;
        answer
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "replication did not answer".to_string())
    }

    /// Where to send a write this replica refused: the primary's node id, or
    /// the message the admin gets (`read-only: primary ... unreachable since
    /// ...`).
    pub fn write_target(&self) -> Result<NodeId, String> {
        let st = self.status();
        match st.role {
            Role::Primary => Ok(st.id),
            Role::Replica { primary } => match (primary, st.primary_unreachable_since) {
                (Some(p), None) => Ok(p),
                (p, since) => {
                    let since = since
                        .map(|t| self.wall_clock(t))
                        .unwrap_or_else(|| "start-up".into());
                    Err(match p {
                        Some(p) => format!(
                            "read-only: primary node {p} ({}) unreachable since {since}",
                            self.addresses
                                .get(&p)
                                .map_or_else(|| "unknown address".into(), |a| a.to_string())
                        ),
                        None => format!(
                            "read-only: this node is a replica and no primary has been reachable since {since}"
                        ),
                    })
                }
            },
        }
    }

    /// Forwards an admin request (JSON) to the primary `node`.
    pub async fn forward_admin(&self, node: NodeId, body: Vec<u8>) -> Result<Vec<u8>, String> {
        self.peers
            .admin(node, body, Duration::from_secs(30))
            .await
            .map_err(|e| {
                format!(
                    "read-only: this node is a replica and forwarding the write to primary node {node} failed: {e}"
                )
            })
    }

    /// Sends an admin request to `node` (the primary) and waits at most
    /// `timeout` for its answer: for the request path, which must not wait
    /// as long as an admin does ([`Replication::forward_admin`]).
    pub async fn send_admin_within(
        &self,
        node: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        self.peers
            .admin(node, body, timeout)
            .await
            .map_err(|e| format!("primary node {node}: {e}"))
    }

    /// Ships a batch of audit records (JSON) to the primary `node`.
    pub async fn ship_audit(&self, node: NodeId, body: Vec<u8>) -> Result<Vec<u8>, String> {
        self.peers
            .audit_batch(node, body, Duration::from_secs(10))
            .await
            .map_err(|e| format!("node {node}: {e}"))
    }

    /// The audit shipper's state (updated by its task).
    pub fn audit_state(&self) -> &Arc<ShipState> {
        &self.audit
    }

    /// A machine time (ms since start) as RFC 3339 UTC.
    fn wall_clock(&self, t: u64) -> String {
        let unix_ms = self.started_unix.saturating_add(t);
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(unix_ms);
        humantime_rfc3339(at)
    }

    /// `radmfa status` as admins read it.
    pub fn status_view(&self) -> ReplStatus {
        let st = self.status();
        let now = ms(self.origin);
        let primary = match st.role {
            Role::Primary => Some(st.id),
            Role::Replica { primary } => primary,
        };
        let replicas = st
            .replicas
            .iter()
            .map(|r| ReplicaView {
                node_id: r.id,
                address: self.addresses.get(&r.id).map(|a| a.to_string()),
                acked_seq: r.acked_seq,
                lag_entries: r.lag,
                last_seen_ms_ago: now.saturating_sub(r.last_seen),
                connected: r.connected,
            })
            .collect();
        ReplStatus::Clustered(ClusterStatus {
            node_id: st.id,
            role: match st.role {
                Role::Primary => NodeRole::Primary,
                Role::Replica { .. } => NodeRole::Replica,
            },
            epoch: st.epoch,
            last_seq: st.last_seq,
            last_epoch: st.last_epoch,
            primary,
            primary_unreachable_since: st.primary_unreachable_since.map(|t| self.wall_clock(t)),
            synced: st.synced,
            installing_snapshot: st.installing,
            replicas,
            last_error: st.last_error,
            audit_shipping: Some(self.audit.view(self.store.audit_next_seq())),
        })
    }

    /// `radmfa status` as JSON.
    pub fn status_json(&self) -> Value {
        serde_json::to_value(self.status_view()).unwrap_or_default()
    }

    /// Stops the driver thread (after the node stopped serving).
    pub fn stop(&self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        if let Some((stop, t)) = lock(&self.trimmer).take() {
            drop(stop);
            let _ = t.join();
        }
    }
}

/// What a replicated change of `tree` makes stale on this node: the cached
/// user (record and token, with its verified passwords), the replay state,
/// both, or neither. A replay state alone leaves the user cached: every
/// login accepted on a replica comes back as one (the primary logs the used
/// step), and forgetting the user then made its next login pay argon2 again.
fn affects(tree: u8) -> (bool, bool) {
    match tree {
        TREE_USERS => (true, false),
        TREE_TOKENS => (true, true),
        TREE_OTP_STATE => (false, true),
        _ => (false, false),
    }
}

/// Trims the changelog to `keep` entries at start and every [`TRIM_EVERY`]
/// until `stop` is dropped (checked between batches too). Waits while a
/// replica installs a snapshot from this node (see
/// [`Store::serving_snapshot`]).
fn trim_loop(store: &Store, keep: u64, stop: &mpsc::Receiver<()>) {
    let stopped =
        |wait: Duration| !matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    loop {
        let go_on = || {
            while store.serving_snapshot(SNAPSHOT_QUIET) {
                if stopped(SNAPSHOT_QUIET / 4) {
                    return false;
                }
            }
            matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty))
        };
        let removed = store.trim_changelog_while(keep, go_on);
        if removed > 0 {
            debug!(removed, "changelog trimmed");
        }
        if stopped(TRIM_EVERY) {
            return;
        }
    }
}

/// RFC 3339 in UTC, seconds precision.
fn humantime_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Sends one peer's queued messages in order.
async fn sender(client: PeerClient, peer: NodeId, mut rx: tmpsc::Receiver<Vec<u8>>) {
    while let Some(message) = rx.recv().await {
        if let Err(e) = client.send_replication(peer, &message).await {
            debug!(peer, error = %e, "replication message not sent");
        }
    }
}

struct Driver {
    machine: Machine,
    store: Store,
    client: PeerClient,
    rt: tokio::runtime::Handle,
    tx: mpsc::Sender<Cmd>,
    outboxes: HashMap<NodeId, tmpsc::Sender<Vec<u8>>>,
    /// Peers whose outgoing connection a task watches.
    watching: HashMap<NodeId, Arc<AtomicBool>>,
    status: Arc<Mutex<Status>>,
    origin: Instant,
    on_change: Box<dyn Fn(Changed) + Send>,
    /// Shared with [`Replication::received`].
    inbound: Arc<Inbound>,
}

impl Driver {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut next_tick = Instant::now();
        let mut generation = self.store.data_generation();
        let mut warned_role = None;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let cmd = match rx.recv_timeout(wait) {
                Ok(cmd) => Some(cmd),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut changed_users: Option<(HashSet<String>, HashSet<String>)> = None;
            let mut snapshot = false;
            match cmd {
                Some(Cmd::Stop) => return,
                Some(Cmd::Event(ev)) => self.handle(ev),
                Some(Cmd::Received(from, bytes)) => {
                    self.inbound.done(bytes.len());
                    self.received(from, bytes, &mut changed_users, &mut snapshot)
                }
                Some(Cmd::Promote(reply)) => self.promote(reply),
                None => {}
            }
            // Before the tick's silence check, take in everything that
            // arrived meanwhile: after a long step (a snapshot built or
            // installed) the queue holds the peers' recent messages, and a
            // tick first would call them silent and drop their connections.
            if Instant::now() >= next_tick {
                for _ in 0..4096 {
                    match rx.try_recv() {
                        Ok(Cmd::Stop) => return,
                        Ok(Cmd::Event(ev)) => self.handle(ev),
                        Ok(Cmd::Received(from, bytes)) => {
                            self.inbound.done(bytes.len());
                            self.received(from, bytes, &mut changed_users, &mut snapshot)
                        }
                        Ok(Cmd::Promote(reply)) => self.promote(reply),
                        Err(_) => break,
                    }
                }
                self.handle(Event::Tick);
                next_tick = Instant::now() + TICK;
            }
            let now_gen = self.store.data_generation();
            if now_gen != generation {
                generation = now_gen;
                if snapshot {
                    (self.on_change)(Changed::All);
                } else {
                    let (users, otp) = changed_users.unwrap_or_default();
                    (self.on_change)(Changed::Keys {
                        users: users.into_iter().collect(),
                        otp: otp.into_iter().collect(),
                    });
                }
            }
            let st = self.machine.status();
            if warned_role != Some((st.role, st.epoch)) {
                warned_role = Some((st.role, st.epoch));
                match st.role {
                    Role::Primary => info!(epoch = st.epoch, "this node is the primary"),
                    Role::Replica { primary: Some(p) } => {
                        info!(epoch = st.epoch, primary = p, "this node is a replica")
                    }
                    Role::Replica { primary: None } => {
                        info!(
                            epoch = st.epoch,
                            "this node is a replica looking for its primary"
                        )
                    }
                }
            }
            *lock(&self.status) = st;
        }
    }

    /// Decodes a peer's message and feeds it; notes which users it touches.
    fn received(
        &mut self,
        from: NodeId,
        bytes: Vec<u8>,
        changed_users: &mut Option<(HashSet<String>, HashSet<String>)>,
        snapshot: &mut bool,
    ) {
        let msg = match wire::decode(&bytes) {
            Ok(msg) => msg,
            Err(e) => {
                warn!(peer = from, error = %e, "malformed replication message dropped");
                return;
            }
        };
        drop(bytes);
        match &msg {
            Msg::Changes { changes, .. } => {
                let (users, otp) = changed_users.get_or_insert_with(Default::default);
                for c in changes {
                    let (user, replay) = affects(c.op.tree());
                    if !(user || replay) {
                        continue;
                    }
                    let name = String::from_utf8_lossy(c.op.key()).into_owned();
                    if replay {
                        otp.insert(name.clone());
                    }
                    if user {
                        users.insert(name);
                    }
                }
            }
            Msg::Snapshot { .. } => *snapshot = true,
            _ => {}
        }
        self.handle(Event::Received(from, msg));
    }

    fn promote(&mut self, reply: std::sync::mpsc::Sender<Status>) {
        self.handle(Event::Promote);
        let st = self.machine.status();
        info!(node = st.id, epoch = st.epoch, "promoted to primary");
        *lock(&self.status) = st.clone();
        let _ = reply.send(st);
    }

    fn handle(&mut self, ev: Event) {
        let now = ms(self.origin);
        let mut log = self.store.repl_log();
        let was_installing = self.machine.installing();
        let actions = self.machine.handle(now, ev, &mut log);
        if self.machine.installing() != was_installing {
            if !was_installing {
                info!("installing a snapshot from the primary (in parts)");
            } else {
                let st = self.machine.status();
                info!(
                    seq = st.last_seq,
                    epoch = st.last_epoch,
                    users = self.store.user_count(),
                    "snapshot install ended"
                );
            }
        }
        for a in actions {
            match a {
                Action::Persist { role, epoch } => {
                    if let Err(e) = self.store.set_repl_state(role, epoch) {
                        error!(error = %e, ?role, epoch, "cannot persist the replication role");
                    }
                }
                Action::Send(peer, msg) => {
                    let mut buf = Vec::new();
                    if let Err(e) = wire::encode(&msg, &mut buf) {
                        warn!(peer, error = %e, "cannot encode a replication message");
                        continue;
                    }
                    if let Some(out) = self.outboxes.get(&peer) {
                        if out.try_send(buf).is_err() {
                            debug!(peer, "replication outbox full; message dropped");
                        }
                    }
                }
                Action::Connect(peer) => self.connect(peer),
                Action::Disconnect(peer) => self.client.disconnect(peer),
                Action::WriteDone(_) => {}
            }
        }
        if self.machine.has_pending() {
            // A snapshot part waits: install it now (the request for the
            // next one went out above), not at the next tick.
            self.handle(Event::Tick);
        }
    }

    /// Opens (or reuses) the outgoing connection to `peer` and reports
    /// `Connected`, then `Disconnected` when it closes.
    fn connect(&self, peer: NodeId) {
        let Some(flag) = self.watching.get(&peer).cloned() else {
            return;
        };
        let tx = self.tx.clone();
        if flag.swap(true, Ordering::SeqCst) {
            // A watcher holds a live connection (or is opening one): the
            // machine forgot it (it closed a silent peer); say it is up
            // again only if it still is.
            let client = self.client.clone();
            self.rt.spawn(async move {
                if client.connect_to(peer).await.is_ok() {
                    let _ = tx.send(Cmd::Event(Event::Connected(peer)));
                }
            });
            return;
        }
        let client = self.client.clone();
        self.rt.spawn(async move {
            match client.connect_to(peer).await {
                Ok(closed) => {
                    let _ = tx.send(Cmd::Event(Event::Connected(peer)));
                    closed.cancelled().await;
                    flag.store(false, Ordering::SeqCst);
                    let _ = tx.send(Cmd::Event(Event::Disconnected(peer)));
                }
                Err(e) => {
                    flag.store(false, Ordering::SeqCst);
                    debug!(peer, error = %e, "replication cannot reach peer");
                    let _ = tx.send(Cmd::Event(Event::Disconnected(peer)));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radmfa_store::repl::ReplLog;
    use radmfa_store::User;

    /// The changelog's first sequence number still held (`changes_since`
    /// from 0 answers `Trimmed` once entry 1 is gone).
    fn trimmed(store: &Store) -> bool {
        store.repl_log().changes_since(0, 1).is_err()
    }

    /// A replicated replay state (the step a replica's accepted login used,
    /// logged by the primary and sent back) keeps the user and its verified
    /// passwords cached; a user or token change does not.
    #[test]
    fn a_replicated_replay_state_keeps_the_user_cached() {
        assert_eq!(affects(TREE_OTP_STATE), (false, true));
        assert_eq!(affects(TREE_USERS), (true, false));
        assert_eq!(affects(TREE_TOKENS), (true, true));
        assert_eq!(affects(radmfa_store::TREE_CLIENTS), (false, false));
    }

    #[test]
    fn inbound_bytes_are_bounded_and_freed_as_the_driver_takes_them() {
        let q = Inbound::default();
        assert!(q.admit(600, 1000));
        assert!(q.admit(400, 1000));
        assert!(!q.admit(1, 1000), "full");
        assert!(!q.admit(usize::MAX, 1000), "no overflow");
        q.done(600);
        assert!(q.admit(600, 1000));
        assert!(!q.admit(1, 1000));
        assert_eq!(q.0.load(Ordering::SeqCst), 1000);
    }

    #[test]
    fn trimming_waits_while_a_snapshot_is_served() {
        let (_dir, store) = crate::testing::temp_store();
        for i in 0..20 {
            store.add_user(&User::new(&format!("u{i}"))).expect("add");
        }
        // A replica is pulling parts: the trimmer must not start.
        store.repl_log().snapshot_part(None, 100).expect("part");
        let (stop, rx) = mpsc::channel::<()>();
        let trimmer = {
            let store = store.clone();
            std::thread::spawn(move || trim_loop(&store, 5, &rx))
        };
        let served_until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < served_until {
            store.repl_log().snapshot_part(None, 100).expect("part");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!trimmed(&store), "trimmed while a snapshot was served");
        // Once no part was served for SNAPSHOT_QUIET, it trims.
        let deadline = Instant::now() + SNAPSHOT_QUIET * 5;
        while !trimmed(&store) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(trimmed(&store), "not trimmed after the snapshot ended");
        assert!(store.repl_log().changes_since(15, 10).is_ok());
        drop(stop);
        trimmer.join().expect("trimmer");
    }
}
