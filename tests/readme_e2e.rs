//! The README's walkthroughs, run as written.
//!
//! The shell blocks of "Five-minute walkthrough with radclient" and "Trying
//! one-way SMS with the simulator" are read from README.md at test time (so
//! the two cannot drift) and run command by command with bash, in a network
//! namespace of their own (`unshare -n`): the fixed ports the README uses
//! (1812, 8443, 11812) are private to the test and nothing leaves loopback.
//!
//! What a person does by hand is done here the way the README says:
//! `./target/release/*` are the binaries under test; `cargo build` and
//! `apt-get` lines are skipped (the test harness built and installed them);
//! "in another terminal" and `&` commands run in the background, and the next
//! command waits until they answer; the placeholders `123456` (the code from
//! the app or the text message) and `State = 0x0100...` (the State from the
//! previous reply) are filled in: the TOTP code is computed by Python's
//! standard library from the secret `token enroll` printed (not by radmfa),
//! the SMS code is read from the simulator as the README's `curl` does.
//!
//! A `# Received X ... Reply-Message = "M"` comment after a command is the
//! README's promise: the reply must be an X and carry M.
//!
//! External tools: radclient (freeradius-utils), curl, unshare/nsenter
//! (util-linux), ip (iproute2), python3; root for the network namespace.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one foreground command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a background service may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One command of a README shell block and the promise written under it.
#[derive(Debug, Clone)]
struct Step {
    command: String,
    expect: Option<Expect>,
}

#[derive(Debug, Clone)]
struct Expect {
    /// `Access-Accept`, `Access-Challenge`, ...
    code: String,
    /// The Reply-Message the comment quotes, if any.
    reply_message: Option<String>,
}

/// The `sh` blocks of the README section whose heading starts with `heading`.
fn section_steps(readme: &str, heading: &str) -> Vec<Step> {
    let mut in_section = false;
    let mut in_block = false;
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("## ") {
            in_section = line.starts_with(heading);
            continue;
        }
        if !in_section {
            continue;
        }
        if line.starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('#') {
            if let Some(expect) = parse_expect(trimmed) {
                let last = steps.last_mut().expect("a promise follows a command");
                last.expect = Some(expect);
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        steps.push(Step {
            command: std::mem::take(&mut pending),
            expect: None,
        });
    }
    assert!(
        !steps.is_empty(),
        "README.md has no sh block under a heading starting with {heading:?}"
    );
    steps
}

/// `# Received Access-Challenge ... Reply-Message = "..." ...`
fn parse_expect(comment: &str) -> Option<Expect> {
    let rest = comment.trim_start_matches('#').trim();
    let rest = rest.strip_prefix("Received ")?;
    let code = rest.split_whitespace().next()?.to_string();
    let reply_message = rest
        .split_once("Reply-Message = \"")
        .and_then(|(_, m)| m.split_once('"'))
        .map(|(m, _)| m.to_string());
    Some(Expect {
        code,
        reply_message,
    })
}

/// A network namespace held open by a sleeping process.
struct Netns {
    holder: Child,
}

impl Netns {
    fn new() -> Netns {
        let holder = Command::new("unshare")
            .args(["-n", "sleep", "3600"])
            .spawn()
            .expect("unshare (util-linux)");
        let ns = Netns { holder };
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = std::fs::read_link("/proc/self/ns/net").expect("our network namespace");
        loop {
            // `unshare` may not have made the new namespace yet: until the
            // holder's namespace differs from ours, nsenter would bring up lo
            // here instead.
            let theirs = std::fs::read_link(format!("/proc/{}/ns/net", ns.holder.id()));
            let separate = theirs.is_ok_and(|t| t != ours);
            let out = ns.command("ip link set lo up").output().expect("nsenter");
            if separate && out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cannot bring up lo in a new network namespace (root, unshare, ip needed): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ns
    }

    /// `bash -c SCRIPT` inside the namespace.
    fn command(&self, script: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .args(["bash", "-c", script]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Runs a command to completion with a deadline.
fn run(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what}: no end after {COMMAND_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret at a step, by
/// Python's standard library: an oracle independent of radmfa's OTP crate.
fn python_totp(base32_secret: &str, step: u64) -> String {
    let script = "import base64,hmac,hashlib,struct,sys\n\
                  k=base64.b32decode(sys.argv[1]+'='*(-len(sys.argv[1])%8))\n\
                  h=hmac.new(k,struct.pack('>Q',int(sys.argv[2])),hashlib.sha1).digest()\n\
                  o=h[-1]&15\n\
                  print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))";
    let out = Command::new("python3")
        .args(["-c", script, base32_secret, &step.to_string()])
        .output()
        .expect("python3");
    assert!(out.status.success(), "python3 TOTP failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn now_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 30
}

/// The walkthrough's state: aliases, background services, what earlier
/// replies said.
struct Walk<'a> {
    ns: &'a Netns,
    dir: PathBuf,
    aliases: HashMap<String, String>,
    background: Vec<Child>,
    totp_secret: Option<String>,
    last_totp_step: Option<u64>,
    sms_code: Option<String>,
    last_state: Option<String>,
    transcript: String,
}

impl Walk<'_> {
    fn expand_alias(&self, command: &str) -> String {
        let first = command.split_whitespace().next().unwrap_or_default();
        match self.aliases.get(first) {
            Some(target) => format!("{target}{}", &command[first.len()..]),
            None => command.to_string(),
        }
    }

    /// A code nobody used yet: the current step, or the next one when the
    /// current one was used (radmfa accepts one step either side).
    fn fresh_totp(&mut self) -> String {
        let secret = self
            .totp_secret
            .clone()
            .expect("a code is asked for before `token enroll` printed a secret");
        let now = now_step();
        let step = match self.last_totp_step {
            Some(used) if used >= now => used + 1,
            _ => now,
        };
        assert!(step <= now + 1, "no fresh TOTP step within the window");
        self.last_totp_step = Some(step);
        python_totp(&secret, step)
    }

    /// Fills in what a person would type: the code and the State.
    fn fill_placeholders(&mut self, command: &str) -> String {
        let mut c = command.to_string();
        if c.contains("State = 0x0100...") {
            let state = self
                .last_state
                .clone()
                .expect("State placeholder without an earlier Access-Challenge");
            c = c.replace("State = 0x0100...", &format!("State = {state}"));
        }
        if c.contains("123456") {
            let code = if c.contains("text message") || self.sms_code.is_some() {
                self.sms_code
                    .take()
                    .expect("SMS code placeholder before the message was read")
            } else {
                self.fresh_totp()
            };
            c = c.replace("123456", &code);
        }
        c
    }

    fn wait_ready(&mut self, command: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let probe = if command.contains("radmfa-gateway-sim") {
            let port = command
                .split("--listen ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|a| a.rsplit(':').next())
                .expect("simulator --listen address")
                .to_string();
            format!("exec 3<>/dev/tcp/127.0.0.1/{port}")
        } else {
            // The server answers on its control socket once its listeners
            // are bound (as the Dockerfile's HEALTHCHECK checks).
            let serve = command.trim_end_matches('&').trim();
            let prefix = serve
                .strip_suffix("serve")
                .expect("a background command is the simulator or `serve`");
            format!("{prefix} stats --json")
        };
        loop {
            let out = run(self.ns_cmd(&probe), "readiness probe");
            if out.status.success() {
                return;
            }
            if let Some(child) = self.background.last_mut() {
                if let Some(status) = child.try_wait().expect("wait") {
                    panic!(
                        "`{command}` exited ({status}) before it was ready\n{}",
                        self.transcript
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "`{command}` not ready after {READY_TIMEOUT:?}\n{}\nits output:\n{}\nlast probe: {}",
                self.transcript,
                std::fs::read_to_string(self.dir.join(format!(
                    "background-{}.log",
                    self.background.len() - 1
                )))
                .unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ns_cmd(&self, script: &str) -> Command {
        let mut c = self.ns.command(script);
        c.current_dir(&self.dir);
        c
    }

    fn step(&mut self, step: &Step) {
        let raw = step.command.trim();
        if raw.starts_with("sudo apt-get") || raw.starts_with("cargo build") {
            self.transcript.push_str(&format!("(skipped) {raw}\n"));
            return;
        }
        if let Some(def) = raw.strip_prefix("alias ") {
            let (name, target) = def.split_once('=').expect("alias NAME=VALUE");
            self.aliases.insert(name.to_string(), target.to_string());
            return;
        }
        let command = self.expand_alias(raw);
        let command = self.fill_placeholders(&command);
        let background = command.ends_with('&')
            || command.trim_end().ends_with(" serve")
            || command.contains(" serve #");
        self.transcript.push_str(&format!("$ {command}\n"));
        if background {
            let script = command.trim_end().trim_end_matches('&').to_string();
            let log = std::fs::File::create(
                self.dir
                    .join(format!("background-{}.log", self.background.len())),
            )
            .expect("log file");
            let child = self
                .ns_cmd(&script)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn background command");
            self.background.push(child);
            self.wait_ready(&command);
            return;
        }
        let out = run(self.ns_cmd(&command), &command);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        self.transcript.push_str(&stdout);
        self.transcript.push_str(&stderr);
        let is_radclient = command.contains("radclient");
        if !is_radclient {
            assert!(
                out.status.success(),
                "`{command}` failed ({})\n{}",
                out.status,
                self.transcript
            );
        }
        if command.contains("token enroll") {
            let secret = stdout
                .lines()
                .find_map(|l| l.strip_prefix("secret: "))
                .expect("`token enroll` prints `secret: BASE32`");
            self.totp_secret = Some(secret.trim().to_string());
        }
        if command.starts_with("curl") && command.contains("/sim/messages") {
            // The newest message's text, and its code: six digits standing
            // alone (not the digits of an id elsewhere in the record).
            let records: serde_json::Value =
                serde_json::from_str(&stdout).expect("the simulator answers JSON");
            let text = records
                .as_array()
                .and_then(|r| r.last())
                .and_then(|r| r["body"].as_str())
                .expect("the simulator recorded a text message")
                .to_string();
            let code = text
                .split(|c: char| !c.is_ascii_digit())
                .rfind(|w| w.len() == 6)
                .unwrap_or_else(|| panic!("no 6-digit code in the text message {text:?}"));
            self.sms_code = Some(code.to_string());
        }
        if is_radclient {
            if let Some(state) = stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("State = "))
            {
                self.last_state = Some(state.trim().to_string());
            }
        }
        if let Some(expect) = &step.expect {
            let received = format!("Received {}", expect.code);
            assert!(
                stdout.contains(&received),
                "README promises `{received}` after `{command}`\n{}",
                self.transcript
            );
            if let Some(m) = &expect.reply_message {
                assert!(
                    stdout.contains(&format!("Reply-Message = \"{m}")),
                    "README promises Reply-Message {m:?} after `{command}`\n{}",
                    self.transcript
                );
            }
        }
    }
}

impl Drop for Walk<'_> {
    fn drop(&mut self) {
        for child in &mut self.background {
            // SIGTERM: the server flushes and exits.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in &mut self.background {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The working directory: `./target/release/` holds the binaries under test.
fn workdir(tmp: &Path) -> PathBuf {
    let release = tmp.join("target").join("release");
    std::fs::create_dir_all(&release).expect("mkdir");
    for (name, bin) in [
        ("radmfa", PathBuf::from(common::radmfa_bin())),
        ("radmfa-gateway-sim", common::sim::sim_bin()),
    ] {
        std::os::unix::fs::symlink(bin, release.join(name)).expect("symlink");
    }
    tmp.to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The peers the walkthroughs need; `false` (after one SKIPPED line) when
/// one is missing outside CI.
fn peers_present() -> bool {
    use common::tools::require_tool;
    require_tool("curl", "apt-get install curl")
        && require_tool("unshare", "apt-get install util-linux")
        && require_tool("nsenter", "apt-get install util-linux")
        && require_tool("ip", "apt-get install iproute2")
        && common::tools::require(
            "root (for a network namespace of its own)",
            is_root(),
            "run the tests as root, as .ci/run does",
        )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn walk(heading: &str) -> Option<String> {
    if !peers_present() {
        return None;
    }
    let steps = section_steps(&readme(), heading);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ns = Netns::new();
    let mut w = Walk {
        ns: &ns,
        dir: workdir(tmp.path()),
        aliases: HashMap::new(),
        background: Vec::new(),
        totp_secret: None,
        last_totp_step: None,
        sms_code: None,
        last_state: None,
        transcript: String::new(),
    };
    for step in &steps {
        w.step(step);
    }
    let promises = steps.iter().filter(|s| s.expect.is_some()).count();
    assert!(promises > 0, "the walkthrough promises no reply");
    Some(std::mem::take(&mut w.transcript))
}

#[test]
fn five_minute_walkthrough_runs_as_written() {
    let Some(transcript) = walk("## Five-minute walkthrough") else {
        return;
    };
    // Challenge, then Accept; inline Accept; the report and the counters.
    assert_eq!(
        transcript.matches("Received Access-Accept").count(),
        2,
        "{transcript}"
    );
    assert!(
        transcript.contains("Received Access-Challenge"),
        "{transcript}"
    );
}

#[test]
fn one_way_sms_walkthrough_runs_as_written() {
    let Some(transcript) = walk("## Trying one-way SMS") else {
        return;
    };
    assert!(
        transcript.contains("Received Access-Challenge"),
        "{transcript}"
    );
    assert!(
        transcript.contains("Received Access-Accept"),
        "{transcript}"
    );
}

#[test]
fn readme_promises_are_parsed() {
    // The parser itself: a promise binds to the command above it.
    let text = "## A\n```sh\necho one \\\n  two\n# Received Access-Accept ... Reply-Message = \"Hi.\"\n```\n## B\n";
    let steps = section_steps(text, "## A");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].command, "echo one    two");
    let e = steps[0].expect.clone().expect("promise");
    assert_eq!(e.code, "Access-Accept");
    assert_eq!(e.reply_message.as_deref(), Some("Hi."));
}
