//! The audit log as admins read it: filtered records, and the columns of
//! its CSV form (API and CLI).

use radmfa_store::{AuditFilter, AuditRecord};

use super::context::Ctx;
use super::error::AdminError;

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
];

/// The records `filter` selects, narrowed to one second-factor `method`
/// (see [`crate::counters::method_of`]) and one RADIUS `client` when given.
pub fn report(
    ctx: Ctx<'_>,
    filter: &AuditFilter,
    method: Option<&str>,
    client: Option<&str>,
) -> Result<Vec<AuditRecord>, AdminError> {
    Ok(ctx.store.query_audit_where(filter, |r| {
        method.is_none_or(|m| crate::counters::method_of(&r.mode) == m)
            && client.is_none_or(|c| r.client_name == c)
    })?)
}
