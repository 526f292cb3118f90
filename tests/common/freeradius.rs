//! FreeRADIUS as the upstream RADIUS server (standing in for NPS / Active
//! Directory): `tests/freeradius/upstream.sh` writes its configuration (users
//! victor, mona, ... with their passwords), and [`start_freeradius`] runs it
//! in the foreground on loopback until the returned guard is dropped.
//! [`mschapv2`] plays the NAS side NPS plays towards radmfa: one MS-CHAPv2
//! Access-Request (`tests/py/mschapv2.py`), optionally retransmitted.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running FreeRADIUS, killed on drop.
pub struct FreeRadius(Child);

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes the configuration under `dir`, starts FreeRADIUS on `127.0.0.1:port`
/// with `secret` for its client 127.0.0.1 and waits until it accepts a login.
pub fn start_freeradius(dir: &Path, port: u16, secret: &str) -> FreeRadius {
    start_freeradius_acct(dir, port, secret, None)
}

/// [`start_freeradius`], answering Accounting-Requests on `acct_port` too
/// (written to `DIR/freeradius/log/detail`).
pub fn start_freeradius_acct(
    dir: &Path,
    port: u16,
    secret: &str,
    acct_port: Option<u16>,
) -> FreeRadius {
    let script = super::py_dir()
        .parent()
        .expect("tests dir")
        .join("freeradius/upstream.sh");
    let conf = dir.join("freeradius");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&conf)
        .arg(port.to_string())
        .arg(secret)
        .args(acct_port.map(|p| p.to_string()))
        .output()
        .expect("bash upstream.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = Command::new("freeradius")
        .args(["-f", "-d"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("freeradius (apt-get install freeradius)");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = super::radclient_opts(
            &format!("127.0.0.1:{port}"),
            "auth",
            secret,
            "User-Name = \"victor\"\nUser-Password = \"victor-pw\"\nMessage-Authenticator = 0x00\n",
            1,
        );
        if r.code.as_deref() == Some("Access-Accept") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "FreeRADIUS not ready: {}",
            r.output
        );
    }
    FreeRadius(child)
}

/// Runs tests/py/mschapv2.py against `server` (`--seed`: fixed challenges,
/// so the same seed gives the same MPPE keys; `extra`: e.g. `--retransmit 3
/// --timeout 60`) and returns its JSON.
pub fn mschapv2(
    server: &str,
    secret: &str,
    user: &str,
    password: &str,
    seed: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(super::py_dir().join("mschapv2.py"))
        .args(["--server", server, "--secret", secret, "--user", user])
        .args(["--password", password, "--seed", seed])
        .args(extra)
        .output()
        .expect("python3 mschapv2.py");
    assert!(
        out.status.success(),
        "mschapv2.py (needs pycryptodome): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}
