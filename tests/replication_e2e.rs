//! Replication between real `radmfa` processes on loopback (DESIGN.md §6):
//! one primary, two replicas over the peer link (mutual TLS), writes
//! forwarded from a replica to the primary, kill -9 of the primary under an
//! authentication load, promotion, fencing of the old primary, convergence;
//! and a crash during a write burst.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_tcp_port, login, ConfigOptions, Env, PASSWORD};
use serde_json::Value;

const SEED_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// A three-node (or smaller) cluster sharing certificates, the cluster key
/// and the seed key file.
struct Cluster {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let c = certs.to_str().expect("utf-8");
        // `cluster init`: the CA, one certificate per node, the cluster key.
        common::run_radmfa(
            &["cluster", "init", "--dir", c, "--nodes", &n.to_string()],
            None,
            dir.path(),
        )
        .assert_ok();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("cluster.key"))
            .expect("cluster.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "cluster.key mode {mode:o}");
        // It never overwrites an existing cluster.
        let again = common::run_radmfa(&["cluster", "init", "--dir", c], None, dir.path());
        assert_ne!(again.code(), 0);
        let ports = (0..n).map(|_| free_tcp_port()).collect();
        Cluster { dir, ports }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment of node `id` (1-based) starting as `role`.
    fn node(&self, id: usize, role: &str) -> Env {
        let certs = self.path().join("certs");
        let q = |p: PathBuf| format!("{:?}", p.display().to_string());
        let mut extra = format!(
            "[cluster]\nlisten = \"127.0.0.1:{port}\"\nca = {ca}\ncert = {cert}\nkey = {key}\nrole = \"{role}\"\n",
            port = self.ports[id - 1],
            ca = q(certs.join("ca.pem")),
            cert = q(certs.join(format!("node-{id}.pem"))),
            key = q(certs.join(format!("node-{id}.key"))),
        );
        for (i, port) in self.ports.iter().enumerate() {
            if i + 1 != id {
                extra.push_str(&format!(
                    "\n[[cluster.peer]]\nnode_id = {}\naddress = \"127.0.0.1:{port}\"\n",
                    i + 1
                ));
            }
        }
        let env = Env::with_options(ConfigOptions {
            extra,
            ..ConfigOptions::default()
        });
        let text = std::fs::read_to_string(env.config_path()).expect("config");
        let text = text
            .replace(
                "node_id = 7\n",
                &format!(
                    "node_id = {id}\nkey_file = {}\n",
                    q(self.path().join("seed.key"))
                ),
            )
            .replace(
                "node_name = \"e2e-node\"",
                &format!("node_name = \"node-{id}\""),
            )
            .replace(
                "[challenge]\n",
                &format!(
                    "[challenge]\ncluster_key_file = {}\n",
                    q(self.path().join("certs").join("cluster.key"))
                ),
            )
            .replace(
                "unenrolled = \"reject\"\n",
                "unenrolled = \"reject\"\nmfa_bypass_groups = [\"nomfa\"]\n",
            );
        std::fs::write(env.config_path(), text).expect("config");
        env.radmfa(&["check-config"]).assert_ok();
        env
    }
}

#[track_caller]
fn status(env: &Env) -> Value {
    let out = env.radmfa(&["status", "--json"]);
    out.assert_ok();
    out.json()
}

/// Polls `cond` on node `env`'s status until it holds.
#[track_caller]
fn wait_status(env: &Env, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = status(env);
        if cond(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sorted user names (through the running server, or the store when none).
fn user_names(env: &Env) -> Vec<String> {
    let out = env.radmfa(&["user", "list", "--json"]);
    out.assert_ok();
    let mut names: Vec<String> = out
        .json()
        .as_array()
        .expect("user list is an array")
        .iter()
        .map(|u| u["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

/// Full dump of users as the CLI shows them (no secrets), keyed by name.
fn dump(env: &Env) -> Vec<Value> {
    let out = env.radmfa(&["user", "list", "--json"]);
    out.assert_ok();
    let mut users: Vec<Value> = out.json().as_array().expect("array").clone();
    users.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    users
}

#[track_caller]
fn wait_user(env: &Env, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !user_names(env).iter().any(|n| n == name) {
        assert!(
            Instant::now() < deadline,
            "user {name} never replicated to {}",
            env.config_path().display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The load signs users in hundreds of times a second: above the per-user
/// rate limit, which these tests are not about.
fn no_user_limit(nodes: &[&Env]) {
    for n in nodes {
        let mut text = std::fs::read_to_string(n.config_path()).expect("config");
        text.push_str("\n[limits]\nuser_per_minute = 0\n");
        std::fs::write(n.config_path(), text).expect("config");
    }
}

/// Users load0..load9 with a password, in the group that bypasses the
/// second factor, and `extra` options.
fn add_load_users(env: &Env, extra: &[&str]) {
    for i in 0..10 {
        let name = format!("load{i}");
        let mut args = vec![
            "user",
            "add",
            &name,
            "--password",
            PASSWORD,
            "--group",
            "nomfa",
        ];
        args.extend_from_slice(extra);
        env.radmfa(&args).assert_ok();
    }
}

fn accepted(addr: &str, user: &str, password: &str) -> bool {
    login(addr, user, password, None).code.as_deref() == Some("Access-Accept")
}

#[test]
fn primary_and_two_replicas_fail_over_and_fence_the_old_primary() {
    let cluster = Cluster::new(3);
    let n1 = cluster.node(1, "primary");
    let n2 = cluster.node(2, "replica");
    let n3 = cluster.node(3, "replica");
    no_user_limit(&[&n1, &n2, &n3]);

    // Data on the primary before anything runs: a TOTP user and password
    // users that bypass the second factor (the authentication load).
    let secret = n1.add_totp_user("alice", SEED_B32);
    add_load_users(&n1, &[]);
    // A replica's store refuses writes even offline, with the reason, and
    // keeps nothing of them.
    let refused = n2.radmfa(&["user", "add", "early", "--password", PASSWORD]);
    assert_ne!(refused.code(), 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("read-only"), "{}", refused.stderr);
    assert!(!user_names(&n2).contains(&"early".to_string()));

    let s1 = n1.start();
    let s2 = n2.start();
    let s3 = n3.start();
    let st1 = status(&n1);
    assert_eq!(st1["role"], "primary", "{st1}");
    let want = st1["last_seq"].as_u64().expect("last_seq");
    assert!(want >= 12, "{st1}");
    for n in [&n2, &n3] {
        wait_status(n, "replica caught up", |s| {
            s["role"] == "replica" && s["primary"] == 1 && s["last_seq"].as_u64() >= Some(want)
        });
    }
    // The primary sees both replicas with no lag.
    wait_status(&n1, "replicas acknowledged", |s| {
        let r = s["replicas"].as_array().cloned().unwrap_or_default();
        r.len() == 2 && r.iter().all(|r| r["lag_entries"] == 0)
    });

    // The replicated user signs in on both replicas (second factor from the
    // replicated, sealed seed). A code used on one replica is refused on the
    // other: consumed steps go to the primary, which logs them for all.
    // The current step and the next one (both inside the drift window for
    // the rest of this block, whenever a 30 s boundary falls).
    let step = common::unix_now() / common::PERIOD;
    let code = common::totp_at(&secret, step * common::PERIOD);
    let next = common::totp_at(&secret, (step + 1) * common::PERIOD);
    let logged = status(&n1)["last_seq"].as_u64().expect("last_seq");
    assert!(accepted(
        &s2.addr_string(),
        "alice",
        &format!("{PASSWORD}{code}")
    ));
    // The step travels node 2 -> primary (logged) -> node 3: wait for the
    // primary's log to grow and node 3 to apply it, not for a time.
    let st1 = wait_status(&n1, "the used step logged on the primary", |s| {
        s["last_seq"].as_u64() > Some(logged)
    });
    let want = st1["last_seq"].as_u64().expect("last_seq");
    wait_status(&n3, "node 3 applied the used step", |s| {
        s["last_seq"].as_u64() >= Some(want)
    });
    let r = login(
        &s3.addr_string(),
        "alice",
        &format!("{PASSWORD}{code}"),
        None,
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "a code used on node 2 was accepted on node 3: {}",
        r.output
    );
    assert!(s3.log().contains("reason=otp_replayed"), "{}", s3.log());
    assert!(accepted(
        &s3.addr_string(),
        "alice",
        &format!("{PASSWORD}{next}")
    ));

    // A write on the primary while serving reaches the replicas.
    n1.add_user("bob", PASSWORD);
    wait_user(&n2, "bob");
    wait_user(&n3, "bob");
    // A write on a replica is forwarded to the primary and visible on the
    // replica when the command returns (read your writes).
    n2.add_user("carol", PASSWORD);
    assert!(user_names(&n2).contains(&"carol".to_string()));
    assert!(user_names(&n1).contains(&"carol".to_string()));
    wait_user(&n3, "carol");
    assert!(s2.log().contains("admin write forwarded to the primary"));

    // Authentication load on both replicas; kill -9 the primary meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for (t, addr) in [s2.addr_string(), s3.addr_string()].into_iter().enumerate() {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.push(std::thread::spawn(move || {
            let mut i = t;
            while !stop.load(Ordering::SeqCst) {
                let user = format!("load{}", i % 10);
                if accepted(&addr, &user, PASSWORD) {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                i += 2;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(700));
    let before_kill = ok.load(Ordering::SeqCst);
    s1.signal("KILL");
    drop(s1);
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().expect("load thread");
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(
        ok > before_kill + 10,
        "few logins after the kill: {ok} total, {before_kill} before"
    );
    assert_eq!(
        failed, 0,
        "failed authentications on replicas ({ok} accepted)"
    );

    // The replicas notice, and refuse admin writes with the reason.
    wait_status(&n2, "primary unreachable", |s| {
        s["primary_unreachable_since"].is_string()
    });
    let refused = n2.radmfa(&["user", "add", "dave", "--password", PASSWORD]);
    assert_ne!(refused.code(), 0);
    assert!(
        refused
            .stderr
            .contains("read-only: primary node 1 (127.0.0.1:")
            && refused.stderr.contains("unreachable since"),
        "{}",
        refused.stderr
    );
    // The old primary, still down, takes a write in its own data directory
    // (it does not know it is about to be replaced): fenced later.
    n1.add_user("mallory", PASSWORD);

    // Promote node 2; node 3 follows it; writes work again.
    let promoted_ms = common::unix_now() * 1000;
    let promoted = n2.radmfa(&["promote"]);
    promoted.assert_ok();
    assert!(
        promoted.stdout.contains("now the primary at epoch 2"),
        "{}",
        promoted.stdout
    );
    wait_status(&n3, "node 3 follows node 2", |s| {
        s["primary"] == 2 && s["epoch"] == 2 && s["primary_unreachable_since"].is_null()
    });
    n3.add_user("dave", PASSWORD);
    wait_user(&n2, "dave");

    // The old primary returns, steps down at the higher epoch, re-syncs, and
    // its write made after the promotion is gone everywhere.
    let s1 = n1.start();
    wait_status(&n1, "old primary steps down", |s| {
        s["role"] == "replica" && s["primary"] == 2 && s["epoch"] == 2
    });
    wait_user(&n1, "dave");
    let deadline = Instant::now() + Duration::from_secs(10);
    while user_names(&n1).contains(&"mallory".to_string()) {
        assert!(Instant::now() < deadline, "fenced write still on node 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = user_names(&n2);
    assert!(!names.contains(&"mallory".to_string()), "{names:?}");
    for u in ["alice", "bob", "carol", "dave"] {
        assert!(names.contains(&u.to_string()), "{u} missing: {names:?}");
    }
    // All three converge: identical dumps.
    let d2 = dump(&n2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (d1, d3) = (dump(&n1), dump(&n3));
        if d1 == d2 && d3 == d2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dumps differ:\n{d1:?}\n{d2:?}\n{d3:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The returned node authenticates from its re-synced copy: a bypass user
    // signs in; dave (replicated, no second factor, not in the bypass
    // group) is refused as not enrolled, not accepted on his password alone.
    assert!(accepted(&s1.addr_string(), "load3", PASSWORD));
    let r = login(&s1.addr_string(), "dave", PASSWORD, None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let recs = n1.wait_report_len(&["--user", "dave"], 1);
    assert_eq!(recs[0]["reason"], "not_enrolled", "{recs:?}");
    let st2 = status(&n2);
    assert_eq!(st2["role"], "primary");
    assert_eq!(st2["replicas"].as_array().map(Vec::len), Some(2), "{st2}");

    // Audit after the promotion: records go to the new primary. Node 3
    // sends it its whole journal (node 2 never held it), the returned old
    // primary its sign-ins; each record once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recs = sign_ins(&n2, &[]);
        let from = |node: &str, before: bool| {
            recs.iter()
                .filter(|[_, n, _, t]| {
                    n == node && (t.parse::<u64>().unwrap_or(0) < promoted_ms) == before
                })
                .count()
        };
        let mut ids: Vec<(&String, &String)> = recs.iter().map(|[_, n, seq, _]| (n, seq)).collect();
        ids.sort();
        let total = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), total, "a record stored twice on the new primary");
        // Node 3's own journal (its sign-ins, read from its files).
        let own3 = own_sign_ins(&n3);
        let on2 = from("node-3", true) + from("node-3", false);
        if on2 == own3 && from("node-3", true) > 0 && from("node-1", false) >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new primary lacks records: node-3 {on2} of {own3} ({} before the promotion), node-1 after its return {}",
            from("node-3", true),
            from("node-1", false)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st3 = status(&n3);
    assert_eq!(st3["audit_shipping"]["target"], 2, "{st3}");
    drop((s2, s3, s1));
}

#[test]
fn kill_9_during_a_write_burst_loses_no_acknowledged_write() {
    let cluster = Cluster::new(2);
    let n1 = cluster.node(1, "primary");
    let n2 = cluster.node(2, "replica");
    n1.add_user("seed-user", PASSWORD);
    let s1 = n1.start();
    let _s2 = n2.start();
    wait_user(&n2, "seed-user");

    // Writes through the running primary; each acknowledged one is recorded.
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let config = n1.config_path().to_path_buf();
    let cwd = n1.path().to_path_buf();
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("burst{i}");
                let out = common::run_radmfa(
                    &[
                        "--config",
                        config.to_str().expect("utf-8"),
                        "user",
                        "add",
                        &name,
                        "--password",
                        PASSWORD,
                    ],
                    None,
                    &cwd,
                );
                if out.code() == 0 {
                    acked.lock().expect("lock").push(name);
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    s1.signal("KILL");
    drop(s1);
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 5,
        "too few writes before the kill: {}",
        acked.len()
    );

    // The replica holds a prefix of the primary's log: nothing it has is
    // unknown to the primary after restart.
    let on_replica = user_names(&n2);
    let s1 = n1.start();
    let names = user_names(&n1);
    for name in &acked {
        assert!(names.contains(name), "acknowledged write {name} lost");
    }
    for name in &on_replica {
        assert!(
            names.contains(name),
            "replica has {name}, the primary does not"
        );
    }
    let st = status(&n1);
    assert_eq!(st["role"], "primary", "{st}");
    // The changelog is consistent: the replica catches up to exactly the
    // primary's position and the same users.
    let want = st["last_seq"].as_u64().expect("seq");
    wait_status(&n2, "replica caught up after the restart", |s| {
        s["last_seq"].as_u64() == Some(want) && s["primary"] == 1
    });
    assert_eq!(user_names(&n2), names);
    drop(s1);
}

/// Nodes 1 (primary), 2 and 3 of `cluster`, the primary holding TOTP user
/// `lou`, and lou's seed.
fn lou_on_three_nodes(cluster: &Cluster) -> (Env, Env, Env, Vec<u8>) {
    let n1 = cluster.node(1, "primary");
    let n2 = cluster.node(2, "replica");
    let n3 = cluster.node(3, "replica");
    let secret = n1.add_totp_user("lou", SEED_B32);
    (n1, n2, n3, secret)
}

/// A lockout made on a replica is written through the primary, so it holds on
/// every node; an unlock on any other node lifts it everywhere.
#[test]
fn a_lock_made_on_a_replica_holds_on_every_node_until_one_unlock() {
    let cluster = Cluster::new(3);
    let (n1, n2, n3, secret) = lou_on_three_nodes(&cluster);
    let _s1 = n1.start();
    let s2 = n2.start();
    let s3 = n3.start();
    wait_user(&n2, "lou");
    wait_user(&n3, "lou");

    // Ten wrong codes on replica 2 ([limits] defaults: 10 in 10 minutes).
    let wrong = common::wrong_code(&secret);
    for i in 1..=10 {
        let r = login(
            &s2.addr_string(),
            "lou",
            &format!("{PASSWORD}{wrong}"),
            None,
        );
        assert_eq!(
            r.code.as_deref(),
            Some("Access-Reject"),
            "attempt {i}: {}",
            r.output
        );
    }
    assert!(s2.log().contains("otp_mismatch+locked_out"), "{}", s2.log());
    // Written on the primary and replicated to replica 3.
    for n in [&n1, &n3] {
        wait_locked(n, "lou");
    }
    // Replica 3 refuses even the right code (not checked, so not consumed).
    let code = common::totp_now(&secret);
    assert!(!accepted(
        &s3.addr_string(),
        "lou",
        &format!("{PASSWORD}{code}")
    ));
    assert!(s3.log().contains("reason=locked_out"), "{}", s3.log());

    // Unlocked on replica 3 (forwarded to the primary): replica 2, which made
    // the lock, accepts again.
    let out = n3.radmfa(&["user", "unlock", "lou"]);
    out.assert_ok();
    assert!(
        out.stdout.contains("was locked: too_many_failures"),
        "{}",
        out.stdout
    );
    wait_shown(&n2, "lou", "the unlock", |shown| shown["locked_until"] == 0);
    assert!(accepted(
        &s2.addr_string(),
        "lou",
        &format!("{PASSWORD}{code}")
    ));
}

/// Polls `radmfa user show USER --json` on node `env` until `cond` holds.
#[track_caller]
fn wait_shown(env: &Env, user: &str, what: &str, cond: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = env.radmfa(&["user", "show", user, "--json"]).json();
        if cond(&shown) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never reached {}: {shown}",
            env.config_path().display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls until `user` is locked (`too_many_failures`) in node `env`'s copy.
#[track_caller]
fn wait_locked(env: &Env, user: &str) {
    wait_shown(env, user, "the lock", |shown| {
        shown["lock_reason"] == "too_many_failures"
            && shown["locked_until"].as_u64() > Some(common::unix_now())
    });
}

/// The reason of `user`'s last audit record on node `env`.
fn last_reason(env: &Env, user: &str) -> String {
    let out = env.radmfa(&["report", "--user", user, "--json"]);
    out.assert_ok();
    let recs = out.json();
    recs.as_array()
        .and_then(|a| a.last())
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Lockout across nodes: ten wrong codes spread over three nodes (four on
/// the primary, three on each replica: fewer than `lockout_failures` on
/// any one node) lock the user on all of them, counted on the primary.
#[test]
fn ten_wrong_codes_spread_over_three_nodes_lock_the_user_on_all_of_them() {
    let cluster = Cluster::new(3);
    let (n1, n2, n3, secret) = lou_on_three_nodes(&cluster);
    let servers = [n1.start(), n2.start(), n3.start()];
    let envs = [&n1, &n2, &n3];
    wait_user(&n2, "lou");
    wait_user(&n3, "lou");

    let wrong = common::wrong_code(&secret);
    for i in 0..10 {
        let s = &servers[i % 3];
        let r = login(&s.addr_string(), "lou", &format!("{PASSWORD}{wrong}"), None);
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        let locked = r
            .text("Reply-Message")
            .unwrap_or_default()
            .contains("locked");
        assert_eq!(
            locked,
            i == 9,
            "attempt {} on node {}: {}",
            i + 1,
            i % 3 + 1,
            r.output
        );
    }
    // The tenth (on node 1) started the lock; every node has it and refuses
    // the right code without checking it.
    assert_eq!(last_reason(&n1, "lou"), "otp_mismatch+locked_out");
    let code = common::totp_now(&secret);
    for (n, s) in envs.iter().zip(&servers) {
        wait_locked(n, "lou");
        assert!(!accepted(
            &s.addr_string(),
            "lou",
            &format!("{PASSWORD}{code}")
        ));
        assert_eq!(last_reason(n, "lou"), "locked_out");
    }

    // An Accept on a replica resets the count on the primary: after an
    // unlock, nine wrong codes, an Accept on node 3, nine more: no lock.
    n2.radmfa(&["user", "unlock", "lou"]).assert_ok();
    for n in envs {
        wait_shown(n, "lou", "the unlock", |shown| shown["locked_until"] == 0);
    }
    let fail = |i: usize| {
        let r = login(
            &servers[i % 3].addr_string(),
            "lou",
            &format!("{PASSWORD}{wrong}"),
            None,
        );
        assert!(
            !r.text("Reply-Message")
                .unwrap_or_default()
                .contains("locked"),
            "{}",
            r.output
        );
    };
    (0..9).for_each(fail);
    // The next step's code (the current one was refused, not consumed, but
    // a fresh one avoids any replay question).
    let step = common::unix_now() / common::PERIOD;
    let fresh = common::totp_at(&secret, (step + 1) * common::PERIOD);
    assert!(accepted(
        &servers[2].addr_string(),
        "lou",
        &format!("{PASSWORD}{fresh}")
    ));
    // A replica gathers Accepts for 100 ms before it sends them (and sends
    // a pending one ahead of its own next failure); the next failure here
    // is on the primary itself, so give the batch time to arrive.
    std::thread::sleep(Duration::from_millis(600));
    (0..9).for_each(fail);
    let shown = n1.radmfa(&["user", "show", "lou", "--json"]).json();
    assert_eq!(shown["locked_until"], 0, "{shown}");
}

/// With the primary down, a replica counts failures itself (WARN once with
/// the remedy) and still locks after `lockout_failures`; once the primary is
/// back, counting is cluster-wide again (INFO once).
#[test]
fn with_the_primary_down_replicas_count_lockout_failures_locally() {
    let cluster = Cluster::new(3);
    let (n1, n2, n3, secret) = lou_on_three_nodes(&cluster);
    n1.add_totp_user("max", SEED_B32);
    let s1 = n1.start();
    let s2 = n2.start();
    let _s3 = n3.start();
    wait_user(&n2, "lou");
    wait_user(&n2, "max");
    let (status1, _) = s1.terminate();
    assert!(status1.success());
    wait_status(&n2, "primary unreachable", |s| {
        s["primary_unreachable_since"].is_string()
    });

    let wrong = common::wrong_code(&secret);
    for i in 1..=10 {
        let r = login(
            &s2.addr_string(),
            "lou",
            &format!("{PASSWORD}{wrong}"),
            None,
        );
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        let locked = r
            .text("Reply-Message")
            .unwrap_or_default()
            .contains("locked");
        assert_eq!(locked, i == 10, "attempt {i}: {}", r.output);
    }
    let code = common::totp_now(&secret);
    assert!(!accepted(
        &s2.addr_string(),
        "lou",
        &format!("{PASSWORD}{code}")
    ));
    assert_eq!(last_reason(&n2, "lou"), "locked_out");
    let log = s2.log();
    let warned = "lockout failures are counted on this node only";
    assert_eq!(log.matches(warned).count(), 1, "{log}");
    assert!(
        log.contains("radmfa status"),
        "the WARN names the remedy: {log}"
    );

    // The primary returns: failures are counted there again (INFO once).
    // The replica's own link to it may still be in its reconnect back-off
    // for a moment (the failure is then counted here): a few tries.
    let _s1 = n1.start();
    wait_status(&n2, "primary reachable", |s| {
        s["primary_unreachable_since"].is_null() && s["primary"] == 1
    });
    let again = "lockout failures are counted on the primary again";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s2.log().contains(again) {
        assert!(Instant::now() < deadline, "{}", s2.log());
        let r = login(
            &s2.addr_string(),
            "max",
            &format!("{PASSWORD}{wrong}"),
            None,
        );
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = login(
        &s2.addr_string(),
        "max",
        &format!("{PASSWORD}{wrong}"),
        None,
    );
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let log = s2.log();
    assert_eq!(log.matches(again).count(), 1, "{log}");
    assert_eq!(log.matches(warned).count(), 1, "{log}");
}

/// A throw-away slapd (tests/ldap/start-slapd.sh); stopped on drop.
struct Slapd {
    dir: PathBuf,
    url: String,
}

impl Slapd {
    fn start(dir: &Path) -> Slapd {
        let dir = dir.join("slapd");
        let port = free_tcp_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldap/start-slapd.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .expect("bash start-slapd.sh");
        assert!(
            out.status.success(),
            "start-slapd.sh (apt-get install slapd ldap-utils): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Slapd {
            dir,
            url: format!("ldap://127.0.0.1:{port}"),
        }
    }

    /// Applies an LDIF change as the directory admin.
    fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &self.url,
                "-D",
                "cn=admin,dc=example,dc=org",
                "-w",
            ])
            .arg("admin-secret")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ldapmodify");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("ldif");
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("slapd.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A directory sync asked of a replica runs on the primary (the request is
/// forwarded, as other writes are), and what it writes, the reason a user is
/// disabled included, reaches the replica; an admin's disable made on the
/// replica survives the sync.
#[test]
fn directory_sync_on_a_replica_is_forwarded_and_keeps_an_admin_disable() {
    let cluster = Cluster::new(2);
    let slapd = Slapd::start(cluster.path());
    let pw = cluster.path().join("ldap.pw");
    std::fs::write(&pw, "svc-secret\n").expect("pw");
    let n1 = cluster.node(1, "primary");
    let n2 = cluster.node(2, "replica");
    for n in [&n1, &n2] {
        let mut text = std::fs::read_to_string(n.config_path()).expect("config");
        text.push_str(&format!(
            "\n[directory]\nkind = \"ldap\"\nservers = [\"{}\"]\nbind_dn = \"cn=radmfa-svc,ou=people,dc=example,dc=org\"\nbind_password_file = {:?}\nbase_dn = \"dc=example,dc=org\"\n\n[[sync]]\nname = \"staff\"\ngroup = \"vpn-users\"\ninterval_secs = 86400\n",
            slapd.url,
            pw.display().to_string(),
        ));
        std::fs::write(n.config_path(), text).expect("config");
        n.radmfa(&["check-config"]).assert_ok();
    }
    n1.add_user("local", PASSWORD);
    let s1 = n1.start();
    let _s2 = n2.start();
    wait_user(&n2, "local");
    // On the replica (the primary's own scheduled run may come first).
    n2.radmfa(&["import-ldap", "--item", "staff"]).assert_ok();
    wait_user(&n2, "alice");
    wait_user(&n2, "carol");
    n2.radmfa(&["user", "disable", "alice"]).assert_ok();

    // carol leaves the set; the sync asked of the replica disables her.
    slapd.modify(
        "dn: cn=vpn-users,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: cn=engineers,ou=groups,dc=example,dc=org\n",
    );
    let run = n2.radmfa(&["import-ldap", "--item", "staff"]);
    run.assert_ok();
    assert!(run.stdout.contains("- carol (disabled)"), "{}", run.stdout);
    for n in [&n2, &n1] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alice = n.radmfa(&["user", "show", "alice", "--json"]).json();
            let carol = n.radmfa(&["user", "show", "carol", "--json"]).json();
            if alice["disabled_reason"] == "admin" && carol["disabled_reason"] == "left_directory" {
                assert_eq!(alice["enabled"], false, "{alice}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {alice} {carol}",
                n.config_path().display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let log = s1.log();
    assert!(
        log.contains("admin request forwarded by a replica")
            && log.contains("AdminRequest(directory_sync)"),
        "{log}"
    );
}

#[test]
fn a_replica_whose_seed_key_is_not_the_primarys_says_so() {
    let cluster = Cluster::new(2);
    let n1 = cluster.node(1, "primary");
    let n2 = cluster.node(2, "replica");
    // Node 2 gets a seed key of its own: well-formed and owner-only, so its
    // own store accepts it, but the primary's seeds do not open under it.
    let own_key = cluster.path().join("node2-seed.key");
    let hex: String = (0u8..32)
        .map(|i| format!("{:02x}", i.wrapping_mul(37) ^ 0x5a))
        .collect();
    std::fs::write(&own_key, format!("{hex}\n")).expect("key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&own_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let text = std::fs::read_to_string(n2.config_path())
        .expect("config")
        .replace(
            &format!(
                "{:?}",
                cluster.path().join("seed.key").display().to_string()
            ),
            &format!("{:?}", own_key.display().to_string()),
        );
    std::fs::write(n2.config_path(), text).expect("config");
    n1.add_totp_user("alice", SEED_B32);

    let _s1 = n1.start();
    let s2 = n2.start();
    let said = "the seed key does not open the token seeds in this store";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s2.log().contains(said) {
        assert!(Instant::now() < deadline, "node 2 log:\n{}", s2.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, log) = s2.terminate();
    assert_eq!(log.matches(said).count(), 1, "once: {log}");
    // After a restart, at start-up.
    let s2 = n2.start();
    assert_eq!(s2.log().matches(said).count(), 1, "{}", s2.log());
}

/// The password of the admin-added user and the client secret used in the
/// audited admin actions: neither may appear in any journal.
const ADMIN_PW: &str = "Adm1n-Pw-never-logged";
const CLIENT_SECRET: &str = "Cl1ent-S3cret-never-logged";

/// Every `*.jsonl` file under `dir` (journals and the cluster inbox).
fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p);
            }
        }
    }
    out
}

/// The sign-ins in `env`'s own journal, read from its segment files.
fn own_sign_ins(env: &Env) -> usize {
    let dir = env.data_dir().join("db.audit");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("journal dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            let text = std::fs::read_to_string(&p).expect("segment");
            n += text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|r| r["client_name"] == "localhost")
                .count();
        }
    }
    n
}

/// The sign-ins `report --csv ARGS` lists on `env`, as (`calling_station`,
/// `server_name`, `seq`, `time_ms`) (CSV: the JSON of hundreds of records
/// would fill the pipe the test harness reads only at the end).
fn sign_ins(env: &Env, args: &[&str]) -> Vec<[String; 4]> {
    let mut full = vec!["report", "--csv", "--client", "localhost"];
    full.extend_from_slice(args);
    let out = env.radmfa(&full);
    out.assert_ok();
    let mut lines = out.stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let cols = [
        col("calling_station"),
        col("server_name"),
        col("seq"),
        col("time_ms"),
    ];
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .map(|f| cols.map(|c| f[c].to_string()))
        .collect()
}

/// The sign-in records of this test's logins (`Calling-Station-Id`
/// `login-I-A`), as (id, node that handled it), from `report` on `env`.
fn login_records(env: &Env, since: &str) -> Vec<(String, String)> {
    sign_ins(env, &["--since", since])
        .into_iter()
        .filter(|[station, ..]| station.starts_with("login-"))
        .map(|[station, node, ..]| (station, node))
        .collect()
}

/// Three nodes behind nginx in round robin, 300 logins through it, a
/// replica killed (SIGKILL) a third of the way and restarted two thirds of
/// the way: `report` on every node lists every answered login exactly once,
/// with the node nginx sent it to; the summary counts what the test sent;
/// admin actions are there with who made them and the outcome, and never
/// a secret; with the primary gone a replica answers from what it holds and
/// says so.
#[test]
fn cluster_audit_reports_every_login_once_with_its_node() {
    if !common::nginx::available() {
        return;
    }
    let cluster = Cluster::new(3);
    let n1 = cluster.node(1, "primary");
    let n2 = cluster.node(2, "replica");
    let n3 = cluster.node(3, "replica");
    no_user_limit(&[&n1, &n2, &n3]);
    let t0 = common::unix_now().to_string();
    add_load_users(&n1, &["--method", "none"]);
    // A TOTP user who never enrolled.
    n1.radmfa(&["user", "add", "noapp", "--password", PASSWORD])
        .assert_ok();

    let s1 = n1.start();
    let s2 = n2.start();
    let mut s3 = n3.start();
    let want = status(&n1)["last_seq"].as_u64().expect("last_seq");
    for n in [&n2, &n3] {
        wait_status(n, "replica caught up", |s| {
            s["last_seq"].as_u64() >= Some(want)
        });
    }
    let listen = common::free_udp_port();
    let upstreams = [s1.addr_string(), s2.addr_string(), s3.addr_string()];
    let _nginx = common::nginx::start(cluster.path(), listen, &upstreams);
    let balancer = format!("127.0.0.1:{listen}");
    let node_of = |upstream: &str| -> String {
        let i = upstreams
            .iter()
            .position(|u| u == upstream)
            .expect("known upstream");
        format!("node-{}", i + 1)
    };

    // Admin actions on three nodes: a forwarded write on a replica, a
    // write on the primary, a failing one.
    n2.radmfa(&["user", "add", "adm1", "--password", ADMIN_PW])
        .assert_ok();
    n1.radmfa(&[
        "client",
        "add",
        "vpn2",
        "--address",
        "10.9.0.0/24",
        "--secret",
        CLIENT_SECRET,
    ])
    .assert_ok();
    assert_ne!(n3.radmfa(&["user", "delete", "nosuch"]).code(), 0);

    // 300 logins; load3 types a wrong password. A login without an answer
    // (sent to the killed node) is tried again under a new id.
    let (mut answered, mut unanswered) = (Vec::new(), Vec::new());
    let (mut accepts, mut rejects) = (0u64, 0u64);
    for i in 0..300usize {
        if i == 100 {
            // The journal is written to its file every 200 ms: what a
            // crash loses locally is not this test's subject.
            std::thread::sleep(Duration::from_millis(300));
            s3.signal("KILL");
        }
        if i == 200 {
            s3 = n3.start();
        }
        let user = format!("load{}", i % 10);
        let password = if i % 10 == 3 {
            "wrong-password"
        } else {
            PASSWORD
        };
        for attempt in 0..4 {
            let id = format!("login-{i}-{attempt}");
            let extra = format!("Calling-Station-Id = \"{id}\"\n");
            let r = common::login_with(&balancer, &user, password, None, &extra);
            let port: Option<u16> = r
                .output
                .lines()
                .find_map(|l| l.split(" from 0.0.0.0:").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            match r.code.as_deref() {
                Some(code) => {
                    assert_eq!(
                        code,
                        if i % 10 == 3 {
                            "Access-Reject"
                        } else {
                            "Access-Accept"
                        },
                        "{}",
                        r.output
                    );
                    if i % 10 == 3 {
                        rejects += 1;
                    } else {
                        accepts += 1;
                    }
                    answered.push((id, port.expect("radclient's source port")));
                    break;
                }
                None => unanswered.push(id),
            }
        }
    }
    assert_eq!(answered.len(), 300, "logins without any answer");

    // Which node nginx sent each answered login to, from its access log.
    let sessions = common::nginx::sessions(cluster.path());
    let mut from = 0;
    let mut expected = std::collections::BTreeMap::new();
    for (id, port) in &answered {
        let k = sessions[from..]
            .iter()
            .position(|(p, _)| p == port)
            .unwrap_or_else(|| panic!("no nginx session for {id} (port {port})"));
        expected.insert(id.clone(), node_of(&sessions[from + k].1));
        from += k + 1;
    }
    let handled_by_3 = expected.values().filter(|n| *n == "node-3").count();
    assert!(handled_by_3 > 30, "node 3 handled {handled_by_3} logins");

    // Every node's report: each answered login once, with its node; an
    // unanswered attempt at most once.
    let deadline = Instant::now() + Duration::from_secs(30);
    for env in [&n1, &n2, &n3] {
        let recs = loop {
            let recs = login_records(env, &t0);
            if recs.len() >= expected.len() || Instant::now() > deadline {
                break recs;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut seen = std::collections::BTreeMap::new();
        for (id, node) in &recs {
            assert!(
                seen.insert(id.clone(), node.clone()).is_none(),
                "{id} reported twice by {}",
                env.config_path().display()
            );
        }
        for (id, node) in &expected {
            assert_eq!(
                seen.get(id),
                Some(node),
                "login {id} in the report of {}",
                env.config_path().display()
            );
        }
        for id in seen.keys().filter(|id| !expected.contains_key(*id)) {
            assert!(unanswered.contains(id), "{id} was never sent");
        }
    }

    // The summary, asked of a replica: the sign-ins counted by result for
    // the test's client, load3 failing most, noapp never enrolled.
    let out = n3.radmfa(&["report", "--summary", "--json", "--since", &t0]);
    out.assert_ok();
    let s = out.json();
    assert_eq!(s["complete"], true, "{s}");
    let count = |result: &str| -> u64 {
        s["sign_ins"]
            .as_array()
            .expect("sign_ins")
            .iter()
            .filter(|c| c["result"] == result && c["client"] == "localhost")
            .map(|c| c["count"].as_u64().unwrap_or(0))
            .sum()
    };
    let extra = unanswered.len() as u64;
    let (a, r) = (count("accept"), count("reject"));
    assert!(
        (accepts..=accepts + extra).contains(&a),
        "accepts {a}, sent {accepts} (+{extra} unanswered): {s}"
    );
    assert!(
        (rejects..=rejects + extra).contains(&r),
        "rejects {r}, sent {rejects} (+{extra} unanswered): {s}"
    );
    assert_eq!(s["top_failing"][0]["user"], "load3", "{s}");
    assert!(
        s["top_failing"][0]["count"].as_u64() >= Some(rejects),
        "{s}"
    );
    let never: Vec<&str> = s["never_enrolled"]
        .as_array()
        .expect("never_enrolled")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(never.contains(&"noapp") && !never.contains(&"load1"), "{s}");

    // Admin actions: who, what, outcome, on the node that was asked.
    let admin: Vec<Value> = n2
        .report_all(&["--since", &t0, "--client", "cli"])
        .into_iter()
        .filter(|r| r["mode"] == "admin")
        .collect();
    let find = |reason: &str, target: &str| -> &Value {
        admin
            .iter()
            .find(|r| {
                r["user"] == target && r["reason"].as_str().is_some_and(|x| x.starts_with(reason))
            })
            .unwrap_or_else(|| panic!("no admin record {reason} {target}: {admin:#?}"))
    };
    // The users added before the servers started: by the CLI, offline.
    let setup = find("user_add", "load0");
    assert_eq!(setup["server_name"], "node-1", "{setup}");
    assert!(
        setup["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("cli on node-1") && a.ends_with("(offline)")),
        "{setup}"
    );
    let add = find("user_add", "adm1");
    assert_eq!(
        (
            add["user"].as_str(),
            add["result"].as_str(),
            add["server_name"].as_str()
        ),
        (Some("adm1"), Some("ok"), Some("node-2")),
        "{add}"
    );
    assert!(
        add["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("cli on node-2 (uid ")),
        "{add}"
    );
    let client = find("client_add", "vpn2");
    assert_eq!(
        (client["user"].as_str(), client["server_name"].as_str()),
        (Some("vpn2"), Some("node-1")),
        "{client}"
    );
    let failed = find("user_delete", "nosuch");
    assert_eq!(
        (failed["result"].as_str(), failed["server_name"].as_str()),
        (Some("failed"), Some("node-3")),
        "{failed}"
    );
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nosuch")),
        "{failed}"
    );

    // No secret in any journal of any node.
    for env in [&n1, &n2, &n3] {
        for f in journal_files(env.data_dir()) {
            let text = std::fs::read_to_string(&f).expect("journal");
            for secret in [ADMIN_PW, CLIENT_SECRET, "wrong-password"] {
                assert!(!text.contains(secret), "{secret} in {}", f.display());
            }
        }
    }

    // The primary gone: a replica answers from what it holds, and says so.
    s1.signal("KILL");
    let out = n2.radmfa(&["report", "--json", "--since", &t0, "--limit", "50"]);
    out.assert_ok();
    assert!(out.stderr.contains("incomplete report"), "{}", out.stderr);
    let own = out.json();
    let own = own.as_array().expect("records");
    assert!(
        own.iter().all(|r| r["server_name"] == "node-2"),
        "a replica holds only its own records"
    );
    assert!(!own.is_empty());
    drop(s3);
    drop(s2);
}
