//! The tokens part of the [`Store`]: sealed token seeds and the OTP
//! replay state (the authentication hot path's only write).
//! Split from `store.rs` by concern.

use super::{abort, first_seed_opens, Store};
use crate::crypto::{hex_decode, hex_encode};
use crate::model::validate_name;
use crate::schema::{decode, decode_u64, encode, AdminTree, TokenRecord};
use crate::{StoreError, Token};

impl Store {
    /// Stores (or replaces) the user's token, seed sealed under the store key
    /// with the user name as AAD, and resets the user's OTP state. The user must
    /// exist ([`StoreError::NotFound`]).
    pub fn put_token(&self, user: &str, token: &Token) -> Result<(), StoreError> {
        validate_name("user", user)?;
        let value = self.seal_token(user, token)?;
        let key = user.as_bytes();
        self.write(|tx| {
            if tx.get(AdminTree::Users, key)?.is_none() {
                return abort(StoreError::NotFound {
                    what: "user",
                    name: user.to_string(),
                });
            }
            tx.put(AdminTree::Tokens, key, value.clone())?;
            tx.remove(AdminTree::OtpState, key)?;
            Ok(())
        })
    }

    /// Whether this store's seed key opens the first sealed seed it holds
    /// (`None`: no seed stored). The key check value proves the key is the
    /// one this store was created with; a replica also needs the primary's
    /// key, since it receives the primary's sealed seeds: `Some(false)` on a
    /// replica means its key file is not the primary's.
    pub fn seed_key_opens_seeds(&self) -> Result<Option<bool>, StoreError> {
        first_seed_opens(&self.inner.tokens, &self.inner.cipher)
    }

    /// The user's token with its seed decrypted; `None` if there is none.
    /// [`StoreError::Crypto`] if the seed does not decrypt (wrong key file,
    /// tampered record, record moved from another user).
    pub fn get_token(&self, user: &str) -> Result<Option<Token>, StoreError> {
        if validate_name("user", user).is_err() {
            return Ok(None);
        }
        let Some(raw) = self.inner.tokens.get(user)? else {
            return Ok(None);
        };
        let record: TokenRecord = decode("token", user.as_bytes(), &raw)?;
        let nonce = hex_decode(record.nonce.as_bytes()).ok_or(StoreError::Crypto)?;
        let sealed = hex_decode(record.sealed.as_bytes()).ok_or(StoreError::Crypto)?;
        let secret = self.inner.cipher.open(&nonce, &sealed, user.as_bytes())?;
        Ok(Some(Token {
            kind: record.kind,
            algorithm: record.algorithm,
            digits: record.digits,
            period: record.period,
            secret,
            created: record.created,
        }))
    }

    /// Deletes the user's token and OTP state; [`StoreError::NotFound`] if the
    /// user has no token.
    pub fn delete_token(&self, user: &str) -> Result<(), StoreError> {
        validate_name("user", user)?;
        let key = user.as_bytes();
        self.write(|tx| {
            if tx.remove(AdminTree::Tokens, key)?.is_none() {
                return abort(StoreError::NotFound {
                    what: "token",
                    name: user.to_string(),
                });
            }
            tx.remove(AdminTree::OtpState, key)?;
            Ok(())
        })
    }

    /// The last accepted TOTP time step or HOTP counter of the user, if any.
    pub fn otp_state(&self, user: &str) -> Result<Option<u64>, StoreError> {
        if validate_name("user", user).is_err() {
            return Ok(None);
        }
        self.inner
            .otp_state
            .get(user)?
            .map(|v| decode_u64("otp state", &v))
            .transpose()
    }

    /// Replay protection: stores `value` if it is greater than the stored one (or
    /// none is stored) and returns `Ok(true)`; otherwise `Ok(false)`. An atomic
    /// compare-and-swap: of concurrent callers with the same value exactly one
    /// wins. Hot path: not flushed (sled's `flush_every_ms` covers it).
    ///
    /// Not replicated, on a primary or a replica: replay protection is
    /// node-local. (A sled transaction adding a changelog entry cost 17–60 µs
    /// per call against 3 µs for this compare-and-swap.) It takes the write
    /// lock, so snapshots and backups see no half-installed state, and
    /// replicated changes never lower a value: [`StoreLog`](crate::StoreLog)
    /// keeps the higher OTP state of a token it did not change.
    pub fn advance_otp_state(&self, user: &str, value: u64) -> Result<bool, StoreError> {
        validate_name("user", user)?;
        let tree = &self.inner.otp_state;
        let new = value.to_be_bytes();
        let _lock = self.lock_repl();
        loop {
            let current = tree.get(user)?;
            if let Some(cur) = &current {
                if decode_u64("otp state", cur)? >= value {
                    return Ok(false);
                }
            }
            match tree.compare_and_swap(user, current.as_deref(), Some(&new[..]))? {
                Ok(()) => return Ok(true),
                // Someone else moved it meanwhile: look again.
                Err(_) => continue,
            }
        }
    }

    /// Primary: raises the OTP replay state of several users at once (the
    /// TOTP steps / HOTP counters accepted on any node of the cluster) and
    /// logs each raise, so replicas learn it and refuse those codes too.
    /// Forward-only: a value at or below the stored one is skipped. Returns
    /// how many were raised. [`StoreError::ReadOnly`] on a replica.
    pub fn advance_otp_states_logged(&self, items: &[(String, u64)]) -> Result<usize, StoreError> {
        for (user, _) in items {
            validate_name("user", user)?;
        }
        self.write(|tx| {
            let mut raised = 0;
            for (user, value) in items {
                let key = user.as_bytes();
                let current = match tx.get(AdminTree::OtpState, key)? {
                    Some(v) => Some(decode_u64("otp state", &v).or_else(abort)?),
                    None => None,
                };
                if current.is_some_and(|c| c >= *value) {
                    continue;
                }
                tx.put(AdminTree::OtpState, key, value.to_be_bytes().to_vec())?;
                raised += 1;
            }
            Ok(raised)
        })
    }

    /// The stored form of a token: the seed sealed under the key file, bound
    /// to the user name.
    pub(super) fn seal_token(&self, user: &str, token: &Token) -> Result<Vec<u8>, StoreError> {
        token.validate()?;
        let (nonce, sealed) = self
            .inner
            .cipher
            .seal(token.secret.expose(), user.as_bytes())?;
        encode(&TokenRecord {
            kind: token.kind,
            algorithm: token.algorithm,
            digits: token.digits,
            period: token.period,
            created: token.created,
            nonce: hex_encode(&nonce),
            sealed: hex_encode(&sealed),
            serial: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::crypto::{hex_decode, hex_encode};
    use crate::schema::TokenRecord;
    use crate::store::tests::{open, token};
    use crate::User;

    #[test]
    fn token_record_holds_no_plain_seed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store.add_user(&User::new("alice")).unwrap();
        let seed = b"0123456789abcdefghij";
        store.put_token("alice", &token(seed)).unwrap();
        let raw = store.inner.tokens.get("alice").unwrap().unwrap();
        let record: TokenRecord = serde_json::from_slice(&raw).unwrap();
        assert_eq!(hex_decode(record.nonce.as_bytes()).unwrap().len(), 12);
        // ciphertext = seed + 16-byte tag
        assert_eq!(
            hex_decode(record.sealed.as_bytes()).unwrap().len(),
            seed.len() + 16
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("0123456789abcdefghij"));
        assert!(!text.contains(&hex_encode(seed)));
    }
}
