//! The storage the replication machine reads and writes: implemented by the
//! driver over sled, and in memory by [`MemLog`](super::MemLog) for tests.

use super::msg::{Change, Cursor, Entry, Op, Snapshot};

/// The changelog no longer holds the entries asked for (trimmed, or replaced
/// by an installed snapshot): the peer needs a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("changelog trimmed: the requested entries are gone")]
pub struct Trimmed;

/// Why changes or a snapshot could not be stored.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The batch does not follow the log: a sequence number is missing.
    #[error("changelog gap: expected seq {expected}, got {got}")]
    Gap {
        /// The next sequence number the log needs.
        expected: u64,
        /// The sequence number offered.
        got: u64,
    },
    /// A change has a lower epoch than the entry before it.
    #[error("changelog epoch goes back at seq {seq}: {epoch} after {previous}")]
    EpochRegression {
        /// The offending change.
        seq: u64,
        /// Its epoch.
        epoch: u64,
        /// The epoch of the entry before it.
        previous: u64,
    },
    /// The storage failed (sled error text).
    #[error("storage error: {0}")]
    Storage(String),
}

/// Storage the machine reads and the driver implements.
///
/// Every method is called from [`Machine::handle`](super::Machine::handle)
/// only; the driver serializes calls (one machine, one log).
pub trait ReplLog {
    /// `(seq, epoch)` of the last entry, or of the installed snapshot when no
    /// entry follows it; `(0, 0)` when empty.
    fn last(&self) -> (u64, u64);

    /// Entries with a sequence number greater than `seq`, in order, at most
    /// `max`. `Err(Trimmed)` when the entry `seq + 1` is no longer kept (and
    /// `seq` is before [`last`](Self::last)). An empty vector when `seq` is at
    /// or past the end.
    fn changes_since(&self, seq: u64, max: usize) -> Result<Vec<Change>, Trimmed>;

    /// Primary write: apply `op` to the data and append it at `last().0 + 1`
    /// with `epoch`, atomically (one sled transaction), durably.
    fn append_local(&mut self, epoch: u64, op: Op) -> Result<Change, ApplyError>;

    /// Replica: apply `changes` (ascending, contiguous) to the data and the
    /// log atomically. Entries at or before `last().0` are skipped
    /// (idempotent); the first new one must be `last().0 + 1` (else
    /// [`ApplyError::Gap`]) and epochs must not go back.
    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError>;

    /// A consistent copy of all replicated data as of [`last`](Self::last).
    /// The default reads every part (consistent only while nothing writes:
    /// tests and tools); the machine sends parts ([`snapshot_part`]).
    ///
    /// [`snapshot_part`]: Self::snapshot_part
    fn snapshot(&self) -> Snapshot {
        let (seq, epoch) = self.last();
        let mut entries = Vec::new();
        let mut after = None;
        loop {
            match self.snapshot_part(after.as_ref(), usize::MAX) {
                Ok((mut part, next)) => {
                    entries.append(&mut part);
                    match next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                Err(_) => {
                    // Deliberately malformed: every replica refuses it.
                    return Snapshot {
                        seq: 0,
                        epoch: u64::MAX,
                        after: None,
                        entries: Vec::new(),
                        next: None,
                    };
                }
            }
        }
        Snapshot {
            seq,
            epoch,
            after: None,
            entries,
            next: None,
        }
    }

    /// Entries of the live replicated trees following `after` (from the
    /// start when `None`), in `(tree, key)` order, until about `max_bytes`
    /// of keys and values (at least one entry); with the position to ask
    /// for the rest from, `None` when these are the last.
    fn snapshot_part(
        &self,
        after: Option<&Cursor>,
        max_bytes: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>), ApplyError>;

    /// Starts replacing all replicated data by a snapshot at `(seq, epoch)`:
    /// empties the data and the changelog, position `(0, 0)` until
    /// [`install_finish`](Self::install_finish). A store reopened before
    /// that starts empty at `(0, 0)`.
    fn install_begin(&mut self, seq: u64, epoch: u64) -> Result<(), ApplyError>;

    /// Adds the entries of one snapshot part.
    fn install_part(&mut self, entries: &[Entry]) -> Result<(), ApplyError>;

    /// Ends an install: the log position becomes `(seq, epoch)` (the
    /// changelog stays empty). The data may still hold changes after that
    /// position (parts are read from live trees): a store reopened before
    /// [`install_settled`](Self::install_settled) starts empty at `(0, 0)`.
    fn install_finish(&mut self, seq: u64, epoch: u64) -> Result<(), ApplyError>;

    /// The installed data is consistent with the log position: the replica
    /// has replayed the changelog past every change the snapshot's parts
    /// can hold. From here a reopened store keeps its data.
    fn install_settled(&mut self) -> Result<(), ApplyError>;

    /// Gives up an install: empty data at `(0, 0)`, from which a later
    /// snapshot (or the whole log) can start.
    fn install_abort(&mut self) -> Result<(), ApplyError>;

    /// Replace all replicated data by `s` and the log position by
    /// `(s.seq, s.epoch)`, discarding every changelog entry (those after
    /// `s.seq` included: this is how a fenced tail disappears).
    fn install_snapshot(&mut self, s: Snapshot) -> Result<(), ApplyError> {
        self.install_begin(s.seq, s.epoch)?;
        self.install_part(&s.entries)?;
        self.install_finish(s.seq, s.epoch)?;
        // One part read at once: nothing follows that the copy could hold.
        self.install_settled()
    }
}
