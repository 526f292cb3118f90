//! The audit log as admins read it: filtered records, and the columns of
//! its CSV form (API and CLI). Authentication reports leave out the
//! accounting records the journal also holds; [`accounting`] reads those.

use radmfa_store::{AuditFilter, AuditRecord};

use super::context::Ctx;
use super::error::AdminError;
use super::results::AccountingRow;

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
        r.accounting.is_none()
            && method.is_none_or(|m| crate::counters::method_of(&r.mode) == m)
            && client.is_none_or(|c| r.client_name == c)
    })?)
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
    let recs = ctx.store.query_audit_where(&filter, |r| {
        r.accounting.is_some() && client.is_none_or(|c| r.client_name == c)
    })?;
    Ok(recs
        .into_iter()
        .filter_map(AccountingRow::from_record)
        .collect())
}
