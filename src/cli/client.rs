//! `radmfa client`: add, list (configuration file and store) and delete
//! RADIUS clients.

use anyhow::anyhow;
use radmfa_server::admin::AdminRequest;
use radmfa_server::RuntimeConfig;
use serde_json::Value;

use super::args::ClientCmd;
use super::call::call;
use super::input::read_secret_stdin;
use super::print::{field, print_table, print_warnings, yes_no};

pub fn client(cfg: &RuntimeConfig, cmd: ClientCmd) -> anyhow::Result<()> {
    match cmd {
        ClientCmd::Add {
            name,
            address,
            secret,
            secret_stdin,
            policy,
            no_require_message_authenticator,
            force,
        } => {
            let secret = match (secret, secret_stdin) {
                (Some(s), _) => s,
                (None, true) => read_secret_stdin("Shared secret")?,
                (None, false) => return Err(anyhow!("give --secret or --secret-stdin")),
            };
            let v = call(
                cfg,
                AdminRequest::ClientAdd {
                    name,
                    address,
                    secret,
                    policy,
                    require_message_authenticator: !no_require_message_authenticator,
                    force,
                },
            )?;
            println!(
                "added client {} ({})",
                v["name"].as_str().unwrap_or_default(),
                v["address"].as_str().unwrap_or_default()
            );
            print_warnings(&v);
            if no_require_message_authenticator {
                eprintln!("warning: this client may send requests without Message-Authenticator; that exposes it to BlastRADIUS (CVE-2024-3596)");
            }
        }
        ClientCmd::List { json } => {
            let stored = call(cfg, AdminRequest::ClientList)?;
            // One list, the configuration file's clients first: the JSON and
            // the table show the same clients.
            let all: Vec<Value> = cfg
                .clients
                .iter()
                .map(radmfa_server::admin::static_client_view)
                .chain(stored.as_array().cloned().unwrap_or_default())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            field(c, "name"),
                            field(c, "address"),
                            field(c, "policy"),
                            yes_no(c["require_message_authenticator"] == Value::Bool(true)),
                            field(c, "source"),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "NAME",
                        "ADDRESS",
                        "POLICY",
                        "REQUIRE MESSAGE-AUTHENTICATOR",
                        "SOURCE",
                    ],
                    &rows,
                );
            }
        }
        ClientCmd::Delete { name } => {
            call(cfg, AdminRequest::ClientDelete { name: name.clone() })?;
            println!("deleted client {name}");
        }
    }
    Ok(())
}
