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

/// A consistent copy of every replicated tree as of log position
/// `(seq, epoch)` (the last change it includes; `(0, 0)` for an empty log).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sequence number of the last change included.
    pub seq: u64,
    /// Epoch of that change.
    pub epoch: u64,
    /// Every key of every replicated tree.
    pub entries: Vec<Entry>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.seq)
            .field("epoch", &self.epoch)
            .field("entries", &self.entries.len())
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
    /// Primary to replica: replace everything by this snapshot, then pull
    /// from its position. Sent when the replica is behind the trimmed part of
    /// the log or holds entries the primary does not have (a fenced tail).
    Snapshot {
        /// Sender's epoch.
        epoch: u64,
        /// The replica position this answers: a replica whose log has moved
        /// since ignores it (duplicate or late delivery).
        for_seq: u64,
        /// Epoch of the entry at `for_seq`.
        for_epoch: u64,
        /// The data.
        snapshot: Snapshot,
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
            | Msg::Snapshot { epoch, .. } => *epoch,
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
            entries: vec![Entry {
                tree: 1,
                key: b"alice".to_vec(),
                value: b"secret-hash".to_vec(),
            }],
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
                    entries: vec![],
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
