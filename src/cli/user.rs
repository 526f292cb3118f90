//! `radmfa user`: add, change, list, show, enable, disable, delete, unlock
//! users, set passwords and PINs, import a CSV file.

use std::path::Path;

use anyhow::{anyhow, Context};
use radmfa_server::admin::{AdminRequest, ImportRow};
use radmfa_server::RuntimeConfig;
use radmfa_store::Method;
use serde_json::Value;

use super::args::{MethodArg, UserCmd};
use super::call::call;
use super::input::read_secret_stdin;
use super::print::{field, is_time_field, print_table, print_warnings, show_time, show_token};

pub fn user(cfg: &RuntimeConfig, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            display_name,
            email,
            phone,
            method,
            groups,
            password,
            device_token,
            disabled,
        } => {
            let password = password.read()?;
            let v = call(
                cfg,
                AdminRequest::UserAdd {
                    name,
                    display_name,
                    email,
                    phone,
                    method: method.method(),
                    groups,
                    password,
                    device_token,
                    pin: None,
                    enabled: !disabled,
                },
            )?;
            println!("added user {}", v["name"].as_str().unwrap_or_default());
            print_warnings(&v);
        }
        UserCmd::Set {
            name,
            display_name,
            email,
            phone,
            method,
            device_token,
            groups,
        } => {
            call(
                cfg,
                AdminRequest::UserSet {
                    name: name.clone(),
                    display_name,
                    email,
                    phone,
                    method: method.map(MethodArg::method),
                    device_token,
                    groups,
                },
            )?;
            println!("updated user {name}");
        }
        UserCmd::Pin {
            name,
            pin,
            pin_stdin,
            clear,
        } => {
            let pin = match (pin, pin_stdin, clear) {
                (Some(p), _, _) => Some(p),
                (None, true, _) => Some(read_secret_stdin("PIN")?),
                (None, false, true) => None,
                (None, false, false) => {
                    return Err(anyhow!("give --pin, --pin-stdin or --clear"));
                }
            };
            let set = pin.is_some();
            call(
                cfg,
                AdminRequest::UserPin {
                    name: name.clone(),
                    pin,
                },
            )?;
            if set {
                println!("PIN set for {name} (PIN mode)");
            } else {
                println!("PIN cleared for {name} (standard mode)");
            }
        }
        UserCmd::List { json } => list(cfg, json)?,
        UserCmd::Show { name, json } => show(cfg, name, json)?,
        UserCmd::Enable { name } => {
            call(
                cfg,
                AdminRequest::UserSetEnabled {
                    name: name.clone(),
                    enabled: true,
                },
            )?;
            println!("enabled user {name}");
        }
        UserCmd::Disable { name } => {
            call(
                cfg,
                AdminRequest::UserSetEnabled {
                    name: name.clone(),
                    enabled: false,
                },
            )?;
            println!("disabled user {name}");
        }
        UserCmd::Delete { name } => {
            call(cfg, AdminRequest::UserDelete { name: name.clone() })?;
            println!("deleted user {name}");
        }
        UserCmd::Unlock { name } => {
            let v = call(cfg, AdminRequest::UserUnlock { name: name.clone() })?;
            if v["was_locked_until"].as_u64().unwrap_or(0) == 0 {
                println!("unlocked user {name} (no lock was recorded; failure counts cleared)");
            } else {
                println!(
                    "unlocked user {name} (was locked: {})",
                    v["was_lock_reason"].as_str().unwrap_or("")
                );
            }
        }
        UserCmd::Passwd { name, password } => {
            let password = password
                .read()?
                .ok_or_else(|| anyhow!("give --password or --password-stdin"))?;
            call(
                cfg,
                AdminRequest::UserPasswd {
                    name: name.clone(),
                    password,
                },
            )?;
            println!("password changed for {name}");
        }
        UserCmd::Import { csv } => {
            let rows = read_import(&csv)?;
            let n = rows.len();
            let v = call(cfg, AdminRequest::UserImport { rows })?;
            println!(
                "imported {n} rows: {} added, {} updated",
                v["added"], v["updated"]
            );
        }
    }
    Ok(())
}

pub fn read_import(path: &Path) -> anyhow::Result<Vec<ImportRow>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = r.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let name_col = col("name").ok_or_else(|| anyhow!("{}: no 'name' column", path.display()))?;
    let (pw, seed, dn, em, ph, me, dt) = (
        col("password"),
        col("totp_secret"),
        col("display_name"),
        col("email"),
        col("phone"),
        col("method"),
        col("device_token"),
    );
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let name = get(Some(name_col));
        if name.is_empty() {
            return Err(anyhow!("{}: row {}: empty name", path.display(), i + 2));
        }
        rows.push(ImportRow {
            name,
            password: Some(get(pw)).filter(|s| !s.is_empty()),
            totp_secret: Some(get(seed)).filter(|s| !s.is_empty()),
            display_name: get(dn),
            email: get(em),
            phone: get(ph),
            method: match get(me).as_str() {
                "" => None,
                m => Some(
                    m.parse::<Method>()
                        .map_err(|e| anyhow!("{}: row {}: {e}", path.display(), i + 2))?,
                ),
            },
            device_token: get(dt),
        });
    }
    Ok(rows)
}

/// `radmfa user list`: a table, or the JSON array with `--json`.
fn list(cfg: &RuntimeConfig, json: bool) -> anyhow::Result<()> {
    let v = call(cfg, AdminRequest::UserList)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let rows: Vec<Vec<String>> = v
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|u| {
                vec![
                    field(u, "name"),
                    field(u, "display_name"),
                    field(u, "method"),
                    if u["enabled"] == Value::Bool(true) {
                        "yes"
                    } else {
                        "no"
                    }
                    .into(),
                    u["token"]["kind"].as_str().unwrap_or("-").into(),
                    field(u, "email"),
                    field(u, "phone"),
                ]
            })
            .collect();
        print_table(
            &[
                "NAME",
                "DISPLAY NAME",
                "METHOD",
                "ENABLED",
                "TOKEN",
                "EMAIL",
                "PHONE",
            ],
            &rows,
        );
    }
    Ok(())
}

/// `radmfa user show NAME`: one field a line, or the JSON object with `--json`.
fn show(cfg: &RuntimeConfig, name: String, json: bool) -> anyhow::Result<()> {
    let v = call(cfg, AdminRequest::UserShow { name })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(m) = v.as_object() {
        for (k, val) in m {
            let shown = match val {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                _ if is_time_field(k) => show_time(val),
                Value::Object(t) if k == "token" => show_token(t),
                other => other.to_string(),
            };
            println!("{k:<14} {}", radmfa_server::text::Escaped(&shown));
        }
    }
    Ok(())
}
