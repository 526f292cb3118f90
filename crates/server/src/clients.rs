//! The client (NAS) table: static clients from the configuration plus clients
//! added to the store, looked up by source address, most specific prefix first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use radmfa_store::Store;

use crate::config::StaticClient;
use crate::secret::SharedSecret;

/// A client as the pipeline sees it.
#[derive(Debug)]
pub struct ClientEntry {
    /// Name for logs and the audit log.
    pub name: String,
    /// Shared secret.
    pub secret: SharedSecret,
    /// Policy name.
    pub policy: String,
    /// Drop requests without a valid Message-Authenticator.
    pub require_message_authenticator: bool,
    /// RadSec: SHA-256 of the certificate the connection presented (several
    /// certificates may map to one client entry); `None` for UDP clients. A
    /// challenge is answered only under the same name and certificate.
    pub cert_sha256: Option<[u8; 32]>,
}

#[derive(Debug, Default)]
struct Table {
    exact: HashMap<IpAddr, Arc<ClientEntry>>,
    /// Networks, longest prefix first.
    nets: Vec<(IpNet, Arc<ClientEntry>)>,
}

impl Table {
    fn insert(&mut self, net: IpNet, entry: Arc<ClientEntry>) {
        if net.prefix_len() == net.max_prefix_len() {
            self.exact.insert(net.addr(), entry);
        } else {
            self.nets.push((net, entry));
        }
    }

    fn lookup(&self, ip: IpAddr) -> Option<Arc<ClientEntry>> {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if let Some(c) = self.exact.get(&ip) {
            return Some(c.clone());
        }
        self.nets
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, c)| c.clone())
    }
}

/// Static and stored clients; reloads itself when the store's clients change.
#[derive(Debug)]
pub struct Clients {
    statics: Vec<StaticClient>,
    table: RwLock<Arc<Table>>,
    generation: AtomicU64,
}

impl Clients {
    /// Builds the table from the configuration and the store.
    pub fn new(
        statics: Vec<StaticClient>,
        store: &Store,
    ) -> Result<Clients, radmfa_store::StoreError> {
        let clients = Clients {
            statics,
            table: RwLock::new(Arc::new(Table::default())),
            generation: AtomicU64::new(u64::MAX),
        };
        clients.reload(store)?;
        Ok(clients)
    }

    /// Rebuilds the table if the store's clients changed since the last build.
    pub fn refresh(&self, store: &Store) -> Result<(), radmfa_store::StoreError> {
        if store.clients_generation() != self.generation.load(Ordering::Acquire) {
            self.reload(store)?;
        }
        Ok(())
    }

    fn reload(&self, store: &Store) -> Result<(), radmfa_store::StoreError> {
        let generation = store.clients_generation();
        let mut table = Table::default();
        // Stored clients first, so a static client with the same address wins
        // (the configuration file is the admin's last word).
        for c in store.list_clients()? {
            table.insert(
                c.address.trunc(),
                Arc::new(ClientEntry {
                    name: c.name.clone(),
                    secret: SharedSecret::new(c.secret.as_bytes().to_vec()),
                    policy: c.policy.clone(),
                    require_message_authenticator: c.require_message_authenticator,
                    cert_sha256: None,
                }),
            );
        }
        for c in &self.statics {
            table.insert(
                c.address,
                Arc::new(ClientEntry {
                    name: c.name.clone(),
                    secret: c.secret.clone(),
                    policy: c.policy.clone(),
                    require_message_authenticator: c.require_message_authenticator,
                    cert_sha256: None,
                }),
            );
        }
        table
            .nets
            .sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.generation.store(generation, Ordering::Release);
        Ok(())
    }

    /// The client a datagram from `ip` belongs to.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<ClientEntry>> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        table.lookup(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Arc<ClientEntry> {
        Arc::new(ClientEntry {
            name: name.into(),
            secret: SharedSecret::new(b"s".to_vec()),
            policy: "default".into(),
            require_message_authenticator: true,
            cert_sha256: None,
        })
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = Table::default();
        t.insert("10.0.0.0/8".parse().expect("net"), entry("wide"));
        t.insert("10.1.0.0/16".parse().expect("net"), entry("narrow"));
        t.insert("10.1.2.3/32".parse().expect("net"), entry("host"));
        t.nets
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        let name = |ip: &str| t.lookup(ip.parse().expect("ip")).map(|c| c.name.clone());
        assert_eq!(name("10.1.2.3").as_deref(), Some("host"));
        assert_eq!(name("10.1.9.9").as_deref(), Some("narrow"));
        assert_eq!(name("10.9.9.9").as_deref(), Some("wide"));
        assert_eq!(name("192.168.1.1"), None);
        assert_eq!(name("::ffff:10.1.2.3").as_deref(), Some("host"));
    }
}
