//! `radmfa import-ldap`: a directory import run once, here or on the
//! running server, and its changes printed one line each.

use anyhow::{anyhow, Context};
use radmfa_server::admin::AdminRequest;
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::StoreError;
use serde_json::Value;

use super::args::ImportLdapArgs;
use super::call::tokio_block;
use super::print::field;

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
    let v = match radmfa_server::open_store(cfg) {
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
        Err(ServerError::Store(StoreError::Locked { .. })) => {
            tokio_block(radmfa_server::control::request(&cfg.control_socket(), &req))?
        }
        Err(e) => return Err(anyhow!(e)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_sync(&v);
    }
    Ok(())
}

/// The changes of a directory import, one line each.
pub fn print_sync(v: &Value) {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let verb = if v["dry_run"] == Value::Bool(true) {
        "would be"
    } else {
        "were"
    };
    for u in list("add") {
        println!(
            "+ {} ({}, {}, {})",
            field(&u, "name"),
            field(&u, "display_name"),
            field(&u, "method"),
            field(&u, "email")
        );
    }
    for u in list("update") {
        let changed: Vec<String> = u["changed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!("~ {}: {}", field(&u, "name"), changed.join(", "));
    }
    for u in list("disable") {
        println!("- {} (disabled)", u.as_str().unwrap_or_default());
    }
    for u in list("skipped") {
        println!(
            "  {} (not managed by this import: left alone)",
            u.as_str().unwrap_or_default()
        );
    }
    for u in list("kept_local") {
        let fields: Vec<&str> = u["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "  {}: {} set locally, kept",
            field(&u, "name"),
            fields.join(", ")
        );
    }
    for u in list("left_disabled") {
        println!(
            "  {} (stays disabled: {})",
            field(&u, "name"),
            field(&u, "disabled_reason")
        );
    }
    println!(
        "{} added, {} updated, {} disabled {verb}{}",
        list("add").len(),
        list("update").len(),
        list("disable").len(),
        match v["mailed"].as_u64() {
            Some(n) if n > 0 => format!("; {n} enrollment mails sent"),
            _ => String::new(),
        }
    );
    for e in list("mail_errors") {
        eprintln!("mail not sent: {}", e.as_str().unwrap_or_default());
    }
    for e in list("refused") {
        eprintln!("left alone: {}", e.as_str().unwrap_or_default());
    }
}
