//! Output for people: tables, times, fields of an answer with control
//! characters escaped, and a closed standard output ending the process
//! quietly (`radmfa report | head`).

use std::io::Write;

use serde_json::Value;

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

pub fn print_warnings(v: &Value) {
    for w in v["warnings"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
}

/// Fields of `user show` that hold unix seconds.
pub fn is_time_field(k: &str) -> bool {
    matches!(k, "created" | "updated" | "locked_until")
}

/// Unix seconds for people: ISO 8601 UTC; 0 is "-" (never), `u64::MAX`
/// (a lock an admin must lift) says so.
pub fn show_time(v: &Value) -> String {
    match v.as_u64() {
        None | Some(0) => "-".into(),
        Some(u64::MAX) => "until an admin unlocks (radmfa user unlock)".into(),
        Some(secs) => format_time(secs.saturating_mul(1000)),
    }
}

/// A token object of `user show` on one line.
pub fn show_token(t: &serde_json::Map<String, Value>) -> String {
    let f = |k: &str| match &t.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    };
    let period = if f("kind") == "totp" {
        format!(", {} s", f("period"))
    } else {
        String::new()
    };
    format!(
        "{} {} {} digits{period}, enrolled {}",
        f("kind"),
        f("algorithm"),
        f("digits"),
        t.get("created").map(show_time).unwrap_or_default()
    )
}

/// Unix ms as ISO 8601 UTC to the second.
pub fn format_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A field of a JSON answer as printed for people: control characters
/// escaped (radmfa_server::text), so stored text cannot drive the terminal.
pub fn field(v: &Value, name: &str) -> String {
    match &v[name] {
        Value::String(s) => radmfa_server::text::escape(s).into_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
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
