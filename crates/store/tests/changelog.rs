//! The replication changelog over real sled stores: every admin write is
//! logged in its transaction, `StoreLog` behaves like the `MemLog` model
//! (idempotent apply, gaps refused, snapshot/install), replicas are
//! read-only, a crash mid-burst leaves data and log consistent, and two
//! `repl::Machine`s over two stores replicate a write.

mod common;
use common::open_retry;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use radmfa_store::repl::{
    Action, ApplyError, Change, Cursor, Event, Machine, MemLog, NodeId, Op, ReplLog, Role,
    Snapshot, Trimmed,
};
use radmfa_store::{
    Client, Secret, Store, StoreError, StoreLog, StoreOptions, Token, TokenAlgorithm, TokenKind,
    User, TREE_CLIENTS, TREE_OTP_STATE, TREE_TOKENS, TREE_USERS,
};

type Data = BTreeMap<(u8, Vec<u8>), Vec<u8>>;
/// A named write and the number of changelog entries it must add.
type Step = (&'static str, Box<dyn Fn(&Store)>, u64);

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// One key file for every node: seeds are replicated sealed.
    fn key(&self) -> PathBuf {
        self.dir.path().join("seed.key")
    }
    fn open(&self, name: &str) -> Store {
        open_retry(&self.db(name), &self.key())
    }
    /// A fresh store that is a replica (epoch 1, no primary known yet).
    fn open_replica(&self, name: &str) -> Store {
        let store = self.open(name);
        store
            .set_repl_state(Role::Replica { primary: None }, 1)
            .unwrap();
        store
    }
}

fn token(seed: &[u8]) -> Token {
    Token {
        kind: TokenKind::Hotp,
        algorithm: TokenAlgorithm::Sha1,
        digits: 6,
        period: 0,
        secret: Secret::new(seed.to_vec()),
        created: 1_700_000_000,
    }
}

fn client(name: &str) -> Client {
    Client {
        name: name.into(),
        address: "192.0.2.0/24".parse().unwrap(),
        secret: format!("secret-of-{name}"),
        policy: "default".into(),
        require_message_authenticator: true,
    }
}

/// Every entry of the log, in order.
fn all_changes(log: &StoreLog) -> Vec<Change> {
    log.changes_since(0, usize::MAX).unwrap()
}

/// The data a full replay of `changes` produces.
fn replay(changes: &[Change]) -> MemLog {
    let mut m = MemLog::new();
    m.apply(changes).unwrap();
    m
}

fn data(s: &Snapshot) -> Data {
    s.entries
        .iter()
        .map(|e| ((e.tree, e.key.clone()), e.value.clone()))
        .collect()
}

/// The data of a store plus its log position.
fn state(log: &StoreLog) -> (Data, (u64, u64)) {
    let s = log.snapshot();
    (data(&s), (s.seq, s.epoch))
}

fn put(tree: u8, key: &str, value: &[u8]) -> Op {
    Op::Put {
        tree,
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
    }
}

#[test]
fn every_admin_write_is_logged_in_order() {
    let env = Env::new();
    let store = env.open("db");
    let log = store.repl_log();
    assert_eq!(log.last(), (0, 0));
    assert_eq!(store.repl_state(), (Role::Primary, 1));

    // (operation, entries it must add)
    let steps: Vec<Step> = vec![
        (
            "add_user",
            Box::new(|s| s.add_user(&User::new("alice")).unwrap()),
            1,
        ),
        (
            "put_token",
            // token put; no OTP state to remove yet
            Box::new(|s| {
                s.put_token("alice", &token(b"alice-seed-0123456789"))
                    .unwrap()
            }),
            1,
        ),
        (
            "set_pin",
            Box::new(|s| s.set_pin("alice", Some(b"1234")).unwrap()),
            1,
        ),
        (
            "update_user",
            Box::new(|s| s.update_user("alice", |u| u.enabled = false).unwrap()),
            1,
        ),
        (
            "add_client",
            Box::new(|s| s.add_client(&client("vpn")).unwrap()),
            1,
        ),
        (
            "put_client",
            Box::new(|s| s.put_client(&client("vpn")).unwrap()),
            1,
        ),
        (
            "put_users (2 users, 1 token)",
            Box::new(|s| {
                s.put_users(&[
                    (User::new("bob"), Some(token(b"bob-seed-0123456789ab"))),
                    (User::new("carol"), None),
                ])
                .unwrap();
            }),
            3,
        ),
        (
            "advance_otp_state (not logged)",
            Box::new(|s| assert!(s.advance_otp_state("bob", 7).unwrap())),
            0,
        ),
        (
            "put_token again (token + OTP state removal)",
            Box::new(|s| {
                s.put_token("bob", &token(b"bob-seed-2-0123456789"))
                    .unwrap()
            }),
            2,
        ),
        (
            "delete_token",
            Box::new(|s| s.delete_token("alice").unwrap()),
            1,
        ),
        (
            "delete_client",
            Box::new(|s| s.delete_client("vpn").unwrap()),
            1,
        ),
        (
            "delete_user (user + token)",
            Box::new(|s| s.delete_user("bob").unwrap()),
            2,
        ),
        (
            "failed writes (not logged)",
            Box::new(|s| {
                assert!(s.add_user(&User::new("carol")).is_err());
                assert!(s.delete_user("nobody").is_err());
                assert!(s.delete_client("nothing").is_err());
            }),
            0,
        ),
    ];
    let mut expected = 0;
    for (name, step, added) in &steps {
        let gen = store.data_generation();
        step(&store);
        expected += added;
        assert_eq!(log.last(), (expected, 1), "after {name}");
        // The request path's writes do not bump the replication generation.
        assert_eq!(store.data_generation(), gen, "after {name}");
    }
    let changes = all_changes(&log);
    assert_eq!(changes.len() as u64, expected);
    for (i, c) in changes.iter().enumerate() {
        assert_eq!((c.seq, c.epoch), (i as u64 + 1, 1));
    }
    let trees: Vec<u8> = changes.iter().map(|c| c.op.tree()).collect();
    assert_eq!(
        trees,
        [
            TREE_USERS,
            TREE_TOKENS,
            TREE_USERS,
            TREE_USERS,
            TREE_CLIENTS,
            TREE_CLIENTS,
            TREE_USERS,
            TREE_TOKENS,
            TREE_USERS,
            TREE_TOKENS,
            TREE_OTP_STATE,
            TREE_TOKENS,
            TREE_CLIENTS,
            TREE_USERS,
            TREE_TOKENS
        ]
    );
    assert!(matches!(changes[10].op, Op::Remove { .. }));

    // Replaying the log gives the data, except the node-local OTP state
    // (reset by put_token, then the user was deleted: none is left).
    let (data, pos) = state(&log);
    assert_eq!(replay(&changes).data(), &data);
    assert_eq!(pos, (expected, 1));
    assert_eq!(store.user_count(), 2);

    // Bounded reads, and the position survives a reopen.
    assert_eq!(log.changes_since(3, 2).unwrap().len(), 2);
    assert_eq!(log.changes_since(3, 2).unwrap()[0].seq, 4);
    assert!(log.changes_since(expected, 10).unwrap().is_empty());
    assert!(log.changes_since(expected + 5, 10).unwrap().is_empty());
    drop((log, store));
    let store = env.open("db");
    let log = store.repl_log();
    assert_eq!(log.last(), (expected, 1));
    assert_eq!(all_changes(&log), changes);
    store.add_client(&client("after-reopen")).unwrap();
    assert_eq!(log.last(), (expected + 1, 1));
}

#[test]
fn trim_keeps_the_tail_and_the_position() {
    let env = Env::new();
    let store = env.open("db");
    let log = store.repl_log();
    for i in 0..10 {
        store.add_user(&User::new(&format!("u{i}"))).unwrap();
    }
    assert_eq!(store.trim_changelog(100), 0);
    assert_eq!(store.trim_changelog(3), 7);
    assert_eq!(log.changes_since(6, 10), Err(Trimmed));
    assert_eq!(log.changes_since(0, 10), Err(Trimmed));
    let tail = log.changes_since(7, 10).unwrap();
    assert_eq!(tail.iter().map(|c| c.seq).collect::<Vec<_>>(), [8, 9, 10]);
    assert_eq!(store.trim_changelog(0), 3);
    assert_eq!(log.last(), (10, 1));
    assert!(log.changes_since(10, 10).unwrap().is_empty());
    assert_eq!(log.changes_since(9, 10), Err(Trimmed));
    drop((log, store));
    let store = env.open("db");
    assert_eq!(store.repl_log().last(), (10, 1));
    store.add_user(&User::new("next")).unwrap();
    let log = store.repl_log();
    assert_eq!(log.changes_since(10, 10).unwrap()[0].seq, 11);
}

/// A trim over several batches (4096 entries each, every batch going on
/// after the last key the one before removed) removes every entry up to the
/// mark and none after it.
#[test]
fn trim_over_several_batches_removes_exactly_the_head() {
    let env = Env::new();
    let store = env.open("db");
    let log = store.repl_log();
    let users: Vec<(User, Option<Token>)> = (0..5000)
        .map(|i| (User::new(&format!("u{i:05}")), None))
        .collect();
    for chunk in users.chunks(1000) {
        store.put_users(chunk).unwrap();
    }
    let (last, _) = log.last();
    assert!(last >= 5000, "one entry per user at least: {last}");
    let keep = 7;
    assert_eq!(store.trim_changelog(keep), (last - keep) as usize);
    assert_eq!(log.changes_since(last - keep - 1, 100), Err(Trimmed));
    let tail = log.changes_since(last - keep, 100).unwrap();
    assert_eq!(
        tail.iter().map(|c| c.seq).collect::<Vec<_>>(),
        ((last - keep + 1)..=last).collect::<Vec<_>>()
    );
    assert_eq!(store.trim_changelog(keep), 0);
}

#[test]
fn serving_a_snapshot_part_is_remembered_for_a_while() {
    let env = Env::new();
    let store = env.open("db");
    store.add_user(&User::new("u")).unwrap();
    let within = std::time::Duration::from_secs(60);
    assert!(!store.serving_snapshot(within));
    store.repl_log().snapshot_part(None, 1_000).unwrap();
    assert!(store.serving_snapshot(within));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!store.serving_snapshot(std::time::Duration::from_millis(10)));
}

#[test]
fn replica_refuses_admin_writes() {
    let env = Env::new();
    let store = env.open("db");
    store.add_user(&User::new("alice")).unwrap();
    store
        .put_token("alice", &token(b"alice-seed-0123456789"))
        .unwrap();
    let before = store.repl_log().last();
    store
        .set_repl_state(Role::Replica { primary: Some(3) }, 4)
        .unwrap();
    assert_eq!(store.repl_state(), (Role::Replica { primary: None }, 4));

    let refused: Vec<(&str, Result<(), StoreError>)> = vec![
        ("add_user", store.add_user(&User::new("bob"))),
        ("put_user", store.put_user(&User::new("alice"))),
        (
            "put_users",
            store.put_users(&[(User::new("c"), None)]).map(|_| ()),
        ),
        (
            "update_user",
            store.update_user("alice", |u| u.enabled = false),
        ),
        ("set_user_enabled", store.set_user_enabled("alice", false)),
        ("set_pin", store.set_pin("alice", Some(b"1234"))),
        (
            "put_token",
            store.put_token("alice", &token(b"other-seed-0123456789")),
        ),
        ("delete_token", store.delete_token("alice")),
        ("delete_user", store.delete_user("alice")),
        ("add_client", store.add_client(&client("vpn"))),
        ("put_client", store.put_client(&client("vpn"))),
        ("delete_client", store.delete_client("vpn")),
    ];
    for (name, r) in refused {
        match r {
            Err(StoreError::ReadOnly(m)) => {
                assert_eq!(m, "read-only: this node is a replica", "{name}")
            }
            other => panic!("{name}: expected ReadOnly, got {other:?}"),
        }
    }
    assert_eq!(store.repl_log().last(), before);
    assert!(store.get_user("alice").unwrap().unwrap().enabled);
    // Authentication goes on: the OTP state moves locally, unlogged.
    assert!(store.advance_otp_state("alice", 5).unwrap());
    assert!(!store.advance_otp_state("alice", 5).unwrap());
    assert_eq!(store.repl_log().last(), before);

    // Durable; and back to primary.
    drop(store);
    let store = env.open("db");
    assert_eq!(store.repl_state(), (Role::Replica { primary: None }, 4));
    assert!(matches!(
        store.add_user(&User::new("bob")),
        Err(StoreError::ReadOnly(_))
    ));
    assert!(matches!(
        store.set_repl_state(Role::Primary, 0),
        Err(StoreError::Invalid(_))
    ));
    store.set_repl_state(Role::Primary, 5).unwrap();
    store.add_user(&User::new("bob")).unwrap();
    assert_eq!(store.repl_log().last(), (before.0 + 1, 5));
}

#[test]
fn apply_is_idempotent_ordered_and_refuses_gaps() {
    let env = Env::new();
    let primary = env.open("p");
    let replica = env.open_replica("r");
    primary.add_user(&User::new("alice")).unwrap();
    primary
        .put_token("alice", &token(b"alice-seed-0123456789"))
        .unwrap();
    primary.add_client(&client("vpn")).unwrap();
    primary.add_user(&User::new("bob")).unwrap();
    primary.delete_user("bob").unwrap();
    let changes = all_changes(&primary.repl_log());
    assert_eq!(changes.len(), 5);

    let mut r = replica.repl_log();
    let gen = replica.data_generation();
    let cgen = replica.clients_generation();
    assert_eq!(
        r.apply(&changes[1..3]),
        Err(ApplyError::Gap {
            expected: 1,
            got: 2
        })
    );
    assert_eq!(r.last(), (0, 0));
    assert_eq!(replica.data_generation(), gen);
    r.apply(&changes[..2]).unwrap();
    assert!(replica.data_generation() > gen);
    assert_eq!(replica.user_count(), 1);
    // Overlap and duplicates are skipped.
    r.apply(&changes[..4]).unwrap();
    r.apply(&changes[..4]).unwrap();
    r.apply(&changes[3..]).unwrap();
    r.apply(&changes).unwrap();
    assert_eq!(r.last(), (5, 1));
    assert_eq!(replica.clients_generation(), cgen + 1);
    assert_eq!(replica.user_count(), 1);
    assert_eq!(state(&r), state(&primary.repl_log()));
    assert_eq!(all_changes(&r), changes);
    // Seeds are replicated sealed and open with the shared key file.
    assert_eq!(
        replica.get_token("alice").unwrap(),
        Some(token(b"alice-seed-0123456789"))
    );
    assert_eq!(replica.list_clients().unwrap(), vec![client("vpn")]);

    // A gap after the end, an epoch going back, an unknown tree: refused,
    // nothing of the batch lands.
    let next = |seq: u64, epoch: u64, key: &str| Change {
        seq,
        epoch,
        op: put(TREE_USERS, key, b"{}"),
    };
    assert_eq!(
        r.apply(&[next(7, 1, "x")]),
        Err(ApplyError::Gap {
            expected: 6,
            got: 7
        })
    );
    assert!(matches!(
        r.apply(&[next(6, 2, "x"), next(7, 1, "y")]),
        Err(ApplyError::EpochRegression { seq: 7, .. })
    ));
    let bad_tree = Change {
        seq: 6,
        epoch: 2,
        op: put(9, "x", b""),
    };
    assert!(matches!(r.apply(&[bad_tree]), Err(ApplyError::Storage(_))));
    assert_eq!(r.last(), (5, 1));
    assert!(replica.get_user("x").unwrap().is_none());
    // The apply survives a reopen.
    drop((r, replica));
    let replica = env.open("r");
    assert_eq!(state(&replica.repl_log()), state(&primary.repl_log()));
    assert_eq!(replica.user_count(), 1);
}

#[test]
fn append_local_writes_data_and_log() {
    let env = Env::new();
    let store = env.open("db");
    store.add_user(&User::new("alice")).unwrap();
    let mut log = store.repl_log();
    let gen = store.data_generation();
    let value = serde_json::to_vec(&client("nas")).unwrap();
    let c = log
        .append_local(2, put(TREE_CLIENTS, "nas", &value))
        .unwrap();
    assert_eq!((c.seq, c.epoch), (2, 2));
    assert_eq!(store.list_clients().unwrap(), vec![client("nas")]);
    assert!(store.data_generation() > gen);
    let rm = log
        .append_local(
            2,
            Op::Remove {
                tree: TREE_CLIENTS,
                key: b"absent".to_vec(),
            },
        )
        .unwrap();
    assert_eq!(rm.seq, 3, "a no-op remove is still an entry");
    assert!(matches!(
        log.append_local(1, put(TREE_CLIENTS, "x", b"{}")),
        Err(ApplyError::EpochRegression { .. })
    ));
    assert!(matches!(
        log.append_local(2, put(0, "x", b"{}")),
        Err(ApplyError::Storage(_))
    ));
    assert_eq!(log.last(), (3, 2));
    let changes = all_changes(&log);
    assert_eq!(changes.last(), Some(&rm));
    assert_eq!(replay(&changes).data(), &state(&log).0);
}

/// Adds `n` users named `user` + the index in `width` digits; every other
/// one gets a token (and the OTP state `otp`, when given).
fn add_users_with_tokens(store: &Store, n: usize, width: usize, otp: Option<u64>) {
    for i in 0..n {
        let name = format!("user{i:0width$}");
        store.add_user(&User::new(&name)).unwrap();
        if i % 2 == 0 {
            store
                .put_token(&name, &token(format!("seed-of-{name}-0123").as_bytes()))
                .unwrap();
            if let Some(v) = otp {
                assert!(store.advance_otp_state(&name, v).unwrap());
            }
        }
    }
}

#[test]
fn snapshot_install_gives_identical_trees() {
    let env = Env::new();
    let primary = env.open("p");
    add_users_with_tokens(&primary, 50, 2, None);
    primary.add_client(&client("vpn")).unwrap();
    let snap = primary.repl_log().snapshot();
    assert_eq!(snap.seq, 76);

    // A replica holding other data and a log of its own (a fenced tail).
    let replica = env.open("r");
    replica.add_user(&User::new("stale")).unwrap();
    replica.add_client(&client("stale-nas")).unwrap();
    assert!(replica.advance_otp_state("stale", 9).unwrap());
    replica
        .set_repl_state(Role::Replica { primary: None }, 1)
        .unwrap();
    let mut r = replica.repl_log();
    let gen = replica.data_generation();
    let cgen = replica.clients_generation();
    r.install_snapshot(snap.clone()).unwrap();
    assert!(replica.data_generation() > gen);
    assert!(replica.clients_generation() > cgen);
    assert_eq!(r.snapshot(), snap);
    assert_eq!(r.last(), (76, 1));
    assert_eq!(replica.user_count(), 50);
    assert!(replica.get_user("stale").unwrap().is_none());
    assert_eq!(replica.otp_state("stale").unwrap(), None);
    assert_eq!(r.changes_since(75, 10), Err(Trimmed));
    assert!(r.changes_since(76, 10).unwrap().is_empty());
    assert_eq!(
        replica.get_token("user10").unwrap(),
        Some(token(b"seed-of-user10-0123"))
    );

    // It goes on from there, and survives a reopen.
    primary.delete_user("user03").unwrap();
    let next = primary.repl_log().changes_since(76, 10).unwrap();
    r.apply(&next).unwrap();
    assert_eq!(state(&r), state(&primary.repl_log()));
    drop((r, replica));
    let replica = env.open("r");
    assert_eq!(state(&replica.repl_log()), state(&primary.repl_log()));
    assert_eq!(replica.user_count(), 49);

    // Unknown trees are refused before anything changes.
    let mut bad = snap;
    bad.entries[0].tree = 0;
    assert!(matches!(
        replica.repl_log().install_snapshot(bad),
        Err(ApplyError::Storage(_))
    ));
    assert_eq!(replica.user_count(), 49);
}

#[test]
fn replication_never_lowers_local_otp_state() {
    let env = Env::new();
    let primary = env.open("p");
    primary.add_user(&User::new("alice")).unwrap();
    primary
        .put_token("alice", &token(b"alice-seed-0123456789"))
        .unwrap();
    let replica = env.open_replica("r");
    let mut r = replica.repl_log();
    r.apply(&all_changes(&primary.repl_log())).unwrap();
    assert!(replica.advance_otp_state("alice", 100).unwrap());

    // An older value from the primary (a forwarded write) does not win...
    let mut p = primary.repl_log();
    let c = p
        .append_local(1, put(TREE_OTP_STATE, "alice", &50u64.to_be_bytes()))
        .unwrap();
    r.apply(&[c]).unwrap();
    assert_eq!(replica.otp_state("alice").unwrap(), Some(100));
    // ... nor does a snapshot of the same token.
    assert!(primary.advance_otp_state("alice", 60).unwrap());
    r.install_snapshot(p.snapshot()).unwrap();
    assert_eq!(replica.otp_state("alice").unwrap(), Some(100));
    // A higher one does.
    assert!(primary.advance_otp_state("alice", 150).unwrap());
    r.install_snapshot(p.snapshot()).unwrap();
    assert_eq!(replica.otp_state("alice").unwrap(), Some(150));
    // A new enrollment resets it (the removal is replicated).
    primary
        .put_token("alice", &token(b"alice-seed-2-23456789"))
        .unwrap();
    let (seq, _) = r.last();
    r.apply(&p.changes_since(seq, 10).unwrap()).unwrap();
    assert_eq!(replica.otp_state("alice").unwrap(), None);
    assert!(replica.advance_otp_state("alice", 500).unwrap());
    // A snapshot with another token does not keep the old state either.
    primary
        .put_token("alice", &token(b"alice-seed-3-23456789"))
        .unwrap();
    assert!(primary.advance_otp_state("alice", 3).unwrap());
    r.install_snapshot(p.snapshot()).unwrap();
    assert_eq!(replica.otp_state("alice").unwrap(), Some(3));
}

const CHILD_ENV: &str = "RADMFA_CHANGELOG_TEST_CHILD_DIR";

/// Runs only as the child of `abort_mid_burst_keeps_data_and_log_consistent`:
/// writes without end while another thread aborts the process.
#[test]
#[ignore = "helper run as a child process by abort_mid_burst_keeps_data_and_log_consistent"]
fn burst_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let opts = StoreOptions {
        flush_every_ms: Some(5),
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.join("db"), &dir.join("seed.key"), &opts).unwrap();
    let delay = 40 + u64::from(std::process::id() % 60);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(delay));
        std::process::abort();
    });
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0u64.. {
                let _ = store.advance_otp_state(&format!("u{}", i % 7), i + 1);
                let _ = store.put_client(&client(&format!("nas{}", i % 5)));
            }
        })
    };
    for i in 0u64.. {
        let name = format!("u{}", i % 7);
        let _ = store.put_users(&[
            (User::new(&name), Some(token(b"burst-seed-0123456789"))),
            (User::new(&format!("v{i}")), None),
        ]);
        if i % 3 == 0 {
            let _ = store.delete_user(&format!("v{}", i.saturating_sub(1)));
        }
        let _ = store.set_pin(&name, Some(b"4321"));
    }
    let _ = writer.join();
}

#[test]
fn abort_mid_burst_keeps_data_and_log_consistent() {
    for round in 0..3 {
        let env = Env::new();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "burst_child", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, env.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child must have aborted");
        let store = env.open("db");
        let log = store.repl_log();
        let changes = all_changes(&log);
        let (last_seq, _) = log.last();
        assert!(last_seq > 0, "round {round}: nothing was written");
        assert_eq!(changes.len() as u64, last_seq, "round {round}");
        assert_eq!(changes.last().map(|c| c.seq), Some(last_seq));
        // The log replays to exactly the data, OTP state aside (node-local).
        let (mut data, _) = state(&log);
        data.retain(|(tree, _), _| *tree != TREE_OTP_STATE);
        let mut replayed = replay(&changes).data().clone();
        replayed.retain(|(tree, _), _| *tree != TREE_OTP_STATE);
        assert_eq!(replayed, data, "round {round}");
        assert_eq!(
            store.user_count(),
            store.list_users().unwrap().len(),
            "round {round}"
        );
        // And the store writes on from there.
        store.add_user(&User::new("after")).unwrap();
        assert_eq!(log.last().0, last_seq + 1);
    }
}

/// Two nodes, messages passed by hand, `now` in virtual milliseconds.
struct Pair {
    nodes: Vec<(Machine, StoreLog)>,
    now: u64,
    queue: VecDeque<(NodeId, Event)>,
    acks: Vec<Result<u64, String>>,
}

impl Pair {
    fn node(&mut self, id: NodeId) -> &mut (Machine, StoreLog) {
        &mut self.nodes[usize::from(id) - 1]
    }

    fn handle(&mut self, id: NodeId, ev: Event) {
        let now = self.now;
        let (machine, log) = self.node(id);
        let actions = machine.handle(now, ev, log);
        for a in actions {
            match a {
                Action::Send(to, msg) => self.queue.push_back((to, Event::Received(id, msg))),
                Action::Connect(to) => {
                    self.queue.push_back((id, Event::Connected(to)));
                    self.queue.push_back((to, Event::Connected(id)));
                }
                Action::Disconnect(_) => {}
                Action::Persist { role, epoch } => {
                    let (_, log) = self.node(id);
                    log.store().set_repl_state(role, epoch).unwrap();
                }
                Action::WriteDone(r) => self.acks.push(r.map_err(|e| e.to_string())),
            }
        }
    }

    fn drain(&mut self) {
        let mut steps = 0;
        while let Some((to, ev)) = self.queue.pop_front() {
            self.handle(to, ev);
            steps += 1;
            assert!(steps < 10_000, "message storm");
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 50;
            self.handle(1, Event::Tick);
            self.handle(2, Event::Tick);
            self.drain();
        }
    }
}

fn store_of(p: &Pair, id: NodeId) -> &Store {
    p.nodes[usize::from(id) - 1].1.store()
}

#[test]
fn machine_replicates_between_two_sled_stores() {
    let env = Env::new();
    let primary = env.open("a");
    primary.add_user(&User::new("before")).unwrap();
    let replica = env.open("b");
    replica
        .set_repl_state(Role::Replica { primary: None }, 0)
        .unwrap();
    let machine = |id: NodeId, store: &Store| {
        let (role, epoch) = store.repl_state();
        (Machine::new(id, vec![1, 2], role, epoch), store.repl_log())
    };
    let mut pair = Pair {
        nodes: vec![machine(1, &primary), machine(2, &replica)],
        now: 0,
        queue: VecDeque::new(),
        acks: Vec::new(),
    };
    pair.run(2_000);
    assert_eq!(pair.nodes[1].0.role(), Role::Replica { primary: Some(1) });
    assert_eq!(replica.repl_state().1, 1, "the replica persisted epoch 1");
    assert!(replica.get_user("before").unwrap().is_some());

    // A write through the Store API reaches the replica on its next pull.
    let gen = replica.data_generation();
    primary.add_user(&User::new("alice")).unwrap();
    primary
        .put_token("alice", &token(b"alice-seed-0123456789"))
        .unwrap();
    pair.run(500);
    assert_eq!(
        replica.get_token("alice").unwrap(),
        Some(token(b"alice-seed-0123456789"))
    );
    assert!(replica.data_generation() > gen);

    // A write through the machine is pushed at once.
    let value = serde_json::to_vec(&client("nas")).unwrap();
    pair.handle(1, Event::Write(put(TREE_CLIENTS, "nas", &value)));
    pair.drain();
    assert_eq!(pair.acks, vec![Ok(4)]);
    assert_eq!(replica.list_clients().unwrap(), vec![client("nas")]);
    assert_eq!(
        state(&store_of(&pair, 2).repl_log()),
        state(&store_of(&pair, 1).repl_log())
    );

    // The replica's store refuses writes; its machine refuses them too.
    assert!(matches!(
        replica.add_user(&User::new("x")),
        Err(StoreError::ReadOnly(_))
    ));
    pair.handle(2, Event::Write(put(TREE_USERS, "x", b"{}")));
    assert!(matches!(pair.acks.last(), Some(Err(m)) if m.starts_with("read-only")));
    pair.drain();

    // Promotion: the replica takes epoch 2 and writes; the old primary
    // steps down and follows.
    pair.handle(2, Event::Promote);
    pair.drain();
    pair.run(2_000);
    assert_eq!(replica.repl_state(), (Role::Primary, 2));
    assert_eq!(primary.repl_state(), (Role::Replica { primary: None }, 2));
    replica.add_user(&User::new("after-promotion")).unwrap();
    pair.run(500);
    assert!(primary.get_user("after-promotion").unwrap().is_some());
    assert!(matches!(
        primary.add_user(&User::new("y")),
        Err(StoreError::ReadOnly(_))
    ));
    assert_eq!(state(&primary.repl_log()), state(&replica.repl_log()));
    assert_eq!(primary.repl_log().last().1, 2);
}

/// Cost of `advance_otp_state` (the authentication hot path), release mode:
/// `cargo test -p radmfa-store --release --test changelog -- --ignored --nocapture otp_advance_cost`
#[test]
#[ignore = "measurement; run in release mode with --nocapture"]
fn otp_advance_cost() {
    let env = Env::new();
    let store = env.open("db");
    let names: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    for n in &names {
        store.add_user(&User::new(n)).unwrap();
    }
    let n = 200_000u64;
    let start = std::time::Instant::now();
    for i in 0..n {
        assert!(store
            .advance_otp_state(&names[(i % 100) as usize], i + 1)
            .unwrap());
    }
    let per = start.elapsed().as_nanos() as u64 / n;
    println!("advance_otp_state: {per} ns/call");
    assert_eq!(store.repl_log().last(), (100, 1));
}

#[test]
fn snapshot_in_parts_while_writing_then_replay_converges() {
    let env = Env::new();
    let primary = env.open("p");
    add_users_with_tokens(&primary, 200, 3, Some(7));
    let p = primary.repl_log();
    let replica = env.open("r");
    replica.add_user(&User::new("stale")).unwrap();
    replica
        .set_repl_state(Role::Replica { primary: None }, 1)
        .unwrap();
    let mut r = replica.repl_log();
    let (seq, epoch) = p.last();
    r.install_begin(seq, epoch).unwrap();
    assert_eq!(r.last(), (0, 0));
    assert!(replica.get_user("stale").unwrap().is_none());
    // Parts read from the live trees while the primary keeps writing.
    let mut after = None;
    let mut parts = 0;
    loop {
        let (entries, next) = p.snapshot_part(after.as_ref(), 2_000).unwrap();
        assert!(!entries.is_empty() || next.is_none());
        r.install_part(&entries).unwrap();
        parts += 1;
        // Some victims are gone already: NotFound is fine.
        let _ = primary.delete_user(&format!("user{:03}", (parts * 7) % 200));
        primary
            .add_user(&User::new(&format!("new{parts:03}")))
            .unwrap();
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert!(parts > 5, "{parts} parts");
    r.install_finish(seq, epoch).unwrap();
    assert_eq!(r.last(), (seq, epoch));
    // Replaying the log from the snapshot's position makes it exact.
    r.apply(&p.changes_since(seq, 100_000).unwrap()).unwrap();
    assert_eq!(state(&r), state(&p));
    assert_eq!(replica.user_count(), primary.user_count());
    // Until the replica says the copy is consistent, a reopened store would
    // start empty (see the next test); after, it keeps the copy.
    r.install_settled().unwrap();
    drop((r, replica));
    let replica = env.open("r");
    assert_eq!(state(&replica.repl_log()), state(&p));
}

/// A snapshot install in parts under way: primary `p` (users `user00` to
/// `user49`), replica `r` with the first part (200 bytes) installed.
struct FirstPart {
    primary: Store,
    replica: Store,
    p: StoreLog,
    r: StoreLog,
    /// The snapshot's position.
    pos: (u64, u64),
    /// Where the next part starts.
    next: Option<Cursor>,
}

fn first_part_installed(env: &Env) -> FirstPart {
    let primary = env.open("p");
    for i in 0..50 {
        primary
            .add_user(&User::new(&format!("user{i:02}")))
            .unwrap();
    }
    let p = primary.repl_log();
    let replica = env.open_replica("r");
    let mut r = replica.repl_log();
    let pos = p.last();
    r.install_begin(pos.0, pos.1).unwrap();
    let (entries, next) = p.snapshot_part(None, 200).unwrap();
    r.install_part(&entries).unwrap();
    FirstPart {
        primary,
        replica,
        p,
        r,
        pos,
        next,
    }
}

#[test]
fn a_fuzzy_copy_reopened_before_it_settled_starts_empty() {
    // Parts read while the primary writes can hold changes past the
    // snapshot's position; a replica that stops before replaying past them
    // must not come back with that mix at the snapshot's position.
    let env = Env::new();
    let FirstPart {
        primary,
        replica,
        p,
        mut r,
        pos: (seq, epoch),
        next,
    } = first_part_installed(&env);
    primary.add_user(&User::new("zz-late")).unwrap();
    let mut after = next;
    while let Some(a) = after {
        let (entries, next) = p.snapshot_part(Some(&a), 200).unwrap();
        r.install_part(&entries).unwrap();
        after = next;
    }
    r.install_finish(seq, epoch).unwrap();
    assert_eq!(r.last(), (seq, epoch));
    assert!(
        replica.get_user("zz-late").unwrap().is_some(),
        "the fuzzy part"
    );
    drop((r, replica));
    let replica = env.open("r");
    assert_eq!(replica.repl_log().last(), (0, 0));
    assert!(replica.get_user("zz-late").unwrap().is_none());
    assert!(replica.get_user("user00").unwrap().is_none());
}

#[test]
fn an_interrupted_install_in_parts_starts_empty() {
    let env = Env::new();
    let FirstPart {
        replica,
        p,
        r,
        pos: (seq, epoch),
        next,
        ..
    } = first_part_installed(&env);
    assert!(next.is_some());
    assert!(!replica.list_users().unwrap().is_empty());
    // The process dies here.
    drop((r, replica));
    let replica = env.open("r");
    assert_eq!(replica.repl_log().last(), (0, 0));
    assert_eq!(replica.user_count(), 0);
    assert!(replica.list_users().unwrap().is_empty());
    // Aborting an install also leaves an empty store at (0, 0).
    let mut r = replica.repl_log();
    r.install_begin(seq, epoch).unwrap();
    let (entries, _) = p.snapshot_part(None, 200).unwrap();
    r.install_part(&entries).unwrap();
    r.install_abort().unwrap();
    assert_eq!(r.last(), (0, 0));
    assert_eq!(replica.user_count(), 0);
}

#[test]
fn a_part_larger_than_an_insert_batch_installs_identically() {
    let env = Env::new();
    let primary = env.open("p");
    let mut p = primary.repl_log();
    // More entries of one tree than one sled batch of the install holds.
    for i in 0..5000 {
        p.append_local(
            1,
            put(TREE_USERS, &format!("user{i:04}"), b"{\"name\":\"x\"}"),
        )
        .unwrap();
    }
    let replica = env.open_replica("r");
    let mut r = replica.repl_log();
    r.install_snapshot(p.snapshot()).unwrap();
    assert_eq!(state(&r), state(&p));
    assert_eq!(replica.user_count(), 5000);
}

/// The disable reason and the synced directory values are part of the user
/// record: written by `disable_user` / `modify_users`, logged, applied by a
/// replica and kept by backup and restore; a record written before they
/// existed still reads (no reason, no synced values).
#[test]
fn disabled_reason_and_synced_values_replicate_and_restore() {
    use radmfa_store::{DisabledReason, SyncedFields};
    let env = Env::new();
    let primary = env.open("p");
    let replica = env.open_replica("r");
    primary.add_user(&User::new("alice")).unwrap();
    primary.add_user(&User::new("bob")).unwrap();
    primary.set_pin("bob", Some(b"13579")).unwrap();
    primary.set_user_enabled("alice", false).unwrap();
    // An admin's disable is kept when a fraud report follows.
    primary
        .disable_user("alice", DisabledReason::Fraud)
        .unwrap();
    let synced = SyncedFields {
        phone: "+15550107001".into(),
        groups: vec!["vpn".into()],
        ..SyncedFields::default()
    };
    let notes = primary
        .modify_users(&["bob".into(), "carol".into()], |name, cur| {
            let mut u = cur.cloned().unwrap_or_else(|| User::new(name));
            u.synced = Some(synced.clone());
            u.disable(DisabledReason::LeftDirectory);
            // The PIN cannot be changed this way.
            u.pin = None;
            Some((u, name.len()))
        })
        .unwrap();
    assert_eq!(notes, vec![3, 5]);
    let bob = primary.get_user("bob").unwrap().unwrap();
    assert!(bob.pin.is_some(), "modify_users keeps the PIN");
    let carol = primary.get_user("carol").unwrap().unwrap();
    assert!(carol.created > 0 && carol.pin.is_none());
    // Enabling forgets the reason.
    primary.set_user_enabled("carol", true).unwrap();

    replica
        .repl_log()
        .apply(&all_changes(&primary.repl_log()))
        .unwrap();
    for store in [&primary, &replica] {
        let alice = store.get_user("alice").unwrap().unwrap();
        assert_eq!(alice.disabled_reason, Some(DisabledReason::Admin));
        let bob = store.get_user("bob").unwrap().unwrap();
        assert_eq!(bob.disabled_reason, Some(DisabledReason::LeftDirectory));
        assert_eq!(bob.synced.as_ref(), Some(&synced));
        let carol = store.get_user("carol").unwrap().unwrap();
        assert!(carol.enabled && carol.disabled_reason.is_none());
    }
    let file = env.db("backup.bak");
    primary.backup(&file).unwrap();
    Store::restore(&file, &env.db("restored"), &env.key()).unwrap();
    let restored = env.open("restored");
    let bob = restored.get_user("bob").unwrap().unwrap();
    assert_eq!(bob.disabled_reason, Some(DisabledReason::LeftDirectory));
    assert_eq!(bob.synced, Some(synced));

    // A record as an older version wrote it.
    let old = r#"{"name":"dave","display_name":"","email":"","phone":"","method":"totp",
        "enabled":false,"groups":[],"password_hash":null,"created":1,"updated":1}"#;
    let dave: User = serde_json::from_str(old).unwrap();
    assert!(!dave.enabled);
    assert_eq!((dave.disabled_reason, dave.synced), (None, None));
}
