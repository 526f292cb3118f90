//! `radmfa import-ldap`: a directory import run once, here or on the
//! running server, and its changes printed one line each.

use anyhow::{anyhow, Context};
use radmfa_server::admin::AdminRequest;
use radmfa_server::sync::SyncReport;
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::StoreError;

use super::args::ImportLdapArgs;
use super::call::{server, tokio_block, typed};
use super::print::{esc, json_pretty};

/// `radmfa import-ldap`.
pub fn import_ldap(cfg: &RuntimeConfig, args: ImportLdapArgs) -> anyhow::Result<()> {
    let ImportLdapArgs {
        item,
        base,
        filter,
        group,
        method,
        language,
        dry_run,
        send_email,
        json,
    } = args;
    let req = AdminRequest::DirectorySync {
        item,
        base,
        filter,
        group,
        method: method.method(),
        language,
        dry_run,
        send_email,
    };
    let v: SyncReport = match radmfa_server::open_store(cfg) {
        Ok(store) => {
            let v = tokio_block(radmfa_server::admin::directory_sync(
                store.clone(),
                std::sync::Arc::new(cfg.clone()),
                None,
                req,
            ))?;
            store.flush().context("cannot flush the store")?;
            v
        }
        Err(ServerError::Store(StoreError::Locked { .. })) => typed(server(cfg, &req)?)?,
        Err(e) => return Err(anyhow!(e)),
    };
    if json {
        println!("{}", json_pretty(&v)?);
    } else {
        print_sync(&v);
    }
    Ok(())
}

/// The changes of a directory import, one line each.
fn print_sync(v: &SyncReport) {
    let verb = if v.dry_run { "would be" } else { "were" };
    for u in &v.add {
        println!(
            "+ {} ({}, {}, {})",
            esc(&u.name),
            esc(&u.display_name),
            esc(&u.method),
            esc(&u.email)
        );
    }
    for u in &v.update {
        println!("~ {}: {}", esc(&u.name), u.changed.join(", "));
    }
    for u in &v.disable {
        println!("- {u} (disabled)");
    }
    for u in &v.skipped {
        println!("  {u} (not managed by this import: left alone)");
    }
    for u in &v.kept_local {
        println!(
            "  {}: {} set locally, kept",
            esc(&u.name),
            u.fields.join(", ")
        );
    }
    for u in &v.left_disabled {
        println!(
            "  {} (stays disabled: {})",
            esc(&u.name),
            esc(&u.disabled_reason)
        );
    }
    println!(
        "{} added, {} updated, {} disabled {verb}{}",
        v.add.len(),
        v.update.len(),
        v.disable.len(),
        match v.mailed {
            Some(n) if n > 0 => format!("; {n} enrollment mails sent"),
            _ => String::new(),
        }
    );
    for e in v.mail_errors.iter().flatten() {
        eprintln!("mail not sent: {e}");
    }
    for e in &v.refused {
        eprintln!("left alone: {e}");
    }
}
