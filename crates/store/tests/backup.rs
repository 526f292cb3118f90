//! Online backup and offline restore against real sled stores.

mod common;
use common::open_retry;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use radmfa_store::repl::{MemLog, ReplLog, Role};
use radmfa_store::{
    AuditFilter, AuditRecord, Client, Secret, Store, StoreError, Token, TokenAlgorithm, TokenKind,
    User, BACKUP_MAGIC,
};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn key(&self) -> PathBuf {
        self.path("seed.key")
    }
    fn open(&self, name: &str) -> Store {
        open_retry(&self.path(name), &self.key())
    }
}

fn token(seed: &[u8]) -> Token {
    Token {
        kind: TokenKind::Totp,
        algorithm: TokenAlgorithm::Sha1,
        digits: 6,
        period: 30,
        secret: Secret::new(seed.to_vec()),
        created: 1_700_000_000,
    }
}

fn audit(i: u64) -> AuditRecord {
    AuditRecord {
        time_ms: 1_732_665_600_000 + i,
        user: format!("user{i}"),
        mode: "pap+totp".into(),
        result: "accept".into(),
        reason: String::new(),
        server_name: "node-a".into(),
        server_ip: "192.0.2.10".into(),
        client_name: "vpn".into(),
        client_ip: "192.0.2.1".into(),
        calling_station: String::new(),
        ..AuditRecord::default()
    }
}

/// A store with users, tokens, a PIN, OTP state, a client and audit records.
fn populated(env: &Env) -> Store {
    let store = env.open("db");
    for i in 0..20 {
        let name = format!("user{i:02}");
        store.add_user(&User::new(&name)).unwrap();
        store
            .put_token(&name, &token(format!("seed-{name}-0123456789").as_bytes()))
            .unwrap();
    }
    store.set_pin("user01", Some(b"24680")).unwrap();
    assert!(store.advance_otp_state("user02", 55).unwrap());
    store
        .add_client(&Client {
            name: "vpn".into(),
            address: "192.0.2.0/24".parse().unwrap(),
            secret: "radius-secret".into(),
            policy: "default".into(),
            require_message_authenticator: true,
        })
        .unwrap();
    let recs: Vec<AuditRecord> = (0..100).map(audit).collect();
    store.append_audit_batch(&recs).unwrap();
    store
}

#[test]
fn backup_then_restore_round_trip() {
    let env = Env::new();
    let store = populated(&env);
    let file = env.path("b1.bak");
    let info = store.backup(&file).unwrap();
    assert_eq!((info.seq, info.epoch), (42, 1));
    assert_eq!(info.role, Role::Primary);
    assert_eq!(info.entries, 20 + 20 + 1 + 1);
    assert!(info.audit_files >= 1);
    assert!(fs::read(&file).unwrap().starts_with(BACKUP_MAGIC));
    assert!(env.path("b1.bak.audit").is_dir());
    assert!(!env.path("b1.bak.tmp").exists());
    // The key is not in the backup: no seed in clear, no key bytes.
    let bytes = fs::read(&file).unwrap();
    let key_text = fs::read(env.key()).unwrap();
    assert!(!bytes
        .windows(20)
        .any(|w| w == &key_text[..20] || w == b"seed-user05-01234567"));
    // Never overwrites.
    assert!(matches!(
        store.backup(&file),
        Err(StoreError::Backup { .. })
    ));

    let restored_dir = env.path("restored");
    let back = Store::restore(&file, &restored_dir, &env.key()).unwrap();
    assert_eq!(back, info);
    let restored = env.open("restored");
    assert_eq!(restored.repl_log().snapshot(), store.repl_log().snapshot());
    assert_eq!(restored.repl_state(), (Role::Primary, 1));
    assert_eq!(restored.user_count(), 20);
    assert_eq!(
        restored.get_token("user07").unwrap(),
        Some(token(b"seed-user07-0123456789"))
    );
    let u1 = restored.get_user("user01").unwrap().unwrap();
    assert_eq!(
        restored.open_pin(&u1).unwrap().map(|p| p.expose().to_vec()),
        Some(b"24680".to_vec())
    );
    assert_eq!(restored.otp_state("user02").unwrap(), Some(55));
    assert_eq!(
        restored.query_audit(&AuditFilter::default()).unwrap(),
        store.query_audit(&AuditFilter::default()).unwrap()
    );
    // The restored node writes on from the backup's position.
    restored.add_user(&User::new("new")).unwrap();
    assert_eq!(restored.repl_log().last(), (43, 1));
}

#[test]
fn backup_during_writes_is_the_state_at_its_position() {
    let env = Env::new();
    let store = env.open("db");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{}", i % 40);
                store.put_user(&User::new(&name)).unwrap();
                if i % 3 == 0 {
                    store
                        .put_token(&name, &token(b"writer-seed-012345678"))
                        .unwrap();
                }
                if i % 7 == 0 {
                    store.delete_user(&format!("w{}", (i + 13) % 40)).ok();
                }
                i += 1;
            }
            i
        })
    };
    // Let it write a while, then back up while it goes on.
    while store.repl_log().last().0 < 100 {
        std::thread::yield_now();
    }
    let file = env.path("live.bak");
    let info = store.backup(&file).unwrap();
    while store.repl_log().last().0 < info.seq + 50 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    assert!(store.repl_log().last().0 > info.seq, "writes went on");

    // The state at the backup's position: a replay of the log up to it.
    let upto: Vec<_> = store
        .repl_log()
        .changes_since(0, usize::try_from(info.seq).unwrap())
        .unwrap();
    assert_eq!(upto.last().map(|c| c.seq), Some(info.seq));
    let mut expected = MemLog::new();
    expected.apply(&upto).unwrap();
    let expected_snapshot = expected.snapshot();

    Store::restore(&file, &env.path("restored"), &env.key()).unwrap();
    let restored = env.open("restored");
    let snap = restored.repl_log().snapshot();
    assert_eq!(snap, expected_snapshot);
    assert_eq!(restored.user_count(), restored.list_users().unwrap().len());
}

#[test]
fn corrupted_backup_is_refused_and_nothing_is_written() {
    let env = Env::new();
    let store = populated(&env);
    let file = env.path("b.bak");
    store.backup(&file).unwrap();
    let good = fs::read(&file).unwrap();
    let target = env.path("target");
    let cases: Vec<(String, Vec<u8>)> = vec![
        ("flipped byte in the middle".into(), {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 1;
            b
        }),
        ("flipped byte in the digest".into(), {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] ^= 0x80;
            b
        }),
        ("truncated".into(), good[..good.len() - 100].to_vec()),
        ("empty".into(), Vec::new()),
        (
            "not a backup".into(),
            b"hello world, this is not a backup file".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let bad = env.path("bad.bak");
        fs::write(&bad, &bytes).unwrap();
        match Store::restore(&bad, &target, &env.key()) {
            Err(StoreError::Backup { path, reason }) => {
                assert_eq!(path, bad, "{name}");
                assert!(!reason.is_empty(), "{name}");
                if name.starts_with("flipped") {
                    assert!(reason.contains("checksum"), "{name}: {reason}");
                }
            }
            other => panic!("{name}: expected a backup error, got {other:?}"),
        }
        assert!(!target.exists(), "{name}: the target was created");
        assert!(!env.path("target.audit").exists(), "{name}");
    }
}

#[test]
fn restore_refuses_a_database_in_place_and_a_wrong_key() {
    let env = Env::new();
    let store = populated(&env);
    let file = env.path("b.bak");
    store.backup(&file).unwrap();

    // The live database directory, and any non-empty directory.
    assert!(matches!(
        Store::restore(&file, &env.path("db"), &env.key()),
        Err(StoreError::Backup { .. })
    ));
    let other = env.path("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("junk"), b"x").unwrap();
    assert!(matches!(
        Store::restore(&file, &other, &env.key()),
        Err(StoreError::Backup { .. })
    ));

    // Another key file: refused before anything is written.
    let wrong = env.path("other.key");
    // Well-formed and owner-only, just not the right one.
    let other_key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    fs::write(&wrong, other_key).unwrap();
    fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let target = env.path("target");
    match Store::restore(&file, &target, &wrong) {
        Err(StoreError::KeyFile { path, reason }) => {
            assert_eq!(path, wrong);
            assert!(
                reason.contains("key file the backup was made with"),
                "{reason}"
            );
        }
        other => panic!("expected a key file error, got {other:?}"),
    }
    assert!(!target.exists());
    // A missing key file is not created.
    let missing = env.path("missing.key");
    assert!(matches!(
        Store::restore(&file, &target, &missing),
        Err(StoreError::KeyFile { .. })
    ));
    assert!(!missing.exists() && !target.exists());

    // An empty existing directory is fine.
    fs::create_dir(&target).unwrap();
    Store::restore(&file, &target, &env.key()).unwrap();
    assert_eq!(env.open("target").user_count(), 20);
}

#[test]
fn replica_backup_restores_as_replica() {
    let env = Env::new();
    let store = populated(&env);
    store
        .set_repl_state(Role::Replica { primary: Some(1) }, 3)
        .unwrap();
    let file = env.path("r.bak");
    let info = store.backup(&file).unwrap();
    assert_eq!(info.role, Role::Replica { primary: None });
    assert_eq!(info.repl_epoch, 3);
    drop(store);
    Store::restore(&file, &env.path("restored"), &env.key()).unwrap();
    let restored = env.open("restored");
    assert_eq!(restored.repl_state(), (Role::Replica { primary: None }, 3));
    assert!(matches!(
        restored.add_user(&User::new("x")),
        Err(StoreError::ReadOnly(_))
    ));
}
