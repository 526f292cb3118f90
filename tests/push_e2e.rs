//! Push approval without a vendor app, end to end: the real binary sends Web
//! Push messages to a push service the test runs (tests/py/webpush.py, on
//! loopback), and the test plays the browser with independent code: it made
//! the subscription keys (Python `cryptography`), decrypts each message with
//! Mozilla's `http_ece` (RFC 8291) and checks the VAPID JWT (RFC 8292) under
//! the public key of the VAPID key file; then it answers on the portal's
//! approval page over HTTPS. RADIUS logins go through pyrad with NAS
//! retransmissions.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{py_dir, Env, PyRequest, Server};
use serde_json::Value;

const PASSWORD: &str = "correct-horse";
const SUBJECT: &str = "mailto:ops@example.org";

/// The push service (RFC 8030 resources) on loopback; killed on drop.
struct PushService {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl PushService {
    fn start(dir: &Path) -> PushService {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(py_dir().join("webpush.py"))
            .arg("serve")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the push service");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("push service port");
        PushService {
            port: line.trim().parse().expect("port"),
            child,
            log: dir.join("pushes.jsonl"),
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every message posted to `path` so far.
    fn pushes(&self, path: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("record"))
            .filter(|r| r["path"] == path)
            .collect()
    }

    /// Waits until `path` has received `n` messages; returns the last.
    fn wait_push(&self, path: &str, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.pushes(path);
            if got.len() >= n {
                return got[n - 1].clone();
            }
            assert!(Instant::now() < deadline, "no push #{n} to {path}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn webpush(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(py_dir().join("webpush.py"))
        .args(args)
        .output()
        .expect("run webpush.py");
    assert!(
        out.status.success(),
        "webpush.py {}: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A browser: its subscription keys (made by Python `cryptography`).
struct Browser {
    keys: String,
    path: String,
}

impl Browser {
    fn new(path: &str) -> Browser {
        Browser {
            keys: webpush(&["keys"]),
            path: path.to_string(),
        }
    }

    /// Decrypts push #n to this browser and checks its VAPID header;
    /// returns `{message, claims, ttl}`.
    fn read(&self, push: &PushService, n: usize, vapid_public: &str) -> Value {
        let rec = push.wait_push(&self.path, n);
        let out = webpush(&["decrypt", &rec.to_string(), &self.keys, vapid_public]);
        serde_json::from_str(&out).expect("decrypt output")
    }
}

fn python_ok() -> bool {
    common::require_python_module("http_ece", "pip install http_ece==1.2.1")
        && common::require_python_module("cryptography", "pip install cryptography")
        && common::require_python_module("pyrad", "pip install pyrad")
}

/// A node with the portal (certificate from `radmfa cluster init`, which
/// also writes the VAPID key used here), http push endpoints allowed (the
/// local push service), a verdict timeout of `verdict_secs` and `extra`
/// config.
fn push_env(extra: &str, number_matching: bool, verdict_secs: u64) -> (Env, PathBuf) {
    let env = Env::new();
    let pki = env.path().join("pki");
    cluster_init(&pki, 1);
    let mut text = std::fs::read_to_string(env.config_path()).expect("config");
    if number_matching {
        text = text.replace(
            "challenge_prompt = \"Enter the code from your authenticator app\"\n",
            "challenge_prompt = \"Enter the code from your authenticator app\"\nnumber_matching = true\n",
        );
    }
    std::fs::write(env.config_path(), text).expect("config");
    push_config(&env, &pki, 1, verdict_secs, extra);
    (env, pki.join("vapid.key"))
}

/// `radmfa cluster init` into `pki` for `nodes` nodes.
fn cluster_init(pki: &Path, nodes: u16) {
    let dir = pki.parent().expect("parent");
    common::run_radmfa(
        &[
            "cluster",
            "init",
            "--dir",
            pki.to_str().expect("utf-8"),
            "--nodes",
            &nodes.to_string(),
        ],
        None,
        dir,
    )
    .assert_ok();
}

/// Appends the portal (node `id`'s certificate in `pki`), `[push]` with
/// `pki`'s VAPID key and a gateway (only for its verdict timeout: nothing
/// here goes through it), then checks the configuration.
fn push_config(env: &Env, pki: &Path, id: u16, verdict_secs: u64, extra: &str) {
    let gw_key = env.path().join("gateway.key");
    std::fs::write(&gw_key, "unused-gateway-key-0123456789\n").expect("key");
    std::fs::set_permissions(&gw_key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let mut text = std::fs::read_to_string(env.config_path()).expect("config");
    text.push_str(&format!(
        "\n[portal]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n\
         \n[push]\nvapid_key_file = {:?}\nsubject = {SUBJECT:?}\nallow_http_endpoints = true\n\
         \n[gateway]\nurl = \"https://127.0.0.1:9\"\napi_key_file = {:?}\nverdict_timeout_secs = {verdict_secs}\n{extra}\n",
        pki.join(format!("node-{id}.pem")).display().to_string(),
        pki.join(format!("node-{id}.key")).display().to_string(),
        pki.join("vapid.key").display().to_string(),
        gw_key.display().to_string(),
    ));
    std::fs::write(env.config_path(), text).expect("config");
    env.radmfa(&["check-config"]).assert_ok();
}

fn add_push_user(env: &Env, name: &str) {
    env.radmfa_stdin(
        &["user", "add", name, "--password-stdin", "--method", "push"],
        Some(&format!("{PASSWORD}\n")),
    )
    .assert_ok();
}

/// Registers `b` for `user` on the running server (as the portal's devices
/// page does once the browser subscribed).
fn register(env: &Env, push: &PushService, user: &str, b: &Browser) {
    let sock = env.data_dir().join("control.sock");
    let out = webpush(&[
        "register",
        sock.to_str().expect("utf-8"),
        user,
        "test browser",
        &push.endpoint(&b.path),
        &b.keys,
    ]);
    assert!(out.contains("\"ok\":true"), "{out}");
}

fn portal_base(server: &Server) -> String {
    format!("https://{}", server.ready.portal.expect("portal listens"))
}

/// Answers approval `id` on the portal; returns webpush.py's JSON.
fn answer(server: &Server, id: &str, decision: &str) -> Value {
    let out = webpush(&["approve", &portal_base(server), id, decision]);
    serde_json::from_str(&out).expect("approve output")
}

/// Starts a login for `user` that the NAS retransmits every second (up to
/// `sends` times, the same datagram); joined for its replies.
fn login_in_background(
    server: &Server,
    user: &str,
    password: &str,
    state: Option<String>,
    sends: u32,
) -> std::thread::JoinHandle<common::PyResult> {
    let mut req = PyRequest::access(server).login(user, password);
    req.timeout = 1.0;
    req.sends = sends;
    req.state_hex = state;
    std::thread::spawn(move || req.send())
}

/// The first reply of a login, as `(code name, Reply-Message)`.
fn first_reply(r: &common::PyResult) -> (String, String, Value) {
    let reply = r
        .replies()
        .into_iter()
        .find(|x| !x.is_null())
        .unwrap_or_else(|| panic!("no reply: {}", r.json));
    let msg = reply["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == 18)
        .and_then(|a| a["text"].as_str())
        .unwrap_or_default()
        .to_string();
    (
        reply["code_name"].as_str().unwrap_or_default().to_string(),
        msg,
        reply,
    )
}

fn last_reason(env: &Env, user: &str, n: usize) -> String {
    let recs = env.wait_report_len(&["--user", user], n);
    recs.last().expect("record")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn web_push_approve_deny_not_me_timeout_and_dead_subscription() {
    if !python_ok() {
        return;
    }
    let (env, vapid) = push_env("", false, 10);
    let vapid_public = webpush(&["vapid-public", vapid.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let push = PushService::start(env.path());
    for u in ["pat", "dina", "fred", "tim", "gwen"] {
        add_push_user(&env, u);
    }
    let server = env.start();
    let pat = Browser::new("/sub/pat");
    let pat2 = Browser::new("/sub/pat-laptop");
    let dina = Browser::new("/sub/dina");
    let fred = Browser::new("/sub/fred");
    let tim = Browser::new("/sub/tim");
    let gwen = Browser::new("/sub/gwen");
    let gwen_dead = Browser::new("/gone/gwen-old");
    register(&env, &push, "pat", &pat);
    register(&env, &push, "pat", &pat2);
    register(&env, &push, "dina", &dina);
    register(&env, &push, "fred", &fred);
    register(&env, &push, "tim", &tim);
    register(&env, &push, "gwen", &gwen);
    register(&env, &push, "gwen", &gwen_dead);

    // Approve, while the NAS retransmits: one message per device, an Accept.
    let login = login_in_background(&server, "pat", PASSWORD, None, 6);
    let got = pat.read(&push, 1, &vapid_public);
    let also = pat2.read(&push, 1, &vapid_public);
    let id = got["message"]["id"].as_str().expect("id").to_string();
    assert_eq!(also["message"]["id"], id.as_str());
    assert_eq!(got["message"]["app"], "localhost", "{got}");
    assert_eq!(got["claims"]["sub"], SUBJECT, "{got}");
    assert!(
        got["ttl"].as_u64().is_some_and(|t| (1..=10).contains(&t)),
        "{got}"
    );
    // Nothing else in the message (only the id and a short context).
    let keys: Vec<&String> = got["message"].as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 3, "{got}");
    std::thread::sleep(Duration::from_millis(1500));
    let a = answer(&server, &id, "approve");
    assert_eq!(a["status"], 200, "{a}");
    let page = a["page"].as_str().unwrap_or_default();
    for want in ["pat", "localhost", "Approve", "Deny", "This was not me"] {
        assert!(page.contains(want), "approval page lacks {want}: {page}");
    }
    assert_eq!(a["post_status"], 200, "{a}");
    let r = login.join().expect("login thread");
    assert_eq!(first_reply(&r).0, "Access-Accept", "{}", r.json);
    assert_eq!(
        push.pushes("/sub/pat").len(),
        1,
        "one push per login and device"
    );
    assert_eq!(push.pushes("/sub/pat-laptop").len(), 1);
    // The decision is single use.
    let again = answer(&server, &id, "deny");
    assert_eq!(again["status"], 410, "{again}");

    // Deny: a Reject with its reason.
    let login = login_in_background(&server, "dina", PASSWORD, None, 4);
    let id = dina.read(&push, 1, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(answer(&server, &id, "deny")["post_status"], 200);
    let r = login.join().expect("login thread");
    let (code, msg, _) = first_reply(&r);
    assert_eq!(code, "Access-Reject");
    assert!(msg.contains("denied"), "{msg}");
    assert_eq!(last_reason(&env, "dina", 1), "denied_by_user");

    // This was not me: rejected and locked until an admin unlocks.
    let login = login_in_background(&server, "fred", PASSWORD, None, 4);
    let id = fred.read(&push, 1, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(answer(&server, &id, "not_me")["post_status"], 200);
    let r = login.join().expect("login thread");
    assert_eq!(first_reply(&r).0, "Access-Reject");
    assert!(last_reason(&env, "fred", 1).starts_with("fraud_reported"));
    let shown = env.radmfa(&["user", "show", "fred", "--json"]).json();
    assert_eq!(shown["locked_until"], u64::MAX, "{shown}");
    let r = login_in_background(&server, "fred", PASSWORD, None, 1)
        .join()
        .expect("login thread");
    assert_eq!(first_reply(&r).0, "Access-Reject");
    assert_eq!(last_reason(&env, "fred", 2), "locked_out");
    assert_eq!(
        push.pushes("/sub/fred").len(),
        1,
        "a locked user gets no push"
    );

    // No answer: rejected after verdict_timeout_secs.
    let login = login_in_background(&server, "tim", PASSWORD, None, 14);
    tim.read(&push, 1, &vapid_public);
    let r = login.join().expect("login thread");
    assert_eq!(first_reply(&r).0, "Access-Reject");
    assert_eq!(last_reason(&env, "tim", 1), "no_answer");

    // A subscription the push service says is gone (410) is removed; the
    // live one still gets the approval.
    let login = login_in_background(&server, "gwen", PASSWORD, None, 4);
    let id = gwen.read(&push, 1, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    push.wait_push("/gone/gwen-old", 1);
    assert_eq!(answer(&server, &id, "approve")["post_status"], 200);
    assert_eq!(
        first_reply(&login.join().expect("login")).0,
        "Access-Accept"
    );
    let devices = env.radmfa(&["user", "devices", "gwen", "--json"]).json();
    let list = devices["devices"].as_array().expect("devices");
    assert_eq!(list.len(), 1, "{devices}");
    assert_eq!(list[0]["push_service"], format!("127.0.0.1:{}", push.port));
    // The admin lists and removes devices; endpoints never leave the server.
    assert!(!devices.to_string().contains("/sub/gwen"), "{devices}");
    let id = list[0]["id"].as_str().expect("id");
    env.radmfa(&["user", "device-remove", "gwen", id])
        .assert_ok();
    let devices = env.radmfa(&["user", "devices", "gwen", "--json"]).json();
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(0));

    let log = server.log();
    assert!(
        !log.contains("/sub/") && !log.contains("/gone/"),
        "endpoint URLs in the log:\n{log}"
    );
}

#[test]
fn web_push_number_matching_and_fatigue_limit() {
    if !python_ok() {
        return;
    }
    let (env, vapid) = push_env(
        "\n[limits]\npush_per_user = 3\npush_window_secs = 600\n",
        true,
        10,
    );
    let vapid_public = webpush(&["vapid-public", vapid.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let push = PushService::start(env.path());
    add_push_user(&env, "nina");
    add_push_user(&env, "olaf");
    let server = env.start();
    let nina = Browser::new("/sub/nina");
    let olaf = Browser::new("/sub/olaf");
    register(&env, &push, "nina", &nina);
    register(&env, &push, "olaf", &olaf);

    // The login answers at once with a challenge; the page shows the number.
    let start = |user: &str| {
        let r = login_in_background(&server, user, PASSWORD, None, 1)
            .join()
            .expect("login");
        let (code, msg, reply) = first_reply(&r);
        assert_eq!(code, "Access-Challenge", "{}", r.json);
        assert!(msg.contains("number"), "{msg}");
        let state = reply["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == 24)
            .and_then(|a| a["hex"].as_str())
            .expect("State")
            .to_string();
        state
    };
    let number_of = |b: &Browser, n: usize| {
        let id = b.read(&push, n, &vapid_public)["message"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let out = webpush(&["approve", &portal_base(&server), &id, "-"]);
        let v: Value = serde_json::from_str(&out).expect("json");
        let page = v["page"].as_str().unwrap_or_default().to_string();
        let n = page
            .split("id=\"approval-number\">")
            .nth(1)
            .and_then(|s| s.get(..2))
            .unwrap_or_else(|| panic!("no number on the page: {page}"))
            .to_string();
        (id, n)
    };

    // 1. Right number, approved on the page: Accept.
    let state = start("nina");
    let (id, number) = number_of(&nina, 1);
    let answer_login = login_in_background(&server, "nina", &number, Some(state), 6);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(answer(&server, &id, "approve")["post_status"], 200);
    let r = answer_login.join().expect("login");
    assert_eq!(first_reply(&r).0, "Access-Accept", "{}", r.json);

    // 2. A wrong number denies, approval or not.
    let state = start("nina");
    let (id, number) = number_of(&nina, 2);
    let wrong = format!(
        "{:02}",
        (number.parse::<u8>().expect("digits") - 10 + 1) % 90 + 10
    );
    let r = login_in_background(&server, "nina", &wrong, Some(state), 1)
        .join()
        .expect("login");
    assert_eq!(first_reply(&r).0, "Access-Reject");
    assert_eq!(last_reason(&env, "nina", 4), "push_number_wrong");
    assert_eq!(
        answer(&server, &id, "approve")["status"],
        410,
        "the request is over"
    );

    // 3. The right number without approval on the page: not signed in.
    let state = start("nina");
    let (_, number) = number_of(&nina, 3);
    let r = login_in_background(&server, "nina", &number, Some(state), 14)
        .join()
        .expect("login");
    assert_eq!(first_reply(&r).0, "Access-Reject");
    assert_eq!(last_reason(&env, "nina", 6), "push_not_approved");

    // 4. Push fatigue: the fourth push within the window is not sent.
    let r = login_in_background(&server, "nina", PASSWORD, None, 1)
        .join()
        .expect("login");
    let (code, msg, _) = first_reply(&r);
    assert_eq!(code, "Access-Reject");
    assert!(msg.contains("Too many"), "{msg}");
    assert_eq!(last_reason(&env, "nina", 7), "push_rate_limited");
    assert_eq!(push.pushes("/sub/nina").len(), 3);
    assert_eq!(
        server.log().matches("push approval not sent").count(),
        1,
        "one log line"
    );
    // Another user is not affected; deny on the page with the right number.
    let state = start("olaf");
    let (id, number) = number_of(&olaf, 1);
    let answer_login = login_in_background(&server, "olaf", &number, Some(state), 6);
    assert_eq!(answer(&server, &id, "deny")["post_status"], 200);
    let r = answer_login.join().expect("login");
    assert_eq!(first_reply(&r).0, "Access-Reject");
    assert_eq!(last_reason(&env, "olaf", 2), "denied_by_user");
}

fn portal_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("portal")
}

/// Runs tests/portal/push.mjs in `mode` with `envs`; its JSON line.
fn chromium(mode: &str, server: &Server, envs: &[(&str, String)]) -> Value {
    let mut cmd = Command::new("node");
    cmd.arg(portal_dir().join("push.mjs"))
        .current_dir(portal_dir())
        .env("PUSH_MODE", mode)
        .env("PUSH_PORTAL", portal_base(server));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = common::tools::output_within(&mut cmd, Duration::from_secs(180), "node push.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "push.mjs {mode} failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON from push.mjs: {stdout}"))
}

#[test]
fn web_push_device_registered_and_approved_in_chromium() {
    if !(python_ok()
        && common::require_file("/usr/bin/chromium", "apt-get install chromium")
        && common::require_tool("node", "apt-get install nodejs npm")
        && common::require_file(
            portal_dir()
                .join("node_modules/playwright-core/package.json")
                .to_str()
                .expect("utf-8"),
            "cd tests/portal && npm ci",
        ))
    {
        return;
    }
    let (env, vapid) = push_env("", false, 60);
    let vapid_public = webpush(&["vapid-public", vapid.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let push = PushService::start(env.path());
    let secret = env.add_totp_user("carmen", common::TOTP_SECRETS[2]);
    let server = env.start();
    let phone = Browser::new("/sub/carmen-phone");
    let keys: Value = serde_json::from_str(&phone.keys).expect("keys");
    let subscription = serde_json::json!({
        "endpoint": push.endpoint(&phone.path),
        "expirationTime": null,
        "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
    });

    let got = chromium(
        "register",
        &server,
        &[
            ("PUSH_USER", "carmen".to_string()),
            ("PUSH_PASSWORD", common::PASSWORD.to_string()),
            ("PUSH_CODE", common::totp_now(&secret)),
            ("PUSH_SUBSCRIPTION", subscription.to_string()),
        ],
    );
    // The page offered the public key of the VAPID key file.
    assert_eq!(got["key"], vapid_public.as_str(), "{got}");
    let devices = env.radmfa(&["user", "devices", "carmen", "--json"]).json();
    let list = devices["devices"].as_array().expect("devices");
    assert_eq!(list.len(), 1, "{devices}");
    assert_eq!(list[0]["name"], "Test phone");
    let shown = env.radmfa(&["user", "show", "carmen", "--json"]).json();
    assert_eq!(shown["method"], "push", "{shown}");

    // A login as the NAS sends it; the notification's page is approved.
    let mut req = PyRequest::access(&server).login("carmen", common::PASSWORD);
    req.timeout = 3.0;
    req.sends = 20;
    req.attrs = vec!["Calling-Station-Id=198.51.100.23".to_string()];
    let login = std::thread::spawn(move || req.send());
    let id = phone.read(&push, 1, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let page = chromium("approve", &server, &[("PUSH_ID", id)]);
    assert_eq!(page["user"], "carmen", "{page}");
    assert_eq!(page["app"], "localhost", "{page}");
    assert!(
        page["source"]
            .as_str()
            .unwrap_or_default()
            .contains("198.51.100.23"),
        "{page}"
    );
    let r = login.join().expect("login");
    assert_eq!(first_reply(&r).0, "Access-Accept", "{}", r.json);
    assert_eq!(push.pushes(&phone.path).len(), 1);
}

#[test]
fn web_push_approval_page_served_by_another_node_decides_the_owners_login() {
    if !python_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    cluster_init(&pki, 2);
    let (peer_a, peer_b) = (common::free_tcp_port(), common::free_tcp_port());
    let mut envs = Vec::new();
    for (id, listen, peer_id, peer_port) in [(1u16, peer_a, 2u16, peer_b), (2, peer_b, 1, peer_a)] {
        let env = Env::new();
        let role = if id == 1 { "primary" } else { "replica" };
        let text = std::fs::read_to_string(env.config_path())
            .expect("config")
            .replace("node_id = 7\n", &format!("node_id = {id}\n"))
            .replace(
                "[challenge]\n",
                &format!(
                    "[challenge]\ncluster_key_file = {:?}\n",
                    pki.join("cluster.key").display().to_string()
                ),
            );
        std::fs::write(env.config_path(), text).expect("config");
        let cluster = format!(
            "\n[cluster]\nlisten = \"127.0.0.1:{listen}\"\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\nforward_timeout_ms = 2000\nrole = \"{role}\"\n\n[[cluster.peer]]\nnode_id = {peer_id}\naddress = \"127.0.0.1:{peer_port}\"\n",
            ca = pki.join("ca.pem").display().to_string(),
            cert = pki.join(format!("node-{id}.pem")).display().to_string(),
            key = pki.join(format!("node-{id}.key")).display().to_string(),
        );
        push_config(&env, &pki, id, 20, &cluster);
        envs.push(env);
    }
    let vapid_public = webpush(&[
        "vapid-public",
        pki.join("vapid.key").to_str().expect("utf-8"),
    ])
    .trim()
    .to_string();
    let push = PushService::start(dir.path());
    add_push_user(&envs[0], "alma");
    let a = envs[0].start();
    let b = envs[1].start();
    let phone = Browser::new("/sub/alma");
    register(&envs[0], &push, "alma", &phone);

    // The login waits on node A; the notification's page is served by B.
    let login = login_in_background(&a, "alma", PASSWORD, None, 15);
    let id = phone.read(&push, 1, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(id.starts_with("n1-"), "{id}");
    let got = answer(&b, &id, "approve");
    assert_eq!(got["status"], 200, "{got}");
    assert!(
        got["page"].as_str().unwrap_or_default().contains("alma"),
        "{got}"
    );
    assert_eq!(got["post_status"], 200, "{got}");
    let r = login.join().expect("login");
    assert_eq!(first_reply(&r).0, "Access-Accept", "{}", r.json);
    // Answered once: node B (and A) now say it is over.
    assert_eq!(answer(&b, &id, "deny")["status"], 410);
    assert_eq!(answer(&a, &id, "deny")["status"], 410);
}

/// RD Gateway through NPS, end to end (issue 18), second factor by push:
/// the NAS side sends MS-CHAPv2 as NPS does and retransmits the same
/// datagram every 3 s for up to 60 s; radmfa proxies the first factor to
/// FreeRADIUS (standing in for NPS/AD), sends one Web Push to the user's
/// registered browser, and the approval page it opens is answered in
/// Chromium. The Accept carries MS-CHAP2-Success and the MPPE keys
/// FreeRADIUS derived, before the NAS gives up; a deny is a Reject with a
/// reason; one push per login whatever the retransmissions.
#[test]
fn rd_gateway_mschapv2_through_nps_then_push_approved_in_chromium() {
    const UP_SECRET: &str = "nps-secret-rdg-push";
    if !(python_ok()
        && common::require_tool("freeradius", "apt-get install freeradius")
        && common::require_python_module("Crypto", "pip install pycryptodome==3.21.0")
        && common::require_file("/usr/bin/chromium", "apt-get install chromium")
        && common::require_tool("node", "apt-get install nodejs npm")
        && common::require_file(
            portal_dir()
                .join("node_modules/playwright-core/package.json")
                .to_str()
                .expect("utf-8"),
            "cd tests/portal && npm ci",
        ))
    {
        return;
    }
    let up_port = common::free_udp_port();
    let (env, vapid) = push_env(
        &format!(
            "[[upstream]]\nname = \"nps\"\nservers = [\"127.0.0.1:{up_port}\"]\nsecret = \"{UP_SECRET}\"\n"
        ),
        false,
        30,
    );
    let text = std::fs::read_to_string(env.config_path())
        .expect("config")
        .replace(
            "first_factor = \"local\"\n",
            "first_factor = \"radius\"\nupstream = \"nps\"\n",
        );
    std::fs::write(env.config_path(), text).expect("config");
    let _nps = common::freeradius::start_freeradius(env.path(), up_port, UP_SECRET);
    let vapid_public = webpush(&["vapid-public", vapid.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let push = PushService::start(env.path());
    env.radmfa(&["user", "add", "mona", "--method", "push"])
        .assert_ok();
    let server = env.start();
    let phone = Browser::new("/sub/mona-phone");
    register(&env, &push, "mona", &phone);
    let addr = server.addr_string();
    let nas = |seed: &str| {
        let (addr, seed) = (addr.clone(), seed.to_string());
        std::thread::spawn(move || {
            common::freeradius::mschapv2(
                &addr,
                common::SECRET,
                "mona",
                "mona-pw",
                &seed,
                &["--retransmit", "3", "--timeout", "60"],
            )
        })
    };
    let direct = common::freeradius::mschapv2(
        &format!("127.0.0.1:{up_port}"),
        UP_SECRET,
        "mona",
        "mona-pw",
        "rdg-push-1",
        &[],
    );
    assert_eq!(direct["code"], 2, "{direct}");

    // Approved in Chromium after the NAS has retransmitted.
    let login = nas("rdg-push-1");
    let id = phone.read(&push, 1, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    std::thread::sleep(Duration::from_secs(4));
    let page = chromium("approve", &server, &[("PUSH_ID", id)]);
    assert_eq!(page["user"], "mona", "{page}");
    let r = login.join().expect("nas");
    assert_eq!(r["code"], 2, "{r}");
    assert_eq!(r["ms_chap2_success"], true, "{r}");
    assert_eq!(r["send_key"], direct["send_key"], "{r}");
    assert_eq!(r["recv_key"], direct["recv_key"], "{r}");
    assert!(r["sent"].as_u64().unwrap_or(0) >= 2, "retransmitted: {r}");
    assert!(r["elapsed"].as_f64().unwrap_or(99.0) < 60.0, "{r}");
    assert_eq!(push.pushes(&phone.path).len(), 1, "one push for the login");

    // Denied on the approval page: a Reject with a reason.
    let login = nas("rdg-push-2");
    let id = phone.read(&push, 2, &vapid_public)["message"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(answer(&server, &id, "deny")["post_status"], 200);
    let r = login.join().expect("nas");
    assert_eq!(r["code"], 3, "{r}");
    assert!(!r["reply_message"].as_str().unwrap_or("").is_empty(), "{r}");
    assert_eq!(last_reason(&env, "mona", 2), "denied_by_user");
    assert_eq!(push.pushes(&phone.path).len(), 2, "one push per login");
}
