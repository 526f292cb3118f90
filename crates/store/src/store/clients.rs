//! The RADIUS clients part of the [`Store`], with the generation counter
//! the server's client cache watches. Split from `store.rs` by concern.

use std::sync::atomic::Ordering;

use super::{abort, Store};
use crate::model::validate_name;
use crate::schema::{decode, encode, AdminTree};
use crate::{Client, StoreError};

impl Store {
    /// Adds a client; [`StoreError::AlreadyExists`] if the name is taken.
    pub fn add_client(&self, c: &Client) -> Result<(), StoreError> {
        c.validate()?;
        let value = encode(c)?;
        let key = c.name.as_bytes();
        self.write(|tx| {
            if tx.get(AdminTree::Clients, key)?.is_some() {
                return abort(StoreError::AlreadyExists {
                    what: "client",
                    name: c.name.clone(),
                });
            }
            tx.put(AdminTree::Clients, key, value.clone())?;
            Ok(())
        })
    }

    /// Inserts or replaces a client.
    pub fn put_client(&self, c: &Client) -> Result<(), StoreError> {
        c.validate()?;
        let value = encode(c)?;
        let key = c.name.as_bytes();
        self.write(|tx| {
            tx.put(AdminTree::Clients, key, value.clone())?;
            Ok(())
        })
    }

    /// Deletes a client; [`StoreError::NotFound`] if absent.
    pub fn delete_client(&self, name: &str) -> Result<(), StoreError> {
        validate_name("client", name)?;
        let key = name.as_bytes();
        self.write(|tx| {
            if tx.remove(AdminTree::Clients, key)?.is_none() {
                return abort(StoreError::NotFound {
                    what: "client",
                    name: name.to_string(),
                });
            }
            Ok(())
        })
    }

    /// All clients, sorted by name (byte order).
    pub fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.inner
            .clients
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode("client", &k, &v)
            })
            .collect()
    }

    /// A counter that increments after every committed client change (it starts
    /// at 1 when the store opens). Read it *before* [`Store::list_clients`]: a
    /// changed value means the client table must be reloaded.
    pub fn clients_generation(&self) -> u64 {
        self.inner.clients_generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::open;
    use crate::{Client, User};

    #[test]
    fn clients_generation_moves_on_client_changes_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let g0 = store.clients_generation();
        store.add_user(&User::new("a")).unwrap();
        assert_eq!(store.clients_generation(), g0);
        let c = Client {
            name: "nas".into(),
            address: "192.0.2.1/32".parse().unwrap(),
            secret: "s".into(),
            policy: "default".into(),
            require_message_authenticator: true,
        };
        store.add_client(&c).unwrap();
        assert_eq!(store.clients_generation(), g0 + 1);
        assert!(store.add_client(&c).is_err()); // failed write: no change
        assert_eq!(store.clients_generation(), g0 + 1);
        store.put_client(&c).unwrap();
        store.delete_client("nas").unwrap();
        assert_eq!(store.clients_generation(), g0 + 3);
        assert!(store.delete_client("nas").is_err());
        assert_eq!(store.clients_generation(), g0 + 3);
    }
}
