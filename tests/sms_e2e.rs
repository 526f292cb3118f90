//! One-way SMS end to end: the radmfa binary, the gateway simulator as a
//! separate HTTPS process, and FreeRADIUS' radclient as the NAS. The code is
//! read back from the simulator, as a user would read it from their phone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{radclient, ConfigOptions, Env, RadReply, SECRET};

const API_KEY: &str = "sim-api-key-0123456789";
const PHONE: &str = "+15550101234";

/// The simulator binary, built next to radmfa (built on demand when only
/// this package's tests were compiled).
fn sim_bin() -> PathBuf {
    let dir = Path::new(common::radmfa_bin())
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let bin = dir.join("radmfa-gateway-sim");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "radmfa-gateway-sim"])
            .status()
            .expect("cargo build radmfa-gateway-sim");
        assert!(status.success(), "cannot build radmfa-gateway-sim");
    }
    bin
}

struct Sim {
    child: Child,
    addr: String,
    cert: PathBuf,
}

impl Sim {
    fn start(dir: &Path) -> Sim {
        let ready = dir.join("sim.ready");
        let cert = dir.join("sim.pem");
        let child = Command::new(sim_bin())
            .args(["--listen", "127.0.0.1:0", "--default-rule", "approve"])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--cert-out")
            .arg(&cert)
            .env("RADMFA_SIM_API_KEY", API_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway simulator");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "simulator not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let addr = std::fs::read_to_string(&ready).expect("ready file");
        Sim {
            child,
            addr: addr.trim().to_string(),
            cert,
        }
    }

    /// Calls the simulator's HTTPS API (trusting its certificate) and
    /// returns the JSON answer.
    fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let script = r#"
import json, ssl, sys, urllib.request
addr, cert, key, method, path, body = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cert)
ctx.check_hostname = False
req = urllib.request.Request("https://%s%s" % (addr, path), method=method,
    data=body.encode() if body else None,
    headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
raw = urllib.request.urlopen(req, context=ctx, timeout=10).read()
print(raw.decode() or "null")
"#;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let out = Command::new("python3")
            .args(["-c", script, &self.addr])
            .arg(&self.cert)
            .args([API_KEY, method, path, &body])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "simulator {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// What the simulator recorded for recipient `to`, oldest first.
    fn records(&self, to: &str) -> Vec<serde_json::Value> {
        let to = to.replace('+', "%2B");
        match self.api("GET", &format!("/sim/messages?to={to}"), None) {
            serde_json::Value::Array(a) => a,
            other => panic!("unexpected /sim/messages answer: {other}"),
        }
    }

    /// SMS bodies the simulator "sent" to `to`, oldest first.
    fn messages(&self, to: &str) -> Vec<String> {
        self.records(to)
            .iter()
            .filter(|r| r["kind"] == "sms")
            .map(|r| r["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Sets the simulator's answer for a user (`approve`, `deny`, `after:N:RULE`, `never`...).
    fn rule(&self, key: &str, rule: &str) {
        self.api(
            "POST",
            "/sim/rules",
            Some(serde_json::json!({"key": key, "rule": rule})),
        );
    }

    /// Verifications the simulator received for `to`.
    fn verifications(&self, to: &str) -> usize {
        self.records(to)
            .iter()
            .filter(|r| r["kind"] == "verification")
            .count()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn code_in(body: &str) -> String {
    body.chars().filter(char::is_ascii_digit).collect()
}

fn env_with_gateway(sim: &Sim, dir: &Path, policy_extra: &str) -> Env {
    let key_file = dir.join("gateway.key");
    std::fs::write(&key_file, API_KEY).expect("key file");
    let extra = format!(
        "[gateway]\nurl = \"https://{}\"\napi_key_file = {:?}\nca_file = {:?}\ntimeout_ms = 2000\nretries = 0\n\n[[policy]]\nname = \"sms\"\n{policy_extra}\n\n[[client]]\nname = \"vpn\"\naddress = \"127.0.0.1/32\"\nsecret = \"{SECRET}\"\npolicy = \"sms\"\n",
        sim.addr,
        key_file.display().to_string(),
        sim.cert.display().to_string()
    );
    // The harness's own client moves aside; ours uses the "sms" policy.
    Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..ConfigOptions::default()
    })
}

fn login(addr: &str, user: &str, password: &str, state: Option<&str>) -> RadReply {
    let mut input = format!("User-Name = \"{user}\"\nUser-Password = \"{password}\"\n");
    if let Some(s) = state {
        input.push_str(&format!("State = {s}\n"));
    }
    input.push_str("Message-Authenticator = 0x00\n");
    radclient(addr, "auth", SECRET, &input)
}

fn add_sms_user(env: &Env, name: &str) {
    env.radmfa_stdin(
        &[
            "user",
            "add",
            name,
            "--method",
            "sms",
            "--phone",
            PHONE,
            "--password-stdin",
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
}

#[test]
fn one_way_sms_login_through_radclient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    add_sms_user(&env, "sam");
    let server = env.start();
    let addr = server.addr_string();

    let r = login(&addr, "sam", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    assert!(
        r.text("Reply-Message").unwrap_or_default().contains("1234"),
        "{}",
        r.output
    );
    let state = r.attr("State").expect("State").to_string();
    let sent = sim.messages(PHONE);
    assert_eq!(sent.len(), 1, "exactly one SMS: {sent:?}");
    let code = code_in(&sent[0]);
    assert_eq!(code.len(), 6, "{sent:?}");

    // A wrong code re-prompts with the same State while attempts remain.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = login(&addr, "sam", wrong, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    // The right code then signs in.
    let r = login(&addr, "sam", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    // The State is single use.
    let r = login(&addr, "sam", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    // Wrong password: no SMS is sent.
    let r = login(&addr, "sam", "nope", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(sim.messages(PHONE).len(), 1);
    let recs = env.wait_report_len(&["--user", "sam"], 5);
    assert!(recs.iter().any(|r| r["reason"] == "sms_sent"), "{recs:?}");
}

#[test]
fn fail_modes_when_the_gateway_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "fail_mode = \"totp_only\"");
    add_sms_user(&env, "sam");
    add_sms_user(&env, "tina");
    env.enroll("tina", common::TOTP_SECRETS[0]).assert_ok();
    let server = env.start();
    let addr = server.addr_string();
    sim.stop();

    // No authenticator app: rejected with a message saying why.
    let r = login(&addr, "sam", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("could not send"),
        "{}",
        r.output
    );
    // With an authenticator app: a TOTP challenge instead.
    let r = login(&addr, "tina", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let recs = env.wait_report_len(&["--user", "tina"], 1);
    assert_eq!(recs[0]["reason"], "gateway_unreachable_totp_fallback");
}

fn add_oob_user(env: &Env, name: &str, method: &str, phone: &str) {
    env.radmfa_stdin(
        &[
            "user",
            "add",
            name,
            "--method",
            method,
            "--phone",
            phone,
            "--password-stdin",
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
}

#[test]
fn two_way_sms_and_call_wait_for_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    add_oob_user(&env, "dana", "call", "+15550102001");
    add_oob_user(&env, "eve", "sms_two_way", "+15550102002");
    add_oob_user(&env, "fred", "call", "+15550102003");
    sim.rule("eve", "deny");
    sim.rule("fred", "after:3:approve");
    let server = env.start();
    let addr = server.addr_string();

    let r = login(&addr, "dana", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let r = login(&addr, "eve", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("denied"),
        "{}",
        r.output
    );
    // Wrong password: no call is placed.
    let r = login(&addr, "dana", "wrong", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(sim.verifications("+15550102001"), 1);

    // The NAS retransmits every second while the user takes 3 s to answer:
    // the copies are absorbed, one login is one call.
    let out = Command::new("radclient")
        .args(["-x", "-r", "6", "-t", "1", &addr, "auth", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"User-Name = \"fred\"\nUser-Password = \"correct-horse\"\nMessage-Authenticator = 0x00\n")?;
            c.wait_with_output()
        })
        .expect("radclient");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Received Access-Accept"), "{text}");
    assert_eq!(
        sim.verifications("+15550102003"),
        1,
        "exactly one call for one login"
    );
    assert!(
        env.counter("duplicates_in_flight_dropped") >= 1,
        "{:?}",
        env.stats()
    );
}
