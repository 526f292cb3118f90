use std::num::NonZeroU32;
use std::sync::atomic::Ordering;

use governor::clock::FakeRelativeClock;
use radmfa_store::User;
use tokio_util::sync::CancellationToken;

use super::*;

const NOW: u64 = 1_700_000_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

fn settings() -> LimitSettings {
    LimitSettings::default()
}

/// A store with users `alice` and `bob`, its hot cache, and the writer
/// thread's stop token.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    hot: HotState,
    stop: CancellationToken,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn new() -> Fixture {
        let (dir, store) = crate::testing::temp_store();
        store.add_user(&User::new("alice")).expect("add alice");
        store.add_user(&User::new("bob")).expect("add bob");
        let stop = CancellationToken::new();
        let (hot, writer) = HotState::new(store.clone(), 1000, stop.clone());
        Fixture {
            _dir: dir,
            store,
            hot,
            stop,
            writer: Some(writer),
        }
    }

    fn user(&self, name: &str) -> User {
        self.store.get_user(name).expect("read").expect("exists")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// What the node does on the primary: write the lock into the record.
async fn persist(store: &Store, name: String, until: u64, why: &'static str) -> Result<(), String> {
    persist_lock(store, &name, until, why).map_err(|e| e.to_string())
}

async fn fail(l: &Limits, f: &Fixture, user: &str, reason: Reason, now: u64) -> Option<Override> {
    let d = Decision::reject(user, Mode::Unknown, reason, Key::CodeWrong);
    l.after_decision(&f.store, &f.hot, &d, now, &Alone, |name, until, why| {
        persist(&f.store, name, until, why)
    })
    .await
}

async fn accept(l: &Limits, f: &Fixture, user: &str, now: u64) -> Option<Override> {
    let d = Decision::accept_name(user, Mode::Unknown, Reason::Ok, Vec::new());
    l.after_decision(&f.store, &f.hot, &d, now, &Alone, |name, until, why| {
        persist(&f.store, name, until, why)
    })
    .await
}

#[test]
fn keyed_limit_burst_then_refill() {
    let clock = FakeRelativeClock::default();
    let l: KeyedLimit<String, _> = KeyedLimit::with_clock(
        Quota::per_second(nz(1)).allow_burst(nz(3)),
        10,
        clock.clone(),
    );
    let k = "nas1".to_string();
    for _ in 0..3 {
        assert_eq!(l.check(&k), Check::Allowed);
    }
    assert_eq!(l.check(&k), Check::Limited);
    assert_eq!(
        l.check(&"nas2".to_string()),
        Check::Allowed,
        "keys are independent"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(l.check(&k), Check::Allowed);
    assert_eq!(l.check(&k), Check::Limited);
}

/// A flood of 10x the cap in distinct keys (100,000: the behaviour depends
/// on the ratio to the cap and on time, not on the absolute count, and a
/// million iterations took seconds of the unit suite).
#[test]
fn flood_of_user_keys_stays_under_the_cap() {
    const CAP: usize = 10_000;
    const KEYS: u32 = 100_000;
    let clock = FakeRelativeClock::default();
    let l: KeyedLimit<String, _> = KeyedLimit::with_clock(
        Quota::per_minute(nz(30)).allow_burst(nz(15)),
        CAP,
        clock.clone(),
    );
    let mut saturated = 0usize;
    let mut max_seen = 0usize;
    for i in 0..KEYS {
        match l.check(&format!("user-{i}")) {
            Check::Allowed => {}
            Check::Limited => panic!("a fresh key is never over its own limit"),
            Check::Saturated => saturated += 1,
        }
        if i % 1000 == 0 {
            max_seen = max_seen.max(l.len());
        }
        // Time passes as in a flood of 10,000 distinct names per second.
        if i % 10 == 9 {
            clock.advance(Duration::from_millis(1));
        }
    }
    max_seen = max_seen.max(l.len());
    assert!(max_seen <= CAP, "tracked {max_seen} keys, cap {CAP}");
    assert!(
        saturated > 0,
        "a flood beyond the cap must hit the fail-closed path"
    );
    assert!(
        saturated < KEYS as usize - CAP,
        "pruning must free room as keys age out ({saturated} refused)"
    );
    // After a quiet period every key is stale: pruning empties the table and
    // a known user gets through again.
    clock.advance(Duration::from_secs(120));
    l.prune();
    assert_eq!(l.len(), 0);
    assert_eq!(l.check(&"user-1".to_string()), Check::Allowed);
}

/// 100x the cap in failing users (a million took seconds; the ratio is
/// what matters).
#[test]
fn flood_of_failing_users_stays_under_the_cap() {
    let mut s = settings();
    s.max_tracked_keys = 1_000;
    let l = Limits::new(s, Arc::new(Counters::default()));
    for i in 0..100_000u64 {
        l.record_failure(&format!("user-{i}"), NOW + i / 100);
    }
    let tracked: usize = l.failures.iter().map(|m| lock(m).len()).sum();
    assert!(tracked <= 1_000, "tracked {tracked}");
    assert!(
        tracked > 500,
        "eviction takes the oldest eighth only: {tracked}"
    );
    assert_eq!(l.failures_of("user-99999", NOW + 999), 1, "the newest stay");
    assert_eq!(l.stats_json()["limits_tracked_failures"], tracked);
}

#[tokio::test]
async fn ten_failures_lock_then_admin_unlock() {
    let f = Fixture::new();
    let counters = Arc::new(Counters::default());
    let l = Limits::new(settings(), counters.clone());
    for i in 0..9 {
        assert_eq!(
            fail(&l, &f, "alice", Reason::OtpMismatch, NOW + i).await,
            None
        );
        assert_eq!(l.gate(&f.store, &f.hot, "alice", NOW + i), None);
    }
    assert_eq!(l.failures_of("alice", NOW + 9), 9);
    let o = fail(&l, &f, "alice", Reason::OtpMismatch, NOW + 9)
        .await
        .expect("the 10th failure locks");
    assert_eq!(o.audit_reason(), "otp_mismatch+locked_out");
    assert!(
        o.message.render(crate::i18n::Lang::En).starts_with(
            "The code is not correct. Please sign in again with a new code. Your account is locked"
        ),
        "{o:?}"
    );
    assert_eq!(counters.lockouts.load(Ordering::Relaxed), 1);

    let u = f.user("alice");
    assert_eq!(u.locked_until, NOW + 9 + 1800);
    assert_eq!(u.lock_reason, REASON_FAILURES);
    let r = l.gate(&f.store, &f.hot, "alice", NOW + 10).expect("locked");
    assert_eq!(r.reason.as_str(), "locked_out");
    assert_eq!(counters.locked_rejects.load(Ordering::Relaxed), 1);
    assert_eq!(l.gate(&f.store, &f.hot, "bob", NOW + 10), None);

    // A fresh node (restart) sees the lock in the record alone.
    let fresh = Limits::new(settings(), Arc::new(Counters::default()));
    assert!(fresh.gate(&f.store, &f.hot, "alice", NOW + 10).is_some());
    // It ends by itself after lockout_secs.
    assert_eq!(fresh.gate(&f.store, &f.hot, "alice", NOW + 9 + 1800), None);

    // What `radmfa user unlock` does: clear the record, then the node.
    persist_lock(&f.store, "alice", 0, "").expect("clear");
    l.unlock("alice");
    f.hot.invalidate();
    assert_eq!(l.gate(&f.store, &f.hot, "alice", NOW + 11), None);
    assert_eq!(l.failures_of("alice", NOW + 11), 0);
}

#[tokio::test]
async fn success_resets_and_window_expires() {
    let f = Fixture::new();
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    for i in 0..9 {
        fail(&l, &f, "alice", Reason::SmsCodeWrongRetry, NOW + i).await;
    }
    assert_eq!(accept(&l, &f, "alice", NOW + 9).await, None);
    assert_eq!(l.failures_of("alice", NOW + 9), 0);
    for i in 0..9 {
        assert_eq!(
            fail(&l, &f, "alice", Reason::DeniedByUser, NOW + i).await,
            None
        );
    }
    // The window (600 s) passed: counting starts again.
    assert_eq!(
        fail(&l, &f, "alice", Reason::WrongPin, NOW + 700).await,
        None
    );
    assert_eq!(l.failures_of("alice", NOW + 700), 1);
    // Other reasons do not count.
    for reason in [
        Reason::OtpReplayed,
        Reason::WrongPassword,
        Reason::NoAnswer,
        Reason::UserDisabled,
    ] {
        for _ in 0..20 {
            assert_eq!(fail(&l, &f, "bob", reason, NOW).await, None);
        }
    }
    assert_eq!(l.failures_of("bob", NOW), 0);
    assert_eq!(f.user("bob").locked_until, 0);
}

#[tokio::test]
async fn fraud_locks_until_an_admin_unlocks() {
    let f = Fixture::new();
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    let o = fail(&l, &f, "bob", Reason::FraudReported, NOW)
        .await
        .expect("fraud locks");
    assert_eq!(o.audit_reason(), "fraud_reported+locked_out");
    let u = f.user("bob");
    assert_eq!(
        (u.locked_until, u.lock_reason.as_str()),
        (LOCKED_UNTIL_ADMIN, REASON_FRAUD)
    );
    let r = l.gate(&f.store, &f.hot, "bob", NOW + 10 * 365 * 86_400);
    assert_eq!(
        r.map(|r| (r.reason.as_str(), r.message)),
        Some(("locked_out", MSG_LOCKED_FRAUD))
    );
}

#[tokio::test]
async fn lockout_secs_zero_means_until_admin_and_failures_zero_means_off() {
    let f = Fixture::new();
    let mut s = settings();
    s.lockout_failures = 3;
    s.lockout_secs = 0;
    let l = Limits::new(s.clone(), Arc::new(Counters::default()));
    for i in 0..2 {
        assert_eq!(
            fail(&l, &f, "alice", Reason::OtpMismatch, NOW + i).await,
            None
        );
    }
    assert!(fail(&l, &f, "alice", Reason::OtpMismatch, NOW + 2)
        .await
        .is_some());
    assert_eq!(f.user("alice").locked_until, LOCKED_UNTIL_ADMIN);

    s.lockout_failures = 0;
    let off = Limits::new(s, Arc::new(Counters::default()));
    for i in 0..50 {
        assert_eq!(
            fail(&off, &f, "bob", Reason::OtpMismatch, NOW + i).await,
            None
        );
    }
    assert_eq!(f.user("bob").locked_until, 0);
}

#[tokio::test]
async fn an_unwritable_lock_is_kept_in_memory() {
    let f = Fixture::new();
    f.store
        .set_repl_state(radmfa_store::repl::Role::Replica { primary: None }, 1)
        .expect("become replica");
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    let o = fail(&l, &f, "alice", Reason::FraudReported, NOW).await;
    assert!(o.is_some());
    assert_eq!(f.user("alice").locked_until, 0, "the replica cannot write");
    assert!(l.warned_unpersisted.load(Ordering::Relaxed));
    assert_eq!(
        l.gate(&f.store, &f.hot, "alice", NOW + 1)
            .map(|r| r.reason.as_str()),
        Some("locked_out")
    );
    assert_eq!(l.stats_json()["limits_locks_in_memory"], 1);
    l.unlock("alice");
    assert_eq!(l.gate(&f.store, &f.hot, "alice", NOW + 1), None);
}

#[tokio::test]
async fn a_written_lock_lives_in_the_record_only() {
    // Once written, the record (replicated) is the lock: lifting it there,
    // from any node, unlocks the user here too.
    let f = Fixture::new();
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    assert!(fail(&l, &f, "alice", Reason::FraudReported, NOW)
        .await
        .is_some());
    assert_eq!(f.user("alice").locked_until, LOCKED_UNTIL_ADMIN);
    assert_eq!(l.stats_json()["limits_locks_in_memory"], 0);
    assert!(l.gate(&f.store, &f.hot, "alice", NOW + 1).is_some());
    persist_lock(&f.store, "alice", 0, "").expect("unlock elsewhere");
    f.hot.forget_user("alice");
    assert_eq!(l.gate(&f.store, &f.hot, "alice", NOW + 1), None);
}

#[tokio::test]
async fn an_accept_for_a_locked_user_becomes_a_reject() {
    let f = Fixture::new();
    persist_lock(&f.store, "alice", LOCKED_UNTIL_ADMIN, REASON_FAILURES).expect("lock");
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    let o = accept(&l, &f, "alice", NOW).await.expect("overridden");
    assert_eq!(o.audit_reason(), "locked_out");
    assert_eq!(o.message, MSG_LOCKED_ADMIN.into());
    assert_eq!(accept(&l, &f, "bob", NOW).await, None);
}

#[test]
fn per_user_limit_rejects_with_rate_limited() {
    let f = Fixture::new();
    let mut s = settings();
    s.user = Some(Rate {
        per_period: nz(1),
        burst: nz(2),
    });
    let counters = Arc::new(Counters::default());
    let l = Limits::new(s, counters.clone());
    assert_eq!(l.gate(&f.store, &f.hot, "alice", NOW), None);
    assert_eq!(l.gate(&f.store, &f.hot, "alice", NOW), None);
    let r = l.gate(&f.store, &f.hot, "alice", NOW).expect("limited");
    assert_eq!(
        (r.reason.as_str(), r.message),
        ("rate_limited", MSG_RATE_LIMITED)
    );
    assert_eq!(counters.rate_limited_user.load(Ordering::Relaxed), 1);
    assert_eq!(l.gate(&f.store, &f.hot, "bob", NOW), None);
}

#[test]
fn per_client_and_per_source_limits_drop() {
    let mut s = settings();
    s.client = Some(Rate {
        per_period: nz(1),
        burst: nz(3),
    });
    s.source = Some(Rate {
        per_period: nz(1),
        burst: nz(2),
    });
    let counters = Arc::new(Counters::default());
    let l = Limits::new(s.clone(), counters.clone());
    let nas = "nas".to_string();
    let a: IpAddr = "10.0.0.1".parse().expect("ip");
    let b: IpAddr = "10.0.0.2".parse().expect("ip");
    assert!(l.admit_datagram(&nas, a));
    assert!(l.admit_datagram(&nas, a));
    assert!(!l.admit_datagram(&nas, a), "source a over its burst");
    assert_eq!(counters.rate_limited_source.load(Ordering::Relaxed), 1);
    // The refused datagram still used the client's budget (3): b gets none.
    assert!(!l.admit_datagram(&nas, b));
    assert_eq!(counters.rate_limited_client.load(Ordering::Relaxed), 1);

    s.client = None;
    s.source = None;
    let off = Limits::new(s, Arc::new(Counters::default()));
    assert!((0..10_000).all(|_| off.admit_datagram(&nas, a)));
}

/// A reload that changes `[limits]`: counts and in-memory locks go on under
/// the new settings (the new lockout threshold counts what came before).
#[tokio::test]
async fn reconfigured_limits_keep_failure_counts_and_locks() {
    let f = Fixture::new();
    f.store
        .set_repl_state(radmfa_store::repl::Role::Replica { primary: None }, 1)
        .expect("become replica");
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    for i in 0..4 {
        assert_eq!(
            fail(&l, &f, "alice", Reason::OtpMismatch, NOW + i).await,
            None
        );
    }
    // Held in memory only (a replica cannot write the record).
    assert!(fail(&l, &f, "bob", Reason::FraudReported, NOW)
        .await
        .is_some());
    let mut s = settings();
    s.lockout_failures = 5;
    let next = l.reconfigured(s);
    assert_eq!(next.failures_of("alice", NOW + 4), 4);
    assert!(next.gate(&f.store, &f.hot, "bob", NOW + 5).is_some());
    assert_eq!(next.stats_json()["limits_locks_in_memory"], 1);
    let o = fail(&next, &f, "alice", Reason::OtpMismatch, NOW + 5).await;
    assert!(o.is_some(), "the 5th failure locks under the new threshold");
}

/// A replica's view of the primary in tests: answers every failure with
/// `answer` and records what it was asked.
struct FakePrimary {
    answer: Counted,
    asked: std::sync::Mutex<Vec<(String, bool)>>,
    resets_scheduled: std::sync::atomic::AtomicUsize,
}

impl FakePrimary {
    fn new(answer: Counted) -> Self {
        FakePrimary {
            answer,
            asked: std::sync::Mutex::new(Vec::new()),
            resets_scheduled: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl FailureCounter for FakePrimary {
    fn counts_elsewhere(&self) -> bool {
        true
    }

    async fn count_on_primary(&self, name: &str, reset_first: bool) -> Counted {
        self.asked
            .lock()
            .unwrap()
            .push((name.to_string(), reset_first));
        self.answer.clone()
    }

    fn send_resets_soon(&self) {
        self.resets_scheduled.fetch_add(1, Ordering::SeqCst);
    }
}

async fn decide(l: &Limits, f: &Fixture, d: &Decision, c: &FakePrimary) -> Option<Override> {
    l.after_decision(&f.store, &f.hot, d, NOW, c, |_, _, _| async {
        Err::<(), String>("a replica never writes a lock counted on the primary".into())
    })
    .await
}

#[tokio::test]
async fn a_replica_counts_on_the_primary_and_locks_when_it_says_so() {
    let f = Fixture::new();
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    let wrong = Decision::reject("alice", Mode::Unknown, Reason::OtpMismatch, Key::CodeWrong);
    // Counted there, not here: twenty failures, no lock while the primary
    // says none, and nothing in this node's own table.
    let p = FakePrimary::new(Counted::OnPrimary(None));
    for _ in 0..20 {
        assert_eq!(decide(&l, &f, &wrong, &p).await, None);
    }
    assert_eq!(l.failures_of("alice", NOW), 0);
    assert_eq!(p.asked.lock().unwrap().len(), 20);
    // An Accept is queued for the primary (one send scheduled for a batch)
    // and goes ahead of the user's next failure.
    let ok = Decision::accept_name("alice", Mode::Unknown, Reason::Ok, Vec::new());
    assert_eq!(decide(&l, &f, &ok, &p).await, None);
    assert_eq!(decide(&l, &f, &ok, &p).await, None);
    assert_eq!(p.resets_scheduled.load(Ordering::SeqCst), 1);
    decide(&l, &f, &wrong, &p).await;
    assert_eq!(
        p.asked.lock().unwrap().last(),
        Some(&("alice".to_string(), true))
    );
    assert!(l.take_resets().is_empty());
    // The primary says this failure locked the user (written there).
    let locks = FakePrimary::new(Counted::OnPrimary(Some(PrimaryLock {
        until: NOW + 1800,
        written: true,
    })));
    let o = decide(&l, &f, &wrong, &locks).await.expect("lock started");
    assert!(
        o.lock_started && o.message.render(crate::i18n::Lang::En).contains("locked"),
        "{o:?}"
    );
    assert_eq!(l.sizes().locks_in_memory, 0, "written: not held here");
}

#[tokio::test]
async fn a_replica_that_cannot_reach_the_primary_counts_itself() {
    let f = Fixture::new();
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    let wrong = Decision::reject("bob", Mode::Unknown, Reason::OtpMismatch, Key::CodeWrong);
    let p = FakePrimary::new(Counted::Unreachable("primary node 1 unreachable".into()));
    let limit = settings().lockout_failures;
    for i in 1..limit {
        assert_eq!(decide(&l, &f, &wrong, &p).await, None, "failure {i}");
    }
    assert_eq!(l.failures_of("bob", NOW), limit - 1);
    let o = decide(&l, &f, &wrong, &p).await.expect("locked here");
    assert!(o.lock_started, "{o:?}");
    // Not written (the primary is down): held in this node's memory.
    assert_eq!(l.sizes().locks_in_memory, 1);
    assert!(l.lock_of(&f.store, &f.hot, "bob", NOW + 1).is_some());
}

#[test]
fn the_primary_counts_failures_sent_by_replicas_with_its_own() {
    let l = Limits::new(settings(), Arc::new(Counters::default()));
    let limit = settings().lockout_failures;
    for _ in 1..limit {
        assert_eq!(l.count_remote_failure("carol", false, NOW), None);
    }
    // An Accept elsewhere came first: the count starts again.
    assert_eq!(l.count_remote_failure("carol", true, NOW), None);
    assert_eq!(l.failures_of("carol", NOW), 1);
    l.reset_remote(&["carol".to_string()]);
    assert_eq!(l.failures_of("carol", NOW), 0);
    for _ in 1..limit {
        assert_eq!(l.count_remote_failure("carol", false, NOW), None);
    }
    let until = l.count_remote_failure("carol", false, NOW).expect("locks");
    assert_eq!(until, NOW + settings().lockout_secs);
    assert_eq!(l.failures_of("carol", NOW), 0, "the count starts afresh");
}
