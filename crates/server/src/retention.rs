//! Audit log retention: `[log] audit_retention_days` removes whole audit
//! journal segments older than that, once an hour.

use std::time::Duration;

use radmfa_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often old segments are looked for.
const INTERVAL: Duration = Duration::from_secs(3600);

/// Trims the audit journal every hour (first a few seconds after start)
/// until `shutdown`.
pub async fn run(store: Store, days: u64, shutdown: CancellationToken) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next += INTERVAL;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let cutoff = now_ms.saturating_sub(days.saturating_mul(86_400_000));
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.trim_audit(cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(records = n, days, "audit retention: old records removed"),
            Ok(Err(e)) => warn!(error = %e, "audit retention failed"),
            Err(e) => warn!(error = %e, "audit retention task failed"),
        }
    }
}
