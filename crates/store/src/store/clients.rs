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
