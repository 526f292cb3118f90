//! The gateway simulator (`radmfa-gateway-sim`) as a separate HTTPS process,
//! and the radmfa configuration that points at it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ConfigOptions, Env, SECRET};

pub const API_KEY: &str = "sim-api-key-0123456789";
pub const PHONE: &str = "+15550101234";

/// The simulator binary, built next to radmfa (built on demand when only
/// this package's tests were compiled).
pub fn sim_bin() -> PathBuf {
    let dir = Path::new(super::radmfa_bin())
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

pub struct Sim {
    child: Child,
    /// `ip:port` of the simulator.
    pub addr: String,
    /// Its certificate (PEM).
    pub cert: PathBuf,
}

impl Sim {
    pub fn start(dir: &Path) -> Sim {
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
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
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
    pub fn records(&self, to: &str) -> Vec<serde_json::Value> {
        let to = to.replace('+', "%2B");
        match self.api("GET", &format!("/sim/messages?to={to}"), None) {
            serde_json::Value::Array(a) => a,
            other => panic!("unexpected /sim/messages answer: {other}"),
        }
    }

    /// SMS bodies the simulator "sent" to `to`, oldest first.
    pub fn messages(&self, to: &str) -> Vec<String> {
        self.records(to)
            .iter()
            .filter(|r| r["kind"] == "sms")
            .map(|r| r["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Sets the simulator's answer for a user (`approve`, `deny`, `after:N:RULE`, `never`...).
    pub fn rule(&self, key: &str, rule: &str) {
        self.api(
            "POST",
            "/sim/rules",
            Some(serde_json::json!({"key": key, "rule": rule})),
        );
    }

    /// Verifications the simulator received for `to`.
    pub fn verifications(&self, to: &str) -> usize {
        self.records(to)
            .iter()
            .filter(|r| r["kind"] == "verification")
            .count()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn code_in(body: &str) -> String {
    body.chars().filter(char::is_ascii_digit).collect()
}

pub fn env_with_gateway(sim: &Sim, dir: &Path, policy_extra: &str) -> Env {
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
