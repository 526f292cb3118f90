//! Verified-credential cache. argon2id is deliberately slow; a NAS that logs
//! the same users in all day would pay it on every request. After a password
//! verifies, we keep HMAC-SHA-256(process key, user | hash | password) in
//! memory for a while: a later request with the same password for the same
//! hash matches in constant time without argon2. Nothing is written to disk,
//! the key is random per process and a password change changes the hash, so
//! old entries stop matching at once.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const SHARDS: usize = 32;

#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    expires: Instant,
}

/// A bounded cache of verified credentials.
pub struct CredentialCache {
    key: Zeroizing<[u8; 32]>,
    ttl: Duration,
    per_shard: usize,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// `ttl` zero disables the cache.
    pub fn new(ttl: Duration, max_entries: usize) -> CredentialCache {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        CredentialCache {
            key,
            ttl,
            per_shard: (max_entries / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn digest(&self, user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(&(hash.len() as u64).to_be_bytes());
        mac.update(hash.as_bytes());
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    fn shard(&self, user: &str) -> &Mutex<HashMap<String, Entry>> {
        let mut h = DefaultHasher::new();
        user.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// True when this password was verified against this hash recently.
    pub fn check(&self, user: &str, hash: &str, password: &[u8], now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let digest = self.digest(user, hash, password);
        let shard = self.shard(user).lock().unwrap_or_else(|e| e.into_inner());
        match shard.get(user) {
            Some(e) if e.expires > now => bool::from(e.digest.ct_eq(&digest)),
            _ => false,
        }
    }

    /// Records a successful argon2 verification.
    pub fn insert(&self, user: &str, hash: &str, password: &[u8], now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let digest = self.digest(user, hash, password);
        let mut shard = self.shard(user).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(user) {
            shard.retain(|_, e| e.expires > now);
            if shard.len() >= self.per_shard {
                // Still full of live entries: forget an arbitrary one.
                if let Some(k) = shard.keys().next().cloned() {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(
            user.to_string(),
            Entry {
                digest,
                expires: now + self.ttl,
            },
        );
    }

    /// Forgets a user (password changed, user disabled or deleted).
    pub fn forget(&self, user: &str) {
        self.shard(user)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_miss_and_expiry() {
        let c = CredentialCache::new(Duration::from_secs(10), 100);
        let t = Instant::now();
        assert!(!c.check("alice", "$h1", b"pw", t));
        c.insert("alice", "$h1", b"pw", t);
        assert!(c.check("alice", "$h1", b"pw", t));
        assert!(!c.check("alice", "$h1", b"other", t));
        assert!(
            !c.check("alice", "$h2", b"pw", t),
            "new hash must not match"
        );
        assert!(!c.check("bob", "$h1", b"pw", t));
        assert!(!c.check("alice", "$h1", b"pw", t + Duration::from_secs(11)));
        c.forget("alice");
        assert!(!c.check("alice", "$h1", b"pw", t));
    }

    #[test]
    fn disabled_when_ttl_zero() {
        let c = CredentialCache::new(Duration::ZERO, 100);
        let t = Instant::now();
        c.insert("alice", "$h", b"pw", t);
        assert!(!c.check("alice", "$h", b"pw", t));
    }

    #[test]
    fn bounded() {
        let c = CredentialCache::new(Duration::from_secs(100), 64);
        let t = Instant::now();
        for i in 0..10_000 {
            c.insert(&format!("u{i}"), "$h", b"pw", t);
        }
        let total: usize = c.shards.iter().map(|s| s.lock().expect("lock").len()).sum();
        assert!(total <= 64, "{total}");
    }
}
