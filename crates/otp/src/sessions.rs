//! In-memory challenge sessions: random ids, deadlines, single use, bounded.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::OtpError;

const SHARDS: usize = 16;

/// A session id: 128 random bits.
pub type SessionId = [u8; 16];

struct Shard<T> {
    /// id -> (deadline, payload).
    entries: HashMap<SessionId, (u64, T)>,
    /// (deadline, id), so expired entries are found without a full scan.
    by_deadline: BTreeSet<(u64, SessionId)>,
}

impl<T> Shard<T> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }

    /// Removes entries whose deadline is `<= now`; returns how many.
    fn purge(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(&(deadline, id)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if self.entries.remove(&id).is_some() {
                n += 1;
            }
        }
        n
    }

    fn remove(&mut self, id: &SessionId) -> Option<(u64, T)> {
        let (deadline, payload) = self.entries.remove(id)?;
        self.by_deadline.remove(&(deadline, *id));
        Some((deadline, payload))
    }

    fn insert(&mut self, id: SessionId, deadline: u64, payload: T) {
        self.by_deadline.insert((deadline, id));
        self.entries.insert(id, (deadline, payload));
    }
}

/// What [`Sessions::take_entry_if`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Take<T> {
    /// The session was removed: its payload and deadline.
    Taken(T, u64),
    /// The session exists but the caller may not take it; it stays stored.
    Refused,
    /// No such live session (unknown id, or expired and now removed).
    Missing,
}

/// Challenge sessions held in memory on the node that issued them.
///
/// Each session has a random 128-bit id and a deadline (`insert` time +
/// lifetime); it is valid while `now < deadline`. [`Sessions::take`] removes it
/// (single use). The table holds at most `max_sessions` entries; when full,
/// expired entries are purged and, if that is not enough, `insert` fails with
/// [`OtpError::SessionsFull`]. The table is split in 16 mutex-protected shards
/// chosen by the id, so concurrent requests rarely wait on each other.
pub struct Sessions<T> {
    shards: Box<[Mutex<Shard<T>>]>,
    count: AtomicUsize,
    lifetime: u64,
    max: usize,
}

impl<T> fmt::Debug for Sessions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("len", &self.len())
            .field("lifetime", &self.lifetime)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<T> Sessions<T> {
    /// A table whose sessions live `lifetime_secs` seconds, holding at most
    /// `max_sessions` entries (0 refuses every insert).
    pub fn new(lifetime_secs: u64, max_sessions: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            count: AtomicUsize::new(0),
            lifetime: lifetime_secs,
            max: max_sessions,
        }
    }

    /// The lifetime given to new sessions, in seconds.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    /// The maximum number of sessions.
    pub fn capacity(&self) -> usize {
        self.max
    }

    fn shard(&self, id: &SessionId) -> MutexGuard<'_, Shard<T>> {
        // The critical sections leave the shard consistent even if a payload's
        // Drop panicked, so a poisoned lock is still usable.
        self.shards[usize::from(id[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves room for one entry; false if the table is full.
    fn reserve(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.count.fetch_sub(n, Ordering::AcqRel);
        }
    }

    fn reserve_or_purge(&self, now: u64) -> Result<(), OtpError> {
        if self.reserve() {
            return Ok(());
        }
        self.purge_expired(now);
        if self.reserve() {
            Ok(())
        } else {
            Err(OtpError::SessionsFull)
        }
    }

    /// Stores `payload` under a new random id with deadline `now + lifetime`
    /// and returns the id.
    pub fn insert(&self, now: u64, payload: T) -> Result<SessionId, OtpError> {
        self.reserve_or_purge(now)?;
        let deadline = now.saturating_add(self.lifetime);
        loop {
            let mut id = [0u8; 16];
            if let Err(e) = crate::rng::try_fill(&mut id) {
                self.release(1);
                return Err(e);
            }
            let mut shard = self.shard(&id);
            let purged = shard.purge(now);
            self.release(purged);
            if shard.entries.contains_key(&id) {
                // 2^-128 per live session; draw again rather than overwrite.
                continue;
            }
            shard.insert(id, deadline, payload);
            return Ok(id);
        }
    }

    /// Removes the session and returns its payload and deadline; `None` if the
    /// id is unknown or the session has expired (an expired entry is removed too).
    pub fn take_entry(&self, id: &SessionId, now: u64) -> Option<(T, u64)> {
        let removed = self.shard(id).remove(id);
        let (deadline, payload) = removed?;
        self.release(1);
        if now >= deadline {
            return None;
        }
        Some((payload, deadline))
    }

    /// Removes the session only if `accept` says its payload may be taken
    /// (the answer comes from the user and place the challenge was issued
    /// to); otherwise leaves it in place, untouched, so a stranger holding
    /// someone else's id cannot destroy their pending session. The check runs
    /// under the shard lock: no other caller sees the session missing
    /// meanwhile. An expired entry is removed and reported as [`Take::Missing`].
    pub fn take_entry_if(
        &self,
        id: &SessionId,
        now: u64,
        accept: impl FnOnce(&T) -> bool,
    ) -> Take<T> {
        let mut shard = self.shard(id);
        let Some((deadline, payload)) = shard.entries.get(id) else {
            return Take::Missing;
        };
        let (deadline, live) = (*deadline, now < *deadline);
        if live && !accept(payload) {
            return Take::Refused;
        }
        let removed = shard.remove(id);
        drop(shard);
        let Some((_, payload)) = removed else {
            return Take::Missing;
        };
        self.release(1);
        if live {
            Take::Taken(payload, deadline)
        } else {
            Take::Missing
        }
    }

    /// Removes the session and returns its payload; `None` if the id is
    /// unknown or the session has expired (an expired entry is removed too).
    pub fn take(&self, id: &SessionId, now: u64) -> Option<T> {
        self.take_entry(id, now).map(|(payload, _)| payload)
    }

    /// Stores `payload` again under `id` with the given `deadline` (normally
    /// the one [`Sessions::take_entry`] returned, so a retry does not extend
    /// the session's life). Fails with [`OtpError::SessionsFull`] if the table
    /// is full, or [`OtpError::InvalidParameter`] if `id` is already in use.
    pub fn put_back(&self, id: SessionId, deadline: u64, payload: T) -> Result<(), OtpError> {
        if !self.reserve() {
            return Err(OtpError::SessionsFull);
        }
        let mut shard = self.shard(&id);
        if shard.entries.contains_key(&id) {
            drop(shard);
            self.release(1);
            return Err(OtpError::InvalidParameter("session id already in use"));
        }
        shard.insert(id, deadline, payload);
        Ok(())
    }

    /// Removes every session whose deadline is `<= now`; returns how many.
    pub fn purge_expired(&self, now: u64) -> usize {
        let mut total = 0;
        for m in self.shards.iter() {
            let n = m.lock().unwrap_or_else(PoisonError::into_inner).purge(now);
            self.release(n);
            total += n;
        }
        total
    }

    /// Number of stored sessions, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// True if no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn insert_take_single_use() {
        let s = Sessions::new(60, 100);
        assert!(s.is_empty());
        let id = s.insert(1000, "alice").unwrap();
        let id2 = s.insert(1000, "bob").unwrap();
        assert_ne!(id, id2);
        assert_eq!(s.len(), 2);
        assert_eq!(s.take(&id, 1010), Some("alice"));
        assert_eq!(s.take(&id, 1010), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(&[0u8; 16], 1010), None);
        assert_eq!(s.take(&id2, 1059), Some("bob"));
        assert!(s.is_empty());
    }

    #[test]
    fn expiry() {
        let s = Sessions::new(60, 100);
        let id = s.insert(1000, 1u32).unwrap();
        // Deadline is 1060: expired at 1060, and removed by the failed take.
        assert_eq!(s.take(&id, 1060), None);
        assert!(s.is_empty());

        let a = s.insert(1000, 2).unwrap();
        let b = s.insert(1030, 3).unwrap();
        assert_eq!(s.purge_expired(1059), 0);
        assert_eq!(s.purge_expired(1060), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(&a, 1061), None);
        assert_eq!(s.take(&b, 1061), Some(3));
        assert_eq!(s.purge_expired(u64::MAX), 0);
    }

    #[test]
    fn lifetime_saturates() {
        let s = Sessions::new(u64::MAX, 10);
        let id = s.insert(5, ()).unwrap();
        assert_eq!(s.take_entry(&id, u64::MAX - 1), Some(((), u64::MAX)));
    }

    #[test]
    fn bounded_size() {
        let s = Sessions::new(60, 3);
        for i in 0..3 {
            s.insert(1000, i).unwrap();
        }
        assert_eq!(s.insert(1000, 9), Err(OtpError::SessionsFull));
        assert_eq!(s.insert(1059, 9), Err(OtpError::SessionsFull));
        assert_eq!(s.len(), 3);
        // Once they expire, insert purges and succeeds.
        let id = s.insert(1060, 10).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(&id, 1061), Some(10));

        let none: Sessions<()> = Sessions::new(60, 0);
        assert_eq!(none.insert(0, ()), Err(OtpError::SessionsFull));
    }

    #[test]
    fn put_back_keeps_deadline() {
        let s = Sessions::new(60, 2);
        let id = s.insert(1000, "x").unwrap();
        let (p, deadline) = s.take_entry(&id, 1030).unwrap();
        assert_eq!(deadline, 1060);
        s.put_back(id, deadline, p).unwrap();
        assert_eq!(s.len(), 1);
        // Double put_back is refused.
        assert!(matches!(
            s.put_back(id, deadline, "y"),
            Err(OtpError::InvalidParameter(_))
        ));
        assert_eq!(s.len(), 1);
        // Still expires at the original deadline.
        assert_eq!(s.take(&id, 1060), None);
        // put_back respects the bound.
        s.insert(1000, "a").unwrap();
        s.insert(1000, "b").unwrap();
        assert_eq!(s.put_back([7; 16], 2000, "c"), Err(OtpError::SessionsFull));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn take_if_refused_leaves_the_session() {
        let s = Sessions::new(60, 10);
        let id = s.insert(1000, "alice").unwrap();
        assert_eq!(
            s.take_entry_if(&id, 1010, |p| *p == "mallory"),
            Take::Refused
        );
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.take_entry_if(&id, 1010, |p| *p == "alice"),
            Take::Taken("alice", 1060)
        );
        assert_eq!(s.take_entry_if(&id, 1010, |_| true), Take::Missing);
        assert!(s.is_empty());
        // Expired: removed whatever the check says, and never handed out.
        let id = s.insert(1000, "bob").unwrap();
        assert_eq!(s.take_entry_if(&id, 1060, |_| false), Take::Missing);
        assert!(s.is_empty());
        assert_eq!(s.take_entry_if(&[0; 16], 1000, |_| true), Take::Missing);
    }

    #[test]
    fn concurrent_smoke() {
        let s = Arc::new(Sessions::new(60, 10_000));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0..500u64 {
                        ids.push((s.insert(1000, t * 1000 + i).unwrap(), t * 1000 + i));
                    }
                    for (n, (id, v)) in ids.into_iter().enumerate() {
                        if n % 2 == 0 {
                            assert_eq!(s.take(&id, 1001), Some(v));
                            assert_eq!(s.take(&id, 1001), None);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.len(), 8 * 250);
        assert_eq!(s.purge_expired(1060), 8 * 250);
        assert!(s.is_empty());
    }

    #[test]
    fn concurrent_bound_is_exact() {
        let s = Arc::new(Sessions::new(60, 100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || (0..100).filter(|_| s.insert(0, ()).is_ok()).count())
            })
            .collect();
        let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(ok, 100);
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn sessions_are_send_and_sync() {
        fn assert_send_sync<X: Send + Sync>() {}
        assert_send_sync::<Sessions<String>>();
    }
}
