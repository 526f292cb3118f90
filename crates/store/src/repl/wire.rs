//! A compact binary encoding of [`Msg`] for the driver's transport (the peer
//! link): fixed-width big-endian integers and length-prefixed byte strings,
//! so a snapshot of a million users costs its raw bytes plus a few per key.
//!
//! ```text
//! u8  tag (1 Ping, 2 Pong, 3 Pull, 4 Changes, 5 Snapshot, 6 SnapshotPull)
//! u64 epoch
//! Ping / Pong: u8 has_primary (0/1), u16 primary (0 when absent)
//! Pull:        u64 last_seq, u64 last_epoch
//! Changes:     u64 prev_seq, u64 prev_epoch, u64 primary_last, u32 count,
//!              count x (u64 seq, u64 epoch, op)
//! Snapshot:    u64 for_seq, u64 for_epoch, u64 seq, u64 epoch,
//!              cursor? after, cursor? next, u64 count,
//!              count x (u8 tree, bytes key, bytes value)
//! SnapshotPull: u64 seq, u64 snap_epoch, cursor after
//! cursor?:     u8 present (0/1)[, cursor]
//! cursor:      u8 tree, bytes key
//! op:          u8 kind (0 put, 1 remove), u8 tree, bytes key[, bytes value]
//! bytes:       u32 length, then the bytes
//! ```
//!
//! Decoding never trusts a count or a length: every read is bounds-checked,
//! capacity is reserved only for what the remaining bytes can hold, and
//! trailing bytes are an error.

use super::msg::{Change, Cursor, Entry, Msg, Op, Snapshot};

/// Why bytes are not a message.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end inside a field.
    #[error("truncated replication message")]
    Truncated,
    /// Bytes follow the message.
    #[error("trailing bytes after a replication message")]
    Trailing,
    /// A tag or flag outside its range.
    #[error("invalid replication message: {0}")]
    Invalid(&'static str),
    /// A key or value longer than a u32 can say.
    #[error("field too large to encode")]
    TooLarge,
}

const PING: u8 = 1;
const PONG: u8 = 2;
const PULL: u8 = 3;
const CHANGES: u8 = 4;
const SNAPSHOT: u8 = 5;
const SNAPSHOT_PULL: u8 = 6;

/// Encodes `msg` (appended to `out`).
pub fn encode(msg: &Msg, out: &mut Vec<u8>) -> Result<(), WireError> {
    match msg {
        Msg::Ping { epoch, primary } | Msg::Pong { epoch, primary } => {
            out.push(if matches!(msg, Msg::Ping { .. }) {
                PING
            } else {
                PONG
            });
            out.extend_from_slice(&epoch.to_be_bytes());
            out.push(u8::from(primary.is_some()));
            out.extend_from_slice(&primary.unwrap_or(0).to_be_bytes());
        }
        Msg::Pull {
            epoch,
            last_seq,
            last_epoch,
        } => {
            out.push(PULL);
            for v in [epoch, last_seq, last_epoch] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Msg::Changes {
            epoch,
            prev_seq,
            prev_epoch,
            changes,
            primary_last,
        } => {
            out.push(CHANGES);
            for v in [epoch, prev_seq, prev_epoch, primary_last] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            let n = u32::try_from(changes.len()).map_err(|_| WireError::TooLarge)?;
            out.extend_from_slice(&n.to_be_bytes());
            for c in changes {
                out.extend_from_slice(&c.seq.to_be_bytes());
                out.extend_from_slice(&c.epoch.to_be_bytes());
                match &c.op {
                    Op::Put { tree, key, value } => {
                        out.extend_from_slice(&[0, *tree]);
                        bytes(out, key)?;
                        bytes(out, value)?;
                    }
                    Op::Remove { tree, key } => {
                        out.extend_from_slice(&[1, *tree]);
                        bytes(out, key)?;
                    }
                }
            }
        }
        Msg::Snapshot {
            epoch,
            for_seq,
            for_epoch,
            snapshot,
        } => {
            out.push(SNAPSHOT);
            for v in [epoch, for_seq, for_epoch, &snapshot.seq, &snapshot.epoch] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            for c in [&snapshot.after, &snapshot.next] {
                out.push(u8::from(c.is_some()));
                if let Some(c) = c {
                    cursor(out, c)?;
                }
            }
            out.extend_from_slice(&(snapshot.entries.len() as u64).to_be_bytes());
            out.reserve(
                snapshot
                    .entries
                    .iter()
                    .map(|e| 9 + e.key.len() + e.value.len())
                    .sum(),
            );
            for e in &snapshot.entries {
                out.push(e.tree);
                bytes(out, &e.key)?;
                bytes(out, &e.value)?;
            }
        }
        Msg::SnapshotPull {
            epoch,
            seq,
            snap_epoch,
            after,
        } => {
            out.push(SNAPSHOT_PULL);
            for v in [epoch, seq, snap_epoch] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            cursor(out, after)?;
        }
    }
    Ok(())
}

fn cursor(out: &mut Vec<u8>, c: &Cursor) -> Result<(), WireError> {
    out.push(c.tree);
    bytes(out, &c.key)
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), WireError> {
    let n = u32::try_from(b.len()).map_err(|_| WireError::TooLarge)?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let n = u32::from_be_bytes(self.array()?);
        let n = usize::try_from(n).map_err(|_| WireError::Truncated)?;
        Ok(self.take(n)?.to_vec())
    }
    fn cursor(&mut self) -> Result<Cursor, WireError> {
        Ok(Cursor {
            tree: self.u8()?,
            key: self.bytes()?,
        })
    }
    fn opt_cursor(&mut self) -> Result<Option<Cursor>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.cursor()?)),
            _ => Err(WireError::Invalid("cursor flag")),
        }
    }
    /// Capacity for `count` items of at least `min` bytes each, bounded by
    /// what is left (a forged count cannot make us allocate).
    fn capacity(&self, count: u64, min: usize) -> usize {
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.0.len() / min.max(1))
    }
}

/// Decodes one whole message.
pub fn decode(buf: &[u8]) -> Result<Msg, WireError> {
    let mut r = Reader(buf);
    let tag = r.u8()?;
    let epoch = r.u64()?;
    let msg = match tag {
        PING | PONG => {
            let has = r.u8()?;
            let id = u16::from_be_bytes(r.array()?);
            let primary = match has {
                0 if id == 0 => None,
                1 => Some(id),
                _ => return Err(WireError::Invalid("primary flag")),
            };
            if tag == PING {
                Msg::Ping { epoch, primary }
            } else {
                Msg::Pong { epoch, primary }
            }
        }
        PULL => Msg::Pull {
            epoch,
            last_seq: r.u64()?,
            last_epoch: r.u64()?,
        },
        CHANGES => {
            let prev_seq = r.u64()?;
            let prev_epoch = r.u64()?;
            let primary_last = r.u64()?;
            let n = u32::from_be_bytes(r.array()?);
            let mut changes = Vec::with_capacity(r.capacity(u64::from(n), 22));
            for _ in 0..n {
                let seq = r.u64()?;
                let epoch = r.u64()?;
                let kind = r.u8()?;
                let tree = r.u8()?;
                let key = r.bytes()?;
                let op = match kind {
                    0 => Op::Put {
                        tree,
                        key,
                        value: r.bytes()?,
                    },
                    1 => Op::Remove { tree, key },
                    _ => return Err(WireError::Invalid("op kind")),
                };
                changes.push(Change { seq, epoch, op });
            }
            Msg::Changes {
                epoch,
                prev_seq,
                prev_epoch,
                changes,
                primary_last,
            }
        }
        SNAPSHOT => {
            let for_seq = r.u64()?;
            let for_epoch = r.u64()?;
            let seq = r.u64()?;
            let snap_epoch = r.u64()?;
            let after = r.opt_cursor()?;
            let next = r.opt_cursor()?;
            let n = r.u64()?;
            let mut entries = Vec::with_capacity(r.capacity(n, 9));
            for _ in 0..n {
                let tree = r.u8()?;
                let key = r.bytes()?;
                let value = r.bytes()?;
                entries.push(Entry { tree, key, value });
            }
            Msg::Snapshot {
                epoch,
                for_seq,
                for_epoch,
                snapshot: Snapshot {
                    seq,
                    epoch: snap_epoch,
                    after,
                    entries,
                    next,
                },
            }
        }
        SNAPSHOT_PULL => Msg::SnapshotPull {
            epoch,
            seq: r.u64()?,
            snap_epoch: r.u64()?,
            after: r.cursor()?,
        },
        _ => return Err(WireError::Invalid("message tag")),
    };
    if !r.0.is_empty() {
        return Err(WireError::Trailing);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Msg> {
        vec![
            Msg::Ping {
                epoch: 1,
                primary: None,
            },
            Msg::Ping {
                epoch: 2,
                primary: Some(0),
            },
            Msg::Pong {
                epoch: u64::MAX,
                primary: Some(65535),
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
                changes: vec![
                    Change {
                        seq: 2,
                        epoch: 4,
                        op: Op::Put {
                            tree: 1,
                            key: b"alice".to_vec(),
                            value: vec![7; 300],
                        },
                    },
                    Change {
                        seq: 3,
                        epoch: 4,
                        op: Op::Remove {
                            tree: 2,
                            key: vec![],
                        },
                    },
                ],
                primary_last: 3,
            },
            Msg::Changes {
                epoch: 4,
                prev_seq: 3,
                prev_epoch: 4,
                changes: vec![],
                primary_last: 3,
            },
            Msg::Snapshot {
                epoch: 5,
                for_seq: 0,
                for_epoch: 0,
                snapshot: Snapshot {
                    seq: 2,
                    epoch: 4,
                    entries: (0..100u8)
                        .map(|i| Entry {
                            tree: i % 4 + 1,
                            key: vec![i; usize::from(i)],
                            value: vec![i; 3],
                        })
                        .collect(),
                    after: None,
                    next: Some(Cursor {
                        tree: 4,
                        key: vec![99; 99],
                    }),
                },
            },
            Msg::Snapshot {
                epoch: 5,
                for_seq: 2,
                for_epoch: 4,
                snapshot: Snapshot {
                    seq: 2,
                    epoch: 4,
                    after: Some(Cursor {
                        tree: 4,
                        key: vec![99; 99],
                    }),
                    entries: vec![Entry {
                        tree: 5,
                        key: vec![],
                        value: vec![1],
                    }],
                    next: None,
                },
            },
            Msg::SnapshotPull {
                epoch: 5,
                seq: 2,
                snap_epoch: 4,
                after: Cursor {
                    tree: 1,
                    key: b"bob".to_vec(),
                },
            },
        ]
    }

    #[test]
    fn round_trip() {
        for m in samples() {
            let mut buf = Vec::new();
            encode(&m, &mut buf).unwrap();
            assert_eq!(decode(&buf).unwrap(), m);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        for m in samples() {
            let mut buf = Vec::new();
            encode(&m, &mut buf).unwrap();
            for cut in 0..buf.len() {
                assert!(decode(&buf[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            buf.push(0);
            assert_eq!(decode(&buf), Err(WireError::Trailing));
        }
    }

    #[test]
    fn bad_cursor_flag_is_refused() {
        let mut buf = vec![SNAPSHOT];
        for _ in 0..5 {
            buf.extend_from_slice(&1u64.to_be_bytes());
        }
        buf.extend_from_slice(&[2, 0]);
        buf.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(decode(&buf), Err(WireError::Invalid("cursor flag")));
    }

    #[test]
    fn forged_counts_do_not_allocate_or_panic() {
        // A snapshot claiming u64::MAX entries with none present.
        let mut buf = vec![SNAPSHOT];
        for _ in 0..5 {
            buf.extend_from_slice(&1u64.to_be_bytes());
        }
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode(&buf), Err(WireError::Truncated));
        // A key length beyond the buffer.
        let mut buf = vec![CHANGES];
        for _ in 0..4 {
            buf.extend_from_slice(&1u64.to_be_bytes());
        }
        buf.extend_from_slice(&1u32.to_be_bytes());
        buf.extend_from_slice(&[0; 16]);
        buf.extend_from_slice(&[0, 1]);
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&buf), Err(WireError::Truncated));
        // Bad tags and flags.
        assert!(decode(&[9; 40]).is_err());
        let mut ping = vec![PING];
        ping.extend_from_slice(&1u64.to_be_bytes());
        ping.extend_from_slice(&[2, 0, 0]);
        assert_eq!(decode(&ping), Err(WireError::Invalid("primary flag")));
        // Pseudo-random garbage never panics.
        let mut x: u32 = 0x1234_5678;
        for len in 0..400 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 7) as u8
                })
                .collect();
            let _ = decode(&junk);
        }
    }
}
