//! FreeRADIUS as the upstream RADIUS server (standing in for NPS / Active
//! Directory): `tests/freeradius/upstream.sh` writes its configuration (users
//! victor, mona, ... with their passwords), and [`start_freeradius`] runs it
//! in the foreground on loopback until the returned guard is dropped.

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
