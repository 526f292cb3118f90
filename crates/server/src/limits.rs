//! Rate limits and lockout (DESIGN.md §4 step 2).
//!
//! * Per RADIUS client and per source IP (requests per second + burst, every
//!   authentic datagram counts): over the limit the datagram is dropped
//!   silently and counted; the NAS retransmits later (RFC 2865 behaviour, no
//!   Reject that would end the user's attempt).
//! * Per user name (Access-Requests per minute + burst): over the limit the
//!   request gets an Access-Reject with audit reason `rate_limited`.
//! * Lockout: after `lockout_failures` failed second factors (wrong TOTP/HOTP
//!   or SMS code, wrong PIN, push/call denied) within `lockout_window_secs`
//!   the user is locked for `lockout_secs` (0: until an admin unlocks); a
//!   fraud report locks until an admin unlocks. A locked user's requests are
//!   rejected with reason `locked_out` before any factor is checked. Failure
//!   counts live in memory on each node; the lock itself is written to the
//!   user record ([`persist_lock`]) so it survives a restart and replicates.
//!
//! Memory stays bounded whatever the number of distinct keys: every table
//! holds at most `max_tracked_keys` entries. Keyed limiters are pruned
//! periodically ([`prune_loop`]) and when full. A limiter table that is still
//! full after pruning (only possible when more than `max_tracked_keys`
//! distinct clients, sources or user names were active within the last few
//! seconds, i.e. under a flood) **fails closed**: every check on that table
//! is limited until entries age out, and `rate_limit_tables_full` counts it.
//! The failure table evicts the user whose failure window began earliest;
//! the table of locks evicts the lock that ends soonest (a persisted lock is
//! still in the user record).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use radmfa_otp::Clock as WallClock;
use radmfa_store::{Store, StoreError};
use tracing::{debug, info, warn};

use crate::counters::{bump, Counters};
use crate::droplog::DropReason;
use crate::hot::HotState;
use crate::i18n::{Key, Text};
use crate::pipeline::decision::{audit_reason, Answer, Decision, Mode, Reason};

/// `locked_until` of a lock that lasts until an admin unlocks the user.
pub const LOCKED_UNTIL_ADMIN: u64 = u64::MAX;
/// `lock_reason` after too many failed second factors.
pub const REASON_FAILURES: &str = "too_many_failures";
/// `lock_reason` after the user reported a sign-in as fraud.
pub const REASON_FRAUD: &str = "fraud_reported";

const MSG_RATE_LIMITED: Key = Key::RateLimited;
const MSG_LOCKED_TIMED: Key = Key::Locked;
const MSG_LOCKED_ADMIN: Key = Key::LockedByAdmin;
const MSG_LOCKED_FRAUD: Key = Key::LockedByFraud;

/// Shards of the failure table.
const SHARDS: usize = 16;
/// A full limiter table is pruned inline at most this often.
const INLINE_PRUNE_EVERY: Duration = Duration::from_secs(1);
/// How often [`prune_loop`] prunes every table.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10);

pub use crate::config::{LimitSettings, LimitsSection, Rate};

// ------------------------------------------------------------ keyed limit

/// What a keyed limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Within the limit.
    Allowed,
    /// Over this key's limit.
    Limited,
    /// The table is full of recently active keys: limited (fail closed).
    Saturated,
}

/// A governor keyed limiter whose table holds at most `cap` keys (plus, at
/// worst, one per thread checking at the same instant).
pub struct KeyedLimit<K: Hash + Eq + Clone, C: Clock + Clone = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    start: C::Instant,
    cap: usize,
    /// Nanoseconds after `start` of the last inline prune.
    last_prune: AtomicU64,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> std::fmt::Debug for KeyedLimit<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("tracked", &self.limiter.len())
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// A limiter on the system's monotonic clock.
    pub fn new(quota: Quota, cap: usize) -> Self {
        Self::with_clock(quota, cap, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimit<K, C> {
    /// A limiter on `clock` (a fake one in tests).
    pub fn with_clock(quota: Quota, cap: usize, clock: C) -> Self {
        KeyedLimit {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            start: clock.now(),
            clock,
            cap: cap.max(1),
            last_prune: AtomicU64::new(0),
        }
    }

    /// Counts one request for `key`.
    pub fn check(&self, key: &K) -> Check {
        if self.limiter.len() >= self.cap {
            self.prune_throttled();
            if self.limiter.len() >= self.cap {
                return Check::Saturated;
            }
        }
        match self.limiter.check_key(key) {
            Ok(()) => Check::Allowed,
            Err(_) => Check::Limited,
        }
    }

    /// Forgets keys whose state is the same as a fresh key's, and returns
    /// the memory.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// [`KeyedLimit::prune`], at most once per [`INLINE_PRUNE_EVERY`]: a
    /// full table under a flood must not be scanned on every request.
    fn prune_throttled(&self) {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let last = self.last_prune.load(Ordering::Relaxed);
        let every = u64::try_from(INLINE_PRUNE_EVERY.as_nanos()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_prune
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // Full tables are rare: do the whole job, memory back included.
            self.prune();
        }
    }
}

// ------------------------------------------------------------- the limits

/// A lock held in this node's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lock {
    /// Unix seconds ([`LOCKED_UNTIL_ADMIN`]: until an admin unlocks).
    until: u64,
    reason: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// Unix seconds of the first failure of the current window.
    since: u64,
}

/// Why a request is refused before any factor is checked (audit reason and
/// Reply-Message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Audit reason: [`Reason::RateLimited`] or [`Reason::LockedOut`].
    pub reason: Reason,
    /// Reply-Message for the user.
    pub message: Key,
}

/// A decision replaced after the fact: the Reject to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The failure that started a lock (then `lock_started`), or
    /// [`Reason::LockedOut`].
    pub reason: Reason,
    /// This failure started the lock (audit reason `<reason>+locked_out`).
    pub lock_started: bool,
    /// Reply-Message.
    pub message: Text,
}

impl Override {
    /// The audit reason (`otp_mismatch+locked_out`, `locked_out`).
    pub fn audit_reason(&self) -> std::borrow::Cow<'static, str> {
        audit_reason(self.reason, self.lock_started)
    }

    /// The Reject to send instead, for `user` under `mode`.
    pub fn reject(self, user: &str, mode: Mode) -> Decision {
        let mut d = Decision::reject(user, mode, self.reason, self.message);
        d.lock_started = self.lock_started;
        d
    }
}

/// How an Access-Request's outcome counts towards lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A failed second factor.
    Failure,
    /// The user reported fraud.
    Fraud,
    /// Accepted.
    Success,
    /// Anything else (wrong password, gateway down, replayed code...).
    Other,
}

fn classify(d: &Decision) -> Outcome {
    if d.answer == Answer::Accept {
        Outcome::Success
    } else if d.reason == Reason::FraudReported {
        Outcome::Fraud
    } else if d.reason.is_second_factor_failure() {
        Outcome::Failure
    } else {
        Outcome::Other
    }
}

/// The rate limiters, failure counts and in-memory locks of one node.
pub struct Limits {
    settings: LimitSettings,
    counters: Arc<Counters>,
    client: Option<KeyedLimit<String>>,
    source: Option<KeyedLimit<IpAddr>>,
    user: Option<KeyedLimit<String>>,
    /// Push approvals per user (push fatigue).
    push: Option<KeyedLimit<String>>,
    failures: Vec<Mutex<HashMap<String, Failures>>>,
    locks: Mutex<HashMap<String, Lock>>,
    /// `locks.len()`, read without the mutex on every request.
    lock_count: AtomicUsize,
    /// Whether "a lock is kept in memory only" was logged already.
    warned_unpersisted: AtomicBool,
    /// Accepts on this replica not yet sent to the primary (bounded).
    pending_resets: Mutex<HashSet<String>>,
    /// This replica counts failures itself (primary unreachable; logged).
    counting_alone: AtomicBool,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn shard_of(name: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    // Keyed with a fixed hasher: shards only spread the mutexes; each
    // shard's HashMap has its own random keys against hash flooding.
    (BuildHasherDefault::<DefaultHasher>::default().hash_one(name) as usize) % SHARDS
}

impl Limits {
    /// Limits as configured; `counters` receives the decisions.
    pub fn new(settings: LimitSettings, counters: Arc<Counters>) -> Limits {
        let cap = settings.max_tracked_keys;
        let per_second = |r: Rate| Quota::per_second(r.per_period).allow_burst(r.burst);
        Limits {
            client: settings.client.map(|r| KeyedLimit::new(per_second(r), cap)),
            source: settings.source.map(|r| KeyedLimit::new(per_second(r), cap)),
            user: settings.user.map(|r| {
                KeyedLimit::new(Quota::per_minute(r.per_period).allow_burst(r.burst), cap)
            }),
            push: NonZeroU32::new(settings.push_per_user).map(|n| {
                // n pushes per window: one back every window / n, n at once.
                let every = Duration::from_secs(settings.push_window_secs) / n.get();
                let quota = Quota::with_period(every.max(Duration::from_millis(1)))
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(n);
                KeyedLimit::new(quota, cap)
            }),
            failures: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            locks: Mutex::new(HashMap::new()),
            lock_count: AtomicUsize::new(0),
            warned_unpersisted: AtomicBool::new(false),
            pending_resets: Mutex::new(HashSet::new()),
            counting_alone: AtomicBool::new(false),
            settings,
            counters,
        }
    }

    /// Counts one push approval for `user`: false when over
    /// `[limits] push_per_user` per `push_window_secs` (push fatigue: a
    /// stolen password must not let an attacker bombard the phone until
    /// the user approves to make it stop).
    pub fn allow_push(&self, user: &str) -> bool {
        self.push
            .as_ref()
            .is_none_or(|l| l.check(&user.to_string()) == Check::Allowed)
    }

    /// The settings in force.
    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Per-client and per-source limits for one authentic datagram: false
    /// means drop it silently (counted).
    pub fn admit_datagram(&self, client: &String, source: IpAddr) -> bool {
        self.check_datagram(client, source).is_ok()
    }

    /// [`Limits::admit_datagram`], saying which limit refused it (the
    /// pipeline logs the drop, [`crate::droplog`]).
    pub fn check_datagram(&self, client: &String, source: IpAddr) -> Result<(), DropReason> {
        if let Some(l) = &self.client {
            let c = l.check(client);
            if c != Check::Allowed {
                self.count_limited(c, &self.counters.rate_limited_client);
                return Err(DropReason::RateLimitedClient);
            }
        }
        if let Some(l) = &self.source {
            let c = l.check(&source);
            if c != Check::Allowed {
                self.count_limited(c, &self.counters.rate_limited_source);
                return Err(DropReason::RateLimitedSource);
            }
        }
        Ok(())
    }

    fn count_limited(&self, c: Check, counter: &AtomicU64) {
        bump(counter);
        if c == Check::Saturated {
            bump(&self.counters.rate_limit_tables_full);
        }
    }

    /// The check at the start of an Access-Request for `name`, before any
    /// factor: a lock (in memory or in the user record), then the per-user
    /// rate. `Some` is the Reject to send.
    pub fn gate(&self, store: &Store, hot: &HotState, name: &str, now: u64) -> Option<Refusal> {
        if let Some(reason) = self.locked(store, hot, name, now) {
            bump(&self.counters.locked_rejects);
            return Some(Refusal {
                reason: Reason::LockedOut,
                message: reason,
            });
        }
        if let Some(l) = &self.user {
            let c = l.check(&name.to_string());
            if c != Check::Allowed {
                self.count_limited(c, &self.counters.rate_limited_user);
                return Some(Refusal {
                    reason: Reason::RateLimited,
                    message: MSG_RATE_LIMITED,
                });
            }
        }
        None
    }

    /// The message for `name`'s lock when they are locked at `now`.
    fn locked(&self, store: &Store, hot: &HotState, name: &str, now: u64) -> Option<Key> {
        self.lock_of(store, hot, name, now).map(LockKind::message)
    }

    /// `name`'s lock at `now` (in memory or in the user record), if any: the
    /// check [`Limits::gate`] makes, for callers that word it themselves
    /// (the portal).
    pub fn lock_of(&self, store: &Store, hot: &HotState, name: &str, now: u64) -> Option<LockKind> {
        if self.lock_count.load(Ordering::Relaxed) > 0 {
            if let Some(l) = lock(&self.locks).get(name) {
                if l.until > now {
                    return Some(LockKind::of(l.until, l.reason));
                }
            }
        }
        match hot.user(store, name) {
            Ok(Some(c)) if c.user.locked_until > now => {
                Some(LockKind::of(c.user.locked_until, &c.user.lock_reason))
            }
            Ok(_) => None,
            Err(e) => {
                // The factor checks that follow read the same record and
                // answer the store error themselves.
                debug!(error = %e, "store read failed while checking the lock");
                None
            }
        }
    }

    /// Looks at the decision made for an Access-Request: counts a failed
    /// second factor (locking the user at the limit), locks on a fraud
    /// report, resets the count on an Accept. `Some` replaces the decision
    /// with a Reject: the one that started a lock (its reason followed by
    /// `+locked_out`), or `locked_out` for anything but a Reject to a user
    /// who is locked (a lock set meanwhile, or a name form the early check
    /// did not know, e.g. `DOMAIN\user` with a directory first factor).
    ///
    /// `counter` says where failures are counted: on a replica that reaches
    /// its primary, there (the primary writes the lock); otherwise here.
    /// `persist` writes a lock counted here into the user record (`(user,
    /// until, reason)`): on the primary directly, on a replica through the
    /// primary. While it runs, and if it fails, the lock is held in this
    /// node's memory; once written, the replicated record is what every
    /// node checks, so an admin unlock on any node lifts it everywhere.
    pub async fn after_decision<F, Fut, C>(
        &self,
        store: &Store,
        hot: &HotState,
        decision: &Decision,
        now: u64,
        counter: &C,
        persist: F,
    ) -> Option<Override>
    where
        F: FnOnce(String, u64, &'static str) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
        C: FailureCounter,
    {
        let user = decision.user.as_str();
        if user.is_empty() {
            return None;
        }
        if decision.answer != Answer::Reject {
            if let Some(msg) = self.locked(store, hot, user, now) {
                bump(&self.counters.locked_rejects);
                return Some(Override {
                    reason: Reason::LockedOut,
                    lock_started: false,
                    message: msg.into(),
                });
            }
        }
        let started = match classify(decision) {
            Outcome::Success => {
                self.reset_failures(user);
                if counter.counts_elsewhere() && self.queue_reset(user) {
                    counter.send_resets_soon();
                }
                return None;
            }
            Outcome::Other => return None,
            Outcome::Fraud => Lock {
                until: LOCKED_UNTIL_ADMIN,
                reason: REASON_FRAUD,
            },
            Outcome::Failure => {
                if self.settings.lockout_failures == 0 {
                    return None;
                }
                let reset_first = lock(&self.pending_resets).remove(user);
                match counter.count_on_primary(user, reset_first).await {
                    Counted::OnPrimary(locked) => {
                        self.counting_on_primary_again();
                        let PrimaryLock { until, written } = locked?;
                        // The primary wrote it (and this node has it) or
                        // could not: then it is held in memory here.
                        let on_primary = |_: String, _: u64, _: &'static str| async move {
                            if written {
                                Ok(())
                            } else {
                                Err("the primary could not write the lock".to_string())
                            }
                        };
                        return Some(self.started(hot, decision, until, now, on_primary).await);
                    }
                    Counted::Unreachable(why) => self.counting_alone(&why),
                    Counted::Here => {}
                }
                self.count_failure(user, now)?
            }
        };
        Some(
            self.started(hot, decision, started.until, now, persist)
                .await,
        )
    }

    /// A lock `decision` started (`until`; the fraud reason when the
    /// decision is a fraud report): logged, held in memory until `persist`
    /// wrote it, and the Reject that says so.
    async fn started<F, Fut>(
        &self,
        hot: &HotState,
        decision: &Decision,
        until: u64,
        now: u64,
        persist: F,
    ) -> Override
    where
        F: FnOnce(String, u64, &'static str) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let (user, message) = (decision.user.as_str(), &decision.message);
        let reason = if classify(decision) == Outcome::Fraud {
            REASON_FRAUD
        } else {
            REASON_FAILURES
        };
        bump(&self.counters.lockouts);
        warn!(user, reason, until, "user locked");
        self.hold_lock(user, Lock { until, reason }, now);
        match persist(user.to_string(), until, reason).await {
            Ok(()) => {
                self.drop_held_lock(user);
                hot.forget_user(user);
            }
            Err(why) => {
                if !self.warned_unpersisted.swap(true, Ordering::Relaxed) {
                    warn!(reason = %why, "a lock could not be written to the user record (primary unreachable?): it is kept in this node's memory only (logged once)");
                }
            }
        }
        let message = message.clone().then(lock_message(until, reason));
        Override {
            reason: decision.reason,
            lock_started: true,
            message,
        }
    }

    /// Counts one failed second factor of `name` here (`reset_first`: an
    /// Accept came before it); `Some(until)` when it reaches the limit and
    /// locks the user (the count starts afresh). The primary calls it for
    /// failures replicas send; [`Limits::after_decision`] for its own.
    pub fn count_remote_failure(&self, name: &str, reset_first: bool, now: u64) -> Option<u64> {
        if reset_first {
            self.reset_failures(name);
        }
        if self.settings.lockout_failures == 0 {
            return None;
        }
        self.count_failure(name, now).map(|l| l.until)
    }

    /// Resets the counts of `names` (Accepts a replica sent).
    pub fn reset_remote(&self, names: &[String]) {
        for n in names {
            self.reset_failures(n);
        }
    }

    /// Counts one failure; at the limit, the lock it starts.
    fn count_failure(&self, user: &str, now: u64) -> Option<Lock> {
        if self.record_failure(user, now) < self.settings.lockout_failures {
            return None;
        }
        self.reset_failures(user);
        Some(Lock {
            until: match self.settings.lockout_secs {
                0 => LOCKED_UNTIL_ADMIN,
                s => now.saturating_add(s),
            },
            reason: REASON_FAILURES,
        })
    }

    /// Queues an Accept for the primary; true when the queue was empty (the
    /// caller schedules a send). Bounded: when full, the Accept is dropped
    /// (the primary's count then ends with its window).
    fn queue_reset(&self, user: &str) -> bool {
        let mut q = lock(&self.pending_resets);
        if q.len() >= self.settings.max_tracked_keys {
            return false;
        }
        let was_empty = q.is_empty();
        q.insert(user.to_string());
        was_empty
    }

    /// The Accepts queued for the primary, emptying the queue.
    pub fn take_resets(&self) -> Vec<String> {
        lock(&self.pending_resets).drain().collect()
    }

    /// The primary could not be asked: this node counts (logged once).
    fn counting_alone(&self, why: &str) {
        if !self.counting_alone.swap(true, Ordering::Relaxed) {
            warn!(reason = %why, "lockout failures are counted on this node only until the primary is reachable again: a user gets lockout_failures tries per node meanwhile; restore the peer link to the primary (radmfa status) or promote a replica");
        }
    }

    /// The primary counted a failure again (logged once after a fallback).
    fn counting_on_primary_again(&self) {
        if self.counting_alone.swap(false, Ordering::Relaxed) {
            info!("lockout failures are counted on the primary again (cluster-wide)");
        }
    }

    /// Counts one failure for `name`; returns the count in the window.
    fn record_failure(&self, name: &str, now: u64) -> u32 {
        let window = self.settings.lockout_window_secs;
        let per_shard = (self.settings.max_tracked_keys / SHARDS).max(1);
        let mut map = lock(&self.failures[shard_of(name)]);
        if let Some(f) = map.get_mut(name) {
            if now.saturating_sub(f.since) < window {
                f.count = f.count.saturating_add(1);
            } else {
                *f = Failures {
                    count: 1,
                    since: now,
                };
            }
            return f.count;
        }
        if map.len() >= per_shard {
            map.retain(|_, f| now.saturating_sub(f.since) < window);
            if map.len() >= per_shard {
                // Full of live windows (a flood of failures for many users):
                // the windows that began earliest make room, an eighth of
                // the shard at once so a flood does not scan it per failure.
                let mut starts: Vec<u64> = map.values().map(|f| f.since).collect();
                let nth = starts.len() / 8;
                let (_, cutoff, _) = starts.select_nth_unstable(nth);
                let cutoff = *cutoff;
                // Exactly nth + 1 go, ties at the cutoff included.
                let below = starts.iter().filter(|s| **s < cutoff).count();
                let mut ties = (nth + 1).saturating_sub(below);
                map.retain(|_, f| {
                    if f.since < cutoff {
                        false
                    } else if f.since == cutoff && ties > 0 {
                        ties -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        map.insert(
            name.to_string(),
            Failures {
                count: 1,
                since: now,
            },
        );
        1
    }

    fn reset_failures(&self, name: &str) {
        lock(&self.failures[shard_of(name)]).remove(name);
    }

    /// Keeps a lock in memory (bounded: when full, expired locks go, then
    /// the one ending soonest).
    fn hold_lock(&self, name: &str, l: Lock, now: u64) {
        let mut map = lock(&self.locks);
        if !map.contains_key(name) && map.len() >= self.settings.max_tracked_keys {
            map.retain(|_, l| l.until > now);
            if map.len() >= self.settings.max_tracked_keys {
                if let Some(soonest) = map
                    .iter()
                    .min_by_key(|(_, l)| l.until)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&soonest);
                }
            }
        }
        map.insert(name.to_string(), l);
        self.lock_count.store(map.len(), Ordering::Relaxed);
    }

    /// Forgets `name`'s failure count and in-memory lock (an admin unlocked
    /// the user; the record is cleared by the admin request itself).
    pub fn unlock(&self, name: &str) {
        self.reset_failures(name);
        self.drop_held_lock(name);
    }

    /// Forgets `name`'s in-memory lock (written to the record, or lifted).
    fn drop_held_lock(&self, name: &str) {
        let mut map = lock(&self.locks);
        map.remove(name);
        self.lock_count.store(map.len(), Ordering::Relaxed);
    }

    /// Failed second factors counted for `name` in the current window.
    pub fn failures_of(&self, name: &str, now: u64) -> u32 {
        lock(&self.failures[shard_of(name)])
            .get(name)
            .filter(|f| now.saturating_sub(f.since) < self.settings.lockout_window_secs)
            .map_or(0, |f| f.count)
    }

    /// Drops stale entries from every table and returns their memory.
    pub fn prune(&self, now: u64) {
        for l in [&self.client, &self.user, &self.push].into_iter().flatten() {
            l.prune();
        }
        if let Some(l) = &self.source {
            l.prune();
        }
        let window = self.settings.lockout_window_secs;
        for shard in &self.failures {
            let mut map = lock(shard);
            map.retain(|_, f| now.saturating_sub(f.since) < window);
            map.shrink_to_fit();
        }
        let mut map = lock(&self.locks);
        map.retain(|_, l| l.until > now);
        map.shrink_to_fit();
        self.lock_count.store(map.len(), Ordering::Relaxed);
    }

    /// These limits under new `settings` (a configuration reload): the
    /// failure counts and in-memory locks move over, the rate limiters start
    /// afresh with the new quotas.
    pub fn reconfigured(&self, settings: LimitSettings) -> Limits {
        let next = Limits::new(settings, self.counters.clone());
        for (from, to) in self.failures.iter().zip(&next.failures) {
            *lock(to) = std::mem::take(&mut *lock(from));
        }
        let locks = std::mem::take(&mut *lock(&self.locks));
        next.lock_count.store(locks.len(), Ordering::Relaxed);
        *lock(&next.locks) = locks;
        let warned = self.warned_unpersisted.load(Ordering::Relaxed);
        next.warned_unpersisted.store(warned, Ordering::Relaxed);
        *lock(&next.pending_resets) = std::mem::take(&mut *lock(&self.pending_resets));
        let alone = self.counting_alone.load(Ordering::Relaxed);
        next.counting_alone.store(alone, Ordering::Relaxed);
        next
    }

    /// Sizes of the tables.
    pub fn sizes(&self) -> TableSizes {
        let len = |l: Option<&KeyedLimit<String>>| l.map_or(0, KeyedLimit::len);
        TableSizes {
            clients: len(self.client.as_ref()),
            sources: self.source.as_ref().map_or(0, KeyedLimit::len),
            users: len(self.user.as_ref()),
            failures: self.failures.iter().map(|s| lock(s).len()).sum(),
            locks_in_memory: self.lock_count.load(Ordering::Relaxed),
        }
    }

    /// Sizes of the tables (`radmfa stats`).
    pub fn stats_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let t = self.sizes();
        let mut m = serde_json::Map::new();
        m.insert("limits_tracked_clients".into(), t.clients.into());
        m.insert("limits_tracked_sources".into(), t.sources.into());
        m.insert("limits_tracked_users".into(), t.users.into());
        m.insert("limits_tracked_failures".into(), t.failures.into());
        m.insert("limits_locks_in_memory".into(), t.locks_in_memory.into());
        m
    }
}

/// Entries held by each table of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableSizes {
    /// Clients tracked by the per-client limiter.
    pub clients: usize,
    /// Source addresses tracked by the per-source limiter.
    pub sources: usize,
    /// User names tracked by the per-user limiter.
    pub users: usize,
    /// Users with failures in the current window.
    pub failures: usize,
    /// Locks held in memory only.
    pub locks_in_memory: usize,
}

/// Where a failed second factor is counted ([`Limits::after_decision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// Here: this node is the primary, or not clustered.
    Here,
    /// The primary counted it; `Some`: this failure locked the user.
    OnPrimary(Option<PrimaryLock>),
    /// The primary could not be asked (why): this node counts meanwhile.
    Unreachable(String),
}

/// A lock the primary started for a failure a replica sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryLock {
    /// Locked until (unix seconds; [`LOCKED_UNTIL_ADMIN`]).
    pub until: u64,
    /// Written into the user record and replicated to this node.
    pub written: bool,
}

/// How a node reaches the place where failures are counted (lockout across
/// nodes): the primary, from a replica.
pub trait FailureCounter {
    /// Whether failures are counted on another node (this is a replica).
    fn counts_elsewhere(&self) -> bool;
    /// Counts one failed second factor of `name` where failures are
    /// counted (`reset_first`: an Accept of `name` not yet sent comes
    /// first).
    fn count_on_primary(
        &self,
        name: &str,
        reset_first: bool,
    ) -> impl std::future::Future<Output = Counted> + Send;
    /// Sends the queued Accepts ([`Limits::take_resets`]) shortly, without
    /// waiting.
    fn send_resets_soon(&self);
}

/// A node that counts its own failures (no cluster; tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl FailureCounter for Alone {
    fn counts_elsewhere(&self) -> bool {
        false
    }

    async fn count_on_primary(&self, _name: &str, _reset_first: bool) -> Counted {
        Counted::Here
    }

    fn send_resets_soon(&self) {}
}

/// Writes a lock into the user record (the one place locks are written;
/// [`crate::pipeline::Node`] routes it to the primary from a replica).
pub fn persist_lock(store: &Store, name: &str, until: u64, reason: &str) -> Result<(), StoreError> {
    store.update_user(name, |u| {
        u.locked_until = until;
        u.lock_reason = reason.to_string();
    })
}

/// What kind of lock a user is under (what the user is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Too many failures; ends by itself.
    Timed,
    /// Until an admin unlocks the user.
    Admin,
    /// A fraud report; until an admin unlocks the user.
    Fraud,
}

impl LockKind {
    fn of(until: u64, reason: &str) -> LockKind {
        if reason == REASON_FRAUD {
            LockKind::Fraud
        } else if until == LOCKED_UNTIL_ADMIN {
            LockKind::Admin
        } else {
            LockKind::Timed
        }
    }

    /// The Reply-Message.
    fn message(self) -> Key {
        match self {
            LockKind::Timed => MSG_LOCKED_TIMED,
            LockKind::Admin => MSG_LOCKED_ADMIN,
            LockKind::Fraud => MSG_LOCKED_FRAUD,
        }
    }
}

/// The Reply-Message for a lock.
fn lock_message(until: u64, reason: &str) -> Key {
    LockKind::of(until, reason).message()
}

/// Prunes `limits`' tables every [`PRUNE_EVERY`] (at `clock`'s time) until
/// `shutdown`.
pub async fn prune_loop(
    limits: impl Fn() -> Arc<Limits>,
    clock: Arc<dyn WallClock>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => limits().prune(clock.now_unix()),
        }
    }
}

#[cfg(test)]
mod tests;
