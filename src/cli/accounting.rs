//! `radmfa report --accounting`: the stored Accounting-Requests as a table,
//! JSON or CSV. Apart from `report.rs` because the rows are another type
//! with other columns.

use radmfa_server::admin::{AccountingRow, AdminRequest, ACCOUNTING_FIELDS};
use radmfa_server::RuntimeConfig;

use super::args::ReportFormat;
use super::call::call;
use super::print::{esc, format_time, json_pretty, print_table, stdout_failed};

/// Runs `req` (an [`AdminRequest::AccountingReport`]) and prints the rows.
pub fn report(cfg: &RuntimeConfig, req: AdminRequest, format: &ReportFormat) -> anyhow::Result<()> {
    let rows: Vec<AccountingRow> = call(cfg, req)?;
    if format.json || format.format.as_deref() == Some("json") {
        println!("{}", json_pretty(&rows)?);
        return Ok(());
    }
    if format.csv || format.format.as_deref() == Some("csv") {
        use std::io::Write as _;
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        let csv = radmfa_server::api::rows_csv(ACCOUNTING_FIELDS, &rows);
        if let Err(e) = std::io::stdout().write_all(csv.as_bytes()) {
            stdout_failed(&e);
        }
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format_time(r.time_ms),
                esc(&r.user),
                esc(&r.status),
                esc(&r.session_id),
                r.session_time.to_string(),
                r.input_octets.to_string(),
                r.output_octets.to_string(),
                esc(&r.terminate_cause),
                esc(&r.framed_ip),
                esc(&r.client_name),
                esc(&r.server_name),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME (UTC)",
            "USER",
            "STATUS",
            "SESSION",
            "SECONDS",
            "IN OCTETS",
            "OUT OCTETS",
            "CAUSE",
            "FRAMED IP",
            "CLIENT",
            "SERVER",
        ],
        &table,
    );
    Ok(())
}
