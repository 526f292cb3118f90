//! Node and cluster operations: online backup, OTP steps a replica
//! reports, replication status and promotion. Status and promotion need
//! the running node's replication driver; the others run on the store.

use serde_json::Value;

use crate::replication::{NodeRole, ReplStatus, Replication, StandaloneStatus};

use super::context::Ctx;
use super::error::AdminError;
use super::results::{BackupView, OtpAdvanced};

/// Writes an online backup to `path` (absolute; must not exist yet).
pub fn backup(ctx: Ctx<'_>, path: &str) -> Result<BackupView, AdminError> {
    let path = std::path::Path::new(path);
    if !path.is_absolute() {
        return Err(AdminError::Invalid(format!(
            "backup path {} must be absolute",
            path.display()
        )));
    }
    let info = ctx.store.backup(path)?;
    Ok(BackupView::new(path, &info))
}

/// Raises (and logs for every node) the OTP steps a replica consumed.
pub fn otp_advance(ctx: Ctx<'_>, steps: &[(String, u64)]) -> Result<OtpAdvanced, AdminError> {
    let raised = ctx.store.advance_otp_states_logged(steps)?;
    Ok(OtpAdvanced { raised })
}

/// Replication status: the driver's, or standalone.
pub fn status(replication: Option<&Replication>, node_id: u16) -> ReplStatus {
    match replication {
        Some(r) => r.status_view(),
        None => ReplStatus::Standalone(StandaloneStatus {
            node_id,
            role: NodeRole::Standalone,
            replication: false,
        }),
    }
}

/// Makes this replica the primary at epoch + 1 (blocking sled work on a
/// blocking thread), then answers with the new status.
pub async fn promote(
    replication: Option<std::sync::Arc<Replication>>,
    force: bool,
) -> Result<Value, AdminError> {
    let Some(r) = replication else {
        return Err(AdminError::Invalid(
            "replication is not configured on this node ([cluster])".into(),
        ));
    };
    let driver = r.clone();
    let st = tokio::task::spawn_blocking(move || driver.promote(force))
        .await
        .map_err(|e| AdminError::Invalid(format!("promote failed: {e}")))?
        .map_err(AdminError::Invalid)?;
    tracing::warn!(
        node = st.id,
        epoch = st.epoch,
        "promoted to primary by an operator"
    );
    Ok(r.status_json())
}
