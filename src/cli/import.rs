//! Migration imports from the command line: `radmfa user import` (CSV)
//! and `radmfa token import-pskc | assign | revoke | list --imported`.
//! The files are read and parsed here (the server's parsers), the rows
//! and tokens sent as one admin request, so the CLI and the API accept
//! the same files and a password never leaves this process.

use std::path::Path;

use anyhow::{anyhow, Context};
use radmfa_server::admin::import_csv::parse_csv;
use radmfa_server::admin::pool::from_pskc;
use radmfa_server::admin::{AdminRequest, ImportMail, Imported, PoolChanged, TokensImported};
use radmfa_server::pskc::{self, PskcKey};
use radmfa_server::RuntimeConfig;
use radmfa_store::PoolEntry;
use zeroize::Zeroizing;

use super::call::{call, typed};
use super::input::read_secret_stdin;
use super::print::{esc, json_pretty, kind_name, print_table, print_warnings, show_time};

/// `radmfa user import --csv FILE [--dry-run] [--continue-on-error]`.
pub fn users(
    cfg: &RuntimeConfig,
    path: &Path,
    dry_run: bool,
    continue_on_error: bool,
    send_email: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = path.display().to_string();
    let parsed = parse_csv(&text).map_err(|e| anyhow!("{}", e.render(&source)))?;
    let rejected: Vec<String> = parsed.errors.iter().map(|e| e.render(&source)).collect();
    let answer: serde_json::Value = call(
        cfg,
        AdminRequest::UserImport {
            rows: parsed.rows,
            dry_run,
            continue_on_error,
            source,
            rejected,
            send_email,
        },
    )?;
    let v: Imported = typed(answer.clone())?;
    for c in &v.changes {
        println!("{}", esc(c));
    }
    for f in &v.failed {
        eprintln!("not imported: {}", esc(f));
    }
    let verb = if v.dry_run {
        "would import"
    } else {
        "imported"
    };
    println!(
        "{verb} {} rows: {} added, {} updated{}",
        v.added + v.updated,
        v.added,
        v.updated,
        if v.failed.is_empty() {
            String::new()
        } else {
            format!("; {} rows with errors not imported", v.failed.len())
        }
    );
    if let Some(mail) = answer.get("enrollment_mail") {
        let mail: ImportMail = typed(mail.clone())?;
        println!("enrollment mail sent to {} new users", mail.sent);
        print_warnings(&mail.warnings);
    }
    Ok(())
}

/// `radmfa token import-pskc FILE [--password-stdin | --psk-file F] [--dry-run]`.
pub fn pskc(
    cfg: &RuntimeConfig,
    path: &Path,
    password_stdin: bool,
    psk_file: Option<&Path>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let xml =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = if password_stdin {
        PskcKey::Password(Zeroizing::new(
            read_secret_stdin("PSKC password")?.into_bytes(),
        ))
    } else if let Some(f) = psk_file {
        PskcKey::PreShared(read_psk(f)?)
    } else {
        PskcKey::None
    };
    let file = pskc::parse(&xml, &key)
        .map_err(|e| anyhow!("{}: {e}; nothing imported", path.display()))?;
    let v: TokensImported = call(cfg, AdminRequest::TokenImport(from_pskc(file, dry_run)))?;
    for c in &v.changes {
        println!("{}", esc(c));
    }
    for s in &v.skipped {
        println!("skipped {}", esc(s));
    }
    let verb = if v.dry_run {
        "would import"
    } else {
        "imported"
    };
    println!("{verb} {} tokens from {}", v.imported, path.display());
    Ok(())
}

/// A pre-shared key file: hex (white space ignored), or the raw key.
fn read_psk(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let raw = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let hex: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let key = match data_encoding::HEXLOWER_PERMISSIVE.decode(&hex) {
        Ok(k) => k,
        Err(_) => raw.to_vec(),
    };
    if !matches!(key.len(), 16 | 24 | 32) {
        return Err(anyhow!(
            "{}: a pre-shared key is 16, 24 or 32 bytes (hex or raw), found {}",
            path.display(),
            key.len()
        ));
    }
    Ok(Zeroizing::new(key))
}

/// `radmfa token assign SERIAL USER`.
pub fn assign(cfg: &RuntimeConfig, serial: String, user: String) -> anyhow::Result<()> {
    let _: PoolChanged = call(
        cfg,
        AdminRequest::TokenAssign {
            serial: serial.clone(),
            user: user.clone(),
        },
    )?;
    println!("assigned token {} to {}", esc(&serial), esc(&user));
    Ok(())
}

/// `radmfa token revoke SERIAL`.
pub fn revoke(cfg: &RuntimeConfig, serial: String) -> anyhow::Result<()> {
    let v: PoolChanged = call(
        cfg,
        AdminRequest::TokenRevoke {
            serial: serial.clone(),
        },
    )?;
    match v.user {
        Some(u) => println!(
            "revoked token {} (it was {}'s token)",
            esc(&serial),
            esc(&u)
        ),
        None => println!("revoked token {} (it was not assigned)", esc(&serial)),
    }
    Ok(())
}

/// `radmfa token list --imported | --unassigned`.
pub fn pool_list(cfg: &RuntimeConfig, unassigned: bool, json: bool) -> anyhow::Result<()> {
    let list: Vec<PoolEntry> = call(cfg, AdminRequest::TokenPoolList { unassigned })?;
    if json {
        println!("{}", json_pretty(&list)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                esc(&e.serial),
                kind_name(e.kind).into(),
                e.algorithm.to_string(),
                e.digits.to_string(),
                esc(&e.manufacturer),
                e.user.as_deref().map_or("-".into(), esc),
                show_time(e.created),
            ]
        })
        .collect();
    print_table(
        &[
            "SERIAL",
            "TYPE",
            "ALGORITHM",
            "DIGITS",
            "MANUFACTURER",
            "USER",
            "IMPORTED (UTC)",
        ],
        &rows,
    );
    Ok(())
}
