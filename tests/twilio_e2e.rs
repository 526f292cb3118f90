//! Twilio voice calls and two-way SMS end to end: the real binary, radclient
//! as the NAS, and a Twilio-shaped simulator (`tests/py/twilio_sim.py`) that
//! takes the Calls/Messages REST requests like Twilio and plays the user by
//! posting the callbacks signed with Twilio's own helper library (PyPI
//! `twilio`, `RequestValidator`) to the portal listener.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{auth_input, radclient_opts, Env, RadReply, SECRET};
use serde_json::{json, Value};

const SID: &str = "ACe2e0123456789";
const TOKEN: &str = "twilio-auth-token-e2e";
const FROM: &str = "+15005550006";
const POLICY_FROM: &str = "+15005550007";
/// How long a login may wait for its verdict in these tests.
const VERDICT_SECS: u64 = 8;

fn have_peers() -> bool {
    common::require_python_module("twilio", "pip install twilio==9.13.0")
        && common::require_tool("radclient", "apt-get install freeradius-utils")
        && common::require_tool("openssl", "apt-get install openssl")
}

/// The simulator process.
struct TwilioSim {
    child: Child,
    addr: String,
    cert: PathBuf,
}

impl Drop for TwilioSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TwilioSim {
    /// Starts it in `dir`; it trusts `callback_ca` for radmfa's portal.
    fn start(dir: &Path, callback_ca: &Path) -> TwilioSim {
        let child = Command::new("python3")
            .arg(common::py_dir().join("twilio_sim.py"))
            .arg("--dir")
            .arg(dir)
            .args(["--sid", SID, "--token", TOKEN, "--callback-ca"])
            .arg(callback_ca)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 tests/py/twilio_sim.py");
        let ready = dir.join("twilio.ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "twilio_sim.py not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        TwilioSim {
            child,
            addr: std::fs::read_to_string(&ready)
                .expect("ready")
                .trim()
                .into(),
            cert: dir.join("twilio.pem"),
        }
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let script = r#"
import json, ssl, sys, urllib.request
addr, cert, method, path, body = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cert)
req = urllib.request.Request("https://%s%s" % (addr, path), method=method,
    data=body.encode() if body else None, headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, context=ctx, timeout=30).read().decode() or "null")
"#;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let out = Command::new("python3")
            .args(["-c", script, &self.addr])
            .arg(&self.cert)
            .args([method, path, &body])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "twilio sim {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn rule(&self, to: &str, rule: &str) {
        self.api("POST", "/sim/rules", Some(json!({"to": to, "rule": rule})));
    }

    /// REST requests received for `to`, oldest first.
    fn requests(&self, to: &str) -> Vec<Value> {
        let all = self.api("GET", "/sim/requests", None);
        all.as_array()
            .expect("array")
            .iter()
            .filter(|r| r["form"]["To"] == to)
            .cloned()
            .collect()
    }

    /// Callbacks posted whose URL contains `part`, oldest first.
    fn callbacks(&self, part: &str) -> Vec<Value> {
        let all = self.api("GET", "/sim/callbacks", None);
        all.as_array()
            .expect("array")
            .iter()
            .filter(|c| c["url"].as_str().unwrap_or("").contains(part))
            .cloned()
            .collect()
    }

    /// Posts one signed (or not) callback now; returns (status, body).
    fn post(&self, url: &str, params: Value, sign: &str) -> (u64, String) {
        let r = self.api(
            "POST",
            "/sim/post",
            Some(json!({"url": url, "params": params, "sign": sign})),
        );
        (
            r["status"].as_u64().unwrap_or(0),
            r["body"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Waits until `n` requests for `to` were received.
    fn wait_requests(&self, to: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.requests(to);
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{n} requests for {to}: {got:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The cluster CA and a certificate for each node id (portal and peer link).
fn pki(dir: &Path, ids: &[&str]) -> PathBuf {
    let certs = dir.join("certs");
    let c = certs.to_str().expect("utf-8");
    common::run_radmfa(&["cluster", "ca", "--dir", c], None, dir).assert_ok();
    for id in ids {
        common::run_radmfa(&["cluster", "cert", "--dir", c, "--node-id", id], None, dir)
            .assert_ok();
    }
    certs
}

/// A node whose gateway is the simulator, whose portal listens on
/// `portal_port`, and whose callback URL is `callback_base` (the address
/// "Twilio" reaches: in a cluster, any node).
fn twilio_env(
    sim: &TwilioSim,
    dir: &Path,
    certs: &Path,
    node_id: u16,
    portal_port: u16,
    callback_base: &str,
) -> Env {
    let token = dir.join("twilio.token");
    std::fs::write(&token, TOKEN).expect("token");
    let extra = format!(
        "[gateway]\nprovider = \"twilio\"\nurl = \"https://{addr}\"\napi_key_file = {token:?}\nca_file = {ca:?}\n\
         account_sid = \"{SID}\"\nfrom_number = \"{FROM}\"\ntimeout_ms = 5000\nretries = 0\n\
         verdict_timeout_secs = {VERDICT_SECS}\ncallback_url = \"{callback_base}\"\n\n\
         [portal]\nlisten = \"127.0.0.1:{portal_port}\"\ncert = {cert:?}\nkey = {key:?}\n\n\
         [[policy]]\nname = \"oob\"\nfrom_number = \"{POLICY_FROM}\"\n\n\
         [[client]]\nname = \"rdgw\"\naddress = \"127.0.0.1/32\"\nsecret = \"{SECRET}\"\npolicy = \"oob\"\n\n\
         [limits]\nuser_per_minute = 0\n",
        addr = sim.addr,
        token = token.display().to_string(),
        ca = sim.cert.display().to_string(),
        cert = certs.join(format!("node-{node_id}.pem")).display().to_string(),
        key = certs.join(format!("node-{node_id}.key")).display().to_string(),
    );
    let env = Env::with_options(common::ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..common::ConfigOptions::default()
    });
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text.replace("node_id = 7\n", &format!("node_id = {node_id}\n"));
    std::fs::write(env.config_path(), text).expect("config");
    env
}

fn add_user(env: &Env, name: &str, method: &str, phone: &str) {
    env.radmfa_stdin(
        &[
            "user",
            "add",
            name,
            "--password-stdin",
            "--method",
            method,
            "--phone",
            phone,
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
}

/// An Access-Request that may wait for its verdict (radclient, one try).
fn oob_login(addr: &str, user: &str) -> (RadReply, Duration) {
    let started = Instant::now();
    let r = radclient_opts(
        addr,
        "auth",
        SECRET,
        &auth_input(user, "correct-horse"),
        (VERDICT_SECS + 10) as u32,
    );
    (r, started.elapsed())
}

/// The verification id of a Calls request (the end of its StatusCallback).
fn verification_id(req: &Value) -> String {
    req["form"]["StatusCallback"]
        .as_str()
        .expect("status url")
        .rsplit('/')
        .next()
        .expect("id")
        .to_string()
}

/// Asserts that once `user` has `n` audit records, one has `reason` (alone
/// or followed by what it led to, as `fraud_reported+locked_out`).
#[track_caller]
fn assert_reason(env: &Env, user: &str, n: usize, reason: &str) {
    let records = env.wait_report_len(&["--user", user], n);
    assert!(
        records.iter().any(|r| {
            let got = r["reason"].as_str().unwrap_or("");
            got == reason || got.starts_with(&format!("{reason}+"))
        }),
        "{user}: no {reason} in {records:#?}"
    );
}

/// One node (id 7) whose portal port Twilio reaches directly; `None`
/// without the test's peers.
fn single_node() -> Option<(tempfile::TempDir, TwilioSim, u16, Env)> {
    if !have_peers() {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = pki(dir.path(), &["7"]);
    let sim = TwilioSim::start(dir.path(), &certs.join("ca.pem"));
    let port = common::free_tcp_port();
    let base = format!("https://127.0.0.1:{port}");
    let env = twilio_env(&sim, dir.path(), &certs, 7, port, &base);
    Some((dir, sim, port, env))
}

#[test]
fn twilio_calls_standard_pin_fraud_statuses_and_forged_callbacks() {
    let Some((_dir, sim, port, env)) = single_node() else {
        return;
    };
    for (name, phone) in [
        ("alice", "+15550300001"),
        ("pete", "+15550300002"),
        ("fred", "+15550300003"),
        ("bob", "+15550300004"),
        ("nora", "+15550300005"),
        ("carl", "+15550300006"),
        ("dave", "+15550300007"),
    ] {
        add_user(&env, name, "call", phone);
    }
    env.radmfa_stdin(
        &["user", "pin", "pete", "--pin-stdin", "--no-change"],
        Some("4711\n"),
    )
    .assert_ok();
    // alice's desk phone has an extension (set by the CSV import).
    let csv = env.path().join("ext.csv");
    std::fs::write(&csv, "name,extension\nalice,12w#\n").expect("write csv");
    env.radmfa(&["user", "import", "--csv", csv.to_str().expect("utf-8")])
        .assert_ok();
    let server = env.start();
    let addr = server.addr_string();

    // Standard mode: # approves. The call carries inline TwiML whose Gather
    // posts to our voice callback, and a StatusCallback; the policy's caller ID.
    sim.rule("+15550300001", "keys:#");
    let (r, _) = oob_login(&addr, "alice");
    common::expect(&r, "Access-Accept");
    let call = &sim.requests("+15550300001")[0]["form"];
    assert_eq!(call["From"], POLICY_FROM);
    assert_eq!(call["SendDigits"], "12w#", "{call}");
    let twiml = call["Twiml"].as_str().expect("Twiml");
    let voice = format!("https://127.0.0.1:{port}/callback/twilio/voice/n7-");
    assert!(twiml.contains(&format!("action=\"{voice}")), "{twiml}");
    assert!(call["StatusCallback"]
        .as_str()
        .unwrap_or("")
        .starts_with(&format!(
            "https://127.0.0.1:{port}/callback/twilio/status/n7-"
        )));
    assert_reason(&env, "alice", 1, "ok");

    // PIN mode: the PIN then #, checked by radmfa; never sent to Twilio.
    sim.rule("+15550300002", "keys:4711#");
    common::expect(&oob_login(&addr, "pete").0, "Access-Accept");
    sim.rule("+15550300002", "keys:1234#");
    let (r, took) = oob_login(&addr, "pete");
    common::expect(&r, "Access-Reject");
    assert!(took < Duration::from_secs(VERDICT_SECS / 2), "{took:?}");
    assert_reason(&env, "pete", 2, "wrong_pin");
    for req in sim.requests("+15550300002") {
        // (The random verification id may hold any digits: left out.)
        let id = verification_id(&req);
        let sent = req.to_string().replace(&id, "");
        assert!(!sent.contains("4711"), "PIN sent to Twilio: {req}");
        // No extension: no SendDigits.
        assert!(req["form"].get("SendDigits").is_none(), "{req}");
    }

    // The fraud key reports fraud and locks the user: the next login is
    // refused without a call.
    sim.rule("+15550300003", "keys:0");
    common::expect(&oob_login(&addr, "fred").0, "Access-Reject");
    assert_reason(&env, "fred", 1, "fraud_reported");
    common::expect(&oob_login(&addr, "fred").0, "Access-Reject");
    assert_eq!(sim.requests("+15550300003").len(), 1);

    // Busy and no answer end the wait at once, each with its own reason.
    for (user, phone, status, reason) in [
        ("bob", "+15550300004", "busy", "call_busy"),
        ("nora", "+15550300005", "no-answer", "call_no_answer"),
    ] {
        sim.rule(phone, &format!("status:{status}"));
        let (r, took) = oob_login(&addr, user);
        common::expect(&r, "Access-Reject");
        assert!(took < Duration::from_secs(VERDICT_SECS / 2), "{took:?}");
        assert_reason(&env, user, 1, reason);
    }

    // Unsigned and wrongly signed callbacks: 403, counted, nothing changes
    // (the login runs to its timeout).
    for (i, rule) in ["nosig:keys:#", "badsig:keys:#"].iter().enumerate() {
        sim.rule("+15550300006", rule);
        let (r, took) = oob_login(&addr, "carl");
        common::expect(&r, "Access-Reject");
        assert!(took >= Duration::from_secs(VERDICT_SECS - 1), "{took:?}");
        assert_reason(&env, "carl", i + 1, "no_answer");
    }
    let carl = sim.callbacks("/callback/twilio/");
    let refused: Vec<_> = carl.iter().filter(|c| c["status"] == 403).collect();
    assert_eq!(refused.len(), 4, "voice + status, twice: {carl:?}");
    assert!(env.counter("callbacks_bad_signature") >= 4);
    assert!(
        server.log().contains("X-Twilio-Signature"),
        "{}",
        server.log()
    );

    // A replayed callback changes nothing: the login was approved once, the
    // second post (and a later one with other keys) is answered "no longer
    // valid".
    sim.rule("+15550300007", "replay:keys:#");
    common::expect(&oob_login(&addr, "dave").0, "Access-Accept");
    let id = verification_id(&sim.requests("+15550300007")[0]);
    let posts = sim.callbacks(&format!("/voice/{id}"));
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(posts[0]["body"].as_str().unwrap_or("").contains("approved"));
    assert!(posts[1]["body"]
        .as_str()
        .unwrap_or("")
        .contains("no longer valid"));
    let (status, body) = sim.post(
        posts[0]["url"].as_str().expect("url"),
        json!({"CallSid": "CAx", "Digits": "0", "CallStatus": "in-progress"}),
        "valid",
    );
    assert_eq!(status, 200);
    assert!(body.contains("no longer valid"), "{body}");
    assert_reason(&env, "dave", 1, "ok");

    // What the caller hears after answering is in the language the call
    // spoke (the action URL carries it, signed): dave now reads Dutch.
    env.radmfa(&["user", "set", "dave", "--language", "nl"])
        .assert_ok();
    common::expect(&oob_login(&addr, "dave").0, "Access-Accept");
    let id = verification_id(&sim.requests("+15550300007")[1]);
    let posts = sim.callbacks(&format!("/voice/{id}"));
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(
        posts[0]["url"].as_str().unwrap_or("").ends_with("?lang=nl"),
        "{posts:?}"
    );
    let heard = |i: usize| posts[i]["body"].as_str().unwrap_or("").to_string();
    let nl = |key: &str| common::i18n::text("nl", key, &[]);
    assert!(heard(0).contains(&nl("call.approved")), "{}", heard(0));
    assert!(heard(0).contains("language=\"nl-NL\""), "{}", heard(0));
    assert!(
        heard(1).contains(&nl("call.no_longer_valid")),
        "{}",
        heard(1)
    );
    assert!(heard(1).contains(&nl("call.goodbye")), "{}", heard(1));
    // Spot check written here, not read from the file.
    assert!(heard(0).contains("Dank u"), "{}", heard(0));
}

/// Starts `n` logins of `user` at once (each its own radclient, so none is
/// a duplicate of another); join the handles for the replies.
fn logins_in_background(
    addr: &str,
    user: &str,
    n: usize,
) -> Vec<std::thread::JoinHandle<RadReply>> {
    (0..n)
        .map(|_| {
            let (addr, user) = (addr.to_string(), user.to_string());
            std::thread::spawn(move || oob_login(&addr, &user).0)
        })
        .collect()
}

/// The reference in a two-way SMS body (the digits after YES, or JA in
/// German and Dutch).
fn reference(body: &str) -> String {
    let after = ["YES ", "JA "]
        .iter()
        .find_map(|w| body.split(w).nth(1))
        .expect("YES or JA in the text");
    after.chars().take_while(char::is_ascii_digit).collect()
}

#[test]
fn twilio_two_way_sms_replies_matched_by_number_and_reference() {
    let Some((_dir, sim, port, env)) = single_node() else {
        return;
    };
    let base = format!("https://127.0.0.1:{port}");
    let phone = "+15550400001";
    add_user(&env, "sam", "sms_two_way", phone);
    add_user(&env, "olga", "sms", "+15550400002");
    let server = env.start();
    let addr = server.addr_string();
    let webhook = format!("{base}/callback/twilio/sms");
    let reply = |body: &str, sign: &str| {
        sim.post(
            &webhook,
            json!({"MessageSid": "SMin", "AccountSid": SID, "From": phone, "To": POLICY_FROM, "Body": body, "NumMedia": "0"}),
            sign,
        )
    };

    // Approve with the reference.
    let pending = logins_in_background(&addr, "sam", 1);
    let sent = sim.wait_requests(phone, 1);
    assert_eq!(sent[0]["kind"], "Messages");
    assert_eq!(sent[0]["form"]["From"], POLICY_FROM);
    let body = sent[0]["form"]["Body"].as_str().expect("Body").to_string();
    assert!(body.contains("rdgw"), "{body}");
    // Unsigned and wrongly signed replies change nothing.
    assert_eq!(reply(&format!("YES {}", reference(&body)), "none").0, 403);
    assert_eq!(reply(&format!("YES {}", reference(&body)), "wrong").0, 403);
    let (status, answer) = reply(&format!("yes {}", reference(&body)), "valid");
    assert_eq!(status, 200);
    assert!(answer.contains("Sign-in approved"), "{answer}");
    for h in pending {
        common::expect(&h.join().expect("login"), "Access-Accept");
    }
    // A replay of the same reply finds nothing waiting.
    let (_, answer) = reply(&format!("yes {}", reference(&body)), "valid");
    assert!(answer.contains("No sign-in is waiting"), "{answer}");

    // Deny without a reference: the one waiting verification of this number.
    let pending = logins_in_background(&addr, "sam", 1);
    sim.wait_requests(phone, 2);
    let (_, answer) = reply("No", "valid");
    assert!(answer.contains("denied"), "{answer}");
    for h in pending {
        common::expect(&h.join().expect("login"), "Access-Reject");
    }
    assert_reason(&env, "sam", 2, "denied_by_user");

    // Two waiting: a reply without a reference is ambiguous and changes
    // nothing; with references each reaches its own login.
    let pending = logins_in_background(&addr, "sam", 2);
    let sent = sim.wait_requests(phone, 4);
    let refs: Vec<String> = sent[2..]
        .iter()
        .map(|r| reference(r["form"]["Body"].as_str().expect("Body")))
        .collect();
    assert_ne!(refs[0], refs[1]);
    let (_, answer) = reply("yes", "valid");
    assert!(answer.contains("Several sign-ins"), "{answer}");
    assert!(reply(&format!("NO {}", refs[1]), "valid")
        .1
        .contains("denied"));
    assert!(reply(&format!("{} YES", refs[0]), "valid")
        .1
        .contains("approved"));
    let mut codes: Vec<String> = pending
        .into_iter()
        .map(|h| h.join().expect("login").code.unwrap_or_default())
        .collect();
    codes.sort();
    assert_eq!(codes, ["Access-Accept", "Access-Reject"]);
    assert!(env.counter("callbacks_bad_signature") >= 2);

    // A German user: the text asks for JA/NEIN and the answer to the reply
    // is German too (the owner tells the callback the user's language).
    env.radmfa(&["user", "set", "sam", "--language", "de"])
        .assert_ok();
    let pending = logins_in_background(&addr, "sam", 1);
    let sent = sim.wait_requests(phone, 5);
    let body = sent[4]["form"]["Body"].as_str().expect("Body").to_string();
    assert!(body.contains("NEIN"), "{body}");
    let (_, answer) = reply(&format!("ja {}", reference(&body)), "valid");
    assert!(
        answer.contains(&common::i18n::text("de", "sms.reply_approved", &[])),
        "{answer}"
    );
    assert!(answer.contains("Anmeldung genehmigt"), "{answer}");
    for h in pending {
        common::expect(&h.join().expect("login"), "Access-Accept");
    }

    // A one-way SMS code goes out under the policy's sender number too.
    let r = common::login(&addr, "olga", "correct-horse", None);
    common::expect(&r, "Access-Challenge");
    let sent = sim.wait_requests("+15550400002", 1);
    assert_eq!(sent[0]["form"]["From"], POLICY_FROM);
}

#[test]
fn twilio_callback_reaching_another_node_decides_the_owners_login() {
    if !have_peers() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = pki(dir.path(), &["1", "2"]);
    let sim = TwilioSim::start(dir.path(), &certs.join("ca.pem"));
    let (portal_a, portal_b) = (common::free_tcp_port(), common::free_tcp_port());
    let (peer_a, peer_b) = (common::free_tcp_port(), common::free_tcp_port());
    // "Twilio" reaches the cluster through one address: here node B's
    // portal, as if the reverse proxy had picked B.
    let base = format!("https://127.0.0.1:{portal_b}");
    let cluster_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let mut envs = Vec::new();
    for (id, portal, listen, peer_id, peer_port) in [
        (1u16, portal_a, peer_a, 2u16, peer_b),
        (2, portal_b, peer_b, 1, peer_a),
    ] {
        let node_dir = dir.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir).expect("dir");
        let env = twilio_env(&sim, &node_dir, &certs, id, portal, &base);
        std::fs::create_dir_all(env.data_dir()).expect("data dir");
        let key = env.data_dir().join("cluster.key");
        std::fs::write(&key, format!("{cluster_key}\n")).expect("key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let role = if id == 1 { "primary" } else { "replica" };
        let mut text = std::fs::read_to_string(env.config_path()).expect("config");
        text.push_str(&format!(
            "\n[cluster]\nlisten = \"127.0.0.1:{listen}\"\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\nforward_timeout_ms = 2000\nrole = \"{role}\"\n\n[[cluster.peer]]\nnode_id = {peer_id}\naddress = \"127.0.0.1:{peer_port}\"\n",
            ca = certs.join("ca.pem").display().to_string(),
            cert = certs.join(format!("node-{id}.pem")).display().to_string(),
            key = certs.join(format!("node-{id}.key")).display().to_string(),
        ));
        std::fs::write(env.config_path(), text).expect("config");
        env.radmfa(&["check-config"]).assert_ok();
        envs.push(env);
    }
    add_user(&envs[0], "alice", "call", "+15550500001");
    add_user(&envs[0], "sue", "sms_two_way", "+15550500002");
    let a = envs[0].start();
    let _b = envs[1].start();
    sim.rule("+15550500001", "keys:#");
    let (r, took) = oob_login(&a.addr_string(), "alice");
    common::expect(&r, "Access-Accept");
    assert!(took < Duration::from_secs(VERDICT_SECS / 2), "{took:?}");
    let posts = sim.callbacks("/voice/n1-");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0]["url"]
        .as_str()
        .unwrap_or("")
        .starts_with(&format!("{base}/callback/twilio/voice/n1-")));
    assert_eq!(posts[0]["status"], 200);
    // Node B counted it as decided (through node A).
    assert_eq!(envs[1].counter("callbacks_decided"), 1);
    assert_reason(&envs[0], "alice", 1, "ok");

    // An SMS reply reaching node B: with its reference (which names node 1)
    // it goes straight to A; without one, B finds nothing waiting for the
    // number here and asks its peer.
    for (i, with_reference) in [true, false].into_iter().enumerate() {
        let pending = logins_in_background(&a.addr_string(), "sue", 1);
        let sent = sim.wait_requests("+15550500002", i + 1);
        let text = sent[i]["form"]["Body"].as_str().expect("Body");
        let r = reference(text);
        assert!(r.ends_with('1'), "the reference names node 1: {text}");
        let body = if with_reference {
            format!("YES {r}")
        } else {
            "yes".to_string()
        };
        let (status, answer) = sim.post(
            &format!("{base}/callback/twilio/sms"),
            json!({"MessageSid": "SMin", "AccountSid": SID, "From": "+15550500002", "To": POLICY_FROM, "Body": body}),
            "valid",
        );
        assert_eq!(status, 200);
        assert!(answer.contains("approved"), "{answer}");
        for h in pending {
            common::expect(&h.join().expect("login"), "Access-Accept");
        }
    }
    assert_eq!(envs[1].counter("callbacks_decided"), 3);
}

/// RD Gateway through NPS, end to end (issue 18), second factor by phone
/// call: the NAS side sends MS-CHAPv2 as NPS does and retransmits the same
/// datagram every 3 s for up to 60 s (RD Gateway's RADIUS timeout raised
/// for out-of-band MFA); radmfa proxies the first factor to FreeRADIUS
/// (standing in for NPS/AD), places one Twilio call and waits; the test
/// plays Twilio by posting the call's callbacks signed with Twilio's own
/// library. One call per login whatever the retransmissions; the Accept
/// carries MS-CHAP2-Success and the MPPE keys FreeRADIUS derived, before the
/// NAS gives up; deny, no answer and silence end in a Reject with a reason.
#[test]
fn rd_gateway_mschapv2_through_nps_then_one_twilio_call_under_retransmissions() {
    const UP_SECRET: &str = "nps-secret-rdg-42";
    const PHONE: &str = "+15550400001";
    if !(have_peers()
        && common::require_tool("freeradius", "apt-get install freeradius")
        && common::require_python_module("Crypto", "pip install pycryptodome==3.21.0"))
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = pki(dir.path(), &["7"]);
    let sim = TwilioSim::start(dir.path(), &certs.join("ca.pem"));
    let up_port = common::free_udp_port();
    let _nps = common::freeradius::start_freeradius(dir.path(), up_port, UP_SECRET);
    let port = common::free_tcp_port();
    let base = format!("https://127.0.0.1:{port}");
    let env = twilio_env(&sim, dir.path(), &certs, 7, port, &base);
    // The policy proxies the first factor to "NPS"; a verdict may take 20 s
    // (the NAS waits up to 60 s).
    let text = std::fs::read_to_string(env.config_path())
        .expect("config")
        .replace(
            "[[policy]]\nname = \"oob\"\n",
            "[[policy]]\nname = \"oob\"\nfirst_factor = \"radius\"\nupstream = \"nps\"\n",
        )
        .replace(
            &format!("verdict_timeout_secs = {VERDICT_SECS}\n"),
            "verdict_timeout_secs = 20\n",
        );
    std::fs::write(
        env.config_path(),
        format!(
            "{text}\n[[upstream]]\nname = \"nps\"\nservers = [\"127.0.0.1:{up_port}\"]\nsecret = \"{UP_SECRET}\"\n"
        ),
    )
    .expect("config");
    env.radmfa(&["user", "add", "mona", "--method", "call", "--phone", PHONE])
        .assert_ok();
    let server = env.start();
    let addr = server.addr_string();
    let nas = |seed: &str| {
        let addr = addr.clone();
        let seed = seed.to_string();
        std::thread::spawn(move || {
            common::freeradius::mschapv2(
                &addr,
                SECRET,
                "mona",
                "mona-pw",
                &seed,
                &["--retransmit", "3", "--timeout", "60"],
            )
        })
    };
    // Answers call number `n` (1-based) with `params` after `after`.
    let answer = |n: usize, after: Duration, params: Value| {
        let call = sim.wait_requests(PHONE, n)[n - 1].clone();
        let id = verification_id(&call);
        std::thread::sleep(after);
        let (status, _) = sim.post(
            &format!("{base}/callback/twilio/voice/{id}"),
            params,
            "valid",
        );
        assert_eq!(status, 200);
        call
    };
    let keys = |digits: &str| {
        json!({"AccountSid": SID, "CallSid": "CArdg", "From": POLICY_FROM, "To": PHONE,
               "CallStatus": "in-progress", "Digits": digits})
    };

    // The keys FreeRADIUS itself derives for this exchange.
    let direct = common::freeradius::mschapv2(
        &format!("127.0.0.1:{up_port}"),
        UP_SECRET,
        "mona",
        "mona-pw",
        "rdg-1",
        &[],
    );
    assert_eq!(direct["code"], 2, "{direct}");

    // 1. Approved with # after 7 s: the NAS has retransmitted meanwhile.
    sim.rule(PHONE, "silent");
    let login = nas("rdg-1");
    answer(1, Duration::from_secs(7), keys("#"));
    let r = login.join().expect("nas");
    assert_eq!(r["code"], 2, "{r}");
    assert_eq!(r["ms_chap2_success"], true, "{r}");
    assert_eq!(r["send_key"], direct["send_key"], "{r}");
    assert_eq!(r["recv_key"], direct["recv_key"], "{r}");
    assert_eq!(r["message_authenticator_valid"], true);
    assert!(r["sent"].as_u64().unwrap_or(0) >= 3, "retransmitted: {r}");
    assert!(r["elapsed"].as_f64().unwrap_or(99.0) < 60.0, "{r}");
    assert_eq!(sim.requests(PHONE).len(), 1, "one call for the login");
    assert_reason(&env, "mona", 1, "ok");

    // 2. Denied on the phone (another key): a Reject with a reason.
    let login = nas("rdg-2");
    answer(2, Duration::from_secs(4), keys("5"));
    let r = login.join().expect("nas");
    assert_eq!(r["code"], 3, "{r}");
    assert!(!r["reply_message"].as_str().unwrap_or("").is_empty(), "{r}");
    assert_eq!(sim.requests(PHONE).len(), 2);
    assert_reason(&env, "mona", 2, "denied_by_user");

    // 3. The call rings out: Twilio's status callback ends the wait at once.
    sim.rule(PHONE, "status:no-answer");
    let r = nas("rdg-3").join().expect("nas");
    assert_eq!(r["code"], 3, "{r}");
    assert!(r["elapsed"].as_f64().unwrap_or(99.0) < 15.0, "{r}");
    assert_eq!(sim.requests(PHONE).len(), 3);
    assert_reason(&env, "mona", 3, "call_no_answer");

    // 4. Nobody answers and Twilio says nothing: radmfa's verdict timeout
    //    (20 s) rejects before the NAS gives up (60 s).
    sim.rule(PHONE, "silent");
    let r = nas("rdg-4").join().expect("nas");
    assert_eq!(r["code"], 3, "{r}");
    let took = r["elapsed"].as_f64().unwrap_or(99.0);
    assert!((19.0..60.0).contains(&took), "{r}");
    assert_eq!(sim.requests(PHONE).len(), 4, "still one call per login");
    assert_reason(&env, "mona", 4, "no_answer");
}
