//! Challenge affinity without sticky sessions: two radmfa nodes behind
//! nginx's UDP `stream` proxy in plain round robin. One-way SMS logins go
//! through the balancer; the answer to an Access-Challenge often reaches the
//! node that did not send it, which forwards it over the peer link (TCP,
//! mutual TLS) to the owner named in the State and relays the reply.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sim::{code_in, env_with_gateway, Sim, API_KEY};
use common::{free_tcp_port, free_udp_port, login, Env, PyRequest, SECRET};

const USERS: usize = 20;
const LOGINS: usize = 200;

fn phone(i: usize) -> String {
    format!("+1555020{i:04}")
}

/// A node of the cluster: its own data directory and config, the shared
/// cluster key, its certificate, the other node as its peer.
/// Writes the shared cluster key, owner-only (radmfa refuses a key file
/// other users may read).
fn write_cluster_key(dir: &Path, hex: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("cluster.key");
    std::fs::write(&path, format!("{hex}\n")).expect("cluster key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn node(sim: &Sim, dir: &Path, id: u16, listen: u16, peer_id: u16, peer_port: u16) -> Env {
    node_with_certs(sim, dir, &dir.join("certs"), id, listen, peer_id, peer_port)
}

fn node_with_certs(
    sim: &Sim,
    dir: &Path,
    certs: &Path,
    id: u16,
    listen: u16,
    peer_id: u16,
    peer_port: u16,
) -> Env {
    let node_dir = dir.join(format!("node-{id}"));
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let env = env_with_gateway(sim, &node_dir, "");
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text
        .replace(
            "node_id = 7\n",
            &format!(
                "node_id = {id}\nkey_file = {:?}\n",
                dir.join("seed.key").display().to_string()
            ),
        )
        .replace(
            "node_name = \"e2e-node\"",
            &format!("node_name = \"node-{id}\""),
        )
        .replace(
            "[challenge]\n",
            &format!(
                "[challenge]\ncluster_key_file = {:?}\n",
                dir.join("cluster.key").display().to_string()
            ),
        );
    // Node 1 is the primary and holds the users; node 2 is a replica that
    // receives them over the peer link.
    let role = if id == 1 { "primary" } else { "replica" };
    let text = format!(
        "{text}\n[cluster]\nlisten = \"127.0.0.1:{listen}\"\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\nforward_timeout_ms = 2000\nrole = \"{role}\"\n\n[[cluster.peer]]\nnode_id = {peer_id}\naddress = \"127.0.0.1:{peer_port}\"\n\n[limits]\n# 200 logins of 20 users in seconds: far above the per-user limit.\nuser_per_minute = 0\n",
        ca = certs.join("ca.pem").display().to_string(),
        cert = certs.join(format!("node-{id}.pem")).display().to_string(),
        key = certs.join(format!("node-{id}.key")).display().to_string(),
    );
    std::fs::write(env.config_path(), text).expect("config");
    env.radmfa(&["check-config"]).assert_ok();
    if id != 1 {
        return env;
    }
    let csv = node_dir.join("users.csv");
    let mut rows = String::from("name,password,method,phone\n");
    for i in 0..USERS {
        rows.push_str(&format!("user{i},correct-horse,sms,{}\n", phone(i)));
    }
    std::fs::write(&csv, rows).expect("csv");
    env.radmfa(&["user", "import", "--csv", csv.to_str().expect("utf-8")])
        .assert_ok();
    env
}

#[test]
fn sms_logins_through_round_robin_nginx_are_forwarded_to_the_owner() {
    if !common::nginx::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let cwd = dir.path();
    common::run_radmfa(
        &["cluster", "ca", "--dir", certs.to_str().expect("utf-8")],
        None,
        cwd,
    )
    .assert_ok();
    for id in ["1", "2"] {
        common::run_radmfa(
            &[
                "cluster",
                "cert",
                "--dir",
                certs.to_str().expect("utf-8"),
                "--node-id",
                id,
            ],
            None,
            cwd,
        )
        .assert_ok();
    }
    // The CA key and node keys are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(certs.join("node-1.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "node key mode {mode:o}");
    write_cluster_key(
        dir.path(),
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    );

    let sim = Sim::start(dir.path());
    let (p1, p2) = (free_tcp_port(), free_tcp_port());
    let a = node(&sim, dir.path(), 1, p1, 2, p2);
    let b = node(&sim, dir.path(), 2, p2, 1, p1);
    let server_a = a.start();
    let server_b = b.start();
    // The replica has the users before the balancer sends it logins.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = b.radmfa(&["user", "list", "--json"]);
        out.assert_ok();
        if out.json().as_array().map(Vec::len) == Some(USERS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "users never replicated to node 2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lb_port = free_udp_port();
    let _nginx = common::nginx::start(
        dir.path(),
        lb_port,
        &[server_a.addr_string(), server_b.addr_string()],
    );
    let lb = format!("127.0.0.1:{lb_port}");

    let mut args: Vec<String> = vec![
        common::py_dir().join("sms_logins.py").display().to_string(),
        "--server".into(),
        lb.clone(),
        "--secret".into(),
        SECRET.into(),
        "--dict".into(),
        common::py_dir().join("dictionary").display().to_string(),
        "--sim".into(),
        sim.addr.clone(),
        "--sim-cert".into(),
        sim.cert.display().to_string(),
        "--sim-key".into(),
        API_KEY.into(),
        "--password".into(),
        "correct-horse".into(),
        "--logins".into(),
        LOGINS.to_string(),
    ];
    for i in 0..USERS {
        args.push("--user".into());
        args.push(format!("user{i}={}", phone(i)));
    }
    let out = Command::new("python3")
        .args(&args)
        .output()
        .expect("python3 sms_logins.py");
    assert!(
        out.status.success(),
        "sms_logins.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(
        summary["accepts"].as_u64(),
        Some(LOGINS as u64),
        "every login must succeed: {summary}\nnode 1:\n{}\nnode 2:\n{}",
        server_a.log(),
        server_b.log()
    );

    // Answers that reached the non-owner were forwarded (with strict round
    // robin that is most of them) and every forward was answered.
    let (sa, sb) = (a.stats(), b.stats());
    let n = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap_or(0);
    let forwarded = n(&sa, "forwarded_out") + n(&sb, "forwarded_out");
    assert!(forwarded > 0, "nothing forwarded: {sa}\n{sb}");
    assert_eq!(
        forwarded,
        n(&sa, "forwarded_in") + n(&sb, "forwarded_in"),
        "{sa}\n{sb}"
    );
    assert_eq!(n(&sa, "forward_failed") + n(&sb, "forward_failed"), 0);
    // The log of the non-owner says so.
    let logs = server_a.log() + &server_b.log();
    assert!(
        logs.contains("challenge answer forwarded to its owner"),
        "{logs}"
    );
    // One SMS per login, no more.
    let sms: usize = (0..USERS).map(|i| sim.messages(&phone(i)).len()).sum();
    assert_eq!(sms, LOGINS);

    // The owner goes away: the other node answers the user clearly.
    let r = login(&server_a.addr_string(), "user0", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let state = r.attr("State").expect("State").to_string();
    let code = code_in(sim.messages(&phone(0)).last().expect("sms"));
    let (status, _) = server_a.terminate();
    assert!(status.success());
    let r = login(&server_b.addr_string(), "user0", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("cannot be reached"),
        "{}",
        r.output
    );
    assert!(b.counter("forward_failed") >= 1);
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    for (name, id) in [("good", "1"), ("good", "2"), ("rogue", "2")] {
        let d = dir.path().join(name);
        if !d.join("ca.pem").exists() {
            common::run_radmfa(
                &["cluster", "ca", "--dir", d.to_str().expect("utf-8")],
                None,
                cwd,
            )
            .assert_ok();
        }
        common::run_radmfa(
            &[
                "cluster",
                "cert",
                "--dir",
                d.to_str().expect("utf-8"),
                "--node-id",
                id,
            ],
            None,
            cwd,
        )
        .assert_ok();
    }
    // A second `cluster ca` never overwrites the CA.
    let again = common::run_radmfa(
        &[
            "cluster",
            "ca",
            "--dir",
            dir.path().join("good").to_str().expect("utf-8"),
        ],
        None,
        cwd,
    );
    assert_ne!(again.code(), 0);

    let sim = Sim::start(dir.path());
    let (p1, p2) = (free_tcp_port(), free_tcp_port());
    write_cluster_key(
        dir.path(),
        "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
    );
    // Node 2 belongs to another cluster CA (same cluster key: only TLS keeps it out).
    let a = node_with_certs(&sim, dir.path(), &dir.path().join("good"), 1, p1, 2, p2);
    let b = node_with_certs(&sim, dir.path(), &dir.path().join("rogue"), 2, p2, 1, p1);
    let server_a = a.start();
    let server_b = b.start();

    let r = login(&server_a.addr_string(), "user1", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let state = r.attr("State").expect("State").to_string();
    let code = code_in(sim.messages(&phone(1)).last().expect("sms"));
    let r = login(&server_b.addr_string(), "user1", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(b.counter("forward_failed") >= 1);
    assert_eq!(a.counter("forwarded_in"), 0);
    assert!(
        a.counter("peer_rejected") + b.counter("peer_rejected") >= 1,
        "{}\n{}",
        a.stats(),
        b.stats()
    );
}

/// Issue 15 finding 3 across the peer link: an answer that reaches the
/// other node from another client is forwarded to the owner, which compares
/// the client the NAS address maps to with the one the challenge was issued
/// to: `bad_state`, and the challenge stays for its own client.
#[test]
fn a_forwarded_answer_from_another_client_is_bad_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let cwd = dir.path();
    common::run_radmfa(
        &["cluster", "ca", "--dir", certs.to_str().expect("utf-8")],
        None,
        cwd,
    )
    .assert_ok();
    for id in ["1", "2"] {
        common::run_radmfa(
            &[
                "cluster",
                "cert",
                "--dir",
                certs.to_str().expect("utf-8"),
                "--node-id",
                id,
            ],
            None,
            cwd,
        )
        .assert_ok();
    }
    write_cluster_key(
        dir.path(),
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    let sim = Sim::start(dir.path());
    let (p1, p2) = (free_tcp_port(), free_tcp_port());
    let a = node(&sim, dir.path(), 1, p1, 2, p2);
    let b = node(&sim, dir.path(), 2, p2, 1, p1);
    let server_a = a.start();
    let server_b = b.start();

    // Client "vpn" (127.0.0.1, policy "sms") starts the login on node 1.
    let r = login(&server_a.addr_string(), "user3", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let state = r.attr("State").expect("State").to_string();
    let code = code_in(sim.messages(&phone(3)).last().expect("sms"));
    let state_hex = state.trim_start_matches("0x").to_string();

    // Client "localhost" (127.0.0.2, policy "default") answers on node 2.
    let mut other = PyRequest::access(&server_b).login("user3", &code);
    other.bind = "127.0.0.2".to_owned();
    other.state_hex = Some(state_hex);
    let reply = other.send().reply();
    assert_eq!(
        common::code_name(&reply),
        "Access-Reject",
        "answer from another client accepted: {reply:#}"
    );
    assert!(b.counter("forwarded_out") >= 1, "{}", b.stats());
    let reasons: Vec<String> = a
        .wait_report_len(&["--user", "user3"], 2)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(reasons.iter().any(|r| r == "bad_state"), "{reasons:?}");

    // Its own client's answer, through node 2 as well, is still accepted.
    let r = login(&server_b.addr_string(), "user3", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
}

/// A cluster CA and the certificates of `ids` in `certs`.
fn cluster_certs(cwd: &Path, certs: &Path, ids: &[&str]) {
    let dir = certs.to_str().expect("utf-8");
    common::run_radmfa(&["cluster", "ca", "--dir", dir], None, cwd).assert_ok();
    for id in ids {
        common::run_radmfa(
            &["cluster", "cert", "--dir", dir, "--node-id", id],
            None,
            cwd,
        )
        .assert_ok();
    }
}

/// Waits until `f` holds, or fails with `what` and the node logs.
fn wait_until(what: &str, logs: &dyn Fn() -> String, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "{what}\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `radmfa status --json`'s configuration part.
fn config_status(env: &Env) -> serde_json::Value {
    let out = env.radmfa(&["status", "--json"]);
    out.assert_ok();
    out.json()["config"].clone()
}

#[test]
fn nodes_with_different_policies_are_named_and_a_reload_makes_them_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    cluster_certs(dir.path(), &certs, &["1", "2"]);
    write_cluster_key(
        dir.path(),
        "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
    );
    let sim = Sim::start(dir.path());
    let (p1, p2, api_port) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let a = node(&sim, dir.path(), 1, p1, 2, p2);
    let b = node(&sim, dir.path(), 2, p2, 1, p1);
    // Both serve the admin API (the peer certificates will do for curl -k):
    // its settings are compared too, without the address and files.
    for (env, id, port) in [(&a, 1, api_port), (&b, 2, free_tcp_port())] {
        let text = std::fs::read_to_string(env.config_path()).expect("config");
        let api = format!(
            "{text}\n[api]\nlisten = \"127.0.0.1:{port}\"\ncert = {:?}\nkey = {:?}\n",
            certs.join(format!("node-{id}.pem")).display().to_string(),
            certs.join(format!("node-{id}.key")).display().to_string()
        );
        std::fs::write(env.config_path(), api).expect("config");
    }
    let out = a.radmfa(&[
        "token-admin",
        "create",
        "--name",
        "ops",
        "--scope",
        "cluster:read",
    ]);
    out.assert_ok();
    let token = out.stdout.trim().to_string();
    // Node 2's default policy asks for the code by challenge, node 1's does not.
    let good = std::fs::read_to_string(b.config_path()).expect("config");
    assert!(good.contains("otp_mode = \"auto\""));
    std::fs::write(
        b.config_path(),
        good.replace("otp_mode = \"auto\"", "otp_mode = \"challenge\""),
    )
    .expect("config");
    let server_a = a.start();
    let server_b = b.start();
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", server_a.log(), server_b.log());

    let differs = |env: &Env, peer: u64| {
        let c = config_status(env);
        c["agree"] == false
            && c["peers"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|p| p["node_id"] == peer && p["differs"] == serde_json::json!(["policy"]))
            })
    };
    wait_until("node 1 never saw node 2's policy differ", &logs, || {
        differs(&a, 2)
    });
    wait_until("node 2 never saw node 1's policy differ", &logs, || {
        differs(&b, 1)
    });
    let human = a.radmfa(&["status"]);
    human.assert_ok();
    assert!(
        human
            .stdout
            .contains("configuration  differs from node 2 (node-2) in: policy"),
        "{}",
        human.stdout
    );
    let api = std::process::Command::new("curl")
        .args(["-sk", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("https://127.0.0.1:{api_port}/api/v1/cluster"))
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&api.stdout).expect("API JSON");
    assert_eq!(body["config"]["peers"][0]["node_id"], 2, "{body}");
    assert_eq!(
        body["config"]["peers"][0]["differs"],
        serde_json::json!(["policy"]),
        "{body}"
    );
    // Said once at WARN, not at every digest (one every 2 s).
    std::thread::sleep(Duration::from_secs(5));
    let warn = "configuration differs from node 2 (node-2) in: policy";
    assert_eq!(server_a.log().matches(warn).count(), 1, "{}", logs());

    // Node 2's file fixed and reloaded (SIGHUP): both agree, and say so.
    std::fs::write(b.config_path(), &good).expect("config");
    server_b.signal("HUP");
    wait_until("node 2 never agreed", &logs, || {
        config_status(&b)["agree"] == true
    });
    wait_until("node 1 never agreed", &logs, || {
        config_status(&a)["agree"] == true
    });
    assert!(
        server_b
            .log()
            .contains("configuration reloaded: [[policy]] changed"),
        "{}",
        logs()
    );
    assert!(
        server_b
            .log()
            .contains("configuration agrees with node 1 (node-1) again"),
        "{}",
        logs()
    );
    let human = a.radmfa(&["status"]);
    assert!(
        human
            .stdout
            .contains("configuration  the same as every peer's"),
        "{}",
        human.stdout
    );

    // A broken file on node 2: refused with file:line, still in agreement.
    let bad_line = good.lines().count() + 2;
    std::fs::write(b.config_path(), format!("{good}\n[[policy]\n")).expect("config");
    server_b.signal("HUP");
    let located = format!("{}:{bad_line}:", b.config_path().display());
    wait_until("no refusal in node 2's log", &logs, || {
        server_b.log().contains(&located)
    });
    assert!(
        server_b.log().contains("the running configuration stays"),
        "{}",
        logs()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(config_status(&a)["agree"], true, "{}", logs());
    // (The CLI reads its --config file too: node 2's is put back to ask it.)
    std::fs::write(b.config_path(), &good).expect("config");
    assert_eq!(config_status(&b)["agree"], true, "{}", logs());
}

/// docs/recipes/three-nodes-systemd.md as written: its three node files
/// (read from the page, 10.0.0.x mapped to 127.0.0.x, the admin
/// workstation 10.0.0.20 to this test's 127.0.0.1, /etc/radmfa and
/// /var/lib/radmfa to a directory per node), its certificates, node 1
/// started first from the unit's ExecStart= line, its keys copied to nodes
/// 2 and 3 before their start, then the recipe's verification: check-config
/// and status on each node, a user added on a replica, a radclient login
/// through another node, and a challenge answered on a third.
#[test]
fn recipe_three_nodes_with_systemd() {
    use common::recipes::{self, block, page, replace, UnitNode};
    use std::os::unix::fs::PermissionsExt;
    let page = page("three-nodes-systemd.md");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("radmfa-ca");
    cluster_certs(dir.path(), &ca, &["1", "2", "3"]);
    for n in 1..=3u8 {
        if std::net::UdpSocket::bind(("127.0.0.1", 0)).is_ok()
            && std::net::UdpSocket::bind((format!("127.0.0.1{n}").as_str(), 1812)).is_err()
        {
            panic!("127.0.0.1{n}:1812 is taken: the recipe's fixed ports need it free");
        }
    }
    let mut configs = Vec::new();
    for n in 1..=3u8 {
        let node = dir.path().join(format!("node-{n}"));
        let etc = node.join("etc");
        std::fs::create_dir_all(etc.join("cluster")).expect("etc");
        let data = node.join("data");
        std::fs::create_dir_all(&data).expect("data");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        for f in [
            "ca.pem".to_string(),
            format!("node-{n}.pem"),
            format!("node-{n}.key"),
        ] {
            std::fs::copy(ca.join(&f), etc.join("cluster").join(&f)).expect("copy cert");
        }
        let mut text = block(&page, &format!("node-{n}.toml"));
        for m in 1..=3u8 {
            text = replace(&text, &format!("10.0.0.1{m}"), &format!("127.0.0.1{m}"));
        }
        text = replace(&text, "10.0.0.20/32", "127.0.0.1/32");
        text = replace(&text, "/etc/radmfa/", &format!("{}/", etc.display()));
        text = replace(
            &text,
            "\"/var/lib/radmfa\"",
            &format!("{:?}", data.display().to_string()),
        );
        let config = etc.join("radmfa.toml");
        std::fs::write(&config, text).expect("write config");
        configs.push((config, data));
    }
    // Step 5: node 1 first; it makes the keys, which go to 2 and 3.
    let n1 = UnitNode::start(&configs[0].0);
    for (_, data) in &configs[1..] {
        for key in ["seed.key", "cluster.key"] {
            let to = data.join(key);
            std::fs::copy(configs[0].1.join(key), &to).expect("copy key");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
    }
    let n2 = UnitNode::start(&configs[1].0);
    let n3 = UnitNode::start(&configs[2].0);
    let logs = || {
        format!(
            "node 1:\n{}\nnode 2:\n{}\nnode 3:\n{}",
            n1.log(),
            n2.log(),
            n3.log()
        )
    };

    // Step 7: check-config and status on each node.
    for node in [&n1, &n2, &n3] {
        let out = node.radmfa(&["check-config"]);
        out.assert_ok();
        assert!(out.stdout.contains(": ok"), "{}", out.stdout);
    }
    let status = |node: &UnitNode| node.radmfa(&["status", "--json"]).json();
    wait_until("node 1 primary with two replicas", &logs, || {
        let s = status(&n1);
        s["role"] == "primary" && s["replicas"].as_array().map(Vec::len) == Some(2)
    });
    for node in [&n2, &n3] {
        wait_until("a replica following node 1", &logs, || {
            let s = status(node);
            s["role"] == "replica" && s["primary"] == 1
        });
    }
    let secret_cmd = "correct horse";
    n2.radmfa_stdin(
        &["user", "add", "alice", "--password-stdin"],
        Some(secret_cmd),
    )
    .assert_ok();
    let seed = recipes::enrolled_seed(&n2.radmfa(&["token", "enroll", "alice"]));
    wait_until("alice's token on node 3", &logs, || {
        n3.radmfa(&["user", "show", "alice"])
            .stdout
            .contains("totp")
    });
    let admin_secret = "change-me-admin-check";
    let accepted = |r: common::RadReply| {
        assert_eq!(
            r.code.as_deref(),
            Some("Access-Accept"),
            "{}\n{}",
            r.output,
            logs()
        );
    };
    common::clear_of_step_edge();
    let code = common::totp_now(&seed);
    let password = format!("{secret_cmd}{code}");
    accepted(recipes::login(
        "127.0.0.13",
        admin_secret,
        "alice",
        &password,
        None,
    ));
    // A challenge from node 2 answered through node 1 (as behind a balancer).
    let r = recipes::login("127.0.0.12", admin_secret, "alice", secret_cmd, None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let state = r.attr("State").expect("State").to_owned();
    let next = common::totp_step(&seed, 1);
    accepted(recipes::login(
        "127.0.0.11",
        admin_secret,
        "alice",
        &next,
        Some(&state),
    ));
    // The keys every node holds are node 1's, owner-only.
    for (_, data) in &configs {
        for key in ["seed.key", "cluster.key"] {
            let mode = std::fs::metadata(data.join(key))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
            assert_eq!(
                std::fs::read(data.join(key)).expect("key"),
                std::fs::read(configs[0].1.join(key)).expect("key")
            );
        }
    }
}

/// `radmfa user import` on a stopped clustered node trims the changelog to
/// `changelog_keep`, as the server would at start (where trimming the
/// millions of entries of a big import took minutes beside serving, with
/// its memory and write lock). Read back from the store the command wrote.
#[test]
fn an_offline_import_trims_the_changelog_to_changelog_keep() {
    use radmfa_store::repl::ReplLog;

    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    cluster_certs(dir.path(), &certs, &["7"]);
    write_cluster_key(dir.path(), &"5a".repeat(32));
    let env = Env::new();
    let text = std::fs::read_to_string(env.config_path())
        .expect("config")
        .replace(
            "[challenge]\n",
            &format!(
                "[challenge]\ncluster_key_file = {:?}\n",
                dir.path().join("cluster.key").display().to_string()
            ),
        );
    let text = format!(
        "{text}\n[cluster]\nlisten = \"127.0.0.1:{port}\"\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\nrole = \"primary\"\nchangelog_keep = 1000\n\n[[cluster.peer]]\nnode_id = 8\naddress = \"127.0.0.1:{peer}\"\n",
        port = free_tcp_port(),
        peer = free_tcp_port(),
        ca = certs.join("ca.pem").display().to_string(),
        cert = certs.join("node-7.pem").display().to_string(),
        key = certs.join("node-7.key").display().to_string(),
    );
    std::fs::write(env.config_path(), text).expect("config");
    env.radmfa(&["check-config"]).assert_ok();
    let csv = dir.path().join("users.csv");
    let mut rows = String::from("name\n");
    for i in 0..1500 {
        rows.push_str(&format!("bulk{i:04}\n"));
    }
    std::fs::write(&csv, rows).expect("csv");
    env.radmfa(&["user", "import", "--csv", csv.to_str().expect("utf-8")])
        .assert_ok();

    let cfg = radmfa_server::RuntimeConfig::load(env.config_path()).expect("config");
    let store = radmfa_server::open_store(&cfg).expect("store");
    let log = store.repl_log();
    let (last, _) = log.last();
    assert!(
        last >= 1500,
        "one changelog entry per user at least: {last}"
    );
    assert_eq!(
        log.changes_since(last - 1000, 2000)
            .expect("the last 1000 kept")
            .len(),
        1000
    );
    assert!(
        log.changes_since(last - 1001, 2000).is_err(),
        "entries before the last 1000 are trimmed"
    );
    assert_eq!(store.user_count(), 1500);
}
