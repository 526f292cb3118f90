//! The storage the replication machine reads and writes: implemented by the
//! driver over sled, and in memory by [`MemLog`](super::MemLog) for tests.

use super::msg::{Change, Op, Snapshot};

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
    fn snapshot(&self) -> Snapshot;

    /// Replace all replicated data by `s` and the log position by
    /// `(s.seq, s.epoch)`, discarding every changelog entry (those after
    /// `s.seq` included: this is how a fenced tail disappears).
    fn install_snapshot(&mut self, s: Snapshot) -> Result<(), ApplyError>;
}
