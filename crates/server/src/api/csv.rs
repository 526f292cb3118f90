//! The one CSV writer of reports (audit records, accounting records, the
//! summary) for the API's `format=csv` and the CLI's `--csv`: RFC 4180
//! quoting with spreadsheet formulas defused. Its own file so the CLI and
//! the API handlers share it without either owning it.

use serde_json::Value;

use crate::admin::REPORT_FIELDS;

/// One CSV field (RFC 4180 quoting; a leading `=`, `+`, `-`, `@`, tab or
/// CR is prefixed with `'` so that spreadsheets do not run it as a formula).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Audit records as CSV with a header row: the one CSV writer, for the
/// API's `format=csv` and `radmfa report --csv`.
pub fn records_csv(recs: &[Value]) -> String {
    rows_csv(REPORT_FIELDS, recs)
}

/// Rows as CSV with a header row: `time`, then `fields` (audit records,
/// [`REPORT_FIELDS`]; accounting records, [`crate::admin::ACCOUNTING_FIELDS`]).
pub fn rows_csv(fields: &[&str], recs: &[Value]) -> String {
    // `time` first (ISO 8601 UTC, for people and spreadsheets); `time_ms`
    // stays for scripts.
    let mut out = String::from("time,");
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
    for r in recs {
        let ms = r["time_ms"].as_u64().unwrap_or(0);
        let time = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string();
        let row: Vec<String> = std::iter::once(time)
            .chain(fields.iter().map(|f| match &r[*f] {
                Value::String(s) => csv_field(s),
                Value::Null => String::new(),
                v => csv_field(&v.to_string()),
            }))
            .collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// An aggregated report as CSV with a header row (`SUMMARY_FIELDS`): the
/// API's `format=csv` and `radmfa report --summary --csv`.
pub fn summary_csv(summary: &crate::admin::summary::AuditSummary) -> String {
    let mut out = crate::admin::summary::SUMMARY_FIELDS.join(",");
    out.push_str("\r\n");
    for row in summary.rows() {
        let row: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}
