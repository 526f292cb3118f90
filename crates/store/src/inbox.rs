//! The cluster audit inbox: the records other nodes shipped to this node
//! while it was the primary, in `<db dir>.audit/cluster/` (a journal of its
//! own, so the node's own journal stays the source of truth for its own
//! records and is what it ships when another node is the primary).
//!
//! Each record is stored once per (`server_name`, `seq`): a node ships its
//! own journal in sequence order, so the inbox keeps the highest sequence
//! stored per node (its mark) and takes only records above it. A batch is
//! fsynced before it is acknowledged, then the marks are written to
//! `marks.json` with the segment being written at that moment; at open the
//! marks are read and raised by the records of that segment and the later
//! ones (written after the marks), so they always match what is on disk.
//! Separate from `journal.rs` because the journal knows nothing of nodes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, JournalConfig, SEGMENT_MAX_BYTES};
use crate::{AuditFilter, AuditRecord, StoreError};

/// The inbox's directory inside the audit journal's.
pub(crate) const INBOX_DIR: &str = "cluster";
/// The marks file inside the inbox's directory.
const MARKS_FILE: &str = "marks.json";

/// `marks.json`: the highest sequence stored per node, and the segment
/// being written when they were saved.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Marks {
    segment: u64,
    marks: BTreeMap<String, u64>,
}

/// Records shipped from other nodes.
pub(crate) struct Inbox {
    dir: PathBuf,
    journal: Arc<Journal>,
    /// Held for a whole accept (check, append, fsync, save).
    marks: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inbox {
    /// Opens (creating) the inbox in `dir` and recovers its marks.
    pub(crate) fn open(dir: &Path) -> Result<Inbox, StoreError> {
        let journal = Journal::open(
            dir,
            JournalConfig {
                max_segment_bytes: SEGMENT_MAX_BYTES,
                flush_interval: Duration::from_millis(200),
                // Every accepted batch is flushed before it is acknowledged.
                background: false,
                assign_seq: false,
            },
        )?;
        // A missing or unreadable marks file: read everything (slow, right).
        let saved: Marks = fs::read(dir.join(MARKS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut marks = saved.marks;
        for (node, seq) in journal.max_seq_by_node_from(saved.segment)? {
            raise(&mut marks, &node, seq);
        }
        Ok(Inbox {
            dir: dir.to_path_buf(),
            journal,
            marks: Mutex::new(marks),
        })
    }

    /// The highest sequence stored from node `node` (0: none).
    #[cfg(test)]
    fn mark(&self, node: &str) -> u64 {
        lock(&self.marks).get(node).copied().unwrap_or(0)
    }

    /// Stores the records of a batch that are new (above their node's mark;
    /// numbered), durably, and returns the sequence the sender may resume
    /// after: the highest in the batch, or `node`'s mark for an empty batch.
    pub(crate) fn accept(&self, node: &str, recs: Vec<AuditRecord>) -> Result<u64, StoreError> {
        let mut marks = lock(&self.marks);
        let mut upto = recs.iter().map(|r| r.seq).max().unwrap_or(0);
        let mut next = marks.clone();
        let fresh: Vec<AuditRecord> = recs
            .into_iter()
            .filter(|r| r.seq > 0 && raise(&mut next, &r.server_name, r.seq))
            .collect();
        if !fresh.is_empty() {
            self.journal.append(&fresh)?;
            self.journal.flush()?;
            *marks = next;
            let saved = Marks {
                segment: self.journal.position().0,
                marks: marks.clone(),
            };
            // Only a speed-up for the next open: a failure is not an error.
            let _ = save(&self.dir, &saved);
        }
        if upto == 0 {
            upto = marks.get(node).copied().unwrap_or(0);
        }
        Ok(upto)
    }

    /// Records matching `f` and `extra`, oldest first.
    pub(crate) fn query(
        &self,
        f: &AuditFilter,
        extra: &dyn Fn(&AuditRecord) -> bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.journal.query_where(f, extra)
    }

    /// Removes whole segments older than `older_than_ms` (the marks stay).
    pub(crate) fn trim(&self, older_than_ms: u64) -> Result<usize, StoreError> {
        self.journal.trim(older_than_ms)
    }
}

/// Raises `node`'s mark to `seq`; false when `seq` is not above it.
fn raise(marks: &mut BTreeMap<String, u64>, node: &str, seq: u64) -> bool {
    match marks.get_mut(node) {
        Some(m) if *m >= seq => false,
        Some(m) => {
            *m = seq;
            true
        }
        None => {
            marks.insert(node.to_string(), seq);
            true
        }
    }
}

/// Replaces `marks.json` (write, then rename).
fn save(dir: &Path, marks: &Marks) -> io::Result<()> {
    let tmp = dir.join(format!("{MARKS_FILE}.tmp"));
    let text = serde_json::to_vec(marks)?;
    crate::private::create_file(&tmp)?.write_all(&text)?;
    fs::rename(&tmp, dir.join(MARKS_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(node: &str, seq: u64, time_ms: u64) -> AuditRecord {
        AuditRecord {
            time_ms,
            user: format!("u{seq}"),
            mode: "pap+totp".into(),
            result: "accept".into(),
            server_name: node.into(),
            seq,
            ..AuditRecord::default()
        }
    }

    #[test]
    fn each_record_is_stored_once_and_marks_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cluster");
        {
            let inbox = Inbox::open(&dir).unwrap();
            assert_eq!(inbox.accept("b", vec![]).unwrap(), 0);
            let batch = vec![rec("b", 10, 1), rec("b", 11, 2)];
            assert_eq!(inbox.accept("b", batch.clone()).unwrap(), 11);
            // The same batch again (the ack was lost): nothing new.
            assert_eq!(inbox.accept("b", batch).unwrap(), 11);
            assert_eq!(inbox.accept("b", vec![]).unwrap(), 11);
            // Another node's sequences are its own.
            assert_eq!(inbox.accept("c", vec![rec("c", 5, 3)]).unwrap(), 5);
            // Lose the marks file: recovery reads the records.
            fs::remove_file(dir.join(MARKS_FILE)).unwrap();
        }
        let inbox = Inbox::open(&dir).unwrap();
        assert_eq!((inbox.mark("b"), inbox.mark("c")), (11, 5));
        assert_eq!(
            inbox
                .accept("b", vec![rec("b", 11, 2), rec("b", 12, 4)])
                .unwrap(),
            12
        );
        let all = inbox.query(&AuditFilter::default(), &|_| true).unwrap();
        let ids: Vec<(String, u64)> = all.iter().map(|r| (r.server_name.clone(), r.seq)).collect();
        assert_eq!(
            ids,
            [
                ("b".into(), 10),
                ("b".into(), 11),
                ("c".into(), 5),
                ("b".into(), 12)
            ]
        );
    }
}
