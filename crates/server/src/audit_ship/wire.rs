//! The JSON bodies of the AuditBatch and AuditAck frames. Records go whole
//! (every field, whatever kind of record), so the primary stores them as the
//! node wrote them.

use radmfa_store::AuditRecord;
use serde::{Deserialize, Serialize};

/// What a node ships: its name and records in sequence order. An empty
/// batch asks where to resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipBatch {
    /// The sending node's `node_name`.
    pub node: String,
    /// Records from its own journal.
    pub records: Vec<AuditRecord>,
}

/// The primary's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipAck {
    /// Whether the batch is stored (fsynced).
    pub ok: bool,
    /// The sequence the sender resumes after (everything up to it from
    /// this node is stored).
    #[serde(default)]
    pub acked: u64,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ShipAck {
    /// A refusal saying `error`.
    pub fn refused(error: String) -> Self {
        ShipAck {
            ok: false,
            acked: 0,
            error: Some(error),
        }
    }
}
