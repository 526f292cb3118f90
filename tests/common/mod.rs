//! Harness for the end-to-end tests: real `radmfa` processes, FreeRADIUS
//! `radclient` and pyrad (`tests/py/radreq.py`).
//!
//! Every test gets its own temporary directory, config file, data directory
//! and port (the server listens on `127.0.0.1:0` and reports the bound port in
//! its ready file), so tests run in parallel.
#![allow(dead_code)]

pub mod freeradius;
pub mod i18n;
pub mod nginx;
pub mod recipe_text;
pub mod recipes;
pub mod sim;
pub mod smtp;
pub mod tools;

#[allow(unused_imports)] // each test binary uses some of them
pub use tools::{require, require_file, require_python_module, require_tool};

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Shared secret of the default client (127.0.0.1/32).
pub const SECRET: &str = "testing123";
/// Password every test user gets unless a test says otherwise (no trailing
/// digits, so an inline `password + code` split is unambiguous).
pub const PASSWORD: &str = "correct-horse";
/// Base32 TOTP secrets used with `token enroll --secret`.
pub const TOTP_SECRETS: [&str; 4] = [
    "JBSWY3DPEHPK3PXP",
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
    "KRUGS4ZANFZSAYJAORSXG5BAONSWG4TF",
];
/// TOTP period (seconds) of the default token.
pub const PERIOD: u64 = 30;

/// How long to wait for the server to write its ready file.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping server may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the `radmfa` binary under test.
pub fn radmfa_bin() -> &'static str {
    env!("CARGO_BIN_EXE_radmfa")
}

/// Directory of the helper scripts and the pyrad dictionary.
pub fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
}

/// Knobs for the generated config file.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// CIDR of the static client.
    pub client_address: String,
    /// Shared secret of the static client.
    pub client_secret: String,
    /// `require_message_authenticator` of the static client.
    pub require_message_authenticator: bool,
    /// TOML appended verbatim at the end of the file.
    pub extra: String,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        ConfigOptions {
            client_address: "127.0.0.1/32".to_owned(),
            client_secret: SECRET.to_owned(),
            require_message_authenticator: true,
            extra: String::new(),
        }
    }
}

/// The result of one finished CLI run.
#[derive(Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    fn from_output(cmdline: String, out: Output) -> Self {
        CmdOutput {
            cmdline,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit code (-1 when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "`{}` failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.cmdline,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics with the whole output unless the command exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "`{}` exit code\nstdout:\n{}\nstderr:\n{}",
            self.cmdline,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e}):\n{}\nstderr:\n{}",
                self.cmdline, self.stdout, self.stderr
            )
        })
    }
}

/// One test environment: temp dir, config file, data dir.
#[derive(Debug)]
pub struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    data_dir: PathBuf,
}

impl Env {
    /// Environment with the default config.
    pub fn new() -> Self {
        Self::with_options(ConfigOptions::default())
    }

    /// Environment with a customised config.
    pub fn with_options(opts: ConfigOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("radmfa-e2e-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("radmfa.toml");
        let text = config_text(&data_dir, &opts);
        std::fs::write(&config, text).expect("write config");
        Env {
            dir,
            config,
            data_dir,
        }
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The data dir named in the config.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs `radmfa --config F ARGS...` and waits for it.
    pub fn radmfa(&self, args: &[&str]) -> CmdOutput {
        self.radmfa_stdin(args, None)
    }

    /// Runs `radmfa --config F ARGS...` with `stdin` on standard input.
    pub fn radmfa_stdin(&self, args: &[&str], stdin: Option<&str>) -> CmdOutput {
        let mut full: Vec<&str> = vec!["--config", path_str(&self.config)];
        full.extend_from_slice(args);
        run_radmfa(&full, stdin, self.path())
    }

    /// `radmfa user add NAME --password PW` (asserts success).
    pub fn add_user(&self, name: &str, password: &str) {
        self.radmfa(&["user", "add", name, "--password", password])
            .assert_ok();
    }

    /// `radmfa token enroll NAME --secret B32 --no-qr` (asserts success).
    pub fn enroll(&self, name: &str, secret_b32: &str) -> CmdOutput {
        let out = self.radmfa(&["token", "enroll", name, "--secret", secret_b32, "--no-qr"]);
        out.assert_ok();
        out
    }

    /// A user with password [`PASSWORD`] and a TOTP token; returns the raw
    /// TOTP secret.
    pub fn add_totp_user(&self, name: &str, secret_b32: &str) -> Vec<u8> {
        self.add_user(name, PASSWORD);
        self.enroll(name, secret_b32);
        decode_secret(secret_b32)
    }

    /// Starts `radmfa serve --ready-file R` and waits until it is ready.
    pub fn start(&self) -> Server {
        self.start_with(&[], &[])
    }

    /// [`Env::start`] with extra `serve` arguments (e.g. `--debug`) and
    /// environment variables (e.g. `RUST_LOG`).
    pub fn start_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut server = self.spawn_serve_with(None, args, envs);
        server.wait_ready();
        server
    }

    /// Starts `radmfa serve --ready-file R` without waiting for it; with
    /// `umask`, through `sh -c 'umask U; exec radmfa ...'`.
    pub fn spawn_serve(&self, umask: Option<u32>) -> Server {
        self.spawn_serve_with(umask, &[], &[])
    }

    /// [`Env::spawn_serve`] with extra `serve` arguments and environment.
    pub fn spawn_serve_with(
        &self,
        umask: Option<u32>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let ready = self.path().join(format!(
            "ready-{}.json",
            std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let log_path = self.path().join(format!(
            "server-{}.log",
            ready.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
        ));
        let log = std::fs::File::create(&log_path).expect("create server log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = match umask {
            Some(mask) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {mask:03o}; exec \"$0\" \"$@\""))
                    .arg(radmfa_bin());
                c
            }
            None => Command::new(radmfa_bin()),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .arg("--ready-file")
            .arg(&ready)
            .args(args)
            .current_dir(self.path())
            .env_remove("RADMFA_CONFIG")
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawn radmfa serve");
        Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ready: Ready::default(),
            ready_path: ready,
            log_path,
            stopped: false,
        }
    }

    /// `radmfa stats --json` (through the running server's control socket).
    #[track_caller]
    pub fn stats(&self) -> Value {
        let out = self.radmfa(&["stats", "--json"]);
        out.assert_ok();
        let v = out.json();
        assert!(v.is_object(), "stats --json is not an object: {v}");
        v
    }

    /// One counter from `radmfa stats --json`.
    #[track_caller]
    pub fn counter(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("stats has no integer field {name}: {stats}"))
    }

    /// Polls the counter until it equals `expected` (counters may be updated
    /// right after the reply is sent); panics with the last stats otherwise.
    #[track_caller]
    pub fn wait_counter(&self, name: &str, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let stats = self.stats();
            let got = stats.get(name).and_then(Value::as_u64);
            if got == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "counter {name}: expected {expected}, got {got:?}; stats: {stats}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `radmfa report --json ARGS...` as a list of records: the sign-ins
    /// (the records of admin actions, `mode` "admin", are left out: see
    /// [`Env::report_all`]).
    #[track_caller]
    pub fn report(&self, args: &[&str]) -> Vec<Value> {
        let mut records = self.report_all(args);
        records.retain(|r| r["mode"] != "admin");
        records
    }

    /// `radmfa report --json ARGS...`: every record, admin actions included.
    #[track_caller]
    pub fn report_all(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["report", "--json"];
        full.extend_from_slice(args);
        let out = self.radmfa(&full);
        out.assert_ok();
        match out.json() {
            Value::Array(records) => records,
            other => panic!("report --json is not an array: {other}"),
        }
    }

    /// Polls `report --json ARGS` until it has `n` records.
    #[track_caller]
    pub fn wait_report_len(&self, args: &[&str], n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let records = self.report(args);
            if records.len() == n {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "report {args:?}: expected {n} records, got {}: {records:#?}",
                records.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// The generated config file text.
pub fn config_text(data_dir: &Path, opts: &ConfigOptions) -> String {
    let mut text = String::new();
    let _ = write!(
        text,
        r#"# generated by tests/common/mod.rs
[server]
node_name = "e2e-node"
node_id = 7
data_dir = {data_dir}

[log]
format = "human"
level = "info"

[radius]
listen = ["127.0.0.1:0"]
duplicate_window_secs = 30

[password]
memory_kib = 1024
iterations = 1

[otp]
issuer = "radmfa"
window = 1
digits = 6

[challenge]
lifetime_secs = 120

[[policy]]
name = "default"
first_factor = "local"
otp_mode = "auto"
unenrolled = "reject"
challenge_prompt = "Enter the code from your authenticator app"

[[client]]
name = "localhost"
address = "{address}"
secret = "{secret}"
policy = "default"
require_message_authenticator = {require_ma}
"#,
        data_dir = toml_string(path_str(data_dir)),
        address = opts.client_address,
        secret = opts.client_secret,
        require_ma = opts.require_message_authenticator,
    );
    if !opts.extra.is_empty() {
        text.push('\n');
        text.push_str(&opts.extra);
        text.push('\n');
    }
    text
}

/// A TOML basic string literal for `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Runs the binary with `args` (no implicit `--config`).
pub fn run_radmfa(args: &[&str], stdin: Option<&str>, cwd: &Path) -> CmdOutput {
    let cmdline = format!("radmfa {}", args.join(" "));
    let mut cmd = Command::new(radmfa_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("RADMFA_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn radmfa");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = wait_output(child, Duration::from_secs(60), &cmdline);
    CmdOutput::from_output(cmdline, out)
}

/// Waits for a child with a deadline (kills it and panics when exceeded).
fn wait_output(mut child: Child, timeout: Duration, what: &str) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect output"),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "`{what}` did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
    }
}

/// Every address in the ready file (written once all listeners are bound).
#[derive(Debug, Clone, Default)]
pub struct Ready {
    /// RADIUS UDP listeners.
    pub radius_udp: Vec<SocketAddr>,
    /// RadSec listener, when configured.
    pub radsec: Option<SocketAddr>,
    /// Admin API, when configured.
    pub api: Option<SocketAddr>,
    /// User portal, when configured.
    pub portal: Option<SocketAddr>,
    /// Peer link, when configured.
    pub peer: Option<SocketAddr>,
}

fn read_ready_file(path: &Path, pid: u32) -> Option<Ready> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    assert_eq!(
        v.get("pid").and_then(Value::as_u64),
        Some(u64::from(pid)),
        "ready file pid: {text}"
    );
    let addr = |s: &str| -> SocketAddr {
        let a: SocketAddr = s
            .parse()
            .unwrap_or_else(|e| panic!("ready file address {s:?}: {e}"));
        assert_ne!(a.port(), 0, "ready file names port 0: {text}");
        a
    };
    let radius_udp: Vec<SocketAddr> = v
        .get("radius_udp")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(addr)
        .collect();
    radius_udp.first()?;
    let opt = |key: &str| v.get(key).and_then(Value::as_str).map(addr);
    Some(Ready {
        radius_udp,
        radsec: opt("radsec"),
        api: opt("api"),
        portal: opt("portal"),
        peer: opt("peer"),
    })
}

/// A running `radmfa serve`; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Bound RADIUS UDP address from the ready file.
    pub addr: SocketAddr,
    /// Every bound address from the ready file.
    pub ready: Ready,
    ready_path: PathBuf,
    log_path: PathBuf,
    stopped: bool,
}

impl Server {
    /// Waits until the ready file appears (panics if the server exits or
    /// takes longer than the ready timeout).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                panic!(
                    "radmfa serve exited before it was ready ({status:?}); log:\n{}",
                    self.log()
                );
            }
            if let Some(ready) = read_ready_file(&self.ready_path, self.child.id()) {
                self.addr = ready.radius_udp[0];
                self.ready = ready;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "radmfa serve not ready after {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The ready file's path (it exists once the server is ready).
    pub fn ready_path(&self) -> &Path {
        &self.ready_path
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.stopped = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT` of the RADIUS listener.
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `signal` (e.g. "TERM") with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGTERM and wait; returns the exit status and the full log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.stopped = true;
                return (status, self.log());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.stopped = true;
                panic!(
                    "radmfa serve did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(self.child.id().to_string())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
            self.stopped = true;
        }
        if std::thread::panicking() {
            eprintln!(
                "---- radmfa server log ({}) ----\n{}\n---- end of server log ----",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

// ---------------------------------------------------------------- TOTP
//
// Expected codes come from `tests/py/otp.py` (Python's hmac, hashlib and
// base64), never from the radmfa-otp crate under test.

/// Runs `tests/py/otp.py` with `args` and returns its output lines.
fn py_otp(args: &[String]) -> Vec<String> {
    let out = Command::new("python3")
        .arg(py_dir().join("otp.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 tests/py/otp.py: {e} (install python3)"));
    assert!(
        out.status.success(),
        "otp.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn hex_key(secret: &[u8]) -> String {
    let mut s = String::from("hex:");
    for b in secret {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Raw bytes of a base32 TOTP secret (decoded by Python's base64).
pub fn decode_secret(b32: &str) -> Vec<u8> {
    let hex = py_otp(&["key".to_string(), b32.to_string()]);
    let hex = hex.first().expect("otp.py key prints the key");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from otp.py"))
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The TOTP code of `secret` at `unix_time` with `algorithm` (`sha1`,
/// `sha256`, `sha512`), `digits` and `period`, from Python.
pub fn totp_with(
    secret: &[u8],
    unix_time: u64,
    algorithm: &str,
    digits: u32,
    period: u64,
) -> String {
    py_otp(&[
        "totp".to_string(),
        hex_key(secret),
        unix_time.to_string(),
        format!("--algorithm={algorithm}"),
        format!("--digits={digits}"),
        format!("--period={period}"),
    ])
    .remove(0)
}

/// The HOTP code of `secret` at `counter` (RFC 4226), from Python.
pub fn hotp_at(secret: &[u8], counter: u64, algorithm: &str, digits: u32) -> String {
    py_otp(&[
        "hotp".to_string(),
        hex_key(secret),
        counter.to_string(),
        format!("--algorithm={algorithm}"),
        format!("--digits={digits}"),
    ])
    .remove(0)
}

/// The default (SHA-1, 6 digits, 30 s) TOTP code at `unix_time`.
pub fn totp_at(secret: &[u8], unix_time: u64) -> String {
    totp_with(secret, unix_time, "sha1", 6, PERIOD)
}

/// Waits, if need be, until at least 10 s of the current time step remain,
/// so that a code computed for step -1 or 0 is still that step when the
/// server checks it (a login with Argon2 takes a good part of a second on a
/// loaded machine; a step boundary in between made step -1 fall outside the
/// window now and then).
pub fn clear_of_step_edge() {
    let into = unix_now() % PERIOD;
    if into > PERIOD - 10 {
        std::thread::sleep(std::time::Duration::from_secs(PERIOD - into + 1));
    }
}

/// The code of the current time step shifted by `steps`.
pub fn totp_step(secret: &[u8], steps: i64) -> String {
    let t = unix_now().saturating_add_signed(steps * PERIOD as i64);
    totp_at(secret, t)
}

/// The current code.
pub fn totp_now(secret: &[u8]) -> String {
    totp_step(secret, 0)
}

/// A 6-digit code that is not valid for any step near now.
pub fn wrong_code(secret: &[u8]) -> String {
    let now = unix_now();
    let mut args = vec!["totp".to_string(), hex_key(secret)];
    args.extend((-3..=3).map(|s: i64| now.saturating_add_signed(s * PERIOD as i64).to_string()));
    let near = py_otp(&args);
    (0..10)
        .map(|d| std::iter::repeat_n(char::from(b'0' + d), 6).collect::<String>())
        .find(|c| !near.contains(c))
        .expect("seven codes cannot cover ten candidates")
}

// ---------------------------------------------------------------- radclient

/// A parsed radclient exchange.
#[derive(Debug, Clone)]
pub struct RadReply {
    /// Reply code name as radclient prints it (`Access-Accept`, ...), None if
    /// no reply arrived.
    pub code: Option<String>,
    /// Reply attributes in order, (name, value as printed).
    pub attrs: Vec<(String, String)>,
    /// Everything radclient printed (stdout then stderr).
    pub output: String,
    /// radclient exit code.
    pub exit_code: i32,
}

impl RadReply {
    /// First value of a reply attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A string attribute value without its quotes.
    pub fn text(&self, name: &str) -> Option<String> {
        self.attr(name).map(|v| v.trim_matches('"').to_owned())
    }
}

/// Runs `radclient -x -r 1 -t 2 ADDR KIND SECRET` with `input` (one
/// `Attr = value` per line) on stdin.
pub fn radclient(addr: &str, kind: &str, secret: &str, input: &str) -> RadReply {
    radclient_opts(addr, kind, secret, input, 2)
}

/// [`radclient`] with a custom timeout in seconds.
pub fn radclient_opts(addr: &str, kind: &str, secret: &str, input: &str, timeout: u32) -> RadReply {
    let cmdline = format!("radclient -x -r 1 -t {timeout} {addr} {kind} {secret}");
    let mut child = Command::new("radclient")
        .args(["-x", "-r", "1", "-t", &timeout.to_string(), addr, kind, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run radclient ({e}); install FreeRADIUS' client tools (Debian: freeradius-utils)")
        });
    {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes())
            .expect("write radclient stdin");
    }
    let out = wait_output(
        child,
        Duration::from_secs(u64::from(timeout) * 3 + 10),
        &cmdline,
    );
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, attrs) = parse_radclient(&output);
    RadReply {
        code,
        attrs,
        output,
        exit_code: out.status.code().unwrap_or(-1),
    }
}

/// Parses radclient `-x` output: the `Received CODE Id ...` line and the
/// tab-indented attribute lines after it.
pub fn parse_radclient(output: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut code = None;
    let mut attrs = Vec::new();
    let mut in_reply = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_owned);
            attrs.clear();
            in_reply = true;
            continue;
        }
        if in_reply {
            if line.starts_with('\t') || line.starts_with(' ') {
                if let Some((name, value)) = line.trim().split_once(" = ") {
                    attrs.push((name.trim().to_owned(), value.trim().to_owned()));
                }
            } else {
                in_reply = false;
            }
        }
    }
    (code, attrs)
}

/// radclient input for an Access-Request with a Message-Authenticator.
pub fn auth_input(user: &str, password: &str) -> String {
    format!(
        "User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    )
}

// ---------------------------------------------------------------- pyrad

/// Arguments for `tests/py/radreq.py`.
#[derive(Debug, Clone)]
pub struct PyRequest {
    /// `HOST:PORT` of the server.
    pub server: String,
    /// Shared secret used to build the request and verify replies.
    pub secret: String,
    /// Source address to bind.
    pub bind: String,
    /// Seconds to wait for each reply.
    pub timeout: f64,
    /// How many times the same datagram is sent.
    pub sends: u32,
    /// access-request | status-server | accounting-request
    pub code: String,
    /// Add a Message-Authenticator.
    pub message_authenticator: bool,
    /// User-Name.
    pub user: Option<String>,
    /// User-Password (hidden by pyrad).
    pub password: Option<String>,
    /// State, hex.
    pub state_hex: Option<String>,
    /// Further `NAME=VALUE` attributes (names from tests/py/dictionary).
    pub attrs: Vec<String>,
    /// Send this datagram (hex) verbatim instead of the built request.
    pub raw_hex: Option<String>,
}

impl PyRequest {
    /// An Access-Request with a Message-Authenticator to `server`.
    pub fn access(server: &Server) -> Self {
        PyRequest {
            server: server.addr_string(),
            secret: SECRET.to_owned(),
            bind: "127.0.0.1".to_owned(),
            timeout: 2.0,
            sends: 1,
            code: "access-request".to_owned(),
            message_authenticator: true,
            user: None,
            password: None,
            state_hex: None,
            attrs: Vec::new(),
            raw_hex: None,
        }
    }

    /// Sets User-Name and User-Password.
    pub fn login(mut self, user: &str, password: &str) -> Self {
        self.user = Some(user.to_owned());
        self.password = Some(password.to_owned());
        self
    }

    /// Runs the script; returns its JSON output.
    pub fn send(&self) -> PyResult {
        let script = py_dir().join("radreq.py");
        let dict = py_dir().join("dictionary");
        let mut args: Vec<String> = vec![
            path_str(&script).to_owned(),
            "--server".into(),
            self.server.clone(),
            "--secret".into(),
            self.secret.clone(),
            "--dict".into(),
            path_str(&dict).to_owned(),
            "--bind".into(),
            self.bind.clone(),
            "--timeout".into(),
            self.timeout.to_string(),
            "--sends".into(),
            self.sends.to_string(),
            "--code".into(),
            self.code.clone(),
        ];
        if !self.message_authenticator {
            args.push("--no-message-authenticator".into());
        }
        if let Some(u) = &self.user {
            args.push("--user".into());
            args.push(u.clone());
        }
        if let Some(p) = &self.password {
            args.push("--password".into());
            args.push(p.clone());
        }
        if let Some(s) = &self.state_hex {
            args.push("--state-hex".into());
            args.push(s.clone());
        }
        for a in &self.attrs {
            args.push("--attr".into());
            args.push(a.clone());
        }
        if let Some(raw) = &self.raw_hex {
            args.push("--raw-hex".into());
            args.push(raw.clone());
        }
        let cmdline = format!("python3 {}", args.join(" "));
        let child = Command::new("python3")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e})"));
        let budget = Duration::from_secs_f64(self.timeout * f64::from(self.sends) + 20.0);
        let out = wait_output(child, budget, &cmdline);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "`{cmdline}` failed ({:?}); is pyrad installed (python3 -m pip install pyrad)?\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("radreq.py output is not JSON ({e}): {stdout}"));
        PyResult { json }
    }
}

/// Output of `tests/py/radreq.py`.
#[derive(Debug, Clone)]
pub struct PyResult {
    /// The whole JSON document.
    pub json: Value,
}

impl PyResult {
    /// The request datagram, hex.
    pub fn request_hex(&self) -> &str {
        self.json["request_hex"].as_str().unwrap_or_default()
    }

    /// Replies, one per send (`Value::Null` where none arrived).
    pub fn replies(&self) -> Vec<Value> {
        self.json["replies"].as_array().cloned().unwrap_or_default()
    }

    /// The single reply (asserting exactly one send).
    #[track_caller]
    pub fn reply(&self) -> Value {
        let r = self.replies();
        assert_eq!(r.len(), 1, "expected one send: {}", self.json);
        r.into_iter().next().unwrap_or(Value::Null)
    }
}

/// Reply code name of a radreq.py reply (`Access-Accept`, ...).
pub fn code_name(reply: &Value) -> &str {
    reply["code_name"].as_str().unwrap_or("<none>")
}

/// First attribute of `typ` in a radreq.py reply: (hex, text).
pub fn py_attr(reply: &Value, typ: u64) -> Option<(String, Option<String>)> {
    reply["attributes"].as_array()?.iter().find_map(|a| {
        (a["type"].as_u64() == Some(typ)).then(|| {
            (
                a["hex"].as_str().unwrap_or_default().to_owned(),
                a["text"].as_str().map(str::to_owned),
            )
        })
    })
}

/// Asserts a radreq.py reply is well formed and signed: valid Response
/// Authenticator, exactly one valid Message-Authenticator as the first
/// attribute, pyrad's own VerifyReply agrees.
#[track_caller]
pub fn assert_signed(reply: &Value) {
    assert!(reply.is_object(), "no reply: {reply}");
    assert_eq!(
        reply["response_authenticator_valid"],
        Value::Bool(true),
        "Response Authenticator: {reply:#}"
    );
    assert_eq!(
        reply["first_attribute_type"],
        Value::from(80u64),
        "Message-Authenticator must be the first attribute: {reply:#}"
    );
    assert_eq!(
        reply["message_authenticator_valid"],
        Value::Bool(true),
        "Message-Authenticator: {reply:#}"
    );
    assert_eq!(
        reply["pyrad_verify_reply"],
        Value::Bool(true),
        "pyrad VerifyReply: {reply:#}"
    );
}

/// An Access-Request through radclient with User-Name, User-Password, the
/// State of a challenge when given, and a Message-Authenticator.
pub fn login(addr: &str, user: &str, password: &str, state: Option<&str>) -> RadReply {
    login_with(addr, user, password, state, "")
}

/// [`login`] with extra radclient attribute lines (e.g. `Proxy-State = 0x01\n`).
pub fn login_with(
    addr: &str,
    user: &str,
    password: &str,
    state: Option<&str>,
    extra: &str,
) -> RadReply {
    let mut input = format!("User-Name = \"{user}\"\nUser-Password = \"{password}\"\n");
    if let Some(s) = state {
        input.push_str(&format!("State = {s}\n"));
    }
    input.push_str(extra);
    input.push_str("Message-Authenticator = 0x00\n");
    radclient(addr, "auth", SECRET, &input)
}

/// Asserts the reply code (`Access-Accept`, ...), showing radclient's output.
#[track_caller]
pub fn expect(r: &RadReply, code: &str) {
    assert_eq!(r.code.as_deref(), Some(code), "{}", r.output);
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A UDP port free on 127.0.0.1 right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}
