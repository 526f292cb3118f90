//! `radmfa report --summary`: the aggregated report as tables, JSON or CSV
//! (the admin API's CSV writer).

use std::io::Write as _;

use radmfa_server::admin::summary::AuditSummary;

use super::print::{esc, format_time, json_pretty, print_table, stdout_failed};

/// Prints `s` as JSON, CSV or one table per section.
pub fn print(s: &AuditSummary, json: bool, csv: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", json_pretty(s)?);
        return Ok(());
    }
    if csv {
        if let Err(e) = std::io::stdout().write_all(radmfa_server::api::summary_csv(s).as_bytes()) {
            stdout_failed(&e);
        }
        return Ok(());
    }
    println!("Sign-ins (answered by {}):", esc(&s.answered_by));
    let rows: Vec<Vec<String>> = s
        .sign_ins
        .iter()
        .map(|c| {
            vec![
                format_time(c.period_start_ms),
                esc(&c.method),
                esc(&c.result),
                esc(&c.client),
                c.count.to_string(),
            ]
        })
        .collect();
    print_table(
        &["PERIOD (UTC)", "METHOD", "RESULT", "CLIENT", "COUNT"],
        &rows,
    );
    println!();
    println!("Most failing users:");
    let rows: Vec<Vec<String>> = s
        .top_failing
        .iter()
        .map(|u| vec![esc(&u.user), u.count.to_string()])
        .collect();
    print_table(&["USER", "REJECTS"], &rows);
    println!();
    println!("Locked users:");
    let rows: Vec<Vec<String>> = s
        .locked
        .iter()
        .map(|u| {
            let until = if u.locked_until == u64::MAX {
                "until unlocked".to_string()
            } else {
                format_time(u.locked_until.saturating_mul(1000))
            };
            vec![esc(&u.user), esc(&u.reason), until]
        })
        .collect();
    print_table(&["USER", "REASON", "UNTIL"], &rows);
    for (title, names) in [
        ("Fraud-reported users", &s.fraud_reported),
        ("Never enrolled", &s.never_enrolled),
    ] {
        println!();
        println!("{title}: {}", names.len());
        for n in names {
            println!("  {}", esc(n));
        }
    }
    Ok(())
}
