//! The audit writer: authentication decisions are queued from the packet path
//! and written to the store in batches by one task, so a request never waits
//! for the disk. The queue is bounded; when it is full the packet path waits
//! rather than lose a record.

use radmfa_store::{AuditRecord, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::error;

/// The `mode` of an admin action's record (`admin/actor.rs`).
pub const ADMIN_MODE: &str = "admin";

const QUEUE: usize = 65_536;
const BATCH: usize = 1024;
/// How long the writer gathers records before appending them.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// The sending side, cloned into the pipeline.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditRecord>,
}

impl AuditSink {
    /// Queues a record without blocking the caller; when the queue is full a
    /// task waits for room, so the record is late rather than lost.
    pub fn record(&self, mut rec: AuditRecord) {
        // Request text (User-Name, Calling-Station-Id, a name typed at the
        // portal) is recorded with control characters escaped (text.rs).
        for field in [&mut rec.user, &mut rec.calling_station] {
            if let std::borrow::Cow::Owned(escaped) = crate::text::escape(field) {
                *field = escaped;
            }
        }
        match self.tx.try_send(rec) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(rec)) => {
                // Backpressure without losing the record: hand it over in the
                // background; the writer drains in batches.
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(rec).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(rec)) => {
                error!(user = %rec.user, "audit writer is gone; record lost");
            }
        }
    }
}

/// Starts the writer. It ends when every sink is dropped or `stop` is
/// cancelled, after writing everything queued.
///
/// Records are gathered for a few milliseconds and appended in one batch:
/// the journal append is a memory copy (its fsync runs on the store's own
/// flusher thread), so it runs right here, without a hand-off to another
/// thread per batch.
pub fn spawn_writer(
    store: Store,
    stop: CancellationToken,
) -> (AuditSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<AuditRecord>(QUEUE);
    let handle = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut buf, BATCH) => n,
                _ = stop.cancelled(), if !rx.is_closed() => {
                    // No new records; drain what is queued.
                    rx.close();
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            if buf.len() < BATCH && !rx.is_closed() {
                tokio::time::sleep(GATHER).await;
                while buf.len() < BATCH {
                    match rx.try_recv() {
                        Ok(r) => buf.push(r),
                        Err(_) => break,
                    }
                }
            }
            if let Err(e) = store.append_audit_batch(&buf) {
                error!(error = %e, records = buf.len(), "cannot write audit records");
            }
            buf.clear();
        }
    });
    (AuditSink { tx }, handle)
}
