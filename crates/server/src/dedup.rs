//! Duplicate detection (RFC 5080 §2.2.2): a retransmission - same client
//! address and port, Identifier and Request Authenticator - is answered with
//! the cached reply, or ignored while the first copy is still being processed.
//! It never runs the pipeline twice.
//!
//! Memory is bounded by `[radius] duplicate_cache_entries`: at most that many
//! answered replies are held (each shard holds its share and forgets its
//! oldest beyond it), plus the requests in flight, which `max_in_flight`
//! bounds. A shard's tables also give back their room once a burst has
//! expired ([`SHRINK_BELOW`]): a hash table keeps its largest size, so a
//! node would otherwise hold the memory of its busiest 10 s for good.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

/// A shard's tables shrink to fit when they hold fewer entries than this
/// fraction (1/N) of their room: after a burst of 250,000 replies (about
/// 100 MB) expired, what a quiet node keeps is sized by its present
/// traffic. A quarter, not less room than entries: a shard at a steady
/// rate then never shrinks and regrows on every request (a shrink costs
/// one pass over the entries it keeps).
const SHRINK_BELOW: usize = 4;

/// Shards smaller than this many entries of room are left alone (the
/// memory in play is a few KiB).
const SHRINK_MIN_ROOM: usize = 64;

/// What identifies one request from one NAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Client address and source port.
    pub source: SocketAddr,
    /// RADIUS Identifier.
    pub identifier: u8,
    /// Request Authenticator.
    pub authenticator: [u8; 16],
}

/// The answer of [`DuplicateCache::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// First copy: process it, then call [`DuplicateCache::complete`].
    New,
    /// A copy is being processed right now: drop this one.
    InFlight,
    /// Already answered: send this reply again.
    Answered(Arc<[u8]>),
}

#[derive(Debug)]
enum State {
    InFlight,
    Answered(Arc<[u8]>),
}

#[derive(Debug)]
struct Slot {
    state: State,
    /// For answered entries, when they may be forgotten.
    expires: Instant,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<RequestKey, Slot>,
    /// Answered keys in completion order, for expiry without a sweep.
    order: VecDeque<(Instant, RequestKey)>,
}

/// A bounded, sharded duplicate-detection cache.
#[derive(Debug)]
pub struct DuplicateCache {
    /// Each shard with its share of the bound on answered entries.
    shards: Vec<(Mutex<Shard>, usize)>,
    window: Duration,
}

impl DuplicateCache {
    /// Replies are kept for `window`; at most `max_entries` answered replies
    /// are kept in all (at least one per shard).
    pub fn new(window: Duration, max_entries: usize) -> DuplicateCache {
        let (base, extra) = (max_entries / SHARDS, max_entries % SHARDS);
        DuplicateCache {
            shards: (0..SHARDS)
                .map(|i| {
                    (
                        Mutex::new(Shard::default()),
                        (base + usize::from(i < extra)).max(1),
                    )
                })
                .collect(),
            window,
        }
    }

    fn shard(&self, key: &RequestKey) -> (&Mutex<Shard>, usize) {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let (shard, cap) = &self.shards[(h.finish() as usize) % SHARDS];
        (shard, *cap)
    }

    /// Registers a request. Returns [`Seen::New`] when the caller must process it.
    pub fn begin(&self, key: RequestKey, now: Instant) -> Seen {
        let (shard, cap) = self.shard(&key);
        let mut shard = lock(shard);
        shard.expire(now, cap);
        match shard.map.entry(key) {
            Entry::Occupied(mut e) => match &e.get().state {
                State::InFlight => Seen::InFlight,
                State::Answered(reply) if e.get().expires > now => Seen::Answered(reply.clone()),
                State::Answered(_) => {
                    e.insert(Slot {
                        state: State::InFlight,
                        expires: now,
                    });
                    Seen::New
                }
            },
            Entry::Vacant(v) => {
                v.insert(Slot {
                    state: State::InFlight,
                    expires: now,
                });
                Seen::New
            }
        }
    }

    /// Records the reply sent for `key` (or `None` when the request was
    /// dropped, so a retransmission is processed afresh).
    pub fn complete(&self, key: &RequestKey, reply: Option<Arc<[u8]>>, now: Instant) {
        let (shard, cap) = self.shard(key);
        let mut shard = lock(shard);
        match reply {
            Some(reply) => {
                let expires = now + self.window;
                shard.map.insert(
                    *key,
                    Slot {
                        state: State::Answered(reply),
                        expires,
                    },
                );
                shard.order.push_back((expires, *key));
                // Keep the bound now, not only at the next request.
                shard.expire(now, cap);
            }
            None => {
                shard.map.remove(key);
            }
        }
    }

    /// Entries held (in flight and answered).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|(s, _)| lock(s).map.len()).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    fn expire(&mut self, now: Instant, cap: usize) {
        while let Some((expires, key)) = self.order.front().copied() {
            if expires > now && self.order.len() <= cap {
                break;
            }
            self.order.pop_front();
            // Only forget the entry if it is still the answered copy this
            // queue slot was made for (it may have been reused since).
            if let Some(slot) = self.map.get(&key) {
                if matches!(slot.state, State::Answered(_)) && slot.expires == expires {
                    self.map.remove(&key);
                }
            }
        }
        self.shrink();
    }

    /// Gives back the room of entries that expired (see [`SHRINK_BELOW`]).
    fn shrink(&mut self) {
        let room = self.map.capacity();
        if room >= SHRINK_MIN_ROOM && self.map.len() * SHRINK_BELOW < room {
            self.map.shrink_to(self.map.len() * 2);
        }
        let room = self.order.capacity();
        if room >= SHRINK_MIN_ROOM && self.order.len() * SHRINK_BELOW < room {
            self.order.shrink_to(self.order.len() * 2);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> RequestKey {
        RequestKey {
            source: "127.0.0.1:5000".parse().expect("addr"),
            identifier: id,
            authenticator: [7; 16],
        }
    }

    #[test]
    fn retransmission_gets_cached_reply() {
        let c = DuplicateCache::new(Duration::from_secs(5), 1000);
        let t = Instant::now();
        assert_eq!(c.begin(key(1), t), Seen::New);
        assert_eq!(c.begin(key(1), t), Seen::InFlight);
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        c.complete(&key(1), Some(reply.clone()), t);
        assert_eq!(c.begin(key(1), t), Seen::Answered(reply));
        // Another identifier is a new request.
        assert_eq!(c.begin(key(2), t), Seen::New);
    }

    #[test]
    fn answered_entries_expire() {
        let c = DuplicateCache::new(Duration::from_secs(5), 1000);
        let t = Instant::now();
        assert_eq!(c.begin(key(1), t), Seen::New);
        c.complete(&key(1), Some(Arc::from(&b"r"[..])), t);
        let later = t + Duration::from_secs(6);
        assert_eq!(c.begin(key(1), later), Seen::New);
    }

    #[test]
    fn dropped_request_is_forgotten() {
        let c = DuplicateCache::new(Duration::from_secs(5), 1000);
        let t = Instant::now();
        assert_eq!(c.begin(key(1), t), Seen::New);
        c.complete(&key(1), None, t);
        assert_eq!(c.begin(key(1), t), Seen::New);
    }

    /// Request `i` of identifier `id` (its number in the authenticator).
    fn numbered(id: u8, i: u32) -> RequestKey {
        let mut k = key(id);
        k.authenticator[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    /// A new request, answered at `now`.
    fn answer(c: &DuplicateCache, k: RequestKey, now: Instant) {
        assert_eq!(c.begin(k, now), Seen::New);
        c.complete(&k, Some(Arc::from(&b"r"[..])), now);
    }

    /// Room held by the tables of every shard (entries they can take).
    fn room(c: &DuplicateCache) -> usize {
        c.shards
            .iter()
            .map(|(s, _)| {
                let s = lock(s);
                s.map.capacity() + s.order.capacity()
            })
            .sum()
    }

    #[test]
    fn room_is_given_back_after_a_burst_expires() {
        let c = DuplicateCache::new(Duration::from_secs(5), 100_000);
        let t = Instant::now();
        for i in 0..100_000u32 {
            answer(&c, numbered(0, i), t);
        }
        let burst = room(&c);
        assert!(burst >= 200_000, "{burst}");
        // The burst expires; a trickle of new requests touches every shard.
        let later = t + Duration::from_secs(6);
        for i in 0..2_000u32 {
            answer(&c, numbered(1, i), later);
        }
        assert_eq!(c.len(), 2_000);
        let quiet = room(&c);
        assert!(quiet <= 2_000 * 2 * SHRINK_BELOW, "{quiet} of {burst}");
        // A retransmission of the trickle is still answered from the cache.
        assert!(matches!(c.begin(numbered(1, 7), later), Seen::Answered(_)));
    }

    #[test]
    fn size_is_bounded() {
        for max in [1000, 1024, 5000] {
            let c = DuplicateCache::new(Duration::from_secs(3600), max);
            let t = Instant::now();
            for i in 0..20_000u32 {
                answer(&c, numbered(0, i), t);
                assert!(c.len() <= max, "{max}: {} after {i}", c.len());
            }
            // Full, not merely bounded: every shard holds its share.
            assert!(c.len() >= max * 9 / 10, "{max}: only {}", c.len());
        }
    }
}
