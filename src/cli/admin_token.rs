//! `radmfa token-admin`: bearer tokens of the admin HTTPS API.

use radmfa_server::admin::{AdminRequest, AdminTokenCreated, AdminTokenView, Revoked};
use radmfa_server::RuntimeConfig;

use super::args::TokenAdminCmd;
use super::call::call;
use super::print::{esc, format_time, json_line, json_pretty, print_table};

pub fn token_admin(cfg: &RuntimeConfig, cmd: TokenAdminCmd) -> anyhow::Result<()> {
    match cmd {
        TokenAdminCmd::Create { name, scopes, json } => {
            let t: AdminTokenCreated = call(cfg, AdminRequest::AdminTokenCreate { name, scopes })?;
            if json {
                println!("{}", json_line(&t)?);
            } else {
                println!("{}", esc(&t.token));
                eprintln!(
                    "admin API token {:?} created with scopes {}; store it now: it is not shown again",
                    esc(&t.name),
                    serde_json::to_string(&t.scopes)?
                );
            }
        }
        TokenAdminCmd::List { json } => {
            let list: Vec<AdminTokenView> = call(cfg, AdminRequest::AdminTokenList)?;
            if json {
                println!("{}", json_pretty(&list)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.scopes.join(","),
                            format_time(t.created * 1000),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "SCOPES", "CREATED (UTC)"], &rows);
            }
        }
        TokenAdminCmd::Revoke { name } => {
            let _: Revoked = call(cfg, AdminRequest::AdminTokenRevoke { name: name.clone() })?;
            println!("admin API token {name:?} revoked");
        }
    }
    Ok(())
}
