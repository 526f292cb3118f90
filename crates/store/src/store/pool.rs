//! The token pool part of the [`Store`]: tokens imported by serial (PSKC
//! files a vendor ships with hardware tokens, seeds of software tokens)
//! before anyone uses them. A pooled seed is sealed like a user's (AAD
//! `pool:` + serial); assigning copies it into the user's token slot,
//! sealed for the user, and records the serial on both sides so a revoke
//! finds the user's copy. Split from `store.rs` by concern; a replicated
//! tree of its own (`token_pool`), so replicas and backups carry it.

use super::{abort, Store};
use crate::crypto::{hex_decode, hex_encode};
use crate::model::{validate_name, validate_serial};
use crate::schema::{decode, encode, AdminTree, PoolRecord, TokenRecord};
use crate::{PoolEntry, PoolToken, StoreError, Token, TokenKind};

/// The AAD a pooled seed is sealed with.
fn pool_aad(serial: &str) -> Vec<u8> {
    let mut aad = b"pool:".to_vec();
    aad.extend_from_slice(serial.as_bytes());
    aad
}

fn entry(serial: &str, r: &PoolRecord) -> PoolEntry {
    PoolEntry {
        serial: serial.to_string(),
        manufacturer: r.manufacturer.clone(),
        kind: r.kind,
        algorithm: r.algorithm,
        digits: r.digits,
        period: r.period,
        counter: r.counter,
        created: r.created,
        user: r.user.clone(),
    }
}

fn not_found(serial: &str) -> StoreError {
    StoreError::NotFound {
        what: "token serial",
        name: serial.to_string(),
    }
}

impl Store {
    /// Adds imported tokens in one transaction: all or none.
    /// [`StoreError::AlreadyExists`] if a serial is in the pool already
    /// (revoke it first), [`StoreError::Invalid`] for a bad serial or token.
    pub fn put_pool_tokens(&self, items: &[PoolToken]) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(items.len());
        for p in items {
            validate_serial(&p.serial)?;
            p.token.validate()?;
            let (nonce, sealed) = self
                .inner
                .cipher
                .seal(p.token.secret.expose(), &pool_aad(&p.serial))?;
            let value = encode(&PoolRecord {
                kind: p.token.kind,
                algorithm: p.token.algorithm,
                digits: p.token.digits,
                period: p.token.period,
                counter: p.counter,
                manufacturer: p.manufacturer.clone(),
                created: p.token.created,
                user: None,
                nonce: hex_encode(&nonce),
                sealed: hex_encode(&sealed),
            })?;
            prepared.push((p.serial.as_bytes(), value));
        }
        self.write(|tx| {
            for (key, value) in &prepared {
                if tx.get(AdminTree::TokenPool, key)?.is_some() {
                    return abort(StoreError::AlreadyExists {
                        what: "token serial",
                        name: String::from_utf8_lossy(key).into_owned(),
                    });
                }
                tx.put(AdminTree::TokenPool, key, value.clone())?;
            }
            Ok(())
        })
    }

    /// Every imported token, sorted by serial (never a seed).
    pub fn pool_tokens(&self) -> Result<Vec<PoolEntry>, StoreError> {
        self.inner
            .token_pool
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let r: PoolRecord = decode("pooled token", &k, &v)?;
                Ok(entry(&String::from_utf8_lossy(&k), &r))
            })
            .collect()
    }

    /// One imported token; `None` if the serial is not in the pool.
    pub fn pool_token(&self, serial: &str) -> Result<Option<PoolEntry>, StoreError> {
        if validate_serial(serial).is_err() {
            return Ok(None);
        }
        let Some(v) = self.inner.token_pool.get(serial)? else {
            return Ok(None);
        };
        let r: PoolRecord = decode("pooled token", serial.as_bytes(), &v)?;
        Ok(Some(entry(serial, &r)))
    }

    /// The serial of the imported token the user has, `None` for an
    /// enrolled token or none.
    pub fn token_serial(&self, user: &str) -> Result<Option<String>, StoreError> {
        if validate_name("user", user).is_err() {
            return Ok(None);
        }
        let Some(raw) = self.inner.tokens.get(user)? else {
            return Ok(None);
        };
        let r: TokenRecord = decode("token", user.as_bytes(), &raw)?;
        Ok(r.serial)
    }

    /// Assigns the imported token `serial` to `user`: it becomes the user's
    /// token (replacing one they had; a pooled token they had goes back to
    /// unassigned), an HOTP token's replay state starts below its imported
    /// counter. Refused if the token is assigned to someone else.
    pub fn assign_pool_token(&self, serial: &str, user: &str) -> Result<PoolEntry, StoreError> {
        validate_serial(serial)?;
        validate_name("user", user)?;
        let raw = self
            .inner
            .token_pool
            .get(serial)?
            .ok_or_else(|| not_found(serial))?;
        let mut rec: PoolRecord = decode("pooled token", serial.as_bytes(), &raw)?;
        if let Some(other) = rec.user.as_deref().filter(|o| *o != user) {
            return Err(StoreError::Invalid(format!(
                "token {serial} is assigned to {other}; revoke it there first"
            )));
        }
        let nonce = hex_decode(rec.nonce.as_bytes()).ok_or(StoreError::Crypto)?;
        let sealed = hex_decode(rec.sealed.as_bytes()).ok_or(StoreError::Crypto)?;
        let secret = self.inner.cipher.open(&nonce, &sealed, &pool_aad(serial))?;
        let token = Token {
            kind: rec.kind,
            algorithm: rec.algorithm,
            digits: rec.digits,
            period: rec.period,
            secret,
            created: rec.created,
        };
        let mut value: TokenRecord =
            decode("token", user.as_bytes(), &self.seal_token(user, &token)?)?;
        value.serial = Some(serial.to_string());
        let value = encode(&value)?;
        // The last counter "used": the token's next one is `counter`.
        let state = (rec.kind == TokenKind::Hotp && rec.counter > 0).then(|| rec.counter - 1);
        rec.user = Some(user.to_string());
        let pooled = encode(&rec)?;
        let (ukey, skey) = (user.as_bytes(), serial.as_bytes());
        self.write(|tx| {
            if tx.get(AdminTree::Users, ukey)?.is_none() {
                return abort(StoreError::NotFound {
                    what: "user",
                    name: user.to_string(),
                });
            }
            // The record read above must be the one assigned (no revoke or
            // other assignment in between).
            if tx.get(AdminTree::TokenPool, skey)?.as_deref() != Some(&raw[..]) {
                return abort(StoreError::Invalid(format!(
                    "token {serial} changed while it was being assigned; try again"
                )));
            }
            if let Some(old) = tx.get(AdminTree::Tokens, ukey)? {
                let old: TokenRecord = decode("token", ukey, &old).or_else(abort)?;
                if let Some(prev) = old.serial.filter(|s| s != serial) {
                    if let Some(p) = tx.get(AdminTree::TokenPool, prev.as_bytes())? {
                        let mut p: PoolRecord =
                            decode("pooled token", prev.as_bytes(), &p).or_else(abort)?;
                        p.user = None;
                        tx.put(
                            AdminTree::TokenPool,
                            prev.as_bytes(),
                            encode(&p).or_else(abort)?,
                        )?;
                    }
                }
            }
            tx.put(AdminTree::Tokens, ukey, value.clone())?;
            match state {
                Some(s) => tx.put(AdminTree::OtpState, ukey, s.to_be_bytes().to_vec())?,
                None => tx.remove(AdminTree::OtpState, ukey)?,
            };
            tx.put(AdminTree::TokenPool, skey, pooled.clone())?;
            Ok(())
        })?;
        Ok(entry(serial, &rec))
    }

    /// Revokes the imported token `serial`: removes it from the pool and,
    /// if it is assigned, from its user (who then has no token). Returns
    /// the user it was assigned to.
    pub fn revoke_pool_token(&self, serial: &str) -> Result<Option<String>, StoreError> {
        validate_serial(serial)?;
        let skey = serial.as_bytes();
        self.write(|tx| {
            let Some(raw) = tx.remove(AdminTree::TokenPool, skey)? else {
                return abort(not_found(serial));
            };
            let rec: PoolRecord = decode("pooled token", skey, &raw).or_else(abort)?;
            let Some(user) = rec.user else {
                return Ok(None);
            };
            let ukey = user.as_bytes();
            if let Some(t) = tx.get(AdminTree::Tokens, ukey)? {
                let t: TokenRecord = decode("token", ukey, &t).or_else(abort)?;
                if t.serial.as_deref() == Some(serial) {
                    tx.remove(AdminTree::Tokens, ukey)?;
                    tx.remove(AdminTree::OtpState, ukey)?;
                }
            }
            Ok(Some(user))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::{open, token};
    use crate::{PoolToken, TokenKind, User};

    fn pooled(serial: &str, seed: &[u8], counter: u64) -> PoolToken {
        let mut t = token(seed);
        t.kind = TokenKind::Hotp;
        PoolToken {
            serial: serial.into(),
            manufacturer: "Acme".into(),
            counter,
            token: t,
        }
    }

    #[test]
    fn pooled_tokens_assign_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store.add_user(&User::new("alice")).unwrap();
        let seed = b"12345678901234567890";
        store
            .put_pool_tokens(&[pooled("SN1", seed, 5), pooled("SN2", seed, 0)])
            .unwrap();
        // The seed is not in the record in clear.
        let raw = store.inner.token_pool.get("SN1").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("1234567890"));
        // A serial imported twice: refused, nothing added.
        assert!(store
            .put_pool_tokens(&[pooled("SN3", seed, 0), pooled("SN1", seed, 0)])
            .is_err());
        assert!(store.pool_token("SN3").unwrap().is_none());
        let e = store.assign_pool_token("SN1", "alice").unwrap();
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(
            store.get_token("alice").unwrap().unwrap().secret.expose(),
            seed
        );
        assert_eq!(store.otp_state("alice").unwrap(), Some(4));
        assert_eq!(store.token_serial("alice").unwrap().as_deref(), Some("SN1"));
        // Another user cannot take it; the same user may again.
        store.add_user(&User::new("bob")).unwrap();
        assert!(store.assign_pool_token("SN1", "bob").is_err());
        // A second token for alice frees the first.
        store.assign_pool_token("SN2", "alice").unwrap();
        assert_eq!(store.pool_token("SN1").unwrap().unwrap().user, None);
        assert_eq!(store.otp_state("alice").unwrap(), None);
        // Revoking SN1 (unassigned now) leaves alice's SN2 alone.
        assert_eq!(store.revoke_pool_token("SN1").unwrap(), None);
        assert!(store.get_token("alice").unwrap().is_some());
        assert_eq!(
            store.revoke_pool_token("SN2").unwrap().as_deref(),
            Some("alice")
        );
        assert!(store.get_token("alice").unwrap().is_none());
        assert!(store.pool_tokens().unwrap().is_empty());
        assert!(store.revoke_pool_token("SN2").is_err());
    }
}
