//! Bearer tokens of the admin HTTP API: name, scopes and the SHA-256 hash of
//! the token (the token itself is never stored). Kept in the replicated
//! `admin_tokens` tree ([`TREE_ADMIN_TOKENS`](crate::TREE_ADMIN_TOKENS)), so
//! a token created on the primary works on every node; every change goes
//! through the same logged write path as users and clients.
//!
//! Tokens are 256-bit random values, so a single fast hash is the right
//! storage (no password stretching needed): guessing is hopeless and the hash
//! does not let anyone who reads the database present the token.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::validate_name;
use crate::schema::{decode, AdminTree};
use crate::{Store, StoreError};

/// One stored admin API token (without the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// Unique name, shown in logs for every API write made with the token.
    pub name: String,
    /// Scopes, e.g. `users:read`, `admin`.
    pub scopes: Vec<String>,
    /// SHA-256 of the token, lowercase hex.
    pub hash: String,
    /// Creation time, unix seconds.
    pub created: u64,
}

/// SHA-256 of a presented token, lowercase hex (the stored form).
pub fn admin_token_hash(token: &[u8]) -> String {
    Sha256::digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Number of enrolled second-factor tokens (a scan of the keys: call it
    /// rarely, e.g. cached for a minute by the metrics endpoint).
    pub fn token_count(&self) -> usize {
        self.inner.tokens.len()
    }

    /// Adds an admin API token; [`StoreError::AlreadyExists`] if the name is
    /// taken. `hash` must be a SHA-256 hex digest ([`admin_token_hash`]).
    pub fn add_admin_token(&self, t: &AdminToken) -> Result<(), StoreError> {
        validate_name("admin token", &t.name)?;
        if t.hash.len() != 64 || !t.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(
                "admin token hash must be 64 hex digits (SHA-256)".into(),
            ));
        }
        let value = serde_json::to_vec(t)
            .map_err(|e| StoreError::Corrupt(format!("encoding failed: {e}")))?;
        let key = t.name.as_bytes();
        self.write(|tx| {
            if tx.get(AdminTree::AdminTokens, key)?.is_some() {
                return Err(sled::transaction::ConflictableTransactionError::Abort(
                    StoreError::AlreadyExists {
                        what: "admin token",
                        name: t.name.clone(),
                    },
                ));
            }
            tx.put(AdminTree::AdminTokens, key, value.clone())?;
            Ok(())
        })
    }

    /// All admin API tokens, sorted by name.
    pub fn list_admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        self.inner
            .admin_tokens
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode("admin token", &k, &v)
            })
            .collect()
    }

    /// Removes an admin API token; [`StoreError::NotFound`] if absent.
    pub fn delete_admin_token(&self, name: &str) -> Result<(), StoreError> {
        validate_name("admin token", name)?;
        let key = name.as_bytes();
        self.write(|tx| {
            if tx.remove(AdminTree::AdminTokens, key)?.is_none() {
                return Err(sled::transaction::ConflictableTransactionError::Abort(
                    StoreError::NotFound {
                        what: "admin token",
                        name: name.to_string(),
                    },
                ));
            }
            Ok(())
        })
    }

    /// The stored token whose hash is SHA-256(`token`), if any. Every stored
    /// hash is compared in constant time (no early exit), so the time taken
    /// tells nothing about how close a guess came.
    pub fn authenticate_admin_token(&self, token: &[u8]) -> Result<Option<AdminToken>, StoreError> {
        let presented = admin_token_hash(token);
        let mut found = None;
        for t in self.list_admin_tokens()? {
            let same: bool = t.hash.as_bytes().ct_eq(presented.as_bytes()).into();
            if same && found.is_none() {
                found = Some(t);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(
            &dir.join("db"),
            &dir.join("key"),
            &crate::StoreOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn add_find_list_delete_and_replicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let t = AdminToken {
            name: "ops".into(),
            scopes: vec!["users:read".into()],
            hash: admin_token_hash(b"secret-token"),
            created: 1,
        };
        store.add_admin_token(&t).unwrap();
        assert!(matches!(
            store.add_admin_token(&t),
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(store.list_admin_tokens().unwrap(), vec![t.clone()]);
        assert_eq!(
            store.authenticate_admin_token(b"secret-token").unwrap(),
            Some(t.clone())
        );
        assert_eq!(
            store.authenticate_admin_token(b"secret-tokeN").unwrap(),
            None
        );
        // Logged to the changelog like every admin write.
        let log = crate::StoreLog::new(store.clone());
        let changes = crate::repl::ReplLog::changes_since(&log, 0, 100)
            .map_err(|_| "trimmed")
            .unwrap();
        assert!(
            changes
                .iter()
                .any(|c| c.op.tree() == crate::TREE_ADMIN_TOKENS),
            "no admin token change in the changelog"
        );
        store.delete_admin_token("ops").unwrap();
        assert!(matches!(
            store.delete_admin_token("ops"),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            store.authenticate_admin_token(b"secret-token").unwrap(),
            None
        );
        let bad = AdminToken {
            hash: "zz".into(),
            ..t
        };
        assert!(matches!(
            store.add_admin_token(&bad),
            Err(StoreError::Invalid(_))
        ));
    }
}
