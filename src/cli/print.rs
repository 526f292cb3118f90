//! Output for people: tables, times, fields of an answer with control
//! characters escaped, and a closed standard output ending the process
//! quietly (`radmfa report | head`).

use std::io::Write;

use radmfa_server::admin::TokenSummary;
use radmfa_store::TokenKind;
use serde::Serialize;

/// Exit status of a command whose output pipe was closed (128 + SIGPIPE).
pub const BROKEN_PIPE_STATUS: u8 = 141;

pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS.into());
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1)
}

/// Whether `e` is a write to a closed pipe (the CSV writer's included).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            c.downcast_ref::<csv::Error>().and_then(|c| match c.kind() {
                csv::ErrorKind::Io(io) => Some(io),
                _ => None,
            })
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The `warnings` of an admin answer, on standard error.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Unix seconds for people: ISO 8601 UTC; 0 is "-" (never), `u64::MAX`
/// (a lock an admin must lift) says so.
pub fn show_time(secs: u64) -> String {
    match secs {
        0 => "-".into(),
        u64::MAX => "until an admin unlocks (radmfa user unlock)".into(),
        secs => format_time(secs.saturating_mul(1000)),
    }
}

/// A token's type as admins write it.
pub fn kind_name(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Totp => "totp",
        TokenKind::Hotp => "hotp",
    }
}

/// The token of `user show` on one line.
pub fn show_token(t: &TokenSummary) -> String {
    let period = if t.kind == TokenKind::Totp {
        format!(", {} s", t.period)
    } else {
        String::new()
    };
    format!(
        "{} {} {} digits{period}, enrolled {}",
        kind_name(t.kind),
        t.algorithm,
        t.digits,
        show_time(t.created)
    )
}

/// Unix ms as ISO 8601 UTC to the second.
pub fn format_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    // Stored text never drives the terminal: control characters escaped.
    let escaped: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| radmfa_server::text::escape(c).into_owned())
                .collect()
        })
        .collect();
    let rows = escaped.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>, out: &mut std::io::StdoutLock| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        if let Err(e) = writeln!(out, "{}", s.join("  ").trim_end()) {
            stdout_failed(&e);
        }
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
}

/// Stored text for people: control characters escaped
/// (radmfa_server::text), so it cannot drive the terminal.
pub fn esc(s: &str) -> String {
    radmfa_server::text::escape(s).into_owned()
}

/// An answer as one line of JSON, keys in alphabetical order (as the
/// server's JSON has them).
pub fn json_line<T: Serialize>(t: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_value(t)?.to_string())
}

/// An answer as indented JSON, keys in alphabetical order.
pub fn json_pretty<T: Serialize>(t: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&serde_json::to_value(t)?)?)
}
