//! Writes a replica cannot make: sent to the primary over the peer link,
//! answered once this replica has replicated them (read your writes). Used
//! by the admin service and by the lockout writer of the request path.

use serde_json::Value;
use tracing::info;

use crate::replication::Replication;

use super::answer::Answer;
use super::error::AdminError;
use super::request::AdminRequest;

/// How long a forwarded write waits for this replica to catch up.
const READ_YOUR_WRITES: std::time::Duration = std::time::Duration::from_secs(3);

/// Sends a write this replica's store refused (`local` says why) to the
/// primary, and waits (a little) until this replica has applied it, so the
/// caller reads its own write. Fails with [`AdminError::ReadOnly`] when
/// there is no reachable primary (or this node, `node_id`, is it).
pub async fn forward_to_primary(
    replication: Option<&Replication>,
    node_id: u16,
    req: &AdminRequest,
    local: String,
) -> Result<Value, AdminError> {
    let Some(r) = replication else {
        return Err(AdminError::ReadOnly(local));
    };
    let answer = match ask_primary(r, node_id, req).await {
        Ok(a) => a,
        Err(None) => return Err(AdminError::ReadOnly(local)),
        Err(Some(reason)) => return Err(AdminError::ReadOnly(reason)),
    };
    if !answer.ok {
        return Err(AdminError::Invalid(
            answer
                .error
                .unwrap_or_else(|| "the primary refused the request".to_string()),
        ));
    }
    // Read your writes: wait (a little) until this replica has it.
    if let Some(seq) = answer.seq {
        let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES;
        while r.status().last_seq < seq && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    info!(primary = ?r.write_target().ok(), "admin write forwarded to the primary");
    Ok(answer.result.unwrap_or(Value::Null))
}

/// Sends `req` to the primary and returns its answer. `Err(None)`: this
/// node (`node_id`) is the primary; `Err(Some(why))`: no primary answered.
pub async fn ask_primary(
    r: &Replication,
    node_id: u16,
    req: &AdminRequest,
) -> Result<Answer, Option<String>> {
    let primary = r.write_target().map_err(Some)?;
    if primary == node_id {
        return Err(None);
    }
    let body = serde_json::to_vec(req).map_err(|e| Some(e.to_string()))?;
    let answer = r.forward_admin(primary, body).await.map_err(Some)?;
    serde_json::from_slice(&answer).map_err(|e| Some(format!("bad answer from the primary: {e}")))
}
