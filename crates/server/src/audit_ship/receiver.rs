//! The primary's side of audit shipping: stores a batch in the cluster
//! inbox (each (node, seq) once, fsynced) and acknowledges it. A node that
//! is not the primary refuses, so a sender never counts records as shipped
//! to a node that no longer answers reports for the cluster.

use std::sync::Arc;

use tracing::debug;

use crate::pipeline::Node;

use super::wire::{ShipAck, ShipBatch};

/// Answers one AuditBatch from peer `from_node` (JSON in, JSON out).
pub async fn receive(node: &Arc<Node>, from_node: u16, body: Vec<u8>) -> Vec<u8> {
    let ack = match node.replication() {
        Some(r) if r.is_primary() => match serde_json::from_slice::<ShipBatch>(&body) {
            Ok(batch) => {
                let store = node.store().clone();
                let count = batch.records.len();
                let stored = tokio::task::spawn_blocking(move || {
                    store.accept_shipped_audit(&batch.node, batch.records)
                })
                .await;
                match stored {
                    Ok(Ok(acked)) => {
                        debug!(from_node, count, acked, "audit records stored");
                        ShipAck {
                            ok: true,
                            acked,
                            error: None,
                        }
                    }
                    Ok(Err(e)) => ShipAck::refused(format!("cannot store the records: {e}")),
                    Err(e) => ShipAck::refused(format!("store task failed: {e}")),
                }
            }
            Err(e) => ShipAck::refused(format!("bad batch: {e}")),
        },
        _ => ShipAck::refused(format!("node {} is not the primary", node.config().node_id)),
    };
    serde_json::to_vec(&ack).unwrap_or_default()
}
