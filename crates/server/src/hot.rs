//! In-memory state on the authentication hot path, in front of the store:
//! decoded users with their decrypted tokens, and the replay-protection
//! state (last TOTP step / HOTP counter per user), written behind to the
//! store in batches so a request never waits for sled.
//!
//! Admin writes reach a running server only through its control socket,
//! which calls [`HotState::invalidate`]; so the user cache is never stale.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use radmfa_store::{Store, StoreError, Token, User};
use tokio_util::sync::CancellationToken;
use tracing::error;

const SHARDS: usize = 64;

/// A user and their token, decoded once.
#[derive(Debug)]
pub struct CachedUser {
    /// The user.
    pub user: User,
    /// Their token, seed decrypted.
    pub token: Option<Token>,
}

/// Hot-path caches.
#[derive(Debug)]
pub struct HotState {
    users: Vec<Mutex<HashMap<String, Arc<CachedUser>>>>,
    users_per_shard: usize,
    otp: Vec<Mutex<HashMap<String, u64>>>,
    persist: std::sync::mpsc::Sender<(String, u64)>,
}

fn shard_of(name: &str) -> usize {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HotState {
    /// Creates the caches and the write-behind thread for OTP state; the
    /// thread ends after `stop` once everything queued is in the store.
    ///
    /// A thread rather than a task: when a new TOTP step begins, every active
    /// user's first login of the step updates the store at once, and those
    /// sled writes must not stall the packet loop.
    pub fn new(
        store: Store,
        max_users: usize,
        stop: CancellationToken,
    ) -> (HotState, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<(String, u64)>();
        let thread = std::thread::Builder::new()
            .name("radmfa-otp-state".into())
            .spawn(move || loop {
                match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok((user, value)) => {
                        persist(&store, &user, value);
                        // Whatever else is queued goes in the same pass.
                        while let Ok((user, value)) = rx.try_recv() {
                            persist(&store, &user, value);
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if stop.is_cancelled() {
                            while let Ok((user, value)) = rx.try_recv() {
                                persist(&store, &user, value);
                            }
                            return;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the OTP state writer thread: {e}"));
        let hot = HotState {
            users: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            users_per_shard: (max_users / SHARDS).max(1),
            otp: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            persist: tx,
        };
        (hot, thread)
    }

    /// The user and token, from the cache or the store.
    pub fn user(&self, store: &Store, name: &str) -> Result<Option<Arc<CachedUser>>, StoreError> {
        let shard = &self.users[shard_of(name)];
        if let Some(u) = lock(shard).get(name) {
            return Ok(Some(u.clone()));
        }
        let Some(user) = store.get_user(name)? else {
            return Ok(None);
        };
        let token = store.get_token(name)?;
        let cached = Arc::new(CachedUser { user, token });
        let mut map = lock(shard);
        if map.len() >= self.users_per_shard {
            // Bounded memory: start the shard afresh (cheap to refill).
            map.clear();
        }
        map.insert(name.to_string(), cached.clone());
        Ok(Some(cached))
    }

    /// Forgets one cached user (after the server itself wrote the record,
    /// e.g. a lockout).
    pub fn forget_user(&self, name: &str) {
        lock(&self.users[shard_of(name)]).remove(name);
    }

    /// Forgets every cached user (after any admin write).
    pub fn invalidate(&self) {
        for s in &self.users {
            lock(s).clear();
        }
    }

    /// Consumes a TOTP step or HOTP counter: true if `value` is newer than
    /// anything accepted for this user before (on this node or, through the
    /// store, before a restart). Atomic per user.
    pub fn advance_otp(&self, store: &Store, user: &str, value: u64) -> Result<bool, StoreError> {
        let mut map = lock(&self.otp[shard_of(user)]);
        let current = match map.get(user) {
            Some(v) => Some(*v),
            None => store.otp_state(user)?,
        };
        if current.is_some_and(|c| value <= c) {
            return Ok(false);
        }
        map.insert(user.to_string(), value);
        drop(map);
        if self.persist.send((user.to_string(), value)).is_err() {
            // Writer gone (shutting down): write through.
            store.advance_otp_state(user, value)?;
        }
        Ok(true)
    }

    /// The last consumed step/counter.
    pub fn otp_state(&self, store: &Store, user: &str) -> Result<Option<u64>, StoreError> {
        if let Some(v) = lock(&self.otp[shard_of(user)]).get(user) {
            return Ok(Some(*v));
        }
        store.otp_state(user)
    }

    /// Forgets the replay state of a user whose token was replaced or deleted
    /// (the store resets it too).
    pub fn reset_otp(&self, user: &str) {
        lock(&self.otp[shard_of(user)]).remove(user);
    }

    /// Forgets all replay state (the store keeps it).
    pub fn reset_all_otp(&self) {
        for s in &self.otp {
            lock(s).clear();
        }
    }
}

/// Forward-only compare-and-swap into the store (no fsync; sled's flusher
/// makes it durable within `flush_every_ms`).
fn persist(store: &Store, user: &str, value: u64) {
    if let Err(e) = store.advance_otp_state(user, value) {
        error!(error = %e, "cannot persist OTP replay state");
    }
}
