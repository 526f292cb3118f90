//! The audit writer: authentication decisions are queued from the packet path
//! and written to the store in batches by one task, so a request never waits
//! for the disk. The queue is bounded; when it is full the packet path waits
//! rather than lose a record.

use radmfa_store::{AuditRecord, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::error;

const QUEUE: usize = 65_536;
const BATCH: usize = 1024;

/// The sending side, cloned into the pipeline.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditRecord>,
}

impl AuditSink {
    /// Queues a record without blocking the caller; when the queue is full a
    /// task waits for room, so the record is late rather than lost.
    pub fn record(&self, rec: AuditRecord) {
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
            let store = store.clone();
            let batch = std::mem::take(&mut buf);
            let res = tokio::task::spawn_blocking(move || store.append_audit_batch(&batch)).await;
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!(error = %e, "cannot write audit records"),
                Err(e) => error!(error = %e, "audit writer task failed"),
            }
            buf = Vec::with_capacity(BATCH);
        }
    });
    (AuditSink { tx }, handle)
}
