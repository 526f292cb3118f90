//! RADIUS client operations: add (with the clash checks against the
//! configuration file and the store), list, delete.

use radmfa_store::{Client, StoreError};

use crate::config::parse_cidr;

use super::context::Ctx;
use super::error::AdminError;
use super::request::NewClient;
use super::results::{ClientAdded, ClientView, Deleted};

/// Adds a stored client.
pub fn add(ctx: Ctx<'_>, n: NewClient) -> Result<ClientAdded, AdminError> {
    let (store, cfg) = (ctx.store, ctx.config);
    let address = parse_cidr(&n.address).ok_or_else(|| {
        AdminError::Invalid(format!(
            "{:?} is not an IP address or CIDR (for example 10.0.0.0/24)",
            n.address
        ))
    })?;
    if !cfg.policies.contains_key(&n.policy) {
        return Err(AdminError::Invalid(format!(
            "policy {:?} is not defined in {}",
            n.policy, cfg.origin
        )));
    }
    if n.secret.len() < 8 {
        return Err(AdminError::Invalid(
            "the shared secret is too short: use at least 8 characters (16+ recommended)"
                .to_string(),
        ));
    }
    let warnings = check_client_clash(ctx, &n.name, address, n.force)?;
    let c = Client {
        name: n.name,
        address,
        secret: n.secret,
        policy: n.policy,
        require_message_authenticator: n.require_message_authenticator,
    };
    store.add_client(&c)?;
    Ok(ClientAdded {
        client: ClientView::stored(&c),
        warnings,
    })
}

/// The stored clients (the configuration file's are in the configuration).
pub fn list(ctx: Ctx<'_>) -> Result<Vec<ClientView>, AdminError> {
    Ok(ctx
        .store
        .list_clients()?
        .iter()
        .map(ClientView::stored)
        .collect())
}

/// Deletes a stored client.
pub fn delete(ctx: Ctx<'_>, name: String) -> Result<Deleted, AdminError> {
    ctx.store.delete_client(&name)?;
    Ok(Deleted { deleted: name })
}

/// A new client must not take the name or the exact address of another
/// (configuration file or store); an address that overlaps another's
/// network is refused unless `force` (then the most specific prefix wins,
/// and the overlaps come back as warnings).
fn check_client_clash(
    ctx: Ctx<'_>,
    name: &str,
    address: ipnet::IpNet,
    force: bool,
) -> Result<Vec<String>, AdminError> {
    let (store, cfg) = (ctx.store, ctx.config);
    let mut others: Vec<(String, ipnet::IpNet, &str)> = cfg
        .clients
        .iter()
        .map(|c| (c.name.clone(), c.address, "the configuration file"))
        .collect();
    others.extend(
        store
            .list_clients()?
            .into_iter()
            .map(|c| (c.name, c.address, "the store")),
    );
    if let Some((n, _, from)) = others.iter().find(|(n, _, _)| n == name) {
        return Err(AdminError::Store(StoreError::AlreadyExists {
            what: "client",
            name: format!("{n} (in {from})"),
        }));
    }
    if let Some((n, _, from)) = others.iter().find(|(_, a, _)| *a == address) {
        return Err(AdminError::Invalid(format!(
            "address {address} is already the address of client {n:?} (in {from})"
        )));
    }
    let overlaps: Vec<String> = others
        .iter()
        .filter(|(_, a, _)| a.contains(&address) || address.contains(a))
        .map(|(n, a, from)| {
            let wins = if a.prefix_len() > address.prefix_len() {
                format!("{n:?} answers for {a}")
            } else {
                format!("{name:?} answers for {address}")
            };
            format!("address {address} overlaps client {n:?} ({a}, in {from}); the most specific prefix wins: {wins}")
        })
        .collect();
    if !overlaps.is_empty() && !force {
        return Err(AdminError::Invalid(format!(
            "{}; give --force to add it anyway",
            overlaps.join("; ")
        )));
    }
    Ok(overlaps)
}
