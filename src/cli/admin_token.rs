//! `radmfa token-admin`: bearer tokens of the admin HTTPS API.

use radmfa_server::admin::AdminRequest;
use radmfa_server::RuntimeConfig;

use super::args::TokenAdminCmd;
use super::call::call;
use super::print::{field, format_time, print_table};

pub fn token_admin(cfg: &RuntimeConfig, cmd: TokenAdminCmd) -> anyhow::Result<()> {
    match cmd {
        TokenAdminCmd::Create { name, scopes, json } => {
            let v = call(cfg, AdminRequest::AdminTokenCreate { name, scopes })?;
            if json {
                println!("{v}");
            } else {
                println!("{}", field(&v, "token"));
                eprintln!(
                    "admin API token {:?} created with scopes {}; store it now: it is not shown again",
                    field(&v, "name"),
                    v["scopes"]
                );
            }
        }
        TokenAdminCmd::List { json } => {
            let v = call(cfg, AdminRequest::AdminTokenList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        let scopes: Vec<String> = t["scopes"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        vec![
                            field(t, "name"),
                            scopes.join(","),
                            format_time(t["created"].as_u64().unwrap_or(0) * 1000),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "SCOPES", "CREATED (UTC)"], &rows);
            }
        }
        TokenAdminCmd::Revoke { name } => {
            call(cfg, AdminRequest::AdminTokenRevoke { name: name.clone() })?;
            println!("admin API token {name:?} revoked");
        }
    }
    Ok(())
}
