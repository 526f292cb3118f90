//! The shipping task of a clustered node: reads its own journal after the
//! primary's acknowledged sequence and sends it in batches, off the packet
//! path (the journal is read on a blocking thread; authentication never
//! waits for it).
//!
//! * Every [`INTERVAL`] (at once again after a full batch) it asks
//!   replication where writes go. On the primary there is nothing to ship.
//! * On a new target (start, promotion, a failure) it first sends an empty
//!   batch: the answer is the highest sequence the target holds from this
//!   node, where it resumes (a new primary that never held this node's
//!   records answers 0, and receives its whole journal).
//! * A batch is read after the journal was fsynced, so a crash cannot give
//!   a shipped sequence to another record.
//! * A failure is logged once at WARN with what happens meanwhile, and once
//!   at INFO when shipping resumes.

use std::sync::Arc;
use std::time::Duration;

use radmfa_otp::Clock;
use radmfa_store::{JournalCursor, Store};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::replication::Replication;

use super::status::ShipState;
use super::wire::{ShipAck, ShipBatch};

/// How often the journal is looked at.
pub const INTERVAL: Duration = Duration::from_millis(200);
/// Records per batch (a few hundred KiB of JSON, far below a frame).
const BATCH: usize = 2000;
/// Pause after a failure.
const BACKOFF: Duration = Duration::from_secs(1);

/// Where shipping stands with one primary.
#[derive(Debug, Clone, Copy)]
struct Target {
    node: u16,
    acked: u64,
    cursor: Option<JournalCursor>,
}

/// Everything the task needs.
pub struct Sender {
    /// This node's store (its own journal).
    pub store: Store,
    /// Where writes go.
    pub replication: Arc<Replication>,
    /// This node's `node_name`.
    pub node_name: String,
    /// This node's id.
    pub node_id: u16,
    /// The node's clock (record times are from it).
    pub clock: Arc<dyn Clock>,
    /// Shared with `radmfa status`.
    pub state: Arc<ShipState>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("node_name", &self.node_name)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Ships until `stop`.
pub async fn run(s: Sender, stop: CancellationToken) {
    let mut target: Option<Target> = None;
    let mut failing = false;
    let mut pause = INTERVAL;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = INTERVAL;
        let primary = match s.replication.write_target() {
            Ok(p) if p == s.node_id => {
                if target.take().is_some() || s.state.view(0).target.is_some() {
                    s.state.set_target(None, 0);
                }
                continue;
            }
            Ok(p) => p,
            // No reachable primary: the records wait in the journal.
            Err(reason) => {
                s.state.failed(reason);
                continue;
            }
        };
        match s.round(primary, &mut target).await {
            Ok(full) => {
                if std::mem::take(&mut failing) {
                    info!(
                        primary,
                        "audit shipping to the primary resumed; records kept meanwhile are being sent"
                    );
                }
                if full {
                    pause = Duration::ZERO;
                }
            }
            Err(e) => {
                target = None;
                s.state.failed(e.clone());
                if !std::mem::replace(&mut failing, true) {
                    warn!(primary, error = %e, "cannot ship audit records to the primary; they stay in this node's journal and are sent when it answers again (reports on the primary lack them until then)");
                }
                pause = BACKOFF;
            }
        }
    }
}

impl Sender {
    /// One round: learns where to resume if needed, then ships one batch.
    /// Returns whether the batch was full (more may be waiting).
    async fn round(&self, primary: u16, target: &mut Option<Target>) -> Result<bool, String> {
        let mut t = match *target {
            Some(t) if t.node == primary => t,
            _ => {
                let acked = self.send(primary, Vec::new()).await?;
                self.state.set_target(Some(primary), acked);
                info!(
                    primary,
                    acked,
                    "audit shipping: the primary holds this node's records up to this sequence"
                );
                Target {
                    node: primary,
                    acked,
                    cursor: None,
                }
            }
        };
        *target = Some(t);
        let store = self.store.clone();
        let (after, cursor) = (t.acked, t.cursor);
        let (records, next) =
            tokio::task::spawn_blocking(move || store.audit_read_after(after, cursor, BATCH))
                .await
                .map_err(|e| format!("journal read task: {e}"))?
                .map_err(|e| format!("reading this node's audit journal: {e}"))?;
        if records.is_empty() {
            t.cursor = next.or(t.cursor);
            *target = Some(t);
            return Ok(false);
        }
        let full = records.len() >= BATCH;
        let last = records.iter().map(|r| r.seq).max().unwrap_or(after);
        let times: Vec<u64> = records.iter().map(|r| r.time_ms).collect();
        let acked = self.send(primary, records).await?;
        let now = self.clock.now_unix_ms();
        self.state
            .acked(acked, times.into_iter().map(|t| now.saturating_sub(t)));
        t.acked = acked;
        // An acknowledgement short of the batch: find the rest by sequence.
        t.cursor = if acked >= last { next } else { None };
        *target = Some(t);
        Ok(full)
    }

    /// Sends one batch to `primary`; returns its acknowledged sequence.
    async fn send(
        &self,
        primary: u16,
        records: Vec<radmfa_store::AuditRecord>,
    ) -> Result<u64, String> {
        let batch = ShipBatch {
            node: self.node_name.clone(),
            records,
        };
        let body = serde_json::to_vec(&batch).map_err(|e| e.to_string())?;
        let answer = self.replication.ship_audit(primary, body).await?;
        let ack: ShipAck = serde_json::from_slice(&answer)
            .map_err(|e| format!("bad acknowledgement from node {primary}: {e}"))?;
        if ack.ok {
            Ok(ack.acked)
        } else {
            Err(format!(
                "node {primary} refused the records: {}",
                ack.error.unwrap_or_default()
            ))
        }
    }
}
