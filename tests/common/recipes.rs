//! The worked deployment recipes (docs/recipes/) as the tests read them:
//! the configuration blocks a page marks with `<!-- recipe: NAME -->` (so
//! a recipe cannot drift from what is tested), and nodes started the way
//! systemd starts the packaged unit, from the `ExecStart=` line of
//! deploy/systemd/radmfa.service with only the binary and the
//! configuration path mapped to the test's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test binary uses some of them
pub use super::recipe_text::{block, page, replace};

/// Where the unit and the packaged configuration expect things.
const UNIT_BINARY: &str = "/usr/bin/radmfa";
const UNIT_CONFIG: &str = "/etc/radmfa/radmfa.toml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The unit's `ExecStart=` line, split into words (it has no quotes).
pub fn exec_start() -> Vec<String> {
    let unit = repo().join("deploy/systemd/radmfa.service");
    let text = std::fs::read_to_string(&unit).expect("radmfa.service");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart= in radmfa.service");
    line.split_whitespace().map(str::to_owned).collect()
}

/// A node running the unit's `ExecStart=` line with `config` in place of
/// /etc/radmfa/radmfa.toml, from `/` with an empty environment but PATH,
/// as systemd runs it. Killed on drop.
#[derive(Debug)]
pub struct UnitNode {
    child: Child,
    /// The node's configuration file.
    pub config: PathBuf,
    log: PathBuf,
}

impl UnitNode {
    /// Starts the node and waits until it answers on its control socket.
    pub fn start(config: &Path) -> UnitNode {
        let mut argv = exec_start();
        assert_eq!(argv[0], UNIT_BINARY, "ExecStart= runs another binary");
        argv[0] = super::radmfa_bin().to_owned();
        let at = argv
            .iter()
            .position(|a| a == UNIT_CONFIG)
            .unwrap_or_else(|| panic!("ExecStart= does not name {UNIT_CONFIG}: {argv:?}"));
        argv[at] = config.to_str().expect("utf-8").to_owned();
        let log = config.with_extension("log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start the ExecStart= line");
        let mut node = UnitNode {
            child,
            config: config.to_path_buf(),
            log,
        };
        node.wait_answering();
        node
    }

    fn wait_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.radmfa(&["stats"]).code() != 0 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("node exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "node not answering:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The installed CLI against this node's file, as an admin runs it.
    pub fn radmfa(&self, args: &[&str]) -> super::CmdOutput {
        self.radmfa_stdin(args, None)
    }

    /// [`UnitNode::radmfa`] with standard input.
    pub fn radmfa_stdin(&self, args: &[&str], stdin: Option<&str>) -> super::CmdOutput {
        let config = self.config.to_str().expect("utf-8");
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        super::run_radmfa(&all, stdin, Path::new("/"))
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for UnitNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed `radmfa token enroll` printed (the `secret=` of its otpauth URI).
#[track_caller]
pub fn enrolled_seed(enroll: &super::CmdOutput) -> Vec<u8> {
    enroll.assert_ok();
    let b32 = enroll
        .stdout
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split(['&', '\n', ' ']).next())
        .expect("secret= in token enroll's output");
    super::decode_secret(b32)
}

/// One Access-Request from radclient with the recipe's shared `secret`
/// (the State of a previous challenge, if any).
pub fn login(
    addr: &str,
    secret: &str,
    user: &str,
    password: &str,
    state: Option<&str>,
) -> super::RadReply {
    let state = state.map(|s| format!("State = {s}\n")).unwrap_or_default();
    let input = format!(
        "User-Name = \"{user}\"\nUser-Password = \"{password}\"\n{state}Message-Authenticator = 0x00\n"
    );
    super::radclient(addr, "auth", secret, &input)
}
