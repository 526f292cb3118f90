//! The replication state machine: events in, actions out. No sockets, no
//! threads, no clock: the driver passes `now` (milliseconds, any monotonic
//! origin), carries out the returned actions in order, and calls
//! [`Machine::handle`] with [`Event::Tick`] every few tens of milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::log::{ApplyError, ReplLog, Trimmed};

mod snapshot;
use super::msg::{Change, Cursor, Entry, Msg, NodeId, Op, Snapshot};

/// What a node is. Persisted by the driver (with the epoch) on
/// [`Action::Persist`] and passed back to [`Machine::new`] after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The one writable node of its epoch.
    Primary,
    /// A read-only copy.
    Replica {
        /// The primary it follows, when known.
        primary: Option<NodeId>,
    },
}

/// Timers and batch size. The defaults suit a LAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A replica pulls (heartbeat and acknowledgement) this often when idle.
    pub heartbeat_ms: u64,
    /// A peer not heard from for this long is disconnected; a primary not
    /// heard from for this long is "unreachable".
    pub dead_after_ms: u64,
    /// Every node pings every configured peer this often (the heartbeat
    /// interval while a replica looks for its primary).
    pub probe_ms: u64,
    /// Minimum delay between two connection attempts to one peer.
    pub reconnect_ms: u64,
    /// A snapshot a replica has not asked the next part of for this long
    /// is started again when the replica pulls (its first part was lost).
    pub snapshot_retry_ms: u64,
    /// Most changes in one [`Msg::Changes`].
    pub batch_max: usize,
    /// About this many bytes of keys and values in one snapshot part.
    pub snapshot_part_bytes: usize,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            heartbeat_ms: 250,
            dead_after_ms: 2_000,
            probe_ms: 1_000,
            reconnect_ms: 1_000,
            snapshot_retry_ms: 10_000,
            batch_max: 512,
            snapshot_part_bytes: 1 << 20,
        }
    }
}

/// An input to the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Time passed (call every 10–50 ms).
    Tick,
    /// A connection to this peer is up (either side opened it).
    Connected(NodeId),
    /// The connection to this peer is gone (or a [`Action::Connect`] failed).
    Disconnected(NodeId),
    /// A message arrived from this (authenticated) peer.
    Received(NodeId, Msg),
    /// A local administrative write.
    Write(Op),
    /// The operator promotes this node to primary (`radmfa promote`).
    Promote,
}

/// Why a write was not done.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteRefused {
    /// This node is a replica. With `primary` known and `since` `None`, the
    /// driver forwards the write there; `since` is when the primary was last
    /// heard from, if it is unreachable now.
    ReadOnly {
        /// The primary this node follows, if known.
        primary: Option<NodeId>,
        /// When the primary became unreachable (last heard), if it is.
        since: Option<u64>,
    },
    /// This node is primary but its storage failed.
    Storage(ApplyError),
}

impl fmt::Display for WriteRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteRefused::ReadOnly {
                since: Some(t),
                primary,
            } => match primary {
                Some(p) => write!(f, "read-only: primary {p} unreachable since {t}"),
                None => write!(f, "read-only: primary unreachable since {t}"),
            },
            WriteRefused::ReadOnly {
                primary: Some(p),
                since: None,
            } => write!(f, "read-only: the primary is node {p}"),
            WriteRefused::ReadOnly {
                primary: None,
                since: None,
            } => write!(f, "read-only: no primary known"),
            WriteRefused::Storage(e) => write!(f, "write failed: {e}"),
        }
    }
}

impl std::error::Error for WriteRefused {}

/// Something for the driver to do, in the order returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send over the connection to this peer; drop it if there is none (the
    /// machine retries).
    Send(NodeId, Msg),
    /// Open a connection to this peer unless one is open or opening; report
    /// [`Event::Connected`] or [`Event::Disconnected`].
    Connect(NodeId),
    /// Close the connection to this peer (silent for too long). No
    /// [`Event::Disconnected`] is needed for it.
    Disconnect(NodeId),
    /// Store role and epoch durably before carrying out the next actions
    /// (always first in the list when present).
    Persist {
        /// The new role.
        role: Role,
        /// The new epoch.
        epoch: u64,
    },
    /// Outcome of an [`Event::Write`]: the write's sequence number.
    WriteDone(Result<u64, WriteRefused>),
}

/// One replica as seen by the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica.
    pub id: NodeId,
    /// Last sequence number it acknowledged as applied.
    pub acked_seq: u64,
    /// Primary's last sequence number minus `acked_seq`.
    pub lag: u64,
    /// When it was last heard from.
    pub last_seen: u64,
    /// Whether a connection to it is up.
    pub connected: bool,
}

/// What `radmfa status` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its epoch.
    pub epoch: u64,
    /// Sequence number of its last log entry.
    pub last_seq: u64,
    /// Epoch of that entry.
    pub last_epoch: u64,
    /// Replica: when the primary was last heard from, if it is unreachable
    /// (or since when no primary is known).
    pub primary_unreachable_since: Option<u64>,
    /// Primary: its replicas, by id.
    pub replicas: Vec<ReplicaStatus>,
    /// Replica: the primary of the current epoch has confirmed that this
    /// node's log is a prefix of its own (since the last start or epoch
    /// change). Promote only a synced replica: an unsynced one (a primary
    /// that just stepped down, say) may hold fenced writes, which a
    /// promotion would bring back.
    pub synced: bool,
    /// The last storage or protocol error, cleared by the next success.
    pub last_error: Option<String>,
    /// Replica: a snapshot is being installed (part by part).
    pub installing: bool,
}

#[derive(Clone, Debug, Default)]
struct ReplicaView {
    acked: u64,
    sent: u64,
    last_seen: u64,
    /// The last snapshot sent: when, and the replica position it answered.
    snapshot: Option<(u64, u64, u64)>,
    /// Position of that snapshot (to tell a re-synced replica after a
    /// same-epoch conflict).
    snapshot_pos: Option<(u64, u64)>,
}

/// A snapshot a replica is installing, part by part.
#[derive(Clone, Debug)]
struct Installing {
    /// The primary sending it.
    from: NodeId,
    /// Its position.
    seq: u64,
    epoch: u64,
    /// The position the next part follows.
    next: Cursor,
    /// When that part was asked for.
    asked_at: u64,
    /// The last part has arrived (it may still be pending).
    done: bool,
}

/// A snapshot installed in parts and not yet consistent: its parts were
/// read from the live trees of `from` while it went on writing, so the data
/// may hold changes after the log position the install ended at. Replaying
/// `from`'s changelog up to `until` (what `from` had written when it
/// answered the first pull after the install, which is at or after the time
/// it read the last part) makes it a copy of `from`'s data at that point.
/// Until then the copy is only good for following `from` in this epoch: a
/// promotion elsewhere may fence some of those extra changes, so the copy is
/// dropped and installed again from the new primary.
#[derive(Clone, Debug)]
struct Fuzzy {
    from: NodeId,
    epoch: u64,
    until: Option<u64>,
}

/// A [`Msg::Changes`] as the replica reads it.
struct Batch<'a> {
    /// Position the changes follow.
    prev: (u64, u64),
    changes: &'a [Change],
    /// The primary's last sequence number when it sent them.
    primary_last: u64,
}

/// A received snapshot part not installed yet. It is installed at the start
/// of the next event, so the request for the part after it goes out first:
/// the primary reads and sends that part while this one is installed.
#[derive(Clone, Debug)]
struct PendingPart {
    entries: Vec<Entry>,
}

/// The replication state machine of one node.
#[derive(Debug)]
pub struct Machine {
    id: NodeId,
    peers: Vec<NodeId>,
    role: Role,
    epoch: u64,
    timing: Timing,
    connected: BTreeSet<NodeId>,
    heard: BTreeMap<NodeId, u64>,
    connect_at: BTreeMap<NodeId, u64>,
    started: Option<u64>,
    next_probe: u64,
    primary_heard_at: Option<u64>,
    unreachable_since: Option<u64>,
    pull_at: Option<u64>,
    replicas: BTreeMap<NodeId, ReplicaView>,
    /// An epoch in which this node found a second primary: replicas whose
    /// log ends in it are re-synced by snapshot.
    tainted: Option<u64>,
    log_last: (u64, u64),
    synced: bool,
    last_error: Option<String>,
    persisted: Option<(Role, u64)>,
    installing: Option<Installing>,
    pending: Option<PendingPart>,
    fuzzy: Option<Fuzzy>,
}

/// Epoch of the entry at `seq`: `Ok(None)` past the end.
fn entry_epoch(log: &dyn ReplLog, seq: u64) -> Result<Option<u64>, Trimmed> {
    let (last_seq, last_epoch) = log.last();
    if seq == 0 {
        return Ok(Some(0));
    }
    if seq == last_seq {
        return Ok(Some(last_epoch));
    }
    if seq > last_seq {
        return Ok(None);
    }
    Ok(log
        .changes_since(seq - 1, 1)?
        .first()
        .filter(|c| c.seq == seq)
        .map(|c| c.epoch))
}

/// `changes` is contiguous after `(seq, epoch)` with epochs in
/// `epoch..=max_epoch`, never decreasing.
fn follows(changes: &[Change], (mut seq, mut epoch): (u64, u64), max_epoch: u64) -> bool {
    for c in changes {
        if Some(c.seq) != seq.checked_add(1) || c.epoch < epoch || c.epoch > max_epoch {
            return false;
        }
        (seq, epoch) = (c.seq, c.epoch);
    }
    true
}

/// A snapshot part's entries are strictly ascending, after `after`, and
/// `next` (when more follow) is past `after` and not before the last entry.
fn part_in_order(after: Option<&Cursor>, entries: &[Entry], next: Option<&Cursor>) -> bool {
    let mut prev: Option<(u8, &[u8])> = after.map(|c| (c.tree, c.key.as_slice()));
    for e in entries {
        let here = (e.tree, e.key.as_slice());
        if prev.is_some_and(|p| p >= here) {
            return false;
        }
        prev = Some(here);
    }
    match (next, after) {
        (Some(n), Some(a)) if n <= a => false,
        (Some(n), _) => prev.is_none_or(|p| p <= (n.tree, n.key.as_slice())),
        (None, _) => true,
    }
}

impl Machine {
    /// A machine for node `id` with the configured `peers` (the other nodes;
    /// `id` and duplicates are ignored), starting from the persisted `role`
    /// and `epoch` (`Role::Replica { primary: None }`, 0 for a new replica;
    /// `Role::Primary`, 1 for the first node of a new cluster: a primary at
    /// epoch 0 is raised to 1 and persisted on the first event).
    pub fn new(id: NodeId, peers: Vec<NodeId>, role: Role, epoch: u64) -> Machine {
        Machine::with_timing(id, peers, role, epoch, Timing::default())
    }

    /// [`Machine::new`] with other timers.
    pub fn with_timing(
        id: NodeId,
        mut peers: Vec<NodeId>,
        role: Role,
        epoch: u64,
        timing: Timing,
    ) -> Machine {
        peers.retain(|&p| p != id);
        peers.sort_unstable();
        peers.dedup();
        let mut role = role;
        if role == (Role::Replica { primary: Some(id) }) {
            role = Role::Replica { primary: None };
        }
        let persisted = Some((role, epoch));
        let epoch = if role == Role::Primary {
            epoch.max(1)
        } else {
            epoch
        };
        Machine {
            id,
            peers,
            role,
            epoch,
            timing,
            connected: BTreeSet::new(),
            heard: BTreeMap::new(),
            connect_at: BTreeMap::new(),
            started: None,
            next_probe: 0,
            primary_heard_at: None,
            unreachable_since: None,
            pull_at: None,
            replicas: BTreeMap::new(),
            tainted: None,
            log_last: (0, 0),
            synced: false,
            last_error: None,
            persisted,
            installing: None,
            pending: None,
            fuzzy: None,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A snapshot is being installed (what [`Status::installing`] says,
    /// without building the whole status).
    pub fn installing(&self) -> bool {
        self.installing.is_some()
    }

    /// A received snapshot part waits to be installed: the driver should
    /// feed an event (a [`Event::Tick`]) now rather than at the next tick.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Feed one event; returns what the driver must do, in order.
    pub fn handle(&mut self, now: u64, ev: Event, log: &mut dyn ReplLog) -> Vec<Action> {
        let mut out = Vec::new();
        if self.started.is_none() {
            self.started = Some(now);
            self.next_probe = now;
            if self.role == (Role::Replica { primary: None }) {
                self.unreachable_since = Some(now);
            }
        }
        self.log_last = log.last();
        if self.log_last.1 > self.epoch {
            // Our own log knows a later epoch than we persisted.
            self.adopt_epoch(self.log_last.1, now);
        }
        self.install_pending(now, log, &mut out);
        match ev {
            Event::Tick => self.on_tick(now, log, &mut out),
            Event::Connected(p) if self.peers.contains(&p) => {
                self.connected.insert(p);
                self.heard.insert(p, now);
                out.push(Action::Send(p, self.ping()));
                if self.role == (Role::Replica { primary: Some(p) }) {
                    self.send_pull(p, now, log, &mut out);
                }
            }
            Event::Disconnected(p) if self.peers.contains(&p) => {
                self.connected.remove(&p);
                if self.role == (Role::Replica { primary: Some(p) }) {
                    self.unreachable_since.get_or_insert(now);
                }
            }
            Event::Received(from, msg) if self.peers.contains(&from) => {
                self.on_msg(now, from, msg, log, &mut out);
            }
            Event::Connected(_) | Event::Disconnected(_) | Event::Received(..) => {}
            Event::Write(op) => self.on_write(now, op, log, &mut out),
            Event::Promote => self.on_promote(now, &mut out),
        }
        if let Some(i) = &self.installing {
            if self.role
                != (Role::Replica {
                    primary: Some(i.from),
                })
            {
                // Following someone else now (or primary): the half-installed
                // copy is worthless; start from empty.
                self.installing = None;
                self.pending = None;
                if let Err(e) = log.install_abort() {
                    self.last_error = Some(e.to_string());
                }
            }
        }
        self.drop_fuzzy_copy(now, log, &mut out);
        self.log_last = log.last();
        let state = (self.role, self.epoch);
        if self.persisted != Some(state) {
            self.persisted = Some(state);
            out.insert(
                0,
                Action::Persist {
                    role: self.role,
                    epoch: self.epoch,
                },
            );
        }
        out
    }

    /// Role, epoch, log position, primary reachability and replica lag.
    pub fn status(&self) -> Status {
        let replicas = if self.role == Role::Primary {
            self.replicas
                .iter()
                .map(|(&id, v)| ReplicaStatus {
                    id,
                    acked_seq: v.acked,
                    lag: self.log_last.0.saturating_sub(v.acked),
                    last_seen: v.last_seen,
                    connected: self.connected.contains(&id),
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id,
            role: self.role,
            epoch: self.epoch,
            last_seq: self.log_last.0,
            last_epoch: self.log_last.1,
            primary_unreachable_since: match self.role {
                Role::Primary => None,
                Role::Replica { .. } => self.unreachable_since,
            },
            replicas,
            synced: self.synced,
            last_error: self.last_error.clone(),
            installing: self.installing.is_some(),
        }
    }

    fn primary_hint(&self) -> Option<NodeId> {
        match self.role {
            Role::Primary => Some(self.id),
            Role::Replica { primary } => primary,
        }
    }

    fn ping(&self) -> Msg {
        Msg::Ping {
            epoch: self.epoch,
            primary: self.primary_hint(),
        }
    }

    fn pong(&self) -> Msg {
        Msg::Pong {
            epoch: self.epoch,
            primary: self.primary_hint(),
        }
    }

    fn maybe_connect(&mut self, p: NodeId, now: u64, out: &mut Vec<Action>) {
        if self.connected.contains(&p) {
            return;
        }
        let due = self
            .connect_at
            .get(&p)
            .is_none_or(|&t| now.saturating_sub(t) >= self.timing.reconnect_ms);
        if due {
            self.connect_at.insert(p, now);
            out.push(Action::Connect(p));
        }
    }

    /// Send `msg` to `p`, or connect first (the message is dropped: callers
    /// only send what a later tick or `Connected` repeats).
    fn send_or_connect(&mut self, p: NodeId, msg: Msg, now: u64, out: &mut Vec<Action>) {
        if self.connected.contains(&p) {
            out.push(Action::Send(p, msg));
        } else {
            self.maybe_connect(p, now, out);
        }
    }

    fn send_pull(&mut self, p: NodeId, now: u64, log: &dyn ReplLog, out: &mut Vec<Action>) {
        self.pull_at = Some(now);
        if let Some(i) = self.installing.as_mut().filter(|i| i.from == p) {
            // Installing a snapshot from `p`: ask for the next part (a plain
            // pull would start another snapshot); after the last, nothing
            // until it is installed.
            if i.done {
                return;
            }
            i.asked_at = now;
            out.push(Action::Send(
                p,
                Msg::SnapshotPull {
                    epoch: self.epoch,
                    seq: i.seq,
                    snap_epoch: i.epoch,
                    after: i.next.clone(),
                },
            ));
            return;
        }
        let (last_seq, last_epoch) = log.last();
        out.push(Action::Send(
            p,
            Msg::Pull {
                epoch: self.epoch,
                last_seq,
                last_epoch,
            },
        ));
    }

    /// A higher epoch exists: step down or forget the old primary.
    fn adopt_epoch(&mut self, epoch: u64, now: u64) {
        if epoch <= self.epoch {
            return;
        }
        self.epoch = epoch;
        self.synced = false;
        self.role = Role::Replica { primary: None };
        self.replicas.clear();
        self.tainted = None;
        self.primary_heard_at = None;
        self.unreachable_since.get_or_insert(now);
    }

    fn lose_primary(&mut self, now: u64) {
        self.role = Role::Replica { primary: None };
        self.primary_heard_at = None;
        self.unreachable_since.get_or_insert(now);
    }

    fn follow(&mut self, p: NodeId, now: u64, log: &dyn ReplLog, out: &mut Vec<Action>) {
        if p == self.id || self.role == Role::Primary {
            return;
        }
        self.primary_heard_at = Some(now);
        self.unreachable_since = None;
        if self.role != (Role::Replica { primary: Some(p) }) {
            self.role = Role::Replica { primary: Some(p) };
            self.send_pull(p, now, log, out);
        }
    }

    fn on_tick(&mut self, now: u64, log: &dyn ReplLog, out: &mut Vec<Action>) {
        if self.role == Role::Primary {
            self.push_new(now, log, out);
        }
        // Connections that went silent (half-open): close them.
        let silent: Vec<NodeId> = self
            .connected
            .iter()
            .copied()
            .filter(|p| {
                self.heard
                    .get(p)
                    .is_none_or(|&t| now.saturating_sub(t) > self.timing.dead_after_ms)
            })
            .collect();
        for p in silent {
            self.connected.remove(&p);
            out.push(Action::Disconnect(p));
        }

        if let Role::Replica { primary: Some(p) } = self.role {
            let heard = self.primary_heard_at.or(self.started).unwrap_or(now);
            if now.saturating_sub(heard) > self.timing.dead_after_ms {
                self.unreachable_since.get_or_insert(heard);
            }
            if self.connected.contains(&p) {
                // While installing, a part is re-asked for only when late.
                let every = if self.installing.is_some() {
                    (self.timing.dead_after_ms / 2).max(self.timing.heartbeat_ms)
                } else {
                    self.timing.heartbeat_ms
                };
                let due = self.pull_at.is_none_or(|t| now.saturating_sub(t) >= every);
                if due {
                    self.send_pull(p, now, log, out);
                }
            } else {
                self.maybe_connect(p, now, out);
            }
        }

        if now >= self.next_probe {
            let searching =
                matches!(self.role, Role::Replica { .. }) && self.unreachable_since.is_some();
            let every = if searching {
                self.timing.heartbeat_ms
            } else {
                self.timing.probe_ms
            };
            self.next_probe = now.saturating_add(every.max(1));
            for p in self.peers.clone() {
                let ping = self.ping();
                self.send_or_connect(p, ping, now, out);
            }
        }
    }

    fn on_msg(
        &mut self,
        now: u64,
        from: NodeId,
        msg: Msg,
        log: &mut dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        self.heard.insert(from, now);
        let epoch = msg.epoch();
        if epoch > self.epoch {
            self.adopt_epoch(epoch, now);
        } else if epoch < self.epoch {
            // Fencing: refuse, and tell the sender which epoch it missed.
            if !matches!(msg, Msg::Pong { .. }) {
                out.push(Action::Send(from, self.pong()));
            }
            return;
        }
        match msg {
            Msg::Ping { primary, .. } => {
                self.on_claim(now, from, primary, log, out);
                out.push(Action::Send(from, self.pong()));
            }
            Msg::Pong { primary, .. } => self.on_claim(now, from, primary, log, out),
            Msg::Pull {
                last_seq,
                last_epoch,
                ..
            } => {
                if self.role == Role::Primary {
                    self.serve_pull(now, from, (last_seq, last_epoch), log, out);
                } else {
                    out.push(Action::Send(from, self.pong()));
                }
            }
            Msg::Changes {
                prev_seq,
                prev_epoch,
                changes,
                primary_last,
                ..
            } => {
                if self.role == Role::Primary {
                    self.on_conflict(now, from, out);
                } else {
                    self.follow(from, now, log, out);
                    let batch = Batch {
                        prev: (prev_seq, prev_epoch),
                        changes: &changes,
                        primary_last,
                    };
                    self.on_changes(now, from, batch, log, out);
                }
            }
            Msg::Snapshot {
                for_seq,
                for_epoch,
                snapshot,
                ..
            } => {
                if self.role == Role::Primary {
                    self.on_conflict(now, from, out);
                } else {
                    self.follow(from, now, log, out);
                    self.on_snapshot(now, from, (for_seq, for_epoch), snapshot, log, out);
                }
            }
            Msg::SnapshotPull {
                seq,
                snap_epoch,
                after,
                ..
            } => {
                if self.role == Role::Primary {
                    self.serve_snapshot_part(now, from, (seq, snap_epoch), after, log, out);
                } else {
                    out.push(Action::Send(from, self.pong()));
                }
            }
        }
    }

    /// `from`, at our epoch, says `claim` is the primary.
    fn on_claim(
        &mut self,
        now: u64,
        from: NodeId,
        claim: Option<NodeId>,
        log: &dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        match (self.role, claim) {
            (Role::Primary, Some(c)) if c == from => self.on_conflict(now, from, out),
            (Role::Primary, _) => {}
            (Role::Replica { .. }, Some(c)) if c == from => self.follow(from, now, log, out),
            (Role::Replica { primary }, claim) => {
                if primary == Some(from) {
                    // Our primary says it is not (any more).
                    self.lose_primary(now);
                }
                let searching = primary.is_none() || self.unreachable_since.is_some();
                if let Some(c) = claim.filter(|&c| c != self.id && self.peers.contains(&c)) {
                    if searching {
                        let ping = self.ping();
                        self.send_or_connect(c, ping, now, out);
                    }
                }
            }
        }
    }

    /// Two primaries in one epoch (two nodes promoted from the same epoch,
    /// e.g. on both sides of a partition). The lower id stays primary at a
    /// new epoch, which makes the other step down; replicas whose log ends in
    /// the shared epoch are re-synced by snapshot.
    fn on_conflict(&mut self, now: u64, from: NodeId, out: &mut Vec<Action>) {
        self.last_error = Some(format!(
            "node {from} is also primary in epoch {}",
            self.epoch
        ));
        if self.id < from {
            self.tainted = Some(self.epoch);
            self.epoch += 1;
            for p in self.peers.clone() {
                let ping = self.ping();
                self.send_or_connect(p, ping, now, out);
            }
        }
    }

    fn serve_pull(
        &mut self,
        now: u64,
        from: NodeId,
        (last_seq, last_epoch): (u64, u64),
        log: &dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        let (my_seq, my_epoch) = log.last();
        let epoch = self.epoch;
        let view = self.replicas.entry(from).or_default();
        view.last_seen = now;
        let tainted = self.tainted == Some(last_epoch)
            && last_seq > 0
            && view.snapshot_pos != Some((last_seq, last_epoch));
        let same = !tainted && entry_epoch(log, last_seq) == Ok(Some(last_epoch));
        if same {
            if let Ok(changes) = log.changes_since(last_seq, self.timing.batch_max) {
                view.acked = last_seq;
                view.sent = changes.last().map_or(last_seq, |c| c.seq);
                view.snapshot = None;
                out.push(Action::Send(
                    from,
                    Msg::Changes {
                        epoch,
                        prev_seq: last_seq,
                        prev_epoch: last_epoch,
                        changes,
                        primary_last: my_seq,
                    },
                ));
                return;
            }
        }
        // Behind the trimmed log, or holding entries we do not have.
        let recent = view.snapshot.is_some_and(|(at, s, e)| {
            (s, e) == (last_seq, last_epoch)
                && now.saturating_sub(at) < self.timing.snapshot_retry_ms
        });
        if recent {
            // Still transferring: a heartbeat that cannot apply anywhere.
            out.push(Action::Send(
                from,
                Msg::Changes {
                    epoch,
                    prev_seq: my_seq,
                    prev_epoch: my_epoch,
                    changes: Vec::new(),
                    primary_last: my_seq,
                },
            ));
            return;
        }
        // A fuzzy snapshot from the current position: the replica replays
        // the log from `(my_seq, my_epoch)` once the last part is in.
        let (entries, next) = match log.snapshot_part(None, self.timing.snapshot_part_bytes) {
            Ok(part) => part,
            Err(e) => {
                self.last_error = Some(e.to_string());
                return;
            }
        };
        view.snapshot = Some((now, last_seq, last_epoch));
        view.snapshot_pos = Some((my_seq, my_epoch));
        view.sent = my_seq;
        out.push(Action::Send(
            from,
            Msg::Snapshot {
                epoch,
                for_seq: last_seq,
                for_epoch: last_epoch,
                snapshot: Snapshot {
                    seq: my_seq,
                    epoch: my_epoch,
                    after: None,
                    entries,
                    next,
                },
            },
        ));
    }

    fn on_write(&mut self, now: u64, op: Op, log: &mut dyn ReplLog, out: &mut Vec<Action>) {
        if self.role != Role::Primary {
            out.push(Action::WriteDone(Err(WriteRefused::ReadOnly {
                primary: self.primary_hint(),
                since: self.unreachable_since,
            })));
            return;
        }
        let change = match log.append_local(self.epoch, op) {
            Ok(c) => c,
            Err(e) => {
                self.last_error = Some(e.to_string());
                out.push(Action::WriteDone(Err(WriteRefused::Storage(e))));
                return;
            }
        };
        self.last_error = None;
        out.push(Action::WriteDone(Ok(change.seq)));
        self.push_new(now, log, out);
    }

    /// Primary: sends what follows to every idle (all sent batches
    /// acknowledged), live replica that is behind, so a write reaches the
    /// replicas at once instead of at their next pull. Called after a write
    /// through the machine and on every tick, which also covers writes the
    /// driver's storage made directly (they append to the same log).
    fn push_new(&mut self, now: u64, log: &dyn ReplLog, out: &mut Vec<Action>) {
        let (last_seq, _) = log.last();
        for (&r, view) in &mut self.replicas {
            let idle = view.acked == view.sent && view.snapshot.is_none();
            let live = self.connected.contains(&r)
                && now.saturating_sub(view.last_seen) <= self.timing.dead_after_ms;
            if !(idle && live && view.sent < last_seq) {
                continue;
            }
            let Ok(Some(prev_epoch)) = entry_epoch(log, view.sent) else {
                continue;
            };
            let Ok(changes) = log.changes_since(view.sent, self.timing.batch_max) else {
                continue;
            };
            let Some(end) = changes.last().map(|c| c.seq) else {
                continue;
            };
            out.push(Action::Send(
                r,
                Msg::Changes {
                    epoch: self.epoch,
                    prev_seq: view.sent,
                    prev_epoch,
                    changes,
                    primary_last: last_seq,
                },
            ));
            view.sent = end;
        }
    }

    fn on_changes(
        &mut self,
        now: u64,
        from: NodeId,
        batch: Batch<'_>,
        log: &mut dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        let Batch {
            prev,
            changes,
            primary_last,
        } = batch;
        if self.installing.is_some() {
            return; // Our data is a partial snapshot: nothing applies to it.
        }
        let last = log.last();
        let start = if prev == last {
            Some(0)
        } else {
            // A duplicate or overlapping batch: resume after our last entry
            // if the batch holds it (same seq and epoch: same history).
            changes
                .iter()
                .position(|c| (c.seq, c.epoch) == last)
                .map(|i| i + 1)
        };
        let Some(fresh) = start.and_then(|i| changes.get(i..)) else {
            return; // Does not follow our log: the next pull sorts it out.
        };
        // The primary sent what follows our last entry: our log is its prefix
        // (and our data too, once a fuzzy snapshot copy has caught up).
        if let Some(f) = self.fuzzy.as_mut().filter(|f| f.from == from) {
            f.until.get_or_insert(primary_last);
        }
        self.settle_fuzzy_copy(log);
        self.synced = self.fuzzy.is_none();
        if fresh.is_empty() {
            return;
        }
        if !follows(fresh, last, self.epoch) {
            self.last_error = Some(format!("node {from} sent a malformed batch"));
            return;
        }
        match log.apply(fresh) {
            Ok(()) => {
                self.last_error = None;
                self.settle_fuzzy_copy(log);
                self.synced = self.fuzzy.is_none();
                self.send_pull(from, now, log, out);
            }
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }

    fn on_promote(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.role == Role::Primary {
            return;
        }
        self.epoch = self.epoch.max(self.log_last.1) + 1;
        self.role = Role::Primary;
        self.replicas.clear();
        self.tainted = None;
        self.primary_heard_at = None;
        self.unreachable_since = None;
        for p in self.peers.clone() {
            let ping = self.ping();
            self.send_or_connect(p, ping, now, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::repl::MemLog;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            tree: 1,
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    /// A snapshot position in tree 1.
    fn cur(k: &str) -> Option<Cursor> {
        Some(Cursor {
            tree: 1,
            key: k.as_bytes().to_vec(),
        })
    }

    /// A part of node 1's snapshot at `(5, 1)` answering a replica at
    /// `(0, 0)`: `keys` in tree 1 (value `v`) between `after` and `next`.
    fn part(after: Option<Cursor>, keys: &[&str], next: Option<Cursor>) -> Event {
        Event::Received(
            1,
            Msg::Snapshot {
                epoch: 1,
                for_seq: 0,
                for_epoch: 0,
                snapshot: Snapshot {
                    seq: 5,
                    epoch: 1,
                    after,
                    entries: keys
                        .iter()
                        .map(|k| Entry {
                            tree: 1,
                            key: k.as_bytes().to_vec(),
                            value: b"v".to_vec(),
                        })
                        .collect(),
                    next,
                },
            },
        )
    }

    /// Synchronous, lossless in-order network with cuttable links.
    struct Net {
        nodes: BTreeMap<NodeId, (Machine, MemLog)>,
        queue: VecDeque<(NodeId, Event)>,
        now: u64,
        cut: BTreeSet<NodeId>,
        persisted: Vec<(NodeId, Role, u64)>,
        acks: Vec<(NodeId, Result<u64, WriteRefused>)>,
        sent: Vec<(NodeId, NodeId, Msg)>,
    }

    impl Net {
        fn new(n: u16, timing: Timing) -> Net {
            let ids: Vec<NodeId> = (1..=n).collect();
            let nodes = ids
                .iter()
                .map(|&id| {
                    let (role, epoch) = if id == 1 {
                        (Role::Primary, 1)
                    } else {
                        (Role::Replica { primary: None }, 0)
                    };
                    let m = Machine::with_timing(id, ids.clone(), role, epoch, timing);
                    (id, (m, MemLog::new()))
                })
                .collect();
            Net {
                nodes,
                queue: VecDeque::new(),
                now: 0,
                cut: BTreeSet::new(),
                persisted: Vec::new(),
                acks: Vec::new(),
                sent: Vec::new(),
            }
        }

        fn reachable(&self, a: NodeId, b: NodeId) -> bool {
            !self.cut.contains(&a) && !self.cut.contains(&b)
        }

        fn deliver(&mut self, to: NodeId, ev: Event) {
            let now = self.now;
            let (m, log) = self.nodes.get_mut(&to).unwrap();
            let actions = m.handle(now, ev, log);
            for a in actions {
                match a {
                    Action::Send(dst, msg) => {
                        if self.reachable(to, dst) {
                            self.sent.push((to, dst, msg.clone()));
                            self.queue.push_back((dst, Event::Received(to, msg)));
                        }
                    }
                    Action::Connect(dst) => {
                        if self.reachable(to, dst) {
                            self.queue.push_back((to, Event::Connected(dst)));
                            self.queue.push_back((dst, Event::Connected(to)));
                        } else {
                            self.queue.push_back((to, Event::Disconnected(dst)));
                        }
                    }
                    Action::Disconnect(_) => {}
                    Action::Persist { role, epoch } => self.persisted.push((to, role, epoch)),
                    Action::WriteDone(r) => self.acks.push((to, r)),
                }
            }
        }

        fn run(&mut self) {
            let mut steps = 0;
            while let Some((to, ev)) = self.queue.pop_front() {
                self.deliver(to, ev);
                steps += 1;
                assert!(steps < 100_000, "message storm");
            }
        }

        fn tick_for(&mut self, ms: u64) {
            let end = self.now + ms;
            while self.now < end {
                self.now += 50;
                let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                for id in ids {
                    self.deliver(id, Event::Tick);
                    self.run();
                }
            }
        }

        fn write(&mut self, id: NodeId, op: Op) -> Result<u64, WriteRefused> {
            self.deliver(id, Event::Write(op));
            let r = self.acks.pop().unwrap();
            assert_eq!(r.0, id);
            self.run();
            r.1
        }

        fn m(&self, id: NodeId) -> &Machine {
            &self.nodes[&id].0
        }

        fn log(&self, id: NodeId) -> &MemLog {
            &self.nodes[&id].1
        }

        fn log_mut(&mut self, id: NodeId) -> &mut MemLog {
            &mut self.nodes.get_mut(&id).unwrap().1
        }

        fn same_data(&self, a: NodeId, b: NodeId) -> bool {
            self.log(a).data() == self.log(b).data() && self.log(a).last() == self.log(b).last()
        }
    }

    #[test]
    fn replicates_pushes_and_refuses_replica_writes() {
        let mut net = Net::new(3, Timing::default());
        net.tick_for(1_000);
        assert_eq!(net.m(2).role(), Role::Replica { primary: Some(1) });
        assert_eq!(net.m(3).epoch(), 1);
        assert!(net
            .persisted
            .contains(&(2, Role::Replica { primary: Some(1) }, 1)));

        assert_eq!(net.write(1, put("a", "1")), Ok(1));
        // Pushed at once, without waiting for a tick.
        assert_eq!(net.log(2).get(1, b"a"), Some(&b"1"[..]));
        assert!(net.same_data(1, 3));
        assert_eq!(
            net.write(2, put("b", "2")),
            Err(WriteRefused::ReadOnly {
                primary: Some(1),
                since: None
            })
        );
        assert_eq!(net.log(1).get(1, b"b"), None);

        let st = net.m(1).status();
        assert_eq!(st.role, Role::Primary);
        assert_eq!(st.last_seq, 1);
        assert_eq!(st.replicas.len(), 2);
        assert!(st.replicas.iter().all(|r| r.lag == 0 && r.connected));
        let st = net.m(2).status();
        assert_eq!((st.primary_unreachable_since, st.last_seq), (None, 1));
    }

    #[test]
    fn catch_up_in_bounded_batches_and_lag() {
        let timing = Timing {
            batch_max: 3,
            ..Timing::default()
        };
        let mut net = Net::new(2, timing);
        net.cut.insert(2);
        for i in 0..10 {
            net.write(1, put(&format!("k{i}"), "v")).unwrap();
        }
        net.tick_for(500);
        assert_eq!(net.log(2).last(), (0, 0));
        net.cut.clear();
        net.tick_for(2_000);
        assert!(net.same_data(1, 2));
        let batches: Vec<usize> = net
            .sent
            .iter()
            .filter_map(|(_, _, m)| match m {
                Msg::Changes { changes, .. } if !changes.is_empty() => Some(changes.len()),
                _ => None,
            })
            .collect();
        assert_eq!(batches, [3, 3, 3, 1]);
        assert_eq!(net.m(1).status().replicas[0].lag, 0);
    }

    #[test]
    fn trimmed_log_sends_a_snapshot_then_streams() {
        let mut net = Net::new(2, Timing::default());
        net.cut.insert(2);
        for i in 0..10 {
            net.write(1, put(&format!("k{i}"), "v")).unwrap();
        }
        net.log_mut(1).trim(8);
        net.cut.clear();
        net.tick_for(1_500);
        assert!(net.same_data(1, 2));
        let snapshots = net
            .sent
            .iter()
            .filter(|(_, _, m)| matches!(m, Msg::Snapshot { .. }))
            .count();
        assert_eq!(snapshots, 1);
        net.write(1, put("after", "x")).unwrap();
        assert!(net.same_data(1, 2));
        assert_eq!(net.log(2).last(), (11, 1));
    }

    #[test]
    fn snapshot_in_parts_with_writes_meanwhile_converges() {
        let timing = Timing {
            snapshot_part_bytes: 8,
            ..Timing::default()
        };
        let mut net = Net::new(2, timing);
        net.cut.insert(2);
        for i in 0..40 {
            net.write(1, put(&format!("k{i:02}"), "v")).unwrap();
        }
        net.log_mut(1).trim(35);
        net.cut.clear();
        // Step the network by hand, writing (new keys, overwrites, removes)
        // while parts are in flight: the parts are read from live data.
        let mut writes = 0;
        for _ in 0..100 {
            net.now += 50;
            net.deliver(1, Event::Tick);
            net.deliver(2, Event::Tick);
            while let Some((to, ev)) = net.queue.pop_front() {
                net.deliver(to, ev);
                if net.m(2).status().installing && writes < 30 {
                    writes += 1;
                    let op = match writes % 3 {
                        0 => Op::Remove {
                            tree: 1,
                            key: format!("k{writes:02}").into_bytes(),
                        },
                        1 => put(&format!("k{:02}", 39 - writes), "new"),
                        _ => put(&format!("n{writes:02}"), "x"),
                    };
                    net.deliver(1, Event::Write(op));
                    assert!(net.acks.pop().unwrap().1.is_ok());
                }
            }
        }
        assert_eq!(writes, 30, "the install was too quick to interleave writes");
        let parts = net
            .sent
            .iter()
            .filter(|(_, _, m)| matches!(m, Msg::Snapshot { .. }))
            .count();
        assert!(parts > 20, "{parts} parts");
        assert!(!net.m(2).status().installing);
        assert!(net.same_data(1, 2));
        assert_eq!(net.log(2).last(), (70, 1));
    }

    #[test]
    fn snapshot_parts_out_of_place_are_ignored_or_refused() {
        let mut log = MemLog::new();
        let mut m = Machine::new(2, vec![1], Role::Replica { primary: Some(1) }, 1);
        m.handle(0, Event::Connected(1), &mut log);
        let out = m.handle(1, part(None, &["a", "b"], cur("b")), &mut log);
        assert!(
            out.iter().any(|a| matches!(a,
                Action::Send(1, Msg::SnapshotPull { seq: 5, snap_epoch: 1, after, .. })
                    if after.key == b"b")),
            "{out:?}"
        );
        assert!(m.status().installing && m.has_pending());
        // The part is installed at the next event, after the request for
        // the next one went out.
        assert!(log.data().is_empty());
        // While installing, a batch of changes does not apply to the partial
        // copy, and a part after another position is ignored.
        let changes = Event::Received(
            1,
            Msg::Changes {
                epoch: 1,
                prev_seq: 0,
                prev_epoch: 0,
                changes: vec![Change {
                    seq: 1,
                    epoch: 1,
                    op: put("z", "z"),
                }],
                primary_last: 1,
            },
        );
        m.handle(2, changes, &mut log);
        assert_eq!(log.data().len(), 2);
        assert_eq!(log.get(1, b"z"), None);
        assert!(m
            .handle(3, part(cur("x"), &["y"], None), &mut log)
            .is_empty());
        assert!(m.status().installing);
        // Entries out of order: refused, and the partial copy dropped.
        m.handle(4, part(cur("b"), &["d", "c"], None), &mut log);
        let st = m.status();
        assert!(st.last_error.is_some() && !st.installing, "{st:?}");
        assert!(log.data().is_empty());
        assert_eq!(log.last(), (0, 0));
        // A complete install ends at the snapshot's position, then pulls.
        m.handle(5, part(None, &["a"], cur("a")), &mut log);
        let out = m.handle(6, part(cur("a"), &["b"], None), &mut log);
        // After the last part nothing is asked for until it is installed.
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::Send(_, Msg::SnapshotPull { .. }))),
            "{out:?}"
        );
        let out = m.handle(7, Event::Tick, &mut log);
        assert_eq!(log.last(), (5, 1));
        assert_eq!(log.data().len(), 2);
        assert!(out.iter().any(|a| matches!(
            a,
            Action::Send(
                1,
                Msg::Pull {
                    last_seq: 5,
                    last_epoch: 1,
                    ..
                }
            )
        )));
        // Fuzzy until the replay reaches what the primary had written when
        // it answered that pull: not synced (not a candidate for promotion).
        assert!(!m.status().synced && !m.status().installing);
        let changes = |prev: u64, seqs: std::ops::RangeInclusive<u64>, primary_last| {
            Event::Received(
                1,
                Msg::Changes {
                    epoch: 1,
                    prev_seq: prev,
                    prev_epoch: 1,
                    changes: seqs
                        .map(|seq| Change {
                            seq,
                            epoch: 1,
                            op: put("c", "v"),
                        })
                        .collect(),
                    primary_last,
                },
            )
        };
        m.handle(8, changes(5, 6..=6, 7), &mut log);
        assert!(!m.status().synced, "at 6 of 7");
        let mut reopened = log.clone();
        reopened.reopen();
        assert_eq!(reopened.last(), (0, 0), "a crash now starts empty");
        m.handle(9, changes(6, 7..=7, 9), &mut log);
        assert!(m.status().synced, "at 7, the first mark");
        let mut reopened = log.clone();
        reopened.reopen();
        assert_eq!(reopened.last(), (7, 1), "settled: a crash keeps the copy");
    }

    #[test]
    fn a_fuzzy_copy_is_dropped_when_the_epoch_changes_before_it_settled() {
        // Seed 37 of the simulator: the parts held writes past the snapshot's
        // position; the sender was then fenced by a promotion that did not
        // have them. Replaying the new primary's log on top would keep them.
        let mut m = Machine::new(2, vec![1, 3], Role::Replica { primary: None }, 1);
        let mut log = MemLog::new();
        m.handle(0, Event::Connected(1), &mut log);
        m.handle(
            1,
            Event::Received(
                1,
                Msg::Ping {
                    epoch: 1,
                    primary: Some(1),
                },
            ),
            &mut log,
        );
        m.handle(2, part(None, &["a"], cur("a")), &mut log);
        // "z" was written at seq 6, after the snapshot's position.
        m.handle(3, part(cur("a"), &["z"], None), &mut log);
        m.handle(4, Event::Tick, &mut log);
        assert_eq!(log.last(), (5, 1));
        assert!(log.get(1, b"z").is_some());
        // Node 3 is promoted (epoch 2) without seq 6 and claims the cluster.
        let out = m.handle(
            5,
            Event::Received(
                3,
                Msg::Ping {
                    epoch: 2,
                    primary: Some(3),
                },
            ),
            &mut log,
        );
        assert_eq!(log.last(), (0, 0), "the fuzzy copy is dropped");
        assert!(log.get(1, b"z").is_none());
        assert!(
            out.iter().any(|a| matches!(
                a,
                Action::Send(
                    3,
                    Msg::Pull {
                        last_seq: 0,
                        last_epoch: 0,
                        ..
                    }
                )
            )),
            "and pulled again from the new primary: {out:?}"
        );
    }

    #[test]
    fn promotion_fences_the_old_primary() {
        let mut net = Net::new(3, Timing::default());
        net.tick_for(1_000);
        net.write(1, put("before", "1")).unwrap();
        net.cut.insert(1);
        net.tick_for(3_000);
        let st = net.m(2).status();
        assert!(st.primary_unreachable_since.is_some());
        assert!(matches!(
            net.write(2, put("x", "x")),
            Err(WriteRefused::ReadOnly { since: Some(_), .. })
        ));

        net.deliver(2, Event::Promote);
        assert!(net.persisted.contains(&(2, Role::Primary, 2)));
        net.run();
        net.tick_for(500);
        assert_eq!(net.m(3).role(), Role::Replica { primary: Some(2) });
        // The old primary, cut off, still acknowledges writes...
        assert_eq!(net.write(1, put("fenced", "old")), Ok(2));
        net.write(2, put("new", "2")).unwrap();

        net.cut.clear();
        net.tick_for(3_000);
        assert_eq!(net.m(1).role(), Role::Replica { primary: Some(2) });
        assert_eq!(net.m(1).epoch(), 2);
        // Stepping down is persisted (with the new primary, learnt in the same event).
        assert!(net
            .persisted
            .iter()
            .any(|&(id, role, epoch)| id == 1 && role != Role::Primary && epoch == 2));
        // ...which are gone everywhere.
        for id in 1..=3 {
            assert!(net.same_data(id, 2), "node {id}");
            assert_eq!(net.log(id).get(1, b"fenced"), None);
            assert_eq!(net.log(id).get(1, b"before"), Some(&b"1"[..]));
            assert_eq!(net.log(id).get(1, b"new"), Some(&b"2"[..]));
        }
        assert_eq!(
            net.write(1, put("y", "y")),
            Err(WriteRefused::ReadOnly {
                primary: Some(2),
                since: None
            })
        );
    }

    #[test]
    fn lower_epoch_messages_are_refused() {
        let mut log = MemLog::new();
        let mut m = Machine::new(2, vec![1, 3], Role::Replica { primary: Some(3) }, 2);
        let stale = Msg::Changes {
            epoch: 1,
            prev_seq: 0,
            prev_epoch: 0,
            changes: vec![Change {
                seq: 1,
                epoch: 1,
                op: put("a", "1"),
            }],
            primary_last: 1,
        };
        let out = m.handle(10, Event::Received(1, stale), &mut log);
        assert_eq!(log.last(), (0, 0));
        assert_eq!(
            out,
            [Action::Send(
                1,
                Msg::Pong {
                    epoch: 2,
                    primary: Some(3)
                }
            )]
        );
        assert_eq!(m.role(), Role::Replica { primary: Some(3) });
    }

    #[test]
    fn higher_epoch_makes_a_primary_step_down() {
        let mut log = MemLog::new();
        let mut m = Machine::new(1, vec![2, 3], Role::Primary, 1);
        assert_eq!(m.handle(0, Event::Write(put("a", "1")), &mut log).len(), 1);
        let out = m.handle(
            5,
            Event::Received(
                3,
                Msg::Ping {
                    epoch: 3,
                    primary: Some(2),
                },
            ),
            &mut log,
        );
        assert_eq!(
            out.first(),
            Some(&Action::Persist {
                role: Role::Replica { primary: None },
                epoch: 3
            })
        );
        // It looks for node 2 (not connected yet: connect).
        assert!(out.contains(&Action::Connect(2)));
        let out = m.handle(6, Event::Write(put("b", "2")), &mut log);
        assert_eq!(
            out,
            [Action::WriteDone(Err(WriteRefused::ReadOnly {
                primary: None,
                since: Some(5)
            }))]
        );
    }

    #[test]
    fn duplicate_reordered_and_malformed_input_is_harmless() {
        let mut primary_log = MemLog::new();
        let c: Vec<Change> = (0..4)
            .map(|i| {
                primary_log
                    .append_local(1, put(&format!("k{i}"), "v"))
                    .unwrap()
            })
            .collect();
        let mut log = MemLog::new();
        let mut m = Machine::new(2, vec![1], Role::Replica { primary: Some(1) }, 1);
        let batch = |prev: (u64, u64), changes: &[Change]| {
            Event::Received(
                1,
                Msg::Changes {
                    epoch: 1,
                    prev_seq: prev.0,
                    prev_epoch: prev.1,
                    changes: changes.to_vec(),
                    primary_last: 4,
                },
            )
        };
        // Out of order: does not follow our log, ignored.
        assert!(m.handle(1, batch((2, 1), &c[2..]), &mut log).is_empty());
        assert_eq!(log.last(), (0, 0));
        m.handle(2, batch((0, 0), &c[..2]), &mut log);
        assert_eq!(log.last(), (2, 1));
        // Duplicate: nothing to do, no pull.
        assert!(m.handle(3, batch((0, 0), &c[..2]), &mut log).is_empty());
        // Overlapping: the new part is applied, then a pull acknowledges it.
        let out = m.handle(4, batch((0, 0), &c[..3]), &mut log);
        assert_eq!(log.last(), (3, 1));
        assert_eq!(
            out,
            [Action::Send(
                1,
                Msg::Pull {
                    epoch: 1,
                    last_seq: 3,
                    last_epoch: 1
                }
            )]
        );
        // A gap inside a batch, or an epoch above the sender's: refused.
        let mut gap = c[3].clone();
        gap.seq = 5;
        assert!(m.handle(5, batch((3, 1), &[gap]), &mut log).is_empty());
        let mut future = c[3].clone();
        future.epoch = 7;
        assert!(m.handle(6, batch((3, 1), &[future]), &mut log).is_empty());
        assert_eq!(log.last(), (3, 1));
        assert!(m.status().last_error.is_some());
        // A snapshot answering an older position is ignored.
        let snap = Event::Received(
            1,
            Msg::Snapshot {
                epoch: 1,
                for_seq: 1,
                for_epoch: 1,
                snapshot: Snapshot {
                    seq: 1,
                    epoch: 1,
                    after: None,
                    entries: Vec::new(),
                    next: None,
                },
            },
        );
        assert!(m.handle(7, snap, &mut log).is_empty());
        assert_eq!(log.data().len(), 3);
        // Unknown nodes are ignored altogether.
        let out = m.handle(
            8,
            Event::Received(
                9,
                Msg::Ping {
                    epoch: 5,
                    primary: Some(9),
                },
            ),
            &mut log,
        );
        assert!(out.is_empty());
        assert_eq!(m.epoch(), 1);
    }

    #[test]
    fn silent_primary_is_disconnected_and_searched_for() {
        let mut net = Net::new(3, Timing::default());
        net.tick_for(1_000);
        let last_heard = net.now;
        net.cut.insert(1);
        net.tick_for(3_000);
        let st = net.m(3).status();
        let since = st.primary_unreachable_since.unwrap();
        assert!(
            since <= last_heard + 50 && since + 1_000 >= last_heard,
            "{since}"
        );
        assert_eq!(st.role, Role::Replica { primary: Some(1) });
        // The primary comes back: found again, reachable.
        net.cut.clear();
        net.tick_for(2_000);
        assert_eq!(net.m(3).status().primary_unreachable_since, None);
        net.write(1, put("a", "1")).unwrap();
        assert!(net.same_data(1, 3));
    }

    #[test]
    fn silent_connections_are_closed() {
        let mut log = MemLog::new();
        let mut m = Machine::new(2, vec![1], Role::Replica { primary: Some(1) }, 1);
        m.handle(0, Event::Connected(1), &mut log);
        let out = m.handle(2_500, Event::Tick, &mut log);
        assert!(out.contains(&Action::Disconnect(1)), "{out:?}");
        assert_eq!(m.status().primary_unreachable_since, Some(0));
    }

    #[test]
    fn two_primaries_in_one_epoch_resolve_to_the_lower_id() {
        let mut net = Net::new(3, Timing::default());
        // Node 2 also believes it is primary at epoch 1, with its own write.
        net.nodes.get_mut(&2).unwrap().0 = Machine::new(2, vec![1, 3], Role::Primary, 1);
        net.cut.insert(1);
        net.tick_for(1_000);
        net.write(2, put("two", "2")).unwrap();
        net.cut.clear();
        net.cut.insert(2);
        net.tick_for(1_000);
        net.write(1, put("one", "1")).unwrap();
        net.cut.clear();
        net.tick_for(4_000);
        assert_eq!(net.m(1).role(), Role::Primary);
        assert_eq!(net.m(1).epoch(), 2);
        for id in 2..=3 {
            assert_eq!(net.m(id).role(), Role::Replica { primary: Some(1) });
            assert!(net.same_data(id, 1), "node {id}");
        }
        assert_eq!(net.log(2).get(1, b"two"), None);
    }

    #[test]
    fn new_primary_at_epoch_zero_is_raised_and_persisted() {
        let mut log = MemLog::new();
        let mut m = Machine::new(1, vec![1, 2, 2], Role::Primary, 0);
        let out = m.handle(0, Event::Write(put("a", "1")), &mut log);
        assert_eq!(
            out,
            [
                Action::Persist {
                    role: Role::Primary,
                    epoch: 1
                },
                Action::WriteDone(Ok(1))
            ]
        );
        assert_eq!(log.last(), (1, 1));
        // Promote on a primary does nothing.
        assert!(m.handle(1, Event::Promote, &mut log).is_empty());
    }

    #[test]
    fn refusal_messages_read_well() {
        let r = WriteRefused::ReadOnly {
            primary: Some(2),
            since: Some(1234),
        };
        assert_eq!(r.to_string(), "read-only: primary 2 unreachable since 1234");
        let r = WriteRefused::ReadOnly {
            primary: None,
            since: None,
        };
        assert_eq!(r.to_string(), "read-only: no primary known");
    }
}
