//! `radmfa report`: the audit log as a table, JSON or CSV, with times given
//! the way people write them.

use anyhow::{anyhow, Context};
use radmfa_server::admin::summary::{AuditSummary, Bucket};
use radmfa_server::admin::{AdminRequest, AuditReport};
use radmfa_server::RuntimeConfig;

use super::args::ReportArgs;
use super::call::call;
use super::print::{esc, format_time, json_pretty, print_table, stdout_failed};

/// `radmfa report`.
pub fn report(cfg: &RuntimeConfig, args: ReportArgs) -> anyhow::Result<()> {
    let ReportArgs {
        user,
        result,
        since,
        limit,
        until,
        method,
        client,
        accounting,
        summary,
        bucket,
        top,
        format,
    } = args;
    let since_ms = since
        .as_deref()
        .map(|s| parse_since(s).context("--since"))
        .transpose()?;
    let until_ms = until
        .as_deref()
        .map(|s| parse_since(s).context("--until"))
        .transpose()?;
    let json = format.json || format.format.as_deref() == Some("json");
    let csv = format.csv || format.format.as_deref() == Some("csv");
    if accounting {
        let req = AdminRequest::AccountingReport {
            user,
            since_ms,
            until_ms,
            limit,
            client,
        };
        return super::accounting::report(cfg, req, &format);
    }
    if summary {
        let bucket = if bucket == "hour" {
            Bucket::Hour
        } else {
            Bucket::Day
        };
        let s: AuditSummary = call(
            cfg,
            AdminRequest::ReportSummary {
                since_ms,
                until_ms,
                bucket,
                top: Some(top),
            },
        )?;
        incomplete(s.complete, s.note.as_deref());
        return super::summary::print(&s, json, csv);
    }
    let report: AuditReport = call(
        cfg,
        AdminRequest::Report {
            user,
            result,
            since_ms,
            limit,
            until_ms,
            method,
            client,
            sign_ins_only: false,
        },
    )?;
    incomplete(report.complete, report.note.as_deref());
    let recs = report.records;
    if json {
        println!("{}", json_pretty(&recs)?);
    } else if csv {
        // The admin API's CSV writer: RFC 4180, formulas defused,
        // `time` (ISO 8601 UTC) first.
        {
            use std::io::Write as _;
            let recs: Vec<serde_json::Value> = recs
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            let csv = radmfa_server::api::records_csv(&recs);
            if let Err(e) = std::io::stdout().write_all(csv.as_bytes()) {
                stdout_failed(&e);
            }
        }
    } else {
        let rows: Vec<Vec<String>> = recs
            .iter()
            .map(|r| {
                vec![
                    format_time(r.time_ms),
                    esc(&r.user),
                    esc(&r.mode),
                    esc(&r.result),
                    esc(&r.reason),
                    esc(&r.client_name),
                    esc(&r.client_ip),
                    esc(&r.calling_station),
                    esc(&r.server_name),
                    esc(&r.actor),
                ]
            })
            .collect();
        print_table(
            &[
                "TIME (UTC)",
                "USER",
                "MODE",
                "RESULT",
                "REASON",
                "CLIENT",
                "CLIENT IP",
                "CALLING STATION",
                "SERVER",
                "ACTOR",
            ],
            &rows,
        );
    }
    Ok(())
}

/// Says on stderr when a report does not cover the whole cluster.
fn incomplete(complete: bool, note: Option<&str>) {
    if !complete {
        eprintln!(
            "warning: incomplete report: {}",
            note.unwrap_or("reason unknown")
        );
    }
}

/// A `--since`/`--until` time in unix ms: unix seconds, a duration ago
/// (`30m`, `1h`, `2d`), `today` or `yesterday` (midnight UTC), a date
/// (`2026-12-07`, midnight UTC) or RFC 3339.
pub fn parse_since(s: &str) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    parse_time_at(s, now)
}

pub fn parse_time_at(s: &str, now_ms: u64) -> anyhow::Result<u64> {
    const DAY_MS: u64 = 86_400_000;
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs.saturating_mul(1000));
    }
    match s {
        "today" => return Ok(now_ms - now_ms % DAY_MS),
        "yesterday" => return Ok((now_ms - now_ms % DAY_MS).saturating_sub(DAY_MS)),
        _ => {}
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(now_ms.saturating_sub(ago.as_millis() as u64));
    }
    let full = if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|_| {
            anyhow!(
                "{s:?} is not a time: use a duration ago (30m, 1h, 2d), today, yesterday, \
                 a date (2026-12-07, UTC), RFC 3339 (2026-12-07T08:00:00Z) or unix seconds"
            )
        })?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| anyhow!("{s:?} is before 1970"))
}
