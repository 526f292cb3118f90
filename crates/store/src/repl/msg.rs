//! Replication data and wire types: changelog entries, snapshots and the
//! messages two machines exchange.
//!
//! Every type here derives serde so the driver can frame it as it likes. The
//! machine never trusts a message: it checks the epoch first, then that a
//! batch of changes is contiguous and follows its own log before applying it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node of the cluster (the id in its certificate, `node-N.radmfa.cluster`).
pub type NodeId = u16;

/// One replicated operation on a sled tree. `tree` names the tree (the driver
/// owns the numbering); keys and values are the raw sled bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Insert or overwrite `key` in `tree`.
    Put {
        /// The tree.
        tree: u8,
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Remove `key` from `tree` (a no-op if absent).
    Remove {
        /// The tree.
        tree: u8,
        /// The key.
        key: Vec<u8>,
    },
}

impl Op {
    /// The tree this operation touches.
    pub fn tree(&self) -> u8 {
        match self {
            Op::Put { tree, .. } | Op::Remove { tree, .. } => *tree,
        }
    }

    /// The key this operation touches.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Remove { key, .. } => key,
        }
    }
}

/// Values hold password hashes and sealed seeds: `Debug` prints sizes only.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { tree, key, value } => f
                .debug_struct("Put")
                .field("tree", tree)
                .field("key_len", &key.len())
                .field("value_len", &value.len())
                .finish(),
            Op::Remove { tree, key } => f
                .debug_struct("Remove")
                .field("tree", tree)
                .field("key_len", &key.len())
                .finish(),
        }
    }
}

/// One changelog entry: written by the primary of `epoch` at position `seq`.
///
/// Sequence numbers start at 1 and have no gaps; epochs never decrease along
/// a log. Two logs holding the same `(seq, epoch)` hold the same entries up to
/// `seq`: only one node is primary in an epoch, and it only appends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the log (1-based, no gaps).
    pub seq: u64,
    /// Epoch of the primary that wrote it.
    pub epoch: u64,
    /// What it does.
    pub op: Op,
}

/// One key of a [`Snapshot`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The tree.
    pub tree: u8,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("tree", &self.tree)
            .field("key_len", &self.key.len())
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// A position in the replicated data: a tree and a key in it. Snapshot
/// parts follow each other in `(tree, key)` order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// The tree.
    pub tree: u8,
    /// The key.
    pub key: Vec<u8>,
}

/// A copy of the replicated trees as of log position `(seq, epoch)`, or one
/// part of it: the entries after `after` (from the start when `None`) up to
/// `next` (to the end when `None`). A whole snapshot is one part with both
/// `None`.
///
/// A snapshot sent in parts is *fuzzy*: each part is read from the live
/// trees, so it may already hold changes made after `seq`. Replaying the
/// changelog from `seq` on top of the installed parts (every change is a
/// whole-value put or a remove) brings the copy to a consistent state; the
/// replica does exactly that by pulling from `(seq, epoch)` when the last
/// part is in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sequence number of the last change included (at least).
    pub seq: u64,
    /// Epoch of that change.
    pub epoch: u64,
    /// The entries follow this position (`None`: the first part).
    #[serde(default)]
    pub after: Option<Cursor>,
    /// Entries, in `(tree, key)` order.
    pub entries: Vec<Entry>,
    /// More entries follow this position (`None`: the last part).
    #[serde(default)]
    pub next: Option<Cursor>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .field("first", &self.after.is_none())
            .field("entries", &self.entries.len())
            .field("last", &self.next.is_none())
            .finish()
    }
}

/// A replication message. Every message carries the sender's epoch: the
/// receiver adopts a higher one (a primary steps down) and refuses a message
/// with a lower one (fencing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Liveness and discovery probe, sent to every configured peer
    /// periodically. Answered with [`Msg::Pong`].
    Ping {
        /// Sender's epoch.
        epoch: u64,
        /// Who the sender follows at that epoch (itself when it is primary).
        primary: Option<NodeId>,
    },
    /// Answer to a [`Msg::Ping`], and to a request the receiver refused.
    Pong {
        /// Sender's epoch.
        epoch: u64,
        /// Who the sender follows at that epoch (itself when it is primary).
        primary: Option<NodeId>,
    },
    /// Replica to primary: "my log ends at `(last_seq, last_epoch)`; send what
    /// follows". Sent when following a primary, after each applied batch
    /// (acknowledgement and flow control: one batch in flight) and as a
    /// heartbeat.
    Pull {
        /// Sender's epoch.
        epoch: u64,
        /// Sequence number of the replica's last entry (0 when empty).
        last_seq: u64,
        /// Epoch of that entry (0 when empty).
        last_epoch: u64,
    },
    /// Primary to replica: changes following `(prev_seq, prev_epoch)`
    /// (possibly none: then it is a heartbeat).
    Changes {
        /// Sender's epoch.
        epoch: u64,
        /// Position the first change follows.
        prev_seq: u64,
        /// Epoch of the entry at `prev_seq`.
        prev_epoch: u64,
        /// Contiguous changes, `prev_seq + 1` first; at most the batch size.
        changes: Vec<Change>,
        /// The primary's last sequence number (the replica's lag).
        primary_last: u64,
    },
    /// Primary to replica: one part of a snapshot. The first part (its
    /// `after` is `None`) answers a [`Msg::Pull`] from a replica that is
    /// behind the trimmed part of the log or holds entries the primary does
    /// not have (a fenced tail): the replica then replaces everything by the
    /// parts, asking for each next one with [`Msg::SnapshotPull`], and pulls
    /// from the snapshot's position after the last.
    Snapshot {
        /// Sender's epoch.
        epoch: u64,
        /// First part: the replica position this answers (a replica whose
        /// log has moved since ignores it: duplicate or late delivery).
        /// Later parts: the snapshot's position.
        for_seq: u64,
        /// Epoch of the entry at `for_seq`.
        for_epoch: u64,
        /// The data.
        snapshot: Snapshot,
    },
    /// Replica to primary: "send the part of snapshot `(seq, snap_epoch)`
    /// that follows `after`". Also the replica's heartbeat while it
    /// installs a snapshot (re-sent when a part is late).
    SnapshotPull {
        /// Sender's epoch.
        epoch: u64,
        /// Position of the snapshot being installed.
        seq: u64,
        /// Its epoch.
        snap_epoch: u64,
        /// The last position the replica has.
        after: Cursor,
    },
}

impl Msg {
    /// The sender's epoch.
    pub fn epoch(&self) -> u64 {
        match self {
            Msg::Ping { epoch, .. }
            | Msg::Pong { epoch, .. }
            | Msg::Pull { epoch, .. }
            | Msg::Changes { epoch, .. }
            | Msg::Snapshot { epoch, .. }
            | Msg::SnapshotPull { epoch, .. } => *epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_values() {
        let op = Op::Put {
            tree: 1,
            key: b"alice".to_vec(),
            value: b"secret-hash".to_vec(),
        };
        let s = format!("{op:?}");
        assert!(!s.contains("alice") && !s.contains("secret"), "{s}");
        let snap = Snapshot {
            seq: 3,
            epoch: 1,
            after: None,
            entries: vec![Entry {
                tree: 1,
                key: b"alice".to_vec(),
                value: b"secret-hash".to_vec(),
            }],
            next: None,
        };
        let s = format!("{snap:?}");
        assert!(!s.contains("secret") && s.contains("entries: 1"), "{s}");
    }

    #[test]
    fn serde_round_trip_and_epoch() {
        let msgs = [
            Msg::Ping {
                epoch: 1,
                primary: None,
            },
            Msg::Pong {
                epoch: 2,
                primary: Some(3),
            },
            Msg::Pull {
                epoch: 3,
                last_seq: 9,
                last_epoch: 2,
            },
            Msg::Changes {
                epoch: 4,
                prev_seq: 1,
                prev_epoch: 1,
                changes: vec![Change {
                    seq: 2,
                    epoch: 4,
                    op: Op::Remove {
                        tree: 0,
                        key: vec![1, 2],
                    },
                }],
                primary_last: 2,
            },
            Msg::Snapshot {
                epoch: 5,
                for_seq: 0,
                for_epoch: 0,
                snapshot: Snapshot {
                    seq: 2,
                    epoch: 4,
                    after: Some(Cursor {
                        tree: 1,
                        key: b"a".to_vec(),
                    }),
                    entries: vec![],
                    next: None,
                },
            },
            Msg::SnapshotPull {
                epoch: 6,
                seq: 2,
                snap_epoch: 4,
                after: Cursor {
                    tree: 2,
                    key: b"b".to_vec(),
                },
            },
        ];
        for (i, m) in msgs.iter().enumerate() {
            let json = serde_json::to_string(m).unwrap();
            let back: Msg = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, m);
            assert_eq!(m.epoch(), i as u64 + 1);
        }
        assert!(serde_json::from_str::<Msg>(r#"{"Ping":{"epoch":"x"}}"#).is_err());
    }
}
