//! `radmfa client`: add, list (configuration file and store) and delete
//! RADIUS clients.

use anyhow::anyhow;
use radmfa_server::admin::{
    AdminRequest, ClientAdded, ClientSource, ClientView, Deleted, NewClient,
};
use radmfa_server::RuntimeConfig;

use super::args::ClientCmd;
use super::call::call;
use super::input::read_secret_stdin;
use super::print::{esc, json_pretty, print_table, print_warnings, yes_no};

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
            let v: ClientAdded = call(
                cfg,
                AdminRequest::ClientAdd(NewClient {
                    name,
                    address,
                    secret,
                    policy,
                    require_message_authenticator: !no_require_message_authenticator,
                    force,
                }),
            )?;
            println!("added client {} ({})", v.client.name, v.client.address);
            print_warnings(&v.warnings);
            if no_require_message_authenticator {
                eprintln!("warning: this client may send requests without Message-Authenticator; that exposes it to BlastRADIUS (CVE-2024-3596)");
            }
        }
        ClientCmd::List { json } => {
            let stored: Vec<ClientView> = call(cfg, AdminRequest::ClientList)?;
            // One list, the configuration file's clients first: the JSON and
            // the table show the same clients.
            let all: Vec<ClientView> = cfg
                .clients
                .iter()
                .map(ClientView::configured)
                .chain(stored)
                .collect();
            if json {
                println!("{}", json_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            esc(&c.name),
                            esc(&c.address),
                            esc(&c.policy),
                            yes_no(c.require_message_authenticator),
                            source(c.source).to_string(),
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
            let _: Deleted = call(cfg, AdminRequest::ClientDelete { name: name.clone() })?;
            println!("deleted client {name}");
        }
    }
    Ok(())
}

/// Where a client is defined, as the table says it.
fn source(s: ClientSource) -> &'static str {
    match s {
        ClientSource::Config => "config",
        ClientSource::Store => "store",
    }
}
