//! An in-memory [`ReplLog`]: the model the sled implementation must match,
//! used by the unit tests and the simulator (`tests/repl_sim.rs`).

use std::collections::{BTreeMap, VecDeque};

use super::log::{ApplyError, ReplLog, Trimmed};
use super::msg::{Change, Cursor, Entry, Op};

/// Replicated data and changelog, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemLog {
    data: BTreeMap<(u8, Vec<u8>), Vec<u8>>,
    /// Position the data held before the first kept entry (snapshot or trim).
    base: (u64, u64),
    entries: VecDeque<Change>,
    /// A snapshot install began and its copy is not consistent yet (the
    /// sled store's `repl_installing` marker).
    installing: bool,
}

impl MemLog {
    /// An empty log at `(0, 0)`.
    pub fn new() -> MemLog {
        MemLog::default()
    }

    /// The replicated data, keyed by `(tree, key)`.
    pub fn data(&self) -> &BTreeMap<(u8, Vec<u8>), Vec<u8>> {
        &self.data
    }

    /// The value of `key` in `tree`.
    pub fn get(&self, tree: u8, key: &[u8]) -> Option<&[u8]> {
        self.data.get(&(tree, key.to_vec())).map(Vec::as_slice)
    }

    /// What opening the store again after a crash does: an interrupted
    /// snapshot install leaves empty data at `(0, 0)`.
    pub fn reopen(&mut self) {
        if self.installing {
            let _ = self.install_abort();
        }
    }

    /// Number of changelog entries kept.
    pub fn kept(&self) -> usize {
        self.entries.len()
    }

    /// Drop changelog entries with `seq <= upto` (the data is unchanged);
    /// peers behind that point then need a snapshot.
    pub fn trim(&mut self, upto: u64) {
        while let Some(first) = self.entries.front() {
            if first.seq > upto {
                break;
            }
            self.base = (first.seq, first.epoch);
            self.entries.pop_front();
        }
    }

    fn apply_op(&mut self, op: &Op) {
        match op {
            Op::Put { tree, key, value } => {
                self.data.insert((*tree, key.clone()), value.clone());
            }
            Op::Remove { tree, key } => {
                self.data.remove(&(*tree, key.clone()));
            }
        }
    }
}

impl ReplLog for MemLog {
    fn last(&self) -> (u64, u64) {
        self.entries.back().map_or(self.base, |c| (c.seq, c.epoch))
    }

    fn changes_since(&self, seq: u64, max: usize) -> Result<Vec<Change>, Trimmed> {
        if seq < self.base.0 {
            return Err(Trimmed);
        }
        // Entries are contiguous from base + 1.
        let skip = usize::try_from(seq - self.base.0).unwrap_or(usize::MAX);
        Ok(self.entries.iter().skip(skip).take(max).cloned().collect())
    }

    fn append_local(&mut self, epoch: u64, op: Op) -> Result<Change, ApplyError> {
        let (seq, previous) = self.last();
        if epoch < previous {
            return Err(ApplyError::EpochRegression {
                seq: seq + 1,
                epoch,
                previous,
            });
        }
        self.apply_op(&op);
        let change = Change {
            seq: seq + 1,
            epoch,
            op,
        };
        self.entries.push_back(change.clone());
        Ok(change)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        // Validate the whole batch first: all or nothing.
        let (mut seq, mut epoch) = self.last();
        let start = changes.iter().position(|c| c.seq > seq);
        let fresh = start.and_then(|i| changes.get(i..)).unwrap_or(&[]);
        for c in fresh {
            if c.seq != seq + 1 {
                return Err(ApplyError::Gap {
                    expected: seq + 1,
                    got: c.seq,
                });
            }
            if c.epoch < epoch {
                return Err(ApplyError::EpochRegression {
                    seq: c.seq,
                    epoch: c.epoch,
                    previous: epoch,
                });
            }
            (seq, epoch) = (c.seq, c.epoch);
        }
        for c in fresh {
            self.apply_op(&c.op);
            self.entries.push_back(c.clone());
        }
        Ok(())
    }

    fn snapshot_part(
        &self,
        after: Option<&Cursor>,
        max_bytes: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>), ApplyError> {
        use std::ops::Bound;
        let start = match after {
            Some(c) => Bound::Excluded((c.tree, c.key.clone())),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut size = 0usize;
        let mut rest = self.data.range((start, Bound::Unbounded)).peekable();
        while let Some(((tree, key), value)) = rest.next() {
            size = size.saturating_add(key.len() + value.len());
            out.push(Entry {
                tree: *tree,
                key: key.clone(),
                value: value.clone(),
            });
            if size >= max_bytes && rest.peek().is_some() {
                let next = Cursor {
                    tree: *tree,
                    key: key.clone(),
                };
                return Ok((out, Some(next)));
            }
        }
        Ok((out, None))
    }

    fn install_begin(&mut self, _seq: u64, _epoch: u64) -> Result<(), ApplyError> {
        self.install_abort()?;
        self.installing = true;
        Ok(())
    }

    fn install_part(&mut self, entries: &[Entry]) -> Result<(), ApplyError> {
        for e in entries {
            self.data.insert((e.tree, e.key.clone()), e.value.clone());
        }
        Ok(())
    }

    fn install_finish(&mut self, seq: u64, epoch: u64) -> Result<(), ApplyError> {
        self.base = (seq, epoch);
        self.entries.clear();
        Ok(())
    }

    fn install_settled(&mut self) -> Result<(), ApplyError> {
        self.installing = false;
        Ok(())
    }

    fn install_abort(&mut self) -> Result<(), ApplyError> {
        self.data.clear();
        self.base = (0, 0);
        self.entries.clear();
        self.installing = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            tree: 1,
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn append_apply_idempotent_and_ordered() {
        let mut p = MemLog::new();
        assert_eq!(p.last(), (0, 0));
        let a = p.append_local(1, put("a", "1")).unwrap();
        let b = p.append_local(1, put("b", "2")).unwrap();
        let c = p
            .append_local(
                2,
                Op::Remove {
                    tree: 1,
                    key: b"a".to_vec(),
                },
            )
            .unwrap();
        assert_eq!((c.seq, c.epoch), (3, 2));
        assert!(matches!(
            p.append_local(1, put("x", "y")),
            Err(ApplyError::EpochRegression { .. })
        ));

        let mut r = MemLog::new();
        assert_eq!(
            r.apply(std::slice::from_ref(&b)),
            Err(ApplyError::Gap {
                expected: 1,
                got: 2
            })
        );
        r.apply(&[a.clone(), b.clone()]).unwrap();
        // Duplicates and overlap are skipped.
        r.apply(&[a.clone(), b.clone(), c.clone()]).unwrap();
        r.apply(std::slice::from_ref(&c)).unwrap();
        assert_eq!(r.data(), p.data());
        assert_eq!(r.last(), (3, 2));
        assert_eq!(r.get(1, b"b"), Some(&b"2"[..]));
        assert_eq!(r.get(1, b"a"), None);
        // An epoch that goes back is refused, and nothing of the batch lands.
        let bad = [
            Change {
                seq: 4,
                epoch: 2,
                op: put("d", "4"),
            },
            Change {
                seq: 5,
                epoch: 1,
                op: put("e", "5"),
            },
        ];
        assert!(matches!(
            r.apply(&bad),
            Err(ApplyError::EpochRegression { seq: 5, .. })
        ));
        assert_eq!(r.last(), (3, 2));
        assert_eq!(r.get(1, b"d"), None);
    }

    #[test]
    fn trim_and_snapshot() {
        let mut p = MemLog::new();
        for i in 0..5 {
            p.append_local(1, put(&format!("k{i}"), "v")).unwrap();
        }
        assert_eq!(p.changes_since(0, 2).unwrap().len(), 2);
        assert_eq!(p.changes_since(3, 10).unwrap().len(), 2);
        assert!(p.changes_since(5, 10).unwrap().is_empty());
        assert!(p.changes_since(9, 10).unwrap().is_empty());
        p.trim(3);
        assert_eq!(p.kept(), 2);
        assert_eq!(p.changes_since(2, 10), Err(Trimmed));
        assert_eq!(
            p.changes_since(3, 10).unwrap().first().map(|c| c.seq),
            Some(4)
        );
        assert_eq!(p.last(), (5, 1));
        p.trim(10);
        assert_eq!(p.last(), (5, 1));
        assert!(p.changes_since(5, 10).unwrap().is_empty());

        let snap = p.snapshot();
        assert_eq!((snap.seq, snap.epoch, snap.entries.len()), (5, 1, 5));
        let mut r = MemLog::new();
        r.append_local(1, put("stale", "x")).unwrap();
        r.install_snapshot(snap).unwrap();
        assert_eq!(r.data(), p.data());
        assert_eq!(r.last(), (5, 1));
        assert_eq!(r.changes_since(4, 1), Err(Trimmed));
        let next = p.append_local(2, put("k9", "v")).unwrap();
        r.apply(&[next]).unwrap();
        assert_eq!(r.data(), p.data());
    }
}
