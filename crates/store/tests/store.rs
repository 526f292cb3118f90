//! Integration tests of radmfa-store against real sled databases in temp dirs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use radmfa_store::{
    verify_password, AuditFilter, AuditRecord, Client, Method, PasswordParams, Secret, Store,
    StoreError, StoreOptions, Token, TokenAlgorithm, TokenKind, User,
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
    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("store.key")
    }
    fn open(&self) -> Store {
        common::open_retry(&self.db(), &self.key())
    }
}

fn cheap_params() -> PasswordParams {
    PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

fn token(seed: &[u8]) -> Token {
    Token {
        kind: TokenKind::Totp,
        algorithm: TokenAlgorithm::Sha256,
        digits: 8,
        period: 30,
        secret: Secret::new(seed.to_vec()),
        created: 1_700_000_000,
    }
}

fn client(name: &str, addr: &str) -> Client {
    Client {
        name: name.into(),
        address: addr.parse().unwrap(),
        secret: format!("secret-of-{name}"),
        policy: "default".into(),
        require_message_authenticator: true,
    }
}

/// Records as appended: without the sequence number the journal gave them.
fn unseq(mut recs: Vec<AuditRecord>) -> Vec<AuditRecord> {
    for r in &mut recs {
        assert!(r.seq > 0, "the journal numbers every record");
        r.seq = 0;
    }
    recs
}

fn audit(time_ms: u64, user: &str, result: &str) -> AuditRecord {
    AuditRecord {
        time_ms,
        user: user.into(),
        mode: "pap+totp".into(),
        result: result.into(),
        reason: String::new(),
        server_name: "node-a".into(),
        server_ip: "127.0.0.1".into(),
        client_name: "vpn".into(),
        client_ip: "127.0.0.2".into(),
        calling_station: "198.51.100.7".into(),
        ..AuditRecord::default()
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    files_under(dir).iter().any(|f| {
        let bytes = std::fs::read(f).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn users_crud() {
    let env = Env::new();
    let store = env.open();
    let mut alice = User::new("alice");
    alice.display_name = "Alice A.".into();
    alice.email = "alice@example.com".into();
    alice.phone = "+15550100".into();
    alice.method = Method::Sms;
    alice.groups = vec!["vpn".into(), "admins".into()];
    store.add_user(&alice).unwrap();
    store.add_user(&User::new("bob")).unwrap();
    store.add_user(&User::new("Carol")).unwrap();

    let got = store.get_user("alice").unwrap().unwrap();
    assert!(got.created > 0 && got.updated == got.created);
    assert_eq!(
        User {
            created: 0,
            updated: 0,
            ..got.clone()
        },
        alice
    );
    assert!(matches!(
        store.add_user(&alice),
        Err(StoreError::AlreadyExists { what: "user", ref name }) if name == "alice"
    ));
    assert_eq!(store.get_user("nobody").unwrap(), None);
    assert_eq!(store.get_user("").unwrap(), None);
    assert_eq!(store.user_count(), 3);

    let names: Vec<String> = store
        .list_users()
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["Carol", "alice", "bob"]);

    // put_user replaces, keeps `created`.
    let mut changed = got.clone();
    changed.method = Method::Push;
    changed.created = 1;
    store.put_user(&changed).unwrap();
    let again = store.get_user("alice").unwrap().unwrap();
    assert_eq!(again.method, Method::Push);
    assert_eq!(again.created, got.created);
    // put_user inserts too.
    store.put_user(&User::new("dave")).unwrap();
    assert!(store.get_user("dave").unwrap().unwrap().created > 0);
    assert_eq!(store.user_count(), 4);

    store.set_user_enabled("bob", false).unwrap();
    assert!(!store.get_user("bob").unwrap().unwrap().enabled);
    store.set_user_enabled("bob", true).unwrap();
    assert!(store.get_user("bob").unwrap().unwrap().enabled);
    assert!(matches!(
        store.set_user_enabled("nobody", false),
        Err(StoreError::NotFound { what: "user", .. })
    ));

    store
        .set_password("bob", b"hunter2", &cheap_params())
        .unwrap();
    let phc = store
        .get_user("bob")
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(phc.starts_with("$argon2id$"));
    assert!(verify_password(&phc, b"hunter2"));
    assert!(!verify_password(&phc, b"hunter3"));
    assert!(matches!(
        store.set_password("nobody", b"x", &cheap_params()),
        Err(StoreError::NotFound { .. })
    ));

    store.delete_user("dave").unwrap();
    assert_eq!(store.get_user("dave").unwrap(), None);
    assert!(matches!(
        store.delete_user("dave"),
        Err(StoreError::NotFound { what: "user", .. })
    ));
    assert_eq!(store.user_count(), 3);
}

#[test]
fn invalid_names_are_rejected() {
    let env = Env::new();
    let store = env.open();
    for bad in ["", "a\u{0}b", "line\nbreak", "tab\there"] {
        assert!(
            matches!(store.add_user(&User::new(bad)), Err(StoreError::Invalid(_))),
            "{bad:?}"
        );
        assert!(matches!(
            store.put_user(&User::new(bad)),
            Err(StoreError::Invalid(_))
        ));
    }
    let long = "x".repeat(254);
    assert!(matches!(
        store.add_user(&User::new(&long)),
        Err(StoreError::Invalid(_))
    ));
    store.add_user(&User::new(&"x".repeat(253))).unwrap();
    store.add_user(&User::new("DOMAIN\\jörg")).unwrap();
    assert_eq!(store.user_count(), 2);
}

#[test]
fn clients_crud() {
    let env = Env::new();
    let store = env.open();
    let vpn = client("vpn", "10.1.0.0/16");
    store.add_client(&vpn).unwrap();
    store.add_client(&client("nps", "192.0.2.10/32")).unwrap();
    store.add_client(&client("v6", "2001:db8::/64")).unwrap();
    assert!(matches!(
        store.add_client(&vpn),
        Err(StoreError::AlreadyExists { what: "client", .. })
    ));
    let mut bad = client("x", "10.0.0.1/32");
    bad.secret.clear();
    assert!(matches!(
        store.add_client(&bad),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.put_client(&bad),
        Err(StoreError::Invalid(_))
    ));

    let list = store.list_clients().unwrap();
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["nps", "v6", "vpn"]);
    assert_eq!(list[2], vpn);

    let gen = store.clients_generation();
    let mut changed = vpn.clone();
    changed.require_message_authenticator = false;
    changed.policy = "legacy".into();
    store.put_client(&changed).unwrap();
    assert!(store.clients_generation() > gen);
    assert_eq!(store.list_clients().unwrap()[2], changed);

    store.delete_client("nps").unwrap();
    assert!(matches!(
        store.delete_client("nps"),
        Err(StoreError::NotFound { what: "client", .. })
    ));
    assert_eq!(store.list_clients().unwrap().len(), 2);
}

#[test]
fn tokens_crud_and_otp_reset() {
    let env = Env::new();
    let store = env.open();
    assert!(matches!(
        store.put_token("alice", &token(b"seed-one-0123456789")),
        Err(StoreError::NotFound { what: "user", .. })
    ));
    store.add_user(&User::new("alice")).unwrap();
    assert_eq!(store.get_token("alice").unwrap(), None);

    let t1 = token(b"seed-one-0123456789");
    store.put_token("alice", &t1).unwrap();
    assert_eq!(store.get_token("alice").unwrap(), Some(t1.clone()));

    assert!(store.advance_otp_state("alice", 100).unwrap());
    assert_eq!(store.otp_state("alice").unwrap(), Some(100));

    // Replacing the token resets the replay state.
    let t2 = Token {
        kind: TokenKind::Hotp,
        algorithm: TokenAlgorithm::Sha1,
        digits: 6,
        period: 0,
        secret: Secret::new(b"seed-two".to_vec()),
        created: 7,
    };
    store.put_token("alice", &t2).unwrap();
    assert_eq!(store.get_token("alice").unwrap(), Some(t2));
    assert_eq!(store.otp_state("alice").unwrap(), None);

    let mut invalid = t1.clone();
    invalid.digits = 4;
    assert!(matches!(
        store.put_token("alice", &invalid),
        Err(StoreError::Invalid(_))
    ));

    assert!(store.advance_otp_state("alice", 5).unwrap());
    store.delete_token("alice").unwrap();
    assert_eq!(store.get_token("alice").unwrap(), None);
    assert_eq!(store.otp_state("alice").unwrap(), None);
    assert!(matches!(
        store.delete_token("alice"),
        Err(StoreError::NotFound { what: "token", .. })
    ));
}

#[test]
fn token_seed_is_encrypted_at_rest() {
    let env = Env::new();
    let seed = b"\x9fSEED-MUST-NOT-LEAK\x01\x02\x03";
    {
        let store = env.open();
        store.add_user(&User::new("marker-user-zqxj")).unwrap();
        store.put_token("marker-user-zqxj", &token(seed)).unwrap();
        store.flush().unwrap();
    }
    // Reopen (the files are complete and consistent), then look at raw bytes.
    {
        let store = env.open();
        assert_eq!(
            store
                .get_token("marker-user-zqxj")
                .unwrap()
                .unwrap()
                .secret
                .expose(),
            seed
        );
    }
    let db = env.db();
    // The scan does see stored data: the user name is in the files.
    assert!(dir_contains(&db, b"marker-user-zqxj"));
    // The seed is not there: raw, hex, or as a JSON byte array.
    assert!(!dir_contains(&db, seed));
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dir_contains(&db, hex.as_bytes()));
    let json = serde_json::to_string(&seed.to_vec()).unwrap();
    assert!(!dir_contains(&db, json.as_bytes()));
    // The key itself is not in the database directory either.
    let key_text = std::fs::read(env.key()).unwrap();
    assert!(!dir_contains(&db, key_text.trim_ascii()));
}

/// Writes `key` to `path` with `mode`.
fn write_key(path: &Path, key: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, key).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A well-formed key (32 distinct bytes) that is not the store's.
fn other_key() -> Vec<u8> {
    (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a).collect()
}

fn expect_key_error(result: Result<Store, StoreError>, path: &Path, words: &str) {
    match result {
        Err(StoreError::KeyFile { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains(words), "{reason}");
        }
        Err(other) => panic!("expected a key file error with {words:?}, got {other}"),
        Ok(_) => panic!("expected a key file error with {words:?}, the store opened"),
    }
}

#[test]
fn wrong_key_file_is_refused_at_open() {
    let env = Env::new();
    {
        let store = env.open();
        store.add_user(&User::new("alice")).unwrap();
        store
            .put_token("alice", &token(b"0123456789abcdef0123"))
            .unwrap();
    }
    let wrong = env.dir.path().join("other.key");
    write_key(&wrong, &other_key(), 0o600);
    expect_key_error(
        Store::open(&env.db(), &wrong, &StoreOptions::default()),
        &wrong,
        "not the key this database was created with",
    );
    // The right key still opens it, seeds intact.
    let store = env.open();
    assert!(store.get_token("alice").unwrap().is_some());
}

#[test]
fn wrong_key_is_refused_even_before_any_seed_is_stored() {
    let env = Env::new();
    drop(env.open());
    let wrong = env.dir.path().join("other.key");
    write_key(&wrong, &other_key(), 0o600);
    expect_key_error(
        Store::open(&env.db(), &wrong, &StoreOptions::default()),
        &wrong,
        "not the key this database was created with",
    );
}

#[test]
fn database_without_key_check_value_is_checked_against_a_seed() {
    // A database written before key check values existed: the first open
    // checks the key on a sealed seed before recording it.
    let env = Env::new();
    {
        let store = env.open();
        store.add_user(&User::new("alice")).unwrap();
        store
            .put_token("alice", &token(b"0123456789abcdef0123"))
            .unwrap();
        store.flush().unwrap();
    }
    let strip = || {
        let db = common::sled_open_retry(&env.db());
        let meta = db.open_tree("meta").unwrap();
        assert!(meta.remove("seed_key_check").unwrap().is_some());
        db.flush().unwrap();
    };
    strip();
    let wrong = env.dir.path().join("other.key");
    write_key(&wrong, &other_key(), 0o600);
    expect_key_error(
        Store::open(&env.db(), &wrong, &StoreOptions::default()),
        &wrong,
        "does not decrypt the token seeds",
    );
    // The right key passes and records the check value: a wrong key is then
    // refused by it.
    drop(env.open());
    expect_key_error(
        Store::open(&env.db(), &wrong, &StoreOptions::default()),
        &wrong,
        "not the key this database was created with",
    );
}

#[test]
fn key_file_open_to_others_or_trivial_is_refused() {
    let env = Env::new();
    let key = env.dir.path().join("k.key");
    for mode in [0o644, 0o604, 0o620, 0o666] {
        write_key(&key, &other_key(), mode);
        expect_key_error(
            Store::open(&env.db(), &key, &StoreOptions::default()),
            &key,
            "chmod 600",
        );
    }
    for trivial in [[0u8; 32], [0x55u8; 32]] {
        write_key(&key, &trivial, 0o600);
        expect_key_error(
            Store::open(&env.db(), &key, &StoreOptions::default()),
            &key,
            "trivial",
        );
    }
    // Group read (a key kept by root for a service group) is allowed.
    write_key(&key, &other_key(), 0o640);
    drop(Store::open(&env.db(), &key, &StoreOptions::default()).unwrap());
}

#[test]
fn new_files_and_directories_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // The test process keeps its umask (usually 022): the store must not
    // depend on it.
    let env = Env::new();
    let store = env.open();
    store.add_user(&User::new("alice")).unwrap();
    store
        .append_audit(&audit(1_700_000_000_000, "alice", "accept"))
        .unwrap();
    store.flush().unwrap();
    let backup = env.dir.path().join("b.bak");
    store.backup(&backup).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.db()), 0o700, "db dir");
    assert_eq!(mode(store.audit_dir()), 0o700, "audit dir");
    let mut files = 0;
    for entry in std::fs::read_dir(store.audit_dir()).unwrap() {
        let p = entry.unwrap().path();
        // The cluster inbox is a directory.
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
        files += 1;
    }
    assert!(files > 0);
    assert_eq!(mode(&backup), 0o600, "backup");
    let copy = env.dir.path().join("b.bak.audit");
    assert_eq!(mode(&copy), 0o700, "backup audit dir");
    assert_eq!(mode(&env.key()), 0o600, "seed key");
}

#[test]
fn sealed_seed_is_bound_to_its_user() {
    let env = Env::new();
    {
        let store = env.open();
        store.add_user(&User::new("alice")).unwrap();
        store.add_user(&User::new("mallory")).unwrap();
        store
            .put_token("alice", &token(b"alice-seed-0123456789"))
            .unwrap();
    }
    {
        let db = common::sled_open_retry(&env.db());
        let tokens = db.open_tree("tokens").unwrap();
        let raw = tokens.get("alice").unwrap().unwrap();
        tokens.insert("mallory", raw).unwrap();
        db.flush().unwrap();
    }
    let store = env.open();
    assert!(store.get_token("alice").unwrap().is_some());
    assert!(matches!(
        store.get_token("mallory"),
        Err(StoreError::Crypto)
    ));
}

#[test]
fn tampered_token_record_fails() {
    let env = Env::new();
    {
        let store = env.open();
        store.add_user(&User::new("alice")).unwrap();
        store
            .put_token("alice", &token(b"alice-seed-0123456789"))
            .unwrap();
    }
    {
        let db = common::sled_open_retry(&env.db());
        let tokens = db.open_tree("tokens").unwrap();
        let raw = tokens.get("alice").unwrap().unwrap();
        let mut rec: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let sealed = rec["sealed"].as_str().unwrap().to_string();
        let flipped = if sealed.starts_with('0') { "1" } else { "0" };
        rec["sealed"] = format!("{flipped}{}", &sealed[1..]).into();
        tokens
            .insert("alice", serde_json::to_vec(&rec).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let store = env.open();
    assert!(matches!(store.get_token("alice"), Err(StoreError::Crypto)));
}

#[test]
fn otp_state_only_moves_forward() {
    let env = Env::new();
    let store = env.open();
    assert_eq!(store.otp_state("alice").unwrap(), None);
    assert!(store.advance_otp_state("alice", 10).unwrap());
    assert!(!store.advance_otp_state("alice", 10).unwrap());
    assert!(!store.advance_otp_state("alice", 9).unwrap());
    assert!(store.advance_otp_state("alice", 11).unwrap());
    assert!(store.advance_otp_state("alice", u64::MAX).unwrap());
    assert!(!store.advance_otp_state("alice", u64::MAX).unwrap());
    assert_eq!(store.otp_state("alice").unwrap(), Some(u64::MAX));
    // Per user.
    assert!(store.advance_otp_state("bob", 0).unwrap());
    assert!(!store.advance_otp_state("bob", 0).unwrap());
    assert!(matches!(
        store.advance_otp_state("", 1),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn otp_state_concurrent_exactly_one_winner() {
    const THREADS: usize = 8;
    const VALUES: u64 = 200;
    let env = Env::new();
    let store = env.open();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut wins = Vec::new();
                for v in 1..=VALUES {
                    if store.advance_otp_state("alice", v).unwrap() {
                        wins.push(v);
                    }
                }
                wins
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a value was accepted twice");
    // Every thread tries every value in order, so each value is accepted exactly
    // once by some thread unless a larger one was already stored.
    assert!(all.contains(&VALUES));
    assert_eq!(store.otp_state("alice").unwrap(), Some(VALUES));

    // Same value from all threads at once: exactly one winner.
    for round in 0..20u64 {
        let value = 1_000 + round;
        let barrier = Arc::new(Barrier::new(THREADS));
        let wins: usize = (0..THREADS)
            .map(|_| {
                let store = store.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    usize::from(store.advance_otp_state("alice", value).unwrap())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(wins, 1, "round {round}");
    }
}

#[test]
fn audit_filter_limit_order_trim() {
    let env = Env::new();
    let store = env.open();
    // Out-of-order appends, duplicate timestamps.
    store.append_audit(&audit(3000, "alice", "reject")).unwrap();
    store.append_audit(&audit(1000, "alice", "accept")).unwrap();
    store
        .append_audit_batch(&[
            audit(2000, "bob", "accept"),
            audit(2000, "bob", "challenge"),
            audit(4000, "alice", "accept"),
            audit(5000, "bob", "reject"),
        ])
        .unwrap();
    store.append_audit_batch(&[]).unwrap();

    let times = |recs: Vec<AuditRecord>| recs.iter().map(|r| r.time_ms).collect::<Vec<_>>();
    let all = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(times(all.clone()), [1000, 2000, 2000, 3000, 4000, 5000]);
    // Same timestamp: insertion order kept.
    assert_eq!(all[1].result, "accept");
    assert_eq!(all[2].result, "challenge");
    assert_eq!(
        unseq(vec![all[0].clone()]),
        [audit(1000, "alice", "accept")]
    );

    let f = |user: Option<&str>, since, until, result: Option<&str>, limit| AuditFilter {
        user: user.map(str::to_string),
        since_ms: since,
        until_ms: until,
        result: result.map(str::to_string),
        limit,
    };
    assert_eq!(
        times(
            store
                .query_audit(&f(Some("alice"), None, None, None, None))
                .unwrap()
        ),
        [1000, 3000, 4000]
    );
    assert_eq!(
        times(
            store
                .query_audit(&f(None, Some(2000), Some(4000), None, None))
                .unwrap()
        ),
        [2000, 2000, 3000]
    );
    assert_eq!(
        times(
            store
                .query_audit(&f(None, None, None, Some("accept"), None))
                .unwrap()
        ),
        [1000, 2000, 4000]
    );
    // Limit: the most recent matches, oldest first.
    assert_eq!(
        times(
            store
                .query_audit(&f(None, None, None, None, Some(2)))
                .unwrap()
        ),
        [4000, 5000]
    );
    assert_eq!(
        times(
            store
                .query_audit(&f(Some("bob"), None, Some(5000), None, Some(1)))
                .unwrap()
        ),
        [2000]
    );
    assert_eq!(
        store
            .query_audit(&f(Some("bob"), None, Some(5000), None, Some(1)))
            .unwrap()[0]
            .result,
        "challenge"
    );
    assert_eq!(
        times(
            store
                .query_audit(&f(None, None, None, None, Some(100)))
                .unwrap()
        )
        .len(),
        6
    );
    assert!(store
        .query_audit(&f(None, None, None, None, Some(0)))
        .unwrap()
        .is_empty());
    assert!(store
        .query_audit(&f(None, Some(5), Some(5), None, None))
        .unwrap()
        .is_empty());
    assert!(store
        .query_audit(&f(None, Some(9), Some(2), None, None))
        .unwrap()
        .is_empty());

    // Trimming removes whole journal segments: all six records share one
    // (its newest is 5000), so nothing goes until the cutoff passes 5000.
    assert_eq!(store.trim_audit(3000).unwrap(), 0);
    assert_eq!(store.trim_audit(5000).unwrap(), 0);
    assert_eq!(store.query_audit(&AuditFilter::default()).unwrap(), all);
    assert_eq!(store.trim_audit(5001).unwrap(), 6);
    assert!(store
        .query_audit(&AuditFilter::default())
        .unwrap()
        .is_empty());
    assert_eq!(store.trim_audit(u64::MAX).unwrap(), 0);
}

const DAY_MS: u64 = 86_400_000;
/// 2024-11-27T00:00:00Z.
const DAY0: u64 = 1_732_665_600_000;

/// Names of the segment files in the audit journal.
fn segments(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.audit_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
}

#[test]
fn audit_journal_is_greppable_json_lines_beside_the_db() {
    let env = Env::new();
    let store = env.open();
    let base = std::fs::canonicalize(env.dir.path()).unwrap();
    assert_eq!(store.audit_dir(), base.join("db.audit"));
    store
        .append_audit_batch(&[
            audit(DAY0 + 5, "alice", "accept"),
            audit(DAY0 + 7, "bob", "reject"),
        ])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(segments(&store), ["00000001732665600005-000001.jsonl"]);
    let text = std::fs::read_to_string(store.audit_dir().join(&segments(&store)[0])).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(text.ends_with('\n'));
    assert!(lines[1].contains(r#""user":"bob""#), "{text}");
    let parsed: AuditRecord = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(unseq(vec![parsed]), [audit(DAY0 + 5, "alice", "accept")]);
    // Nothing of the audit log in the sled directory.
    assert!(!dir_contains(&env.db(), b"198.51.100.7"));
}

#[test]
fn audit_rotates_by_day_and_queries_across_segments() {
    let env = Env::new();
    let store = env.open();
    let mut expected = Vec::new();
    for d in 0..3 {
        let batch: Vec<AuditRecord> = (0..5)
            .map(|i| {
                audit(
                    DAY0 + d * DAY_MS + i * 60_000,
                    if i % 2 == 0 { "alice" } else { "bob" },
                    "accept",
                )
            })
            .collect();
        store.append_audit_batch(&batch).unwrap();
        expected.extend(batch);
        // A late record from the first day lands in the current segment.
        let late = audit(DAY0 + 1, "late", "reject");
        store.append_audit(&late).unwrap();
        expected.push(late);
    }
    expected.sort_by_key(|r| r.time_ms);
    assert_eq!(segments(&store).len(), 3);
    let check = |store: &Store| {
        assert_eq!(
            unseq(store.query_audit(&AuditFilter::default()).unwrap()),
            expected
        );
        let newest = store
            .query_audit(&AuditFilter {
                user: Some("bob".into()),
                limit: Some(3),
                ..AuditFilter::default()
            })
            .unwrap();
        let want: Vec<AuditRecord> = expected
            .iter()
            .filter(|r| r.user == "bob")
            .skip(3)
            .cloned()
            .collect();
        assert_eq!(unseq(newest), want);
        let day1 = store
            .query_audit(&AuditFilter {
                since_ms: Some(DAY0 + DAY_MS),
                until_ms: Some(DAY0 + 2 * DAY_MS),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(day1.len(), 5);
        assert!(day1.iter().all(|r| r.time_ms / DAY_MS == DAY0 / DAY_MS + 1));
        let late = store
            .query_audit(&AuditFilter {
                result: Some("reject".into()),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(late.len(), 3);
    };
    check(&store);
    drop(store);
    let store = env.open();
    check(&store);
    // New appends go to a new segment after a reopen.
    store
        .append_audit(&audit(DAY0 + 2 * DAY_MS + 1, "carol", "accept"))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(segments(&store).len(), 4);
    assert_eq!(
        store.query_audit(&AuditFilter::default()).unwrap().len(),
        19
    );
}

#[test]
fn trim_audit_removes_whole_day_segments() {
    let env = Env::new();
    let store = env.open();
    for d in 0..4 {
        let batch: Vec<AuditRecord> = (0..1000)
            .map(|i| audit(DAY0 + d * DAY_MS + i, "u", "accept"))
            .collect();
        store.append_audit_batch(&batch).unwrap();
    }
    // Cutoff in the middle of day 2: days 0 and 1 go, day 2 stays whole.
    assert_eq!(store.trim_audit(DAY0 + 2 * DAY_MS + 500).unwrap(), 2000);
    let left = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(left.len(), 2000);
    assert_eq!(left.first().map(|r| r.time_ms), Some(DAY0 + 2 * DAY_MS));
    assert_eq!(segments(&store).len(), 2);
    assert_eq!(store.trim_audit(DAY0 + 2 * DAY_MS + 500).unwrap(), 0);
    // Survives a reopen.
    drop(store);
    let store = env.open();
    assert_eq!(store.query_audit(&AuditFilter::default()).unwrap(), left);
    assert_eq!(store.trim_audit(DAY0 + 4 * DAY_MS).unwrap(), 2000);
    assert!(segments(&store).is_empty());
}

#[test]
fn audit_torn_last_line_is_repaired_at_open() {
    let env = Env::new();
    let store = env.open();
    let recs = [
        audit(DAY0, "alice", "accept"),
        audit(DAY0 + 1, "bob", "reject"),
    ];
    store.append_audit_batch(&recs).unwrap();
    store.flush().unwrap();
    assert_eq!(store.audit_torn_bytes(), 0);
    let path = store.audit_dir().join(&segments(&store)[0]);
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(br#"{"time_ms":1732665600002,"user":"car"#);
    std::fs::write(&path, &bytes).unwrap();

    let store = env.open();
    assert_eq!(store.audit_torn_bytes(), (bytes.len() - whole) as u64);
    assert_eq!(std::fs::read(&path).unwrap().len(), whole);
    assert_eq!(
        unseq(store.query_audit(&AuditFilter::default()).unwrap()),
        recs
    );
    store
        .append_audit(&audit(DAY0 + 2, "carol", "accept"))
        .unwrap();
    assert_eq!(store.query_audit(&AuditFilter::default()).unwrap().len(), 3);
}

#[test]
fn concurrent_audit_appends_keep_every_record() {
    let env = Env::new();
    let store = env.open();
    let threads = 8;
    let per = 500;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..per {
                    let rec = audit(DAY0 + i, &format!("t{t}-{i}"), "accept");
                    if i % 2 == 0 {
                        store.append_audit(&rec).unwrap();
                    } else {
                        store
                            .append_audit_batch(&[rec.clone(), rec.clone()])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    store.flush().unwrap();
    drop(store);
    let store = env.open();
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    let per_thread = (per + per / 2) as usize;
    assert_eq!(recs.len(), threads * per_thread);
    let mut counts = std::collections::HashMap::new();
    for r in &recs {
        *counts.entry(r.user.clone()).or_insert(0u32) += 1;
    }
    for t in 0..threads {
        for i in 0..per {
            let want = if i % 2 == 0 { 1 } else { 2 };
            assert_eq!(counts.get(&format!("t{t}-{i}")), Some(&want), "t{t}-{i}");
        }
    }
    assert!(recs.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
}

/// Append cost of the audit journal, release mode:
/// `cargo test -p radmfa-store --release --test store -- --ignored --nocapture audit_append_cost`
#[test]
#[ignore = "measurement; run in release mode with --nocapture"]
fn audit_append_cost() {
    let env = Env::new();
    let store = env.open();
    let rec = |i: u64| AuditRecord {
        time_ms: DAY0 + i / 100,
        user: format!("user{:06}@example.com", i % 100_000),
        mode: "pap+totp".into(),
        result: if i % 10 == 0 { "reject" } else { "accept" }.into(),
        reason: if i % 10 == 0 {
            "wrong code".into()
        } else {
            String::new()
        },
        server_name: "radmfa-node-a".into(),
        server_ip: "192.0.2.10".into(),
        client_name: "vpn-concentrator".into(),
        client_ip: "192.0.2.1".into(),
        calling_station: "198.51.100.77".into(),
        ..AuditRecord::default()
    };
    let n = 1_000_000u64;
    let recs: Vec<AuditRecord> = (0..n).map(rec).collect();
    for batch_len in [100usize, 1024] {
        let start = std::time::Instant::now();
        for batch in recs.chunks(batch_len) {
            store.append_audit_batch(batch).unwrap();
        }
        let per = start.elapsed().as_nanos() as f64 / n as f64;
        println!("append_audit_batch ({batch_len}/batch): {per:.0} ns/record");
    }
    let single = 200_000usize;
    let singles: Vec<AuditRecord> = (0..single as u64).map(|i| rec(i + n)).collect();
    let start = std::time::Instant::now();
    for r in &singles {
        store.append_audit(r).unwrap();
    }
    let per = start.elapsed().as_nanos() as f64 / single as f64;
    println!("append_audit (single): {per:.0} ns/record");
    let start = std::time::Instant::now();
    store.flush().unwrap();
    println!("flush: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let last = store
        .query_audit(&AuditFilter {
            limit: Some(100),
            ..AuditFilter::default()
        })
        .unwrap();
    println!("query_audit newest 100: {:?}", start.elapsed());
    assert_eq!(last.len(), 100);
    let start = std::time::Instant::now();
    let found = store
        .query_audit(&AuditFilter {
            user: Some("user000042@example.com".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    println!(
        "query_audit one user over {} records: {:?}",
        2 * n + single as u64,
        start.elapsed()
    );
    assert_eq!(found.len(), 2 * 10 + 2);
    assert_eq!(last.last(), singles.last());
    drop(store);
    let start = std::time::Instant::now();
    let store = env.open();
    println!("reopen: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let again = store
        .query_audit(&AuditFilter {
            limit: Some(100),
            ..AuditFilter::default()
        })
        .unwrap();
    println!("query_audit newest 100 after reopen: {:?}", start.elapsed());
    assert_eq!(again, last);
}

#[test]
fn delete_user_cascades() {
    let env = Env::new();
    let store = env.open();
    store.add_user(&User::new("alice")).unwrap();
    store.add_user(&User::new("bob")).unwrap();
    store
        .put_token("alice", &token(b"alice-seed-0123456789"))
        .unwrap();
    store
        .put_token("bob", &token(b"bob-seed-0123456789xx"))
        .unwrap();
    assert!(store.advance_otp_state("alice", 42).unwrap());
    assert!(store.advance_otp_state("bob", 42).unwrap());

    store.delete_user("alice").unwrap();
    assert_eq!(store.get_user("alice").unwrap(), None);
    assert_eq!(store.get_token("alice").unwrap(), None);
    assert_eq!(store.otp_state("alice").unwrap(), None);
    // Bob untouched.
    assert!(store.get_token("bob").unwrap().is_some());
    assert_eq!(store.otp_state("bob").unwrap(), Some(42));

    // A re-created alice starts clean.
    store.add_user(&User::new("alice")).unwrap();
    assert_eq!(store.get_token("alice").unwrap(), None);
    assert!(store.advance_otp_state("alice", 1).unwrap());
}

#[test]
fn admin_writes_survive_reopen() {
    let env = Env::new();
    {
        let store = env.open();
        store.add_user(&User::new("alice")).unwrap();
        store
            .put_token("alice", &token(b"alice-seed-0123456789"))
            .unwrap();
        store.add_client(&client("vpn", "10.0.0.0/8")).unwrap();
    }
    let store = env.open();
    assert!(store.get_user("alice").unwrap().is_some());
    assert_eq!(
        store.get_token("alice").unwrap(),
        Some(token(b"alice-seed-0123456789"))
    );
    assert_eq!(
        store.list_clients().unwrap(),
        vec![client("vpn", "10.0.0.0/8")]
    );
    assert_eq!(store.user_count(), 1);
}

const CHILD_ENV: &str = "RADMFA_STORE_TEST_CHILD_DIR";

/// Runs only as the child of `admin_write_is_durable_without_clean_shutdown`:
/// writes, then aborts without dropping the store (no flush on drop).
#[test]
#[ignore = "helper run as a child process by admin_write_is_durable_without_clean_shutdown"]
fn durability_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let opts = StoreOptions {
        flush_every_ms: None,
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.join("db"), &dir.join("store.key"), &opts).unwrap();
    store.add_user(&User::new("durable")).unwrap();
    store
        .add_client(&client("durable-nas", "192.0.2.0/24"))
        .unwrap();
    // Audit records are durable after flush(), without a clean shutdown.
    let recs: Vec<AuditRecord> = (0..300)
        .map(|i| audit(1_732_665_600_000 + i, &format!("durable-{i}"), "accept"))
        .collect();
    store.append_audit_batch(&recs).unwrap();
    store
        .append_audit(&audit(1_732_665_600_300, "durable-last", "reject"))
        .unwrap();
    store.flush().unwrap();
    std::process::abort();
}

#[test]
fn admin_write_is_durable_without_clean_shutdown() {
    let env = Env::new();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted");
    let store = env.open();
    assert!(store.get_user("durable").unwrap().is_some());
    assert_eq!(store.list_clients().unwrap().len(), 1);
    let recs = store.query_audit(&AuditFilter::default()).unwrap();
    assert_eq!(recs.len(), 301);
    assert_eq!(recs[0].user, "durable-0");
    assert_eq!(recs[300].user, "durable-last");
    assert_eq!(store.audit_torn_bytes(), 0);
}

#[test]
fn second_open_is_locked() {
    let env = Env::new();
    let store = env.open();
    match Store::open(&env.db(), &env.key(), &StoreOptions::default()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, env.db()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(store);
    // Released on drop.
    env.open();
}

#[cfg(unix)]
#[test]
fn key_file_created_0600_as_hex() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    drop(env.open());
    let meta = std::fs::metadata(env.key()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(env.key()).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    assert!(text.trim_end().chars().all(|c| c.is_ascii_hexdigit()));
    // Reopening reads the same key.
    drop(env.open());
    assert_eq!(std::fs::read_to_string(env.key()).unwrap(), text);
}

#[test]
fn key_file_errors() {
    let env = Env::new();
    // Wrong size names the file.
    std::fs::write(env.key(), [1u8; 16]).unwrap();
    match Store::open(&env.db(), &env.key(), &StoreOptions::default()) {
        Err(e @ StoreError::KeyFile { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("store.key"), "{msg}");
            assert!(msg.contains("16 bytes"), "{msg}");
        }
        other => panic!("expected KeyFile, got {other:?}"),
    }
    // Missing and not allowed to create.
    std::fs::remove_file(env.key()).unwrap();
    let no_create = StoreOptions {
        create_key_if_missing: false,
        ..StoreOptions::default()
    };
    assert!(matches!(
        Store::open(&env.db(), &env.key(), &no_create),
        Err(StoreError::KeyFile { .. })
    ));
    assert!(!env.key().exists());
    // Inside the database directory: refused.
    let inside = env.db().join("key");
    assert!(matches!(
        Store::open(&env.db(), &inside, &StoreOptions::default()),
        Err(StoreError::KeyFile { .. })
    ));
    assert!(!inside.exists());
    // Raw 32-byte key accepted (owner-only, not trivial).
    write_key(&env.key(), &other_key(), 0o600);
    let store = env.open();
    store.add_user(&User::new("alice")).unwrap();
    store
        .put_token("alice", &token(b"alice-seed-0123456789"))
        .unwrap();
    drop(store);
    // Lost key with sealed seeds in the database: no silent new key.
    std::fs::remove_file(env.key()).unwrap();
    assert!(matches!(
        Store::open(&env.db(), &env.key(), &StoreOptions::default()),
        Err(StoreError::KeyFile { .. })
    ));
    assert!(!env.key().exists());
}

#[test]
fn debug_output_hides_secrets() {
    let env = Env::new();
    let store = env.open();
    let mut user = User::new("alice");
    user.password_hash = Some("$argon2id$v=19$m=64,t=1,p=1$U0FMVFNBTFQ$SEFTSEhBU0g".into());
    let c = client("vpn", "10.0.0.0/8");
    let t = token(b"TOKEN-SEED-BYTES");
    let s = Secret::new(b"PLAIN-SECRET".to_vec());
    let dbg = format!("{user:?} {c:?} {t:?} {s:?} {store:?}");
    for secret in [
        "argon2id",
        "SEFTSEhBU0g",
        "secret-of-vpn",
        "TOKEN-SEED",
        "PLAIN-SECRET",
    ] {
        assert!(!dbg.contains(secret), "{secret} leaked: {dbg}");
    }
    // Byte-array form of the seed is not printed either.
    assert!(
        !dbg.contains(&format!("{:?}", b"TOKEN-SEED-BYTES".to_vec())),
        "{dbg}"
    );
    assert!(dbg.contains("***"));
    assert!(dbg.contains("alice") && dbg.contains("vpn"));
}

#[test]
fn put_users_bulk_in_one_transaction() {
    let env = Env::new();
    let store = env.open();
    let mut existing = User::new("alice");
    existing.email = "old@example.org".into();
    store.add_user(&existing).unwrap();
    assert!(store.advance_otp_state("alice", 42).unwrap());
    let created = store.get_user("alice").unwrap().unwrap().created;

    let mut alice = User::new("alice");
    alice.email = "new@example.org".into();
    let items = vec![
        (alice, Some(token(b"alice-seed-0123456789"))),
        (User::new("bob"), Some(token(b"bob-seed-0123456789"))),
        (User::new("carol"), None),
    ];
    assert_eq!(store.put_users(&items).unwrap(), 2, "bob and carol are new");
    assert_eq!(store.user_count(), 3);
    let a = store.get_user("alice").unwrap().unwrap();
    assert_eq!(a.email, "new@example.org");
    assert_eq!(a.created, created, "created is kept");
    assert_eq!(
        store.get_token("bob").unwrap().unwrap().secret.expose(),
        b"bob-seed-0123456789"
    );
    assert_eq!(store.get_token("carol").unwrap(), None);
    assert_eq!(
        store.otp_state("alice").unwrap(),
        None,
        "new token resets replay state"
    );

    // An invalid row rejects the whole batch.
    let bad = vec![(User::new("dave"), None), (User::new(""), None)];
    assert!(store.put_users(&bad).is_err());
    assert_eq!(store.get_user("dave").unwrap(), None);
}

#[test]
fn pin_is_sealed_bound_to_its_user_and_validated() {
    let env = Env::new();
    let store = env.open();
    store.add_user(&User::new("alice-pin-user")).unwrap();
    store.add_user(&User::new("mallory")).unwrap();
    assert_eq!(
        store
            .open_pin(&store.get_user("alice-pin-user").unwrap().unwrap())
            .unwrap(),
        None
    );

    for bad in [&b"123"[..], b"12345678901", b"12a4", b""] {
        assert!(matches!(
            store.set_pin("alice-pin-user", Some(bad)),
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store.set_pin("nobody", Some(b"1234")),
        Err(StoreError::NotFound { .. })
    ));

    store.set_pin("alice-pin-user", Some(b"90817263")).unwrap();
    let alice = store.get_user("alice-pin-user").unwrap().unwrap();
    assert_eq!(
        store.open_pin(&alice).unwrap().unwrap().expose(),
        b"90817263"
    );
    assert_eq!(format!("{:?}", alice.pin), "Some(***)");
    assert!(!format!("{alice:?}").contains("90817263"));

    // Another user's sealed PIN does not open under their name.
    let mut mallory = store.get_user("mallory").unwrap().unwrap();
    mallory.pin = alice.pin.clone();
    assert!(matches!(store.open_pin(&mallory), Err(StoreError::Crypto)));

    // Admin edits of other fields keep the PIN; clearing returns to standard mode.
    store.set_user_enabled("alice-pin-user", false).unwrap();
    let alice = store.get_user("alice-pin-user").unwrap().unwrap();
    assert!(store.open_pin(&alice).unwrap().is_some());
    store.set_pin("alice-pin-user", None).unwrap();
    let alice = store.get_user("alice-pin-user").unwrap().unwrap();
    assert_eq!(store.open_pin(&alice).unwrap(), None);

    // Not in the files in clear.
    store.set_pin("alice-pin-user", Some(b"55501234")).unwrap();
    store.flush().unwrap();
    drop(store);
    assert!(dir_contains(&env.db(), b"alice-pin-user"));
    assert!(!dir_contains(&env.db(), b"55501234"));
}
