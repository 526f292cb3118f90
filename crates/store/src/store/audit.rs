//! The audit log part of the [`Store`]: appends, queries and trims of the
//! journal kept beside the database. Split from `store.rs` by concern.

use std::path::Path;

use super::Store;
use crate::{AuditFilter, AuditRecord, JournalCursor, StoreError};

impl Store {
    /// Appends one audit record to the journal. Hot path: buffered, not
    /// flushed (see [`Store::append_audit_batch`]).
    pub fn append_audit(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        self.inner.journal.append(std::slice::from_ref(rec))
    }

    /// Appends records to the audit journal under one lock, in order. Hot
    /// path: the records go to a 64 KiB buffer, written to the segment file
    /// when it fills and at least every `flush_every_ms` (200 ms by default),
    /// and fsynced by the background flusher at that interval or by
    /// [`Store::flush`]. Visible to [`Store::query_audit`] at once.
    ///
    /// Errors: [`StoreError::Io`] when the journal cannot be written; the
    /// records of the call are then not recorded, except that a batch
    /// crossing a segment boundary (64 MiB, or a record of a later UTC day) may
    /// have recorded those before the boundary.
    pub fn append_audit_batch(&self, recs: &[AuditRecord]) -> Result<(), StoreError> {
        self.inner.journal.append(recs)
    }

    /// Audit records matching `f`, in chronological order (equal times in
    /// insertion order). With `f.limit`, the most recent `limit` matches (still
    /// oldest first). Reads the journal segments that can hold matches: with
    /// `since_ms`, segments that started on an earlier UTC day are skipped.
    ///
    /// [`StoreError::Corrupt`] names the file and line of a record that does
    /// not parse (a torn last line is repaired at open, not reported).
    pub fn query_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.journal.query(f)
    }

    /// [`Store::query_audit`] with one more condition on each record
    /// (applied before `limit`, so the limit counts matching records only).
    pub fn query_audit_where(
        &self,
        f: &AuditFilter,
        extra: impl Fn(&AuditRecord) -> bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.journal.query_where(f, &extra)
    }

    /// This node's own records with `seq > after` (up to `max`, in sequence
    /// order), for shipping to the primary; `cursor` is where the previous
    /// read ended (a hint: without it, or when its segment is gone, the
    /// records are found by sequence). Everything returned is fsynced first,
    /// so a crash cannot make this node number a shipped record again.
    pub fn audit_read_after(
        &self,
        after: u64,
        cursor: Option<JournalCursor>,
        max: usize,
    ) -> Result<(Vec<AuditRecord>, Option<JournalCursor>), StoreError> {
        self.inner.journal.flush()?;
        self.inner.journal.read_after(after, cursor, max)
    }

    /// The `seq` the next record of this node's journal will get.
    pub fn audit_next_seq(&self) -> u64 {
        self.inner.journal.position().1
    }

    /// Stores records another node shipped (`node`: its name) in the cluster
    /// inbox, each (`server_name`, `seq`) once, fsynced; returns the
    /// sequence the sender may resume after (see [`Store::audit_read_after`]):
    /// the batch's highest, or for an empty batch the highest stored from
    /// `node`.
    pub fn accept_shipped_audit(
        &self,
        node: &str,
        recs: Vec<AuditRecord>,
    ) -> Result<u64, StoreError> {
        self.inner.inbox.accept(node, recs)
    }

    /// The cluster's audit records as this node holds them: its own journal
    /// and the inbox of records other nodes shipped to it (records naming
    /// `node_name`, this node, come from its own journal only). Same order
    /// and `limit` rule as [`Store::query_audit`].
    pub fn query_cluster_audit(
        &self,
        f: &AuditFilter,
        node_name: &str,
        extra: impl Fn(&AuditRecord) -> bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let own = self.inner.journal.query_where(f, &extra)?;
        let shipped = self
            .inner
            .inbox
            .query(f, &|r| r.server_name != node_name && extra(r))?;
        if shipped.is_empty() {
            return Ok(own);
        }
        let mut all = own;
        all.extend(shipped);
        // Stable: equal times keep this node's records first.
        all.sort_by_key(|r| r.time_ms);
        if let Some(limit) = f.limit {
            let cut = all.len().saturating_sub(limit);
            all.drain(..cut);
        }
        Ok(all)
    }

    /// Removes audit records older than `older_than_ms`, a whole journal
    /// segment at a time: a segment goes when *all* its records have
    /// `time_ms < older_than_ms`; no file is rewritten. Segments hold at most one
    /// UTC day (and at most 64 MiB), so records up to a day older than the
    /// cutoff can remain (those in the segment that holds the cutoff).
    /// Returns the number of records removed.
    /// The cluster inbox (records shipped from other nodes) is trimmed the
    /// same way.
    pub fn trim_audit(&self, older_than_ms: u64) -> Result<usize, StoreError> {
        Ok(self.inner.journal.trim(older_than_ms)? + self.inner.inbox.trim(older_than_ms)?)
    }

    /// The audit journal directory: `<db dir>.audit`, beside the database
    /// directory (JSON lines, one record per line, greppable).
    pub fn audit_dir(&self) -> &Path {
        self.inner.journal.dir()
    }

    /// Bytes of torn (incomplete) last lines cut off the audit journal when
    /// the store was opened: non-zero after a crash in the middle of a write.
    pub fn audit_torn_bytes(&self) -> u64 {
        self.inner.journal.torn_bytes()
    }
}
