//! Lockout across nodes, the node's side ([`crate::limits::FailureCounter`]):
//! on a replica, a failed second factor is counted on the primary over the
//! peer link (as an admin request, like consumed OTP steps) and the
//! replica waits until the lock the primary wrote has replicated; Accepts
//! are queued and sent in one batch shortly after. Separate from
//! `limits.rs`, which decides, because this is the I/O.

use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use super::node::Node;
use crate::admin::{AdminRequest, Answer};
use crate::limits::{Counted, FailureCounter, Limits, PrimaryLock};
use crate::replication::Replication;

/// How long a failure waits for the primary's count before this node
/// counts it itself.
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a replica waits for the lock the primary wrote to arrive.
const LOCK_ARRIVES: Duration = Duration::from_secs(3);
/// How long Accepts gather before they go to the primary in one request.
const RESET_GATHER: Duration = Duration::from_millis(100);

/// The replication driver of a replica (`None` on a primary or a
/// standalone node: failures are counted here).
fn replica(node: &Node) -> Option<&Arc<Replication>> {
    node.replication().filter(|r| !r.is_primary())
}

impl FailureCounter for Node {
    fn counts_elsewhere(&self) -> bool {
        replica(self).is_some()
    }

    async fn count_on_primary(&self, name: &str, reset_first: bool) -> Counted {
        let Some(r) = replica(self) else {
            return Counted::Here;
        };
        let primary = match r.write_target() {
            Ok(p) if p != self.config().node_id => p,
            Ok(_) => return Counted::Here,
            Err(why) => return Counted::Unreachable(why),
        };
        let req = AdminRequest::LockoutFailure {
            name: name.to_string(),
            reset_first,
        };
        let Ok(body) = serde_json::to_vec(&req) else {
            return Counted::Here;
        };
        let answer = match r.send_admin_within(primary, body, COUNT_TIMEOUT).await {
            Ok(a) => a,
            Err(why) => return Counted::Unreachable(why),
        };
        let answer: Answer = match serde_json::from_slice(&answer) {
            Ok(a) => a,
            Err(e) => return Counted::Unreachable(format!("bad answer from the primary: {e}")),
        };
        if !answer.ok {
            let why = answer.error.unwrap_or_else(|| "refused".into());
            return Counted::Unreachable(format!("the primary did not count it: {why}"));
        }
        let result = answer.result.unwrap_or_default();
        let Some(until) = result["locked_until"].as_u64() else {
            return Counted::OnPrimary(None);
        };
        let mut written = result["written"].as_bool() == Some(true);
        if let (true, Some(seq)) = (written, answer.seq) {
            // Read your writes: the lock is in this node's copy before the
            // Reject goes out, so the next request here is refused.
            let deadline = tokio::time::Instant::now() + LOCK_ARRIVES;
            while r.status().last_seq < seq {
                if tokio::time::Instant::now() >= deadline {
                    written = false;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Counted::OnPrimary(Some(PrimaryLock { until, written }))
    }

    fn send_resets_soon(&self) {
        let Some(r) = replica(self).cloned() else {
            return;
        };
        let limits: Arc<Limits> = self.limits();
        let node_id = self.config().node_id;
        tokio::spawn(async move {
            tokio::time::sleep(RESET_GATHER).await;
            let names = limits.take_resets();
            if names.is_empty() {
                return;
            }
            let Ok(primary) = r.write_target() else {
                // Counting is per node meanwhile (logged by the failure path).
                return;
            };
            if primary == node_id {
                return;
            }
            let Ok(body) = serde_json::to_vec(&AdminRequest::LockoutReset { names }) else {
                return;
            };
            if let Err(e) = r.send_admin_within(primary, body, COUNT_TIMEOUT).await {
                debug!(error = %e, "Accepts not sent to the primary (failure counts there end with their window)");
            }
        });
    }
}
