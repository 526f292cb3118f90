//! The audit log as admins read it: filtered records of the whole cluster
//! as this node holds them (its own journal and, on the primary, what the
//! other nodes shipped), the aggregated summary, and the columns of the
//! CSV forms (API and CLI). Authentication reports and the summary leave
//! out the accounting records the journal also holds; [`accounting`] reads
//! those.

use serde::{Deserialize, Serialize};

use radmfa_store::{AuditFilter, AuditRecord};

use super::context::Ctx;
use super::error::AdminError;
use super::results::AccountingRow;
use super::summary::{AuditSummary, Bucket, Tally};

/// The fields of an audit record in a CSV report, in column order (admin
/// API and CLI).
pub const REPORT_FIELDS: &[&str] = &[
    "time_ms",
    "user",
    "mode",
    "result",
    "reason",
    "server_name",
    "server_ip",
    "client_name",
    "client_ip",
    "calling_station",
    "seq",
    "actor",
];

/// What `report` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The records, oldest first; `server_name` is the node that handled
    /// each.
    pub records: Vec<AuditRecord>,
    /// False when this replica could not reach the primary and answered
    /// from what it holds (its own records, and what it collected when it
    /// was the primary itself).
    pub complete: bool,
    /// The node whose copy answered (`node_name`).
    pub answered_by: String,
    /// Why incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The records `filter` selects, narrowed to one second-factor `method`
/// (see [`crate::counters::method_of`]) and one RADIUS `client` when given,
/// and without admin actions when `sign_ins_only`.
pub fn report(
    ctx: Ctx<'_>,
    filter: &AuditFilter,
    method: Option<&str>,
    client: Option<&str>,
    sign_ins_only: bool,
) -> Result<AuditReport, AdminError> {
    let node = &ctx.config.node_name;
    let records = ctx.store.query_cluster_audit(filter, node, |r| {
        r.accounting.is_none()
            && method.is_none_or(|m| crate::counters::method_of(&r.mode) == m)
            && client.is_none_or(|c| r.client_name == c)
            && !(sign_ins_only && r.mode == crate::audit::ADMIN_MODE)
    })?;
    Ok(AuditReport {
        records,
        complete: true,
        answered_by: node.clone(),
        note: None,
    })
}

/// The aggregated report over `[since_ms, until_ms)`: sign-ins counted per
/// `bucket`, the `top` users with the most rejects, and the users' state now.
pub fn summary(
    ctx: Ctx<'_>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    bucket: Bucket,
    top: usize,
) -> Result<AuditSummary, AdminError> {
    let node = &ctx.config.node_name;
    let tally = std::sync::Mutex::new(Tally::new(bucket));
    let filter = AuditFilter {
        since_ms,
        until_ms,
        ..AuditFilter::default()
    };
    // Counted as read; nothing is collected.
    ctx.store.query_cluster_audit(&filter, node, |r| {
        if r.accounting.is_none() {
            tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .add(r);
        }
        false
    })?;
    let mut users = Vec::new();
    for u in ctx.store.list_users()? {
        let token = ctx.store.get_token(&u.name)?;
        users.push((u, token));
    }
    let tally = tally
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut s = tally.finish(top, &users, ctx.now);
    s.since_ms = since_ms;
    s.until_ms = until_ms;
    s.answered_by = node.clone();
    Ok(s)
}

/// The fields of an accounting record in a CSV report (`time` first, as in
/// [`REPORT_FIELDS`]), in column order (admin API and CLI).
pub const ACCOUNTING_FIELDS: &[&str] = &[
    "time_ms",
    "user",
    "status",
    "session_id",
    "session_time",
    "input_octets",
    "output_octets",
    "terminate_cause",
    "framed_ip",
    "calling_station",
    "nas_ip",
    "nas_identifier",
    "client_name",
    "client_ip",
    "server_name",
];

/// The accounting records `filter` selects (its `result` is ignored),
/// narrowed to one RADIUS `client` when given, oldest first.
pub fn accounting(
    ctx: Ctx<'_>,
    filter: &AuditFilter,
    client: Option<&str>,
) -> Result<Vec<AccountingRow>, AdminError> {
    let filter = AuditFilter {
        result: None,
        ..filter.clone()
    };
    let recs = ctx
        .store
        .query_cluster_audit(&filter, &ctx.config.node_name, |r| {
            r.accounting.is_some() && client.is_none_or(|c| r.client_name == c)
        })?;
    Ok(recs
        .into_iter()
        .filter_map(AccountingRow::from_record)
        .collect())
}
